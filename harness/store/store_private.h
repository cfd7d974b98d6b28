/* store_private — what store_merge.c needs from store.c beyond the public API: an outer
 * transaction that the put_* calls join, and a sample insert that refuses an existing key. */
#ifndef QH_STORE_PRIVATE_H
#define QH_STORE_PRIVATE_H

#include <sqlite3.h>

#include "store.h"

#define QH_STORE_FORMAT_MARKER "qeval-results"
#define QH_STORE_NOW_SQL "strftime('%Y-%m-%dT%H:%M:%fZ','now')"

extern const char *const qh_store_migrations[QH_STORE_SCHEMA_VERSION];

/* Fills err from an SQLite result code, naming the file, what was being done and the cause
 * (disk full, not a database, corrupt, read-only, locked) in words. Returns the error code. */
qe_status qh_store_fail(qh_store *store, qe_error *err, int rc, const char *doing);
qe_status qh_store_prepare(qh_store *store, const char *sql, sqlite3_stmt **stmt, const char *doing, qe_error *err);

/* Inserts samples, failing with a message naming (variant, task, doc_id) when one exists. */
qe_status qh_store_insert_new_samples(qh_store *store, const qh_sample_row *rows, size_t n, qe_error *err);

/* Writes the run columns that only the store sets (times, status, error, merged_from_json). */
qe_status qh_store_set_run_history(qh_store *store, int64_t run_id, const qh_run *history, qe_error *err);

/* Adds src's request cache entries to dst's (entries dst already has are kept). */
qe_status qh_store_copy_cache(qh_store *dst, qh_store *src, qe_error *err);

#endif
