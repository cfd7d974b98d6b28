/* report_load — fills a qr_report from one run of the results store (docs/schema.md).
 *
 * How store rows become the report:
 *  - variants: run_variants, plus perf and fidelity pooled over the variant's tasks: rates as
 *    total tokens over total implied seconds, kl_mean and top-1 agreement weighted by n_items,
 *    kl_p99 the largest of the tasks' (a percentile does not pool; the largest is the cautious
 *    reading).
 *  - scores: task_results; where each goes (headline column or detail row, its label) follows
 *    report_labels.c's rule table; any other task's first metric is a headline column of its own.
 *  - samples: one per metric of each row's outcome_json; the answer is `filtered`; confidence is
 *    the softmax probability of the chosen choice when response_json holds loglikelihoods.
 *    `qeval run` stores an MMLU sample under its subject (doc_id its index in the subject's file)
 *    and names in outcome_json's "subtasks" the category and group it also counts in (files
 *    before schema v4: under `mmlu`, naming subject and category); the sample is added under each
 *    of those too, its doc_id made unique per source task, so that categories and the group are
 *    paired like the subjects. Files written before "subtasks" leave them unpaired.
 *    A group score with no samples of its own (lm-evaluation-harness's `mmlu` over its
 *    subjects) takes those of the tasks named `<group>_*`, with doc_ids made unique per
 *    subject, so that its paired test covers every document.
 *    Within a score each doc_id comes once (pairing joins on it), else the file is refused.
 *  - is_binary: every outcome of the score is 0 or 1; is_unit_range: every outcome lies in [0, 1];
 *    without samples, both by metric name. */
#include "report_load.h"
#include "report_labels.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Without samples, what the metric's name promises: accuracy, exact match and pass@k are shares
 * of 0/1 outcomes; TruthfulQA mc2's "acc" is a probability mass, in [0, 1] but not 0/1. */
static void outcome_kind_by_name(qr_score *s)
{
    s->is_unit_range = !strncmp(s->metric, "acc", 3) || !strncmp(s->metric, "exact_match", 11) ||
                       !strncmp(s->metric, "pass@", 5);
    s->is_binary = s->is_unit_range && !strstr(s->task, "mc2");
}

static void pool_perf_fidelity(qr_variant *v, const qh_perf_row *perf, size_t n_perf, const qh_fidelity_row *fid,
                               size_t n_fid)
{
    double tokens_in = 0, prefill_s = 0, tokens_out = 0, decode_s = 0;
    for (size_t i = 0; i < n_perf; i++) {
        const qh_perf_row *p = &perf[i];
        if (strcmp(p->variant, v->name))
            continue;
        if (p->tokens_in > 0 && p->prefill_tok_s > 0)
            tokens_in += (double)p->tokens_in, prefill_s += (double)p->tokens_in / p->prefill_tok_s;
        if (p->tokens_out > 0 && p->decode_tok_s > 0)
            tokens_out += (double)p->tokens_out, decode_s += (double)p->tokens_out / p->decode_tok_s;
    }
    v->prefill_tok_s = prefill_s > 0 ? tokens_in / prefill_s : NAN;
    v->decode_tok_s = decode_s > 0 ? tokens_out / decode_s : NAN;

    double n_kl = 0, kl = 0, n_top1 = 0, top1 = 0, p99 = NAN;
    for (size_t i = 0; i < n_fid; i++) {
        const qh_fidelity_row *f = &fid[i];
        if (strcmp(f->variant, v->name) || f->n_items <= 0)
            continue;
        if (isfinite(f->kl_mean))
            n_kl += (double)f->n_items, kl += (double)f->n_items * f->kl_mean;
        if (isfinite(f->top1_agreement))
            n_top1 += (double)f->n_items, top1 += (double)f->n_items * f->top1_agreement;
        if (isfinite(f->kl_p99) && !(f->kl_p99 <= p99))
            p99 = f->kl_p99;
    }
    v->kl_mean = n_kl > 0 ? kl / n_kl : NAN;
    v->top1_agreement = n_top1 > 0 ? top1 / n_top1 : NAN;
    v->kl_p99 = p99;
}

static qe_status load_facts(qr_report *r, const qh_run *run, qe_error *err)
{
    qr_run_facts *f = &r->run;
    f->run_id = run->id;
    f->host_cores = run->host_cores;
    f->host_ram_bytes = run->host_ram_bytes;
    f->gpu_memory_bytes = run->gpu_memory_bytes;
    struct { char **field; const char *value; } strings[] = {
        {&f->started_at, run->started_at},     {&f->finished_at, run->finished_at},
        {&f->status, qh_run_status_name(run->status)},
        {&f->model_path, run->model_path},     {&f->model_sha256, run->model_sha256},
        {&f->qeval_version, run->qeval_version}, {&f->git_commit, run->git_commit},
        {&f->command_line, run->command_line}, {&f->host_cpu, run->host_cpu},
        {&f->gpu_name, run->gpu_name},         {&f->gpu_driver, run->gpu_driver},
        {&f->options_json, run->options_json}, {&f->sandbox_json, run->sandbox_json},
        {&f->tasks_json, run->tasks_json},
    };
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
        if (qr_set_string(strings[i].field, strings[i].value, err) != QE_OK)
            return QE_ENOMEM;
    return QE_OK;
}

/* The i-th choice's loglikelihood in either stored form: {"ll": [ll, ...], ...} (what `qeval
 * run` writes) or [[ll, is_greedy], ...] (docs/schema.md's description); NULL when absent. */
static const cJSON *choice_ll(const cJSON *response, int i)
{
    const cJSON *ll = cJSON_GetObjectItemCaseSensitive(response, "ll");
    if (cJSON_IsArray(ll))
        return cJSON_GetArrayItem(ll, i);
    const cJSON *pair = cJSON_IsArray(response) ? cJSON_GetArrayItem(response, i) : NULL;
    return cJSON_IsArray(pair) ? cJSON_GetArrayItem(pair, 0) : NULL;
}

/* Softmax probability of the most likely choice; NAN unless there are two or more numbers. */
static double choice_confidence(const cJSON *response)
{
    const cJSON *ll = cJSON_GetObjectItemCaseSensitive(response, "ll");
    int n = cJSON_GetArraySize(cJSON_IsArray(ll) ? ll : response);
    if (n < 2)
        return NAN;
    double max_ll = -INFINITY, sum = 0;
    for (int i = 0; i < n; i++) {
        const cJSON *x = choice_ll(response, i);
        if (!cJSON_IsNumber(x))
            return NAN;
        max_ll = fmax(max_ll, x->valuedouble);
    }
    for (int i = 0; i < n; i++)
        sum += exp(choice_ll(response, i)->valuedouble - max_ll);
    return 1 / sum;
}

/* The walk's own error: the store reports a stopped walk as interrupted, over err. */
typedef struct {
    qr_report *report;
    const char *path;
    qe_error *err;
    qe_status status;
} sample_ctx;

/* The names of a "subtasks" member: absent (NULL, fine) or an array of strings; anything else is
 * a malformed file. */
static qe_status subtask_names(const sample_ctx *ctx, const qh_sample_row *row, const cJSON *outcome,
                               const cJSON **names)
{
    *names = cJSON_GetObjectItemCaseSensitive(outcome, "subtasks");
    bool is_valid = !*names || cJSON_IsArray(*names);
    const cJSON *array = is_valid ? *names : NULL, *name;
    cJSON_ArrayForEach(name, array)
        is_valid = is_valid && cJSON_IsString(name);
    if (is_valid)
        return QE_OK;
    return qe_fail(ctx->err, QE_EFORMAT,
                   "%s: run %lld: sample %s/%s doc %lld: outcome_json's \"subtasks\" is not an array of task names",
                   ctx->path, (long long)row->run_id, row->variant, row->task, (long long)row->doc_id);
}

/* Whether `name` (an item of names) is the row's own task or came earlier: counted once. */
static bool is_named_before(const cJSON *names, const cJSON *name, const char *own_task)
{
    if (!strcmp(name->valuestring, own_task))
        return true;
    for (const cJSON *earlier = names->child; earlier != name; earlier = earlier->next)
        if (!strcmp(earlier->valuestring, name->valuestring))
            return true;
    return false;
}

/* doc_ids of different subjects share one range; the subject's name goes in the high bits. */
static int64_t group_doc_id(const char *task, int64_t doc_id)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *p = task; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return (int64_t)(h & 0x7fffffffu) << 32 | (doc_id & 0xffffffff);
}

/* One sample per metric of the row's outcome, under the row's task and under every task its
 * "subtasks" member names (the same document counts in the subject's and the category's score);
 * names and metrics without a score are skipped. */
static int add_row_samples(const qh_sample_row *row, void *vctx)
{
    sample_ctx *ctx = vctx;
    cJSON *outcome = row->outcome_json ? cJSON_Parse(row->outcome_json) : NULL;
    if (!cJSON_IsObject(outcome)) {
        cJSON_Delete(outcome);
        ctx->status = qe_fail(ctx->err, QE_EFORMAT, "%s: run %lld: sample %s/%s doc %lld: outcome_json is not a JSON object",
                              ctx->path, (long long)row->run_id, row->variant, row->task, (long long)row->doc_id);
        return 1;
    }
    const cJSON *subtasks;
    if ((ctx->status = subtask_names(ctx, row, outcome, &subtasks)) != QE_OK) {
        cJSON_Delete(outcome);
        return 1;
    }
    cJSON *response = row->response_json ? cJSON_Parse(row->response_json) : NULL;
    double confidence = choice_confidence(response);
    cJSON_Delete(response);
    const cJSON *m;
    cJSON_ArrayForEach(m, outcome)
    {
        if (!cJSON_IsNumber(m) && !cJSON_IsBool(m))
            continue;
        qr_sample s = {(char *)row->variant, (char *)row->task, m->string, row->doc_id,
                       cJSON_IsBool(m) ? (cJSON_IsTrue(m) ? 1.0 : 0.0) : m->valuedouble, (char *)row->question,
                       (char *)row->filtered, confidence, NULL, -1};
        if (qr_report_find_score(ctx->report, row->variant, row->task, m->string) &&
            (ctx->status = qr_report_add_sample(ctx->report, &s, ctx->err)) != QE_OK)
            break;
        const cJSON *name;
        cJSON_ArrayForEach(name, subtasks)
        {
            if (is_named_before(subtasks, name, row->task) ||
                !qr_report_find_score(ctx->report, row->variant, name->valuestring, m->string))
                continue;
            s.task = name->valuestring;
            s.source_task = (char *)row->task, s.source_doc_id = row->doc_id;
            s.doc_id = group_doc_id(row->task, row->doc_id); /* subjects number their documents each from 0 */
            if ((ctx->status = qr_report_add_sample(ctx->report, &s, ctx->err)) != QE_OK)
                break;
        }
        if (ctx->status != QE_OK)
            break;
    }
    cJSON_Delete(outcome);
    return ctx->status != QE_OK;
}

static qe_status gather_group_samples(qr_report *r, qe_error *err)
{
    size_t n_scores = r->n_scores;
    for (size_t k = 0; k < n_scores; k++) {
        qr_score *g = &r->scores[k];
        size_t n_own;
        qr_report_samples(r, g->variant, g->task, g->metric, &n_own);
        if (n_own)
            continue;
        size_t prefix_len = strlen(g->task), n_before = r->n_samples;
        for (size_t i = 0; i < n_before; i++) {
            qr_sample s = r->samples[i]; /* a copy: adding may move the array */
            if (strcmp(s.variant, g->variant) || strcmp(s.metric, g->metric) || strncmp(s.task, g->task, prefix_len) ||
                s.task[prefix_len] != '_')
                continue;
            s.source_task = s.task, s.source_doc_id = s.doc_id;
            s.doc_id = group_doc_id(s.task, s.doc_id);
            s.task = g->task;
            qe_status rc = qr_report_add_sample(r, &s, err);
            if (rc != QE_OK)
                return rc;
            g = &r->scores[k];
        }
    }
    return QE_OK;
}

/* Pairing joins two variants' samples of a score on doc_id, so each doc_id may come once per
 * score. Twice means a malformed file: an outcome naming a metric twice. A "subtasks" member
 * naming a task that also stores samples of its own would count documents twice: refused too. */
static qe_status check_unique_doc_ids(qr_report *r, const char *path, qe_error *err)
{
    for (size_t k = 0; k < r->n_scores; k++) {
        const qr_score *g = &r->scores[k];
        size_t n;
        const qr_sample *x = qr_report_samples(r, g->variant, g->task, g->metric, &n);
        const qr_sample *own = NULL, *imported = NULL; /* both: each document would count twice */
        for (size_t i = 0; i < n; i++)
            *(x[i].source_task ? &imported : &own) = &x[i];
        if (own && imported)
            return qe_fail(err, QE_EFORMAT, "%s: run %lld: %s/%s %s has outcomes of its own and from samples of %s "
                           "(doc %lld)", path, (long long)r->run.run_id, g->variant, g->task, g->metric,
                           imported->source_task, (long long)imported->source_doc_id);
        for (size_t i = 1; i < n; i++) {
            if (x[i].doc_id != x[i - 1].doc_id)
                continue;
            const char *first = x[i - 1].source_task ? x[i - 1].source_task : g->task;
            const char *second = x[i].source_task ? x[i].source_task : g->task;
            return qe_fail(err, QE_EFORMAT,
                           "%s: run %lld: %s/%s %s has two outcomes for doc %lld (from samples of %s and %s)", path,
                           (long long)r->run.run_id, g->variant, g->task, g->metric, (long long)x[i].doc_id, first,
                           second);
        }
    }
    return QE_OK;
}

static void mark_outcome_kinds(qr_report *r)
{
    for (size_t k = 0; k < r->n_scores; k++) {
        qr_score *s = &r->scores[k];
        size_t n;
        const qr_sample *x = qr_report_samples(r, s->variant, s->task, s->metric, &n);
        if (!n) {
            outcome_kind_by_name(s);
            continue;
        }
        s->is_binary = s->is_unit_range = true;
        for (size_t i = 0; i < n; i++) {
            s->is_binary = s->is_binary && (x[i].value == 0 || x[i].value == 1);
            s->is_unit_range = s->is_unit_range && x[i].value >= 0 && x[i].value <= 1;
        }
    }
}

qe_status qr_report_load(qh_store *store, int64_t run_id, qr_report **out, qe_error *err)
{
    *out = NULL;
    qr_report *r = NULL;
    qh_run run = {0};
    qh_variant_row *vrows = NULL;
    qh_task_result_row *trows = NULL;
    qh_perf_row *prows = NULL;
    qh_fidelity_row *frows = NULL;
    size_t n_v = 0, n_t = 0, n_p = 0, n_f = 0;
    qe_status rc = qr_report_create(&r, err);
    if (rc == QE_OK)
        rc = qh_store_get_run(store, run_id, &run, err);
    if (rc == QE_OK)
        rc = load_facts(r, &run, err);
    if (rc == QE_OK)
        rc = qh_store_get_variants(store, run_id, &vrows, &n_v, err);
    if (rc == QE_OK)
        rc = qh_store_get_task_results(store, run_id, &trows, &n_t, err);
    if (rc == QE_OK)
        rc = qh_store_get_perf(store, run_id, &prows, &n_p, err);
    if (rc == QE_OK)
        rc = qh_store_get_fidelity(store, run_id, &frows, &n_f, err);

    for (size_t i = 0; i < n_v && rc == QE_OK; i++) {
        const qh_variant_row *row = &vrows[i];
        qr_variant v = {.name = (char *)row->variant, .footprint_bytes = row->footprint_bytes,
                        .hf_footprint_bytes = row->hf_footprint_bytes, .estimate_bytes = row->estimate_bytes,
                        .peak_rss_bytes = row->peak_rss_bytes, .peak_device_bytes = row->peak_device_bytes,
                        .device_weights_bytes = row->device_weights_bytes,
                        .device_used_peak_bytes = row->device_used_peak_bytes,
                        .predicted_context = row->predicted_context, .predicted_peak_bytes = row->predicted_peak_bytes,
                        .predicted_weights_bytes = row->predicted_weights_bytes,
                        .predicted_kv_cache_bytes = row->predicted_kv_cache_bytes,
                        .predicted_activation_bytes = row->predicted_activation_bytes};
        pool_perf_fidelity(&v, prows, n_p, frows, n_f);
        rc = qr_report_add_variant(r, &v, NULL, err);
    }
    if (rc == QE_OK && n_v && !qr_report_find_variant(r, "fp32"))
        rc = qr_set_string(&r->reference_variant, r->variants[0].name, err);
    /* Scores in the rule table's order (MMLU, GSM8K, TruthfulQA, HumanEval), then the rest. */
    size_t n_rules = qr_n_placement_rules();
    for (size_t rank = 0; rank <= n_rules && rc == QE_OK; rank++) {
        for (size_t i = 0; i < n_t && rc == QE_OK; i++) {
            const qh_task_result_row *row = &trows[i];
            if (qr_placement_rank(row->task, row->metric) != rank)
                continue;
            /* a task already placed under this variant keeps its first metric as the headline */
            bool is_task_placed = false;
            for (size_t j = 0; j < i && !is_task_placed; j++)
                is_task_placed = !strcmp(trows[j].variant, row->variant) && !strcmp(trows[j].task, row->task);
            char label[256];
            qr_score s = {(char *)row->variant, (char *)row->task, (char *)row->metric, NULL, NULL, QR_HEADLINE,
                          row->value, row->std_error, row->n, false, false};
            qr_place_score(&s, is_task_placed, row->num_fewshot, label, sizeof label);
            rc = qr_report_add_score(r, &s, err);
        }
    }
    if (rc == QE_OK) {
        qe_error walk_err = {0};
        sample_ctx ctx = {r, qh_store_path(store), &walk_err, QE_OK};
        rc = qh_store_each_sample(store, run_id, NULL, NULL, add_row_samples, &ctx, err);
        if (ctx.status != QE_OK) {
            *err = walk_err;
            rc = ctx.status;
        }
    }
    if (rc == QE_OK)
        rc = check_unique_doc_ids(r, qh_store_path(store), err);
    if (rc == QE_OK)
        rc = gather_group_samples(r, err);
    if (rc == QE_OK)
        mark_outcome_kinds(r);

    qh_run_free(&run);
    qh_variant_rows_free(vrows, n_v);
    qh_task_result_rows_free(trows, n_t);
    qh_perf_rows_free(prows, n_p);
    qh_fidelity_rows_free(frows, n_f);
    if (rc != QE_OK) {
        qr_report_free(r);
        return rc;
    }
    *out = r;
    return QE_OK;
}

qe_status qr_latest_run_id(qh_store *store, int64_t *run_id, qe_error *err)
{
    qh_run *runs = NULL;
    size_t n = 0;
    qe_status rc = qh_store_list_runs(store, &runs, &n, err);
    if (rc != QE_OK)
        return rc;
    /* the newest complete run, else the newest of any status */
    int64_t id = n ? runs[n - 1].id : -1;
    for (size_t i = n; i-- > 0;)
        if (runs[i].status == QH_RUN_COMPLETE) {
            id = runs[i].id;
            break;
        }
    qh_runs_free(runs, n);
    if (id < 0)
        return qe_fail(err, QE_EINVAL, "%s: holds no run", qh_store_path(store));
    *run_id = id;
    return QE_OK;
}

static bool parse_run_id(const char *s, int64_t *id)
{
    char *end;
    if (!s || !*s || *s < '0' || *s > '9')
        return false;
    long long v = strtoll(s, &end, 10);
    if (*end || v < 0)
        return false;
    *id = v;
    return true;
}

qe_status qr_report_open(const char *db_path, const char *spec, qr_report **out, qe_error *err)
{
    *out = NULL;
    int64_t run_id = -1;
    char *path = NULL;
    const char *colon = spec ? strrchr(spec, ':') : NULL;
    if (spec && parse_run_id(spec, &run_id)) {
        /* a run of db_path */
    } else if (colon && parse_run_id(colon + 1, &run_id)) {
        if (!(path = strndup(spec, (size_t)(colon - spec))))
            return qe_fail(err, QE_ENOMEM, "report: out of memory");
        db_path = path;
    } else if (spec) {
        db_path = spec;
    }
    qh_store_options opts = {.is_read_only = true};
    qh_store *store = NULL;
    qe_status rc = qh_store_open(db_path, &opts, &store, err);
    if (rc == QE_OK && run_id < 0)
        rc = qr_latest_run_id(store, &run_id, err);
    if (rc == QE_OK)
        rc = qr_report_load(store, run_id, out, err);
    qh_store_close(store);
    free(path);
    return rc;
}
