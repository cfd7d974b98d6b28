/* task — a benchmark defined as data: one JSON file (schema in docs/tasks.md) says where the
 * records are, how a prompt is built from a record, how few-shot examples are drawn, what to
 * ask the model and how to score the answers. The same rules as lm-evaluation-harness
 * (commit 4e7e0d47) give the same prompts, character for character.
 *
 * Use: qt_task_load -> for each doc qt_task_build_request -> (harness runs the model) ->
 * qt_scores_add(response) -> qt_scores_aggregate. A task with subsets (MMLU subjects) is one
 * qt_task whose documents run over every subset in turn; each request names its subtask. */
#ifndef QT_TASK_H
#define QT_TASK_H

#include <stdbool.h>
#include <stdint.h>

#include "qe_error.h"
#include "requests.h"

typedef struct qt_task qt_task;

typedef struct {
    const char *data_dir;      /* NULL: $QEVAL_DATA, else "data" */
    int limit;                 /* documents per subtask; 0 = all */
    int num_fewshot;           /* -1 = the task's default */
    const char *subsets;       /* comma-separated subset names (MMLU subjects); NULL = all */
    bool subsets_where_defined; /* subsets filter only tasks that have subsets (a multi-task run);
                                   false: naming subsets of a task without any is an error */
    int64_t seed;              /* few-shot sampler seed; -1 = the task's default (1234) */
    bool skip_bad_rows;        /* count bad data rows instead of stopping */
} qt_task_options;

void qt_task_options_default(qt_task_options *options);

/* name_or_path: a path to a .json task file, or a name looked up as TASKS_DIR/NAME.json where
 * TASKS_DIR is tasks_dir (NULL: $QEVAL_TASKS, else "tasks"). */
qe_status qt_task_load(const char *name_or_path, const char *tasks_dir, const qt_task_options *options,
                       qt_task **out, qe_error *err);
void qt_task_free(qt_task *task); /* NULL-safe */

const char *qt_task_name(const qt_task *task);
int qt_task_n_docs(const qt_task *task);
int qt_task_n_bad_rows(const qt_task *task);
/* The few-shot examples each prompt holds: the task file's default, or --num-fewshot. */
int qt_task_num_fewshot(const qt_task *task);
const char *qt_task_first_bad_row(const qt_task *task); /* "" when none */

/* Every request of the task has this type. */
qt_request_type qt_task_request_type(const qt_task *task);
/* The engine requests document doc_index makes, without building its prompt: one per choice
 * for a loglikelihood task (MMLU 4, TruthfulQA 2 to 13), 1 for a generation; and a generation's
 * token budget (max_new_tokens of its requests; 0 for a loglikelihood task). */
qe_status qt_task_doc_n_requests(const qt_task *task, int doc_index, int *n_requests, qe_error *err);
int qt_task_max_gen_toks(const qt_task *task);

/* The request for document doc_index (0 <= doc_index < n_docs). Any order works; in order is
 * cheapest (a random sampler replays its draws to reach an earlier document). */
qe_status qt_task_build_request(qt_task *task, int doc_index, qt_request *out, qe_error *err);

/* The same request as lm-evaluation-harness builds it with --apply_chat_template (and its
 * default fewshot_as_multiturn false); chat NULL gives qt_task_build_request's. The rendered
 * description is the system turn (none when empty); the few-shot examples and the document's
 * prompt, joined as without a template, are one user turn; the context is chat->render of the
 * two, ending with the assistant's turn opened. Continuations lose the target delimiter (" A"
 * becomes "A"); stops and max_new_tokens are unchanged. See docs/tasks.md, "Chat templates". */
qe_status qt_task_build_chat_request(qt_task *task, int doc_index, const qt_chat_renderer *chat, qt_request *out,
                                     qe_error *err);

/* Where document doc_index's sample is stored: under its subtask's name ("mmlu_anatomy"; the
 * task's own name for a task without subsets), doc_id its index in that subtask's split, as
 * lm-eval numbers it: the same whatever subsets and limit a run selects, so runs join on it.
 * *sample_task points into the task. */
qe_status qt_task_sample_key(const qt_task *task, int doc_index, const char **sample_task, int *doc_id, qe_error *err);
/* The inverse: the doc_index of the sample stored as (sample_task, doc_id); false when the task
 * holds no such document (another task's sample, or one its subsets or limit leave out). */
bool qt_task_find_sample_doc(const qt_task *task, const char *sample_task, int64_t doc_id, int *doc_index);

/* For code tasks: prompt + completion + "\n" + the test (doc_to_target), as the sandbox runs it. */
qe_status qt_task_exec_program(const qt_task *task, int doc_index, const char *completion, char **program,
                               qe_error *err);

/* The document's question as a reader of a report wants to see it: doc_to_question, else its
 * own prompt (doc_to_text, without description and few-shot examples); *text is malloc'd. */
qe_status qt_task_doc_text(const qt_task *task, int doc_index, char **text, qe_error *err);

/* The answer a generate_until filter extracts from text (filter_index over the task's filters,
 * in file order); *answer is malloc'd. */
int qt_task_n_filters(const qt_task *task);
const char *qt_task_filter_name(const qt_task *task, int filter_index);
qe_status qt_task_filter_text(const qt_task *task, int filter_index, const char *text, char **answer, qe_error *err);

/* ---- scoring ---------------------------------------------------------------------------- */

typedef struct qt_scores qt_scores;

#define QT_VERSION_SIZE 16
typedef struct {
    char task[96];             /* subtask, category ("mmlu_stem") or group ("mmlu") */
    char metric[32];           /* "acc", "exact_match", "pass@1" */
    char filter[32];           /* "none", "strict-match", ... */
    char version[QT_VERSION_SIZE]; /* the scoring rule's version, as lm-eval's metadata.version of
                                  the task (or of the group, for group rows); "" when the task
                                  file names none */
    double value;
    double stderr_value;       /* NAN when it cannot be computed (n < 2) */
    int n;                     /* documents scored */
    int n_truncated;           /* of them, with a context cut to fit the model */
    bool is_group;             /* aggregated over subtasks */
} qt_metric_row;

qe_status qt_scores_create(const qt_task *task, qt_scores **out, qe_error *err);
void qt_scores_free(qt_scores *scores); /* NULL-safe */

/* The values qt_scores_add gives per document, in order: n of them, value k is metric
 * *metric under filter *filter ("none" without one), as the subtask rows of qt_scores_aggregate. */
int qt_task_n_values(const qt_task *task);
void qt_task_value_name(const qt_task *task, int k, const char **metric, const char **filter);

/* Scores one document's response. values (may be NULL) receives one value per metric row of
 * the subtask (qt_task_value_name names them); n_values says how many. */
qe_status qt_scores_add(qt_scores *scores, int doc_index, const qt_response *response, double *values, int *n_values,
                        qe_error *err);

/* Rows: each subtask's metrics, then groups. *rows is malloc'd. */
qe_status qt_scores_aggregate(const qt_scores *scores, qt_metric_row **rows, int *n_rows, qe_error *err);

/* The rows of qt_scores_aggregate besides the one its sample is stored under (qt_task_sample_key:
 * its subtask, "mmlu_anatomy") that count document doc_index: its category ("mmlu_stem"), then
 * the group ("mmlu"); *n_names of them, none for a task without groups. The names point into
 * the task. A per-document result stored under its subtask can be paired under these too. */
#define QT_MAX_DOC_SUBTASKS 2
qe_status qt_task_doc_subtasks(const qt_task *task, int doc_index, const char *names[QT_MAX_DOC_SUBTASKS],
                               int *n_names, qe_error *err);

/* lm-eval's statistics, exposed for tests. */
double qt_mean_stderr(const double *values, int n);
double qt_pooled_stderr(const double *stderrs, const int *sizes, int n);


/* sha256 of the task's definition file, so a stored score names the definition it used. */
qe_status qt_task_definition_sha256(const qt_task *task, char hex[65]);
/* One sha256 over the digests of every data file the task read (each subtask's test and
 * few-shot files, in load order; not their paths, so moving the data changes nothing), so a
 * stored score names the data it came from and a rescore can tell the data changed. */
qe_status qt_task_data_sha256(const qt_task *task, char hex[65], qe_error *err);
/* True when the task's answers are programs to execute (pass@k metrics). */
bool qt_task_is_code(const qt_task *task);

#endif
