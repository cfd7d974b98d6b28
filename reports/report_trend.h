/* report_trend — `qeval trend`: one or more scores across the runs of one or more results files
 * (a history file, or the per-night files of a Slurm nightly), oldest first by start time, as a
 * markdown table and an SVG line chart (one line per variant x task x metric). */
#ifndef QR_REPORT_TREND_H
#define QR_REPORT_TREND_H

#include "report.h"
#include "store.h"

typedef struct {
    const char *model;   /* keep runs whose model_path contains it or whose model_sha256 is it */
    const char *variant; /* NULL: every variant                                                */
    const char *task;    /* NULL: every task                                                   */
    const char *metric;  /* NULL: every metric                                                 */
} qr_trend_filter;

typedef struct {
    size_t n_runs, n_series;
    int64_t *run_ids;      /* [n_runs]                                                         */
    char **run_labels;     /* [n_runs] "#ID date" from one file, "date time #ID" from several   */
    char **series;         /* [n_series] "variant task metric"                                 */
    double *values;        /* [n_series * n_runs], fraction; NAN where a run lacks the score    */
    double *std_errors;    /* [n_series * n_runs]                                              */
} qr_trend;

/* The runs of stores[n_stores] in start-time order; runs with no matching score are left out.
 * run_ids are each run's id in its own file. */
qe_status qr_trend_load(qh_store *const *stores, size_t n_stores, const qr_trend_filter *filter, qr_trend **out,
                        qe_error *err);
void qr_trend_free(qr_trend *trend); /* NULL-safe */

qe_status qr_render_trend_md(const qr_trend *trend, FILE *out, qe_error *err);
/* A standalone SVG file (declares its namespace). */
qe_status qr_render_trend_svg(const qr_trend *trend, FILE *out, qe_error *err);

#endif
