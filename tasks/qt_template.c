#include "qt_template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void qt_buf_append(qt_buf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->n, s, n);
    b->n += n;
    b->data[b->n] = '\0';
}

void qt_buf_puts(qt_buf *b, const char *s) { qt_buf_append(b, s, strlen(s)); }

char *qt_buf_take(qt_buf *b)
{
    if (b->failed) {
        free(b->data);
        memset(b, 0, sizeof *b);
        return NULL;
    }
    char *s = b->data ? b->data : calloc(1, 1);
    memset(b, 0, sizeof *b);
    return s;
}

bool qt_is_py_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' || (c >= 0x1c && c <= 0x1f); }

typedef struct {
    const char *name;
    size_t n_name;
    const char *filters[8];
    size_t n_filter_chars[8];
    int n_filters;
} placeholder;

static const char *const known_filters[] = {"strip", "lstrip", "rstrip", "underscores_to_spaces"};

static const char *skip_spaces(const char *p, const char *end)
{
    while (p < end && *p == ' ')
        p++;
    return p;
}

static bool is_name_char(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'; }

/* Parses the inside of {{ ... }} between start and end. */
static qe_status parse_placeholder(const char *start, const char *end, placeholder *ph, qe_error *err)
{
    memset(ph, 0, sizeof *ph);
    const char *p = skip_spaces(start, end);
    ph->name = p;
    while (p < end && is_name_char(*p))
        p++;
    ph->n_name = (size_t)(p - ph->name);
    if (ph->n_name == 0)
        return qe_fail(err, QE_EFORMAT, "placeholder \"{{%.*s}}\" has no field name", (int)(end - start), start);
    for (;;) {
        p = skip_spaces(p, end);
        if (p == end)
            return QE_OK;
        if (*p != '|' || ph->n_filters == 8)
            return qe_fail(err, QE_EFORMAT, "placeholder \"{{%.*s}}\": expected \"| filter\" or \"}}\"", (int)(end - start), start);
        p = skip_spaces(p + 1, end);
        const char *f = p;
        while (p < end && is_name_char(*p))
            p++;
        bool known = false;
        for (size_t i = 0; i < sizeof known_filters / sizeof *known_filters && !known; i++)
            known = strlen(known_filters[i]) == (size_t)(p - f) && !strncmp(known_filters[i], f, (size_t)(p - f));
        if (!known)
            return qe_fail(err, QE_EFORMAT, "unknown filter \"%.*s\" (known: strip, lstrip, rstrip, underscores_to_spaces)",
                           (int)(p - f), f);
        ph->filters[ph->n_filters] = f;
        ph->n_filter_chars[ph->n_filters++] = (size_t)(p - f);
    }
}

/* Walks the template; for each placeholder calls visit (when given). */
static qe_status walk(const char *tmpl, qe_status (*visit)(const placeholder *, const char *lit, size_t n_lit, void *), void *ctx,
                      qe_error *err)
{
    const char *p = tmpl;
    for (;;) {
        const char *open = strstr(p, "{{");
        size_t n_lit = open ? (size_t)(open - p) : strlen(p);
        if (!open)
            return visit(NULL, p, n_lit, ctx);
        const char *close = strstr(open + 2, "}}");
        if (!close)
            return qe_fail(err, QE_EFORMAT, "\"{{\" at offset %ld is never closed by \"}}\"", (long)(open - tmpl));
        placeholder ph;
        qe_status rc = parse_placeholder(open + 2, close, &ph, err);
        if (rc != QE_OK)
            return rc;
        if ((rc = visit(&ph, p, n_lit, ctx)) != QE_OK)
            return rc;
        p = close + 2;
    }
}

typedef struct {
    const char *const *known;
    int n_known;
    qe_error *err;
} check_ctx;

static qe_status check_visit(const placeholder *ph, const char *lit, size_t n_lit, void *vctx)
{
    check_ctx *c = vctx;
    if (!ph)
        return QE_OK;
    for (int i = 0; i < c->n_known; i++)
        if (strlen(c->known[i]) == ph->n_name && !strncmp(c->known[i], ph->name, ph->n_name))
            return QE_OK;
    return qe_fail(c->err, QE_EFORMAT, "placeholder names \"%.*s\", which is not a field of the dataset", (int)ph->n_name, ph->name);
}

qe_status qt_template_check(const char *tmpl, const char *const *known, int n_known, const char *where, qe_error *err)
{
    check_ctx c = {known, n_known, err};
    qe_status rc = walk(tmpl, check_visit, &c, err);
    return rc == QE_OK ? QE_OK : qe_fail_context(err, "%s", where);
}

typedef struct {
    qt_lookup_fn lookup;
    void *ctx;
    qt_buf out;
    qe_error *err;
} render_ctx;

static qe_status render_visit(const placeholder *ph, const char *lit, size_t n_lit, void *vctx)
{
    render_ctx *r = vctx;
    qt_buf_append(&r->out, lit, n_lit);
    if (!ph)
        return QE_OK;
    char name[128];
    snprintf(name, sizeof name, "%.*s", (int)ph->n_name, ph->name);
    const char *value = r->lookup(name, r->ctx);
    if (!value)
        return qe_fail(r->err, QE_EFORMAT, "the record has no text field \"%s\"", name);
    const char *begin = value, *end = value + strlen(value);
    bool underscores = false;
    for (int i = 0; i < ph->n_filters; i++) {
        const char *f = ph->filters[i];
        size_t n = ph->n_filter_chars[i];
        bool left = (n == 5 && !strncmp(f, "strip", 5)) || (n == 6 && !strncmp(f, "lstrip", 6));
        bool right = (n == 5 && !strncmp(f, "strip", 5)) || (n == 6 && !strncmp(f, "rstrip", 6));
        while (left && begin < end && qt_is_py_space(*begin))
            begin++;
        while (right && end > begin && qt_is_py_space(end[-1]))
            end--;
        if (n == 21)
            underscores = true;
    }
    if (!underscores) {
        qt_buf_append(&r->out, begin, (size_t)(end - begin));
        return QE_OK;
    }
    for (const char *p = begin; p < end; p++)
        qt_buf_append(&r->out, *p == '_' ? " " : p, 1);
    return QE_OK;
}

qe_status qt_template_render(const char *tmpl, qt_lookup_fn lookup, void *ctx, char **out, qe_error *err)
{
    render_ctx r = {lookup, ctx, {0}, err};
    *out = NULL;
    qe_status rc = walk(tmpl, render_visit, &r, err);
    char *s = qt_buf_take(&r.out);
    if (rc != QE_OK) {
        free(s);
        return rc;
    }
    if (!s)
        return qe_fail(err, QE_ENOMEM, "out of memory rendering a template");
    *out = s;
    return QE_OK;
}
