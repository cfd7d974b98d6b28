/* store — the one SQLite file of results (schema and its history: docs/schema.md).
 *
 * Promises: the file is in WAL mode with a busy timeout, so several processes may write one file
 * at once; every write call is one transaction (all rows of a batch or none); every value is bound,
 * never spliced into SQL; opening migrates an older schema forward through PRAGMA user_version;
 * a file that is not a qeval results file (text, another program's SQLite database, a newer
 * schema), a read-only file or a full disk gives one clear error and leaves what was already
 * stored intact.
 *
 * Conventions in the row structs: a NULL string, a NAN real and a -1 integer mean "unknown" and
 * are stored as SQL NULL. Strings in rows read back are owned by the row; free them with the
 * matching *_free function (NULL-safe). Timestamps are ISO-8601 UTC text set by the store. */
#ifndef QH_STORE_H
#define QH_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qe_error.h"

#define QH_STORE_SCHEMA_VERSION 7
#define QH_STORE_DEFAULT_PATH "results.db"

typedef struct qh_store qh_store;

typedef struct {
    int busy_timeout_ms;    /* how long a writer waits for another's lock; 0 -> 30000          */
    bool is_read_only;      /* open for reading only (reports, `qeval runs`); never migrates     */
    int64_t max_page_count; /* cap on the file's size in pages (SQLite max_page_count); 0 -> none */
} qh_store_options;

/* Opens (creating when absent, unless read-only) and migrates; opts may be NULL for defaults. */
qe_status qh_store_open(const char *path, const qh_store_options *opts, qh_store **out, qe_error *err);
void qh_store_close(qh_store *store);
const char *qh_store_path(const qh_store *store);
/* Groups writes into one transaction: every qh_store_put_* call between begin and commit lands
 * together or not at all. Nested calls join the outermost transaction; only the outermost
 * commit writes; a failed put rolls the whole transaction back. */
qe_status qh_store_begin(qh_store *store, qe_error *err);
qe_status qh_store_commit(qh_store *store, qe_error *err);
void qh_store_rollback(qh_store *store);

/* Reads the whole file (PRAGMA quick_check): QE_EFORMAT naming the first damage found. Opening
 * does not do this (it costs a full read); corruption met later is reported when met. */
qe_status qh_store_check(qh_store *store, qe_error *err);

typedef enum { QH_RUN_RUNNING, QH_RUN_COMPLETE, QH_RUN_FAILED, QH_RUN_INTERRUPTED } qh_run_status;
const char *qh_run_status_name(qh_run_status status);

/* One invocation of `qeval run`: what ran, where, on what. JSON fields hold JSON text. */
typedef struct {
    int64_t id;                 /* set by qh_store_create_run                                  */
    const char *started_at;     /* read back only                                              */
    const char *finished_at;    /* read back only; NULL while running                          */
    qh_run_status status;       /* read back only (create sets running, finish sets the end)   */
    const char *error;          /* read back only: the message a failed run ended with         */
    const char *qeval_version, *git_commit, *command_line;
    const char *host_cpu;       /* CPU model name                                              */
    int64_t host_cores;         /* logical cores                                               */
    int64_t host_ram_bytes;
    const char *gpu_name, *gpu_driver; /* NULL without a GPU                                   */
    int64_t gpu_memory_bytes;
    const char *model_path;
    const char *model_sha256;   /* one digest naming the weights (keys the request cache)       */
    const char *weight_files_json; /* [{"file","bytes","sha256"}] of every weight file          */
    const char *tasks_json;     /* task definitions and dataset hashes                          */
    const char *options_json;   /* seeds, limits, shard, batch sizes...                         */
    const char *sandbox_json;   /* code-execution sandbox settings                              */
    const char *merged_from_json; /* read back only: the shard files a merged run came from     */
} qh_run;

/* Inserts info as a new run with status running and started_at now; *run_id gets its id. */
qe_status qh_store_create_run(qh_store *store, const qh_run *info, int64_t *run_id, qe_error *err);
/* Sets the end status and time; error_message may be NULL. */
qe_status qh_store_finish_run(qh_store *store, int64_t run_id, qh_run_status status,
                              const char *error_message, qe_error *err);
qe_status qh_store_get_run(qh_store *store, int64_t run_id, qh_run *out, qe_error *err);
/* All runs, oldest first. */
qe_status qh_store_list_runs(qh_store *store, qh_run **runs, size_t *n_runs, qe_error *err);
void qh_run_free(qh_run *run);                /* frees the strings of one run read back   */
void qh_runs_free(qh_run *runs, size_t n_runs);

/* One model variant (fp32, bf16, int8, nf4) of a run: its cost to load and hold. */
typedef struct {
    int64_t run_id;
    const char *variant;
    const char *device;         /* "cpu", "cuda"                                               */
    double load_seconds, quantize_seconds;
    int64_t footprint_bytes;    /* weights as qeval holds them                                 */
    int64_t hf_footprint_bytes; /* what transformers' get_memory_footprint() would report      */
    int64_t estimate_bytes;     /* the estimate made before loading                            */
    int64_t peak_rss_bytes, peak_device_bytes;
    const char *source_note;    /* where the numbers come from (measured, computed, ...)       */
    /* v5, a model on a GPU (-1 on the CPU): what the backend's allocator holds for the weights,
     * the KV cache's peak, and cudaMemGetInfo's free bytes before loading and after the tasks. */
    int64_t device_weights_bytes, device_kv_peak_bytes, device_free_before_bytes, device_free_after_bytes;
    /* v6: the memory estimate (qe_model_estimate_memory, `qeval estimate`) for predicted_context
     * positions on the variant's device, beside what was measured: the weights (= footprint_bytes),
     * the KV cache (sliding layers bounded by their window), activations with workspace, and their
     * sum predicted_peak_bytes (the CUDA context not included, as peak_device_bytes does not include
     * it). -1 when unknown (rows before v6). */
    int64_t predicted_context, predicted_weights_bytes, predicted_kv_cache_bytes, predicted_activation_bytes,
        predicted_peak_bytes;
    /* v7, a model on a GPU (-1 on the CPU and before v7): the most memory cudaMemGetInfo showed in
     * use on the card right after any of the variant's allocations (total - free: the CUDA context
     * and whatever else the card held included), to set beside predicted_peak_bytes plus the
     * context. */
    int64_t device_used_peak_bytes;
} qh_variant_row;

/* One metric of one task for one variant, with its standard error over n items. */
typedef struct {
    int64_t run_id;
    const char *variant, *task, *metric;
    double value, std_error;
    int64_t n;
    int64_t n_truncated;        /* requests whose prompt was cut to fit the context (per task) */
    int64_t is_higher_better;   /* 1 or 0                                                     */
    const char *task_version;   /* the scoring rule that made value: the task file's "version",
                                   as lm-eval's metadata.version ("3.0"); NULL: none (schema v4) */
    int64_t num_fewshot;        /* few-shot examples per prompt (schema v4)                    */
} qh_task_result_row;

/* One scored document. Enough to redo the statistics without the model. */
typedef struct {
    int64_t run_id;
    const char *variant, *task;
    int64_t doc_id;             /* the document's index in the task's dataset split            */
    const char *prompt_hash;    /* sha256 of the full prompt text                              */
    const char *target;
    const char *response_json;  /* generations, or loglikelihoods [[ll, is_greedy], ...]        */
    const char *filtered;       /* the answer after the task's filters                         */
    const char *outcome_json;   /* {"metric": value, ...}                                      */
    double latency_ms;          /* time spent on this document's requests                      */
    const char *question;       /* the document's own prompt, for reports (schema v3)          */
} qh_sample_row;

/* A variant's agreement with the fp32 reference on one task. */
typedef struct {
    int64_t run_id;
    const char *variant, *task;
    const char *reference_variant; /* usually "fp32"                                           */
    int64_t n_items;
    double kl_mean, kl_p99;     /* KL(reference || variant) over items, nats                    */
    double top1_agreement;      /* share of items with the same argmax                         */
    double rms_delta_p;         /* root mean square change of the target's probability        */
    double answer_changed_share;/* share of items whose filtered answer differs               */
} qh_fidelity_row;

/* Throughput of one variant on one task. */
typedef struct {
    int64_t run_id;
    const char *variant, *task;
    int64_t n_requests, tokens_in, tokens_out;
    double prefill_tok_s, decode_tok_s;
    double latency_p50_ms, latency_p95_ms;
    double wall_seconds;
} qh_perf_row;

/* Each put writes its n rows in one transaction; a row whose key exists is replaced
 * (keys: variant (run,variant); task result (run,variant,task,metric); sample
 * (run,variant,task,doc_id); fidelity and perf (run,variant,task)). */
qe_status qh_store_put_variants(qh_store *store, const qh_variant_row *rows, size_t n, qe_error *err);
qe_status qh_store_put_task_results(qh_store *store, const qh_task_result_row *rows, size_t n, qe_error *err);
qe_status qh_store_put_samples(qh_store *store, const qh_sample_row *rows, size_t n, qe_error *err);
qe_status qh_store_put_fidelity(qh_store *store, const qh_fidelity_row *rows, size_t n, qe_error *err);
qe_status qh_store_put_perf(qh_store *store, const qh_perf_row *rows, size_t n, qe_error *err);

/* Reading back: rows of one run in key order; variant/task NULL means all. */
/* The variants of a run, largest footprint first (the full-precision baseline leads). */
qe_status qh_store_get_variants(qh_store *store, int64_t run_id, qh_variant_row **rows, size_t *n, qe_error *err);
qe_status qh_store_get_task_results(qh_store *store, int64_t run_id, qh_task_result_row **rows, size_t *n,
                                    qe_error *err);
qe_status qh_store_get_samples(qh_store *store, int64_t run_id, const char *variant, const char *task,
                               qh_sample_row **rows, size_t *n, qe_error *err);
qe_status qh_store_get_fidelity(qh_store *store, int64_t run_id, qh_fidelity_row **rows, size_t *n, qe_error *err);
qe_status qh_store_get_perf(qh_store *store, int64_t run_id, qh_perf_row **rows, size_t *n, qe_error *err);
void qh_variant_rows_free(qh_variant_row *rows, size_t n);
void qh_task_result_rows_free(qh_task_result_row *rows, size_t n);
void qh_sample_rows_free(qh_sample_row *rows, size_t n);
void qh_fidelity_rows_free(qh_fidelity_row *rows, size_t n);
void qh_perf_rows_free(qh_perf_row *rows, size_t n);

/* Streams samples without holding them all: fn returns 0 to go on, anything else stops the walk
 * and is returned as QE_EINTERRUPTED. The row's strings live only during the call. */
qe_status qh_store_each_sample(qh_store *store, int64_t run_id, const char *variant, const char *task,
                               int (*fn)(const qh_sample_row *row, void *ctx), void *ctx, qe_error *err);

/* Resume: the doc_ids already stored for (run, variant, task), ascending; *ids is malloc'd. */
qe_status qh_store_done_doc_ids(qh_store *store, int64_t run_id, const char *variant, const char *task,
                                int64_t **ids, size_t *n_ids, qe_error *err);
/* Deletes (run, variant, task)'s samples (a rescore re-keying samples stored before schema v4). */
qe_status qh_store_delete_samples(qh_store *store, int64_t run_id, const char *variant, const char *task,
                                  qe_error *err);
qe_status qh_store_count_samples(qh_store *store, int64_t run_id, int64_t *n_samples, qe_error *err);

/* Request cache: identical requests to the same weights give the same response across runs. */
typedef struct {
    const char *model_sha256, *variant, *request_hash;
    const char *response_json;
} qh_cache_entry;
qe_status qh_store_cache_put(qh_store *store, const qh_cache_entry *entries, size_t n, qe_error *err);
/* *response_json is malloc'd, or NULL when the request is not cached. */
qe_status qh_store_cache_get(qh_store *store, const char *model_sha256, const char *variant,
                             const char *request_hash, char **response_json, qe_error *err);

/* Combines shard files (one run each, same model, tasks and qeval build, disjoint doc_ids)
 * into a new file `output` holding one run. Samples, variants and the cache are copied;
 * task results are pooled exactly (every metric is a mean over documents); fidelity and perf are
 * combined where exact (means, shares, RMS, token counts, rates) and their percentiles (kl_p99,
 * latency) are left unknown for rescoring from the samples. Fails, writing nothing, when
 * output exists or two shards hold the same document. */
qe_status qh_store_merge(const char *const *inputs, size_t n_inputs, const char *output, int64_t *run_id,
                         qe_error *err);

#endif
