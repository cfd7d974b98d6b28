/* report_html — the report as one self-contained HTML file: inline CSS and SVG only (no script,
 * no external style, font or image), so it can be mailed, archived or opened offline. Charts:
 * accuracy against resident footprint per headline benchmark (95 % intervals as error bars),
 * speed bars and memory bars; then the same tables as the markdown report. */
#include "report_fmt.h"
#include "report_svg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char style[] =
    "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px;color:#222;max-width:1400px}"
    "h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}h3{font-size:15px}"
    "table{border-collapse:collapse;margin:8px 0;font-size:12px}"
    "th,td{border:1px solid #ccc;padding:2px 5px;text-align:right;vertical-align:top}"
    "th{background:#f3f3f3}td.l,th.l{text-align:left}tr:nth-child(even) td{background:#fafafa}"
    ".sig{font-weight:bold;color:#b00}.ci{color:#666;font-size:11px}.p{color:#666;font-size:11px}"
    ".charts{display:flex;flex-wrap:wrap;gap:12px}.chart{border:1px solid #ddd}"
    ".note{color:#555;font-size:12px;max-width:900px}td.q{max-width:420px;text-align:left}";

static void td_text(FILE *out, const char *cls, const char *s)
{
    fprintf(out, "<td class=\"%s\">", cls);
    if (s)
        qr_xml_text(out, s);
    else
        fputs(QR_DASH, out);
    fputs("</td>", out);
}

static void score_td(FILE *out, const qr_score *s)
{
    char v[32], lo[32], hi[32];
    if (!s) {
        fputs("<td>" QR_DASH "</td>", out);
        return;
    }
    double l, h;
    qr_score_interval(s, &l, &h);
    fprintf(out, "<td>%s <span class=\"ci\">[%s,&#160;%s]</span></td>", qr_fmt_points(v, s->value), qr_fmt_points(lo, l),
            qr_fmt_points(hi, h));
}

static void delta_td(FILE *out, const qr_delta *d)
{
    char v[32], lo[32], hi[32], p[32];
    if (!isfinite(d->delta)) {
        fputs("<td>" QR_DASH "</td>", out);
        return;
    }
    fprintf(out, "<td title=\"%s, %lld pairs\"><span class=\"%s\">%s</span> <span class=\"ci\">[%s,&#160;%s]</span> "
                 "<span class=\"p\">p=%s</span></td>", qr_test_name(d->test), (long long)d->n_pairs,
            qr_is_significant(d) ? "sig" : "d", qr_fmt_signed_points(v, d->delta), qr_fmt_signed_points(lo, d->ci_low),
            qr_fmt_signed_points(hi, d->ci_high), qr_fmt_p(p, d->p_value));
}

static qe_status charts(qr_report *r, const qr_column *cols, size_t n_cols, FILE *out, qe_error *err)
{
    size_t nv = r->n_variants;
    qr_svg_point *points = calloc(nv ? nv : 1, sizeof *points);
    const char **names = calloc(nv ? nv : 1, sizeof *names);
    double *values = calloc(3 * (nv ? nv : 1), sizeof *values);
    if (!points || !names || !values) {
        free(points), free(names), free(values);
        return qe_fail(err, QE_ENOMEM, "report: out of memory drawing charts");
    }
    for (size_t i = 0; i < nv; i++)
        names[i] = r->variants[i].name;
    fputs("<div class=\"charts\">\n", out);
    for (size_t c = 0; c < n_cols; c++) {
        for (size_t i = 0; i < nv; i++) {
            const qr_variant *v = &r->variants[i];
            const qr_score *s = qr_report_find_score(r, v->name, cols[c].task, cols[c].metric);
            double lo = NAN, hi = NAN;
            if (s)
                qr_score_interval(s, &lo, &hi);
            points[i] = (qr_svg_point){v->name, v->footprint_bytes >= 0 ? (double)v->footprint_bytes / 1e9 : NAN,
                                       s ? 100 * s->value : NAN, 100 * lo, 100 * hi};
        }
        char title[160];
        snprintf(title, sizeof title, "%s vs footprint", cols[c].label);
        qr_svg_frame frame = {title, "resident footprint (GB)", "score (points, 95% interval)", 0, 0, false};
        qr_svg_scatter(out, &frame, points, nv);
    }
    static const char *const speed_series[] = {"prefill tok/s", "decode tok/s"};
    for (size_t i = 0; i < nv; i++)
        values[2 * i] = r->variants[i].prefill_tok_s, values[2 * i + 1] = r->variants[i].decode_tok_s;
    qr_svg_frame speed = {"Speed", "variant", "tokens per second", 0, 0, false};
    qr_svg_bars(out, &speed, names, nv, speed_series, 2, values);
    static const char *const memory_series[] = {"footprint", "peak RSS", "peak device"};
    for (size_t i = 0; i < nv; i++) {
        const qr_variant *v = &r->variants[i];
        int64_t b[3] = {v->footprint_bytes, v->peak_rss_bytes, v->peak_device_bytes};
        for (size_t k = 0; k < 3; k++)
            values[3 * i + k] = b[k] >= 0 ? (double)b[k] / 1e9 : NAN;
    }
    qr_svg_frame memory = {"Memory", "variant", "GB", 0, 0, false};
    qr_svg_bars(out, &memory, names, nv, memory_series, 3, values);
    fputs("</div>\n", out);
    free(points), free(names), free(values);
    return QE_OK;
}

static qe_status main_table(qr_report *r, const qr_column *cols, size_t n_cols, FILE *out, qe_error *err)
{
    fputs("<table><tr><th class=\"l\">variant</th><th>footprint GB</th><th>estimate GB</th><th>transformers GB</th>"
          "<th>peak RSS GB</th><th>peak device GB</th>", out);
    for (size_t c = 0; c < n_cols; c++) {
        fputs("<th>", out), qr_xml_text(out, cols[c].label), fputs("</th><th>\xce\x94 ", out);
        qr_xml_text(out, cols[c].label), fputs(" vs ", out), qr_xml_text(out, r->reference_variant), fputs("</th>", out);
    }
    fputs("<th>KL mean</th><th>top-1 agree %</th><th>prefill tok/s</th><th>decode tok/s</th></tr>\n", out);
    char a[32], b[32], c3[32], d[32], e[32];
    for (size_t i = 0; i < r->n_variants; i++) {
        const qr_variant *v = &r->variants[i];
        fputs("<tr>", out);
        td_text(out, "l", v->name);
        fprintf(out, "<td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td>", qr_fmt_gb(a, v->footprint_bytes),
                qr_fmt_gb(b, v->estimate_bytes), qr_fmt_gb(c3, v->hf_footprint_bytes), qr_fmt_gb(d, v->peak_rss_bytes),
                qr_fmt_gb(e, v->peak_device_bytes));
        for (size_t c = 0; c < n_cols; c++) {
            const qr_score *s = qr_report_find_score(r, v->name, cols[c].task, cols[c].metric);
            score_td(out, s);
            qr_delta delta = {.delta = NAN};
            if (s && strcmp(v->name, r->reference_variant) &&
                qr_compare_score(r, r->reference_variant, r, s, &delta, err) != QE_OK)
                return err->code;
            delta_td(out, &delta);
        }
        fprintf(out, "<td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n", qr_fmt_real(a, "%.4f", v->kl_mean),
                qr_fmt_points(b, v->top1_agreement), qr_fmt_real(c3, "%.1f", v->prefill_tok_s),
                qr_fmt_real(d, "%.1f", v->decode_tok_s));
    }
    fputs("</table>\n<p class=\"note\">Scores in points with 95&#160;% intervals. \xce\x94 = variant \xe2\x88\x92 ", out);
    qr_xml_text(out, r->reference_variant);
    fputs(" in points over the same documents, with its 95&#160;% interval and two-sided p (exact McNemar for 0/1 "
          "outcomes, paired t-test for continuous ones); red = p&#160;&lt;&#160;0.05. KL in nats.</p>\n", out);
    return QE_OK;
}

static qe_status detail_tables(qr_report *r, FILE *out, qe_error *err)
{
    const char **benchmarks;
    size_t n_benchmarks;
    if (qr_benchmarks(r, &benchmarks, &n_benchmarks, err) != QE_OK)
        return QE_ENOMEM;
    qe_status rc = QE_OK;
    for (size_t bi = 0; bi < n_benchmarks && rc == QE_OK; bi++) {
        qr_column *rows;
        size_t n_rows;
        if ((rc = qr_benchmark_rows(r, benchmarks[bi], &rows, &n_rows, err)) != QE_OK)
            break;
        fputs("<h3>", out), qr_xml_text(out, benchmarks[bi]), fputs("</h3>\n<table><tr><th class=\"l\">score</th><th>n</th>", out);
        for (size_t i = 0; i < r->n_variants; i++) {
            fputs("<th>", out), qr_xml_text(out, r->variants[i].name), fputs("</th>", out);
            if (strcmp(r->variants[i].name, r->reference_variant))
                fputs("<th>\xce\x94 ", out), qr_xml_text(out, r->variants[i].name), fputs("</th>", out);
        }
        fputs("</tr>\n", out);
        for (size_t k = 0; k < n_rows && rc == QE_OK; k++) {
            const qr_score *ref = qr_report_find_score(r, r->reference_variant, rows[k].task, rows[k].metric);
            fputs("<tr>", out);
            td_text(out, "l", rows[k].label);
            if (ref)
                fprintf(out, "<td>%lld</td>", (long long)ref->n);
            else
                fputs("<td>" QR_DASH "</td>", out);
            for (size_t i = 0; i < r->n_variants && rc == QE_OK; i++) {
                const char *name = r->variants[i].name;
                const qr_score *s = qr_report_find_score(r, name, rows[k].task, rows[k].metric);
                score_td(out, s);
                if (!strcmp(name, r->reference_variant))
                    continue;
                qr_delta delta = {.delta = NAN};
                if (s)
                    rc = qr_compare_score(r, r->reference_variant, r, s, &delta, err);
                delta_td(out, &delta);
            }
            fputs("</tr>\n", out);
        }
        fputs("</table>\n", out);
        free(rows);
    }
    free(benchmarks);
    return rc;
}

static qe_status changes_table(qr_report *r, size_t max_rows, FILE *out, qe_error *err)
{
    qr_change *changes;
    size_t n;
    if (qr_report_changes(r, &changes, &n, err) != QE_OK)
        return QE_ENOMEM;
    if (!n) {
        fputs("<p>No answer differs from the reference's on the documents both scored.</p>\n", out);
        return QE_OK;
    }
    size_t shown = n < max_rows ? n : max_rows;
    fprintf(out, "<p>%zu answers differ from the reference's; the %zu most confident:</p>\n", n, shown);
    fputs("<table><tr><th class=\"l\">variant</th><th class=\"l\">task</th><th>doc</th><th class=\"l\">question</th>"
          "<th class=\"l\">", out);
    qr_xml_text(out, r->reference_variant);
    fputs(" answer</th><th class=\"l\">variant answer</th><th class=\"l\">right</th><th>confidence</th></tr>\n", out);
    char c[32];
    for (size_t i = 0; i < shown; i++) {
        const qr_change *ch = &changes[i];
        fputs("<tr>", out);
        td_text(out, "l", ch->variant);
        td_text(out, "l", ch->task);
        fprintf(out, "<td>%lld</td>", (long long)ch->doc_id);
        td_text(out, "q", ch->question);
        td_text(out, "l", ch->reference_answer);
        td_text(out, "l", ch->variant_answer);
        td_text(out, "l", ch->who_right == QR_RIGHT_REFERENCE ? r->reference_variant
                          : ch->who_right == QR_RIGHT_VARIANT ? ch->variant
                                                              : qr_who_right_name(ch->who_right));
        fprintf(out, "<td>%s</td></tr>\n", qr_fmt_real(c, "%.3f", ch->confidence));
    }
    fputs("</table>\n", out);
    free(changes);
    return QE_OK;
}

static void fact_row(FILE *out, const char *key, const char *value)
{
    fprintf(out, "<tr><th class=\"l\">%s</th>", key);
    td_text(out, "q", value);
    fputs("</tr>\n", out);
}

static void facts_table(const qr_report *r, FILE *out)
{
    const qr_run_facts *f = &r->run;
    char run[32], cores[32], ram[32], gpu_mem[32];
    snprintf(run, sizeof run, "%lld", (long long)f->run_id);
    snprintf(cores, sizeof cores, "%lld", (long long)f->host_cores);
    fputs("<table>\n", out);
    fact_row(out, "run", f->run_id >= 0 ? run : NULL);
    fact_row(out, "status", f->status);
    fact_row(out, "started", f->started_at);
    fact_row(out, "finished", f->finished_at);
    fact_row(out, "model", f->model_path);
    fact_row(out, "model sha256", f->model_sha256);
    fact_row(out, "qeval", f->qeval_version);
    fact_row(out, "git commit", f->git_commit);
    fact_row(out, "command", f->command_line);
    fact_row(out, "CPU", f->host_cpu);
    fact_row(out, "cores", f->host_cores >= 0 ? cores : NULL);
    fact_row(out, "RAM GB", qr_fmt_gb(ram, f->host_ram_bytes));
    fact_row(out, "GPU", f->gpu_name);
    fact_row(out, "GPU driver", f->gpu_driver);
    fact_row(out, "GPU memory GB", qr_fmt_gb(gpu_mem, f->gpu_memory_bytes));
    fact_row(out, "options", f->options_json);
    fact_row(out, "sandbox", f->sandbox_json);
    fputs("</table>\n", out);
}

qe_status qr_render_html(qr_report *r, const qr_render_options *opts, FILE *out, qe_error *err)
{
    size_t max_changes = opts && opts->max_changes ? opts->max_changes : 20;
    qr_column *cols;
    size_t n_cols;
    if (qr_headline_columns(r, &cols, &n_cols, err) != QE_OK)
        return QE_ENOMEM;
    fprintf(out, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                 "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>qeval report");
    if (r->run.model_path)
        fputs(" \xe2\x80\x94 ", out), qr_xml_text(out, r->run.model_path);
    fprintf(out, "</title><style>%s</style></head>\n<body>\n<h1>qeval report", style);
    if (r->run.run_id >= 0)
        fprintf(out, " \xe2\x80\x94 run %lld", (long long)r->run.run_id);
    if (r->run.model_path)
        fputs(": ", out), qr_xml_text(out, r->run.model_path);
    fputs("</h1>\n<h2>Summary</h2>\n", out);
    qe_status rc = main_table(r, cols, n_cols, out, err);
    if (rc == QE_OK) {
        fputs("<h2>Accuracy, speed and memory</h2>\n", out);
        rc = charts(r, cols, n_cols, out, err);
    }
    free(cols);
    if (rc == QE_OK) {
        fputs("<h2>Per-benchmark detail</h2>\n", out);
        rc = detail_tables(r, out, err);
    }
    if (rc == QE_OK) {
        fputs("<h2>What changed</h2>\n", out);
        rc = changes_table(r, max_changes, out, err);
    }
    if (rc == QE_OK) {
        fputs("<h2>Run</h2>\n", out);
        facts_table(r, out);
        fputs("</body></html>\n", out);
        if (fflush(out) || ferror(out))
            rc = qe_fail(err, QE_EIO, "report: writing the html failed");
    }
    return rc;
}

qe_status qr_render(qr_report *r, qr_format format, const qr_render_options *opts, FILE *out, qe_error *err)
{
    switch (format) {
    case QR_FORMAT_MD: return qr_render_md(r, opts, out, err);
    case QR_FORMAT_HTML: return qr_render_html(r, opts, out, err);
    case QR_FORMAT_CSV: return qr_render_csv(r, out, err);
    case QR_FORMAT_JSON: return qr_render_json(r, opts, out, err);
    }
    return qe_fail(err, QE_EINVAL, "report: unknown format %d", (int)format);
}
