/* tokenizer_internal — what tokenizer.c and tokenizer_pretok.c share: the text pipeline
 * before the BPE model (normalizers, pre-tokenizer splits, GPT-2's byte-to-unicode map).
 * Not part of the engine API. */
#ifndef QE_TOKENIZER_INTERNAL_H
#define QE_TOKENIZER_INTERNAL_H

#include "tokenizer.h"

/* Pieces of text: spans into one owned buffer. */
typedef struct {
    char *buf;
    size_t buf_len, buf_cap;   /* bytes */
    size_t *starts, *lens;     /* [n_pieces] byte offsets into buf, byte lengths */
    int n_pieces, cap_pieces;
} qe_pieces;

void qe_pieces_free(qe_pieces *p);

/* The compiled normalizers + pre-tokenizer of one tokenizer. */
typedef struct qe_pretok qe_pretok;

qe_status qe_pretok_compile(const qe_tokenizer_spec *spec, qe_pretok **out, qe_error *err);
void qe_pretok_free(qe_pretok *p);

/* Normalizes text[0..len) and splits it into non-empty pieces (replacing out's content).
 * is_text_start: the text begins the input (Metaspace's "first" prepend scheme). */
qe_status qe_pretok_run(const qe_pretok *p, const char *text, size_t len, bool is_text_start,
                        qe_pieces *out, qe_error *err);

/* GPT-2's map: byte -> code point of the printable stand-in character. */
uint32_t qe_byte_to_unicode(uint8_t byte);
/* Inverse; -1 for a code point that stands for no byte. */
int qe_unicode_to_byte(uint32_t cp);

/* Length of the valid UTF-8 character at s[0..len), or 0 when invalid; *cp gets the code point. */
int qe_utf8_decode(const uint8_t *s, size_t len, uint32_t *cp);
int qe_utf8_encode(uint32_t cp, char out[4]);
bool qe_is_unicode_space(uint32_t cp); /* Rust's char::is_whitespace (Unicode White_Space) */

#endif
