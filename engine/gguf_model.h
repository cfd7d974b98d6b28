/* gguf_model — a llama.cpp GGUF model as the engine's loader sees a Hugging Face one: the
 * configuration from <arch>.* metadata and every weight, dequantized to float32 on demand, under
 * its Hugging Face name, so model.c builds the same qe_model from either.
 *
 * Architectures: "llama" (SmolLM2, TinyLlama, Llama-2/3 without rope_freqs), "qwen2"
 * (q/k/v biases) and "gemma3" (its text model: sandwich and q/k norms, sliding-window layers
 * with their own rope, the settings llama.cpp fixes for gemma3 rather than stores).
 * llama.cpp's converter permutes the rows of attn_q/attn_k of llama models within each head
 * (interleaved rope pairs); they are permuted back to transformers' rotate_half layout here.
 * It stores gemma's RMSNorm weights as (1 + weight); the 1 is taken off again, so every
 * tensor means what its Hugging Face namesake means. Generation also stops on the vocabulary's
 * end-of-turn token (tokenizer.ggml.eot_token_id, else "<end_of_turn>"). A quantized model's float32 variant is its dequantized weights:
 * source_note then says so ("fp32 from Q4_1", the type of most of its matrices). */
#ifndef QE_GGUF_MODEL_H
#define QE_GGUF_MODEL_H

#include "gguf.h"
#include "model_config.h"
#include "tokenizer.h"
#include "weight_set.h"

/* Fills cfg (caller frees with qe_model_config_free) from the metadata of g. */
qe_status qe_gguf_model_config(const qe_gguf *g, qe_model_config *cfg, qe_error *err);

/* Lists every tensor of g in set (emptied first) under Hugging Face names, checking the shapes
 * against cfg; *source_note is a static string ("" unless most matrices are quantized). With
 * with_data the set takes g (closing it with itself) and dequantizes a tensor to float32 each
 * time qe_weight_set_read_f32 asks for it; without, it holds names and shapes only and g stays
 * the caller's (metadata-only loads). */
qe_status qe_gguf_model_weights(qe_gguf *g, const qe_model_config *cfg, bool with_data, qe_weight_set *set,
                                const char **source_note, qe_error *err);

/* Opens path and fills everything the loader needs; *tokenizer is NULL when the file has no
 * tokenizer.ggml.model, *chat_template (malloc'd) NULL when it has no tokenizer.chat_template,
 * except that a gemma3 file without one whose vocabulary has <start_of_turn> and <end_of_turn>
 * gets the Gemma turn format, and *notice (static, "" otherwise) says so. */
qe_status qe_gguf_model_open(const char *path, bool with_data, qe_model_config *cfg, qe_weight_set *set,
                             qe_tokenizer **tokenizer, char **chat_template, const char **source_note,
                             const char **notice, qe_error *err);

/* Rows of a llama.cpp-permuted q or k weight [n_heads * head_dim, n_cols] back to the HF
 * order, in place: HF row h*head_dim + j*head_dim/2 + i is GGUF row h*head_dim + 2*i + j. */
qe_status qe_gguf_unpermute_rows(float *w, int n_heads, int head_dim, int n_cols, qe_error *err);

#endif
