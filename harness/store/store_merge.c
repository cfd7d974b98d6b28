/* store_merge — combines the files of a sharded run (`qeval merge A.db B.db -o ALL.db`).
 * Samples are the truth and are copied whole; the aggregate rows are pooled with formulas that
 * are exact for means over documents, and what cannot be pooled exactly (percentiles) is left
 * unknown (NULL) rather than guessed. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "store_private.h"

typedef struct {
    qh_store *db;
    qh_run run;
    qh_variant_row *variants;
    qh_task_result_row *results;
    qh_fidelity_row *fidelity;
    qh_perf_row *perf;
    size_t n_variants, n_results, n_fidelity, n_perf;
} shard;

static bool same_text(const char *a, const char *b) { return a == b || (a && b && !strcmp(a, b)); }

static bool same_key(const char *v1, const char *t1, const char *m1, const char *v2, const char *t2, const char *m2)
{
    return same_text(v1, v2) && same_text(t1, t2) && same_text(m1, m2);
}

static double max_known(double a, double b) { return isnan(a) ? b : isnan(b) ? a : fmax(a, b); }
static int64_t max_known_int(int64_t a, int64_t b) { return a < 0 ? b : b < 0 ? a : (a > b ? a : b); }
static int64_t first_known_int(int64_t a, int64_t b) { return a >= 0 ? a : b; }
static int64_t min_known_int(int64_t a, int64_t b) { return a < 0 ? b : b < 0 ? a : (a < b ? a : b); }
static int64_t sum_known_int(int64_t a, int64_t b) { return a < 0 || b < 0 ? -1 : a + b; }

/* Appends s as a JSON string literal; returns the new length or cap on overflow. */
static size_t json_string(char *out, size_t len, size_t cap, const char *s)
{
    len += (size_t)snprintf(out + len, len < cap ? cap - len : 0, "\"");
    for (; *s && len < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            len += (size_t)snprintf(out + len, cap - len, "\\%c", c);
        else if (c < 0x20)
            len += (size_t)snprintf(out + len, cap - len, "\\u%04x", c);
        else
            out[len++] = (char)c;
    }
    len += (size_t)snprintf(out + len, len < cap ? cap - len : 0, "\"");
    return len < cap ? len : cap;
}

/* Options that may differ between the shards of one run: which share it ran, and how fast. */
static bool is_per_shard_option(const char *name)
{
    return !strcmp(name, "shard") || !strcmp(name, "threads") || !strcmp(name, "cache");
}

/* The first option (other than the per-shard ones) whose value differs between two runs'
 * options_json, written as "NAME (A vs B)" into what; false when they agree. */
static bool options_differ(const char *json_a, const char *json_b, char *what, size_t what_bytes)
{
    if (same_text(json_a, json_b))
        return false;
    cJSON *a = json_a ? cJSON_Parse(json_a) : NULL, *b = json_b ? cJSON_Parse(json_b) : NULL;
    bool differ = false;
    if (!cJSON_IsObject(a) || !cJSON_IsObject(b)) {
        snprintf(what, what_bytes, "options_json (%.80s vs %.80s)", json_a ? json_a : "NULL", json_b ? json_b : "NULL");
        differ = true;
    }
    for (int pass = 0; pass < 2 && !differ; pass++) { /* keys of a, then the keys only b has */
        const cJSON *item, *keys = pass ? b : a;
        cJSON_ArrayForEach(item, keys) {
            if (is_per_shard_option(item->string))
                continue;
            const cJSON *other = cJSON_GetObjectItemCaseSensitive(pass ? a : b, item->string);
            if (other && (pass || cJSON_Compare(item, other, true)))
                continue;
            const cJSON *in_a = pass ? other : item, *in_b = pass ? item : other;
            char *va = in_a ? cJSON_PrintUnformatted(in_a) : NULL, *vb = in_b ? cJSON_PrintUnformatted(in_b) : NULL;
            snprintf(what, what_bytes, "option %s (%.60s vs %.60s)", item->string, va ? va : "absent",
                     vb ? vb : "absent");
            free(va);
            free(vb);
            differ = true;
            break;
        }
    }
    cJSON_Delete(a);
    cJSON_Delete(b);
    return differ;
}

/* The same model (weights), task data and definitions, options and qeval build. */
static qe_status check_compatible(const shard *a, const char *path_a, const shard *b, const char *path_b,
                                  qe_error *err)
{
    const struct { const char *name, *va, *vb; } fields[] = {
        {"model_sha256", a->run.model_sha256, b->run.model_sha256},
        {"tasks_json", a->run.tasks_json, b->run.tasks_json},
        {"qeval_version", a->run.qeval_version, b->run.qeval_version},
        {"git_commit", a->run.git_commit, b->run.git_commit},
    };
    const char *what[] = {"another model (weights)", "other task data or definitions", "another qeval build",
                          "another qeval build"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (!same_text(fields[i].va, fields[i].vb))
            return qe_fail(err, QE_EINVAL, "%s and %s are not shards of one run: %s differs (%.80s vs %.80s): %s",
                           path_a, path_b, fields[i].name, fields[i].va ? fields[i].va : "NULL",
                           fields[i].vb ? fields[i].vb : "NULL", what[i]);
    char option[200];
    if (options_differ(a->run.options_json, b->run.options_json, option, sizeof option))
        return qe_fail(err, QE_EINVAL, "%s and %s are not shards of one run: %s differs: other run options",
                       path_a, path_b, option);
    return QE_OK;
}

/* Shard i of n as a run's options name it (qeval run --shard); false when they name none. */
static bool run_shard(const qh_run *run, int *index, int *count)
{
    cJSON *options = run->options_json ? cJSON_Parse(run->options_json) : NULL;
    const char *text = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(options, "shard"));
    bool is_named = text && sscanf(text, "%d/%d", index, count) == 2 && *count >= 1 && *index >= 0 && *index < *count;
    cJSON_Delete(options);
    return is_named;
}

/* The shards' "I/N": N the same in every file, each I in one file, none missing. Files whose
 * options name no shard in this form (written before qeval stored it so) are not checked. */
static qe_status check_shard_set(const shard *shards, const char *const *inputs, size_t n, qe_error *err)
{
    int index = 0, count = 0;
    if (!run_shard(&shards[0].run, &index, &count))
        return QE_OK;
    size_t *holder = calloc((size_t)count, sizeof *holder); /* [count] the input holding shard i, + 1 */
    if (!holder)
        return qe_fail(err, QE_ENOMEM, "out of memory checking %d shards", count);
    qe_status st = QE_OK;
    for (size_t i = 0; i < n && st == QE_OK; i++) {
        int of = 0;
        if (!run_shard(&shards[i].run, &index, &of))
            st = qe_fail(err, QE_EINVAL, "%s names no shard I/N in its options, but %s does: not shards of one run",
                         inputs[i], inputs[0]);
        else if (of != count)
            st = qe_fail(err, QE_EINVAL, "%s is shard %d/%d but %s is one of %d: not shards of one run", inputs[i],
                         index, of, inputs[0], count);
        else if (holder[index])
            st = qe_fail(err, QE_EINVAL, "%s and %s are both shard %d/%d", inputs[holder[index] - 1], inputs[i], index,
                         count);
        else
            holder[index] = i + 1;
    }
    for (int s = 0; s < count && st == QE_OK; s++)
        if (!holder[s])
            st = qe_fail(err, QE_EINVAL, "shard %d/%d is missing: merge takes all %d shard files of the run", s, count,
                         count);
    free(holder);
    return st;
}

static qe_status load_shard(const char *path, shard *sh, qe_error *err)
{
    qh_store_options ro = {.is_read_only = true};
    qe_status st = qh_store_open(path, &ro, &sh->db, err);
    qh_run *runs = NULL;
    size_t n_runs = 0;
    if (st == QE_OK)
        st = qh_store_list_runs(sh->db, &runs, &n_runs, err);
    if (st == QE_OK && n_runs != 1)
        st = qe_fail(err, QE_EINVAL, "%s: holds %zu runs; merge takes shard files of one run each", path, n_runs);
    if (st != QE_OK) {
        qh_runs_free(runs, n_runs);
        return st;
    }
    sh->run = runs[0];
    free(runs);
    int64_t id = sh->run.id;
    if ((st = qh_store_get_variants(sh->db, id, &sh->variants, &sh->n_variants, err)) == QE_OK &&
        (st = qh_store_get_task_results(sh->db, id, &sh->results, &sh->n_results, err)) == QE_OK &&
        (st = qh_store_get_fidelity(sh->db, id, &sh->fidelity, &sh->n_fidelity, err)) == QE_OK)
        st = qh_store_get_perf(sh->db, id, &sh->perf, &sh->n_perf, err);
    return st;
}

static void free_shard(shard *sh)
{
    qh_run_free(&sh->run);
    qh_variant_rows_free(sh->variants, sh->n_variants);
    qh_task_result_rows_free(sh->results, sh->n_results);
    qh_fidelity_rows_free(sh->fidelity, sh->n_fidelity);
    qh_perf_rows_free(sh->perf, sh->n_perf);
    qh_store_close(sh->db);
}

/* The merged run's times span the shards'; its status is the worst of theirs. */
static qe_status write_run(qh_store *out, const shard *shards, const char *const *inputs, size_t n, int64_t *run_id,
                           qe_error *err)
{
    qe_status st = qh_store_create_run(out, &shards[0].run, run_id, err);
    if (st != QE_OK)
        return st;
    static const int severity[] = {[QH_RUN_COMPLETE] = 0, [QH_RUN_RUNNING] = 1, [QH_RUN_INTERRUPTED] = 2,
                                   [QH_RUN_FAILED] = 3};
    qh_run history = shards[0].run;
    size_t len = 0, cap = 8192;
    char *sources = malloc(cap);
    if (!sources)
        return qe_fail(err, QE_ENOMEM, "out of memory merging %zu shards", n);
    len += (size_t)snprintf(sources, cap, "[");
    for (size_t i = 0; i < n; i++) {
        const qh_run *r = &shards[i].run;
        if (r->started_at && (!history.started_at || strcmp(r->started_at, history.started_at) < 0))
            history.started_at = r->started_at;
        if (!r->finished_at || (history.finished_at && strcmp(r->finished_at, history.finished_at) > 0))
            history.finished_at = r->finished_at;
        if (severity[r->status] > severity[history.status])
            history.status = r->status;
        if (!history.error)
            history.error = r->error;
        len += (size_t)snprintf(sources + len, len < cap ? cap - len : 0, i ? "," : "");
        len = json_string(sources, len, cap, inputs[i]);
    }
    if (len + 2 > cap) {
        free(sources);
        return qe_fail(err, QE_EINVAL, "merge: the %zu shard paths are too long to record", n);
    }
    snprintf(sources + len, cap - len, "]");
    history.merged_from_json = sources;
    st = qh_store_set_run_history(out, *run_id, &history, err);
    free(sources);
    return st;
}

typedef struct {
    qh_store *out;
    int64_t run_id;
    qe_status st;
    qe_error err; /* the insert's own error: the walk's "stopped" message must not replace it */
} sample_copy;

static int copy_sample(const qh_sample_row *row, void *ctx)
{
    sample_copy *c = ctx;
    qh_sample_row copy = *row;
    copy.run_id = c->run_id;
    c->st = qh_store_insert_new_samples(c->out, &copy, 1, &c->err);
    return c->st != QE_OK;
}

static qe_status merge_variants(qh_store *out, int64_t run_id, const shard *shards, size_t n_shards, qe_error *err)
{
    size_t cap = 0, n = 0;
    for (size_t i = 0; i < n_shards; i++)
        cap += shards[i].n_variants;
    qh_variant_row *rows = calloc(cap ? cap : 1, sizeof *rows);
    if (!rows)
        return qe_fail(err, QE_ENOMEM, "out of memory merging variant rows");
    for (size_t i = 0; i < n_shards; i++)
        for (size_t j = 0; j < shards[i].n_variants; j++) {
            const qh_variant_row *v = &shards[i].variants[j];
            size_t k = 0;
            while (k < n && !same_text(rows[k].variant, v->variant))
                k++;
            if (k == n) {
                rows[n] = *v;
                rows[n++].run_id = run_id;
                continue;
            }
            qh_variant_row *m = &rows[k]; /* each shard loaded the model: the worst case is the cost */
            m->load_seconds = max_known(m->load_seconds, v->load_seconds);
            m->quantize_seconds = max_known(m->quantize_seconds, v->quantize_seconds);
            m->footprint_bytes = first_known_int(m->footprint_bytes, v->footprint_bytes);
            m->hf_footprint_bytes = first_known_int(m->hf_footprint_bytes, v->hf_footprint_bytes);
            m->estimate_bytes = first_known_int(m->estimate_bytes, v->estimate_bytes);
            m->peak_rss_bytes = max_known_int(m->peak_rss_bytes, v->peak_rss_bytes);
            m->peak_device_bytes = max_known_int(m->peak_device_bytes, v->peak_device_bytes);
            m->device_weights_bytes = first_known_int(m->device_weights_bytes, v->device_weights_bytes);
            m->device_kv_peak_bytes = max_known_int(m->device_kv_peak_bytes, v->device_kv_peak_bytes);
            /* free bytes belong to one shard's GPU: the tightest is the cautious reading */
            m->device_free_before_bytes = min_known_int(m->device_free_before_bytes, v->device_free_before_bytes);
            m->device_free_after_bytes = min_known_int(m->device_free_after_bytes, v->device_free_after_bytes);
            m->device_used_peak_bytes = max_known_int(m->device_used_peak_bytes, v->device_used_peak_bytes);
            /* the prediction for the longest context any shard reached goes with that shard's peaks */
            if (v->predicted_context > m->predicted_context) {
                m->predicted_context = v->predicted_context;
                m->predicted_weights_bytes = v->predicted_weights_bytes;
                m->predicted_kv_cache_bytes = v->predicted_kv_cache_bytes;
                m->predicted_activation_bytes = v->predicted_activation_bytes;
                m->predicted_peak_bytes = v->predicted_peak_bytes;
            }
        }
    qe_status st = qh_store_put_variants(out, rows, n, err);
    free(rows);
    return st;
}

/* Pools means with their standard errors: from each shard's mean m, standard error se and n,
 * the within sum of squares is se^2 n (n-1); adding the between part n (m - M)^2 gives the
 * sample variance of all documents, exactly as if computed from them. */
typedef struct {
    qh_task_result_row row;
    double sum_nm, sum_nm2, sum_within; /* sum n*m, sum n*m^2, sum se^2 n (n-1) */
} pooled_result;

static qe_status merge_results(qh_store *out, int64_t run_id, const shard *shards, size_t n_shards, qe_error *err)
{
    size_t cap = 0, n = 0;
    for (size_t i = 0; i < n_shards; i++)
        cap += shards[i].n_results;
    pooled_result *acc = calloc(cap ? cap : 1, sizeof *acc);
    qh_task_result_row *rows = calloc(cap ? cap : 1, sizeof *rows);
    if (!acc || !rows) {
        free(acc);
        free(rows);
        return qe_fail(err, QE_ENOMEM, "out of memory merging task results");
    }
    for (size_t i = 0; i < n_shards; i++)
        for (size_t j = 0; j < shards[i].n_results; j++) {
            const qh_task_result_row *r = &shards[i].results[j];
            size_t k = 0;
            while (k < n && !same_key(acc[k].row.variant, acc[k].row.task, acc[k].row.metric, r->variant, r->task,
                                      r->metric))
                k++;
            if (k == n) {
                acc[n].row = *r;
                acc[n].row.run_id = run_id;
                acc[n].row.n = 0;
                acc[n++].row.n_truncated = 0;
            }
            pooled_result *p = &acc[k];
            double count = (double)r->n, within = r->n > 1 ? r->std_error * r->std_error * count * (count - 1) : 0;
            p->row.n = r->n < 0 || p->row.n < 0 ? -1 : p->row.n + r->n;
            p->row.n_truncated = sum_known_int(p->row.n_truncated, r->n_truncated);
            p->sum_nm += count * r->value;
            p->sum_nm2 += count * r->value * r->value;
            p->sum_within += within;
        }
    for (size_t k = 0; k < n; k++) {
        qh_task_result_row *r = &rows[k];
        *r = acc[k].row;
        double count = (double)r->n;
        r->value = r->n > 0 ? acc[k].sum_nm / count : NAN;
        double ss = acc[k].sum_within + acc[k].sum_nm2 - count * r->value * r->value;
        r->std_error = r->n > 1 ? sqrt(fmax(ss, 0) / (count - 1) / count) : NAN;
    }
    qe_status st = qh_store_put_task_results(out, rows, n, err);
    free(acc);
    free(rows);
    return st;
}

/* Fidelity and perf rows share the key (variant, task); n_seen counts shards per key. */
static qe_status merge_fidelity_perf(qh_store *out, int64_t run_id, const shard *shards, size_t n_shards,
                                     qe_error *err)
{
    size_t cap_f = 0, cap_p = 0, n_f = 0, n_p = 0;
    for (size_t i = 0; i < n_shards; i++) {
        cap_f += shards[i].n_fidelity;
        cap_p += shards[i].n_perf;
    }
    qh_fidelity_row *fid = calloc(cap_f ? cap_f : 1, sizeof *fid);
    qh_perf_row *perf = calloc(cap_p ? cap_p : 1, sizeof *perf);
    double *prefill_s = calloc(cap_p ? cap_p : 1, sizeof *prefill_s), *decode_s = calloc(cap_p ? cap_p : 1, sizeof *decode_s);
    qe_status st = QE_OK;
    if (!fid || !perf || !prefill_s || !decode_s) {
        st = qe_fail(err, QE_ENOMEM, "out of memory merging fidelity and perf rows");
        goto out;
    }
    for (size_t i = 0; i < n_shards; i++)
        for (size_t j = 0; j < shards[i].n_fidelity; j++) {
            const qh_fidelity_row *f = &shards[i].fidelity[j];
            size_t k = 0;
            while (k < n_f && !same_key(fid[k].variant, fid[k].task, NULL, f->variant, f->task, NULL))
                k++;
            if (k == n_f) {
                fid[n_f] = *f;
                fid[n_f++].run_id = run_id;
                continue;
            }
            qh_fidelity_row *m = &fid[k];
            double a = m->n_items < 0 || f->n_items < 0 ? NAN : (double)m->n_items, b = (double)f->n_items,
                   total = a + b; /* an unknown count leaves the pooled values unknown */
            m->kl_mean = (a * m->kl_mean + b * f->kl_mean) / total;
            m->top1_agreement = (a * m->top1_agreement + b * f->top1_agreement) / total;
            m->answer_changed_share = (a * m->answer_changed_share + b * f->answer_changed_share) / total;
            m->rms_delta_p = sqrt((a * m->rms_delta_p * m->rms_delta_p + b * f->rms_delta_p * f->rms_delta_p) / total);
            m->kl_p99 = NAN; /* a percentile of the union is not a function of the shards' percentiles */
            m->n_items = sum_known_int(m->n_items, f->n_items);
        }
    for (size_t i = 0; i < n_shards; i++)
        for (size_t j = 0; j < shards[i].n_perf; j++) {
            const qh_perf_row *p = &shards[i].perf[j];
            size_t k = 0;
            while (k < n_p && !same_key(perf[k].variant, perf[k].task, NULL, p->variant, p->task, NULL))
                k++;
            if (k == n_p) {
                perf[n_p] = *p;
                perf[n_p++].run_id = run_id;
            } else {
                qh_perf_row *m = &perf[k];
                m->n_requests = sum_known_int(m->n_requests, p->n_requests);
                m->tokens_in = sum_known_int(m->tokens_in, p->tokens_in);
                m->tokens_out = sum_known_int(m->tokens_out, p->tokens_out);
                m->wall_seconds += p->wall_seconds;
                m->latency_p50_ms = m->latency_p95_ms = NAN;
            }
            /* rates combine through the seconds they imply: tokens / (tokens / rate) */
            prefill_s[k] += (double)p->tokens_in / p->prefill_tok_s;
            decode_s[k] += (double)p->tokens_out / p->decode_tok_s;
        }
    for (size_t k = 0; k < n_p; k++) {
        perf[k].prefill_tok_s = (double)perf[k].tokens_in / prefill_s[k];
        perf[k].decode_tok_s = (double)perf[k].tokens_out / decode_s[k];
    }
    if ((st = qh_store_put_fidelity(out, fid, n_f, err)) == QE_OK)
        st = qh_store_put_perf(out, perf, n_p, err);
out:
    free(fid);
    free(perf);
    free(prefill_s);
    free(decode_s);
    return st;
}

static void remove_output(const char *output)
{
    char path[4096];
    unlink(output);
    snprintf(path, sizeof path, "%s-wal", output);
    unlink(path);
    snprintf(path, sizeof path, "%s-shm", output);
    unlink(path);
}

qe_status qh_store_merge(const char *const *inputs, size_t n_inputs, const char *output, int64_t *run_id,
                         qe_error *err)
{
    if (n_inputs == 0)
        return qe_fail(err, QE_EINVAL, "merge: no shard files given");
    if (access(output, F_OK) == 0)
        return qe_fail(err, QE_EINVAL, "%s: already exists; merge writes a new file", output);
    shard *shards = calloc(n_inputs, sizeof *shards);
    if (!shards)
        return qe_fail(err, QE_ENOMEM, "out of memory merging %zu shards", n_inputs);
    qh_store *out = NULL;
    qe_status st = QE_OK;
    for (size_t i = 0; i < n_inputs && st == QE_OK; i++) {
        st = load_shard(inputs[i], &shards[i], err);
        if (st == QE_OK && i > 0)
            st = check_compatible(&shards[0], inputs[0], &shards[i], inputs[i], err);
    }
    if (st == QE_OK)
        st = check_shard_set(shards, inputs, n_inputs, err);
    if (st != QE_OK)
        goto out;
    if ((st = qh_store_open(output, NULL, &out, err)) != QE_OK)
        goto out;
    if ((st = qh_store_begin(out, err)) != QE_OK)
        goto out;
    st = write_run(out, shards, inputs, n_inputs, run_id, err);
    for (size_t i = 0; i < n_inputs && st == QE_OK; i++) {
        sample_copy copy = {out, *run_id, QE_OK, {0}};
        st = qh_store_each_sample(shards[i].db, shards[i].run.id, NULL, NULL, copy_sample, &copy, err);
        if (copy.st != QE_OK) {
            *err = copy.err;
            st = qe_fail_context(err, "merging %s", inputs[i]);
        }
        else if (st == QE_OK)
            st = qh_store_copy_cache(out, shards[i].db, err);
    }
    if (st == QE_OK)
        st = merge_variants(out, *run_id, shards, n_inputs, err);
    if (st == QE_OK)
        st = merge_results(out, *run_id, shards, n_inputs, err);
    if (st == QE_OK)
        st = merge_fidelity_perf(out, *run_id, shards, n_inputs, err);
    if (st == QE_OK)
        st = qh_store_commit(out, err);
out:
    qh_store_close(out); /* rolls back an unfinished transaction */
    if (st != QE_OK && out)
        remove_output(output);
    for (size_t i = 0; i < n_inputs; i++)
        free_shard(&shards[i]);
    free(shards);
    return st;
}
