/* Scoring responses and aggregating them as lm-evaluation-harness does: per-document metric
 * values, mean and mean_stderr per subtask, and for groups the size-weighted mean with the
 * pooled standard error over the leaf subtasks. */
#include "task_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct qt_scores {
    const qt_task *task;
    double *values;            /* [n_docs][n_keys], NAN = not scored yet */
    bool *truncated;           /* [n_docs] */
};

qe_status qt_scores_create(const qt_task *task, qt_scores **out, qe_error *err)
{
    *out = NULL;
    qt_scores *s = calloc(1, sizeof *s);
    size_t n = (size_t)task->n_docs * (size_t)task->n_keys;
    if (!s || !(s->values = malloc((n ? n : 1) * sizeof *s->values)) ||
        !(s->truncated = calloc((size_t)task->n_docs + 1, sizeof *s->truncated))) {
        qt_scores_free(s);
        return qe_fail(err, QE_ENOMEM, "out of memory for %d documents' scores", task->n_docs);
    }
    for (size_t i = 0; i < n; i++)
        s->values[i] = NAN;
    s->task = task;
    *out = s;
    return QE_OK;
}

void qt_scores_free(qt_scores *scores)
{
    if (!scores)
        return;
    free(scores->values);
    free(scores->truncated);
    free(scores);
}

double qt_mean_stderr(const double *values, int n)
{
    if (n < 2)
        return NAN;
    double mean = 0, ss = 0;
    for (int i = 0; i < n; i++)
        mean += values[i];
    mean /= n;
    for (int i = 0; i < n; i++)
        ss += (values[i] - mean) * (values[i] - mean);
    return sqrt(ss / (n - 1)) / sqrt((double)n);
}

double qt_pooled_stderr(const double *stderrs, const int *sizes, int n)
{
    double num = 0;
    long total = 0;
    for (int i = 0; i < n; i++) {
        num += (sizes[i] - 1) * stderrs[i] * stderrs[i] * sizes[i];
        total += sizes[i];
    }
    if (total - n <= 0)
        return NAN;
    return sqrt(num / (double)(total - n) / (double)total);
}

static qe_status score_mc(const qt_task *task, const qt_subtask *st, const cJSON *doc, int doc_id, const qt_metric *m,
                          const qt_response *r, double *value, qe_error *err)
{
    const char **choices;
    int n_choices, gold = 0;
    qe_status rc = qt_task_choices(task, st, doc, &choices, &n_choices, err);
    if (rc != QE_OK)
        return rc;
    if (m->kind == QT_METRIC_ACC)
        rc = qt_task_gold(task, st, doc, choices, n_choices, &gold, err);
    free(choices);
    if (rc != QE_OK)
        return rc;
    if (n_choices < 1 || r->n_loglikelihoods != n_choices || !r->loglikelihoods)
        return qe_fail(err, QE_EINVAL, "%s doc %d: %d loglikelihoods for %d choices", st->name, doc_id,
                       r->n_loglikelihoods, n_choices);
    if (m->kind == QT_METRIC_ACC) {
        int best = 0; /* ties: the first maximum, as numpy.argmax */
        for (int i = 1; i < n_choices; i++)
            if (r->loglikelihoods[i] > r->loglikelihoods[best])
                best = i;
        *value = best == gold ? 1.0 : 0.0;
        return QE_OK;
    }
    /* MC2 as lm-eval 0.4.13 scores it (truthfulqa_mc2 version 3.0, utils.process_results_mc2):
     * the probability mass of every answer labelled 1, normalised over all answers. Version 2.0
     * counted only the answers before the first label 0, which differs where a true answer
     * follows a false one (docs 25 and 208 of mc_task.json). Shifting by the maximum only
     * avoids underflow. */
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(doc, task->gold_field);
    bool is_true[n_choices];
    int n_labels = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, labels)
    {
        if (!cJSON_IsNumber(item) || n_labels == n_choices)
            return qe_fail(err, QE_EFORMAT, "%s doc %d: field \"%s\" needs one numeric label per choice (%d)",
                           st->name, doc_id, task->gold_field, n_choices);
        is_true[n_labels++] = item->valuedouble == 1;
    }
    if (n_labels != n_choices)
        return qe_fail(err, QE_EFORMAT, "%s doc %d: field \"%s\" has %d labels for %d choices", st->name, doc_id,
                       task->gold_field, n_labels, n_choices);
    double max = r->loglikelihoods[0];
    for (int k = 1; k < n_choices; k++)
        if (r->loglikelihoods[k] > max)
            max = r->loglikelihoods[k];
    double p_true = 0, p_all = 0;
    for (int k = 0; k < n_choices; k++) {
        double p = exp(r->loglikelihoods[k] - max);
        p_all += p;
        if (is_true[k])
            p_true += p;
    }
    *value = p_true / p_all;
    return QE_OK;
}

static qe_status score_generated(const qt_task *task, const qt_subtask *st, const cJSON *doc, int doc_id,
                                 const qt_metric_key *key, const qt_response *r, double *value, qe_error *err)
{
    const qt_metric *m = &task->metrics[key->metric];
    if (m->kind == QT_METRIC_PASS_AT_1) {
        if (r->exec_result == QT_EXEC_NOT_RUN)
            return qe_fail(err, QE_EINVAL, "%s doc %d: pass@1 needs the sandbox's verdict (exec_result)", st->name, doc_id);
        *value = r->exec_result == QT_EXEC_PASSED ? 1.0 : 0.0;
        return QE_OK;
    }
    if (!r->generated_text)
        return qe_fail(err, QE_EINVAL, "%s doc %d: no generated text", st->name, doc_id);
    char *answer = NULL, *reference = NULL, *a = NULL, *b = NULL;
    qe_status rc = qt_task_filter_text(task, key->filter, r->generated_text, &answer, err);
    if (rc == QE_OK)
        rc = qt_task_render(task, st, doc, task->doc_to_target, &reference, err);
    if (rc == QE_OK)
        rc = qt_exact_match_normalize(answer, m->ignore, m->n_ignore, m->ignore_case, m->ignore_punctuation, &a, err);
    if (rc == QE_OK)
        rc = qt_exact_match_normalize(reference, m->ignore, m->n_ignore, m->ignore_case, m->ignore_punctuation, &b, err);
    if (rc == QE_OK)
        *value = !strcmp(a, b) ? 1.0 : 0.0;
    free(answer);
    free(reference);
    free(a);
    free(b);
    return rc;
}

qe_status qt_scores_add(qt_scores *scores, int doc_index, const qt_response *response, double *values, int *n_values,
                        qe_error *err)
{
    const qt_task *task = scores->task;
    const qt_subtask *st;
    const cJSON *doc;
    int doc_id;
    qe_status rc = qt_task_doc(task, doc_index, &st, &doc, &doc_id, err);
    if (rc != QE_OK)
        return rc;
    /* A failed call leaves an earlier score of the document as it was. */
    double row[task->n_keys];
    for (int k = 0; k < task->n_keys && rc == QE_OK; k++) {
        const qt_metric_key *key = &task->keys[k];
        const qt_metric *m = &task->metrics[key->metric];
        rc = task->type == QT_REQUEST_LOGLIKELIHOOD ? score_mc(task, st, doc, doc_id, m, response, &row[k], err)
                                                    : score_generated(task, st, doc, doc_id, key, response, &row[k], err);
    }
    if (rc != QE_OK)
        return rc;
    memcpy(scores->values + (size_t)doc_index * (size_t)task->n_keys, row, sizeof row);
    scores->truncated[doc_index] = response->was_truncated;
    if (values)
        memcpy(values, row, (size_t)task->n_keys * sizeof *values);
    if (n_values)
        *n_values = task->n_keys;
    return QE_OK;
}

int qt_task_n_values(const qt_task *task) { return task->n_keys; }

void qt_task_value_name(const qt_task *task, int k, const char **metric, const char **filter)
{
    const qt_metric_key *key = &task->keys[k];
    *metric = task->metrics[key->metric].name;
    *filter = key->filter >= 0 ? task->filters[key->filter].name : "none";
}

static void fill_names(const qt_task *task, int key, qt_metric_row *row)
{
    const char *metric, *filter;
    qt_task_value_name(task, key, &metric, &filter);
    snprintf(row->metric, sizeof row->metric, "%s", metric);
    snprintf(row->filter, sizeof row->filter, "%s", filter);
}

/* Size-weighted mean and pooled stderr over the subtask rows in members[]. */
static void group_row(const qt_metric_row *subrows, const int *members, int n_members, qt_metric_row *out)
{
    double sum = 0, stderrs[n_members > 0 ? n_members : 1];
    int sizes[n_members > 0 ? n_members : 1], n_used = 0;
    out->n = 0;
    out->n_truncated = 0;
    for (int i = 0; i < n_members; i++) {
        const qt_metric_row *r = &subrows[members[i]];
        if (r->n == 0)
            continue;
        sum += r->value * r->n;
        out->n += r->n;
        out->n_truncated += r->n_truncated;
        stderrs[n_used] = r->stderr_value;
        sizes[n_used++] = r->n;
    }
    out->value = out->n ? sum / out->n : NAN;
    out->stderr_value = qt_pooled_stderr(stderrs, sizes, n_used);
    out->is_group = true;
}

qe_status qt_scores_aggregate(const qt_scores *scores, qt_metric_row **rows, int *n_rows, qe_error *err)
{
    const qt_task *task = scores->task;
    int n_groups = task->group_name ? task->n_categories + 1 : 0;
    int cap = (task->n_subtasks + n_groups) * task->n_keys;
    qt_metric_row *out = calloc((size_t)(cap ? cap : 1), sizeof *out);
    int *members = malloc((size_t)(task->n_subtasks ? task->n_subtasks : 1) * sizeof *members);
    double *vals = malloc((size_t)(task->n_docs ? task->n_docs : 1) * sizeof *vals);
    if (!out || !members || !vals) {
        free(out);
        free(members);
        free(vals);
        return qe_fail(err, QE_ENOMEM, "out of memory");
    }
    int n = 0;
    for (int s = 0; s < task->n_subtasks; s++) {
        const qt_subtask *st = &task->subtasks[s];
        for (int k = 0; k < task->n_keys; k++) {
            qt_metric_row *row = &out[n++];
            snprintf(row->task, sizeof row->task, "%s", st->name);
            snprintf(row->version, sizeof row->version, "%s", task->version ? task->version : "");
            fill_names(task, k, row);
            int n_vals = 0;
            double sum = 0;
            for (int d = 0; d < st->n_docs; d++) {
                int doc_index = st->first_doc_index + d;
                double v = scores->values[(size_t)doc_index * (size_t)task->n_keys + (size_t)k];
                if (isnan(v))
                    continue;
                vals[n_vals++] = v;
                sum += v;
                row->n_truncated += scores->truncated[doc_index];
            }
            row->n = n_vals;
            row->value = n_vals ? sum / n_vals : NAN;
            row->stderr_value = qt_mean_stderr(vals, n_vals);
        }
    }
    for (int g = 0; g < n_groups; g++) {
        bool whole = g == task->n_categories; /* the last group row is the whole task */
        for (int k = 0; k < task->n_keys; k++) {
            int n_members = 0;
            for (int s = 0; s < task->n_subtasks; s++)
                if (whole || task->subtasks[s].category == g)
                    members[n_members++] = s * task->n_keys + k;
            qt_metric_row *row = &out[n++];
            if (whole)
                snprintf(row->task, sizeof row->task, "%s", task->group_name);
            else
                snprintf(row->task, sizeof row->task, "%s", task->category_names[g]);
            snprintf(row->version, sizeof row->version, "%s", task->group_version ? task->group_version : "");
            fill_names(task, k, row);
            group_row(out, members, n_members, row);
        }
    }
    free(members);
    free(vals);
    *rows = out;
    *n_rows = n;
    return QE_OK;
}

qe_status qt_task_doc_subtasks(const qt_task *task, int doc_index, const char *names[QT_MAX_DOC_SUBTASKS],
                               int *n_names, qe_error *err)
{
    *n_names = 0;
    const qt_subtask *st;
    const cJSON *doc;
    int doc_id;
    qe_status rc = qt_task_doc(task, doc_index, &st, &doc, &doc_id, err);
    if (rc != QE_OK)
        return rc;
    /* the same names, under the same conditions, as qt_scores_aggregate's rows */
    const char *category = task->group_name && st->category >= 0 ? task->category_names[st->category] : NULL;
    const char *rows[] = {category, task->group_name};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (rows[i] && strcmp(rows[i], st->name))
            names[(*n_names)++] = rows[i];
    return QE_OK;
}
