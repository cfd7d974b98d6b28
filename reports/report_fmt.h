/* report_fmt — what the renderers share: the main table's columns, the benchmarks in order, and
 * the text form of numbers (unknowns as "—"). Internal to reports/. */
#ifndef QR_REPORT_FMT_H
#define QR_REPORT_FMT_H

#include "report.h"

#define QR_DASH "\xe2\x80\x94" /* "—" in UTF-8: an unknown value */

/* One headline (task, metric) pair: a column of the main table. Pointers into the report. */
typedef struct {
    const char *task, *metric, *label, *benchmark;
} qr_column;

/* Distinct headline (task, metric) pairs in the order they first appear. *cols malloc'd. */
qe_status qr_headline_columns(const qr_report *r, qr_column **cols, size_t *n, qe_error *err);
/* Distinct benchmarks (of any score) in order of first appearance. *names malloc'd (pointers into r). */
qe_status qr_benchmarks(const qr_report *r, const char ***names, size_t *n, qe_error *err);
/* Distinct (task, metric) of one benchmark's scores, headline first, then in order. */
qe_status qr_benchmark_rows(const qr_report *r, const char *benchmark, qr_column **rows, size_t *n, qe_error *err);

/* Text forms into buf (>= 32 bytes); each returns buf. */
char *qr_fmt_points(char *buf, double fraction);              /* 0.4523 -> "45.2"; NAN -> "—"  */
char *qr_fmt_signed_points(char *buf, double fraction);       /* -0.25 -> "-25.0", +0.1 -> "+10.0" */
char *qr_fmt_gb(char *buf, int64_t bytes);                    /* 1.23e9 -> "1.23"; -1 -> "—"   */
char *qr_fmt_p(char *buf, double p);                          /* "0.125", "<0.001", "—"        */
char *qr_fmt_real(char *buf, const char *fmt, double value);  /* printf fmt, or "—" for NAN    */

/* Whether a delta is significant at 0.05 (for marking tables). */
bool qr_is_significant(const qr_delta *d);

#endif
