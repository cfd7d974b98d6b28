/* The results store: every table round-trips, an old file migrates, two processes write one
 * file at once, a killed writer leaves a sound file, and hostile files give clear errors. */
#include <errno.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "store.h"
#include "store_private.h"

static char dir[256];

static const char *tmp_path(const char *name)
{
    static char paths[8][512];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

static void remove_db(const char *path)
{
    char p[600];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
}

/* Runs SQL on a file directly, bypassing the store; returns the first column of the first row. */
static long long raw_sql(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    long long v = -999;
    sqlite3_open(path, &db);
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW)
        v = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return v;
}

static char *raw_text(const char *path, const char *sql, char *out, size_t cap)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    out[0] = 0;
    sqlite3_open(path, &db);
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW &&
        sqlite3_column_text(stmt, 0))
        snprintf(out, cap, "%s", (const char *)sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return out;
}

static qh_run sample_run_info(void)
{
    return (qh_run){
        .command_line = "qeval run --model m --tasks mmlu'; DROP TABLE runs; --",
        .host_cpu = "AMD EPYC 9654", .host_cores = 16, .host_ram_bytes = 137438953472LL,
        .gpu_name = "NVIDIA H200", .gpu_driver = "565.57", .gpu_memory_bytes = 150000000000LL,
        .model_path = "/models/stories260K", .model_sha256 = "ab12",
        .weight_files_json = "[{\"file\":\"model.safetensors\",\"bytes\":1040000,\"sha256\":\"ab12\"}]",
        .tasks_json = "{\"mmlu\":{\"dataset_sha256\":\"cd34\"}}", .options_json = "{\"seed\":1234}",
        .sandbox_json = "{\"timeout_s\":10}",
    };
}

static qh_sample_row make_sample(int64_t run_id, const char *variant, const char *task, int64_t doc_id, char *buf)
{
    snprintf(buf, 64, "{\"acc\": %d}", (int)(doc_id % 2));
    return (qh_sample_row){run_id, variant, task, doc_id, "ph", "B", "[[-1.5, true], [-2.25, false]]", "B", buf,
                           12.5, "Which?"};
}

static void test_round_trip(void)
{
    const char *path = tmp_path("round.db");
    qe_error err = {0};
    qh_store *s = NULL;
    CHECK_INT_EQ(QE_OK, qh_store_open(path, NULL, &s, &err));
    if (!s)
        return;
    qh_run info = sample_run_info();
    info.gpu_name = NULL; /* unknowns round-trip as unknown */
    info.gpu_memory_bytes = -1;
    int64_t run_id = 0;
    CHECK_INT_EQ(QE_OK, qh_store_create_run(s, &info, &run_id, &err));
    CHECK_INT_EQ(1, run_id);

    qh_run got;
    CHECK_INT_EQ(QE_OK, qh_store_get_run(s, run_id, &got, &err));
    CHECK_STR_EQ("running", qh_run_status_name(got.status));
    CHECK_STR_EQ(info.command_line, got.command_line);
    CHECK_STR_EQ("AMD EPYC 9654", got.host_cpu);
    CHECK_INT_EQ(16, got.host_cores);
    CHECK_INT_EQ(137438953472LL, got.host_ram_bytes);
    CHECK(got.gpu_name == NULL);
    CHECK_INT_EQ(-1, got.gpu_memory_bytes);
    CHECK_STR_EQ("565.57", got.gpu_driver);
    CHECK_STR_EQ(info.weight_files_json, got.weight_files_json);
    CHECK_STR_EQ(info.tasks_json, got.tasks_json);
    CHECK_STR_EQ(info.options_json, got.options_json);
    CHECK_STR_EQ(info.sandbox_json, got.sandbox_json);
    CHECK_STR_EQ(QEVAL_VERSION, got.qeval_version);
    CHECK(got.started_at && strlen(got.started_at) == 24 && got.started_at[23] == 'Z');
    CHECK(got.finished_at == NULL);
    qh_run_free(&got);

    qh_variant_row variants[] = {
        {run_id, "fp32", "cpu", 0.5, NAN, 1040000, 1040000, 1048576, 50000000, -1, "measured", -1, -1, -1, -1,
         -1, -1, -1, -1, -1, -1},
        {run_id, "nf4", "cuda", 0.25, 0.125, 200000, 210000, 199000, 60000000, 3000000, "measured",
         190000, 8192, 80000000000, 79000000000, 1024, 200000, 8192, 90000, 298192, 560000000},
    };
    CHECK_INT_EQ(QE_OK, qh_store_put_variants(s, variants, 2, &err));
    qh_task_result_row results[] = {
        {run_id, "fp32", "mmlu", "acc", 0.25, 0.0125, 1200, 0, 1, "2", 5},
        {run_id, "nf4", "mmlu", "acc", 0.2375, 0.0122, 1200, 3, 1, NULL, 0},
    };
    CHECK_INT_EQ(QE_OK, qh_store_put_task_results(s, results, 2, &err));
    qh_fidelity_row fid = {run_id, "nf4", "mmlu", "fp32", 1200, 0.0125, 0.0875, 0.9375, 0.03125, 0.0625};
    CHECK_INT_EQ(QE_OK, qh_store_put_fidelity(s, &fid, 1, &err));
    qh_perf_row perf = {run_id, "nf4", "mmlu", 4800, 960000, 4800, 5000.0, 120.0, 15.5, 31.0, 200.0};
    CHECK_INT_EQ(QE_OK, qh_store_put_perf(s, &perf, 1, &err));
    char bufs[10][64];
    qh_sample_row samples[10];
    for (int i = 0; i < 10; i++)
        samples[i] = make_sample(run_id, i < 5 ? "fp32" : "nf4", "mmlu", 7 - i % 5 * 2, bufs[i]);
    CHECK_INT_EQ(QE_OK, qh_store_put_samples(s, samples, 10, &err));
    /* Upsert: storing doc 7 again replaces its row, never duplicates it. */
    samples[0].filtered = "C";
    CHECK_INT_EQ(QE_OK, qh_store_put_samples(s, samples, 1, &err));
    CHECK_INT_EQ(QE_OK, qh_store_finish_run(s, run_id, QH_RUN_COMPLETE, NULL, &err));

    qh_variant_row *v = NULL;
    size_t n = 0;
    CHECK_INT_EQ(QE_OK, qh_store_get_variants(s, run_id, &v, &n, &err));
    CHECK_INT_EQ(2, n);
    if (n == 2) {
        CHECK_STR_EQ("fp32", v[0].variant);
        CHECK(isnan(v[0].quantize_seconds));
        CHECK_INT_EQ(-1, v[0].peak_device_bytes);
        CHECK_STR_EQ("cuda", v[1].device);
        CHECK_NEAR(0.125, v[1].quantize_seconds, 0);
        CHECK_INT_EQ(210000, v[1].hf_footprint_bytes);
        CHECK_INT_EQ(199000, v[1].estimate_bytes);
        CHECK_INT_EQ(3000000, v[1].peak_device_bytes);
        CHECK_INT_EQ(-1, v[0].device_weights_bytes);
        CHECK_INT_EQ(-1, v[0].device_free_after_bytes);
        CHECK_INT_EQ(190000, v[1].device_weights_bytes);
        CHECK_INT_EQ(8192, v[1].device_kv_peak_bytes);
        CHECK_INT_EQ(80000000000, v[1].device_free_before_bytes);
        CHECK_INT_EQ(79000000000, v[1].device_free_after_bytes);
        CHECK_INT_EQ(-1, v[0].predicted_peak_bytes);
        CHECK_INT_EQ(1024, v[1].predicted_context);
        CHECK_INT_EQ(200000, v[1].predicted_weights_bytes);
        CHECK_INT_EQ(8192, v[1].predicted_kv_cache_bytes);
        CHECK_INT_EQ(90000, v[1].predicted_activation_bytes);
        CHECK_INT_EQ(298192, v[1].predicted_peak_bytes);
        CHECK_INT_EQ(-1, v[0].device_used_peak_bytes);
        CHECK_INT_EQ(560000000, v[1].device_used_peak_bytes);
    }
    qh_variant_rows_free(v, n);
    qh_task_result_row *r = NULL;
    CHECK_INT_EQ(QE_OK, qh_store_get_task_results(s, run_id, &r, &n, &err));
    CHECK_INT_EQ(2, n);
    if (n == 2) {
        CHECK_STR_EQ("nf4", r[1].variant);
        CHECK_NEAR(0.2375, r[1].value, 0);
        CHECK_NEAR(0.0122, r[1].std_error, 0);
        CHECK_INT_EQ(3, r[1].n_truncated);
        CHECK(r[1].task_version == NULL);
        CHECK_INT_EQ(0, r[1].num_fewshot);
        CHECK_STR_EQ("2", r[0].task_version);
        CHECK_INT_EQ(5, r[0].num_fewshot);
    }
    qh_task_result_rows_free(r, n);
    qh_fidelity_row *f = NULL;
    CHECK_INT_EQ(QE_OK, qh_store_get_fidelity(s, run_id, &f, &n, &err));
    CHECK_INT_EQ(1, n);
    if (n == 1)
        CHECK(f[0].kl_p99 == 0.0875 && f[0].top1_agreement == 0.9375 && f[0].answer_changed_share == 0.0625 &&
              !strcmp(f[0].reference_variant, "fp32"));
    qh_fidelity_rows_free(f, n);
    qh_perf_row *p = NULL;
    CHECK_INT_EQ(QE_OK, qh_store_get_perf(s, run_id, &p, &n, &err));
    CHECK_INT_EQ(1, n);
    if (n == 1)
        CHECK(p[0].tokens_in == 960000 && p[0].decode_tok_s == 120.0 && p[0].latency_p95_ms == 31.0);
    qh_perf_rows_free(p, n);

    qh_sample_row *sm = NULL;
    CHECK_INT_EQ(QE_OK, qh_store_get_samples(s, run_id, "fp32", "mmlu", &sm, &n, &err));
    CHECK_INT_EQ(5, n);
    if (n == 5) {
        CHECK_INT_EQ(-1, sm[0].doc_id); /* key order: doc ids 7,5,3,1,-1 come back ascending */
        CHECK_INT_EQ(7, sm[4].doc_id);
        CHECK_STR_EQ("C", sm[4].filtered);
        CHECK_STR_EQ("[[-1.5, true], [-2.25, false]]", sm[4].response_json);
        CHECK_STR_EQ("{\"acc\": 1}", sm[4].outcome_json);
        CHECK_NEAR(12.5, sm[4].latency_ms, 0);
        CHECK_STR_EQ("Which?", sm[4].question);
    }
    qh_sample_rows_free(sm, n);
    int64_t *ids = NULL, n_samples = 0;
    size_t n_ids = 0;
    CHECK_INT_EQ(QE_OK, qh_store_done_doc_ids(s, run_id, "nf4", "mmlu", &ids, &n_ids, &err));
    int64_t expect_ids[] = {-1, 1, 3, 5, 7};
    CHECK_INT_EQ(5, n_ids);
    if (n_ids == 5)
        CHECK_CLOSE(expect_ids, ids, 5, 0);
    free(ids);
    CHECK_INT_EQ(QE_OK, qh_store_count_samples(s, run_id, &n_samples, &err));
    CHECK_INT_EQ(10, n_samples);

    qh_cache_entry entry = {"ab12", "nf4", "req1", "{\"ll\": -3.5}"};
    char *cached = NULL;
    CHECK_INT_EQ(QE_OK, qh_store_cache_put(s, &entry, 1, &err));
    CHECK_INT_EQ(QE_OK, qh_store_cache_get(s, "ab12", "nf4", "req1", &cached, &err));
    CHECK_STR_EQ("{\"ll\": -3.5}", cached);
    free(cached);
    CHECK_INT_EQ(QE_OK, qh_store_cache_get(s, "ab12", "fp32", "req1", &cached, &err));
    CHECK(cached == NULL);

    int64_t run2 = 0;
    CHECK_INT_EQ(QE_OK, qh_store_create_run(s, &info, &run2, &err));
    CHECK_INT_EQ(QE_OK, qh_store_finish_run(s, run2, QH_RUN_FAILED, "model file vanished", &err));
    CHECK_INT_EQ(QE_EINVAL, qh_store_finish_run(s, 99, QH_RUN_FAILED, NULL, &err));
    qh_run *runs = NULL;
    CHECK_INT_EQ(QE_OK, qh_store_list_runs(s, &runs, &n, &err));
    CHECK_INT_EQ(2, n);
    if (n == 2) {
        CHECK_STR_EQ("complete", qh_run_status_name(runs[0].status));
        CHECK(runs[0].finished_at != NULL);
        CHECK_STR_EQ("failed", qh_run_status_name(runs[1].status));
        CHECK_STR_EQ("model file vanished", runs[1].error);
    }
    qh_runs_free(runs, n);
    qh_store_close(s);
    /* What the store promised about the file itself. */
    char mode[32];
    CHECK_STR_EQ("wal", raw_text(path, "PRAGMA journal_mode", mode, sizeof mode));
    CHECK_INT_EQ(QH_STORE_SCHEMA_VERSION, raw_sql(path, "PRAGMA user_version"));
    CHECK_INT_EQ(2, raw_sql(path, "SELECT count(*) FROM runs"));
}

/* The v1 schema exactly as the first release wrote it (frozen here: the test is the witness). */
static const char *const schema_v1 =
    "CREATE TABLE qeval_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
    "INSERT INTO qeval_meta VALUES('format', 'qeval-results');"
    "CREATE TABLE runs(id INTEGER PRIMARY KEY, started_at TEXT NOT NULL, finished_at TEXT,"
    " status TEXT NOT NULL CHECK(status IN ('running','complete','failed','interrupted')), error TEXT,"
    " qeval_version TEXT NOT NULL, git_commit TEXT, command_line TEXT, host_cpu TEXT, host_cores INTEGER,"
    " host_ram_bytes INTEGER, gpu_name TEXT, gpu_driver TEXT, gpu_memory_bytes INTEGER, model_path TEXT,"
    " model_sha256 TEXT, weight_files_json TEXT, tasks_json TEXT, options_json TEXT, sandbox_json TEXT);"
    "CREATE TABLE run_variants(run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    " variant TEXT NOT NULL, device TEXT, load_seconds REAL, quantize_seconds REAL, footprint_bytes INTEGER,"
    " hf_footprint_bytes INTEGER, estimate_bytes INTEGER, peak_rss_bytes INTEGER, peak_device_bytes INTEGER,"
    " source_note TEXT, PRIMARY KEY(run_id, variant));"
    "CREATE TABLE task_results(run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    " variant TEXT NOT NULL, task TEXT NOT NULL, metric TEXT NOT NULL, value REAL, std_error REAL, n INTEGER,"
    " n_truncated INTEGER, is_higher_better INTEGER, PRIMARY KEY(run_id, variant, task, metric));"
    "CREATE TABLE samples(id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    " variant TEXT NOT NULL, task TEXT NOT NULL, doc_id INTEGER NOT NULL, prompt_hash TEXT, target TEXT,"
    " response_json TEXT, filtered TEXT, outcome_json TEXT, UNIQUE(run_id, variant, task, doc_id));"
    "CREATE TABLE fidelity(run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, variant TEXT NOT NULL,"
    " task TEXT NOT NULL, reference_variant TEXT NOT NULL, n_items INTEGER, kl_mean REAL, kl_p99 REAL,"
    " top1_agreement REAL, rms_delta_p REAL, answer_changed_share REAL, PRIMARY KEY(run_id, variant, task));"
    "CREATE TABLE perf(run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, variant TEXT NOT NULL,"
    " task TEXT NOT NULL, n_requests INTEGER, tokens_in INTEGER, tokens_out INTEGER, prefill_tok_s REAL,"
    " decode_tok_s REAL, latency_p50_ms REAL, latency_p95_ms REAL, wall_seconds REAL,"
    " PRIMARY KEY(run_id, variant, task));"
    "INSERT INTO runs(started_at, status, qeval_version, model_path) VALUES('2026-01-02T03:04:05.000Z',"
    " 'complete', '0.0.9', '/old/model');"
    "INSERT INTO samples(run_id, variant, task, doc_id, filtered) VALUES(1, 'fp32', 'gsm8k', 41, '72');"
    "PRAGMA user_version = 1;";

static void test_migration(void)
{
    const char *path = tmp_path("v1.db");
    sqlite3 *db = NULL;
    sqlite3_open(path, &db);
    CHECK_INT_EQ(SQLITE_OK, sqlite3_exec(db, schema_v1, NULL, NULL, NULL));
    CHECK_INT_EQ(SQLITE_OK, sqlite3_exec(db, "INSERT INTO task_results VALUES(1, 'fp32', 'gsm8k', 'exact_match',"
                                             " 0.25, 0.1, 20, 0, 1)", NULL, NULL, NULL));
    sqlite3_close(db);

    qe_error err = {0};
    qh_store *s = NULL;
    qh_store_options ro = {.is_read_only = true};
    CHECK_INT_EQ(QE_EUNSUPPORTED, qh_store_open(path, &ro, &s, &err)); /* reading never migrates */
    char older[64];
    snprintf(older, sizeof older, "schema v1 is older than v%d", QH_STORE_SCHEMA_VERSION);
    CHECK(strstr(err.msg, older) != NULL);
    CHECK_INT_EQ(QE_OK, qh_store_open(path, NULL, &s, &err));
    if (!s)
        return;
    qh_run run;
    CHECK_INT_EQ(QE_OK, qh_store_get_run(s, 1, &run, &err));
    CHECK_STR_EQ("/old/model", run.model_path);
    CHECK_STR_EQ("0.0.9", run.qeval_version);
    CHECK(run.merged_from_json == NULL);
    qh_run_free(&run);
    qh_sample_row *sm = NULL;
    size_t n = 0;
    CHECK_INT_EQ(QE_OK, qh_store_get_samples(s, 1, NULL, NULL, &sm, &n, &err));
    CHECK_INT_EQ(1, n);
    if (n == 1) {
        CHECK_STR_EQ("72", sm[0].filtered);
        CHECK(isnan(sm[0].latency_ms));
        CHECK(sm[0].question == NULL);
    }
    qh_sample_rows_free(sm, n);
    /* v4: a score stored before it names no rule and no shot count; one stored now names both */
    qh_task_result_row *tr = NULL;
    CHECK_INT_EQ(QE_OK, qh_store_get_task_results(s, 1, &tr, &n, &err));
    CHECK_INT_EQ(1, n);
    if (n == 1) {
        CHECK_NEAR(0.25, tr[0].value, 0);
        CHECK(tr[0].task_version == NULL);
        CHECK_INT_EQ(-1, tr[0].num_fewshot);
    }
    qh_task_result_rows_free(tr, n);
    qh_task_result_row mc2 = {1, "fp32", "truthfulqa_mc2", "acc", 0.5, 0.1, 8, 0, 1, "3.0", 0};
    CHECK_INT_EQ(QE_OK, qh_store_put_task_results(s, &mc2, 1, &err));
    CHECK_INT_EQ(QE_OK, qh_store_get_task_results(s, 1, &tr, &n, &err));
    CHECK_INT_EQ(2, n);
    if (n == 2) {
        CHECK_STR_EQ("truthfulqa_mc2", tr[1].task);
        CHECK_STR_EQ("3.0", tr[1].task_version);
        CHECK_INT_EQ(0, tr[1].num_fewshot);
    }
    qh_task_result_rows_free(tr, n);
    qh_cache_entry entry = {"m", "fp32", "r", "{}"};
    CHECK_INT_EQ(QE_OK, qh_store_cache_put(s, &entry, 1, &err));
    qh_store_close(s);
    CHECK_INT_EQ(QH_STORE_SCHEMA_VERSION, raw_sql(path, "PRAGMA user_version"));
    CHECK_INT_EQ(QE_OK, qh_store_open(path, &ro, &s, &err)); /* and now it reads */
    qh_store_close(s);
}

/* A file at schema `version` built by the released steps, holding run 1 and the variant row of
 * variant_sql, opened (so migrated to the current version); NULL (and a failed check) when it
 * does not open. */
static qh_store *open_old_file(const char *name, int version, const char *variant_sql)
{
    const char *path = tmp_path(name);
    sqlite3 *db = NULL;
    sqlite3_open(path, &db);
    for (int v = 0; v < version; v++)
        CHECK_INT_EQ(SQLITE_OK, sqlite3_exec(db, qh_store_migrations[v], NULL, NULL, NULL));
    char sql[1024];
    snprintf(sql, sizeof sql,
             "PRAGMA user_version = %d;"
             "INSERT INTO runs(id, started_at, status, qeval_version) VALUES(1, '2026-01-01T00:00:00.000Z', "
             "'complete', '0.1.0');%s",
             version, variant_sql);
    CHECK_INT_EQ(SQLITE_OK, sqlite3_exec(db, sql, NULL, NULL, NULL));
    sqlite3_close(db);
    qe_error err = {0};
    qh_store *s = NULL;
    CHECK_INT_EQ(QE_OK, qh_store_open(path, NULL, &s, &err));
    if (s)
        CHECK_INT_EQ(QH_STORE_SCHEMA_VERSION, raw_sql(path, "PRAGMA user_version"));
    return s;
}

/* v5 -> v6: the row gains the predicted figures as unknown; a row written after stores them. */
static void v5_row(qh_variant_row *v)
{
    CHECK_INT_EQ(990, v->device_weights_bytes);
    CHECK_INT_EQ(2048, v->device_kv_peak_bytes);
    CHECK_INT_EQ(-1, v->predicted_context);
    CHECK_INT_EQ(-1, v->predicted_weights_bytes);
    CHECK_INT_EQ(-1, v->predicted_peak_bytes);
    v->predicted_context = 512;
    v->predicted_peak_bytes = 4000;
}

/* v6 -> v7: the row's device peak is unknown; a row written after stores it. */
static void v6_row(qh_variant_row *v)
{
    CHECK_INT_EQ(5100, v->predicted_peak_bytes);
    CHECK_INT_EQ(-1, v->device_used_peak_bytes);
    v->device_used_peak_bytes = 600000000;
}

/* A file at an older version (built by the released steps) keeps its variant row through the
 * migration; the new columns read as unknown, and a row written after the migration stores them. */
static void test_migrations(void)
{
    static const struct {
        const char *name;
        int version;
        const char *variant_sql;
        void (*check_and_set)(qh_variant_row *v); /* what the old row reads as; sets new figures */
        const char *stored_sql;                   /* one of them as written */
        int64_t stored;
    } cases[] = {
        {"v5.db", 5,
         "INSERT INTO run_variants(run_id, variant, device, footprint_bytes, peak_device_bytes, device_weights_bytes,"
         " device_kv_peak_bytes) VALUES(1, 'nf4', 'cuda', 1000, 5000, 990, 2048)",
         v5_row, "SELECT predicted_peak_bytes FROM run_variants WHERE variant = 'nf4'", 4000},
        {"v6.db", 6,
         "INSERT INTO run_variants(run_id, variant, device, footprint_bytes, peak_device_bytes, predicted_peak_bytes)"
         " VALUES(1, 'bf16', 'cuda', 1000, 5000, 5100)",
         v6_row, "SELECT device_used_peak_bytes FROM run_variants WHERE variant = 'bf16'", 600000000},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qh_store *s = open_old_file(cases[i].name, cases[i].version, cases[i].variant_sql);
        if (!s)
            continue;
        qe_error err = {0};
        qh_variant_row *v = NULL;
        size_t n = 0;
        CHECK_INT_EQ(QE_OK, qh_store_get_variants(s, 1, &v, &n, &err));
        CHECK_INT_EQ(1, n);
        if (n == 1) {
            cases[i].check_and_set(&v[0]);
            CHECK_INT_EQ(QE_OK, qh_store_put_variants(s, v, 1, &err));
        }
        qh_variant_rows_free(v, n);
        CHECK_INT_EQ(cases[i].stored, raw_sql(tmp_path(cases[i].name), cases[i].stored_sql));
        qh_store_close(s);
    }
}

/* A child writes n_batches batches of batch_size samples of task `task` into run 1; after each
 * commit it writes one byte to notify_fd (when >= 0). Exits 0 on success. */
static int writer_child(const char *path, const char *task, int n_batches, int batch_size, int notify_fd)
{
    qe_error err = {0};
    qh_store *s = NULL;
    if (qh_store_open(path, NULL, &s, &err) != QE_OK) {
        fprintf(stderr, "child: %s\n", err.msg);
        return 1;
    }
    char bufs[64][64];
    qh_sample_row rows[64];
    for (int b = 0; b < n_batches; b++) {
        for (int i = 0; i < batch_size; i++)
            rows[i] = make_sample(1, "fp32", task, (int64_t)b * batch_size + i, bufs[i]);
        if (qh_store_put_samples(s, rows, (size_t)batch_size, &err) != QE_OK) {
            fprintf(stderr, "child: %s\n", err.msg);
            qh_store_close(s);
            return 1;
        }
        if (notify_fd >= 0 && write(notify_fd, "x", 1) != 1)
            return 1;
    }
    qh_store_close(s);
    return 0;
}

static qh_store *fresh_store_with_run(const char *path)
{
    qe_error err = {0};
    qh_store *s = NULL;
    remove_db(path);
    if (qh_store_open(path, NULL, &s, &err) != QE_OK)
        return NULL;
    qh_run info = sample_run_info();
    int64_t id;
    qh_store_create_run(s, &info, &id, &err);
    return s;
}

static void test_concurrent_writers(void)
{
    const char *path = tmp_path("concurrent.db");
    qh_store_close(fresh_store_with_run(path));
    pid_t a = fork();
    if (a == 0)
        _exit(writer_child(path, "task_a", 40, 25, -1));
    pid_t b = fork();
    if (b == 0)
        _exit(writer_child(path, "task_b", 40, 25, -1));
    int status_a = -1, status_b = -1;
    waitpid(a, &status_a, 0);
    waitpid(b, &status_b, 0);
    CHECK(WIFEXITED(status_a) && WEXITSTATUS(status_a) == 0);
    CHECK(WIFEXITED(status_b) && WEXITSTATUS(status_b) == 0);
    CHECK_INT_EQ(1000, raw_sql(path, "SELECT count(*) FROM samples WHERE task='task_a'"));
    CHECK_INT_EQ(1000, raw_sql(path, "SELECT count(DISTINCT doc_id) FROM samples WHERE task='task_b'"));
}

/* Two processes meeting a file that does not exist yet: one creates the schema, neither fails. */
static void test_concurrent_creation(void)
{
    const char *path = tmp_path("born_twice.db");
    pid_t kids[2];
    for (int k = 0; k < 2; k++)
        if ((kids[k] = fork()) == 0) {
            qe_error err = {0};
            qh_store *s = NULL;
            qh_run info = sample_run_info();
            int64_t id;
            qe_status st = qh_store_open(path, NULL, &s, &err);
            if (st == QE_OK)
                st = qh_store_create_run(s, &info, &id, &err);
            if (st != QE_OK)
                fprintf(stderr, "child: %s\n", err.msg);
            qh_store_close(s);
            _exit(st == QE_OK ? 0 : 1);
        }
    for (int k = 0; k < 2; k++) {
        int status = -1;
        waitpid(kids[k], &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    CHECK_INT_EQ(2, raw_sql(path, "SELECT count(*) FROM runs"));
    CHECK_INT_EQ(QH_STORE_SCHEMA_VERSION, raw_sql(path, "PRAGMA user_version"));
}

static void test_killed_writer(void)
{
    const char *path = tmp_path("killed.db");
    qh_store_close(fresh_store_with_run(path));
    int fds[2];
    if (pipe(fds) != 0)
        return;
    pid_t child = fork();
    if (child == 0) {
        close(fds[0]);
        _exit(writer_child(path, "gsm8k", 1000000, 50, fds[1]));
    }
    close(fds[1]);
    char acks[5];
    size_t n_acked = 0;
    while (n_acked < sizeof acks) { /* wait for five committed batches, then kill it mid-flight */
        ssize_t got = read(fds[0], acks, sizeof acks - n_acked);
        if (got <= 0)
            break;
        n_acked += (size_t)got;
    }
    kill(child, SIGKILL);
    int status;
    waitpid(child, &status, 0);
    close(fds[0]);
    CHECK(WIFSIGNALED(status));
    char verdict[64];
    CHECK_STR_EQ("ok", raw_text(path, "PRAGMA integrity_check", verdict, sizeof verdict));
    long long n = raw_sql(path, "SELECT count(*) FROM samples");
    CHECK(n >= 5 * 50);  /* every acknowledged batch survived */
    CHECK_INT_EQ(0, n % 50); /* and no batch is there in part */
    CHECK_INT_EQ(n - 1, raw_sql(path, "SELECT max(doc_id) FROM samples"));
}

static void expect_open_error(const char *path, const qh_store_options *opts, qe_status code, const char *words)
{
    qe_error err = {0};
    qh_store *s = NULL;
    qe_status st = qh_store_open(path, opts, &s, &err);
    CHECK_INT_EQ(code, st);
    CHECK(s == NULL);
    if (!strstr(err.msg, words) || !strstr(err.msg, path)) {
        fprintf(stderr, "message \"%s\" lacks \"%s\" or the path\n", err.msg, words);
        CHECK(0);
    }
    qh_store_close(s);
}

static void test_hostile_files(void)
{
    const char *text = tmp_path("notes.txt");
    const char *note = "these are my notes, not a database\n";
    write_file(text, note, strlen(note));
    expect_open_error(text, NULL, QE_EFORMAT, "not an SQLite database");
    char back[64];
    FILE *f = fopen(text, "rb");
    size_t got = fread(back, 1, sizeof back - 1, f);
    fclose(f);
    back[got] = 0;
    CHECK_STR_EQ(note, back); /* the foreign file is left as it was */

    /* The SQLite magic followed by garbage. */
    const char *garbage = tmp_path("garbage.db");
    unsigned char bytes[4096];
    memcpy(bytes, "SQLite format 3", 16);
    for (size_t i = 16; i < sizeof bytes; i++)
        bytes[i] = (unsigned char)(i * 131 + 7);
    write_file(garbage, bytes, sizeof bytes);
    expect_open_error(garbage, NULL, QE_EFORMAT, garbage);

    const char *foreign = tmp_path("foreign.db");
    sqlite3 *db = NULL;
    sqlite3_open(foreign, &db);
    sqlite3_exec(db, "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT)", NULL, NULL, NULL);
    sqlite3_close(db);
    expect_open_error(foreign, NULL, QE_EFORMAT, "not a qeval results file (1 tables");
    char mode[16];
    CHECK_STR_EQ("delete", raw_text(foreign, "PRAGMA journal_mode", mode, sizeof mode)); /* untouched */

    const char *newer = tmp_path("newer.db");
    qh_store_close(fresh_store_with_run(newer));
    raw_sql(newer, "PRAGMA user_version = 99");
    expect_open_error(newer, NULL, QE_EUNSUPPORTED, "newer qeval (schema v99");

    qh_store_options ro = {.is_read_only = true};
    expect_open_error(tmp_path("absent.db"), &ro, QE_EIO, "no such results file");
    expect_open_error(dir, NULL, QE_EINVAL, "is a directory");
}

static void overwrite(const char *path, long offset, unsigned char byte, size_t n)
{
    FILE *f = fopen(path, "r+b");
    fseek(f, offset, SEEK_SET);
    for (size_t i = 0; i < n; i++)
        fputc(byte, f);
    fclose(f);
}

/* Damage in a file that was once good: found by the check, or reported when met; never a crash. */
static void test_corrupt_file(void)
{
    const char *path = tmp_path("damaged.db");
    qh_store *s = fresh_store_with_run(path);
    qe_error err = {0};
    static char text[3000];
    memset(text, 'y', sizeof text - 1);
    char bufs[100][64];
    qh_sample_row rows[100];
    for (int i = 0; i < 100; i++) {
        rows[i] = make_sample(1, "fp32", "t", i, bufs[i]);
        rows[i].response_json = text;
    }
    CHECK_INT_EQ(QE_OK, qh_store_put_samples(s, rows, 100, &err));
    CHECK_INT_EQ(QE_OK, qh_store_check(s, &err));
    qh_store_close(s);
    raw_sql(path, "PRAGMA wal_checkpoint(TRUNCATE)");

    overwrite(path, 4096 * 5, 0xff, 64); /* one b-tree page header */
    CHECK_INT_EQ(QE_OK, qh_store_open(path, NULL, &s, &err));
    if (s) {
        CHECK_INT_EQ(QE_EFORMAT, qh_store_check(s, &err));
        CHECK(strstr(err.msg, "the database file is corrupt: ") && strstr(err.msg, path));
    }
    qh_store_close(s);
    for (long page = 1; page < 40; page++) /* most pages */
        overwrite(path, 4096 * page + 100, 0x13, 40);
    CHECK_INT_EQ(QE_OK, qh_store_open(path, NULL, &s, &err));
    qh_sample_row *got = NULL;
    size_t n = 0;
    if (s)
        CHECK_INT_EQ(QE_EFORMAT, qh_store_get_samples(s, 1, NULL, NULL, &got, &n, &err));
    CHECK(strstr(err.msg, "corrupt") && strstr(err.msg, "while reading samples"));
    CHECK(got == NULL && n == 0);
    qh_store_close(s);
    overwrite(path, 200, 0x13, 3000); /* the schema itself */
    expect_open_error(path, NULL, QE_EFORMAT, "corrupt");
}

/* As root, file modes do not stop writes, so the child gives up root first. */
static void test_read_only(void)
{
    const char *path = tmp_path("readonly.db");
    qh_store_close(fresh_store_with_run(path));
    chmod(path, 0444);
    chmod(dir, 0755);
    pid_t child = fork();
    if (child == 0) {
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
            _exit(77);
        qe_error err = {0};
        qh_store *s = NULL;
        qe_status st = qh_store_open(path, NULL, &s, &err);
        fprintf(stderr, "read-only open: %s\n", err.msg);
        _exit(st == QE_EDB && strstr(err.msg, "read-only") && strstr(err.msg, path) ? 0 : 1);
    }
    int status;
    waitpid(child, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
        fprintf(stderr, "read-only test skipped: cannot drop root\n");
    else
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_INT_EQ(1, raw_sql(path, "SELECT count(*) FROM runs"));
    chmod(path, 0644);
    chmod(dir, 0700);
}

/* Rows committed before the disk filled survive; the failing batch leaves no part behind. */
static void check_full_disk_outcome(const char *path, qe_status st, const qe_error *err, long long n_before)
{
    CHECK_INT_EQ(QE_EDB, st);
    if (!strstr(err->msg, "disk full or file size limit")) {
        fprintf(stderr, "unexpected message: %s\n", err->msg);
        CHECK(0);
    }
    char verdict[64];
    CHECK_STR_EQ("ok", raw_text(path, "PRAGMA integrity_check", verdict, sizeof verdict));
    CHECK_INT_EQ(n_before, raw_sql(path, "SELECT count(*) FROM samples"));
}

static qe_status write_big_batch(qh_store *s, qe_error *err)
{
    static char big[256 * 1024];
    memset(big, 'x', sizeof big - 1);
    qh_sample_row rows[8];
    char bufs[8][64];
    for (int i = 0; i < 8; i++) {
        rows[i] = make_sample(1, "fp32", "humaneval", 1000 + i, bufs[i]);
        rows[i].response_json = big;
    }
    return qh_store_put_samples(s, rows, 8, err);
}

static void test_full_disk(void)
{
    const char *path = tmp_path("full.db");
    qh_store *s = fresh_store_with_run(path);
    qe_error err = {0};
    char bufs[10][64];
    qh_sample_row rows[10];
    for (int i = 0; i < 10; i++)
        rows[i] = make_sample(1, "fp32", "humaneval", i, bufs[i]);
    CHECK_INT_EQ(QE_OK, qh_store_put_samples(s, rows, 10, &err));
    qh_store_close(s);

    /* 1: SQLite's own size cap. */
    qh_store_options capped = {.max_page_count = 40};
    CHECK_INT_EQ(QE_OK, qh_store_open(path, &capped, &s, &err));
    if (s)
        check_full_disk_outcome(path, write_big_batch(s, &err), &err, 10);
    qh_store_close(s);

    /* 2: the operating system's file size limit, as on a full disk. */
    pid_t child = fork();
    if (child == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit limit = {256 * 1024, 256 * 1024};
        setrlimit(RLIMIT_FSIZE, &limit);
        qe_error child_err = {0};
        qh_store *cs = NULL;
        if (qh_store_open(path, NULL, &cs, &child_err) != QE_OK)
            _exit(2);
        qe_status st = write_big_batch(cs, &child_err);
        fprintf(stderr, "file size limit: %s\n", child_err.msg);
        qh_store_close(cs);
        _exit(st == QE_EDB && strstr(child_err.msg, "disk full or file size limit") ? 0 : 1);
    }
    int status;
    waitpid(child, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    check_full_disk_outcome(path, QE_EDB, &(qe_error){QE_EDB, "disk full or file size limit"}, 10);
    /* And the file still takes writes once there is room. */
    CHECK_INT_EQ(QE_OK, qh_store_open(path, NULL, &s, &err));
    if (s)
        CHECK_INT_EQ(QE_OK, write_big_batch(s, &err));
    qh_store_close(s);
    CHECK_INT_EQ(18, raw_sql(path, "SELECT count(*) FROM samples"));
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/qeval_store_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip();
    test_migration();
    test_migrations();
    test_concurrent_writers();
    test_concurrent_creation();
    test_killed_writer();
    test_hostile_files();
    test_corrupt_file();
    test_read_only();
    test_full_disk();
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (check_n_failed == 0 && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_summary();
}
