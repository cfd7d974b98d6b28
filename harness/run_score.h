/* run_score — from stored samples to the numbers a report shows: one document's outcome as it
 * is stored, a task's metrics recomputed from all its stored samples (the same path for a
 * fresh, resumed, merged or rescored run), fidelity against fp32, and the hook that runs a
 * code task's program in the sandbox. */
#ifndef QH_RUN_SCORE_H
#define QH_RUN_SCORE_H

#include <stddef.h>

#include "qe_error.h"
#include "run.h"
#include "run_record.h"
#include "store.h"
#include "task.h"

/* Scores doc_index's record: *filtered (the answer the metrics looked at) and *outcome_json
 * ({"metric[,filter]": value, ..., "subtasks": [...]}, subtasks as qt_task_doc_subtasks names them,
 * absent when there are none), both malloc'd. */
qe_status qh_sample_outcome(const qt_task *task, qt_scores *scores, int doc_index, const qh_doc_record *record,
                            char **filtered, char **outcome_json, qe_error *err);

/* The doc_indices of (variant, task)'s stored samples (keys as qt_task_sample_key makes them),
 * ascending: what a resumed run has done; *doc_indices is malloc'd. Samples keyed as before
 * schema v4 (under a task with subsets' own name) are refused: `qeval rescore` re-keys them. */
qe_status qh_done_doc_indices(qh_store *store, int64_t run_id, const char *variant, const qt_task *task,
                              int64_t **doc_indices, size_t *n, qe_error *err);

/* The stored samples of (variant, task), those of its subtasks, first in rows[n_rows] in key order
 * (subtask, doc_id): *n_mine of them; other tasks' after them. Free all n_rows. */
qe_status qh_task_samples(qh_store *store, int64_t run_id, const char *variant, const qt_task *task,
                          qh_sample_row **rows, size_t *n_rows, size_t *n_mine, qe_error *err);

/* Recomputes (variant, task)'s metrics from every stored sample and stores them; for a variant
 * other than fp32 also its fidelity against the stored fp32 samples, with kl[n_kl] the KL
 * divergences measured while it ran (when empty, the KL figures already stored are kept). */
qe_status qh_score_task(qh_store *store, int64_t run_id, const char *variant, const qt_task *task, const double *kl,
                        int n_kl, qe_error *err);

/* For a code task, runs prompt + completion + tests in the sandbox and sets record->exec_result. */
qe_status qh_execute_if_code(const qt_task *task, int doc_index, qh_doc_record *record,
                             const qh_run_options *options, qe_error *err);
/* The sandbox settings in force, as stored with the run. */
void qh_sandbox_settings_json(const qh_run_options *options, char *json, size_t json_size);

#endif
