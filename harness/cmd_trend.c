/* qeval trend [--db FILE]... [--model M] [--variant V] [--task T] [--metric X] [-o chart.svg]
 * — a score's history across the runs of one results file or several (--db again for each: the
 * per-night merged files of a Slurm nightly), in start-time order: a markdown table on stdout
 * and, with -o, an SVG line chart. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "report_trend.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: qeval trend [--db FILE]... [--model M] [--variant V] [--task T] [--metric X] [-o chart.svg]\n"
                 "  --db FILE      results file (default: $QEVAL_DB, else %s); again for more files,\n"
                 "                 whose runs are put in start-time order\n"
                 "  --model M      runs whose model path contains M (or whose model sha256 is M)\n"
                 "  --variant, --task, --metric   which scores (default: all)\n"
                 "  -o FILE        also write an SVG line chart there\n", QH_STORE_DEFAULT_PATH);
}

int qh_cmd_trend(int argc, char **argv)
{
    enum { MAX_FILES = 366 };
    const char *dbs[MAX_FILES], *chart = NULL;
    size_t n_dbs = 0;
    qr_trend_filter filter = {0};
    for (int i = 1; i < argc; i++) {
        bool has_value = i + 1 < argc;
        if (!strcmp(argv[i], "--db") && has_value) {
            if (n_dbs == MAX_FILES)
                return qh_usage_error("trend", "at most %d results files", MAX_FILES);
            dbs[n_dbs++] = argv[++i];
        }
        else if (!strcmp(argv[i], "--model") && has_value)
            filter.model = argv[++i];
        else if (!strcmp(argv[i], "--variant") && has_value)
            filter.variant = argv[++i];
        else if (!strcmp(argv[i], "--task") && has_value)
            filter.task = argv[++i];
        else if (!strcmp(argv[i], "--metric") && has_value)
            filter.metric = argv[++i];
        else if (!strcmp(argv[i], "-o") && has_value)
            chart = argv[++i];
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return QH_EXIT_OK;
        } else {
            usage(stderr);
            return qh_usage_error("trend", "unexpected argument '%s'", argv[i]);
        }
    }
    if (n_dbs == 0)
        dbs[n_dbs++] = qh_default_db_path();
    qe_error err = {0};
    qh_store_options opts = {.is_read_only = true};
    qh_store *stores[MAX_FILES] = {0};
    qr_trend *trend = NULL;
    qe_status rc = QE_OK;
    qh_raise_open_file_limit(); /* every file stays open until the trend is read */
    for (size_t i = 0; i < n_dbs && rc == QE_OK; i++)
        rc = qh_store_open(dbs[i], &opts, &stores[i], &err);
    if (rc == QE_OK)
        rc = qr_trend_load(stores, n_dbs, &filter, &trend, &err);
    if (rc == QE_OK && trend->n_series == 0)
        rc = n_dbs == 1 ? qe_fail(&err, QE_EINVAL, "%s: no run has a score matching the filters", dbs[0])
                        : qe_fail(&err, QE_EINVAL, "no run of the %zu files (%s, ...) has a score matching the filters",
                                  n_dbs, dbs[0]);
    if (rc == QE_OK)
        rc = qr_render_trend_md(trend, stdout, &err);
    if (rc == QE_OK && chart) {
        FILE *out = fopen(chart, "w");
        if (!out)
            rc = qe_fail(&err, QE_EIO, "%s: cannot open for writing", chart);
        else {
            rc = qr_render_trend_svg(trend, out, &err);
            if (fclose(out) && rc == QE_OK)
                rc = qe_fail(&err, QE_EIO, "%s: writing failed", chart);
        }
    }
    qr_trend_free(trend);
    for (size_t i = 0; i < n_dbs; i++)
        qh_store_close(stores[i]);
    return rc == QE_OK ? QH_EXIT_OK : qh_report_error(&err);
}
