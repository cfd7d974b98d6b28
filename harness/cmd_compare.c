/* qeval compare --baseline RUN|DB --candidate RUN|DB [--db FILE] [--max-drop POINTS] [--alpha A]
 *               [--format md|html|csv|json] [-o FILE]
 * — per variant and headline score, candidate against baseline with a verdict. Exit 1 when any
 * score dropped by more than --max-drop points and the drop is significant at --alpha. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "report_diff.h"
#include "report_load.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: qeval compare --baseline RUN|DB --candidate RUN|DB [--db FILE] [--max-drop POINTS]\n"
                 "                     [--alpha A] [--format md|html|csv|json] [-o FILE]\n"
                 "  RUN|DB           a run id of --db, a results file (its newest complete run) or FILE:ID\n"
                 "  --db FILE        results file for bare run ids (default: $QEVAL_DB, else %s)\n"
                 "  --max-drop P     fail when a score drops by more than P points, significantly (default 1)\n"
                 "  --alpha A        significance level (default 0.05)\n"
                 "exit status: 0 no failing drop, 1 a failing drop (or an error), 2 usage\n", QH_STORE_DEFAULT_PATH);
}

static bool parse_real(const char *s, double lo, double hi, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || !(v >= lo && v <= hi))
        return false;
    *out = v;
    return true;
}

int qh_cmd_compare(int argc, char **argv)
{
    const char *db = qh_default_db_path(), *baseline = NULL, *candidate = NULL, *output = NULL, *format_name = "md";
    qr_diff_options opts = {.max_drop_points = 1.0, .alpha = 0.05};
    for (int i = 1; i < argc; i++) {
        bool has_value = i + 1 < argc;
        if (!strcmp(argv[i], "--baseline") && has_value) {
            baseline = argv[++i];
        } else if (!strcmp(argv[i], "--candidate") && has_value) {
            candidate = argv[++i];
        } else if (!strcmp(argv[i], "--db") && has_value) {
            db = argv[++i];
        } else if (!strcmp(argv[i], "--max-drop") && has_value) {
            if (!parse_real(argv[++i], 0, 100, &opts.max_drop_points))
                return qh_usage_error("compare", "--max-drop wants points in [0, 100], got '%s'", argv[i]);
        } else if (!strcmp(argv[i], "--alpha") && has_value) {
            if (!parse_real(argv[++i], 1e-12, 1, &opts.alpha))
                return qh_usage_error("compare", "--alpha wants a level in (0, 1], got '%s'", argv[i]);
        } else if (!strcmp(argv[i], "--format") && has_value) {
            format_name = argv[++i];
        } else if (!strcmp(argv[i], "-o") && has_value) {
            output = argv[++i];
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return QH_EXIT_OK;
        } else {
            usage(stderr);
            return qh_usage_error("compare", "unexpected argument '%s'", argv[i]);
        }
    }
    if (!baseline || !candidate)
        return qh_usage_error("compare", "needs --baseline and --candidate");
    qe_error err = {0};
    qr_format format;
    if (qr_format_parse(format_name, &format, &err) != QE_OK)
        return qh_usage_error("compare", "%s", err.msg);

    qr_report *base = NULL, *cand = NULL;
    qr_diff_row *rows = NULL;
    size_t n_rows = 0;
    bool is_failing = false;
    FILE *out = NULL;
    qe_status rc = qr_report_open(db, baseline, &base, &err);
    if (rc == QE_OK)
        rc = qr_report_open(db, candidate, &cand, &err);
    if (rc == QE_OK)
        rc = qr_diff(base, cand, &opts, &rows, &n_rows, &is_failing, &err);
    if (rc == QE_OK && !(out = output ? fopen(output, "w") : stdout))
        rc = qe_fail(&err, QE_EIO, "%s: cannot open for writing", output);
    if (rc == QE_OK)
        rc = qr_render_diff(base, cand, &opts, rows, n_rows, format, out, &err);
    if (out && out != stdout && fclose(out) && rc == QE_OK)
        rc = qe_fail(&err, QE_EIO, "%s: writing failed", output);
    free(rows);
    qr_report_free(base);
    qr_report_free(cand);
    if (rc != QE_OK)
        return qh_report_error(&err);
    return is_failing ? QH_EXIT_ERROR : QH_EXIT_OK;
}
