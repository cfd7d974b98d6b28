/* rescore — a stored run's outcomes and scores recomputed from its stored responses, without
 * the model (`qeval rescore`). After a scoring fix (a task file's filters or metrics changed)
 * the same responses give the new scores: each sample's filtered answer and outcome are
 * recomputed and stored, then each task's metrics and fidelity (the KL figures, which need
 * logits, are kept as the run measured them). Documents are rebuilt from the run's stored
 * options (limit, subjects, seed, shots) and must be the same data: a task whose data digest
 * or document count differs from the run's is refused before anything is written. Each score
 * records the version of the rule that made it (the task file's "version") and its shots, so an
 * old run moves to a changed rule (TruthfulQA MC2 version 3.0); samples stored before schema v4
 * under a task with subsets are re-keyed by subtask and index in its split first. */
#ifndef QH_RESCORE_H
#define QH_RESCORE_H

#include <stdint.h>
#include <stdio.h>

#include "qe_error.h"
#include "store.h"

/* tasks_dir and data_dir as for qeval run (NULL: the defaults). Lines saying what changed
 * (a task definition that differs from the run's) go to log (may be NULL). */
qe_status qh_rescore_run(qh_store *store, int64_t run_id, const char *tasks_dir, const char *data_dir, FILE *log,
                         qe_error *err);

#endif
