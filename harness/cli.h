/* cli — what every subcommand shares: the command table entry, exit codes, and the one place
 * that turns a qe_error into "qeval: <message>" and an exit status. A subcommand is a function
 * qh_cmd_NAME(argc, argv) in harness/cmd_NAME.c, with argv[0] the command's name. */
#ifndef QH_CLI_H
#define QH_CLI_H

#include <stdbool.h>

#include "qe_error.h"
#include "qeval_engine.h"

enum { QH_EXIT_OK = 0, QH_EXIT_ERROR = 1, QH_EXIT_USAGE = 2, QH_EXIT_INTERRUPTED = 3 };

typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} qh_command;

/* Prints "qeval: <err->msg>" on stderr and returns the exit code for err->code. */
int qh_report_error(const qe_error *err);

/* Prints root (indented) on stdout and frees it; QH_EXIT_OK, or QH_EXIT_ERROR (with the message)
 * when out of memory. For a command's --json. */
struct cJSON;
int qh_print_json(struct cJSON *root);

/* Raises the open-file soft limit to the hard one: merge and trend hold every results file open
 * at once (three descriptors each with SQLite's WAL), and a year of nightly files or a few
 * hundred shards pass the common soft limit of 1024. */
void qh_raise_open_file_limit(void);

/* Prints "qeval <command>: <message>" on stderr and returns QH_EXIT_USAGE. */
int qh_usage_error(const char *command, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* --device's value: "cpu", "cuda" (GPU 0) or "cuda:N". False for anything else. Whether the
 * GPU exists is for the model load to say. */
bool qh_parse_device(const char *value, qe_device_kind *kind, int *index);

int qh_cmd_version(int argc, char **argv);
int qh_cmd_run(int argc, char **argv);
int qh_cmd_model(int argc, char **argv);
int qh_cmd_runs(int argc, char **argv);
int qh_cmd_merge(int argc, char **argv);
int qh_cmd_slurm(int argc, char **argv);
int qh_cmd_rescore(int argc, char **argv);
int qh_cmd_report(int argc, char **argv);
int qh_cmd_compare(int argc, char **argv);
int qh_cmd_trend(int argc, char **argv);

/* The results file a command uses without --db: $QEVAL_DB, else ./results.db. */
const char *qh_default_db_path(void);
int qh_cmd_requests(int argc, char **argv);
int qh_cmd_data(int argc, char **argv);

/* The directory of task files: option, else $QEVAL_TASKS, else the source tree's tasks/. */
const char *qh_tasks_dir(const char *option);
int qh_cmd_verify(int argc, char **argv);
int qh_cmd_inspect(int argc, char **argv);
int qh_cmd_generate(int argc, char **argv);
int qh_cmd_tokenize(int argc, char **argv);
int qh_cmd_bench(int argc, char **argv);
int qh_cmd_code_exec(int argc, char **argv);
int qh_cmd_synth(int argc, char **argv);
int qh_cmd_estimate(int argc, char **argv);

#endif
