/* qd_table — one data file loaded as records: a CSV (RFC 4180, header row or given column
 * names), JSONL (one object a line, plain or gzip'd) or a JSON array of objects. Each record
 * becomes a cJSON object (CSV cells are strings), kept in file order with the line it starts on.
 *
 * The file is read as a stream; a bad row (malformed CSV, wrong field count, invalid JSON, a
 * missing field, a value outside its allowed set) stops the load with "file:line: reason"
 * (JSON: "file: record N: reason"), or with skip_bad_rows is counted and left out. */
#ifndef QD_TABLE_H
#define QD_TABLE_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "qe_error.h"

typedef enum { QD_FORMAT_CSV, QD_FORMAT_JSONL, QD_FORMAT_JSON } qd_format;

/* "csv", "jsonl" (also gzip'd), "json"; anything else fails naming the choices. */
qe_status qd_format_parse(const char *name, qd_format *out, qe_error *err);

typedef struct {
    const char *field;
    const char *const *allowed;   /* [n_allowed] the only values the field may take */
    int n_allowed;
} qd_field_check;

typedef struct {
    qd_format format;
    bool has_header;              /* CSV: the first row names the columns */
    const char *const *fields;    /* CSV without header: the column names; else fields each record must have */
    int n_fields;
    const qd_field_check *checks;
    int n_checks;
    bool skip_bad_rows;
} qd_load_spec;

typedef struct {
    cJSON *records;               /* array of objects, file order */
    long *lines;                  /* [n_records] line each record starts on (JSON: record number from 1) */
    int n_records;
    int n_bad_rows;               /* rows left out under skip_bad_rows */
    char first_bad[512];          /* the first left-out row's message; "" when none */
} qd_table;

qe_status qd_table_load(const char *path, const qd_load_spec *spec, qd_table *out, qe_error *err);
void qd_table_free(qd_table *table); /* NULL-safe; leaves the struct zeroed */

#endif
