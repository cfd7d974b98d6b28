#include "run_score.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"

/* The stored name of a value: "acc", or "exact_match,strict-match" as lm-evaluation-harness
 * names a metric under a filter. */
static void key_name(const char *metric, const char *filter, char *name, size_t size)
{
    if (!filter || !strcmp(filter, "none"))
        snprintf(name, size, "%s", metric);
    else
        snprintf(name, size, "%s,%s", metric, filter);
}

qe_status qh_sample_outcome(const qt_task *task, qt_scores *scores, int doc_index, const qh_doc_record *record,
                            char **filtered, char **outcome_json, qe_error *err)
{
    *filtered = *outcome_json = NULL;
    qt_response response = qh_doc_record_response(record);
    double values[64];
    int n_values = 0;
    if (qt_task_n_values(task) > 64)
        return qe_fail(err, QE_EUNSUPPORTED, "%s: more than 64 metric values per document", qt_task_name(task));
    qe_status rc = qt_scores_add(scores, doc_index, &response, values, &n_values, err);
    if (rc != QE_OK)
        return rc;
    cJSON *outcome = cJSON_CreateObject();
    for (int k = 0; k < n_values; k++) {
        char name[80];
        const char *metric, *filter;
        qt_task_value_name(task, k, &metric, &filter);
        key_name(metric, filter, name, sizeof name);
        if (isnan(values[k]))
            cJSON_AddNullToObject(outcome, name);
        else
            cJSON_AddNumberToObject(outcome, name, values[k]);
    }
    /* The document also counts in its subtask's and category's scores; naming them lets a report
     * pair those scores between variants over the same documents, as it pairs the task's own. */
    const char *subtasks[QT_MAX_DOC_SUBTASKS];
    int n_subtasks = 0;
    if ((rc = qt_task_doc_subtasks(task, doc_index, subtasks, &n_subtasks, err)) != QE_OK) {
        cJSON_Delete(outcome);
        return rc;
    }
    if (n_subtasks > 0)
        cJSON_AddItemToObject(outcome, "subtasks", cJSON_CreateStringArray(subtasks, n_subtasks));
    *outcome_json = cJSON_PrintUnformatted(outcome);
    cJSON_Delete(outcome);
    if (record->type == QT_REQUEST_LOGLIKELIHOOD) {
        int best = 0;
        for (int i = 1; i < record->n_choices; i++)
            if (record->loglikelihoods[i] > record->loglikelihoods[best])
                best = i;
        char text[16];
        snprintf(text, sizeof text, "%d", best);
        *filtered = strdup(text);
    } else if (qt_task_n_filters(task) > 0) {
        rc = qt_task_filter_text(task, 0, record->text ? record->text : "", filtered, err);
    } else {
        *filtered = strdup(record->text ? record->text : "");
    }
    if (rc == QE_OK && (!*outcome_json || !*filtered))
        rc = qe_fail(err, QE_ENOMEM, "out of memory");
    return rc;
}

typedef struct {
    const qt_task *task;
    qt_scores *scores;
    qt_request_type type;
    qe_error *err;
    qe_status rc;
} score_walk;

static int add_stored_sample(const qh_sample_row *row, void *ctx)
{
    score_walk *walk = ctx;
    qh_doc_record record;
    int doc_index;
    if (!qt_task_find_sample_doc(walk->task, row->task, row->doc_id, &doc_index))
        return 0; /* another task's sample */
    walk->rc = qh_doc_record_from_json(row->response_json, walk->type, &record, walk->err);
    if (walk->rc != QE_OK)
        return 1;
    qt_response response = qh_doc_record_response(&record);
    walk->rc = qt_scores_add(walk->scores, doc_index, &response, NULL, NULL, walk->err);
    qh_doc_record_clear(&record);
    return walk->rc != QE_OK;
}

typedef struct {
    const qt_task *task;
    int64_t *doc_indices;
    size_t n, cap;
    bool has_pre_v4_keys;      /* a sample under the task's own name that no document has */
} done_walk;

static int add_done_doc(const qh_sample_row *row, void *ctx)
{
    done_walk *walk = ctx;
    int doc_index;
    if (!qt_task_find_sample_doc(walk->task, row->task, row->doc_id, &doc_index)) {
        walk->has_pre_v4_keys = !strcmp(row->task, qt_task_name(walk->task));
        return walk->has_pre_v4_keys;
    }
    if (walk->n == walk->cap) {
        size_t cap = walk->cap ? walk->cap * 2 : 256;
        int64_t *grown = realloc(walk->doc_indices, cap * sizeof *grown);
        if (!grown)
            return 1;
        walk->doc_indices = grown, walk->cap = cap;
    }
    walk->doc_indices[walk->n++] = doc_index;
    return 0;
}

static int compare_int64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

qe_status qh_done_doc_indices(qh_store *store, int64_t run_id, const char *variant, const qt_task *task,
                              int64_t **doc_indices, size_t *n, qe_error *err)
{
    done_walk walk = {task, NULL, 0, 0, false};
    qe_status rc = qh_store_each_sample(store, run_id, variant, NULL, add_done_doc, &walk, err);
    if (rc == QE_EINTERRUPTED && walk.has_pre_v4_keys)
        rc = qe_fail(err, QE_EFORMAT, "run %lld: %s/%s samples are keyed as before schema v4; run `qeval rescore "
                     "--run %lld` first, then resume", (long long)run_id, variant, qt_task_name(task), (long long)run_id);
    else if (rc == QE_EINTERRUPTED)
        rc = qe_fail(err, QE_ENOMEM, "out of memory listing the stored documents of %s", qt_task_name(task));
    if (rc == QE_OK && walk.n > 0) /* qsort's base may not be NULL, even for zero items */
        qsort(walk.doc_indices, walk.n, sizeof *walk.doc_indices, compare_int64);
    else
        free(walk.doc_indices), walk.doc_indices = NULL, walk.n = 0;
    *doc_indices = walk.doc_indices;
    *n = walk.n;
    return rc;
}

qe_status qh_task_samples(qh_store *store, int64_t run_id, const char *variant, const qt_task *task,
                          qh_sample_row **rows, size_t *n_rows, size_t *n_mine, qe_error *err)
{
    *n_mine = 0;
    qe_status rc = qh_store_get_samples(store, run_id, variant, NULL, rows, n_rows, err);
    for (size_t i = 0; rc == QE_OK && i < *n_rows; i++) {
        int doc_index;
        if (!qt_task_find_sample_doc(task, (*rows)[i].task, (*rows)[i].doc_id, &doc_index))
            continue;
        qh_sample_row mine = (*rows)[i]; /* a swap keeps the kept rows in order */
        (*rows)[i] = (*rows)[*n_mine];
        (*rows)[(*n_mine)++] = mine;
    }
    return rc;
}

/* The KL figures already stored for (variant, task): KL needs the logits, which only a run has,
 * so a rescore (or a resumed run that measured nothing new) keeps them. NAN when none. */
static qe_status stored_kl(qh_store *store, int64_t run_id, const char *variant, const char *task_name,
                           double *kl_mean, double *kl_p99, qe_error *err)
{
    qh_fidelity_row *rows = NULL;
    size_t n = 0;
    qe_status rc = qh_store_get_fidelity(store, run_id, &rows, &n, err);
    for (size_t i = 0; rc == QE_OK && i < n; i++)
        if (!strcmp(rows[i].variant, variant) && !strcmp(rows[i].task, task_name))
            *kl_mean = rows[i].kl_mean, *kl_p99 = rows[i].kl_p99;
    qh_fidelity_rows_free(rows, n);
    return rc;
}

/* Agreement of a variant's stored samples with fp32's on the same documents. */
static qe_status fidelity(qh_store *store, int64_t run_id, const char *variant, const qt_task *task,
                          qt_request_type type, const double *kl, int n_kl, qe_error *err)
{
    const char *task_name = qt_task_name(task);
    qh_sample_row *ref = NULL, *var = NULL;
    size_t n_ref_rows = 0, n_var_rows = 0, n_ref = 0, n_var = 0;
    qe_status rc = qh_task_samples(store, run_id, "fp32", task, &ref, &n_ref_rows, &n_ref, err);
    if (rc == QE_OK)
        rc = qh_task_samples(store, run_id, variant, task, &var, &n_var_rows, &n_var, err);
    if (rc != QE_OK || n_ref == 0 || n_var == 0) {
        qh_sample_rows_free(ref, n_ref_rows);
        qh_sample_rows_free(var, n_var_rows);
        return rc;
    }
    size_t i = 0, j = 0, n_items = 0, n_changed = 0, n_positions = 0, n_same_top1 = 0;
    double *delta_p = NULL;
    size_t n_delta = 0, cap_delta = 0;
    while (i < n_ref && j < n_var && rc == QE_OK) {
        int order = strcmp(ref[i].task, var[j].task);
        if (!order)
            order = (ref[i].doc_id > var[j].doc_id) - (ref[i].doc_id < var[j].doc_id);
        if (order < 0) { i++; continue; }
        if (order > 0) { j++; continue; }
        n_items++;
        n_changed += strcmp(ref[i].filtered ? ref[i].filtered : "", var[j].filtered ? var[j].filtered : "") != 0;
        qh_doc_record a, b;
        if (type == QT_REQUEST_LOGLIKELIHOOD && qh_doc_record_from_json(ref[i].response_json, type, &a, NULL) == QE_OK) {
            if (qh_doc_record_from_json(var[j].response_json, type, &b, NULL) == QE_OK) {
                for (int k = 0; k < a.n_positions && k < b.n_positions; k++) {
                    n_positions++;
                    n_same_top1 += a.argmax[k] == b.argmax[k];
                    if (n_delta == cap_delta) {
                        cap_delta = cap_delta ? cap_delta * 2 : 256;
                        double *grown = realloc(delta_p, cap_delta * sizeof *grown);
                        if (!grown) { rc = qe_fail(err, QE_ENOMEM, "out of memory"); break; }
                        delta_p = grown;
                    }
                    delta_p[n_delta++] = b.p_target[k] - a.p_target[k];
                }
                qh_doc_record_clear(&b);
            }
            qh_doc_record_clear(&a);
        }
        i++;
        j++;
    }
    double kl_mean = NAN, kl_p99 = NAN;
    double q99 = 99;
    if (n_kl > 0) {
        kl_mean = qr_mean_stderr(kl, (size_t)n_kl).mean;
        qr_percentiles(kl, (size_t)n_kl, &q99, 1, &kl_p99, NULL);
    } else if (rc == QE_OK) {
        rc = stored_kl(store, run_id, variant, task_name, &kl_mean, &kl_p99, err);
    }
    qh_fidelity_row row = {
        .run_id = run_id, .variant = variant, .task = task_name, .reference_variant = "fp32",
        .n_items = (int64_t)n_items,
        .kl_mean = kl_mean, .kl_p99 = kl_p99,
        .top1_agreement = n_positions ? (double)n_same_top1 / n_positions : NAN,
        .rms_delta_p = n_delta ? qr_rms(delta_p, n_delta) : NAN,
        .answer_changed_share = n_items ? (double)n_changed / n_items : NAN,
    };
    if (rc == QE_OK && n_items > 0)
        rc = qh_store_put_fidelity(store, &row, 1, err);
    free(delta_p);
    qh_sample_rows_free(ref, n_ref_rows);
    qh_sample_rows_free(var, n_var_rows);
    return rc;
}

qe_status qh_score_task(qh_store *store, int64_t run_id, const char *variant, const qt_task *task, const double *kl,
                        int n_kl, qe_error *err)
{
    qt_scores *scores = NULL;
    qe_status rc = qt_scores_create(task, &scores, err);
    if (rc != QE_OK)
        return rc;
    score_walk walk = {task, scores, qt_task_request_type(task), err, QE_OK};
    rc = qh_store_each_sample(store, run_id, variant, NULL, add_stored_sample, &walk, err);
    if (walk.rc != QE_OK)
        rc = walk.rc;
    qt_metric_row *rows = NULL;
    int n_rows = 0;
    if (rc == QE_OK)
        rc = qt_scores_aggregate(scores, &rows, &n_rows, err);
    qh_task_result_row *out = rc == QE_OK ? calloc((size_t)n_rows + 1, sizeof *out) : NULL;
    char (*names)[80] = rc == QE_OK ? calloc((size_t)n_rows + 1, sizeof *names) : NULL;
    if (rc == QE_OK && (!out || !names))
        rc = qe_fail(err, QE_ENOMEM, "out of memory");
    int n_out = 0;
    for (int r = 0; rc == QE_OK && r < n_rows; r++) {
        if (rows[r].n == 0)
            continue;
        key_name(rows[r].metric, rows[r].filter, names[n_out], sizeof names[n_out]);
        out[n_out] = (qh_task_result_row){
            .run_id = run_id, .variant = variant, .task = rows[r].task, .metric = names[n_out],
            .value = rows[r].value, .std_error = rows[r].stderr_value, .n = rows[r].n,
            .n_truncated = rows[r].n_truncated, .is_higher_better = 1,
            .task_version = rows[r].version[0] ? rows[r].version : NULL, .num_fewshot = qt_task_num_fewshot(task),
        };
        n_out++;
    }
    if (rc == QE_OK && n_out > 0)
        rc = qh_store_put_task_results(store, out, (size_t)n_out, err);
    if (rc == QE_OK && strcmp(variant, "fp32"))
        rc = fidelity(store, run_id, variant, task, walk.type, kl, n_kl, err);
    free(out);
    free(names);
    free(rows);
    qt_scores_free(scores);
    return rc;
}
