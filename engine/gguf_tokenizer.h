/* gguf_tokenizer — the tokenizer a GGUF file describes in its tokenizer.ggml.* metadata, built
 * on the common tokenizer core (tokenizer.h).
 *
 * tokenizer.ggml.model "gpt2" -> byte-level BPE: tokens, merges, token_type, and the
 * pre-tokenizer regexes llama.cpp uses for tokenizer.ggml.pre; "llama" -> SentencePiece BPE
 * by score: tokens, scores, token_type, byte fallback, add_space_prefix (default on).
 * bos/eos/unknown/padding ids and add_bos/add_eos come from their keys with llama.cpp's
 * defaults (add_bos on for "llama", off for "gpt2"). Anything missing, out of range or of
 * another model family fails with the file and key named. */
#ifndef QE_GGUF_TOKENIZER_H
#define QE_GGUF_TOKENIZER_H

#include "gguf.h"
#include "tokenizer.h"

qe_status qe_gguf_tokenizer_load(const qe_gguf *gguf, qe_tokenizer **out, qe_error *err);

#endif
