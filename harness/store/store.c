/* store — the SQLite results file: opening, migrations, errors, and row I/O driven by one
 * column table per SQL table, so inserting, upserting, reading and freeing are written once. */
#include "store.h"

#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "build_info.h"
#include "store_private.h"

struct qh_store {
    sqlite3 *db;
    char *path;
    int busy_timeout_ms;
    int txn_depth; /* open qh_store_begin calls; the outermost one owns the SQL transaction */
};

/* ---- errors -------------------------------------------------------------------------- */

qe_status qh_store_fail(qh_store *s, qe_error *err, int rc, const char *doing)
{
    int primary = rc & 0xff, sys_errno = sqlite3_system_errno(s->db);
    const char *detail = sqlite3_errmsg(s->db);
    if (primary == SQLITE_FULL || (primary == SQLITE_IOERR && (sys_errno == ENOSPC || sys_errno == EFBIG)))
        return qe_fail(err, QE_EDB, "%s: disk full or file size limit reached while %s (%s); that write was "
                       "rolled back and everything stored before it is intact", s->path, doing,
                       sys_errno ? strerror(sys_errno) : detail);
    if (primary == SQLITE_NOTADB)
        return qe_fail(err, QE_EFORMAT, "%s: not a qeval results file (not an SQLite database)", s->path);
    if (primary == SQLITE_CORRUPT)
        return qe_fail(err, QE_EFORMAT, "%s: the database file is corrupt (%s) while %s", s->path, detail, doing);
    if (primary == SQLITE_READONLY)
        return qe_fail(err, QE_EDB, "%s: cannot write, the file or its directory is read-only (%s) while %s",
                       s->path, detail, doing);
    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED)
        return qe_fail(err, QE_EDB, "%s: locked by another process; gave up after %d ms while %s", s->path,
                       s->busy_timeout_ms, doing);
    return qe_fail(err, QE_EDB, "%s: %s while %s", s->path, detail, doing);
}

static qe_status exec_sql(qh_store *s, const char *sql, const char *doing, qe_error *err)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? QE_OK : qh_store_fail(s, err, rc, doing);
}

qe_status qh_store_prepare(qh_store *s, const char *sql, sqlite3_stmt **stmt, const char *doing, qe_error *err)
{
    int rc = sqlite3_prepare_v2(s->db, sql, -1, stmt, NULL);
    return rc == SQLITE_OK ? QE_OK : qh_store_fail(s, err, rc, doing);
}

/* ---- transactions ---------------------------------------------------------------------- */

qe_status qh_store_begin(qh_store *s, qe_error *err)
{
    /* IMMEDIATE takes the write lock up front, so the busy timeout covers the wait and a
     * reader never has to upgrade (which SQLite refuses with SQLITE_BUSY at once). */
    if (s->txn_depth == 0) {
        qe_status st = exec_sql(s, "BEGIN IMMEDIATE", "starting a transaction", err);
        if (st != QE_OK)
            return st;
    }
    s->txn_depth++;
    return QE_OK;
}

void qh_store_rollback(qh_store *s)
{
    if (s->txn_depth == 0)
        return;
    s->txn_depth = 0;
    if (!sqlite3_get_autocommit(s->db)) /* SQLite may have rolled back already (full disk) */
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

qe_status qh_store_commit(qh_store *s, qe_error *err)
{
    if (s->txn_depth > 1) {
        s->txn_depth--;
        return QE_OK;
    }
    qe_status st = exec_sql(s, "COMMIT", "committing", err);
    if (st != QE_OK)
        qh_store_rollback(s);
    s->txn_depth = 0;
    return st;
}

/* ---- opening and migrating ------------------------------------------------------------- */

static qe_status query_int(qh_store *s, const char *sql, int64_t *value, const char *doing, qe_error *err)
{
    sqlite3_stmt *stmt = NULL;
    qe_status st = qh_store_prepare(s, sql, &stmt, doing, err);
    if (st != QE_OK)
        return st;
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        *value = sqlite3_column_int64(stmt, 0);
    else
        st = qh_store_fail(s, err, rc, doing);
    sqlite3_finalize(stmt);
    return st;
}

/* Decides what the file is: a new empty database (*version 0), or a qeval file at *version. */
static qe_status identify(qh_store *s, int64_t *version, qe_error *err)
{
    int64_t n_tables = 0, has_meta = 0, is_marked = 0;
    qe_status st = query_int(s, "PRAGMA user_version", version, "reading the schema version", err);
    if (st == QE_OK)
        st = query_int(s, "SELECT count(*) FROM sqlite_master", &n_tables, "reading the schema", err);
    if (st == QE_OK)
        st = query_int(s, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='qeval_meta'",
                       &has_meta, "reading the schema", err);
    if (st == QE_OK && has_meta)
        st = query_int(s, "SELECT count(*) FROM qeval_meta WHERE key='format' AND value='" QH_STORE_FORMAT_MARKER "'",
                       &is_marked, "reading the format marker", err);
    if (st != QE_OK)
        return st;
    if (*version == 0 && n_tables == 0)
        return QE_OK;
    if (!is_marked)
        return qe_fail(err, QE_EFORMAT, "%s: an SQLite database that is not a qeval results file "
                       "(%lld tables, no qeval format marker)", s->path, (long long)n_tables);
    if (*version > QH_STORE_SCHEMA_VERSION)
        return qe_fail(err, QE_EUNSUPPORTED, "%s: written by a newer qeval (schema v%lld; this build reads up "
                       "to v%d)", s->path, (long long)*version, QH_STORE_SCHEMA_VERSION);
    if (*version < 1)
        return qe_fail(err, QE_EFORMAT, "%s: qeval marker present but schema version is %lld", s->path,
                       (long long)*version);
    return QE_OK;
}

static qe_status migrate(qh_store *s, qe_error *err)
{
    qe_status st = qh_store_begin(s, err);
    if (st != QE_OK)
        return st;
    int64_t version = 0;
    /* Checked again inside the write lock: another process may have migrated meanwhile. */
    st = identify(s, &version, err);
    for (; st == QE_OK && version < QH_STORE_SCHEMA_VERSION; version++) {
        char doing[64], set_version[64];
        snprintf(doing, sizeof doing, "migrating the schema to v%lld", (long long)version + 1);
        snprintf(set_version, sizeof set_version, "PRAGMA user_version = %lld", (long long)version + 1);
        st = exec_sql(s, qh_store_migrations[version], doing, err);
        if (st == QE_OK)
            st = exec_sql(s, set_version, doing, err);
    }
    if (st == QE_OK)
        return qh_store_commit(s, err);
    qh_store_rollback(s);
    return st;
}

/* Two processes switching a new file to WAL at once can deadlock on the lock upgrade, where
 * SQLite answers BUSY at once instead of waiting; so this waits and retries itself. */
static qe_status switch_to_wal(qh_store *s, qe_error *err)
{
    int rc = SQLITE_BUSY;
    for (int waited_ms = 0; waited_ms <= s->busy_timeout_ms; waited_ms += 10) {
        rc = sqlite3_exec(s->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
        if ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED)
            break;
        sqlite3_sleep(10);
    }
    return rc == SQLITE_OK ? QE_OK : qh_store_fail(s, err, rc, "switching to WAL mode");
}

qe_status qh_store_open(const char *path, const qh_store_options *opts, qh_store **out, qe_error *err)
{
    qh_store_options defaults = {0};
    if (!opts)
        opts = &defaults;
    *out = NULL;
    struct stat sb;
    bool exists = stat(path, &sb) == 0;
    if (exists && S_ISDIR(sb.st_mode))
        return qe_fail(err, QE_EINVAL, "%s: is a directory, not a results file", path);
    if (!exists && opts->is_read_only)
        return qe_fail(err, QE_EIO, "%s: no such results file", path);

    qh_store *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        return qe_fail(err, QE_ENOMEM, "%s: out of memory opening the results file", path);
    }
    s->busy_timeout_ms = opts->busy_timeout_ms > 0 ? opts->busy_timeout_ms : 30000;
    int flags = opts->is_read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    int rc = sqlite3_open_v2(path, &s->db, flags, NULL);
    qe_status st = QE_OK;
    if (rc != SQLITE_OK) {
        st = s->db ? qh_store_fail(s, err, rc, "opening")
                   : qe_fail(err, QE_ENOMEM, "%s: out of memory opening the results file", path);
        goto out;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, s->busy_timeout_ms);
    if (!opts->is_read_only && sqlite3_db_readonly(s->db, "main") == 1) {
        st = qe_fail(err, QE_EDB, "%s: the file is read-only; results cannot be written to it", path);
        goto out;
    }
    int64_t version = 0;
    /* One read transaction, so that the version and the tables come from the same moment even
     * while another process is creating the schema. */
    if ((st = exec_sql(s, "BEGIN", "reading the schema", err)) != QE_OK)
        goto out;
    st = identify(s, &version, err);
    sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    if (st != QE_OK)
        goto out;
    if (opts->is_read_only) {
        if (version == 0)
            st = qe_fail(err, QE_EFORMAT, "%s: an empty file, not a qeval results file", path);
        else if (version < QH_STORE_SCHEMA_VERSION)
            st = qe_fail(err, QE_EUNSUPPORTED, "%s: schema v%lld is older than v%d; open it once for writing "
                         "(e.g. qeval runs --db %s --upgrade) to migrate", path, (long long)version,
                         QH_STORE_SCHEMA_VERSION, path);
        goto out;
    }
    /* WAL only after the file proved to be ours: switching mode writes to the file. */
    if ((st = switch_to_wal(s, err)) != QE_OK)
        goto out;
    /* NORMAL in WAL mode: a commit survives the process being killed (it is in the WAL before
     * COMMIT returns) and only a power cut can drop the last commits, which a resumed run redoes.
     * FULL would fsync once per cached request, which on a real disk made runs 10x slower. */
    if ((st = exec_sql(s, "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON", "setting pragmas", err)) != QE_OK)
        goto out;
    if (opts->max_page_count > 0) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA max_page_count = %lld", (long long)opts->max_page_count);
        if ((st = exec_sql(s, sql, "capping the file size", err)) != QE_OK)
            goto out;
    }
    if (version < QH_STORE_SCHEMA_VERSION)
        st = migrate(s, err);
out:
    if (st != QE_OK) {
        qh_store_close(s);
        return st;
    }
    *out = s;
    return QE_OK;
}

void qh_store_close(qh_store *s)
{
    if (!s)
        return;
    qh_store_rollback(s);
    sqlite3_close(s->db);
    free(s->path);
    free(s);
}

const char *qh_store_path(const qh_store *s) { return s->path; }

qe_status qh_store_check(qh_store *s, qe_error *err)
{
    const char *doing = "checking the file";
    sqlite3_stmt *stmt = NULL;
    qe_status st = qh_store_prepare(s, "PRAGMA quick_check(1)", &stmt, doing, err);
    if (st != QE_OK)
        return st;
    int rc = sqlite3_step(stmt);
    const char *verdict = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(stmt, 0) : NULL;
    if (rc != SQLITE_ROW)
        st = qh_store_fail(s, err, rc, doing);
    else if (!verdict || strcmp(verdict, "ok"))
        st = qe_fail(err, QE_EFORMAT, "%s: the database file is corrupt: %s", s->path, verdict ? verdict : "?");
    sqlite3_finalize(stmt);
    return st;
}

/* ---- rows described by column tables ---------------------------------------------------- */

/* COL_ID: an integer that is part of a key, stored as given (no -1 = unknown). */
typedef enum { COL_TEXT, COL_INT, COL_ID, COL_REAL, COL_STATUS } col_kind;
typedef struct {
    const char *name;
    col_kind kind;
    size_t offset;
} column;
typedef struct {
    const char *table, *what; /* SQL name; words for messages */
    const column *cols;
    size_t n_cols, n_key;     /* the first n_key columns are the row's unique key */
    size_t row_size;
    bool has_task;            /* has a task column that reads can filter on */
} table_desc;

#define COL(type, field, kind) {#field, kind, offsetof(type, field)}
#define DESC(name, what, type, cols, n_key, has_task) \
    {name, what, cols, sizeof cols / sizeof cols[0], n_key, sizeof(type), has_task}

static const column variant_cols[] = {
    COL(qh_variant_row, run_id, COL_ID), COL(qh_variant_row, variant, COL_TEXT),
    COL(qh_variant_row, device, COL_TEXT), COL(qh_variant_row, load_seconds, COL_REAL),
    COL(qh_variant_row, quantize_seconds, COL_REAL), COL(qh_variant_row, footprint_bytes, COL_INT),
    COL(qh_variant_row, hf_footprint_bytes, COL_INT), COL(qh_variant_row, estimate_bytes, COL_INT),
    COL(qh_variant_row, peak_rss_bytes, COL_INT), COL(qh_variant_row, peak_device_bytes, COL_INT),
    COL(qh_variant_row, source_note, COL_TEXT), COL(qh_variant_row, device_weights_bytes, COL_INT),
    COL(qh_variant_row, device_kv_peak_bytes, COL_INT), COL(qh_variant_row, device_free_before_bytes, COL_INT),
    COL(qh_variant_row, device_free_after_bytes, COL_INT), COL(qh_variant_row, predicted_context, COL_INT),
    COL(qh_variant_row, predicted_weights_bytes, COL_INT), COL(qh_variant_row, predicted_kv_cache_bytes, COL_INT),
    COL(qh_variant_row, predicted_activation_bytes, COL_INT), COL(qh_variant_row, predicted_peak_bytes, COL_INT),
    COL(qh_variant_row, device_used_peak_bytes, COL_INT),
};
static const column task_result_cols[] = {
    COL(qh_task_result_row, run_id, COL_ID), COL(qh_task_result_row, variant, COL_TEXT),
    COL(qh_task_result_row, task, COL_TEXT), COL(qh_task_result_row, metric, COL_TEXT),
    COL(qh_task_result_row, value, COL_REAL), COL(qh_task_result_row, std_error, COL_REAL),
    COL(qh_task_result_row, n, COL_INT), COL(qh_task_result_row, n_truncated, COL_INT),
    COL(qh_task_result_row, is_higher_better, COL_INT), COL(qh_task_result_row, task_version, COL_TEXT),
    COL(qh_task_result_row, num_fewshot, COL_INT),
};
static const column sample_cols[] = {
    COL(qh_sample_row, run_id, COL_ID), COL(qh_sample_row, variant, COL_TEXT),
    COL(qh_sample_row, task, COL_TEXT), COL(qh_sample_row, doc_id, COL_ID),
    COL(qh_sample_row, prompt_hash, COL_TEXT), COL(qh_sample_row, target, COL_TEXT),
    COL(qh_sample_row, response_json, COL_TEXT), COL(qh_sample_row, filtered, COL_TEXT),
    COL(qh_sample_row, outcome_json, COL_TEXT), COL(qh_sample_row, latency_ms, COL_REAL),
    COL(qh_sample_row, question, COL_TEXT),
};
static const column fidelity_cols[] = {
    COL(qh_fidelity_row, run_id, COL_ID), COL(qh_fidelity_row, variant, COL_TEXT),
    COL(qh_fidelity_row, task, COL_TEXT), COL(qh_fidelity_row, reference_variant, COL_TEXT),
    COL(qh_fidelity_row, n_items, COL_INT), COL(qh_fidelity_row, kl_mean, COL_REAL),
    COL(qh_fidelity_row, kl_p99, COL_REAL), COL(qh_fidelity_row, top1_agreement, COL_REAL),
    COL(qh_fidelity_row, rms_delta_p, COL_REAL), COL(qh_fidelity_row, answer_changed_share, COL_REAL),
};
static const column perf_cols[] = {
    COL(qh_perf_row, run_id, COL_ID), COL(qh_perf_row, variant, COL_TEXT), COL(qh_perf_row, task, COL_TEXT),
    COL(qh_perf_row, n_requests, COL_INT), COL(qh_perf_row, tokens_in, COL_INT),
    COL(qh_perf_row, tokens_out, COL_INT), COL(qh_perf_row, prefill_tok_s, COL_REAL),
    COL(qh_perf_row, decode_tok_s, COL_REAL), COL(qh_perf_row, latency_p50_ms, COL_REAL),
    COL(qh_perf_row, latency_p95_ms, COL_REAL), COL(qh_perf_row, wall_seconds, COL_REAL),
};
/* Runs: the first column is the key; the store itself writes the "history" columns. */
static const column run_cols[] = {
    COL(qh_run, id, COL_ID), COL(qh_run, started_at, COL_TEXT), COL(qh_run, finished_at, COL_TEXT),
    COL(qh_run, status, COL_STATUS), COL(qh_run, error, COL_TEXT), COL(qh_run, merged_from_json, COL_TEXT),
    COL(qh_run, qeval_version, COL_TEXT), COL(qh_run, git_commit, COL_TEXT),
    COL(qh_run, command_line, COL_TEXT), COL(qh_run, host_cpu, COL_TEXT), COL(qh_run, host_cores, COL_INT),
    COL(qh_run, host_ram_bytes, COL_INT), COL(qh_run, gpu_name, COL_TEXT), COL(qh_run, gpu_driver, COL_TEXT),
    COL(qh_run, gpu_memory_bytes, COL_INT), COL(qh_run, model_path, COL_TEXT),
    COL(qh_run, model_sha256, COL_TEXT), COL(qh_run, weight_files_json, COL_TEXT),
    COL(qh_run, tasks_json, COL_TEXT), COL(qh_run, options_json, COL_TEXT), COL(qh_run, sandbox_json, COL_TEXT),
};
enum { RUN_N_HISTORY_COLS = 6 }; /* id .. merged_from_json */

static const table_desc variant_table = DESC("run_variants", "variant rows", qh_variant_row, variant_cols, 2, false);
static const table_desc task_result_table =
    DESC("task_results", "task results", qh_task_result_row, task_result_cols, 4, true);
static const table_desc sample_table = DESC("samples", "samples", qh_sample_row, sample_cols, 4, true);
static const table_desc fidelity_table = DESC("fidelity", "fidelity rows", qh_fidelity_row, fidelity_cols, 3, true);
static const table_desc perf_table = DESC("perf", "perf rows", qh_perf_row, perf_cols, 3, true);
static const table_desc run_table = DESC("runs", "runs", qh_run, run_cols, 1, false);

static const char *const status_names[] = {"running", "complete", "failed", "interrupted"};

const char *qh_run_status_name(qh_run_status status)
{
    return (unsigned)status < 4 ? status_names[status] : "unknown";
}

static int bind_column(sqlite3_stmt *stmt, int index, const column *c, const void *row)
{
    const char *field = (const char *)row + c->offset;
    switch (c->kind) {
    case COL_TEXT: {
        const char *text = *(const char *const *)field;
        return text ? sqlite3_bind_text(stmt, index, text, -1, SQLITE_STATIC) : sqlite3_bind_null(stmt, index);
    }
    case COL_INT: {
        int64_t v = *(const int64_t *)field;
        return v == -1 ? sqlite3_bind_null(stmt, index) : sqlite3_bind_int64(stmt, index, v);
    }
    case COL_ID: return sqlite3_bind_int64(stmt, index, *(const int64_t *)field);
    case COL_REAL: {
        double v = *(const double *)field;
        return isnan(v) ? sqlite3_bind_null(stmt, index) : sqlite3_bind_double(stmt, index, v);
    }
    case COL_STATUS:
        return sqlite3_bind_text(stmt, index, qh_run_status_name(*(const qh_run_status *)field), -1, SQLITE_STATIC);
    }
    return SQLITE_MISUSE;
}

/* Fills row from the statement's columns; copy=false points strings into SQLite's memory,
 * valid until the next step. Returns false when a copy could not be allocated. */
static bool read_columns(sqlite3_stmt *stmt, const table_desc *t, void *row, bool copy)
{
    bool ok = true;
    for (size_t i = 0; i < t->n_cols; i++) {
        const column *c = &t->cols[i];
        char *field = (char *)row + c->offset;
        bool is_null = sqlite3_column_type(stmt, (int)i) == SQLITE_NULL;
        const char *text = NULL;
        if (c->kind == COL_TEXT || c->kind == COL_STATUS)
            text = (const char *)sqlite3_column_text(stmt, (int)i);
        switch (c->kind) {
        case COL_TEXT:
            if (text && copy && !(text = strdup(text)))
                ok = false;
            *(const char **)field = text;
            break;
        case COL_INT: *(int64_t *)field = is_null ? -1 : sqlite3_column_int64(stmt, (int)i); break;
        case COL_ID: *(int64_t *)field = sqlite3_column_int64(stmt, (int)i); break;
        case COL_REAL: *(double *)field = is_null ? NAN : sqlite3_column_double(stmt, (int)i); break;
        case COL_STATUS:
            *(qh_run_status *)field = QH_RUN_FAILED;
            for (int s = 0; s < 4; s++)
                if (text && !strcmp(text, status_names[s]))
                    *(qh_run_status *)field = (qh_run_status)s;
            break;
        }
    }
    return ok;
}

static void free_rows(const table_desc *t, void *rows, size_t n)
{
    for (size_t r = 0; rows && r < n; r++)
        for (size_t i = 0; i < t->n_cols; i++)
            if (t->cols[i].kind == COL_TEXT)
                free(*(char **)((char *)rows + r * t->row_size + t->cols[i].offset));
    free(rows);
}

/* INSERT of every column, then ON CONFLICT replacing the non-key columns when is_upsert.
 * Names come from the column tables, never from callers. */
static void insert_sql(const table_desc *t, bool is_upsert, char *sql, size_t cap)
{
    size_t len = (size_t)snprintf(sql, cap, "INSERT INTO %s(", t->table);
    for (size_t i = 0; i < t->n_cols; i++)
        len += (size_t)snprintf(sql + len, cap - len, "%s%s", i ? "," : "", t->cols[i].name);
    len += (size_t)snprintf(sql + len, cap - len, ") VALUES(");
    for (size_t i = 0; i < t->n_cols; i++)
        len += (size_t)snprintf(sql + len, cap - len, "%s?", i ? "," : "");
    len += (size_t)snprintf(sql + len, cap - len, ")");
    if (!is_upsert)
        return;
    len += (size_t)snprintf(sql + len, cap - len, " ON CONFLICT(");
    for (size_t i = 0; i < t->n_key; i++)
        len += (size_t)snprintf(sql + len, cap - len, "%s%s", i ? "," : "", t->cols[i].name);
    len += (size_t)snprintf(sql + len, cap - len, ") DO UPDATE SET ");
    for (size_t i = t->n_key; i < t->n_cols; i++)
        len += (size_t)snprintf(sql + len, cap - len, "%s%s=excluded.%s", i > t->n_key ? "," : "",
                                t->cols[i].name, t->cols[i].name);
}

/* "run_id=1, variant=nf4, ..." for messages about one row. */
static void describe_key(const table_desc *t, const void *row, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = 0;
    for (size_t i = 0; i < t->n_key && len < cap; i++) {
        const char *field = (const char *)row + t->cols[i].offset;
        const char *sep = i ? ", " : "";
        if (t->cols[i].kind == COL_TEXT)
            len += (size_t)snprintf(out + len, cap - len, "%s%s=%s", sep, t->cols[i].name,
                                    *(const char *const *)field ? *(const char *const *)field : "NULL");
        else
            len += (size_t)snprintf(out + len, cap - len, "%s%s=%lld", sep, t->cols[i].name,
                                    (long long)*(const int64_t *)field);
    }
}

static qe_status put_rows(qh_store *s, const table_desc *t, const void *rows, size_t n, bool is_upsert,
                          qe_error *err)
{
    char sql[2048], doing[96];
    snprintf(doing, sizeof doing, "writing %zu %s", n, t->what);
    insert_sql(t, is_upsert, sql, sizeof sql);
    sqlite3_stmt *stmt = NULL;
    qe_status st = qh_store_begin(s, err);
    if (st != QE_OK)
        return st;
    if ((st = qh_store_prepare(s, sql, &stmt, doing, err)) != QE_OK)
        goto out;
    for (size_t r = 0; r < n && st == QE_OK; r++) {
        const void *row = (const char *)rows + r * t->row_size;
        int rc = SQLITE_OK;
        for (size_t i = 0; i < t->n_cols && rc == SQLITE_OK; i++)
            rc = bind_column(stmt, (int)i + 1, &t->cols[i], row);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(stmt);
        if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
            char key[512];
            describe_key(t, row, key, sizeof key);
            st = qe_fail(err, QE_EINVAL, "%s: %s: %s is already stored", s->path, t->what, key);
        } else if (rc != SQLITE_DONE) {
            st = qh_store_fail(s, err, rc, doing);
        }
        sqlite3_reset(stmt);
        sqlite3_clear_bindings(stmt);
    }
out:
    sqlite3_finalize(stmt);
    if (st == QE_OK)
        return qh_store_commit(s, err);
    qh_store_rollback(s);
    return st;
}

/* Streams the rows of one run (optionally one variant and task) in key order. */
static qe_status each_row(qh_store *s, const table_desc *t, int64_t run_id, const char *variant,
                          const char *task, int (*fn)(sqlite3_stmt *stmt, void *ctx), void *ctx, qe_error *err)
{
    char sql[2048], doing[96];
    size_t len = (size_t)snprintf(sql, sizeof sql, "SELECT ");
    for (size_t i = 0; i < t->n_cols; i++)
        len += (size_t)snprintf(sql + len, sizeof sql - len, "%s%s", i ? "," : "", t->cols[i].name);
    len += (size_t)snprintf(sql + len, sizeof sql - len, " FROM %s WHERE (?1 IS NULL OR %s=?1)", t->table,
                            t->cols[0].name);
    if (t != &run_table)
        len += (size_t)snprintf(sql + len, sizeof sql - len, " AND (?2 IS NULL OR variant=?2)");
    if (t->has_task)
        len += (size_t)snprintf(sql + len, sizeof sql - len, " AND (?3 IS NULL OR task=?3)");
    len += (size_t)snprintf(sql + len, sizeof sql - len, " ORDER BY ");
    for (size_t i = 0; i < t->n_key; i++)
        len += (size_t)snprintf(sql + len, sizeof sql - len, "%s%s", i ? "," : "", t->cols[i].name);
    snprintf(doing, sizeof doing, "reading %s", t->what);

    sqlite3_stmt *stmt = NULL;
    qe_status st = qh_store_prepare(s, sql, &stmt, doing, err);
    if (st != QE_OK)
        return st;
    if (run_id >= 0)
        sqlite3_bind_int64(stmt, 1, run_id);
    if (t != &run_table && variant)
        sqlite3_bind_text(stmt, 2, variant, -1, SQLITE_STATIC);
    if (t->has_task && task)
        sqlite3_bind_text(stmt, 3, task, -1, SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        int verdict = fn(stmt, ctx);
        if (verdict == -1) {
            st = qe_fail(err, QE_ENOMEM, "%s: out of memory reading %s", s->path, t->what);
            break;
        }
        if (verdict) {
            st = qe_fail(err, QE_EINTERRUPTED, "%s: stopped reading %s", s->path, t->what);
            break;
        }
    }
    if (st == QE_OK && rc != SQLITE_DONE)
        st = qh_store_fail(s, err, rc, doing);
    sqlite3_finalize(stmt);
    return st;
}

typedef struct {
    const table_desc *t;
    char *rows;
    size_t n, cap;
} row_array;

static int append_row(sqlite3_stmt *stmt, void *ctx)
{
    row_array *a = ctx;
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 16;
        char *grown = realloc(a->rows, cap * a->t->row_size);
        if (!grown)
            return -1;
        a->rows = grown;
        a->cap = cap;
    }
    void *row = a->rows + a->n * a->t->row_size;
    memset(row, 0, a->t->row_size);
    a->n++; /* counted before reading so that a partial copy is freed with the rest */
    return read_columns(stmt, a->t, row, true) ? 0 : -1;
}

static qe_status get_rows(qh_store *s, const table_desc *t, int64_t run_id, const char *variant, const char *task,
                          void **rows, size_t *n, qe_error *err)
{
    row_array a = {t, NULL, 0, 0};
    qe_status st = each_row(s, t, run_id, variant, task, append_row, &a, err);
    if (st != QE_OK) {
        free_rows(t, a.rows, a.n);
        a.rows = NULL;
        a.n = 0;
    }
    *rows = a.rows;
    *n = a.n;
    return st;
}

/* ---- public row API ---------------------------------------------------------------------- */

qe_status qh_store_put_variants(qh_store *s, const qh_variant_row *rows, size_t n, qe_error *err)
{ return put_rows(s, &variant_table, rows, n, true, err); }
qe_status qh_store_put_task_results(qh_store *s, const qh_task_result_row *rows, size_t n, qe_error *err)
{ return put_rows(s, &task_result_table, rows, n, true, err); }
qe_status qh_store_put_samples(qh_store *s, const qh_sample_row *rows, size_t n, qe_error *err)
{ return put_rows(s, &sample_table, rows, n, true, err); }
qe_status qh_store_insert_new_samples(qh_store *s, const qh_sample_row *rows, size_t n, qe_error *err)
{ return put_rows(s, &sample_table, rows, n, false, err); }
qe_status qh_store_put_fidelity(qh_store *s, const qh_fidelity_row *rows, size_t n, qe_error *err)
{ return put_rows(s, &fidelity_table, rows, n, true, err); }
qe_status qh_store_put_perf(qh_store *s, const qh_perf_row *rows, size_t n, qe_error *err)
{ return put_rows(s, &perf_table, rows, n, true, err); }

/* Largest footprint first, so the full-precision baseline leads and every table reads
 * fp32, bf16, int8, nf4 rather than alphabetically. */
static int variant_row_cmp(const void *a, const void *b)
{
    const qh_variant_row *x = a, *y = b;
    if (x->footprint_bytes != y->footprint_bytes)
        return x->footprint_bytes > y->footprint_bytes ? -1 : 1;
    return strcmp(x->variant, y->variant);
}

qe_status qh_store_get_variants(qh_store *s, int64_t run_id, qh_variant_row **rows, size_t *n, qe_error *err)
{
    qe_status st = get_rows(s, &variant_table, run_id, NULL, NULL, (void **)rows, n, err);
    if (st == QE_OK && *n > 1)
        qsort(*rows, *n, sizeof **rows, variant_row_cmp);
    return st;
}
qe_status qh_store_get_task_results(qh_store *s, int64_t run_id, qh_task_result_row **rows, size_t *n,
                                    qe_error *err)
{ return get_rows(s, &task_result_table, run_id, NULL, NULL, (void **)rows, n, err); }
qe_status qh_store_get_samples(qh_store *s, int64_t run_id, const char *variant, const char *task,
                               qh_sample_row **rows, size_t *n, qe_error *err)
{ return get_rows(s, &sample_table, run_id, variant, task, (void **)rows, n, err); }
qe_status qh_store_get_fidelity(qh_store *s, int64_t run_id, qh_fidelity_row **rows, size_t *n, qe_error *err)
{ return get_rows(s, &fidelity_table, run_id, NULL, NULL, (void **)rows, n, err); }
qe_status qh_store_get_perf(qh_store *s, int64_t run_id, qh_perf_row **rows, size_t *n, qe_error *err)
{ return get_rows(s, &perf_table, run_id, NULL, NULL, (void **)rows, n, err); }

void qh_variant_rows_free(qh_variant_row *rows, size_t n) { free_rows(&variant_table, rows, n); }
void qh_task_result_rows_free(qh_task_result_row *rows, size_t n) { free_rows(&task_result_table, rows, n); }
void qh_sample_rows_free(qh_sample_row *rows, size_t n) { free_rows(&sample_table, rows, n); }
void qh_fidelity_rows_free(qh_fidelity_row *rows, size_t n) { free_rows(&fidelity_table, rows, n); }
void qh_perf_rows_free(qh_perf_row *rows, size_t n) { free_rows(&perf_table, rows, n); }

typedef struct {
    int (*fn)(const qh_sample_row *row, void *ctx);
    void *ctx;
} sample_visit;

static int visit_sample(sqlite3_stmt *stmt, void *ctx)
{
    sample_visit *v = ctx;
    qh_sample_row row;
    read_columns(stmt, &sample_table, &row, false);
    return v->fn(&row, v->ctx) ? 1 : 0;
}

qe_status qh_store_each_sample(qh_store *s, int64_t run_id, const char *variant, const char *task,
                               int (*fn)(const qh_sample_row *row, void *ctx), void *ctx, qe_error *err)
{
    sample_visit v = {fn, ctx};
    return each_row(s, &sample_table, run_id, variant, task, visit_sample, &v, err);
}

/* ---- runs ------------------------------------------------------------------------------------ */

qe_status qh_store_create_run(qh_store *s, const qh_run *info, int64_t *run_id, qe_error *err)
{
    qh_run row;
    memcpy(&row, info, sizeof row); /* every byte, so the table-driven binder reads nothing unset */
    if (!row.qeval_version)
        row.qeval_version = QEVAL_VERSION;
    if (!row.git_commit && qh_git_commit[0])
        row.git_commit = qh_git_commit;
    char sql[2048];
    size_t len = (size_t)snprintf(sql, sizeof sql, "INSERT INTO runs(started_at,status");
    for (size_t i = RUN_N_HISTORY_COLS; i < run_table.n_cols; i++)
        len += (size_t)snprintf(sql + len, sizeof sql - len, ",%s", run_cols[i].name);
    len += (size_t)snprintf(sql + len, sizeof sql - len, ") VALUES(%s,'running'", QH_STORE_NOW_SQL);
    for (size_t i = RUN_N_HISTORY_COLS; i < run_table.n_cols; i++)
        len += (size_t)snprintf(sql + len, sizeof sql - len, ",?");
    snprintf(sql + len, sizeof sql - len, ")");

    sqlite3_stmt *stmt = NULL;
    qe_status st = qh_store_prepare(s, sql, &stmt, "creating a run", err);
    if (st != QE_OK)
        return st;
    int rc = SQLITE_OK;
    for (size_t i = RUN_N_HISTORY_COLS; i < run_table.n_cols && rc == SQLITE_OK; i++)
        rc = bind_column(stmt, (int)(i - RUN_N_HISTORY_COLS) + 1, &run_cols[i], &row);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE)
        *run_id = sqlite3_last_insert_rowid(s->db);
    else
        st = qh_store_fail(s, err, rc, "creating a run");
    sqlite3_finalize(stmt);
    return st;
}

static qe_status update_run(qh_store *s, const char *sql, int64_t run_id, const char *doing,
                            const qh_run *values, size_t n_values, const size_t *value_cols, qe_error *err)
{
    sqlite3_stmt *stmt = NULL;
    qe_status st = qh_store_prepare(s, sql, &stmt, doing, err);
    if (st != QE_OK)
        return st;
    int rc = sqlite3_bind_int64(stmt, 1, run_id);
    for (size_t i = 0; i < n_values && rc == SQLITE_OK; i++)
        rc = bind_column(stmt, (int)i + 2, &run_cols[value_cols[i]], values);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(stmt);
    if (rc != SQLITE_DONE)
        st = qh_store_fail(s, err, rc, doing);
    else if (sqlite3_changes(s->db) != 1)
        st = qe_fail(err, QE_EINVAL, "%s: no run %lld", s->path, (long long)run_id);
    sqlite3_finalize(stmt);
    return st;
}

qe_status qh_store_finish_run(qh_store *s, int64_t run_id, qh_run_status status, const char *error_message,
                              qe_error *err)
{
    qh_run values = {.status = status, .error = error_message};
    static const size_t cols[] = {3, 4}; /* status, error */
    return update_run(s, "UPDATE runs SET finished_at=" QH_STORE_NOW_SQL ", status=?2, error=?3 WHERE id=?1", run_id,
                      "finishing a run", &values, 2, cols, err);
}

qe_status qh_store_set_run_history(qh_store *s, int64_t run_id, const qh_run *history, qe_error *err)
{
    static const size_t cols[] = {1, 2, 3, 4, 5};
    return update_run(s, "UPDATE runs SET started_at=?2, finished_at=?3, status=?4, error=?5, merged_from_json=?6 "
                      "WHERE id=?1", run_id, "recording a run's history", history, 5, cols, err);
}

qe_status qh_store_list_runs(qh_store *s, qh_run **runs, size_t *n_runs, qe_error *err)
{
    return get_rows(s, &run_table, -1, NULL, NULL, (void **)runs, n_runs, err);
}

qe_status qh_store_get_run(qh_store *s, int64_t run_id, qh_run *out, qe_error *err)
{
    qh_run *rows = NULL;
    size_t n = 0;
    memset(out, 0, sizeof *out);
    qe_status st = get_rows(s, &run_table, run_id, NULL, NULL, (void **)&rows, &n, err);
    if (st == QE_OK && n == 0)
        st = qe_fail(err, QE_EINVAL, "%s: no run %lld", s->path, (long long)run_id);
    if (st == QE_OK)
        *out = rows[0];
    free(rows);
    return st;
}

void qh_run_free(qh_run *run)
{
    if (!run)
        return;
    for (size_t i = 0; i < run_table.n_cols; i++)
        if (run_cols[i].kind == COL_TEXT)
            free(*(char **)((char *)run + run_cols[i].offset));
    memset(run, 0, sizeof *run);
}

void qh_runs_free(qh_run *runs, size_t n_runs) { free_rows(&run_table, runs, n_runs); }

/* ---- resume and counts ----------------------------------------------------------- */

qe_status qh_store_delete_samples(qh_store *s, int64_t run_id, const char *variant, const char *task, qe_error *err)
{
    const char *doing = "deleting samples";
    sqlite3_stmt *stmt = NULL;
    qe_status st = qh_store_begin(s, err);
    if (st != QE_OK)
        return st;
    st = qh_store_prepare(s, "DELETE FROM samples WHERE run_id=?1 AND variant=?2 AND task=?3", &stmt, doing, err);
    if (st == QE_OK) {
        sqlite3_bind_int64(stmt, 1, run_id);
        sqlite3_bind_text(stmt, 2, variant, -1, SQLITE_STATIC);
        sqlite3_bind_text(stmt, 3, task, -1, SQLITE_STATIC);
        int rc = sqlite3_step(stmt);
        if (rc != SQLITE_DONE)
            st = qh_store_fail(s, err, rc, doing);
    }
    sqlite3_finalize(stmt);
    if (st == QE_OK)
        return qh_store_commit(s, err);
    qh_store_rollback(s);
    return st;
}

qe_status qh_store_done_doc_ids(qh_store *s, int64_t run_id, const char *variant, const char *task,
                                int64_t **ids, size_t *n_ids, qe_error *err)
{
    *ids = NULL;
    *n_ids = 0;
    sqlite3_stmt *stmt = NULL;
    const char *doing = "reading which documents are done";
    qe_status st = qh_store_prepare(s, "SELECT doc_id FROM samples WHERE run_id=?1 AND variant=?2 AND task=?3 ORDER BY doc_id",
                           &stmt, doing, err);
    if (st != QE_OK)
        return st;
    sqlite3_bind_int64(stmt, 1, run_id);
    sqlite3_bind_text(stmt, 2, variant, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 3, task, -1, SQLITE_STATIC);
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (*n_ids == cap) {
            cap = cap ? 2 * cap : 64;
            int64_t *grown = realloc(*ids, cap * sizeof **ids);
            if (!grown) {
                st = qe_fail(err, QE_ENOMEM, "%s: out of memory %s", s->path, doing);
                break;
            }
            *ids = grown;
        }
        (*ids)[(*n_ids)++] = sqlite3_column_int64(stmt, 0);
    }
    if (st == QE_OK && rc != SQLITE_DONE)
        st = qh_store_fail(s, err, rc, doing);
    sqlite3_finalize(stmt);
    if (st != QE_OK) {
        free(*ids);
        *ids = NULL;
        *n_ids = 0;
    }
    return st;
}

qe_status qh_store_count_samples(qh_store *s, int64_t run_id, int64_t *n_samples, qe_error *err)
{
    sqlite3_stmt *stmt = NULL;
    qe_status st = qh_store_prepare(s, "SELECT count(*) FROM samples WHERE run_id=?1", &stmt, "counting samples", err);
    if (st != QE_OK)
        return st;
    sqlite3_bind_int64(stmt, 1, run_id);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        *n_samples = sqlite3_column_int64(stmt, 0);
    else
        st = qh_store_fail(s, err, rc, "counting samples");
    sqlite3_finalize(stmt);
    return st;
}
