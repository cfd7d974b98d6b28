/* qd_csv — a streaming RFC 4180 reader: fields separated by commas, records by LF or CRLF,
 * fields in double quotes may hold commas, newlines and doubled quotes (""), a UTF-8 BOM at the
 * start is skipped, the last record may lack its newline. Field values are kept byte for byte
 * (no trimming), as Python's csv module returns them.
 *
 * Errors name the file and the line where the record starts: a quote inside an unquoted field,
 * text after a closing quote, a file that ends inside quotes (truncated). After an error the
 * reader skips to the next line, so a caller may count the bad row and go on. */
#ifndef QD_CSV_H
#define QD_CSV_H

#include <stdbool.h>

#include "qe_error.h"

typedef struct qd_csv qd_csv;

qe_status qd_csv_open(const char *path, qd_csv **out, qe_error *err);
void qd_csv_close(qd_csv *csv); /* NULL-safe */

/* Next record: *fields[i] are NUL-terminated and stay valid until the next call; *n_fields is
 * 0 at the end of the file. A blank line is a record of one empty field. */
qe_status qd_csv_next(qd_csv *csv, char ***fields, int *n_fields, qe_error *err);

/* 1-based line on which the record last returned (or failed) starts. */
long qd_csv_line(const qd_csv *csv);

/* True once the byte stream itself failed (truncated or corrupt gzip, read error): there is no
 * next line to skip to, so the error is fatal even to a caller that counts bad rows. */
bool qd_csv_broken(const qd_csv *csv);

#endif
