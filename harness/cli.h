/* cli — what every subcommand shares: the command table entry, exit codes, and the one place
 * that turns a qe_error into "qeval: <message>" and an exit status. A subcommand is a function
 * qh_cmd_NAME(argc, argv) in harness/cmd_NAME.c, with argv[0] the command's name. */
#ifndef QH_CLI_H
#define QH_CLI_H

#include <stdbool.h>

#include "qe_error.h"

enum { QH_EXIT_OK = 0, QH_EXIT_ERROR = 1, QH_EXIT_USAGE = 2, QH_EXIT_INTERRUPTED = 3 };

typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} qh_command;

/* Prints "qeval: <err->msg>" on stderr and returns the exit code for err->code. */
int qh_report_error(const qe_error *err);

/* Prints "qeval <command>: <message>" on stderr and returns QH_EXIT_USAGE. */
int qh_usage_error(const char *command, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

int qh_cmd_version(int argc, char **argv);
int qh_cmd_runs(int argc, char **argv);
int qh_cmd_merge(int argc, char **argv);
int qh_cmd_report(int argc, char **argv);
int qh_cmd_compare(int argc, char **argv);
int qh_cmd_trend(int argc, char **argv);

/* The results file a command uses without --db: $QEVAL_DB, else ./qeval.db. */
const char *qh_default_db_path(void);

#endif
