/* file_util — small file helpers the loaders share. */
#ifndef QE_FILE_UTIL_H
#define QE_FILE_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#include "qe_error.h"

/* Reads the whole file into *out (malloc'd, NUL-terminated; *n_bytes excludes the NUL). */
qe_status qe_read_file(const char *path, char **out, size_t *n_bytes, qe_error *err);

bool qe_file_exists(const char *path);
bool qe_is_directory(const char *path);

/* "dir/name" into buf; fails when it does not fit. */
qe_status qe_path_join(char *buf, size_t buf_bytes, const char *dir, const char *name, qe_error *err);

#endif
