#include "qd_table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qd_csv.h"
#include "qd_source.h"

qe_status qd_format_parse(const char *name, qd_format *out, qe_error *err)
{
    if (name && !strcmp(name, "csv"))
        *out = QD_FORMAT_CSV;
    else if (name && !strcmp(name, "jsonl"))
        *out = QD_FORMAT_JSONL;
    else if (name && !strcmp(name, "json"))
        *out = QD_FORMAT_JSON;
    else
        return qe_fail(err, QE_EFORMAT, "unknown data format \"%s\" (expected csv, jsonl or json)", name ? name : "");
    return QE_OK;
}

void qd_table_free(qd_table *table)
{
    if (!table)
        return;
    cJSON_Delete(table->records);
    free(table->lines);
    memset(table, 0, sizeof *table);
}

static qe_status append(qd_table *t, cJSON *record, long line, const char *path, qe_error *err)
{
    long *lines = realloc(t->lines, (size_t)(t->n_records + 1) * sizeof *lines);
    if (!lines) {
        cJSON_Delete(record);
        return qe_fail(err, QE_ENOMEM, "%s: out of memory at line %ld", path, line);
    }
    t->lines = lines;
    t->lines[t->n_records++] = line;
    cJSON_AddItemToArray(t->records, record);
    return QE_OK;
}

/* Required fields present and checked fields inside their allowed sets. */
static qe_status check_record(const cJSON *record, const qd_load_spec *spec, bool check_presence, const char *where,
                              qe_error *err)
{
    if (check_presence)
        for (int i = 0; i < spec->n_fields; i++)
            if (!cJSON_GetObjectItemCaseSensitive(record, spec->fields[i]))
                return qe_fail(err, QE_EFORMAT, "%s: missing field \"%s\"", where, spec->fields[i]);
    for (int i = 0; i < spec->n_checks; i++) {
        const qd_field_check *check = &spec->checks[i];
        const cJSON *value = cJSON_GetObjectItemCaseSensitive(record, check->field);
        if (!value)
            return qe_fail(err, QE_EFORMAT, "%s: missing field \"%s\"", where, check->field);
        if (!cJSON_IsString(value))
            return qe_fail(err, QE_EFORMAT, "%s: field \"%s\" is not a string", where, check->field);
        bool ok = false;
        for (int k = 0; k < check->n_allowed && !ok; k++)
            ok = !strcmp(value->valuestring, check->allowed[k]);
        if (!ok) {
            char list[256] = "";
            for (int k = 0; k < check->n_allowed; k++) {
                size_t n = strlen(list);
                snprintf(list + n, sizeof list - n, "%s%s", k ? ", " : "", check->allowed[k]);
            }
            return qe_fail(err, QE_EFORMAT, "%s: field \"%s\" is \"%.40s\", expected one of %s", where, check->field,
                           value->valuestring, list);
        }
    }
    return QE_OK;
}

/* A bad row: fatal, or counted when skipping. Returns QE_OK when the load may go on. */
static qe_status bad_row(qd_table *t, const qd_load_spec *spec, qe_status rc, qe_error *err)
{
    if (!spec->skip_bad_rows || rc != QE_EFORMAT)
        return rc;
    if (t->n_bad_rows++ == 0)
        snprintf(t->first_bad, sizeof t->first_bad, "%s", err->msg);
    return QE_OK;
}

static qe_status load_csv(const char *path, const qd_load_spec *spec, qd_table *t, qe_error *err)
{
    qd_csv *csv = NULL;
    qe_status rc = qd_csv_open(path, &csv, err);
    if (rc != QE_OK)
        return rc;
    char **header = NULL;
    int n_header = 0;
    const char *const *names = spec->fields;
    int n_names = spec->n_fields;
    for (;;) {
        char **fields;
        int n;
        rc = qd_csv_next(csv, &fields, &n, err);
        if (rc != QE_OK) {
            if ((header == NULL && spec->has_header) || qd_csv_broken(csv))
                break; /* a broken header or byte stream is always fatal */
            if ((rc = bad_row(t, spec, rc, err)) != QE_OK)
                break;
            continue;
        }
        if (n == 0)
            break;
        long line = qd_csv_line(csv);
        if (spec->has_header && !header) {
            header = calloc((size_t)n, sizeof *header);
            if (!header) {
                rc = qe_fail(err, QE_ENOMEM, "%s: out of memory", path);
                break;
            }
            n_header = n;
            for (int i = 0; i < n; i++)
                if (!(header[i] = strdup(fields[i]))) {
                    rc = qe_fail(err, QE_ENOMEM, "%s: out of memory", path);
                    goto out;
                }
            names = (const char *const *)header;
            n_names = n;
            for (int i = 0; i < spec->n_fields; i++) {
                bool found = false;
                for (int k = 0; k < n && !found; k++)
                    found = !strcmp(header[k], spec->fields[i]);
                if (!found) {
                    rc = qe_fail(err, QE_EFORMAT, "%s:1: the header has no column \"%s\"", path, spec->fields[i]);
                    goto out;
                }
            }
            continue;
        }
        if (n != n_names) {
            rc = qe_fail(err, QE_EFORMAT, "%s:%ld: %d fields, expected %d", path, line, n, n_names);
            if ((rc = bad_row(t, spec, rc, err)) != QE_OK)
                break;
            continue;
        }
        cJSON *record = cJSON_CreateObject();
        if (!record) {
            rc = qe_fail(err, QE_ENOMEM, "%s: out of memory", path);
            break;
        }
        for (int i = 0; i < n; i++)
            cJSON_AddItemToObject(record, names[i], cJSON_CreateString(fields[i]));
        char where[4200];
        snprintf(where, sizeof where, "%s:%ld", path, line);
        rc = check_record(record, spec, false, where, err);
        if (rc != QE_OK) {
            cJSON_Delete(record);
            if ((rc = bad_row(t, spec, rc, err)) != QE_OK)
                break;
            continue;
        }
        if ((rc = append(t, record, line, path, err)) != QE_OK)
            break;
    }
out:
    if (header)
        for (int i = 0; i < n_header; i++)
            free(header[i]);
    free(header);
    qd_csv_close(csv);
    return rc;
}

static bool blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\r')
            return false;
    return true;
}

static qe_status load_jsonl(const char *path, const qd_load_spec *spec, qd_table *t, qe_error *err)
{
    qd_source *src = NULL;
    qe_status rc = qd_source_open(path, &src, err);
    if (rc != QE_OK)
        return rc;
    for (;;) {
        char *line;
        size_t n;
        long line_no = 0;
        rc = qd_source_next_line(src, &line, &n, &line_no, err);
        if (rc != QE_OK || !line)
            break;
        if (blank(line))
            continue;
        const char *end = NULL;
        cJSON *record = cJSON_ParseWithLengthOpts(line, n, &end, false);
        if (!record || !cJSON_IsObject(record)) {
            rc = record ? qe_fail(err, QE_EFORMAT, "%s:%ld: not a JSON object", path, line_no)
                        : qe_fail(err, QE_EFORMAT, "%s:%ld: invalid JSON at column %ld", path, line_no,
                                  end ? (long)(end - line) + 1 : 1L);
            cJSON_Delete(record);
            if ((rc = bad_row(t, spec, rc, err)) != QE_OK)
                break;
            continue;
        }
        char where[4200];
        snprintf(where, sizeof where, "%s:%ld", path, line_no);
        rc = check_record(record, spec, true, where, err);
        if (rc != QE_OK) {
            cJSON_Delete(record);
            if ((rc = bad_row(t, spec, rc, err)) != QE_OK)
                break;
            continue;
        }
        if ((rc = append(t, record, line_no, path, err)) != QE_OK)
            break;
    }
    qd_source_close(src);
    return rc;
}

static qe_status load_json(const char *path, const qd_load_spec *spec, qd_table *t, qe_error *err)
{
    qd_source *src = NULL;
    qe_status rc = qd_source_open(path, &src, err);
    if (rc != QE_OK)
        return rc;
    char *text = NULL;
    size_t n = 0;
    rc = qd_source_read_all(src, &text, &n, err);
    qd_source_close(src);
    if (rc != QE_OK)
        return rc;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, n, &end, false);
    if (!root) {
        long line = 1;
        for (const char *p = text; end && p < end && p < text + n; p++)
            line += *p == '\n';
        free(text);
        return qe_fail(err, QE_EFORMAT, "%s:%ld: invalid JSON (truncated file or syntax error)", path, line);
    }
    free(text);
    if (!cJSON_IsArray(root)) {
        cJSON_Delete(root);
        return qe_fail(err, QE_EFORMAT, "%s: expected a JSON array of records", path);
    }
    long index = 0;
    while (root->child) {
        cJSON *record = cJSON_DetachItemViaPointer(root, root->child);
        index++;
        char where[4200];
        snprintf(where, sizeof where, "%s: record %ld", path, index);
        rc = cJSON_IsObject(record) ? check_record(record, spec, true, where, err)
                                    : qe_fail(err, QE_EFORMAT, "%s: not a JSON object", where);
        if (rc != QE_OK) {
            cJSON_Delete(record);
            if ((rc = bad_row(t, spec, rc, err)) != QE_OK)
                break;
            continue;
        }
        if ((rc = append(t, record, index, path, err)) != QE_OK)
            break;
    }
    cJSON_Delete(root);
    return rc;
}

qe_status qd_table_load(const char *path, const qd_load_spec *spec, qd_table *out, qe_error *err)
{
    memset(out, 0, sizeof *out);
    if (!(out->records = cJSON_CreateArray()))
        return qe_fail(err, QE_ENOMEM, "%s: out of memory", path);
    qe_status rc;
    switch (spec->format) {
    case QD_FORMAT_CSV: rc = load_csv(path, spec, out, err); break;
    case QD_FORMAT_JSONL: rc = load_jsonl(path, spec, out, err); break;
    default: rc = load_json(path, spec, out, err); break;
    }
    if (rc != QE_OK)
        qd_table_free(out);
    return rc;
}
