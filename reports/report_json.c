/* report_json — the report as one JSON document for dashboards. Keys are stable and documented
 * in docs/report_formats.md ("format": "qeval-report", "version": 1); unknowns are null;
 * fractions, not points. */
#include "report_fmt.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Builders that tolerate a NULL parent so one failed allocation is checked once, at the end. */
static void put_real(cJSON *o, const char *key, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

static void put_int(cJSON *o, const char *key, int64_t v)
{
    if (v >= 0)
        cJSON_AddNumberToObject(o, key, (double)v);
    else
        cJSON_AddNullToObject(o, key);
}

static void put_text(cJSON *o, const char *key, const char *s)
{
    if (s)
        cJSON_AddStringToObject(o, key, s);
    else
        cJSON_AddNullToObject(o, key);
}

static void put_interval(cJSON *o, const char *key, double lo, double hi)
{
    cJSON *a = cJSON_AddArrayToObject(o, key);
    cJSON_AddItemToArray(a, isfinite(lo) ? cJSON_CreateNumber(lo) : cJSON_CreateNull());
    cJSON_AddItemToArray(a, isfinite(hi) ? cJSON_CreateNumber(hi) : cJSON_CreateNull());
}

static void put_run(cJSON *root, const qr_run_facts *f)
{
    cJSON *run = cJSON_AddObjectToObject(root, "run");
    put_int(run, "id", f->run_id);
    put_text(run, "status", f->status);
    put_text(run, "started_at", f->started_at);
    put_text(run, "finished_at", f->finished_at);
    put_text(run, "model_path", f->model_path);
    put_text(run, "model_sha256", f->model_sha256);
    put_text(run, "qeval_version", f->qeval_version);
    put_text(run, "git_commit", f->git_commit);
    put_text(run, "command_line", f->command_line);
    put_text(run, "host_cpu", f->host_cpu);
    put_int(run, "host_cores", f->host_cores);
    put_int(run, "host_ram_bytes", f->host_ram_bytes);
    put_text(run, "gpu_name", f->gpu_name);
    put_text(run, "gpu_driver", f->gpu_driver);
    put_int(run, "gpu_memory_bytes", f->gpu_memory_bytes);
    /* Stored JSON goes in as JSON when it parses, else as the text it is. */
    const char *keys[] = {"options", "sandbox", "tasks"};
    const char *texts[] = {f->options_json, f->sandbox_json, f->tasks_json};
    for (size_t i = 0; i < 3; i++) {
        cJSON *parsed = texts[i] ? cJSON_Parse(texts[i]) : NULL;
        if (parsed)
            cJSON_AddItemToObject(run, keys[i], parsed);
        else
            put_text(run, keys[i], texts[i]);
    }
}

static qe_status put_variant(cJSON *variants, qr_report *r, const qr_variant *v, qe_error *err)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToArray(variants, o);
    put_text(o, "name", v->name);
    put_int(o, "footprint_bytes", v->footprint_bytes);
    put_int(o, "hf_footprint_bytes", v->hf_footprint_bytes);
    put_int(o, "estimate_bytes", v->estimate_bytes);
    put_int(o, "peak_rss_bytes", v->peak_rss_bytes);
    put_int(o, "peak_device_bytes", v->peak_device_bytes);
    put_int(o, "device_weights_bytes", v->device_weights_bytes);
    put_int(o, "device_used_peak_bytes", v->device_used_peak_bytes);
    put_int(o, "predicted_context", v->predicted_context);
    put_int(o, "predicted_weights_bytes", v->predicted_weights_bytes);
    put_int(o, "predicted_kv_cache_bytes", v->predicted_kv_cache_bytes);
    put_int(o, "predicted_activation_bytes", v->predicted_activation_bytes);
    put_int(o, "predicted_peak_bytes", v->predicted_peak_bytes);
    put_real(o, "prefill_tok_s", v->prefill_tok_s);
    put_real(o, "decode_tok_s", v->decode_tok_s);
    put_real(o, "kl_mean", v->kl_mean);
    put_real(o, "kl_p99", v->kl_p99);
    put_real(o, "top1_agreement", v->top1_agreement);
    cJSON *scores = cJSON_AddArrayToObject(o, "scores");
    bool is_reference = !strcmp(v->name, r->reference_variant);
    for (size_t i = 0; i < r->n_scores; i++) {
        const qr_score *s = &r->scores[i];
        if (strcmp(s->variant, v->name))
            continue;
        cJSON *so = cJSON_CreateObject();
        cJSON_AddItemToArray(scores, so);
        put_text(so, "task", s->task);
        put_text(so, "metric", s->metric);
        put_text(so, "benchmark", s->benchmark);
        put_text(so, "label", s->label);
        put_text(so, "role", s->role == QR_HEADLINE ? "headline" : "detail");
        put_real(so, "value", s->value);
        put_real(so, "std_error", s->std_error);
        double lo, hi;
        qr_score_interval(s, &lo, &hi);
        put_interval(so, "ci95", lo, hi);
        put_int(so, "n", s->n);
        cJSON_AddBoolToObject(so, "is_binary", s->is_binary);
        if (is_reference) {
            cJSON_AddNullToObject(so, "vs_reference");
            continue;
        }
        qr_delta d;
        if (qr_compare_score(r, r->reference_variant, r, s, &d, err) != QE_OK)
            return err->code;
        cJSON *dv = cJSON_AddObjectToObject(so, "vs_reference");
        put_real(dv, "delta", d.delta);
        put_interval(dv, "ci95", d.ci_low, d.ci_high);
        put_real(dv, "p_value", d.p_value);
        put_text(dv, "test", qr_test_name(d.test));
        put_int(dv, "n_pairs", d.n_pairs);
        put_int(dv, "reference_only_right", d.test == QR_TEST_MCNEMAR ? d.n_base_only_right : -1);
        put_int(dv, "variant_only_right", d.test == QR_TEST_MCNEMAR ? d.n_cand_only_right : -1);
    }
    return QE_OK;
}

static qe_status put_changes(cJSON *root, qr_report *r, size_t max_changes, qe_error *err)
{
    qr_change *changes;
    size_t n;
    if (qr_report_changes(r, &changes, &n, err) != QE_OK)
        return QE_ENOMEM;
    cJSON_AddNumberToObject(root, "n_changes", (double)n);
    cJSON *list = cJSON_AddArrayToObject(root, "changes");
    for (size_t i = 0; i < n && i < max_changes; i++) {
        const qr_change *c = &changes[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(list, o);
        put_text(o, "variant", c->variant);
        put_text(o, "task", c->task);
        put_text(o, "metric", c->metric);
        put_int(o, "doc_id", c->doc_id);
        put_text(o, "question", c->question);
        put_text(o, "reference_answer", c->reference_answer);
        put_text(o, "variant_answer", c->variant_answer);
        put_real(o, "reference_value", c->reference_value);
        put_real(o, "variant_value", c->variant_value);
        put_text(o, "right", qr_who_right_name(c->who_right));
        put_real(o, "confidence", c->confidence);
    }
    free(changes);
    return QE_OK;
}

qe_status qr_render_json(qr_report *r, const qr_render_options *opts, FILE *out, qe_error *err)
{
    size_t max_changes = opts && opts->max_changes ? opts->max_changes : 20;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "format", "qeval-report");
    cJSON_AddNumberToObject(root, "version", 1);
    put_text(root, "reference_variant", r->reference_variant);
    put_run(root, &r->run);
    cJSON *variants = cJSON_AddArrayToObject(root, "variants");
    qe_status rc = QE_OK;
    for (size_t i = 0; i < r->n_variants && rc == QE_OK; i++)
        rc = put_variant(variants, r, &r->variants[i], err);
    if (rc == QE_OK)
        rc = put_changes(root, r, max_changes, err);
    char *text = rc == QE_OK ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (rc != QE_OK)
        return rc;
    if (!text)
        return qe_fail(err, QE_ENOMEM, "report: out of memory building the json");
    fputs(text, out);
    fputc('\n', out);
    free(text);
    if (fflush(out) || ferror(out))
        return qe_fail(err, QE_EIO, "report: writing the json failed");
    return QE_OK;
}
