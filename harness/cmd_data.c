/* qeval data verify|fetch — checks the benchmark files against datasets/manifest.tsv, or
 * downloads them (from the upstream URLs, or a mirror of them: --mirror / $QEVAL_DATA_MIRROR). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "qd_manifest.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: qeval data verify [BENCH] [--data-dir D] [--manifest M]\n"
                 "       qeval data fetch [BENCH] [--data-dir D] [--manifest M] [--mirror URL]\n"
                 "  BENCH: mmlu, gsm8k, humaneval or truthfulqa (default: all). The data dir is --data-dir,\n"
                 "  else $QEVAL_DATA, else ./data.\n"
                 "  fetch downloads what is missing or wrong with curl, checks each file's sha256 and record\n"
                 "  count before it takes the place of anything, and refuses a download that does not match.\n"
                 "  --mirror URL (else $QEVAL_DATA_MIRROR): fetch https://HOST/PATH of the manifest from\n"
                 "  URL/HOST/PATH instead, e.g. a local copy served over HTTP or file:///srv/qeval-mirror.\n");
}

static void print_line(const char *line, void *ctx) { fprintf((FILE *)ctx, "%s\n", line); }

int qh_cmd_data(int argc, char **argv)
{
    const char *action = NULL, *bench = NULL, *data_dir = NULL, *mirror = getenv("QEVAL_DATA_MIRROR");
    const char *manifest_path = getenv("QEVAL_MANIFEST");
    if (!manifest_path || !*manifest_path)
        manifest_path = QEVAL_SOURCE_DIR "/datasets/manifest.tsv";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return QH_EXIT_OK;
        } else if (!strcmp(argv[i], "--data-dir") || !strcmp(argv[i], "--manifest") || !strcmp(argv[i], "--mirror")) {
            if (i + 1 >= argc)
                return qh_usage_error("data", "%s needs a value", argv[i]);
            *(!strcmp(argv[i], "--data-dir") ? &data_dir : !strcmp(argv[i], "--mirror") ? &mirror : &manifest_path) =
                argv[i + 1];
            i++;
        } else if (argv[i][0] == '-') {
            usage(stderr);
            return qh_usage_error("data", "unknown option '%s'", argv[i]);
        } else if (!action) {
            action = argv[i];
        } else if (!bench) {
            bench = argv[i];
        } else {
            return qh_usage_error("data", "unexpected argument '%s'", argv[i]);
        }
    }
    if (!action || (strcmp(action, "verify") && strcmp(action, "fetch"))) {
        usage(stderr);
        return qh_usage_error("data", "expected verify or fetch");
    }
    qe_error err = {0};
    qd_manifest manifest;
    if (qd_manifest_load(manifest_path, &manifest, &err) != QE_OK)
        return qh_report_error(&err);
    const char *dir = qd_data_dir(data_dir);
    int status = QH_EXIT_OK;
    if (!strcmp(action, "fetch")) {
        if ((mirror && *mirror && qd_manifest_use_mirror(&manifest, mirror, &err) != QE_OK) ||
            qd_fetch(dir, &manifest, bench, print_line, stdout, &err) != QE_OK)
            status = qh_report_error(&err);
        qd_manifest_free(&manifest);
        return status;
    }
    int n_checked = 0, n_bad = 0;
    for (int i = 0; i < manifest.n_entries; i++) {
        const qd_manifest_entry *e = &manifest.entries[i];
        if (bench && strcmp(bench, e->bench) != 0)
            continue;
        n_checked++;
        if (qd_verify_entry(dir, e, &err) == QE_OK) {
            printf("ok    %s\n", e->path);
        } else {
            printf("FAIL  %s\n", err.msg);
            n_bad++;
        }
    }
    qd_manifest_free(&manifest);
    if (n_checked == 0) {
        qe_fail(&err, QE_EINVAL, "no benchmark \"%s\" in %s", bench ? bench : "", manifest_path);
        return qh_report_error(&err);
    }
    printf("%d files checked in %s, %d failed\n", n_checked, dir, n_bad);
    if (n_bad) {
        qe_fail(&err, QE_EFORMAT, "data verify: %d of %d files do not match the manifest", n_bad, n_checked);
        return qh_report_error(&err);
    }
    return QH_EXIT_OK;
}
