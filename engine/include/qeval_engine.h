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
 * A qe_model holds one KV cache and runs one call at a time on its own backend (the CPU
 * backend's thread pool, or a GPU); calls that share a token prefix with the previous one reuse its cached keys and
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

/* QE_DEVICE_REF: the plain single-threaded reference backend (tests; slow). */
typedef enum { QE_DEVICE_CPU, QE_DEVICE_CUDA, QE_DEVICE_REF } qe_device_kind;

/* The device qe_model_load should use when the user names none: CUDA when this build has the
 * CUDA backend and the machine a GPU, else the CPU. */
qe_device_kind qe_default_device(void);

/* The GPUs this build and machine have, for the run's host record. */
typedef struct {
    char name[256];            /* e.g. "NVIDIA H200"                    */
    size_t total_memory_bytes;
    int compute_capability;    /* major*10 + minor, e.g. 90             */
    int driver_version;        /* as cudaDriverGetVersion: 12040 = 12.4 */
} qe_gpu_info;

/* Number of usable CUDA devices; 0 without a CUDA build or GPU. */
int qe_gpu_count(void);

qe_status qe_gpu_describe(int index, qe_gpu_info *info, qe_error *err);

typedef struct {
    qe_variant variant;
    qe_device_kind device;
    int device_index;         /* QE_DEVICE_CUDA: the CUDA ordinal                     */
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
    uint64_t decode_read_bytes;    /* weight bytes one decode step reads: every linear, the head
                                    * and the norms (one row of an untied embedding, not counted) */
    const char *source_note;       /* e.g. "fp32 from Q4_1"; "" for full precision */
    const char *notice;            /* one line on what loading left out or assumed (a multimodal
                                      checkpoint's vision tower, a chat format the file does not
                                      state); "" when nothing */
} qe_model_info;

void qe_model_get_info(const qe_model *model, qe_model_info *info);

/* What a model on a GPU holds there, as the backend's one allocator counts it (every device byte
 * but the CUDA context's), and what cudaMemGetInfo says. Peaks are since the load: ask after the
 * work whose peak is wanted. False (and *out zeroed) for a model on the CPU. */
typedef struct {
    uint64_t weights_bytes;          /* linears (packed int8 / nf4 with their constants), embedding, norms */
    uint64_t kv_cache_peak_bytes;
    uint64_t workspace_peak_bytes;
    uint64_t activations_peak_bytes;
    uint64_t peak_bytes;             /* the most held at once, all of the above together */
    uint64_t free_before_bytes;      /* cudaMemGetInfo free before the model's first allocation */
    uint64_t free_now_bytes;         /* cudaMemGetInfo free now */
    uint64_t used_peak_bytes;        /* cudaMemGetInfo total - free, the most seen right after an
                                        allocation: the device's own view, CUDA context included */
    uint64_t total_bytes;            /* cudaMemGetInfo total */
    char name[256];                  /* e.g. "NVIDIA H100 80GB HBM3" */
} qe_device_memory;

bool qe_model_device_memory(const qe_model *model, qe_device_memory *out);

/* Bytes the model's KV caches hold now (every sequence's of batched generation), on any device:
 * keys and values of every layer, float32, a sliding-window layer's bounded by its window (the
 * rule: engine/model_config.h, qe_kv_positions). */
uint64_t qe_model_kv_cache_bytes(const qe_model *model);

/* ---- memory estimate (engine/estimate.c): what a variant needs for a context, from the model's
 * configuration alone (no weights read), by the same functions the loader and the forward pass
 * size their buffers with, so that the predicted weight bytes equal qe_model_info.footprint_bytes
 * on the CPU and the CUDA allocator's weight bytes on a GPU (there norms are in the compute dtype,
 * NF4's code tables sit in constant memory and its per-weight offset in the kernel arguments:
 * qe_cuda_linear_bytes, qe_cuda_norm_bytes in backend_cuda.h). Every buffer the engine holds is
 * counted where it lives: on the CPU all of it is host memory;
 * on a GPU the weights, KV cache, activations and workspace are device memory and the CUDA
 * context is QE_CUDA_CONTEXT_BYTES more (docs/estimate.md says where that figure comes from). */

/* The CUDA context and module images of a process that has created a context (cudaFree(0)): not
 * counted by the backend's allocator, the difference between the card's total and
 * qe_device_memory.free_before_bytes. 512 MiB: the size commonly reported for CUDA 12 contexts
 * on sm_75..sm_90 with lazy module loading (300-600 MiB); a run stores the real one. */
#define QE_CUDA_CONTEXT_BYTES (512ull << 20)

typedef struct {
    qe_variant variant;
    int context;               /* positions per sequence; 0 = the model's max_position_embeddings */
    int batch;                 /* sequences held at once, each with its own KV cache; 0 = 1 */
    qe_device_kind device;     /* QE_DEVICE_CPU or QE_DEVICE_CUDA (adds QE_CUDA_CONTEXT_BYTES)   */
    int n_threads;             /* CPU: threads the backend's workspace is sliced for; 0 = cores  */
    uint64_t memory_bytes;     /* memory to fit in, for the verdict and max_context; 0 = none     */
    int chunk_tokens;          /* tokens a forward pass runs at once; 0 = 256, as scoring runs
                                * (a benchmark's larger batch; models with sliding windows keep 256) */
} qe_estimate_options;

typedef struct {
    const char *architecture;          /* "llama", "qwen2", "gemma3", ... (static)                 */
    int n_layers, n_sliding_layers;    /* layers; those with a sliding attention window            */
    int sliding_window;                /* their window in positions; 0 when none                   */
    int max_position;                  /* max_position_embeddings: the longest context it runs     */
    uint64_t n_params;                 /* parameters, a tied head once (qe_model_info.n_params)    */
    int context, batch;                /* what the figures below are for                           */
    /* weights, as the device's backend holds them: sum = weights_bytes = qe_model_info.footprint_bytes
     * on the CPU, qe_device_memory.weights_bytes on a GPU */
    uint64_t weights_bytes;
    uint64_t linear_bytes;             /* the seven block linears per layer, constants and biases  */
    uint64_t table_bytes;              /* embedding and (untied) head in the compute dtype         */
    uint64_t norm_bytes;               /* norm vectors, float32                                    */
    uint64_t code_table_bytes;         /* nf4: the shared NF4 / dynamic-map code tables            */
    uint64_t rule_of_thumb_bytes;      /* parameters x 4, 2, 1, 0.5 bytes (qe_model_info.estimate_bytes) */
    /* KV cache for context x batch, float32 K and V per layer */
    uint64_t kv_cache_bytes;           /* sliding layers bounded: a ring of min(context, window + 255) */
    uint64_t kv_cache_unbounded_bytes; /* every layer the whole context (a cache without a ring buffer) */
    /* one forward pass's buffers: activations (freed after the pass) and the backend's workspace
     * (kept); scoring runs chunks of up to 256 tokens, a decoding step one token per sequence */
    uint64_t scoring_activation_bytes, scoring_workspace_bytes;
    uint64_t decode_activation_bytes, decode_workspace_bytes;
    uint64_t activation_bytes;         /* the larger of scoring and decoding, workspace included   */
    uint64_t context_overhead_bytes;   /* QE_CUDA_CONTEXT_BYTES on a GPU, else 0                   */
    uint64_t total_bytes;              /* weights + kv_cache + activation + context overhead       */
    /* with memory_bytes */
    bool has_verdict;
    bool fits;                         /* total_bytes <= memory_bytes                              */
    int64_t headroom_bytes;            /* memory_bytes - total_bytes (negative: short by that much) */
    int max_context;                   /* the longest context whose total fits, at most max_position; 0: none */
} qe_memory_estimate;

/* The estimate for the model at path: a Hugging Face directory (its config.json), a config.json
 * file, or a .gguf file (its metadata). With config_json set, that text is the config.json and
 * path only names it in messages. A bad config fails with one message naming the file. */
qe_status qe_estimate_memory(const char *path, const char *config_json, const qe_estimate_options *options,
                             qe_memory_estimate *out, qe_error *err);
/* The same for a loaded model (also one loaded with metadata_only); context 0 = its max_context. */
qe_status qe_model_estimate_memory(const qe_model *model, const qe_estimate_options *options,
                                   qe_memory_estimate *out, qe_error *err);
/* Positions the model's largest KV cache has room for now (0 before its first forward pass):
 * the context a run reached, rounded up as the cache grows. */
int qe_model_cache_capacity(const qe_model *model);

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
     * that is the embedding. qeval keeps the same formats (norm vectors as float32);
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

/* The families qe_model_chat_family names, for messages that list them. */
#define QE_CHAT_FAMILY_NAMES "chatml, llama3, gemma, llama2, mistral"

/* *family = the static spelling of the family called name; QE_EINVAL listing the families when
 * there is none. */
qe_status qe_chat_family_lookup(const char *name, const char **family, qe_error *err);

/* A family's template by name, without a model and without any default system turn (qeval
 * requests --chat-template NAME), applied as qe_model_chat_prompt applies a model's. */
qe_status qe_chat_family_prompt(const char *family, const char *system, const char *user, char **prompt,
                                qe_error *err);

/* Logits [n_tokens, n_vocab] of one forward pass over ids from position 0 (no cache reuse). */
qe_status qe_forward_logits(qe_model *model, const int32_t *ids, int n_tokens, float *logits, qe_error *err);

/* One forward pass for benchmarks (qeval bench times prefill and decode as llama-bench does):
 * ids[n_tokens] at positions pos0.. after the cached positions [0, pos0) (pos0 <= those cached;
 * 0 starts an empty cache), in batches of at most max_batch tokens (0: the engine's default of
 * 256, which also caps a model with sliding-window layers), the logits of the last token only into logits[n_vocab];
 * logits NULL: that row is reduced where it is (its argmax, as greedy generation takes it) and
 * nothing else comes back. */
qe_status qe_forward_step(qe_model *model, const int32_t *ids, int n_tokens, int pos0, int max_batch, float *logits,
                          qe_error *err);

/* Greedy continuation of token ids (KV-cached decoding): *out_ids (malloc'd) receives the
 * generated ids only, at most max_new_tokens, ending early after an EOS id (kept). The prompt
 * must fit the window with room for the new tokens (no truncation at this level). */
typedef struct qe_generate_stats qe_generate_stats;
qe_status qe_generate_ids(qe_model *model, const int32_t *prompt_ids, int n_prompt, int max_new_tokens,
                          int32_t **out_ids, int *n_out, qe_generate_stats *stats, qe_error *err);

/* Batched loglikelihood: one call scores many (context, continuation) requests, such as all
 * choices of many documents. Each distinct context is tokenized once and run once; a one-token
 * continuation is read off its context's last row, a longer one runs after the cached context.
 * Contexts run in token order, so contexts that share a prefix (few-shot examples) reuse the
 * cache. Every number is bit-identical to scoring the request alone. */
typedef struct {
    const char *context;
    const char *continuation;
    bool want_logprobs;        /* also return the log-softmax rows (for KL divergence) */
} qe_score_request;

typedef struct {
    double logprob_sum;        /* sum over continuation tokens of log p(token | prefix)        */
    bool is_greedy;            /* every continuation token was the argmax                      */
    int n_context_tokens;      /* after truncation                                             */
    int n_continuation_tokens;
    bool was_truncated;        /* the context was cut from the left to fit                     */
    int32_t *argmax;           /* [n_continuation_tokens] the top token (first on ties) per position */
    float *target_logprob;     /* [n_continuation_tokens] log p(token) as the log-softmax row holds it */
    /* This request's own work plus an equal share of the work it shares with others (its
     * context's tokenization and forward pass), so the results' times add up to the call's. */
    double elapsed_ms;
    float *logprobs;           /* want_logprobs: [n_continuation_tokens, n_vocab]; else NULL */
} qe_score_result;

/* results[n] receives one result per request, in request order; on error every result is
 * cleared and err names the request. Free each result's arrays with qe_score_result_clear. */
qe_status qe_score_batch(qe_model *model, const qe_score_request *requests, int n, qe_score_result *results,
                         qe_error *err);
void qe_score_result_clear(qe_score_result *result); /* frees the arrays, zeroes the struct */

/* ---- log-probabilities: the one place qeval computes log-softmax and KL (engine/logprob.c).
 * Rows are log-probabilities up to an additive constant (logits, log-softmax rows, choice
 * loglikelihoods). Sums run in double in index order; argmax is the first index on ties. */
/* log(sum_i exp(x[i])) around the maximum; -inf for n = 0 or an all -inf row. */
double qe_log_sum_exp(const double *x, size_t n);
/* The same of a float row (a row of logits: log p(j) = x[j] - result); *argmax (may be NULL)
 * receives the first index of the maximum. */
double qe_log_sum_exp_f32(const float *x, size_t n, int32_t *argmax);
/* KL(ref || var) = sum p_ref (log p_ref - log p_var) in nats, each row normalized first;
 * outcomes with p_ref = 0 contribute nothing. Rounding can leave it a hair below 0. */
double qe_kl_divergence(const double *logp_ref, const double *logp_var, size_t n);
double qe_kl_divergence_f32(const float *logp_ref, const float *logp_var, size_t n);

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

/* One request of qe_generate_until_batch: qe_generate_until's arguments. */
typedef struct {
    const char *context;
    const char *const *stops;
    int n_stops;
    int max_new_tokens;
} qe_generate_request;

/* qe_generate_until for n requests together (GSM8K's and HumanEval's documents), in slots of a
 * KV cache each (the model's own, and caches the model keeps for the others, so a slot resumes
 * its cached prefix as the model's cache does): a free slot takes the next request's prompt,
 * then each step decodes the next token of every busy slot in one pass, reading the weights once
 * for all of them; a slot whose request ends takes the next. As many slots as fit in half the
 * memory free now (each a cache of the longest request), at most n and 256. texts[i]
 * (malloc'd) and stats[i] are what qe_generate_until gives request i alone, token for token; on
 * failure no text is kept. The slots' caches stay until the model is freed. */
qe_status qe_generate_until_batch(qe_model *model, const qe_generate_request *requests, int n, char **texts,
                                  qe_generate_stats *stats, qe_error *err);

/* KV caches the model holds: 1, plus the others of the largest generation batch so far. */
int qe_model_sequence_caches(const qe_model *model);

/* Batched decoding as qe_generate_until_batch runs it, step by step (qeval bench --decode-batch).
 * Sequence i lives in cache i: 0 the model's own, 1.. the generation caches. qe_sequences_reset
 * makes n caches (n <= 256) and empties them; qe_sequence_prefill runs ids[n] at positions 0..
 * of sequence seq; qe_forward_sequences gives sequences 0..n-1 the token ids[i] each at their
 * next position, leaving logits [n, n_vocab] in host memory (NULL: each row reduced where it
 * is, as qe_generate_until_batch takes its argmax). */
qe_status qe_sequences_reset(qe_model *model, int n, qe_error *err);
qe_status qe_sequence_prefill(qe_model *model, int seq, const int32_t *ids, int n, qe_error *err);
qe_status qe_forward_sequences(qe_model *model, const int32_t *ids, int n, float *logits, qe_error *err);

/* A .safetensors file, memory-mapped read-only and checked as the model loader checks its own
 * (qeval verify reads golden logits from one). */
typedef struct qe_safetensors qe_safetensors;

typedef struct {
    const char *dtype;         /* as the file spells it: "F32", "I32", ...        */
    int n_dims;
    int64_t shape[8];
    const void *data;          /* inside the mapping, maybe unaligned; lives until close */
    size_t n_bytes;
} qe_tensor_data;

qe_status qe_safetensors_open(const char *path, qe_safetensors **out, qe_error *err);
void qe_safetensors_close(qe_safetensors *st); /* NULL-safe */
const char *qe_safetensors_path(const qe_safetensors *st);
/* The tensor called name; false when the file has none. */
bool qe_safetensors_get(const qe_safetensors *st, const char *name, qe_tensor_data *out);

#endif
