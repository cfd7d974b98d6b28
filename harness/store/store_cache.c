/* store_cache — the request cache: (model weights, variant, request) -> response, shared by runs. */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_private.h"

qe_status qh_store_cache_put(qh_store *s, const qh_cache_entry *entries, size_t n, qe_error *err)
{
    const char *doing = "writing the request cache";
    sqlite3_stmt *stmt = NULL;
    qe_status st = qh_store_begin(s, err);
    if (st != QE_OK)
        return st;
    /* The same request to the same weights has one answer, so a second put changes nothing. */
    st = qh_store_prepare(s, "INSERT INTO request_cache(model_sha256,variant,request_hash,response_json,created_at) "
                 "VALUES(?1,?2,?3,?4," QH_STORE_NOW_SQL ") ON CONFLICT DO NOTHING", &stmt, doing, err);
    for (size_t i = 0; i < n && st == QE_OK; i++) {
        sqlite3_bind_text(stmt, 1, entries[i].model_sha256, -1, SQLITE_STATIC);
        sqlite3_bind_text(stmt, 2, entries[i].variant, -1, SQLITE_STATIC);
        sqlite3_bind_text(stmt, 3, entries[i].request_hash, -1, SQLITE_STATIC);
        sqlite3_bind_text(stmt, 4, entries[i].response_json, -1, SQLITE_STATIC);
        int rc = sqlite3_step(stmt);
        if (rc != SQLITE_DONE)
            st = qh_store_fail(s, err, rc, doing);
        sqlite3_reset(stmt);
    }
    sqlite3_finalize(stmt);
    if (st == QE_OK)
        return qh_store_commit(s, err);
    qh_store_rollback(s);
    return st;
}

qe_status qh_store_cache_get(qh_store *s, const char *model_sha256, const char *variant, const char *request_hash,
                             char **response_json, qe_error *err)
{
    *response_json = NULL;
    const char *doing = "reading the request cache";
    sqlite3_stmt *stmt = NULL;
    qe_status st = qh_store_prepare(s, "SELECT response_json FROM request_cache WHERE model_sha256=?1 AND variant=?2 "
                           "AND request_hash=?3", &stmt, doing, err);
    if (st != QE_OK)
        return st;
    sqlite3_bind_text(stmt, 1, model_sha256, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, variant, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 3, request_hash, -1, SQLITE_STATIC);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        if (!(*response_json = strdup((const char *)sqlite3_column_text(stmt, 0))))
            st = qe_fail(err, QE_ENOMEM, "%s: out of memory %s", qh_store_path(s), doing);
    } else if (rc != SQLITE_DONE) {
        st = qh_store_fail(s, err, rc, doing);
    }
    sqlite3_finalize(stmt);
    return st;
}

qe_status qh_store_copy_cache(qh_store *dst, qh_store *src, qe_error *err)
{
    const char *doing = "reading the request cache";
    sqlite3_stmt *stmt = NULL;
    qe_status st = qh_store_prepare(src, "SELECT model_sha256, variant, request_hash, response_json FROM request_cache",
                           &stmt, doing, err);
    if (st != QE_OK)
        return st;
    int rc;
    while (st == QE_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        qh_cache_entry entry = {(const char *)sqlite3_column_text(stmt, 0), (const char *)sqlite3_column_text(stmt, 1),
                                (const char *)sqlite3_column_text(stmt, 2), (const char *)sqlite3_column_text(stmt, 3)};
        st = qh_store_cache_put(dst, &entry, 1, err);
    }
    if (st == QE_OK && rc != SQLITE_DONE)
        st = qh_store_fail(src, err, rc, doing);
    sqlite3_finalize(stmt);
    return st;
}
