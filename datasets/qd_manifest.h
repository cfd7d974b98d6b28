/* qd_manifest — the benchmark files qeval expects (datasets/manifest.tsv): for each, the path
 * under the data directory, its format, record count, sha256 and public download URL.
 * verify recomputes sha256 and counts records with the same loaders the tasks use; fetch
 * downloads with curl (and tar for archive members) into the data directory. */
#ifndef QD_MANIFEST_H
#define QD_MANIFEST_H

#include <stdbool.h>

#include "qe_error.h"

typedef struct {
    char bench[32];
    char path[256];            /* relative to the data dir */
    char format[16];           /* csv, csv-header, jsonl, json, blocks */
    long records;              /* -1 when not counted */
    char sha256[65];
    char url[512];             /* "ARCHIVE_URL!member", "derived:..." or a plain URL */
    long line;                 /* line in the manifest */
} qd_manifest_entry;

typedef struct {
    qd_manifest_entry *entries;
    int n_entries;
} qd_manifest;

qe_status qd_manifest_load(const char *tsv_path, qd_manifest *out, qe_error *err);
void qd_manifest_free(qd_manifest *manifest); /* NULL-safe */

/* The data dir: option when set, else $QEVAL_DATA, else "data". */
const char *qd_data_dir(const char *option);

/* Counts the records of a file as its format defines them. */
qe_status qd_count_records(const char *path, const char *format, long *n_records, qe_error *err);

/* Checks one file. QE_OK when it is present with the right sha256 and count; otherwise the
 * error says which (missing file, sha256 mismatch, count mismatch). */
qe_status qd_verify_entry(const char *data_dir, const qd_manifest_entry *entry, qe_error *err);

/* Downloads every file of bench (NULL = all) that is missing or wrong into PATH.part, verifies
 * it there (sha256, records) and only then renames it into place: a corrupt or truncated
 * download is removed with an error naming its URL and the two hashes, and the file in place
 * (if any) stays as it was. log(line, ctx) receives one progress line per file (may be NULL).
 * Fails clearly when curl cannot reach the URL (offline). */
qe_status qd_fetch(const char *data_dir, const qd_manifest *manifest, const char *bench,
                   void (*log)(const char *line, void *ctx), void *log_ctx, qe_error *err);

/* Points every http(s) URL at a mirror that keeps the upstream layout under one base URL, one
 * directory per host: https://HOST/PATH becomes BASE/HOST/PATH (archive members and derived:
 * or file: sources unchanged). What `wget -x` of the upstream URLs builds is such a mirror. */
qe_status qd_manifest_use_mirror(qd_manifest *manifest, const char *base_url, qe_error *err);

#endif
