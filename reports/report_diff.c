/* report_diff — baseline against candidate (report_diff.h). */
#include "report_diff.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "report_fmt.h"
#include "report_svg.h"

const char *qr_verdict_name(qr_verdict verdict)
{
    switch (verdict) {
    case QR_REGRESSION: return "regression";
    case QR_IMPROVEMENT: return "improvement";
    case QR_UNTESTED: return "untested";
    case QR_NO_CHANGE: break;
    }
    return "no significant change";
}

qe_status qr_diff(qr_report *base, qr_report *cand, const qr_diff_options *opts, qr_diff_row **rows, size_t *n_rows,
                  bool *is_failing, qe_error *err)
{
    *rows = NULL, *n_rows = 0, *is_failing = false;
    qr_diff_row *list = calloc(cand->n_scores ? cand->n_scores : 1, sizeof *list);
    if (!list)
        return qe_fail(err, QE_ENOMEM, "compare: out of memory for %zu rows", cand->n_scores);
    size_t n = 0;
    for (size_t i = 0; i < cand->n_scores; i++) {
        const qr_score *s = &cand->scores[i];
        const qr_score *b = qr_report_find_score(base, s->variant, s->task, s->metric);
        if (s->role != QR_HEADLINE || !b)
            continue;
        qr_diff_row *row = &list[n++];
        *row = (qr_diff_row){.variant = s->variant, .task = s->task, .metric = s->metric, .label = s->label,
                             .base_value = b->value, .cand_value = s->value};
        qe_status rc = qr_compare_score(base, NULL, cand, s, &row->delta, err);
        if (rc != QE_OK) {
            free(list);
            return rc;
        }
        if (!isfinite(row->delta.p_value))
            row->verdict = QR_UNTESTED;
        else if (row->delta.p_value < opts->alpha && row->delta.delta != 0)
            row->verdict = row->delta.delta < 0 ? QR_REGRESSION : QR_IMPROVEMENT;
        row->is_failing = row->verdict == QR_REGRESSION && -row->delta.delta * 100 > opts->max_drop_points;
        *is_failing = *is_failing || row->is_failing;
    }
    *rows = list, *n_rows = n;
    return QE_OK;
}

static void run_name(char *buf, size_t cap, const qr_report *r)
{
    snprintf(buf, cap, "run %lld%s%s", (long long)r->run.run_id, r->run.model_path ? " " : "",
             r->run.model_path ? r->run.model_path : "");
}

static void render_md(const qr_report *base, const qr_report *cand, const qr_diff_options *o, const qr_diff_row *rows,
                      size_t n, FILE *out)
{
    char bn[512], cn[512], a[32], b[32], d[32], lo[32], hi[32], p[32];
    run_name(bn, sizeof bn, base), run_name(cn, sizeof cn, cand);
    fprintf(out, "## qeval compare\n\nbaseline: %s  \ncandidate: %s  \nfails on a drop of more than %.2f points "
                 "with p < %g\n\n| variant | score | baseline | candidate | \xce\x94 points | 95%% interval | p | test | "
                 "verdict |\n|---|---|---:|---:|---:|---:|---:|---|---|\n", bn, cn, o->max_drop_points, o->alpha);
    for (size_t i = 0; i < n; i++) {
        const qr_diff_row *r = &rows[i];
        fprintf(out, "| %s | %s | %s | %s | %s | [%s, %s] | %s | %s | %s%s |\n", r->variant, r->label,
                qr_fmt_points(a, r->base_value), qr_fmt_points(b, r->cand_value), qr_fmt_signed_points(d, r->delta.delta),
                qr_fmt_signed_points(lo, r->delta.ci_low), qr_fmt_signed_points(hi, r->delta.ci_high),
                qr_fmt_p(p, r->delta.p_value), qr_test_name(r->delta.test), qr_verdict_name(r->verdict),
                r->is_failing ? " (FAIL)" : "");
    }
}

static void csv_real(FILE *out, double v)
{
    if (isfinite(v))
        fprintf(out, "%.10g", v);
}

static void render_csv(const qr_report *base, const qr_report *cand, const qr_diff_row *rows, size_t n, FILE *out)
{
    fputs("baseline_run_id,candidate_run_id,variant,task,metric,baseline_value,candidate_value,delta,delta_ci_low,"
          "delta_ci_high,p_value,test,n_pairs,verdict,is_failing\n", out);
    for (size_t i = 0; i < n; i++) {
        const qr_diff_row *r = &rows[i];
        fprintf(out, "%lld,%lld,%s,%s,\"%s\",", (long long)base->run.run_id, (long long)cand->run.run_id, r->variant,
                r->task, r->metric);
        double v[] = {r->base_value, r->cand_value, r->delta.delta, r->delta.ci_low, r->delta.ci_high, r->delta.p_value};
        for (size_t k = 0; k < 6; k++)
            csv_real(out, v[k]), fputc(',', out);
        fprintf(out, "%s,%lld,%s,%d\n", qr_test_name(r->delta.test), (long long)r->delta.n_pairs,
                qr_verdict_name(r->verdict), r->is_failing ? 1 : 0);
    }
}

static cJSON *number_or_null(double v)
{
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

static qe_status render_json(const qr_report *base, const qr_report *cand, const qr_diff_options *o,
                             const qr_diff_row *rows, size_t n, FILE *out, qe_error *err)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "format", "qeval-compare");
    cJSON_AddNumberToObject(root, "version", 1);
    cJSON_AddNumberToObject(root, "baseline_run_id", (double)base->run.run_id);
    cJSON_AddNumberToObject(root, "candidate_run_id", (double)cand->run.run_id);
    cJSON_AddNumberToObject(root, "max_drop_points", o->max_drop_points);
    cJSON_AddNumberToObject(root, "alpha", o->alpha);
    bool is_failing = false;
    cJSON *list = cJSON_AddArrayToObject(root, "rows");
    for (size_t i = 0; i < n; i++) {
        const qr_diff_row *r = &rows[i];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddItemToArray(list, x);
        cJSON_AddStringToObject(x, "variant", r->variant);
        cJSON_AddStringToObject(x, "task", r->task);
        cJSON_AddStringToObject(x, "metric", r->metric);
        cJSON_AddItemToObject(x, "baseline_value", number_or_null(r->base_value));
        cJSON_AddItemToObject(x, "candidate_value", number_or_null(r->cand_value));
        cJSON_AddItemToObject(x, "delta", number_or_null(r->delta.delta));
        cJSON *ci = cJSON_AddArrayToObject(x, "ci95");
        cJSON_AddItemToArray(ci, number_or_null(r->delta.ci_low));
        cJSON_AddItemToArray(ci, number_or_null(r->delta.ci_high));
        cJSON_AddItemToObject(x, "p_value", number_or_null(r->delta.p_value));
        cJSON_AddStringToObject(x, "test", qr_test_name(r->delta.test));
        cJSON_AddNumberToObject(x, "n_pairs", (double)r->delta.n_pairs);
        cJSON_AddStringToObject(x, "verdict", qr_verdict_name(r->verdict));
        cJSON_AddBoolToObject(x, "is_failing", r->is_failing);
        is_failing = is_failing || r->is_failing;
    }
    cJSON_AddBoolToObject(root, "is_failing", is_failing);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text)
        return qe_fail(err, QE_ENOMEM, "compare: out of memory building the json");
    fputs(text, out), fputc('\n', out);
    free(text);
    return QE_OK;
}

static void render_html(const qr_report *base, const qr_report *cand, const qr_diff_options *o, const qr_diff_row *rows,
                        size_t n, FILE *out)
{
    char bn[512], cn[512], a[32], b[32], d[32], lo[32], hi[32], p[32];
    run_name(bn, sizeof bn, base), run_name(cn, sizeof cn, cand);
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>qeval compare</title><style>"
          "body{font-family:system-ui,sans-serif;margin:24px}table{border-collapse:collapse;font-size:13px}"
          "th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}td.l{text-align:left}.fail{color:#b00;"
          "font-weight:bold}</style></head><body><h1>qeval compare</h1><p>baseline: ", out);
    qr_xml_text(out, bn), fputs("<br>candidate: ", out), qr_xml_text(out, cn);
    fprintf(out, "<br>fails on a drop of more than %.2f points with p &lt; %g</p><table><tr><th>variant</th><th>score"
                 "</th><th>baseline</th><th>candidate</th><th>\xce\x94 points</th><th>95%% interval</th><th>p</th><th>"
                 "test</th><th>verdict</th></tr>\n", o->max_drop_points, o->alpha);
    for (size_t i = 0; i < n; i++) {
        const qr_diff_row *r = &rows[i];
        fputs("<tr><td class=\"l\">", out), qr_xml_text(out, r->variant), fputs("</td><td class=\"l\">", out);
        qr_xml_text(out, r->label);
        fprintf(out, "</td><td>%s</td><td>%s</td><td>%s</td><td>[%s, %s]</td><td>%s</td><td>%s</td>"
                     "<td class=\"l%s\">%s</td></tr>\n", qr_fmt_points(a, r->base_value), qr_fmt_points(b, r->cand_value),
                qr_fmt_signed_points(d, r->delta.delta), qr_fmt_signed_points(lo, r->delta.ci_low),
                qr_fmt_signed_points(hi, r->delta.ci_high), qr_fmt_p(p, r->delta.p_value), qr_test_name(r->delta.test),
                r->is_failing ? " fail" : "", qr_verdict_name(r->verdict));
    }
    fputs("</table></body></html>\n", out);
}

qe_status qr_render_diff(const qr_report *base, const qr_report *cand, const qr_diff_options *opts,
                         const qr_diff_row *rows, size_t n, qr_format format, FILE *out, qe_error *err)
{
    qe_status rc = QE_OK;
    switch (format) {
    case QR_FORMAT_MD: render_md(base, cand, opts, rows, n, out); break;
    case QR_FORMAT_CSV: render_csv(base, cand, rows, n, out); break;
    case QR_FORMAT_JSON: rc = render_json(base, cand, opts, rows, n, out, err); break;
    case QR_FORMAT_HTML: render_html(base, cand, opts, rows, n, out); break;
    }
    if (rc == QE_OK && (fflush(out) || ferror(out)))
        rc = qe_fail(err, QE_EIO, "compare: writing the output failed");
    return rc;
}
