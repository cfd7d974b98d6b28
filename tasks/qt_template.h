/* qt_template — the prompt templates of task files: text with placeholders {{ name }} or
 * {{ name | filter | ... }} replaced by a record's field. Filters: strip, lstrip, rstrip
 * (Python's whitespace), underscores_to_spaces. Everything outside {{ }} is copied as is. */
#ifndef QT_TEMPLATE_H
#define QT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "qe_error.h"

/* Returns the value of a field (NULL when there is none). */
typedef const char *(*qt_lookup_fn)(const char *name, void *ctx);

/* Checks the syntax and that every name is in known[n_known]. where names the template in
 * errors ("tasks/x.json: doc_to_text"). */
qe_status qt_template_check(const char *tmpl, const char *const *known, int n_known, const char *where, qe_error *err);

/* Renders into *out (malloc'd). A name without a value is an error naming it. */
qe_status qt_template_render(const char *tmpl, qt_lookup_fn lookup, void *ctx, char **out, qe_error *err);

/* Python's str.strip() whitespace among ASCII bytes (other bytes are never stripped here). */
bool qt_is_py_space(char c);

/* A growable string, shared by the task code. */
typedef struct {
    char *data;
    size_t n, cap;
    bool failed;               /* an allocation failed; data is then incomplete */
} qt_buf;

void qt_buf_append(qt_buf *b, const char *s, size_t n);
void qt_buf_puts(qt_buf *b, const char *s);
/* Takes the string (NUL-terminated, "" when empty); NULL when an allocation failed. */
char *qt_buf_take(qt_buf *b);

#endif
