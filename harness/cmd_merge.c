/* qeval merge A.db B.db ... -o ALL.db — combines the result files of a sharded run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "store.h"

int qh_cmd_merge(int argc, char **argv)
{
    const char *output = NULL;
    const char **inputs = calloc((size_t)argc, sizeof *inputs);
    size_t n_inputs = 0;
    if (!inputs) {
        qe_error err;
        qe_fail(&err, QE_ENOMEM, "merge: out of memory");
        return qh_report_error(&err);
    }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-o") && i + 1 < argc) {
            output = argv[++i];
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: qeval merge SHARD.db... -o OUT.db\n"
                   "  combines the files of one sharded run (same model, tasks and build, disjoint documents)\n"
                   "  into a new file; latency percentiles, which cannot be pooled, are left unknown\n");
            free(inputs);
            return QH_EXIT_OK;
        } else if (argv[i][0] == '-') {
            free(inputs);
            return qh_usage_error("merge", "unknown option '%s'", argv[i]);
        } else {
            inputs[n_inputs++] = argv[i];
        }
    }
    if (!output || n_inputs == 0) {
        free(inputs);
        return qh_usage_error("merge", "needs shard files and -o OUT.db");
    }
    qe_error err = {0};
    int64_t run_id = 0;
    qh_raise_open_file_limit(); /* every shard stays open until the merge is done */
    qe_status st = qh_store_merge(inputs, n_inputs, output, &run_id, &err);
    free(inputs);
    if (st != QE_OK)
        return qh_report_error(&err);
    printf("merged %zu shard files into %s (run %lld)\n", n_inputs, output, (long long)run_id);
    return QH_EXIT_OK;
}
