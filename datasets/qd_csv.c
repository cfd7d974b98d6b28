#include "qd_csv.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "qd_source.h"

struct qd_csv {
    qd_source *src;
    char *text;                /* field bytes of the current record, each NUL-terminated */
    size_t text_cap, n_text;
    size_t *offsets;           /* [n_fields] start of each field in text */
    char **fields;             /* [n_fields] pointers into text, built after the record ends */
    int fields_cap, n_fields;
    long line;                 /* current physical line (1-based) */
    long record_line;          /* line where the current record starts */
    int pending;               /* a byte read ahead and pushed back, or -2 for none */
    bool started;
};

qe_status qd_csv_open(const char *path, qd_csv **out, qe_error *err)
{
    *out = NULL;
    qd_csv *csv = calloc(1, sizeof *csv);
    if (!csv)
        return qe_fail(err, QE_ENOMEM, "%s: out of memory", path);
    qe_status rc = qd_source_open(path, &csv->src, err);
    if (rc != QE_OK) {
        free(csv);
        return rc;
    }
    csv->line = 1;
    csv->pending = -2;
    *out = csv;
    return QE_OK;
}

void qd_csv_close(qd_csv *csv)
{
    if (!csv)
        return;
    qd_source_close(csv->src);
    free(csv->text);
    free(csv->offsets);
    free(csv->fields);
    free(csv);
}

long qd_csv_line(const qd_csv *csv) { return csv->record_line; }

bool qd_csv_broken(const qd_csv *csv) { return qd_source_failed(csv->src); }

static int next_byte(qd_csv *csv, qe_error *err)
{
    int c;
    if (csv->pending != -2) {
        c = csv->pending;
        csv->pending = -2;
    } else {
        c = qd_source_getc(csv->src, err);
    }
    if (c == '\n')
        csv->line++;
    return c;
}

static void push_back(qd_csv *csv, int c)
{
    if (c == '\n')
        csv->line--;
    csv->pending = c;
}

static bool put(qd_csv *csv, char c)
{
    if (csv->n_text + 1 > csv->text_cap) {
        size_t cap = csv->text_cap ? csv->text_cap * 2 : 1024;
        char *p = realloc(csv->text, cap);
        if (!p)
            return false;
        csv->text = p;
        csv->text_cap = cap;
    }
    csv->text[csv->n_text++] = c;
    return true;
}

static bool begin_field(qd_csv *csv)
{
    if (csv->n_fields == csv->fields_cap) {
        int cap = csv->fields_cap ? csv->fields_cap * 2 : 16;
        size_t *o = realloc(csv->offsets, (size_t)cap * sizeof *o);
        if (!o)
            return false;
        csv->offsets = o;
        char **f = realloc(csv->fields, (size_t)cap * sizeof *f);
        if (!f)
            return false;
        csv->fields = f;
        csv->fields_cap = cap;
    }
    csv->offsets[csv->n_fields++] = csv->n_text;
    return true;
}

/* After a malformed record: drop the rest of the physical line so the next call starts fresh. */
static void skip_line(qd_csv *csv)
{
    int c;
    while ((c = next_byte(csv, NULL)) != -1 && c != '\n') {
    }
}

qe_status qd_csv_next(qd_csv *csv, char ***fields, int *n_fields, qe_error *err)
{
    const char *path = qd_source_path(csv->src);
    *fields = NULL;
    *n_fields = 0;
    csv->n_text = 0;
    csv->n_fields = 0;
    if (!csv->started) {
        csv->started = true;
        int b0 = next_byte(csv, err);
        if (b0 == 0xEF) {
            int b1 = next_byte(csv, err), b2 = next_byte(csv, err);
            if (b1 != 0xBB || b2 != 0xBF)
                return qe_fail(err, QE_EFORMAT, "%s:1: starts with a broken UTF-8 byte order mark", path);
        } else if (b0 != -1) {
            push_back(csv, b0);
        }
    }
    csv->record_line = csv->line;
    int c = next_byte(csv, err);
    if (c == -1)
        return qd_source_failed(csv->src) ? err->code : QE_OK;

    for (;;) { /* one field per iteration */
        if (!begin_field(csv))
            return qe_fail(err, QE_ENOMEM, "%s:%ld: out of memory", path, csv->record_line);
        if (c == '"') {
            for (;;) {
                c = next_byte(csv, err);
                if (c == -1) {
                    if (qd_source_failed(csv->src))
                        return err->code;
                    return qe_fail(err, QE_EFORMAT,
                                   "%s:%ld: the file ends inside a quoted field (truncated file or unbalanced quote)",
                                   path, csv->record_line);
                }
                if (c == '"') {
                    c = next_byte(csv, err);
                    if (c != '"')
                        break; /* closing quote; c is what follows it */
                }
                if (!put(csv, (char)c))
                    return qe_fail(err, QE_ENOMEM, "%s:%ld: out of memory", path, csv->record_line);
            }
            if (c == '\r') {
                int d = next_byte(csv, err);
                if (d != '\n') {
                    push_back(csv, d);
                    skip_line(csv);
                    return qe_fail(err, QE_EFORMAT, "%s:%ld: a carriage return follows a closing quote without a line feed",
                                   path, csv->record_line);
                }
                c = '\n';
            }
            if (c != ',' && c != '\n' && c != -1) {
                long line = csv->line;
                skip_line(csv);
                return qe_fail(err, QE_EFORMAT, "%s:%ld: unexpected character '%c' after a closing quote (field %d)",
                               path, line, c >= 32 && c < 127 ? c : '?', csv->n_fields);
            }
        } else {
            while (c != ',' && c != '\n' && c != -1) {
                if (c == '"') {
                    long line = csv->line;
                    skip_line(csv);
                    return qe_fail(err, QE_EFORMAT, "%s:%ld: a quote inside an unquoted field (field %d)", path, line,
                                   csv->n_fields);
                }
                if (c == '\r') {
                    int d = next_byte(csv, err);
                    if (d == '\n') {
                        c = '\n';
                        break;
                    }
                    push_back(csv, d);
                }
                if (!put(csv, (char)c))
                    return qe_fail(err, QE_ENOMEM, "%s:%ld: out of memory", path, csv->record_line);
                c = next_byte(csv, err);
            }
        }
        if (qd_source_failed(csv->src))
            return err->code;
        if (!put(csv, '\0'))
            return qe_fail(err, QE_ENOMEM, "%s:%ld: out of memory", path, csv->record_line);
        if (c != ',')
            break; /* '\n' or end of file ends the record */
        c = next_byte(csv, err);
    }
    for (int i = 0; i < csv->n_fields; i++)
        csv->fields[i] = csv->text + csv->offsets[i];
    *fields = csv->fields;
    *n_fields = csv->n_fields;
    return QE_OK;
}
