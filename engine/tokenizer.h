/* tokenizer — text <-> token ids for the two families of tokenizer small causal LMs ship:
 * byte-level BPE (GPT-2 / Qwen2 / Llama-3: regex pre-tokenizer, byte-to-unicode map, merges
 * by rank) and SentencePiece-style BPE (Llama-2 / TinyStories: "▁" for spaces, merges by rank
 * or by score, byte fallback <0xNN>). Added and special tokens are matched before BPE.
 *
 * One in-memory form (qe_tokenizer_spec) is built by each front-end: tokenizer.json here,
 * GGUF metadata in gguf_tokenizer.c. Encoding must equal Hugging Face `tokenizers` exactly.
 * A built tokenizer is immutable: encode/decode may run from several threads at once. */
#ifndef QE_TOKENIZER_H
#define QE_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qe_error.h"

typedef enum { QE_TOKENIZER_BYTE_BPE, QE_TOKENIZER_SPM_BPE } qe_tokenizer_kind;

typedef enum {
    QE_TOKEN_NORMAL = 1, QE_TOKEN_UNKNOWN = 2, QE_TOKEN_CONTROL = 3,
    QE_TOKEN_USER_DEFINED = 4, QE_TOKEN_UNUSED = 5, QE_TOKEN_BYTE = 6,
} qe_token_type; /* GGUF's tokenizer.ggml.token_type values */

/* Normalizers run in order on each stretch of text between added tokens. */
typedef enum { QE_NORM_NFC, QE_NORM_NFKC, QE_NORM_PREPEND, QE_NORM_REPLACE } qe_normalizer_kind;
typedef struct {
    qe_normalizer_kind kind;
    const char *text;        /* PREPEND: what to put in front (only of non-empty text); REPLACE: literal to find */
    const char *replacement; /* REPLACE: what replaces each occurrence                                          */
} qe_normalizer_step;

/* Pre-tokenizer steps run in order; each splits every current piece further. */
typedef enum { QE_PRETOK_SPLIT, QE_PRETOK_BYTE_LEVEL, QE_PRETOK_METASPACE } qe_pretok_kind;
typedef enum {
    QE_SPLIT_ISOLATED, QE_SPLIT_REMOVED, QE_SPLIT_MERGED_WITH_PREVIOUS, QE_SPLIT_MERGED_WITH_NEXT,
    QE_SPLIT_CONTIGUOUS,
} qe_split_behavior; /* what happens to the delimiter a pattern matches, as in HF's Split */
typedef enum { QE_PREPEND_ALWAYS, QE_PREPEND_FIRST, QE_PREPEND_NEVER } qe_prepend_scheme;
typedef struct {
    qe_pretok_kind kind;
    /* SPLIT */
    const char *pattern;            /* PCRE2 pattern (UTF + UCP), or a literal when pattern_is_literal */
    bool pattern_is_literal;
    qe_split_behavior behavior;
    bool invert;                    /* the pieces between matches are the delimiters            */
    /* BYTE_LEVEL (the byte-to-unicode map itself is implied by QE_TOKENIZER_BYTE_BPE) */
    bool add_prefix_space;          /* a piece not starting with ' ' gets one                   */
    bool use_regex;                 /* also split with GPT-2's regex                             */
    /* METASPACE: spaces -> replacement, prepend per scheme, split before each replacement */
    const char *replacement;        /* usually "▁"                                               */
    qe_prepend_scheme prepend_scheme;
    bool split;
} qe_pretok_step;

typedef struct {
    const char *content;
    int id;
    bool is_special;   /* skipped by decode when skip_special is set                              */
    bool lstrip, rstrip;/* the match swallows whitespace to its left / right                     */
    bool single_word;  /* only matches when not inside a word                                     */
} qe_added_token;

/* Everything a front-end hands over; the tokenizer copies what it keeps. */
typedef struct {
    qe_tokenizer_kind kind;
    int n_vocab;
    const char *const *tokens;      /* [n_vocab] token text (byte-level: in the unicode-mapped alphabet);
                                       ids with no token may be NULL (holes in a JSON vocab)            */
    const float *scores;            /* [n_vocab] SPM scores, or NULL (then merges rank pairs)            */
    const int32_t *token_types;     /* [n_vocab] qe_token_type, or NULL (all normal)                    */
    int n_merges;
    const char *const *merges;      /* [n_merges] "left right", in rank order; may be 0 for SPM+scores    */
    const char *const *merge_pairs; /* [2 * n_merges] left, right: used instead of merges when not NULL
                                       (tokenizer.json's array form, for tokens holding spaces)        */
    bool ignore_merges;             /* a piece that is itself a token is emitted whole (Llama-3)          */
    /* Named pre-tokenizer ("gpt2", "llama3"/"llama-bpe", "qwen2", "smollm", ... as llama.cpp's
     * tokenizer.ggml.pre names them): its regexes run before the explicit steps below. */
    const char *pre_tokenizer;
    int n_pretok_steps;
    const qe_pretok_step *pretok_steps;
    int n_normalizer_steps;
    const qe_normalizer_step *normalizer_steps;
    int n_added;
    const qe_added_token *added;    /* matched in raw text before anything else; when n_added is 0,
                                       CONTROL (special) and USER_DEFINED tokens of token_types are */
    bool byte_fallback;             /* SPM: unknown characters become <0xNN> tokens                       */
    bool fuse_unk;                  /* consecutive unknown characters give one unk                        */
    bool decode_strip_space;        /* SPM decode: drop one leading space (Strip / Metaspace decoder)     */
    int bos_id, eos_id, unk_id, pad_id;  /* -1 when absent                                             */
    bool add_bos, add_eos;          /* what add_special=true adds                                         */
} qe_tokenizer_spec;

typedef struct qe_tokenizer qe_tokenizer;

qe_status qe_tokenizer_build(const qe_tokenizer_spec *spec, qe_tokenizer **out, qe_error *err);

/* Loads dir/tokenizer.json (+ dir/tokenizer_config.json for BOS/EOS and add_bos when present). */
qe_status qe_tokenizer_load_hf(const char *model_dir, qe_tokenizer **out, qe_error *err);

/* The same from a tokenizer.json already in memory (json_len bytes, need not be NUL-terminated);
 * config_json may be NULL. name is used in error messages. */
qe_status qe_tokenizer_load_hf_json(const char *name, const char *json, size_t json_len,
                                    const char *config_json, qe_tokenizer **out, qe_error *err);

void qe_tokenizer_free(qe_tokenizer *tok); /* NULL-safe */

/* *ids is malloc'd; the caller frees it. add_special adds BOS/EOS as the tokenizer is set to.
 * text must be valid UTF-8 (QE_EINVAL otherwise). */
qe_status qe_tokenizer_encode(const qe_tokenizer *tok, const char *text, size_t text_len, bool add_special,
                              int32_t **ids, int *n_ids, qe_error *err);

/* Text of ids, special tokens included as their text; *text is malloc'd, NUL-terminated. */
qe_status qe_tokenizer_decode(const qe_tokenizer *tok, const int32_t *ids, int n_ids, char **text,
                              qe_error *err);
/* The same, leaving out special added tokens when skip_special (HF's skip_special_tokens). */
qe_status qe_tokenizer_decode_ex(const qe_tokenizer *tok, const int32_t *ids, int n_ids, bool skip_special,
                                 char **text, qe_error *err);

int qe_tokenizer_n_vocab(const qe_tokenizer *tok);
int qe_tokenizer_bos_id(const qe_tokenizer *tok);   /* -1 when none */
int qe_tokenizer_eos_id(const qe_tokenizer *tok);   /* -1 when none */
bool qe_tokenizer_adds_bos(const qe_tokenizer *tok);
/* Looks up the id of an exact token text (e.g. "<|im_end|>"); -1 when absent. */
int qe_tokenizer_token_id(const qe_tokenizer *tok, const char *text);

/* llama.cpp's pre-tokenizer regexes for a tokenizer.ggml.pre name: fills up to max_patterns
 * patterns (applied in order, each Isolated) and returns their count, or -1 for an unknown name. */
int qe_tokenizer_named_regexes(const char *name, const char **patterns, int max_patterns);

#endif
