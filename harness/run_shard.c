#include "run_shard.h"

#include <stdlib.h>
#include <string.h>

int qh_doc_work(qt_request_type type, int n_requests, int max_gen_toks)
{
    if (type == QT_REQUEST_GENERATE_UNTIL)
        return n_requests * (1 + max_gen_toks / QH_DECODE_TOKENS_PER_REQUEST);
    return n_requests;
}

void qh_shard_plan_free(int **owners, int n_tasks)
{
    for (int t = 0; owners && t < n_tasks; t++)
        free(owners[t]);
    free(owners);
}

qe_status qh_shard_plan(qt_task *const *tasks, int n_tasks, int shard_count, int ***owners, int64_t *work,
                        qe_error *err)
{
    *owners = NULL;
    if (shard_count < 1)
        return qe_fail(err, QE_EINVAL, "shard count %d: must be at least 1", shard_count);
    int **plan = calloc((size_t)n_tasks + 1, sizeof *plan);
    int64_t *load = calloc((size_t)shard_count, sizeof *load);
    qe_status rc = plan && load ? QE_OK : qe_fail(err, QE_ENOMEM, "out of memory planning %d shards", shard_count);
    for (int t = 0; t < n_tasks && rc == QE_OK; t++) {
        int n_docs = qt_task_n_docs(tasks[t]);
        qt_request_type type = qt_task_request_type(tasks[t]);
        int max_gen_toks = qt_task_max_gen_toks(tasks[t]);
        if (!(plan[t] = malloc(((size_t)n_docs + 1) * sizeof *plan[t]))) {
            rc = qe_fail(err, QE_ENOMEM, "out of memory planning %d shards", shard_count);
            break;
        }
        for (int d = 0; d < n_docs && rc == QE_OK; d++) {
            int n_requests = 0;
            if ((rc = qt_task_doc_n_requests(tasks[t], d, &n_requests, err)) != QE_OK)
                break;
            int least = 0;
            for (int s = 1; s < shard_count; s++)
                if (load[s] < load[least])
                    least = s;
            plan[t][d] = least;
            load[least] += qh_doc_work(type, n_requests, max_gen_toks);
        }
    }
    if (rc == QE_OK && work)
        memcpy(work, load, (size_t)shard_count * sizeof *load);
    free(load);
    if (rc != QE_OK) {
        qh_shard_plan_free(plan, n_tasks);
        return rc;
    }
    *owners = plan;
    return QE_OK;
}
