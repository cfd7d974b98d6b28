/* Field access for task files: every error names the file and the field. */
#include "qt_json.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

qe_status qt_json_field_error(const qt_json_ctx *c, const char *field, const char *what)
{
    return qe_fail(c->err, QE_EFORMAT, "%s: field \"%s\" %s", c->path, field, what);
}

qe_status qt_json_string(const qt_json_ctx *c, const cJSON *obj, const char *key, const char *field, bool required,
                         const char *fallback, char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) {
        if (required)
            return qt_json_field_error(c, field, "is missing");
        *out = fallback ? strdup(fallback) : NULL;
        if (fallback && !*out)
            return qe_fail(c->err, QE_ENOMEM, "out of memory");
        return QE_OK;
    }
    if (!cJSON_IsString(v))
        return qt_json_field_error(c, field, "must be a string");
    if (!(*out = strdup(v->valuestring)))
        return qe_fail(c->err, QE_ENOMEM, "out of memory");
    return QE_OK;
}

qe_status qt_json_int(const qt_json_ctx *c, const cJSON *obj, const char *key, const char *field, bool required, int fallback,
                      int min, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) {
        if (required)
            return qt_json_field_error(c, field, "is missing");
        *out = fallback;
        return QE_OK;
    }
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    /* range first: converting a double outside int's range is undefined (fuzz_task found 1.6e122) */
    if (!(d >= INT_MIN && d <= INT_MAX) || d != floor(d) || (int)d < min) {
        char what[64];
        snprintf(what, sizeof what, "must be an integer >= %d", min);
        return qt_json_field_error(c, field, what);
    }
    *out = (int)d;
    return QE_OK;
}

qe_status qt_json_bool(const qt_json_ctx *c, const cJSON *obj, const char *key, const char *field, bool fallback, bool *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) {
        *out = fallback;
        return QE_OK;
    }
    if (!cJSON_IsBool(v))
        return qt_json_field_error(c, field, "must be true or false");
    *out = cJSON_IsTrue(v);
    return QE_OK;
}

qe_status qt_json_string_array(const qt_json_ctx *c, const cJSON *v, const char *field, char ***out, int *n_out)
{
    *out = NULL;
    *n_out = 0;
    if (!cJSON_IsArray(v))
        return qt_json_field_error(c, field, "must be an array of strings");
    int n = cJSON_GetArraySize(v);
    char **items = calloc((size_t)(n ? n : 1), sizeof *items);
    if (!items)
        return qe_fail(c->err, QE_ENOMEM, "out of memory");
    int i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, v)
    {
        if (!cJSON_IsString(item) || !(items[i] = strdup(item->valuestring))) {
            for (int k = 0; k < i; k++)
                free(items[k]);
            free(items);
            return qt_json_field_error(c, field, "must be an array of strings");
        }
        i++;
    }
    *out = items;
    *n_out = n;
    return QE_OK;
}

void qt_json_free_strings(char **items, int n)
{
    for (int i = 0; i < n && items; i++)
        free(items[i]);
    free(items);
}

/* Rejects keys outside allowed[] so a typo in a task file is an error, not a silent default. */
qe_status qt_json_check_keys(const qt_json_ctx *c, const cJSON *obj, const char *prefix, const char *const *allowed)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, obj)
    {
        bool ok = false;
        for (int i = 0; allowed[i] && !ok; i++)
            ok = !strcmp(item->string, allowed[i]);
        if (!ok) {
            char field[128];
            snprintf(field, sizeof field, "%s%s", prefix, item->string);
            return qt_json_field_error(c, field, "is not part of the task schema (see docs/tasks.md)");
        }
    }
    return QE_OK;
}
