/* qeval trend [--db FILE] [--model M] [--variant V] [--task T] [--metric X] [-o chart.svg]
 * — a score's history across the runs of a results file: a markdown table on stdout and, with
 * -o, an SVG line chart. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "report_trend.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: qeval trend [--db FILE] [--model M] [--variant V] [--task T] [--metric X] [-o chart.svg]\n"
                 "  --db FILE      results file (default: $QEVAL_DB, else %s)\n"
                 "  --model M      runs whose model path contains M (or whose model sha256 is M)\n"
                 "  --variant, --task, --metric   which scores (default: all)\n"
                 "  -o FILE        also write an SVG line chart there\n", QH_STORE_DEFAULT_PATH);
}

int qh_cmd_trend(int argc, char **argv)
{
    const char *db = qh_default_db_path(), *chart = NULL;
    qr_trend_filter filter = {0};
    for (int i = 1; i < argc; i++) {
        bool has_value = i + 1 < argc;
        if (!strcmp(argv[i], "--db") && has_value)
            db = argv[++i];
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
    qe_error err = {0};
    qh_store_options opts = {.is_read_only = true};
    qh_store *store = NULL;
    qr_trend *trend = NULL;
    qe_status rc = qh_store_open(db, &opts, &store, &err);
    if (rc == QE_OK)
        rc = qr_trend_load(store, &filter, &trend, &err);
    if (rc == QE_OK && trend->n_series == 0)
        rc = qe_fail(&err, QE_EINVAL, "%s: no run has a score matching the filters", db);
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
    qh_store_close(store);
    return rc == QE_OK ? QH_EXIT_OK : qh_report_error(&err);
}
