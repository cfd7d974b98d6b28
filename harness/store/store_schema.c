/* store_schema — the results file's schema as the migration steps that build it
 * (docs/schema.md). qh_store_migrations[v] upgrades a file from user_version v to v + 1.
 * Released steps never change: a new version appends a step. */
#include "store_private.h"

const char *const qh_store_migrations[QH_STORE_SCHEMA_VERSION] = {
    /* v1: the first schema */
    "CREATE TABLE qeval_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
    "INSERT INTO qeval_meta VALUES('format', '" QH_STORE_FORMAT_MARKER "');"
    "CREATE TABLE runs(id INTEGER PRIMARY KEY, started_at TEXT NOT NULL, finished_at TEXT,"
    " status TEXT NOT NULL CHECK(status IN ('running','complete','failed','interrupted')), error TEXT,"
    " qeval_version TEXT NOT NULL, git_commit TEXT, command_line TEXT,"
    " host_cpu TEXT, host_cores INTEGER, host_ram_bytes INTEGER,"
    " gpu_name TEXT, gpu_driver TEXT, gpu_memory_bytes INTEGER,"
    " model_path TEXT, model_sha256 TEXT, weight_files_json TEXT,"
    " tasks_json TEXT, options_json TEXT, sandbox_json TEXT);"
    "CREATE TABLE run_variants(run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    " variant TEXT NOT NULL, device TEXT, load_seconds REAL, quantize_seconds REAL,"
    " footprint_bytes INTEGER, hf_footprint_bytes INTEGER, estimate_bytes INTEGER,"
    " peak_rss_bytes INTEGER, peak_device_bytes INTEGER, source_note TEXT,"
    " PRIMARY KEY(run_id, variant));"
    "CREATE TABLE task_results(run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    " variant TEXT NOT NULL, task TEXT NOT NULL, metric TEXT NOT NULL,"
    " value REAL, std_error REAL, n INTEGER, n_truncated INTEGER, is_higher_better INTEGER,"
    " PRIMARY KEY(run_id, variant, task, metric));"
    "CREATE TABLE samples(id INTEGER PRIMARY KEY,"
    " run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    " variant TEXT NOT NULL, task TEXT NOT NULL, doc_id INTEGER NOT NULL,"
    " prompt_hash TEXT, target TEXT, response_json TEXT, filtered TEXT, outcome_json TEXT,"
    " UNIQUE(run_id, variant, task, doc_id));"
    "CREATE TABLE fidelity(run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    " variant TEXT NOT NULL, task TEXT NOT NULL, reference_variant TEXT NOT NULL, n_items INTEGER,"
    " kl_mean REAL, kl_p99 REAL, top1_agreement REAL, rms_delta_p REAL, answer_changed_share REAL,"
    " PRIMARY KEY(run_id, variant, task));"
    "CREATE TABLE perf(run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    " variant TEXT NOT NULL, task TEXT NOT NULL, n_requests INTEGER, tokens_in INTEGER,"
    " tokens_out INTEGER, prefill_tok_s REAL, decode_tok_s REAL, latency_p50_ms REAL,"
    " latency_p95_ms REAL, wall_seconds REAL, PRIMARY KEY(run_id, variant, task));",
    /* v2: merged runs name their shards, samples carry latency, and the request cache */
    "ALTER TABLE runs ADD COLUMN merged_from_json TEXT;"
    "ALTER TABLE samples ADD COLUMN latency_ms REAL;"
    "CREATE TABLE request_cache(model_sha256 TEXT NOT NULL, variant TEXT NOT NULL,"
    " request_hash TEXT NOT NULL, response_json TEXT NOT NULL, created_at TEXT NOT NULL,"
    " PRIMARY KEY(model_sha256, variant, request_hash)) WITHOUT ROWID;",
    /* v3: samples keep the document's question, so "what changed" can show it without the data */
    "ALTER TABLE samples ADD COLUMN question TEXT;",
    /* v4: a score names the rule that made it (the task's version) and its shots; a sample's
     * doc_id is its index in its own split (an MMLU document's sample is stored under its subject) */
    "ALTER TABLE task_results ADD COLUMN task_version TEXT;"
    "ALTER TABLE task_results ADD COLUMN num_fewshot INTEGER;",
    /* v5: a variant run on a GPU says what it held there (the allocator's count and cudaMemGetInfo) */
    "ALTER TABLE run_variants ADD COLUMN device_weights_bytes INTEGER;"
    "ALTER TABLE run_variants ADD COLUMN device_kv_peak_bytes INTEGER;"
    "ALTER TABLE run_variants ADD COLUMN device_free_before_bytes INTEGER;"
    "ALTER TABLE run_variants ADD COLUMN device_free_after_bytes INTEGER;",
    /* v6: a variant stores the memory estimate beside what it measured (qeval estimate's figures) */
    "ALTER TABLE run_variants ADD COLUMN predicted_context INTEGER;"
    "ALTER TABLE run_variants ADD COLUMN predicted_weights_bytes INTEGER;"
    "ALTER TABLE run_variants ADD COLUMN predicted_kv_cache_bytes INTEGER;"
    "ALTER TABLE run_variants ADD COLUMN predicted_activation_bytes INTEGER;"
    "ALTER TABLE run_variants ADD COLUMN predicted_peak_bytes INTEGER;",
    /* v7: a variant on a GPU stores the device's own peak (cudaMemGetInfo), the CUDA context included */
    "ALTER TABLE run_variants ADD COLUMN device_used_peak_bytes INTEGER;",
};
