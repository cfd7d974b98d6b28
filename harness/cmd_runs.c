/* qeval runs [--db FILE] [--upgrade] [--check] — lists the runs in a results file with their status. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "run_summary.h"
#include "store.h"

/* The results file a command uses: --db, else $QEVAL_DB, else ./results.db. */
const char *qh_default_db_path(void)
{
    const char *env = getenv("QEVAL_DB");
    return env && *env ? env : QH_STORE_DEFAULT_PATH;
}

static bool parse_utc(const char *iso, time_t *t)
{
    struct tm tm = {0};
    double seconds = 0;
    if (!iso || sscanf(iso, "%d-%d-%dT%d:%d:%lf", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                       &seconds) != 6)
        return false;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    tm.tm_sec = (int)seconds;
    *t = timegm(&tm);
    return true;
}

static void format_duration(const qh_run *run, char *out, size_t cap)
{
    time_t start, end;
    if (!parse_utc(run->started_at, &start) || !parse_utc(run->finished_at, &end)) {
        snprintf(out, cap, "-");
        return;
    }
    long s = (long)difftime(end, start);
    if (s >= 3600)
        snprintf(out, cap, "%ldh%02ldm", s / 3600, s / 60 % 60);
    else
        snprintf(out, cap, "%ldm%02lds", s / 60, s % 60);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: qeval runs [--db FILE] [--upgrade] [--check]\n"
                 "  --db FILE   results file (default: $QEVAL_DB, else %s)\n"
                 "  --upgrade   migrate an older results file to this build's schema\n"
                 "  --check     read the whole file first and report any damage\n", QH_STORE_DEFAULT_PATH);
}

int qh_cmd_runs(int argc, char **argv)
{
    const char *path = qh_default_db_path();
    bool is_upgrade = false, is_check = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--db") && i + 1 < argc) {
            path = argv[++i];
        } else if (!strcmp(argv[i], "--upgrade")) {
            is_upgrade = true;
        } else if (!strcmp(argv[i], "--check")) {
            is_check = true;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return QH_EXIT_OK;
        } else {
            usage(stderr);
            return qh_usage_error("runs", "unexpected argument '%s'", argv[i]);
        }
    }
    qe_error err = {0};
    qh_store_options opts = {.is_read_only = !is_upgrade};
    qh_store *store = NULL;
    qh_run *runs = NULL;
    size_t n_runs = 0;
    qe_status st = qh_store_open(path, &opts, &store, &err);
    if (st == QE_OK && is_check)
        st = qh_store_check(store, &err);
    if (st == QE_OK)
        st = qh_store_list_runs(store, &runs, &n_runs, &err);
    if (st == QE_OK && n_runs == 0)
        printf("no runs in %s\n", path);
    else if (st == QE_OK)
        printf("%-5s %-12s %-25s %-9s %-8s %-20s %s\n", "ID", "STATUS", "STARTED (UTC)", "DURATION", "SAMPLES",
               "VARIANTS", "MODEL");
    for (size_t i = 0; i < n_runs && st == QE_OK; i++) {
        qh_variant_row *variants = NULL;
        size_t n_variants = 0;
        int64_t n_samples = 0;
        char names[256] = "", duration[32];
        st = qh_store_get_variants(store, runs[i].id, &variants, &n_variants, &err);
        if (st == QE_OK)
            st = qh_store_count_samples(store, runs[i].id, &n_samples, &err);
        for (size_t v = 0; v < n_variants; v++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", v ? "," : "", variants[v].variant);
        qh_variant_rows_free(variants, n_variants);
        format_duration(&runs[i], duration, sizeof duration);
        if (st == QE_OK)
            printf("%-5lld %-12s %-25s %-9s %-8lld %-20s %s\n", (long long)runs[i].id,
                   qh_run_status_name(runs[i].status), runs[i].started_at, duration, (long long)n_samples,
                   names[0] ? names : "-", runs[i].model_path ? runs[i].model_path : "-");
        char chat_template[64];
        qh_run_chat_template(&runs[i], chat_template, sizeof chat_template);
        if (st == QE_OK && chat_template[0])
            printf("      chat template: %s\n", chat_template);
        if (st == QE_OK && runs[i].error)
            printf("      error: %s\n", runs[i].error);
    }
    qh_runs_free(runs, n_runs);
    qh_store_close(store);
    return st == QE_OK ? QH_EXIT_OK : qh_report_error(&err);
}
