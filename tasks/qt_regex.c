#define PCRE2_CODE_UNIT_WIDTH 8
#include "qt_regex.h"

#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "qt_template.h"

struct qt_regex {
    pcre2_code *code;
    uint32_t n_groups;
    char *pattern;
};

qe_status qt_regex_compile(const char *pattern, qt_regex **out, qe_error *err)
{
    *out = NULL;
    int code;
    PCRE2_SIZE offset;
    pcre2_code *compiled = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                         PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &code, &offset, NULL);
    if (!compiled) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        return qe_fail(err, QE_EFORMAT, "regex \"%s\": %s at offset %zu", pattern, (const char *)msg, (size_t)offset);
    }
    qt_regex *re = calloc(1, sizeof *re);
    if (!re || !(re->pattern = strdup(pattern))) {
        free(re);
        pcre2_code_free(compiled);
        return qe_fail(err, QE_ENOMEM, "out of memory compiling a regex");
    }
    re->code = compiled;
    pcre2_pattern_info(compiled, PCRE2_INFO_CAPTURECOUNT, &re->n_groups);
    *out = re;
    return QE_OK;
}

void qt_regex_free(qt_regex *re)
{
    if (!re)
        return;
    pcre2_code_free(re->code);
    free(re->pattern);
    free(re);
}

/* One findall item: the whole match (no groups), group 1 (one group), or the first non-empty
 * group (several groups: Python gives a tuple and the filter takes its first non-empty). */
static void item_span(const qt_regex *re, const PCRE2_SIZE *ov, PCRE2_SIZE *start, PCRE2_SIZE *end)
{
    *start = *end = 0;
    if (re->n_groups == 0) {
        *start = ov[0];
        *end = ov[1];
        return;
    }
    uint32_t last = re->n_groups == 1 ? 1 : re->n_groups;
    for (uint32_t g = 1; g <= last; g++) {
        if (ov[2 * g] == PCRE2_UNSET || ov[2 * g + 1] == ov[2 * g])
            continue;
        *start = ov[2 * g];
        *end = ov[2 * g + 1];
        return;
    }
}

qe_status qt_regex_extract(const qt_regex *re, const char *text, int group_select, const char *fallback, char **out,
                           qe_error *err)
{
    *out = NULL;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re->code, NULL);
    if (!md)
        return qe_fail(err, QE_ENOMEM, "out of memory matching a regex");
    size_t n_text = strlen(text);
    /* All matches' spans; the selection index may count from the end. */
    PCRE2_SIZE *spans = NULL;
    int n_items = 0, cap = 0;
    PCRE2_SIZE pos = 0;
    uint32_t options = 0;
    qe_status rc = QE_OK;
    while (pos <= n_text) {
        int m = pcre2_match(re->code, (PCRE2_SPTR)text, n_text, pos, options, md, NULL);
        if (m == PCRE2_ERROR_NOMATCH) {
            if (options == 0)
                break;
            /* After an empty match: move one character on and search normally. */
            options = 0;
            pos++;
            while (pos < n_text && ((unsigned char)text[pos] & 0xC0) == 0x80)
                pos++;
            continue;
        }
        if (m < 0) {
            rc = qe_fail(err, QE_EFORMAT, "regex \"%s\": match error %d", re->pattern, m);
            break;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (n_items == cap) {
            cap = cap ? cap * 2 : 16;
            PCRE2_SIZE *p = realloc(spans, (size_t)cap * 2 * sizeof *p);
            if (!p) {
                rc = qe_fail(err, QE_ENOMEM, "out of memory matching a regex");
                break;
            }
            spans = p;
        }
        item_span(re, ov, &spans[2 * n_items], &spans[2 * n_items + 1]);
        n_items++;
        pos = ov[1];
        options = ov[0] == ov[1] ? PCRE2_NOTEMPTY_ATSTART | PCRE2_ANCHORED : 0;
    }
    pcre2_match_data_free(md);
    if (rc == QE_OK) {
        int index = group_select < 0 ? n_items + group_select : group_select;
        const char *begin = fallback, *end = fallback + strlen(fallback);
        if (n_items > 0 && index >= 0 && index < n_items) {
            begin = text + spans[2 * index];
            end = text + spans[2 * index + 1];
            while (begin < end && qt_is_py_space(*begin))
                begin++;
            while (end > begin && qt_is_py_space(end[-1]))
                end--;
        }
        if (!(*out = strndup(begin, (size_t)(end - begin))))
            rc = qe_fail(err, QE_ENOMEM, "out of memory");
    }
    free(spans);
    return rc;
}

qe_status qt_regex_remove(const qt_regex *re, const char *text, char **out, qe_error *err)
{
    *out = NULL;
    size_t n_text = strlen(text);
    PCRE2_SIZE cap = n_text + 1;
    char *buf = malloc(cap);
    if (!buf)
        return qe_fail(err, QE_ENOMEM, "out of memory");
    PCRE2_SIZE n_out = cap;
    int r = pcre2_substitute(re->code, (PCRE2_SPTR)text, n_text, 0, PCRE2_SUBSTITUTE_GLOBAL, NULL, NULL,
                             (PCRE2_SPTR) "", 0, (PCRE2_UCHAR *)buf, &n_out);
    if (r < 0) {
        free(buf);
        return qe_fail(err, QE_EFORMAT, "regex \"%s\": substitution error %d", re->pattern, r);
    }
    *out = buf; /* removing never makes the text longer, so it always fits */
    return QE_OK;
}

static bool ascii_punctuation(int c) { return c > 32 && c < 127 && strchr("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", c); }

qe_status qt_exact_match_normalize(const char *text, qt_regex *const *ignore, int n_ignore, bool ignore_case,
                                   bool ignore_punctuation, char **out, qe_error *err)
{
    char *s = strdup(text);
    if (!s)
        return qe_fail(err, QE_ENOMEM, "out of memory");
    for (int i = 0; i < n_ignore; i++) {
        char *next;
        qe_status rc = qt_regex_remove(ignore[i], s, &next, err);
        free(s);
        if (rc != QE_OK)
            return rc;
        s = next;
    }
    qt_buf b = {0};
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    while (*p) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate(p, -1, &cp);
        if (n <= 0) { /* invalid byte: keep it as is */
            if (!(ignore_punctuation && ascii_punctuation(*p)))
                qt_buf_append(&b, (const char *)p, 1);
            p++;
            continue;
        }
        if (ignore_case)
            cp = utf8proc_tolower(cp);
        if (!(ignore_punctuation && ascii_punctuation(cp))) {
            utf8proc_uint8_t enc[4];
            utf8proc_ssize_t k = utf8proc_encode_char(cp, enc);
            qt_buf_append(&b, (const char *)enc, (size_t)k);
        }
        p += n;
    }
    free(s);
    if (!(*out = qt_buf_take(&b)))
        return qe_fail(err, QE_ENOMEM, "out of memory");
    return QE_OK;
}
