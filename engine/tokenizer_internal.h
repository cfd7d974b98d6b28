/* tokenizer_internal — what tokenizer.c, tokenizer_decode.c and tokenizer_pretok.c share: the
 * tokenizer's layout and the text pipeline before the BPE model (normalizers, pre-tokenizer
 * splits, GPT-2's byte-to-unicode map). Not part of the engine API. */
#ifndef QE_TOKENIZER_INTERNAL_H
#define QE_TOKENIZER_INTERNAL_H

#include "tokenizer.h"

typedef struct qe_pretok qe_pretok; /* the compiled normalizers + pre-tokenizer */
typedef struct qe_piece_cache qe_piece_cache; /* pieces already encoded (tokenizer.c) */

/* The built tokenizer (tokenizer.c builds and encodes, tokenizer_decode.c decodes). */
struct qe_tokenizer {
    qe_tokenizer_kind kind;
    int n_vocab;
    char *text_arena;          /* all token texts, NUL-separated                        */
    size_t arena_bytes;
    size_t *text_offset;       /* [n_vocab] offset into text_arena                      */
    int32_t *text_len;         /* [n_vocab] bytes; -1 for an id with no token; an added
                                  token the model lacks has text but is not in vocab_slots */
    float *scores;             /* [n_vocab] or NULL: merge by score instead of by rank   */
    bool *is_special;          /* [n_vocab] decode_ex's skip_special leaves these out   */
    int32_t *vocab_slots;      /* open addressing: token id or -1                        */
    size_t vocab_mask;         /* slots - 1 (slots a power of two)                       */
    uint64_t *merge_keys;      /* open addressing: left << 32 | right, or UINT64_MAX     */
    int32_t *merge_rank, *merge_new_id;
    size_t merge_mask;
    int32_t byte_ids[256];     /* byte-level: the token of each byte; SPM: <0xNN> or -1 */
    int16_t *byte_of_token;    /* [n_vocab] SPM: the byte a <0xNN> token stands for, or -1 */
    qe_added_token *added;     /* [n_added] contents owned                              */
    int n_added;
    int first_added[257];      /* added tokens sorted by first byte: [first_added[b], first_added[b+1]) */
    bool ignore_merges, byte_fallback, fuse_unk, decode_keeps_byte_tokens;
    qe_decode_space_rule decode_space_rule;
    int bos_id, eos_id, unk_id, pad_id;
    bool add_bos, add_eos;
    qe_pretok *pretok;
    qe_piece_cache *piece_cache;
};

static inline const char *qe_token_text(const qe_tokenizer *tok, int id)
{
    return tok->text_arena + tok->text_offset[id];
}

/* Pieces of text: spans into one owned buffer. */
typedef struct {
    char *buf;
    size_t buf_len, buf_cap;   /* bytes */
    size_t *starts, *lens;     /* [n_pieces] byte offsets into buf, byte lengths */
    int n_pieces, cap_pieces;
} qe_pieces;

void qe_pieces_free(qe_pieces *p);

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
bool qe_is_valid_utf8(const char *s, size_t len);
bool qe_is_unicode_space(uint32_t cp);
bool qe_is_word_char(uint32_t cp);     /* Rust's char::is_alphanumeric, or '_' */ /* Rust's char::is_whitespace (Unicode White_Space) */

#endif
