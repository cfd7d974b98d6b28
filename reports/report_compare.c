/* report_compare — deltas between two scores with their tests, score intervals, and the list of
 * answers that changed against the reference variant. The statistics themselves are stats.c's;
 * this file decides which applies (paired or not, binary or continuous). */
#include "report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *qr_test_name(qr_test test)
{
    switch (test) {
    case QR_TEST_MCNEMAR: return "mcnemar-exact";
    case QR_TEST_PAIRED_T: return "paired-t";
    case QR_TEST_TWO_PROP_Z: return "two-proportion-z";
    case QR_TEST_Z: return "z";
    case QR_TEST_NONE: break;
    }
    return "none";
}

const char *qr_who_right_name(qr_who_right who)
{
    switch (who) {
    case QR_RIGHT_REFERENCE: return "reference";
    case QR_RIGHT_VARIANT: return "variant";
    case QR_RIGHT_BOTH: return "both";
    case QR_RIGHT_NEITHER: break;
    }
    return "neither";
}

void qr_score_interval(const qr_score *s, double *low, double *high)
{
    *low = *high = NAN;
    if (isfinite(s->std_error)) {
        qr_interval ci = qr_normal_ci95(s->value, s->std_error);
        *low = ci.lo, *high = ci.hi;
        if (s->is_binary || s->is_unit_range) /* a mean of outcomes in [0, 1] cannot leave it */
            *low = fmax(*low, 0), *high = fmin(*high, 1);
    } else if (s->is_binary && s->n > 0 && isfinite(s->value)) {
        qr_interval ci = qr_wilson_ci95((size_t)llround(s->value * (double)s->n), (size_t)s->n);
        *low = ci.lo, *high = ci.hi;
    }
}

static double two_sided_normal_p(double z)
{
    return erfc(fabs(z) / sqrt(2.0));
}

/* Unpaired: two-proportion z-test (pooled) for binary scores with known n, its interval
 * Newcombe's hybrid score interval (method 10, from the two Wilson intervals), which unlike
 * delta ± 1.96 x the unpooled standard error does not shrink to a point when a share is 0 or 1;
 * else a z-test on the two standard errors. */
static void compare_unpaired(const qr_score *base, const qr_score *cand, qr_delta *out)
{
    double delta = cand->value - base->value;
    out->delta = delta;
    if (base->is_binary && cand->is_binary && base->n > 0 && cand->n > 0 && isfinite(delta)) {
        double n1 = (double)base->n, n2 = (double)cand->n;
        double p1 = base->value, p2 = cand->value;
        double pooled = (p1 * n1 + p2 * n2) / (n1 + n2);
        double se_pooled = sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2));
        out->test = QR_TEST_TWO_PROP_Z;
        out->p_value = se_pooled > 0 ? two_sided_normal_p(delta / se_pooled) : (delta == 0 ? 1.0 : 0.0);
        qr_interval w1 = qr_wilson_ci95((size_t)llround(p1 * n1), (size_t)base->n);
        qr_interval w2 = qr_wilson_ci95((size_t)llround(p2 * n2), (size_t)cand->n);
        out->ci_low = delta - sqrt((p2 - w2.lo) * (p2 - w2.lo) + (w1.hi - p1) * (w1.hi - p1));
        out->ci_high = delta + sqrt((w2.hi - p2) * (w2.hi - p2) + (p1 - w1.lo) * (p1 - w1.lo));
    } else if (isfinite(base->std_error) && isfinite(cand->std_error)) {
        double se = sqrt(base->std_error * base->std_error + cand->std_error * cand->std_error);
        out->test = QR_TEST_Z;
        out->p_value = se > 0 ? two_sided_normal_p(delta / se) : (delta == 0 ? 1.0 : 0.0);
        out->ci_low = delta - QR_Z95 * se, out->ci_high = delta + QR_Z95 * se;
    }
}

qe_status qr_compare_score(qr_report *baseline, const char *base_variant, qr_report *candidate,
                           const qr_score *cand, qr_delta *out, qe_error *err)
{
    *out = (qr_delta){.delta = NAN, .ci_low = NAN, .ci_high = NAN, .p_value = NAN, .test = QR_TEST_NONE};
    const char *variant = base_variant ? base_variant : cand->variant;
    const qr_score *base = qr_report_find_score(baseline, variant, cand->task, cand->metric);
    if (!base)
        return QE_OK;

    size_t n_base, n_cand;
    const qr_sample *bs = qr_report_samples(baseline, variant, cand->task, cand->metric, &n_base);
    const qr_sample *cs = qr_report_samples(candidate, cand->variant, cand->task, cand->metric, &n_cand);
    size_t cap = n_base < n_cand ? n_base : n_cand;
    double *bv = cap ? malloc(cap * sizeof *bv) : NULL, *cv = cap ? malloc(cap * sizeof *cv) : NULL;
    if (cap && (!bv || !cv)) {
        free(bv), free(cv);
        return qe_fail(err, QE_ENOMEM, "report: out of memory pairing %zu documents of %s", cap, cand->task);
    }
    size_t n = 0;
    for (size_t i = 0, j = 0; i < n_base && j < n_cand;) {
        if (bs[i].doc_id < cs[j].doc_id)
            i++;
        else if (bs[i].doc_id > cs[j].doc_id)
            j++;
        else
            bv[n] = bs[i++].value, cv[n++] = cs[j++].value;
    }

    /* Exact McNemar holds for any number of pairs (one gives p = 1), the t-test needs two; with one
     * pair the interval is unknown (no spread to measure) rather than an unpaired guess. */
    bool is_binary = base->is_binary && cand->is_binary;
    if (n >= (is_binary ? 1u : 2u)) {
        double *diff = bv; /* reuse: diff[i] = cand - base, after the counts that need both */
        out->n_pairs = (int64_t)n;
        size_t b = 0, c = 0;
        if (is_binary) {
            qr_discordant_pairs(bv, cv, n, &b, &c);
            out->n_base_only_right = (int64_t)b, out->n_cand_only_right = (int64_t)c;
            out->test = QR_TEST_MCNEMAR;
            out->p_value = qr_mcnemar_exact_p(b, c);
        } else {
            out->test = QR_TEST_PAIRED_T;
            out->p_value = qr_paired_ttest(cv, bv, n).p;
        }
        for (size_t i = 0; i < n; i++)
            diff[i] = cv[i] - diff[i];
        qr_mean_se m = qr_mean_stderr(diff, n);
        out->delta = m.mean;
        qr_interval ci = qr_normal_ci95(m.mean, m.std_error);
        out->ci_low = ci.lo, out->ci_high = ci.hi;
    } else {
        compare_unpaired(base, cand, out);
    }
    free(bv), free(cv);
    return QE_OK;
}

static int change_cmp(const void *pa, const void *pb)
{
    const qr_change *a = pa, *b = pb;
    bool ka = isfinite(a->confidence), kb = isfinite(b->confidence);
    if (ka != kb)
        return ka ? -1 : 1;
    if (ka && a->confidence != b->confidence)
        return a->confidence > b->confidence ? -1 : 1;
    int c = strcmp(a->variant, b->variant);
    if (!c)
        c = strcmp(a->task, b->task);
    if (!c)
        c = (a->doc_id > b->doc_id) - (a->doc_id < b->doc_id);
    return c;
}

/* Whether the two outcomes of one document count as a changed answer: different answer texts
 * when both are known, else a different outcome. */
static bool is_changed(const qr_sample *ref, const qr_sample *var)
{
    if (ref->answer && var->answer)
        return strcmp(ref->answer, var->answer) != 0;
    return ref->value != var->value;
}

qe_status qr_report_changes(qr_report *r, qr_change **changes, size_t *n_changes, qe_error *err)
{
    *changes = NULL, *n_changes = 0;
    size_t n = 0, cap = 0;
    qr_change *list = NULL;
    for (size_t k = 0; k < r->n_scores; k++) {
        const qr_score *s = &r->scores[k];
        if (s->role != QR_HEADLINE || !s->is_binary || !strcmp(s->variant, r->reference_variant))
            continue;
        size_t n_ref, n_var;
        const qr_sample *rs = qr_report_samples(r, r->reference_variant, s->task, s->metric, &n_ref);
        const qr_sample *vs = qr_report_samples(r, s->variant, s->task, s->metric, &n_var);
        for (size_t i = 0, j = 0; i < n_ref && j < n_var;) {
            if (rs[i].doc_id < vs[j].doc_id) {
                i++;
                continue;
            }
            if (rs[i].doc_id > vs[j].doc_id) {
                j++;
                continue;
            }
            const qr_sample *a = &rs[i++], *b = &vs[j++];
            if (!is_changed(a, b))
                continue;
            if (n == cap) {
                cap = cap ? 2 * cap : 16;
                qr_change *p = realloc(list, cap * sizeof *list);
                if (!p) {
                    free(list);
                    return qe_fail(err, QE_ENOMEM, "report: out of memory listing %zu changed answers", n);
                }
                list = p;
            }
            bool ref_right = a->value >= 0.5, var_right = b->value >= 0.5;
            list[n++] = (qr_change){
                .variant = s->variant, .task = a->source_task ? a->source_task : s->task, .metric = s->metric,
                .benchmark = s->benchmark,
                .doc_id = a->source_task ? a->source_doc_id : a->doc_id,
                .question = a->question ? a->question : b->question,
                .reference_answer = a->answer, .variant_answer = b->answer,
                .reference_value = a->value, .variant_value = b->value,
                .who_right = ref_right ? (var_right ? QR_RIGHT_BOTH : QR_RIGHT_REFERENCE)
                                       : (var_right ? QR_RIGHT_VARIANT : QR_RIGHT_NEITHER),
                .confidence = b->confidence,
            };
        }
    }
    if (n)
        qsort(list, n, sizeof *list, change_cmp);
    *changes = list, *n_changes = n;
    return QE_OK;
}

qe_status qr_format_parse(const char *name, qr_format *format, qe_error *err)
{
    static const struct { const char *name; qr_format format; } formats[] = {
        {"md", QR_FORMAT_MD}, {"markdown", QR_FORMAT_MD}, {"html", QR_FORMAT_HTML},
        {"csv", QR_FORMAT_CSV}, {"json", QR_FORMAT_JSON},
    };
    for (size_t i = 0; name && i < sizeof formats / sizeof formats[0]; i++)
        if (!strcmp(name, formats[i].name)) {
            *format = formats[i].format;
            return QE_OK;
        }
    return qe_fail(err, QE_EINVAL, "unknown format '%s' (md, html, csv or json)", name ? name : "");
}
