/* run_shard — which documents each process of `qeval run --shard I/N` runs.
 *
 * The split balances work, not document counts. Documents are dealt in the run's task order,
 * each to the shard with the least work so far (the lowest index on a tie). A document's work is
 * counted in loglikelihood requests, what the engine is asked:
 *   loglikelihood task: one per choice (MMLU 4; TruthfulQA MC1 and MC2 2 to 13, document by document)
 *   generation task:    1 + max_gen_toks / QH_DECODE_TOKENS_PER_REQUEST, its prompt's prefill plus
 *                       up to max_gen_toks decode steps (GSM8K's 256 tokens: 9; HumanEval's 1024: 33)
 * A decode step costs what 10 to 18 prefill tokens do on the CPU (docs/engine.md's table) and a
 * loglikelihood request runs a few hundred new tokens, so 32 decode steps are about one request.
 * Since every task is dealt over all shards in turn, each shard gets about 1/N of every task
 * whatever this ratio; it decides only how one shard's extra document of one task is evened
 * out by another task.
 *
 * The plan is a function of the task list, its documents and N alone: every shard's process,
 * and a resumed one, computes the same, so the shards are disjoint, cover every document, and
 * merge into exactly the unsharded run. After every document the most and the least loaded
 * shard differ by at most the heaviest single document's work. */
#ifndef QH_RUN_SHARD_H
#define QH_RUN_SHARD_H

#include "qe_error.h"
#include "task.h"

#define QH_DECODE_TOKENS_PER_REQUEST 32

/* One document's work in loglikelihood requests, as above. */
int qh_doc_work(qt_request_type type, int n_requests, int max_gen_toks);

/* owners[t][d] = the shard (0..shard_count-1) that runs document d of tasks[t]; *owners is
 * malloc'd, [n_tasks] arrays of qt_task_n_docs each; free with qh_shard_plan_free. work, when
 * not NULL, gets [shard_count] each shard's total work. */
qe_status qh_shard_plan(qt_task *const *tasks, int n_tasks, int shard_count, int ***owners, int64_t *work,
                        qe_error *err);
void qh_shard_plan_free(int **owners, int n_tasks); /* NULL-safe */

#endif
