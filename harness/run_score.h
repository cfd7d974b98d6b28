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
