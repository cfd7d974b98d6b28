/* report_diff — `qeval compare`: two runs (a baseline and a candidate), per variant and headline
 * score, the change with its 95 % interval, p-value and a verdict, and whether it should fail a
 * nightly job. Paired on common doc_ids when both runs kept samples, else unpaired (report.h's
 * qr_compare_score). */
#ifndef QR_REPORT_DIFF_H
#define QR_REPORT_DIFF_H

#include "report.h"

typedef enum { QR_NO_CHANGE, QR_REGRESSION, QR_IMPROVEMENT, QR_UNTESTED } qr_verdict;
const char *qr_verdict_name(qr_verdict verdict); /* "no significant change", "regression", ... */

typedef struct {
    double max_drop_points; /* a significant drop larger than this fails (points, e.g. 1.0)      */
    double alpha;           /* significance level, e.g. 0.05                                     */
} qr_diff_options;

/* One (variant, headline score) present in both runs. Pointers into the candidate report. */
typedef struct {
    const char *variant, *task, *metric, *label;
    double base_value, cand_value; /* fractions                                                */
    qr_delta delta;                /* candidate - baseline                                     */
    qr_verdict verdict;            /* by p < alpha and the sign of the delta                   */
    bool is_failing;               /* a regression of more than max_drop_points                */
} qr_diff_row;

/* Every headline score of the candidate whose variant, task and metric the baseline also has.
 * *rows malloc'd (free()); *is_failing: any row fails. */
qe_status qr_diff(qr_report *baseline, qr_report *candidate, const qr_diff_options *opts, qr_diff_row **rows,
                  size_t *n_rows, bool *is_failing, qe_error *err);

/* Renders the rows in md, csv, json or html (a plain table, self-contained). */
qe_status qr_render_diff(const qr_report *baseline, const qr_report *candidate, const qr_diff_options *opts,
                         const qr_diff_row *rows, size_t n_rows, qr_format format, FILE *out, qe_error *err);

#endif
