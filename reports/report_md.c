/* report_md — the report as GitHub-flavoured Markdown, to paste into a pull request: the main
 * table, per-benchmark detail, what changed, and the run's facts. Scores are in points (percent);
 * a delta marked * is significant at 0.05. */
#include "report_fmt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Writes s as one table cell: pipes escaped, line breaks as spaces, cut at max_chars bytes on a
 * UTF-8 character boundary. */
static void md_cell(FILE *out, const char *s, size_t max_chars)
{
    if (!s) {
        fputs(QR_DASH, out);
        return;
    }
    size_t len = strlen(s), cut = len;
    if (len > max_chars) {
        cut = max_chars;
        while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
            cut--;
    }
    for (size_t i = 0; i < cut; i++) {
        char c = s[i];
        if (c == '|' || c == '\\' || c == '`' || c == '*' || c == '_' || c == '<' || c == '>')
            fputc('\\', out), fputc(c, out);
        else if (c == '\n' || c == '\r' || c == '\t')
            fputc(' ', out);
        else
            fputc(c, out);
    }
    if (cut < len)
        fputs("\xe2\x80\xa6", out); /* … */
}

static void score_cell(FILE *out, const qr_score *s)
{
    char v[32], lo[32], hi[32];
    if (!s) {
        fputs(" " QR_DASH " |", out);
        return;
    }
    double l, h;
    qr_score_interval(s, &l, &h);
    fprintf(out, " %s [%s, %s] |", qr_fmt_points(v, s->value), qr_fmt_points(lo, l), qr_fmt_points(hi, h));
}

static void delta_cell(FILE *out, const qr_delta *d)
{
    char v[32], lo[32], hi[32], p[32];
    if (!isfinite(d->delta)) {
        fputs(" " QR_DASH " |", out);
        return;
    }
    fprintf(out, " %s%s [%s, %s] p=%s |", qr_fmt_signed_points(v, d->delta), qr_is_significant(d) ? "\\*" : "",
            qr_fmt_signed_points(lo, d->ci_low), qr_fmt_signed_points(hi, d->ci_high), qr_fmt_p(p, d->p_value));
}

static qe_status main_table(qr_report *r, FILE *out, qe_error *err)
{
    qr_column *cols;
    size_t n_cols;
    if (qr_headline_columns(r, &cols, &n_cols, err) != QE_OK)
        return QE_ENOMEM;
    fputs("| variant | footprint GB | estimate GB | transformers GB | peak RSS GB | peak device GB |", out);
    for (size_t c = 0; c < n_cols; c++)
        fprintf(out, " %s | %s \xce\x94 vs %s |", cols[c].label, cols[c].label, r->reference_variant);
    fputs(" KL mean | top-1 agree | prefill tok/s | decode tok/s |\n|---|", out);
    for (size_t c = 0; c < 5 + 2 * n_cols + 4; c++)
        fputs("---:|", out);
    fputc('\n', out);

    qe_status rc = QE_OK;
    char a[32], b[32], c3[32], d[32], e[32];
    for (size_t i = 0; i < r->n_variants && rc == QE_OK; i++) {
        const qr_variant *v = &r->variants[i];
        fputs("| ", out);
        md_cell(out, v->name, 40);
        fprintf(out, " | %s | %s | %s | %s | %s |", qr_fmt_gb(a, v->footprint_bytes), qr_fmt_gb(b, v->estimate_bytes),
                qr_fmt_gb(c3, v->hf_footprint_bytes), qr_fmt_gb(d, v->peak_rss_bytes), qr_fmt_gb(e, v->peak_device_bytes));
        for (size_t c = 0; c < n_cols && rc == QE_OK; c++) {
            const qr_score *s = qr_report_find_score(r, v->name, cols[c].task, cols[c].metric);
            score_cell(out, s);
            qr_delta delta = {.delta = NAN};
            if (s && strcmp(v->name, r->reference_variant))
                rc = qr_compare_score(r, r->reference_variant, r, s, &delta, err);
            delta_cell(out, &delta);
        }
        fprintf(out, " %s | %s | %s | %s |\n", qr_fmt_real(a, "%.4f", v->kl_mean), qr_fmt_points(b, v->top1_agreement),
                qr_fmt_real(c3, "%.1f", v->prefill_tok_s), qr_fmt_real(d, "%.1f", v->decode_tok_s));
    }
    free(cols);
    if (rc == QE_OK)
        fprintf(out, "\nScores in points with 95 %% intervals; \xce\x94 = variant \xe2\x88\x92 %s in points over the "
                     "same documents, 95 %% interval and two-sided p (exact McNemar for 0/1 outcomes, paired t-test "
                     "for continuous ones); \\* marks p < 0.05. Top-1 agree in %%; KL(%s \xe2\x80\x96 variant) in nats.\n",
                r->reference_variant, r->reference_variant);
    return rc;
}

static qe_status detail_tables(qr_report *r, FILE *out, qe_error *err)
{
    const char **benchmarks;
    size_t n_benchmarks;
    if (qr_benchmarks(r, &benchmarks, &n_benchmarks, err) != QE_OK)
        return QE_ENOMEM;
    qe_status rc = QE_OK;
    for (size_t b = 0; b < n_benchmarks && rc == QE_OK; b++) {
        qr_column *rows;
        size_t n_rows;
        if ((rc = qr_benchmark_rows(r, benchmarks[b], &rows, &n_rows, err)) != QE_OK)
            break;
        fputs("\n### ", out);
        md_cell(out, benchmarks[b], 80);
        fputs("\n\n| score | n |", out);
        for (size_t i = 0; i < r->n_variants; i++) {
            fputc(' ', out), md_cell(out, r->variants[i].name, 40), fputs(" |", out);
            if (strcmp(r->variants[i].name, r->reference_variant))
                fputs(" \xce\x94 ", out), md_cell(out, r->variants[i].name, 40), fputs(" |", out);
        }
        fputs("\n|---|---:|", out);
        for (size_t i = 0; i < r->n_variants; i++)
            fputs(strcmp(r->variants[i].name, r->reference_variant) ? "---:|---:|" : "---:|", out);
        fputc('\n', out);
        for (size_t k = 0; k < n_rows && rc == QE_OK; k++) {
            const qr_score *ref = qr_report_find_score(r, r->reference_variant, rows[k].task, rows[k].metric);
            fputs("| ", out);
            md_cell(out, rows[k].label, 80);
            if (ref)
                fprintf(out, " | %lld |", (long long)ref->n);
            else
                fputs(" | " QR_DASH " |", out);
            for (size_t i = 0; i < r->n_variants && rc == QE_OK; i++) {
                const char *name = r->variants[i].name;
                const qr_score *s = qr_report_find_score(r, name, rows[k].task, rows[k].metric);
                score_cell(out, s);
                if (!strcmp(name, r->reference_variant))
                    continue;
                qr_delta delta = {.delta = NAN};
                if (s)
                    rc = qr_compare_score(r, r->reference_variant, r, s, &delta, err);
                delta_cell(out, &delta);
            }
            fputc('\n', out);
        }
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
        fprintf(out, "No answer differs from %s's on the documents both scored.\n", r->reference_variant);
        return QE_OK;
    }
    size_t shown = n < max_rows ? n : max_rows;
    fprintf(out, "%zu answers differ from %s's; the %zu most confident:\n\n", n, r->reference_variant, shown);
    fprintf(out, "| variant | task | doc | question | %s answer | variant answer | right | confidence |\n"
                 "|---|---|---:|---|---|---|---|---:|\n", r->reference_variant);
    char c[32];
    for (size_t i = 0; i < shown; i++) {
        const qr_change *ch = &changes[i];
        fputs("| ", out), md_cell(out, ch->variant, 40);
        fputs(" | ", out), md_cell(out, ch->task, 60);
        fprintf(out, " | %lld | ", (long long)ch->doc_id);
        md_cell(out, ch->question, 160);
        fputs(" | ", out), md_cell(out, ch->reference_answer, 60);
        fputs(" | ", out), md_cell(out, ch->variant_answer, 60);
        fprintf(out, " | %s | %s |\n", ch->who_right == QR_RIGHT_REFERENCE ? r->reference_variant
                                        : ch->who_right == QR_RIGHT_VARIANT ? ch->variant
                                                                            : qr_who_right_name(ch->who_right),
                qr_fmt_real(c, "%.3f", ch->confidence));
    }
    free(changes);
    return QE_OK;
}

static void fact_row(FILE *out, const char *key, const char *value)
{
    fprintf(out, "| %s | ", key);
    md_cell(out, value, 400);
    fputs(" |\n", out);
}

static void facts_table(const qr_report *r, FILE *out)
{
    const qr_run_facts *f = &r->run;
    char buf[64];
    fputs("| fact | value |\n|---|---|\n", out);
    snprintf(buf, sizeof buf, "%lld", (long long)f->run_id);
    fact_row(out, "run", f->run_id >= 0 ? buf : NULL);
    fact_row(out, "status", f->status);
    fact_row(out, "started", f->started_at);
    fact_row(out, "finished", f->finished_at);
    fact_row(out, "model", f->model_path);
    fact_row(out, "model sha256", f->model_sha256);
    fact_row(out, "qeval", f->qeval_version);
    fact_row(out, "git commit", f->git_commit);
    fact_row(out, "command", f->command_line);
    fact_row(out, "CPU", f->host_cpu);
    snprintf(buf, sizeof buf, "%lld", (long long)f->host_cores);
    fact_row(out, "cores", f->host_cores >= 0 ? buf : NULL);
    fact_row(out, "RAM GB", qr_fmt_gb(buf, f->host_ram_bytes));
    fact_row(out, "GPU", f->gpu_name);
    fact_row(out, "GPU driver", f->gpu_driver);
    fact_row(out, "GPU memory GB", qr_fmt_gb(buf, f->gpu_memory_bytes));
    fact_row(out, "options", f->options_json);
    fact_row(out, "sandbox", f->sandbox_json);
}

qe_status qr_render_md(qr_report *r, const qr_render_options *opts, FILE *out, qe_error *err)
{
    size_t max_changes = opts && opts->max_changes ? opts->max_changes : 20;
    fputs("## qeval report", out);
    if (r->run.run_id >= 0)
        fprintf(out, " \xe2\x80\x94 run %lld", (long long)r->run.run_id);
    if (r->run.model_path)
        fputs(": ", out), md_cell(out, r->run.model_path, 200);
    fputs("\n\n", out);
    qe_status rc = main_table(r, out, err);
    if (rc == QE_OK) {
        fputs("\n### Per-benchmark detail\n", out);
        rc = detail_tables(r, out, err);
    }
    if (rc == QE_OK) {
        fputs("\n### What changed\n\n", out);
        rc = changes_table(r, max_changes, out, err);
    }
    if (rc == QE_OK) {
        fputs("\n### Run\n\n", out);
        facts_table(r, out);
    }
    if (rc == QE_OK && (fflush(out) || ferror(out)))
        return qe_fail(err, QE_EIO, "report: writing the markdown failed");
    return rc;
}
