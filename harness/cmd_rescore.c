/* qeval rescore [--db FILE] [--run ID] [--tasks-dir DIR] [--data-dir DIR] — a stored run's scores
 * recomputed from its stored responses with the current task definitions, without the model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "report_load.h"
#include "rescore.h"
#include "run_summary.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: qeval rescore [--db FILE] [--run ID] [--tasks-dir DIR] [--data-dir DIR]\n"
                 "  recomputes every answer, score and fidelity figure of a run from its stored responses\n"
                 "  with the current task definitions (after a scoring fix), without running the model;\n"
                 "  KL divergences are kept as measured. The documents must be the same data as the run's.\n"
                 "  Each score records the task version that made it; samples of a run stored before\n"
                 "  schema v4 are re-keyed by subject (docs/schema.md).\n"
                 "  --db FILE        results file (default: $QEVAL_DB, else results.db)\n"
                 "  --run ID         the run (default: the newest complete run)\n"
                 "  --tasks-dir DIR  task definitions (default: $QEVAL_TASKS, else the built-in ones)\n"
                 "  --data-dir DIR   benchmark files (default: $QEVAL_DATA)\n");
}

int qh_cmd_rescore(int argc, char **argv)
{
    const char *db = qh_default_db_path(), *tasks_dir = NULL, *data_dir = getenv("QEVAL_DATA");
    int64_t run_id = 0;
    for (int i = 1; i < argc; i++) {
        bool has_value = i + 1 < argc;
        if (!strcmp(argv[i], "--db") && has_value) {
            db = argv[++i];
        } else if (!strcmp(argv[i], "--run") && has_value) {
            char *end;
            run_id = strtoll(argv[++i], &end, 10);
            if (*end || run_id <= 0)
                return qh_usage_error("rescore", "--run wants a run id, got '%s'", argv[i]);
        } else if (!strcmp(argv[i], "--tasks-dir") && has_value) {
            tasks_dir = argv[++i];
        } else if (!strcmp(argv[i], "--data-dir") && has_value) {
            data_dir = argv[++i];
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return QH_EXIT_OK;
        } else {
            usage(stderr);
            return qh_usage_error("rescore", "unexpected argument '%s'", argv[i]);
        }
    }
    qe_error err = {0};
    qh_store *store = NULL;
    qe_status rc = qh_store_open(db, NULL, &store, &err);
    if (rc == QE_OK && run_id == 0)
        rc = qr_latest_run_id(store, &run_id, &err);
    if (rc == QE_OK)
        rc = qh_rescore_run(store, run_id, qh_tasks_dir(tasks_dir), data_dir, stderr, &err);
    if (rc == QE_OK)
        rc = qh_print_run_summary(store, run_id, false, stdout, &err);
    if (rc == QE_OK)
        fprintf(stderr, "rescored run %lld in %s\n", (long long)run_id, db);
    qh_store_close(store);
    return rc == QE_OK ? QH_EXIT_OK : qh_report_error(&err);
}
