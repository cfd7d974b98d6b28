/* tokenizer_decode — ids -> text as HF's decoders do it: ByteLevel for byte-level BPE;
 * Replace("▁"," ") + ByteFallback + Fuse + Strip (or Metaspace) for SentencePiece-style BPE. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

typedef struct {
    char *data;
    size_t len, cap;
} byte_buf;

static bool buf_append(byte_buf *b, const void *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown)
            return false;
        b->data = grown, b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
    return true;
}

static const char REPLACEMENT_CHAR[] = "\xef\xbf\xbd"; /* U+FFFD */

/* Rust's String::from_utf8_lossy: each maximal invalid subpart becomes one U+FFFD. */
static bool append_lossy(byte_buf *out, const uint8_t *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        uint8_t c = s[i];
        size_t need;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c < 0x80) need = 0;
        else if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c >= 0xE0 && c <= 0xEF) need = 2, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        else if (c >= 0xF0 && c <= 0xF4) need = 3, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        else {
            if (!buf_append(out, REPLACEMENT_CHAR, 3))
                return false;
            i++;
            continue;
        }
        size_t got = 0;
        while (got < need && i + 1 + got < len) {
            uint8_t d = s[i + 1 + got];
            if (d < (got == 0 ? lo : 0x80) || d > (got == 0 ? hi : 0xBF))
                break;
            got++;
        }
        if (got == need) {
            if (!buf_append(out, s + i, need + 1))
                return false;
        } else if (!buf_append(out, REPLACEMENT_CHAR, 3)) {
            return false;
        }
        i += got + 1;
    }
    return true;
}

/* HF's ByteLevel decoder: a token's characters map back to bytes, or (when one cannot) the
 * token's own bytes are used; the whole is then read as lossy UTF-8. */
static bool decode_byte_level(const qe_tokenizer *tok, const int32_t *ids, int n_ids, bool skip_special, byte_buf *out)
{
    byte_buf raw = {0};
    bool ok = true;
    for (int i = 0; i < n_ids && ok; i++) {
        int id = ids[i];
        if (tok->text_len[id] < 0 || (skip_special && tok->is_special[id]))
            continue;
        const uint8_t *s = (const uint8_t *)qe_token_text(tok, id);
        size_t len = tok->text_len[id], start = raw.len;
        for (size_t at = 0; at < len && ok;) {
            uint32_t cp;
            int n = qe_utf8_decode(s + at, len - at, &cp);
            int b = n > 0 ? qe_unicode_to_byte(cp) : -1;
            if (b < 0) {
                raw.len = start;
                ok = buf_append(&raw, s, len);
                break;
            }
            uint8_t byte = (uint8_t)b;
            ok = buf_append(&raw, &byte, 1);
            at += n;
        }
    }
    ok = ok && buf_append(out, "", 0) && append_lossy(out, (const uint8_t *)raw.data, raw.len);
    free(raw.data);
    return ok;
}

/* Appends a run of <0xNN> bytes as HF's ByteFallback decoder does: the bytes when they are
 * valid UTF-8, else one U+FFFD per byte. */
static bool flush_bytes(byte_buf *out, byte_buf *pending)
{
    bool ok = true;
    if (qe_is_valid_utf8(pending->data, pending->len))
        ok = buf_append(out, pending->data, pending->len);
    else
        for (size_t k = 0; k < pending->len && ok; k++)
            ok = buf_append(out, REPLACEMENT_CHAR, 3);
    pending->len = 0;
    return ok;
}

/* HF's SentencePiece decoders: Replace("▁", " ") + ByteFallback + Fuse + Strip(" ", 1, 0), or
 * Metaspace (whose first token loses every "▁"). */
static bool decode_spm(const qe_tokenizer *tok, const int32_t *ids, int n_ids, bool skip_special, byte_buf *out)
{
    byte_buf pending = {0};
    bool ok = buf_append(out, "", 0), is_first = true;
    for (int i = 0; i < n_ids && ok; i++) {
        int id = ids[i];
        if (tok->text_len[id] < 0 || (skip_special && tok->is_special[id]))
            continue;
        int byte = tok->decode_keeps_byte_tokens ? -1 : tok->byte_of_token[id];
        if (byte >= 0) {
            uint8_t b = (uint8_t)byte;
            ok = buf_append(&pending, &b, 1);
            is_first = false;
            continue;
        }
        if (pending.len > 0)
            ok = flush_bytes(out, &pending);
        bool drops_meta = is_first && tok->decode_space_rule == QE_DECODE_METASPACE_FIRST;
        is_first = false;
        const char *s = qe_token_text(tok, id);
        for (const char *meta; ok && (meta = strstr(s, "\xe2\x96\x81")); s = meta + 3)
            ok = buf_append(out, s, meta - s) && (drops_meta || buf_append(out, " ", 1));
        ok = ok && buf_append(out, s, strlen(s));
    }
    if (ok && pending.len > 0)
        ok = flush_bytes(out, &pending);
    free(pending.data);
    if (ok && tok->decode_space_rule == QE_DECODE_STRIP_ONE_SPACE && out->len > 0 && out->data[0] == ' ') {
        memmove(out->data, out->data + 1, out->len);
        out->len--;
    }
    return ok;
}

qe_status qe_tokenizer_decode_ex(const qe_tokenizer *tok, const int32_t *ids, int n_ids, bool skip_special,
                                 char **text, qe_error *err)
{
    *text = NULL;
    for (int i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] >= tok->n_vocab)
            return qe_fail(err, QE_EINVAL, "token id %d at position %d is outside the vocabulary of %d", ids[i], i,
                           tok->n_vocab);
    byte_buf out = {0};
    bool ok = tok->kind == QE_TOKENIZER_BYTE_BPE ? decode_byte_level(tok, ids, n_ids, skip_special, &out)
                                                 : decode_spm(tok, ids, n_ids, skip_special, &out);
    if (!ok) {
        free(out.data);
        return qe_fail(err, QE_ENOMEM, "out of memory decoding %d tokens", n_ids);
    }
    *text = out.data;
    return QE_OK;
}

qe_status qe_tokenizer_decode(const qe_tokenizer *tok, const int32_t *ids, int n_ids, char **text, qe_error *err)
{
    return qe_tokenizer_decode_ex(tok, ids, n_ids, false, text, err);
}

