/* task_internal — the parsed task definition shared by task.c (loading, requests) and
 * score.c (scoring, aggregation). Not for use outside tasks/. */
#ifndef QT_TASK_INTERNAL_H
#define QT_TASK_INTERNAL_H

#include <cjson/cJSON.h>

#include "qd_table.h"
#include "qt_pyrandom.h"
#include "qt_regex.h"
#include "task.h"

typedef enum { QT_CHOICES_LIST, QT_CHOICES_KEYS_OF } qt_choices_kind;
typedef enum { QT_GOLD_NONE, QT_GOLD_FIELD, QT_GOLD_INDEX, QT_GOLD_LABELS_OF } qt_gold_kind;
typedef enum { QT_METRIC_ACC, QT_METRIC_ACC_MC2, QT_METRIC_EXACT_MATCH, QT_METRIC_PASS_AT_1 } qt_metric_kind;

typedef struct {
    char name[32];
    qt_regex *regex;           /* NULL: the text passes through unchanged */
    int group_select;          /* Python index into re.findall's result */
    char *fallback;
} qt_filter;

typedef struct {
    qt_metric_kind kind;
    char name[32];             /* as reported: acc, exact_match, pass@1 */
    bool ignore_case, ignore_punctuation;
    qt_regex **ignore;         /* [n_ignore] regexes_to_ignore */
    int n_ignore;
} qt_metric;

typedef struct {
    int metric;                /* index into metrics */
    int filter;                /* index into filters, -1 = "none" */
} qt_metric_key;

typedef struct {
    char *name;                /* "mmlu_anatomy"; the task name without subsets */
    char *subset;              /* "anatomy"; NULL without subsets */
    char *test_path, *fewshot_path;
    qd_table test, fewshot;    /* fewshot unused when num_fewshot == 0 or same split */
    cJSON **docs;              /* [n_docs] eval documents after the limit */
    int n_docs;
    cJSON **shots;             /* [n_shots] few-shot pool in file order */
    int n_shots;
    qt_pyrandom rng;           /* the random sampler's state, shared by the subtask's docs */
    int next_doc;              /* the doc whose draw comes next from rng */
    int category;              /* index into categories, -1 none */
    int first_doc_index;       /* this subtask's first doc in the task's numbering */
} qt_subtask;

struct qt_task {
    char *path;
    char *name;
    char *subset_variable;     /* "subject"; NULL without subsets */
    qt_subtask *subtasks;
    int n_subtasks;
    int n_docs;
    char *version;             /* the rule's version, as lm-eval's metadata.version; NULL: none */
    char *group_name;          /* NULL: no group rows */
    char *group_version;       /* the group and category rows' version; NULL: none */
    char **category_names;     /* [n_categories] */
    int n_categories;

    char *description, *doc_to_text, *doc_to_target;
    char *doc_to_question;     /* the question as reports show it; NULL: doc_to_text */
    int num_fewshot;
    bool sampler_first_n;
    bool fewshot_same_split;
    uint64_t seed;
    char *fewshot_delimiter, *target_delimiter;

    qt_request_type type;
    qt_choices_kind choices_kind;
    char **choice_list;        /* [n_choice_list] QT_CHOICES_LIST */
    int n_choice_list;
    char *choices_field;       /* QT_CHOICES_KEYS_OF */
    qt_gold_kind gold_kind;
    char *gold_field;          /* QT_GOLD_FIELD / QT_GOLD_LABELS_OF */
    int gold_index;            /* QT_GOLD_INDEX */

    char **stops;              /* [n_stops] */
    int n_stops;
    int max_gen_toks;

    qt_filter *filters;
    int n_filters;
    qt_metric *metrics;
    int n_metrics;
    qt_metric_key *keys;       /* [n_keys] metric x filter rows reported per subtask */
    int n_keys;

    int n_bad_rows;
    char first_bad[512];
};

/* Locates a document: its subtask and its record. */
qe_status qt_task_doc(const qt_task *task, int doc_index, const qt_subtask **subtask, const cJSON **doc, int *doc_id,
                      qe_error *err);
/* Choices of a doc (pointers into the task or the record), *n_choices of them; *choices malloc'd. */
qe_status qt_task_choices(const qt_task *task, const qt_subtask *subtask, const cJSON *doc, const char ***choices,
                          int *n_choices, qe_error *err);
/* Index of the right choice among choices[n_choices] (gold field, fixed index, or the first
 * choice labelled 1). */
qe_status qt_task_gold(const qt_task *task, const qt_subtask *subtask, const cJSON *doc, const char *const *choices,
                       int n_choices, int *out, qe_error *err);
/* Renders a template over a doc (record fields + the subset variable). */
qe_status qt_task_render(const qt_task *task, const qt_subtask *subtask, const cJSON *doc, const char *tmpl, char **out,
                         qe_error *err);

#endif
