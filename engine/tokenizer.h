/* tokenizer — text <-> token ids for the two families of tokenizer small causal LMs ship:
 * byte-level BPE (GPT-2 / Qwen2 / Llama-3: regex pre-tokenizer, byte-to-unicode map, merges
 * by rank) and SentencePiece-style BPE (Llama-2 / TinyStories: "▁" for spaces, merges by rank
 * or by score, byte fallback <0xNN>). Added and special tokens are matched before BPE.
 *
 * One in-memory form (qe_tokenizer_spec) is built by each front-end: tokenizer.json here,
 * GGUF metadata in gguf_tokenizer.c. Encoding must equal Hugging Face `tokenizers` exactly. */
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

/* Everything a front-end hands over; the tokenizer copies what it keeps. */
typedef struct {
    qe_tokenizer_kind kind;
    int n_vocab;
    const char *const *tokens;      /* [n_vocab] token text (byte-level: in the unicode-mapped alphabet) */
    const float *scores;            /* [n_vocab] SPM scores, or NULL (then merges rank pairs)            */
    const int32_t *token_types;     /* [n_vocab] qe_token_type, or NULL (all normal)                    */
    int n_merges;
    const char *const *merges;      /* [n_merges] "left right", in rank order; may be 0 for SPM+scores    */
    const char *pre_tokenizer;      /* byte-level: a regex name ("gpt2", "llama3", "qwen2") or NULL     */
    const char *pre_tokenizer_regex;/* byte-level: explicit PCRE2 pattern(s), "\n"-separated, or NULL    */
    bool spm_add_dummy_prefix;      /* SPM: prepend "▁" (Prepend normalizer / add_dummy_prefix)          */
    bool byte_fallback;             /* SPM: unknown bytes become <0xNN>                                   */
    bool nfc_normalize;             /* apply Unicode NFC before pre-tokenizing                            */
    int bos_id, eos_id, unk_id, pad_id;  /* -1 when absent                                             */
    bool add_bos, add_eos;          /* what add_special=true adds                                         */
} qe_tokenizer_spec;

typedef struct qe_tokenizer qe_tokenizer;

qe_status qe_tokenizer_build(const qe_tokenizer_spec *spec, qe_tokenizer **out, qe_error *err);

/* Loads dir/tokenizer.json (+ dir/tokenizer_config.json for BOS/EOS and add_bos when present). */
qe_status qe_tokenizer_load_hf(const char *model_dir, qe_tokenizer **out, qe_error *err);

void qe_tokenizer_free(qe_tokenizer *tok); /* NULL-safe */

/* *ids is malloc'd; the caller frees it. add_special adds BOS/EOS as the tokenizer is set to. */
qe_status qe_tokenizer_encode(const qe_tokenizer *tok, const char *text, size_t text_len, bool add_special,
                              int32_t **ids, int *n_ids, qe_error *err);

/* Text of ids, special tokens included as their text; *text is malloc'd, NUL-terminated. */
qe_status qe_tokenizer_decode(const qe_tokenizer *tok, const int32_t *ids, int n_ids, char **text,
                              qe_error *err);

int qe_tokenizer_n_vocab(const qe_tokenizer *tok);
int qe_tokenizer_bos_id(const qe_tokenizer *tok);   /* -1 when none */
int qe_tokenizer_eos_id(const qe_tokenizer *tok);   /* -1 when none */
bool qe_tokenizer_adds_bos(const qe_tokenizer *tok);
/* Looks up the id of an exact token text (e.g. "<|im_end|>"); -1 when absent. */
int qe_tokenizer_token_id(const qe_tokenizer *tok, const char *text);

#endif
