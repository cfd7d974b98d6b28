/* report_csv — the report as one long table for pandas: one row per (variant, task, metric),
 * the variant's cost and fidelity repeated on each row. Columns are documented in
 * docs/report_formats.md; unknowns are empty cells; fractions, not points; RFC 4180 quoting. */
#include "report_fmt.h"

#include <math.h>
#include <string.h>

static const char *const columns[] = {
    "run_id", "model", "variant", "task", "metric", "benchmark", "label", "role", "value", "std_error",
    "ci_low", "ci_high", "n", "reference", "delta", "delta_ci_low", "delta_ci_high", "p_value", "test",
    "n_pairs", "footprint_bytes", "hf_footprint_bytes", "estimate_bytes", "peak_rss_bytes",
    "peak_device_bytes", "prefill_tok_s", "decode_tok_s", "kl_mean", "kl_p99", "top1_agreement",
};

static void csv_text(FILE *out, const char *s)
{
    if (!s)
        return;
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

static void csv_real(FILE *out, double v)
{
    if (isfinite(v))
        fprintf(out, "%.10g", v);
}

static void csv_int(FILE *out, int64_t v)
{
    if (v >= 0)
        fprintf(out, "%lld", (long long)v);
}

qe_status qr_render_csv(qr_report *r, FILE *out, qe_error *err)
{
    for (size_t c = 0; c < sizeof columns / sizeof columns[0]; c++)
        fprintf(out, "%s%s", c ? "," : "", columns[c]);
    fputc('\n', out);
    for (size_t i = 0; i < r->n_scores; i++) {
        const qr_score *s = &r->scores[i];
        const qr_variant *v = qr_report_find_variant(r, s->variant);
        qr_delta d = {.delta = NAN, .ci_low = NAN, .ci_high = NAN, .p_value = NAN};
        bool is_reference = !strcmp(s->variant, r->reference_variant);
        if (!is_reference && qr_compare_score(r, r->reference_variant, r, s, &d, err) != QE_OK)
            return err->code;
        double lo, hi;
        qr_score_interval(s, &lo, &hi);

        csv_int(out, r->run.run_id), fputc(',', out);
        csv_text(out, r->run.model_path), fputc(',', out);
        csv_text(out, s->variant), fputc(',', out);
        csv_text(out, s->task), fputc(',', out);
        csv_text(out, s->metric), fputc(',', out);
        csv_text(out, s->benchmark), fputc(',', out);
        csv_text(out, s->label), fputc(',', out);
        fputs(s->role == QR_HEADLINE ? "headline," : "detail,", out);
        csv_real(out, s->value), fputc(',', out);
        csv_real(out, s->std_error), fputc(',', out);
        csv_real(out, lo), fputc(',', out);
        csv_real(out, hi), fputc(',', out);
        csv_int(out, s->n), fputc(',', out);
        csv_text(out, r->reference_variant), fputc(',', out);
        csv_real(out, d.delta), fputc(',', out);
        csv_real(out, d.ci_low), fputc(',', out);
        csv_real(out, d.ci_high), fputc(',', out);
        csv_real(out, d.p_value), fputc(',', out);
        if (!is_reference)
            fputs(qr_test_name(d.test), out);
        fputc(',', out);
        if (!is_reference)
            csv_int(out, d.n_pairs);
        fputc(',', out);
        if (v) {
            csv_int(out, v->footprint_bytes), fputc(',', out);
            csv_int(out, v->hf_footprint_bytes), fputc(',', out);
            csv_int(out, v->estimate_bytes), fputc(',', out);
            csv_int(out, v->peak_rss_bytes), fputc(',', out);
            csv_int(out, v->peak_device_bytes), fputc(',', out);
            csv_real(out, v->prefill_tok_s), fputc(',', out);
            csv_real(out, v->decode_tok_s), fputc(',', out);
            csv_real(out, v->kl_mean), fputc(',', out);
            csv_real(out, v->kl_p99), fputc(',', out);
            csv_real(out, v->top1_agreement);
        } else {
            fputs(",,,,,,,,,", out);
        }
        fputc('\n', out);
    }
    if (fflush(out) || ferror(out))
        return qe_fail(err, QE_EIO, "report: writing the csv failed");
    return QE_OK;
}
