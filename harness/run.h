/* run — the product's main job: the variant x task matrix for one model, every result in the
 * store (store/store.h), resumable at any point.
 *
 * For each variant: load the model once, run every task's documents (skipping those already
 * stored for this run, and those outside this process's shard), score each document as it
 * comes and store it with its raw response, then recompute the task's metrics from the stored
 * samples (so a resumed or merged run gives the same numbers as an uninterrupted one), its
 * fidelity against fp32 and its throughput; free the model and move on. */
#ifndef QH_RUN_H
#define QH_RUN_H

#include <stdbool.h>
#include <stdint.h>

#include "qe_error.h"
#include "qeval_engine.h"
#include "store.h"

typedef struct {
    const char *model;            /* model directory, .gguf file or short name (already resolved) */
    const char *const *variants;  /* [n_variants] "fp32", "bf16", "int8", "nf4", ...            */
    int n_variants;
    const char *const *tasks;     /* [n_tasks] task names or task-file paths                    */
    int n_tasks;
    int limit;                    /* documents per (sub)task; 0 = all                            */
    int num_fewshot;              /* -1 = each task's default                                   */
    const char *subjects;         /* MMLU subsets, comma-separated; NULL = all                  */
    int64_t seed;                 /* few-shot sampler seed; -1 = each task's default            */
    const char *data_dir, *tasks_dir; /* NULL = defaults ($QEVAL_DATA, $QEVAL_TASKS)            */
    bool skip_bad_rows;
    const char *chat_template;    /* --chat-template as given: NULL or "none", "auto", a family  */
    const char *chat_family;      /* the family that renders, resolved before the run; NULL: none*/
    qe_device_kind device;
    int device_index;             /* QE_DEVICE_CUDA: the GPU's ordinal                           */
    int n_threads;                /* 0 = all cores                                               */
    int batch_docs;               /* documents per engine call and stored block; 0 = 16          */
    int shard_index, shard_count; /* this process runs its share of the documents (run_shard.h)  */
    bool use_cache;               /* answer identical requests from the store's cache            */
    double exec_timeout_s;        /* code tasks: per-program wall-clock limit                   */
    int exec_workers;             /* code tasks: parallel programs; 0 = cores                   */
    bool is_quiet;                /* no progress lines                                           */
    const char *command_line;     /* JSON array of argv, stored with the run (and used to resume)*/
    const char *options_json;     /* the options above as stored                                 */
} qh_run_options;

/* Runs (or, when resume_run_id > 0, continues) the matrix into store. *run_id gets the run's id
 * even on failure, so the caller can point at it. Returns QE_EINTERRUPTED when SIGINT/SIGTERM
 * stopped it: what was done is stored and `qeval run --resume ID` continues. */
qe_status qh_run_matrix(qh_store *store, const qh_run_options *options, int64_t resume_run_id, int64_t *run_id,
                        qe_error *err);

#endif
