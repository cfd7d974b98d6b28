/* report_fmt — shared pieces of the renderers (report_fmt.h). */
#include "report_fmt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static qe_status add_column(qr_column **cols, size_t *n, const qr_score *s, qe_error *err)
{
    for (size_t i = 0; i < *n; i++)
        if (!strcmp((*cols)[i].task, s->task) && !strcmp((*cols)[i].metric, s->metric))
            return QE_OK;
    qr_column *p = realloc(*cols, (*n + 1) * sizeof *p);
    if (!p)
        return qe_fail(err, QE_ENOMEM, "report: out of memory listing columns");
    p[(*n)++] = (qr_column){s->task, s->metric, s->label, s->benchmark};
    *cols = p;
    return QE_OK;
}

qe_status qr_headline_columns(const qr_report *r, qr_column **cols, size_t *n, qe_error *err)
{
    *cols = NULL, *n = 0;
    for (size_t i = 0; i < r->n_scores; i++)
        if (r->scores[i].role == QR_HEADLINE && add_column(cols, n, &r->scores[i], err) != QE_OK) {
            free(*cols), *cols = NULL, *n = 0;
            return QE_ENOMEM;
        }
    return QE_OK;
}

qe_status qr_benchmark_rows(const qr_report *r, const char *benchmark, qr_column **rows, size_t *n, qe_error *err)
{
    *rows = NULL, *n = 0;
    for (int pass = 0; pass < 2; pass++) {
        qr_role role = pass == 0 ? QR_HEADLINE : QR_DETAIL;
        for (size_t i = 0; i < r->n_scores; i++) {
            const qr_score *s = &r->scores[i];
            if (s->role == role && !strcmp(s->benchmark, benchmark) && add_column(rows, n, s, err) != QE_OK) {
                free(*rows), *rows = NULL, *n = 0;
                return QE_ENOMEM;
            }
        }
    }
    return QE_OK;
}

qe_status qr_benchmarks(const qr_report *r, const char ***names, size_t *n, qe_error *err)
{
    *names = NULL, *n = 0;
    for (size_t i = 0; i < r->n_scores; i++) {
        const char *b = r->scores[i].benchmark;
        bool is_seen = false;
        for (size_t j = 0; j < *n && !is_seen; j++)
            is_seen = !strcmp((*names)[j], b);
        if (is_seen)
            continue;
        const char **p = realloc(*names, (*n + 1) * sizeof *p);
        if (!p) {
            free(*names), *names = NULL, *n = 0;
            return qe_fail(err, QE_ENOMEM, "report: out of memory listing benchmarks");
        }
        p[(*n)++] = b;
        *names = p;
    }
    return QE_OK;
}

char *qr_fmt_points(char *buf, double fraction)
{
    return qr_fmt_real(buf, "%.1f", fraction * 100);
}

char *qr_fmt_signed_points(char *buf, double fraction)
{
    return qr_fmt_real(buf, "%+.1f", fraction * 100);
}

char *qr_fmt_gb(char *buf, int64_t bytes)
{
    return bytes < 0 ? strcpy(buf, QR_DASH) : qr_fmt_real(buf, "%.2f", (double)bytes / 1e9);
}

char *qr_fmt_p(char *buf, double p)
{
    if (isfinite(p) && p < 0.001)
        return strcpy(buf, "<0.001");
    return qr_fmt_real(buf, "%.3f", p);
}

char *qr_fmt_real(char *buf, const char *fmt, double value)
{
    if (!isfinite(value))
        return strcpy(buf, QR_DASH);
    snprintf(buf, 32, fmt, value);
    return buf;
}

bool qr_is_significant(const qr_delta *d)
{
    return isfinite(d->p_value) && d->p_value < 0.05;
}
