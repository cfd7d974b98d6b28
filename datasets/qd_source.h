/* qd_source — a buffered byte stream over a plain or gzip'd file (zlib reads both), with a
 * line reader on top. Streaming: memory stays at one buffer and one line whatever the file
 * size. A truncated or corrupt gzip stream is an error naming the file, never silent EOF. */
#ifndef QD_SOURCE_H
#define QD_SOURCE_H

#include <stdbool.h>
#include <stddef.h>

#include "qe_error.h"

typedef struct qd_source qd_source;

qe_status qd_source_open(const char *path, qd_source **out, qe_error *err);
void qd_source_close(qd_source *src); /* NULL-safe */

const char *qd_source_path(const qd_source *src);

/* Next byte (0..255), or -1 at the end of the file. A read error sets *err, returns -1 and
 * leaves qd_source_failed() true. */
int qd_source_getc(qd_source *src, qe_error *err);
bool qd_source_failed(const qd_source *src);

/* Next line without its "\n" (a trailing "\r" is kept): *line points into the source and stays
 * valid until the next call. Returns QE_OK with *line NULL at the end of the file. *line_no
 * counts from 1. */
qe_status qd_source_next_line(qd_source *src, char **line, size_t *n_bytes, long *line_no, qe_error *err);

/* Whole remaining content, NUL-terminated, malloc'd. */
qe_status qd_source_read_all(qd_source *src, char **text, size_t *n_bytes, qe_error *err);

#endif
