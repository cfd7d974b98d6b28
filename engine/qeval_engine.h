/* qeval_engine — the one C API the harness uses to run a model. The engine knows nothing of
 * tasks: it loads a causal LM in one numeric variant on one device, turns text into tokens and
 * back, scores continuations and generates greedily, and reports token counts and timings.
 *
 * Definitions follow lm-evaluation-harness: loglikelihood(context, continuation) tokenizes
 * context+continuation as whole strings (the continuation's tokens are those of the whole
 * minus those of the context, with trailing whitespace of the context moved to the
 * continuation), scores the continuation tokens given everything before them, and says
 * whether greedy decoding would have produced exactly those tokens. A sequence longer than the
 * model's window is cut from the left, keeping the continuation whole.
 *
 * A qe_model holds one KV cache and runs one call at a time (it uses its own thread pool
 * inside); calls that share a token prefix with the previous one reuse its cached keys and
 * values, with results identical to a fresh run. */
#ifndef QEVAL_ENGINE_H
#define QEVAL_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qe_error.h"

typedef enum { QE_VARIANT_FP32, QE_VARIANT_BF16, QE_VARIANT_INT8, QE_VARIANT_NF4 } qe_variant_kind;

typedef struct {
    qe_variant_kind kind;
    int nf4_block_size;       /* weights per absmax block; bitsandbytes default 64          */
    bool nf4_double_quant;    /* quantize the absmax values too (bnb_4bit_use_double_quant) */
    float int8_threshold;     /* LLM.int8() outlier threshold; bitsandbytes default 6.0     */
} qe_variant;

/* Parses "fp32", "bf16", "int8", "nf4", "nf4-nodq", and "nf4-bsN" / "nf4-nodq-bsN" for another
 * NF4 block size N (32, 64, ..., 4096); an unknown name fails with the list. */
qe_status qe_variant_parse(const char *name, qe_variant *out, qe_error *err);
const char *qe_variant_name(const qe_variant *variant); /* inverse of parse */

typedef enum { QE_DEVICE_CPU, QE_DEVICE_CUDA } qe_device_kind;

/* The device qe_model_load should use when the user names none: CUDA once its backend exists
 * and this build and machine have a GPU; until then always the CPU. */
qe_device_kind qe_default_device(void);

typedef struct {
    qe_variant variant;
    qe_device_kind device;
    int n_threads;            /* CPU threads; 0 = the machine's cores */
    int max_context;          /* 0 = the model's max_position_embeddings */
    bool metadata_only;       /* config, tensor list and tokenizer only: no weights prepared,
                                 nothing can run (inspect, tokenize) */
} qe_load_options;

typedef struct qe_model qe_model;

/* path: a Hugging Face model directory (config.json + safetensors) or a .gguf file. */
qe_status qe_model_load(const char *path, const qe_load_options *options, qe_model **out, qe_error *err);
void qe_model_free(qe_model *model); /* NULL-safe */

typedef struct {
    const char *architecture;      /* "llama", "qwen2", ...                      */
    int n_vocab, n_layers, hidden, n_heads, n_kv_heads, head_dim, max_context;
    uint64_t n_params;
    int bos_id, eos_id;            /* -1 when the model has none                 */
    bool add_bos;                  /* tokenizer prepends BOS to every sequence   */
    uint64_t footprint_bytes;      /* every byte the variant keeps resident      */
    uint64_t hf_footprint_bytes;   /* transformers' get_memory_footprint()       */
    uint64_t estimate_bytes;       /* parameters x bytes per parameter           */
    const char *source_note;       /* e.g. "fp32 from Q4_1"; "" for full precision */
} qe_model_info;

void qe_model_get_info(const qe_model *model, qe_model_info *info);

/* The tensors of the model's files, as stored (what transformers' named_parameters() lists,
 * plus any tied copy the file holds). Strings live as long as the model. */
typedef struct {
    const char *name;
    const char *dtype;             /* safetensors spelling: "F32", "BF16", ... */
    int n_dims;
    int64_t shape[8];
    uint64_t n_elements, n_bytes;
    /* How the variant stores it (as transformers + bitsandbytes hold it): "F32", "BF16", "F16",
     * "INT8" (q + fp32 row scales), "NF4" (packed codes + absmax state), or "tied" for a head
     * that is the embedding. qeval itself keeps the embedding as float32 holding those values;
     * qe_model_info.footprint_bytes counts what qeval keeps. */
    const char *stored_dtype;
    uint64_t stored_bytes;
} qe_tensor_info;

int qe_model_n_tensors(const qe_model *model);
qe_status qe_model_tensor_info(const qe_model *model, int index, qe_tensor_info *info, qe_error *err);

/* Tokens of text, without BOS/EOS (add_special=false) or as the model's tokenizer would add
 * them (add_special=true). *ids is malloc'd; the caller frees it. */
qe_status qe_tokenize(const qe_model *model, const char *text, bool add_special, int32_t **ids,
                      int *n_ids, qe_error *err);
/* Text of ids; *text is malloc'd. Special tokens are rendered as their text. */
qe_status qe_detokenize(const qe_model *model, const int32_t *ids, int n_ids, char **text, qe_error *err);

/* A tokenizer without a model (qeval tokenize), from what llama.cpp's tokenizer tools and
 * transformers' AutoTokenizer accept: a directory holding tokenizer.json (+ tokenizer_config.json
 * for BOS/EOS and add_bos), a tokenizer.json file (its directory's tokenizer_config.json is read
 * when there), or a GGUF file whose tokenizer.ggml.* keys describe one, whatever its
 * general.architecture (llama.cpp's vocab-only ggml-vocab-*.gguf, or a whole model). No config
 * or weights are read. It gives the same ids as the model loaded from the same path.
 * Encode/decode follow qe_tokenize/qe_detokenize; decode with skip_special leaves special
 * tokens out (HF's skip_special_tokens). */
typedef struct qe_text_tokenizer qe_text_tokenizer;
qe_status qe_text_tokenizer_open(const char *path, qe_text_tokenizer **out, qe_error *err);
void qe_text_tokenizer_free(qe_text_tokenizer *tokenizer); /* NULL-safe */
qe_status qe_text_tokenizer_encode(const qe_text_tokenizer *tokenizer, const char *text, bool add_special,
                                   int32_t **ids, int *n_ids, qe_error *err);
qe_status qe_text_tokenizer_decode(const qe_text_tokenizer *tokenizer, const int32_t *ids, int n_ids,
                                   bool skip_special, char **text, qe_error *err);

/* The model's chat template (GGUF tokenizer.chat_template, or chat_template in the directory's
 * tokenizer_config.json) applied to [system (may be NULL), user] with the assistant turn
 * opened, without BOS (see chat_template.h); *prompt is malloc'd. QE_EUNSUPPORTED when the
 * model has no template or one of an unknown family. */
qe_status qe_model_chat_prompt(const qe_model *model, const char *system, const char *user, char **prompt,
                               qe_error *err);
/* The family of that template, as chat_template.h names it ("chatml", "llama3", "gemma",
 * "llama2", "mistral"); the same QE_EUNSUPPORTED as qe_model_chat_prompt when there is none. */
qe_status qe_model_chat_family(const qe_model *model, const char **family, qe_error *err);

/* Logits [n_tokens, n_vocab] of one forward pass over ids from position 0 (no cache reuse). */
qe_status qe_forward_logits(qe_model *model, const int32_t *ids, int n_tokens, float *logits, qe_error *err);

/* Greedy continuation of token ids (KV-cached decoding): *out_ids (malloc'd) receives the
 * generated ids only, at most max_new_tokens, ending early after an EOS id (kept). The prompt
 * must fit the window with room for the new tokens (no truncation at this level). */
typedef struct qe_generate_stats qe_generate_stats;
qe_status qe_generate_ids(qe_model *model, const int32_t *prompt_ids, int n_prompt, int max_new_tokens,
                          int32_t **out_ids, int *n_out, qe_generate_stats *stats, qe_error *err);

typedef struct {
    double logprob_sum;        /* sum over continuation tokens of log p(token | prefix) */
    bool is_greedy;            /* every continuation token was the argmax            */
    int n_context_tokens;      /* after truncation                                   */
    int n_continuation_tokens;
    bool was_truncated;        /* the context was cut from the left to fit           */
    double elapsed_ms;
    /* When keep_logprobs was set: log-softmax rows [n_continuation_tokens, n_vocab] at the
     * positions that predict each continuation token (malloc'd; caller frees). Used for
     * KL divergence between variants. */
    float *logprobs;
} qe_loglik_result;

qe_status qe_loglikelihood(qe_model *model, const char *context, const char *continuation,
                           bool keep_logprobs, qe_loglik_result *result, qe_error *err);

struct qe_generate_stats {
    int n_prompt_tokens, n_generated_tokens;
    bool was_truncated;
    bool hit_stop;             /* ended on a stop string (removed from the text) */
    bool hit_eos;
    double prefill_ms, decode_ms;
};

/* Greedy decoding from context until one of the stop strings appears in the generated text,
 * EOS, or max_new_tokens (at most half the window when it would not fit, the context then cut
 * from the left). *text (malloc'd) holds the generated text up to, not including, the first
 * stop string. */
qe_status qe_generate_until(qe_model *model, const char *context, const char *const *stops,
                            int n_stops, int max_new_tokens, char **text, qe_generate_stats *stats,
                            qe_error *err);

#endif
