/* tokenizer_pretok — normalizers and pre-tokenizer of a tokenizer, as one list of operations
 * over pieces of text. Normalizers are operations on the single piece that the stretch of text
 * starts as; HF's ByteLevel and Metaspace pre-tokenizers expand into a transform plus a Split.
 * Regexes are PCRE2 in UTF + UCP mode (HF uses Oniguruma; the patterns tokenizers ship behave
 * the same in both). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

/* HF's ByteLevel regex (GPT-2's, with the trailing \s+ HF adds). */
static const char GPT2_REGEX[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* llama.cpp's (src/llama-vocab.cpp) regexes by tokenizer.ggml.pre name. */
static const char LLAMACPP_GPT2[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
static const char LLAMACPP_LLAMA3[] =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char LLAMACPP_QWEN2[] =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static const struct {
    const char *names;         /* '|'-separated aliases */
    const char *patterns[4];
} NAMED_REGEXES[] = {
    {"gpt2|gpt-2|phi-2|jina-es|jina-de|mpt|olmo|jais|trillion", {LLAMACPP_GPT2}},
    {"llama3|llama-v3|llama-bpe|falcon3|pixtral|dbrx|smaug-bpe|chatglm-bpe", {LLAMACPP_LLAMA3}},
    {"qwen2|deepseek-r1-qwen|megrez|stablelm2|hunyuan", {LLAMACPP_QWEN2}},
    {"smollm|starcoder|refact|command-r|codeshell|exaone|minerva-7b", {"\\p{N}", LLAMACPP_GPT2}},
    {"default", {"[\\p{P}\\$\\+<=>\\^~\\|]+", LLAMACPP_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}},
};

int qe_tokenizer_named_regexes(const char *name, const char **patterns, int max_patterns)
{
    size_t name_len = strlen(name);
    for (size_t i = 0; i < sizeof NAMED_REGEXES / sizeof NAMED_REGEXES[0]; i++) {
        for (const char *a = NAMED_REGEXES[i].names; *a;) {
            size_t alias_len = strcspn(a, "|");
            if (alias_len == name_len && memcmp(a, name, name_len) == 0) {
                int n = 0;
                while (n < 4 && NAMED_REGEXES[i].patterns[n]) {
                    if (n < max_patterns)
                        patterns[n] = NAMED_REGEXES[i].patterns[n];
                    n++;
                }
                return n;
            }
            a += alias_len + (a[alias_len] == '|');
        }
    }
    return -1;
}

/* ---- UTF-8 and the byte map ------------------------------------------------------------- */

int qe_utf8_decode(const uint8_t *s, size_t len, uint32_t *cp)
{
    utf8proc_int32_t c;
    utf8proc_ssize_t n = utf8proc_iterate(s, (utf8proc_ssize_t)(len > 4 ? 4 : len), &c);
    if (n <= 0)
        return 0;
    *cp = (uint32_t)c;
    return (int)n;
}

int qe_utf8_encode(uint32_t cp, char out[4])
{
    return (int)utf8proc_encode_char((utf8proc_int32_t)cp, (utf8proc_uint8_t *)out);
}

bool qe_is_unicode_space(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

/* Printable bytes stand for themselves; the other 68 get code points 256.. in byte order. */
static bool byte_is_printable(unsigned b)
{
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

uint32_t qe_byte_to_unicode(uint8_t byte)
{
    if (byte_is_printable(byte))
        return byte;
    uint32_t n = 0;
    for (unsigned b = 0; b < byte; b++)
        n += !byte_is_printable(b);
    return 256 + n;
}

int qe_unicode_to_byte(uint32_t cp)
{
    if (cp < 256)
        return byte_is_printable(cp) ? (int)cp : -1;
    uint32_t n = 0;
    for (unsigned b = 0; b < 256; b++)
        if (!byte_is_printable(b) && 256 + n++ == cp)
            return (int)b;
    return -1;
}

/* ---- pieces ------------------------------------------------------------------------------- */

void qe_pieces_free(qe_pieces *p)
{
    if (!p)
        return;
    free(p->buf);
    free(p->starts);
    free(p->lens);
    memset(p, 0, sizeof *p);
}

static void pieces_clear(qe_pieces *p) { p->buf_len = 0; p->n_pieces = 0; }

/* Appends text as a new piece (empty pieces are dropped, as HF drops them). */
static bool pieces_push(qe_pieces *p, const char *a, size_t a_len, const char *b, size_t b_len)
{
    size_t len = a_len + b_len;
    if (len == 0)
        return true;
    if (p->buf_len + len > p->buf_cap) {
        size_t cap = p->buf_cap ? p->buf_cap : 256;
        while (cap < p->buf_len + len)
            cap *= 2;
        char *buf = realloc(p->buf, cap);
        if (!buf)
            return false;
        p->buf = buf, p->buf_cap = cap;
    }
    if (p->n_pieces == p->cap_pieces) {
        int cap = p->cap_pieces ? 2 * p->cap_pieces : 64;
        size_t *starts = realloc(p->starts, cap * sizeof *starts);
        if (!starts)
            return false;
        p->starts = starts;
        size_t *lens = realloc(p->lens, cap * sizeof *lens);
        if (!lens)
            return false;
        p->lens = lens, p->cap_pieces = cap;
    }
    if (a_len)
        memcpy(p->buf + p->buf_len, a, a_len);
    if (b_len)
        memcpy(p->buf + p->buf_len + a_len, b, b_len);
    p->starts[p->n_pieces] = p->buf_len;
    p->lens[p->n_pieces++] = len;
    p->buf_len += len;
    return true;
}

/* ---- operations --------------------------------------------------------------------------- */

typedef enum { OP_SPLIT, OP_PREFIX, OP_REPLACE, OP_UNICODE_NORMALIZE } op_kind;

typedef struct {
    op_kind kind;
    pcre2_code *code;              /* SPLIT                                          */
    qe_split_behavior behavior;    /* SPLIT                                          */
    bool invert;                   /* SPLIT                                          */
    char *text;                    /* PREFIX: what to prepend; REPLACE: what to find  */
    char *replacement;             /* REPLACE                                        */
    bool unless_starts_with;       /* PREFIX: skip pieces already starting with text  */
    bool first_only;               /* PREFIX: only the piece that starts the input    */
    utf8proc_option_t options;     /* UNICODE_NORMALIZE                              */
} op;

struct qe_pretok {
    op *ops;
    int n_ops;
};

typedef struct { size_t start, end; bool is_match; } segment;

void qe_pretok_free(qe_pretok *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n_ops; i++) {
        pcre2_code_free(p->ops[i].code);
        free(p->ops[i].text);
        free(p->ops[i].replacement);
    }
    free(p->ops);
    free(p);
}

static op *add_op(qe_pretok *p, op_kind kind)
{
    op *o = &p->ops[p->n_ops++];
    memset(o, 0, sizeof *o);
    o->kind = kind;
    return o;
}

static qe_status compile_split(op *o, const char *pattern, bool literal, qe_error *err)
{
    int code;
    PCRE2_SIZE at;
    uint32_t options = PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK | (literal ? PCRE2_LITERAL : 0);
    o->code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, options, &code, &at, NULL);
    if (!o->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        return qe_fail(err, QE_EFORMAT, "pre-tokenizer regex \"%.200s\": %s at offset %zu", pattern,
                       (const char *)msg, (size_t)at);
    }
    pcre2_jit_compile(o->code, PCRE2_JIT_COMPLETE); /* a failed JIT only costs speed */
    return QE_OK;
}

static char *dup_str(const char *s) { return s ? strdup(s) : NULL; }

qe_status qe_pretok_compile(const qe_tokenizer_spec *spec, qe_pretok **out, qe_error *err)
{
    *out = NULL;
    const char *named[4];
    int n_named = 0;
    if (spec->pre_tokenizer && *spec->pre_tokenizer) {
        n_named = qe_tokenizer_named_regexes(spec->pre_tokenizer, named, 4);
        if (n_named < 0)
            return qe_fail(err, QE_EUNSUPPORTED, "unknown pre-tokenizer name \"%.100s\"", spec->pre_tokenizer);
    }
    qe_pretok *p = calloc(1, sizeof *p);
    int max_ops = spec->n_normalizer_steps + n_named + 3 * spec->n_pretok_steps;
    if (p)
        p->ops = calloc(max_ops ? max_ops : 1, sizeof *p->ops);
    if (!p || !p->ops) {
        qe_pretok_free(p);
        return qe_fail(err, QE_ENOMEM, "out of memory compiling the pre-tokenizer");
    }
    qe_status rc = QE_OK;
    for (int i = 0; i < spec->n_normalizer_steps && rc == QE_OK; i++) {
        const qe_normalizer_step *s = &spec->normalizer_steps[i];
        op *o;
        switch (s->kind) {
        case QE_NORM_NFC:
        case QE_NORM_NFKC:
            o = add_op(p, OP_UNICODE_NORMALIZE);
            o->options = UTF8PROC_STABLE | UTF8PROC_COMPOSE | (s->kind == QE_NORM_NFKC ? UTF8PROC_COMPAT : 0);
            break;
        case QE_NORM_PREPEND:
            o = add_op(p, OP_PREFIX);
            o->text = dup_str(s->text ? s->text : "");
            break;
        case QE_NORM_REPLACE:
            if (!s->text || !*s->text)
                rc = qe_fail(err, QE_EFORMAT, "normalizer Replace has an empty pattern");
            o = add_op(p, OP_REPLACE);
            o->text = dup_str(s->text ? s->text : "");
            o->replacement = dup_str(s->replacement ? s->replacement : "");
            break;
        }
    }
    for (int i = 0; i < n_named && rc == QE_OK; i++) {
        op *o = add_op(p, OP_SPLIT);
        o->behavior = QE_SPLIT_ISOLATED;
        rc = compile_split(o, named[i], false, err);
    }
    for (int i = 0; i < spec->n_pretok_steps && rc == QE_OK; i++) {
        const qe_pretok_step *s = &spec->pretok_steps[i];
        op *o;
        switch (s->kind) {
        case QE_PRETOK_SPLIT:
            if (!s->pattern || (s->pattern_is_literal && !*s->pattern)) {
                rc = qe_fail(err, QE_EFORMAT, "pre-tokenizer Split has no pattern");
                break;
            }
            o = add_op(p, OP_SPLIT);
            o->behavior = s->behavior;
            o->invert = s->invert;
            rc = compile_split(o, s->pattern, s->pattern_is_literal, err);
            break;
        case QE_PRETOK_BYTE_LEVEL:
            if (s->add_prefix_space) {
                o = add_op(p, OP_PREFIX);
                o->text = dup_str(" ");
                o->unless_starts_with = true;
            }
            if (s->use_regex) {
                o = add_op(p, OP_SPLIT);
                o->behavior = QE_SPLIT_ISOLATED;
                rc = compile_split(o, GPT2_REGEX, false, err);
            }
            break;
        case QE_PRETOK_METASPACE: {
            const char *rep = s->replacement && *s->replacement ? s->replacement : "\xe2\x96\x81";
            o = add_op(p, OP_REPLACE);
            o->text = dup_str(" ");
            o->replacement = dup_str(rep);
            if (s->prepend_scheme != QE_PREPEND_NEVER) {
                o = add_op(p, OP_PREFIX);
                o->text = dup_str(rep);
                o->unless_starts_with = true;
                o->first_only = s->prepend_scheme == QE_PREPEND_FIRST;
            }
            if (s->split) {
                o = add_op(p, OP_SPLIT);
                o->behavior = QE_SPLIT_MERGED_WITH_NEXT;
                rc = compile_split(o, rep, true, err);
            }
            break;
        }
        }
    }
    for (int i = 0; i < p->n_ops && rc == QE_OK; i++)
        if ((p->ops[i].kind == OP_PREFIX && !p->ops[i].text) ||
            (p->ops[i].kind == OP_REPLACE && (!p->ops[i].text || !p->ops[i].replacement)))
            rc = qe_fail(err, QE_ENOMEM, "out of memory compiling the pre-tokenizer");
    if (rc != QE_OK) {
        qe_pretok_free(p);
        return rc;
    }
    *out = p;
    return QE_OK;
}

/* Finds the matches of o in piece s[0..len) as alternating gap/match segments. */
static qe_status find_segments(const op *o, pcre2_match_data *md, const char *s, size_t len,
                               segment **segs, int *n_segs, int *cap_segs, qe_error *err)
{
    *n_segs = 0;
    size_t offset = 0, prev_end = 0;
    while (offset <= len) {
        int rc = pcre2_match(o->code, (PCRE2_SPTR)s, len, offset, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0)
            return qe_fail(err, QE_EINVAL, "pre-tokenizer regex failed with PCRE2 error %d", rc);
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t m_start = ov[0], m_end = ov[1];
        if (m_end == m_start) { /* an empty match delimits nothing: step over one character */
            uint32_t cp;
            int n = m_end < len ? qe_utf8_decode((const uint8_t *)s + m_end, len - m_end, &cp) : 1;
            offset = m_end + (n > 0 ? n : 1);
            continue;
        }
        if (*n_segs + 2 > *cap_segs) {
            int cap = *cap_segs ? 2 * *cap_segs : 64;
            segment *grown = realloc(*segs, cap * sizeof *grown);
            if (!grown)
                return qe_fail(err, QE_ENOMEM, "out of memory splitting text");
            *segs = grown, *cap_segs = cap;
        }
        if (m_start > prev_end)
            (*segs)[(*n_segs)++] = (segment){prev_end, m_start, o->invert};
        (*segs)[(*n_segs)++] = (segment){m_start, m_end, !o->invert};
        prev_end = offset = m_end;
    }
    if (prev_end < len) {
        if (*n_segs + 1 > *cap_segs) {
            int cap = *cap_segs ? 2 * *cap_segs : 64;
            segment *grown = realloc(*segs, cap * sizeof *grown);
            if (!grown)
                return qe_fail(err, QE_ENOMEM, "out of memory splitting text");
            *segs = grown, *cap_segs = cap;
        }
        (*segs)[(*n_segs)++] = (segment){prev_end, len, o->invert};
    }
    return QE_OK;
}

/* Merges segments per HF's SplitDelimiterBehavior, in place; returns the new count. */
static int apply_behavior(qe_split_behavior behavior, segment *segs, int n)
{
    int n_out = 0;
    bool previous_match = false;
    switch (behavior) {
    case QE_SPLIT_ISOLATED:
        return n;
    case QE_SPLIT_REMOVED:
        for (int i = 0; i < n; i++)
            if (!segs[i].is_match)
                segs[n_out++] = segs[i];
        return n_out;
    case QE_SPLIT_CONTIGUOUS:
        for (int i = 0; i < n; i++) {
            if (n_out > 0 && segs[i].is_match == previous_match)
                segs[n_out - 1].end = segs[i].end;
            else
                segs[n_out++] = segs[i];
            previous_match = segs[i].is_match;
        }
        return n_out;
    case QE_SPLIT_MERGED_WITH_PREVIOUS:
        for (int i = 0; i < n; i++) {
            if (segs[i].is_match && !previous_match && n_out > 0)
                segs[n_out - 1].end = segs[i].end;
            else
                segs[n_out++] = segs[i];
            previous_match = segs[i].is_match;
        }
        return n_out;
    case QE_SPLIT_MERGED_WITH_NEXT:
        /* walk backwards: a match joins the piece after it unless that piece is a match too */
        for (int i = n - 1; i >= 0; i--) {
            if (segs[i].is_match && !previous_match && n_out > 0)
                segs[n - n_out].start = segs[i].start;
            else
                segs[n - 1 - n_out++] = segs[i];
            previous_match = segs[i].is_match;
        }
        memmove(segs, segs + (n - n_out), n_out * sizeof *segs);
        return n_out;
    }
    return n;
}

static qe_status run_op(const op *o, pcre2_match_data *md, bool is_text_start, const qe_pieces *in,
                        qe_pieces *out, segment **segs, int *cap_segs, qe_error *err)
{
    pieces_clear(out);
    for (int i = 0; i < in->n_pieces; i++) {
        const char *s = in->buf + in->starts[i];
        size_t len = in->lens[i];
        bool ok = true;
        switch (o->kind) {
        case OP_SPLIT: {
            int n_segs;
            qe_status rc = find_segments(o, md, s, len, segs, &n_segs, cap_segs, err);
            if (rc != QE_OK)
                return rc;
            n_segs = apply_behavior(o->behavior, *segs, n_segs);
            for (int k = 0; k < n_segs && ok; k++)
                ok = pieces_push(out, s + (*segs)[k].start, (*segs)[k].end - (*segs)[k].start, NULL, 0);
            break;
        }
        case OP_PREFIX: {
            size_t t_len = strlen(o->text);
            bool skip = (o->unless_starts_with && len >= t_len && memcmp(s, o->text, t_len) == 0) ||
                        (o->first_only && !(is_text_start && i == 0 && in->starts[0] == 0));
            ok = pieces_push(out, skip ? NULL : o->text, skip ? 0 : t_len, s, len);
            break;
        }
        case OP_REPLACE: {
            size_t t_len = strlen(o->text), r_len = strlen(o->replacement);
            size_t start = out->buf_len, n_pieces = out->n_pieces, from = 0;
            for (size_t k = 0; k + t_len <= len && ok;) {
                if (memcmp(s + k, o->text, t_len) == 0) {
                    ok = pieces_push(out, s + from, k - from, o->replacement, r_len);
                    k += t_len, from = k;
                } else {
                    k++;
                }
            }
            ok = ok && pieces_push(out, s + from, len - from, NULL, 0);
            /* the pushes above were one piece's parts: join them back into one */
            if (ok && out->n_pieces > (int)n_pieces) {
                out->n_pieces = (int)n_pieces + 1;
                out->starts[n_pieces] = start;
                out->lens[n_pieces] = out->buf_len - start;
            }
            break;
        }
        case OP_UNICODE_NORMALIZE: {
            bool is_ascii = true;
            for (size_t k = 0; k < len && is_ascii; k++)
                is_ascii = (unsigned char)s[k] < 0x80;
            if (is_ascii) { /* ASCII is its own NFC and NFKC */
                ok = pieces_push(out, s, len, NULL, 0);
                break;
            }
            utf8proc_uint8_t *norm = NULL;
            utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, &norm, o->options);
            if (n < 0) {
                free(norm);
                return qe_fail(err, QE_EINVAL, "Unicode normalization failed: %s", utf8proc_errmsg(n));
            }
            ok = pieces_push(out, (const char *)norm, (size_t)n, NULL, 0);
            free(norm);
            break;
        }
        }
        if (!ok)
            return qe_fail(err, QE_ENOMEM, "out of memory pre-tokenizing text");
    }
    return QE_OK;
}

qe_status qe_pretok_run(const qe_pretok *p, const char *text, size_t len, bool is_text_start,
                        qe_pieces *out, qe_error *err)
{
    pieces_clear(out);
    if (!pieces_push(out, text, len, NULL, 0))
        return qe_fail(err, QE_ENOMEM, "out of memory pre-tokenizing text");
    qe_pieces tmp = {0};
    segment *segs = NULL;
    int cap_segs = 0;
    pcre2_match_data *md = NULL;
    qe_status rc = QE_OK;
    for (int i = 0; i < p->n_ops && rc == QE_OK && out->n_pieces > 0; i++) {
        if (p->ops[i].kind == OP_SPLIT && !md) {
            md = pcre2_match_data_create(4, NULL);
            if (!md) {
                rc = qe_fail(err, QE_ENOMEM, "out of memory pre-tokenizing text");
                break;
            }
        }
        rc = run_op(&p->ops[i], md, is_text_start, out, &tmp, &segs, &cap_segs, err);
        qe_pieces swap = *out;
        *out = tmp;
        tmp = swap;
    }
    qe_pieces_free(&tmp);
    free(segs);
    pcre2_match_data_free(md);
    return rc;
}
