/* report_trend — a score's history across runs (report_trend.h). */
#include "report_trend.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "report_fmt.h"
#include "report_svg.h"

void qr_trend_free(qr_trend *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_runs; i++)
        free(t->run_labels[i]);
    for (size_t i = 0; i < t->n_series; i++)
        free(t->series[i]);
    free(t->run_ids), free(t->run_labels), free(t->series), free(t->values), free(t->std_errors);
    free(t);
}

static bool is_match(const char *want, const char *have)
{
    return !want || (have && !strcmp(want, have));
}

static bool is_model_match(const char *want, const qh_run *run)
{
    return !want || (run->model_path && strstr(run->model_path, want)) ||
           (run->model_sha256 && !strcmp(run->model_sha256, want));
}

/* Index of the series named name, added when new; SIZE_MAX when out of memory. */
static size_t series_index(qr_trend *t, const char *name)
{
    for (size_t i = 0; i < t->n_series; i++)
        if (!strcmp(t->series[i], name))
            return i;
    char **p = realloc(t->series, (t->n_series + 1) * sizeof *p);
    if (!p)
        return SIZE_MAX;
    t->series = p;
    if (!(p[t->n_series] = strdup(name)))
        return SIZE_MAX;
    return t->n_series++;
}

/* One run of one of the files, for ordering the runs of several files by start time. */
typedef struct {
    qh_store *store;
    const qh_run *run;
    size_t order;               /* file, then position in it: ties keep it */
} trend_run;

static int by_start_time(const void *a, const void *b)
{
    const trend_run *x = a, *y = b;
    const char *sx = x->run->started_at ? x->run->started_at : "", *sy = y->run->started_at ? y->run->started_at : "";
    int c = strcmp(sx, sy);
    return c ? c : (x->order > y->order) - (x->order < y->order);
}

qe_status qr_trend_load(qh_store *const *stores, size_t n_stores, const qr_trend_filter *f, qr_trend **out,
                        qe_error *err)
{
    *out = NULL;
    qh_run **runs = calloc(n_stores ? n_stores : 1, sizeof *runs);
    size_t *n_runs_of = calloc(n_stores ? n_stores : 1, sizeof *n_runs_of), n_runs = 0;
    qe_status rc = runs && n_runs_of ? QE_OK : qe_fail(err, QE_ENOMEM, "trend: out of memory");
    for (size_t k = 0; k < n_stores && rc == QE_OK; k++)
        if ((rc = qh_store_list_runs(stores[k], &runs[k], &n_runs_of[k], err)) == QE_OK)
            n_runs += n_runs_of[k];
    trend_run *order = rc == QE_OK ? calloc(n_runs ? n_runs : 1, sizeof *order) : NULL;
    qr_trend *t = order ? calloc(1, sizeof *t) : NULL;
    /* Rows gathered first (run index, series index, value), laid out once the series are known. */
    typedef struct { size_t run, series; double value, std_error; } cell;
    cell *cells = NULL;
    size_t n_cells = 0;
    if (rc == QE_OK && (!t || (n_runs && (!(t->run_ids = calloc(n_runs, sizeof *t->run_ids)) ||
                                          !(t->run_labels = calloc(n_runs, sizeof *t->run_labels))))))
        rc = qe_fail(err, QE_ENOMEM, "trend: out of memory");
    if (rc == QE_OK) {
        size_t n = 0;
        for (size_t k = 0; k < n_stores; k++)
            for (size_t r = 0; r < n_runs_of[k]; r++, n++)
                order[n] = (trend_run){stores[k], &runs[k][r], n};
        qsort(order, n_runs, sizeof *order, by_start_time);
    }
    for (size_t r = 0; r < n_runs && rc == QE_OK; r++) {
        const qh_run *run = order[r].run;
        if (!is_model_match(f->model, run))
            continue;
        qh_task_result_row *rows = NULL;
        size_t n = 0;
        if ((rc = qh_store_get_task_results(order[r].store, run->id, &rows, &n, err)) != QE_OK)
            break;
        bool has_any = false;
        for (size_t i = 0; i < n && rc == QE_OK; i++) {
            if (!is_match(f->variant, rows[i].variant) || !is_match(f->task, rows[i].task) ||
                !is_match(f->metric, rows[i].metric))
                continue;
            char name[512];
            snprintf(name, sizeof name, "%s %s %s", rows[i].variant, rows[i].task, rows[i].metric);
            size_t s = series_index(t, name);
            cell *p = s == SIZE_MAX ? NULL : realloc(cells, (n_cells + 1) * sizeof *p);
            if (!p) {
                rc = qe_fail(err, QE_ENOMEM, "trend: out of memory");
                break;
            }
            cells = p;
            cells[n_cells++] = (cell){t->n_runs, s, rows[i].value, rows[i].std_error};
            has_any = true;
        }
        qh_task_result_rows_free(rows, n);
        if (rc == QE_OK && has_any) {
            /* one file: its run ids; several: ids repeat (a merged nightly file holds run #1), so the time leads */
            char label[64];
            const char *started = run->started_at ? run->started_at : "";
            if (n_stores == 1)
                snprintf(label, sizeof label, "#%lld %.10s", (long long)run->id, started);
            else
                snprintf(label, sizeof label, "%.16s #%lld", started, (long long)run->id);
            t->run_ids[t->n_runs] = run->id;
            if (!(t->run_labels[t->n_runs++] = strdup(label)))
                rc = qe_fail(err, QE_ENOMEM, "trend: out of memory");
        }
    }
    size_t n_values = t ? t->n_series * t->n_runs : 0;
    if (rc == QE_OK && n_values &&
        (!(t->values = malloc(n_values * sizeof *t->values)) || !(t->std_errors = malloc(n_values * sizeof *t->std_errors))))
        rc = qe_fail(err, QE_ENOMEM, "trend: out of memory");
    if (rc == QE_OK) {
        for (size_t i = 0; i < n_values; i++)
            t->values[i] = t->std_errors[i] = NAN;
        for (size_t i = 0; i < n_cells; i++) {
            t->values[cells[i].series * t->n_runs + cells[i].run] = cells[i].value;
            t->std_errors[cells[i].series * t->n_runs + cells[i].run] = cells[i].std_error;
        }
    }
    free(cells);
    free(order);
    for (size_t k = 0; runs && k < n_stores; k++)
        qh_runs_free(runs[k], n_runs_of[k]);
    free(runs);
    free(n_runs_of);
    if (rc != QE_OK) {
        qr_trend_free(t);
        return rc;
    }
    *out = t;
    return QE_OK;
}

qe_status qr_render_trend_md(const qr_trend *t, FILE *out, qe_error *err)
{
    fputs("| run |", out);
    for (size_t s = 0; s < t->n_series; s++)
        fprintf(out, " %s |", t->series[s]);
    fputs("\n|---|", out);
    for (size_t s = 0; s < t->n_series; s++)
        fputs("---:|", out);
    fputc('\n', out);
    char v[32], se[32];
    for (size_t i = 0; i < t->n_runs; i++) {
        fprintf(out, "| %s |", t->run_labels[i]);
        for (size_t s = 0; s < t->n_series; s++) {
            double x = t->values[s * t->n_runs + i], e = t->std_errors[s * t->n_runs + i];
            if (isfinite(e))
                fprintf(out, " %s \xc2\xb1 %s |", qr_fmt_points(v, x), qr_fmt_points(se, QR_Z95 * e));
            else
                fprintf(out, " %s |", qr_fmt_points(v, x));
        }
        fputc('\n', out);
    }
    if (fflush(out) || ferror(out))
        return qe_fail(err, QE_EIO, "trend: writing the table failed");
    return QE_OK;
}

qe_status qr_render_trend_svg(const qr_trend *t, FILE *out, qe_error *err)
{
    double *points = malloc((t->n_series * t->n_runs + 1) * sizeof *points);
    if (!points)
        return qe_fail(err, QE_ENOMEM, "trend: out of memory");
    for (size_t i = 0; i < t->n_series * t->n_runs; i++)
        points[i] = 100 * t->values[i];
    fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", out);
    qr_svg_frame frame = {"Score across runs", "run", "score (points)", 720, 360, true};
    qr_svg_lines(out, &frame, (const char *const *)t->run_labels, t->n_runs, (const char *const *)t->series,
                 t->n_series, points);
    free(points);
    if (fflush(out) || ferror(out))
        return qe_fail(err, QE_EIO, "trend: writing the chart failed");
    return QE_OK;
}
