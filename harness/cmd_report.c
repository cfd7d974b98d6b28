/* qeval report [--db FILE] [--run ID] [--format md|html|csv|json] [-o FILE] [--max-changes N]
 * — one run's report: main table, per-benchmark detail, what changed, the run's facts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "report_load.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: qeval report [--db FILE] [--run ID] [--format md|html|csv|json] [-o FILE]\n"
                 "  --db FILE        results file (default: $QEVAL_DB, else %s)\n"
                 "  --run ID         the run to report (default: the newest complete run)\n"
                 "  --format F       md (default; pastes into a pull request), html (one self-contained\n"
                 "                   file with charts), csv (one row per variant x task x metric), json\n"
                 "  -o FILE          write there instead of stdout\n"
                 "  --max-changes N  rows of \"what changed\" (default 20)\n"
                 "Formats and their keys: docs/report_formats.md\n", QH_STORE_DEFAULT_PATH);
}

/* Writes the rendered report to path (stdout when NULL); a failed render leaves no file. */
qe_status qh_write_report(qr_report *report, qr_format format, const qr_render_options *opts, const char *path,
                          qe_error *err)
{
    FILE *out = path ? fopen(path, "w") : stdout;
    if (!out)
        return qe_fail(err, QE_EIO, "%s: cannot open for writing", path);
    qe_status rc = qr_render(report, format, opts, out, err);
    if (path) {
        if (fclose(out) && rc == QE_OK)
            rc = qe_fail(err, QE_EIO, "%s: writing failed", path);
        if (rc != QE_OK)
            remove(path);
    }
    return rc;
}

int qh_cmd_report(int argc, char **argv)
{
    const char *db = qh_default_db_path(), *run = NULL, *output = NULL, *format_name = "md";
    qr_render_options opts = {0};
    for (int i = 1; i < argc; i++) {
        bool has_value = i + 1 < argc;
        if (!strcmp(argv[i], "--db") && has_value) {
            db = argv[++i];
        } else if (!strcmp(argv[i], "--run") && has_value) {
            run = argv[++i];
            if (strspn(run, "0123456789") != strlen(run) || !*run)
                return qh_usage_error("report", "--run wants a run id, got '%s'", run);
        } else if (!strcmp(argv[i], "--format") && has_value) {
            format_name = argv[++i];
        } else if (!strcmp(argv[i], "-o") && has_value) {
            output = argv[++i];
        } else if (!strcmp(argv[i], "--max-changes") && has_value) {
            char *end;
            long n = strtol(argv[++i], &end, 10);
            if (*end || n <= 0)
                return qh_usage_error("report", "--max-changes wants a positive count, got '%s'", argv[i]);
            opts.max_changes = (size_t)n;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return QH_EXIT_OK;
        } else {
            usage(stderr);
            return qh_usage_error("report", "unexpected argument '%s'", argv[i]);
        }
    }
    qe_error err = {0};
    qr_format format;
    if (qr_format_parse(format_name, &format, &err) != QE_OK)
        return qh_usage_error("report", "%s", err.msg);
    qr_report *report = NULL;
    qe_status rc = qr_report_open(db, run, &report, &err);
    if (rc == QE_OK)
        rc = qh_write_report(report, format, &opts, output, &err);
    if (rc == QE_OK && output)
        fprintf(stderr, "report: %s (run %lld of %s)\n", output, (long long)report->run.run_id, db);
    qr_report_free(report);
    return rc == QE_OK ? QH_EXIT_OK : qh_report_error(&err);
}
