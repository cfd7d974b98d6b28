/* qeval model — the model cache: `list` the known short names, `fetch NAME` downloads and
 * verifies one and prints its path, `path NAME` prints what `qeval run NAME` would load. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "model_cache.h"

static int usage(void)
{
    return qh_usage_error("model", "usage: qeval model list | fetch NAME | path NAME_OR_PATH");
}

int qh_cmd_model(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: qeval model list | fetch NAME | path NAME_OR_PATH\n"
               "  list           the models qeval can fetch by short name\n"
               "  fetch NAME     download NAME into the cache ($QEVAL_CACHE, default ~/.cache/qeval),\n"
               "                 check its pinned sha256 and print its path\n"
               "  path NAME      print the file `qeval run NAME` loads\n");
        return QH_EXIT_OK;
    }
    if (argc == 2 && !strcmp(argv[1], "list")) {
        int n;
        const qh_known_model *models = qh_known_models(&n);
        for (int i = 0; i < n; i++)
            printf("%-14s %s\n", models[i].short_name, models[i].description);
        return QH_EXIT_OK;
    }
    if (argc != 3 || (strcmp(argv[1], "fetch") && strcmp(argv[1], "path")))
        return usage();
    qe_error err = {0};
    char *path = NULL;
    qe_status rc = !strcmp(argv[1], "fetch") ? qh_model_fetch(argv[2], &path, &err)
                                             : qh_model_resolve(argv[2], &path, &err);
    if (rc != QE_OK)
        return qh_report_error(&err);
    printf("%s\n", path);
    free(path);
    return QH_EXIT_OK;
}
