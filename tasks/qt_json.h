/* qt_json — reading a task file's fields with cJSON: each getter checks the type and fails with
 * "FILE: field \"a.b\" must be ..." so a broken task file says where it is broken. */
#ifndef QT_JSON_H
#define QT_JSON_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "qe_error.h"

typedef struct {
    const char *path;          /* the task file, for messages */
    qe_error *err;
} qt_json_ctx;

qe_status qt_json_field_error(const qt_json_ctx *c, const char *field, const char *what);
/* A missing optional field gives a copy of fallback (NULL stays NULL). *out is malloc'd. */
qe_status qt_json_string(const qt_json_ctx *c, const cJSON *obj, const char *key, const char *field, bool required,
                         const char *fallback, char **out);
qe_status qt_json_int(const qt_json_ctx *c, const cJSON *obj, const char *key, const char *field, bool required,
                      int fallback, int min, int *out);
qe_status qt_json_bool(const qt_json_ctx *c, const cJSON *obj, const char *key, const char *field, bool fallback,
                       bool *out);
/* v must be an array of strings; *out (malloc'd strings) has *n_out of them. */
qe_status qt_json_string_array(const qt_json_ctx *c, const cJSON *v, const char *field, char ***out, int *n_out);
void qt_json_free_strings(char **items, int n); /* NULL-safe */
/* Rejects keys not in allowed (NULL-terminated): a typo is an error, not a silent default. */
qe_status qt_json_check_keys(const qt_json_ctx *c, const cJSON *obj, const char *prefix, const char *const *allowed);

#endif
