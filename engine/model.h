/* model — the engine's inside view of a loaded model: configuration, mapped weights, the
 * backend that runs it, its KV cache and its tokenizer. qeval_engine.h is the outside view;
 * this header is for engine code only (model.c loads, model_forward.c runs, engine_api.c
 * builds the lm-evaluation-harness operations on top). */
#ifndef QE_MODEL_H
#define QE_MODEL_H

#include "backend.h"
#include "model_config.h"
#include "qeval_engine.h"
#include "tokenizer.h"
#include "weight_set.h"

/* One decoder layer. Norm weights are backend buffers [hidden] (or [head_dim] for q/k norms)
 * holding values rounded to the compute dtype; linears are the backend's prepared handles. */
typedef struct {
    float *attn_norm;             /* input_layernorm                                        */
    float *ffn_norm;        /* before the MLP: post_attention_layernorm (llama naming),
                                     pre_feedforward_layernorm (gemma)                      */
    float *post_attn_norm;        /* gemma: on the attention output before the residual; else NULL */
    float *post_ffn_norm;         /* gemma: on the MLP output before the residual; else NULL  */
    float *q_norm, *k_norm;       /* gemma: per-head RMSNorm of q and k [head_dim]; else NULL */
    qe_backend_linear *q, *k, *v, *o; /* [n_heads*head_dim | n_kv_heads*head_dim, hidden], o [hidden, n_heads*head_dim] */
    qe_backend_linear *gate, *up, *down; /* [intermediate, hidden] x2, [hidden, intermediate]  */
} qe_layer;

/* One tensor of a decoder layer, as load_layer loads it and the memory estimate (estimate.c)
 * counts it: the one list of what a layer holds. */
typedef enum { QE_PART_LINEAR, QE_PART_NORM } qe_layer_part_kind;
typedef struct {
    const char *name;             /* after "model.layers.N.": "self_attn.q_proj" (a linear, ".weight" and
                                     ".bias" added), "input_layernorm.weight" (a norm)             */
    qe_layer_part_kind kind;
    int rows, cols;               /* linear [rows, cols]; norm [rows], cols 0                        */
    bool has_bias;                /* linear: a bias [rows] too                                       */
    size_t offset;                /* where its handle goes in qe_layer                               */
} qe_layer_part;

#define QE_MAX_LAYER_PARTS 16

/* The parts of every decoder layer of c, in loading order; returns how many. */
int qe_layer_parts(const qe_model_config *c, qe_layer_part parts[QE_MAX_LAYER_PARTS]);

/* Bytes of a norm vector of n values as the model keeps it: float32 values rounded to the
 * compute dtype. */
static inline uint64_t qe_norm_bytes(int n) { return (uint64_t)n * sizeof(float); }

/* A forward pass's activations on the model's backend, sized for chunks of `tokens` tokens
 * (scratch_sizes in model_forward.c); kept between passes and grown when a pass needs more, so
 * that a decode step does not allocate (on a GPU each release waits for the device: ~0.8 ms
 * of a Qwen2.5-0.5B-shaped decode step on an H100). */
typedef struct {
    int tokens;                   /* chunk the buffers hold; 0: none allocated */
    float *x;                     /* [c, hidden]  residual stream      */
    float *h;                     /* [c, hidden]  normed input         */
    float *q;                     /* [c, n_heads*head_dim]             */
    float *k, *v;                 /* [c, n_kv_heads*head_dim]          */
    float *att;                   /* [c, n_heads*head_dim]             */
    float *tmp;                   /* [c, hidden]  block output         */
    float *gate, *up;             /* [c, intermediate]                 */
    float *logits;                /* [LOGIT_ROWS, n_vocab]             */
    float *cos_table[QE_MAX_ROPES], *sin_table[QE_MAX_ROPES]; /* [c, head_dim/2] */
    float *host_table;            /* [c, head_dim/2] host memory, where tables are computed */
    float *seg_rows;              /* [c] int32 values: a packed pass's seg_row (backend.h), a
                                     decode step's positions (pos_buf)                         */
    int32_t *host_seg_rows;       /* [c] host memory, where they are computed                */
    qe_attention_args *host_attention_args; /* [c] host memory: a sequences pass's, one a token */
} qe_forward_scratch;

/* One sequence's KV cache (the rule: qe_kv_positions in model_config.h): per layer rows of
 * [n_kv_heads, head_dim], kv_capacity of them for a full-attention layer, a ring of at most
 * qe_kv_ring rows for a sliding-window one; position p lives in row p % qe_kv_ring. Positions
 * [0, n_cached) hold the keys/values of cached_ids, all of them in full-attention layers; a ring
 * of R rows still holds positions [kv_written_end - R, n_cached) (rows past them were overwritten). */
typedef struct {
    float **k_cache, **v_cache;   /* [n_layers] backend buffers */
    int kv_capacity, n_cached;
    int kv_written_end;           /* 1 + the furthest position written since the last pass from position 0 */
    int32_t *cached_ids;          /* [kv_capacity] */
} qe_kv_cache;

struct qe_model {
    char *path;
    qe_model_config cfg;
    bool is_runnable;             /* weights prepared (not loaded with metadata_only) */
    qe_variant variant;
    qe_dtype compute_dtype;       /* activations are rounded to this between ops */
    int max_context;              /* positions the model will run: min(option, config) */
    qe_weight_set weights;
    qe_backend *backend;          /* owns every buffer and prepared linear below */
    qe_backend_linear *embed;     /* [n_vocab, hidden] in the compute dtype's format (F32, BF16, F16) */
    float *final_norm;            /* [hidden] */
    qe_backend_linear *lm_head;   /* [n_vocab, hidden]; the same handle as embed when tied */
    qe_layer *layers;             /* [n_layers] */
    uint64_t n_params;            /* as transformers' named_parameters() counts them */
    uint64_t resident_bytes;      /* bytes the variant keeps: prepared linears + norm vectors */
    int max_batch;                /* tokens per chunk of a forward pass; 0: chunk_tokens (256) */
    int pass_tokens;              /* chunk asked of a pass when max_batch is 0: 0 (chunk_tokens) on the CPU,
                                     QE_FORWARD_CHUNK_TOKENS_GPU on a GPU */

    qe_kv_cache kv;               /* the cache every pass runs on */
    qe_kv_cache *gen_slots;       /* [n_gen_slots]: the other sequences of batched generation, kept between
                                     batches (each resumes its own cached prefix), or NULL */
    int n_gen_slots;
    int chunk_tokens;             /* max tokens per chunk of a pass: QE_FORWARD_CHUNK_TOKENS; the rings are sized
                                     by it, so tests change it only before the first pass */
    qe_forward_scratch scratch;

    qe_tokenizer *tokenizer;      /* NULL when the directory has no tokenizer.json */
    const char *source_note;      /* static: "fp32 from Q4_1" for a dequantized GGUF; NULL otherwise */
    char *chat_template;          /* Jinja text (GGUF tokenizer.chat_template, tokenizer_config.json); NULL when none */
    char notice[384];             /* qe_model_info.notice */
    qe_model_info info;
};

/* Releases a model's forward scratch (qe_model_free). */
void qe_forward_scratch_free(qe_backend *be, qe_forward_scratch *s);

/* Runs ids[n_tok] at positions pos0.. (needs pos0 <= n_cached and pos0 + n_tok <= max_context),
 * leaving the cache valid for [0, pos0 + n_tok). For rows [first_logit_row, n_tok), i.e.
 * n_rows = n_tok - first_logit_row of them (none when first_logit_row >= n_tok):
 *   logits (may be NULL): their logits [n_rows, n_vocab], host memory;
 *   stats (may be NULL): their qe_row_stats [n_rows], host memory, with target_logit =
 *     row[targets[i]] for row first_logit_row + i (targets [n_rows], host, may be NULL).
 * Only what is asked for leaves the device. */
qe_status qe_model_forward(qe_model *model, const int32_t *ids, int n_tok, int pos0, int first_logit_row,
                           float *logits, const int32_t *targets, qe_row_stats *stats, qe_error *err);

/* Several continuations of one cached prefix in one pass: segment g is ids[seg_start[g] ..
 * seg_start[g + 1]) (seg_start [n_segs + 1], from 0 to n_tok, each segment at least one token),
 * at positions shared_len.. and attending to positions [0, shared_len), which the cache must
 * hold (shared_len <= n_cached), and to its own earlier tokens. Its rows go to the cache after
 * the prefix (rows shared_len + i), which keeps only the prefix afterwards (n_cached =
 * shared_len). Leaves each segment's last row's logits [n_segs, n_vocab] (may be NULL) and
 * qe_row_stats [n_segs] (may be NULL; no targets) in host memory: the bits that segment gets
 * alone after the prefix (qe_model_forward). Models with sliding-window layers: EUNSUPPORTED. */
qe_status qe_model_forward_packed(qe_model *model, const int32_t *ids, const int *seg_start, int n_segs,
                                  int shared_len, float *logits, qe_row_stats *stats, qe_error *err);

/* One decode step of n sequences in one pass (batched generation): token ids[b] at the next
 * position of caches[b] (n distinct caches, each holding its sequence's earlier positions,
 * n <= chunk_tokens), appended to it; leaves the logits [n, n_vocab] and/or their row stats [n]
 * in host memory (either may be NULL). Each row has the bits qe_model_forward gives that token
 * alone on its own cache. */
qe_status qe_model_forward_sequences(qe_model *model, qe_kv_cache *const *caches, const int32_t *ids, int n,
                                     float *logits, qe_row_stats *stats, qe_error *err);

/* Sequence i's KV cache, i < qe_model_sequence_caches: the model's own for 0, a generation
 * slot after it. */
static inline qe_kv_cache *qe_model_cache(const qe_model *m, int i)
{
    return i == 0 ? (qe_kv_cache *)&m->kv : &m->gen_slots[i - 1];
}

/* Memory free now where the model runs: the GPU's (cudaMemGetInfo), else what the process may
 * still take on the host (host_memory.h: MemAvailable, capped by its cgroups' limits). */
uint64_t qe_model_free_memory_bytes(const qe_model *model);

/* A cache with no positions yet (its buffers come with the first pass), and its release. */
qe_status qe_kv_cache_init(qe_kv_cache *kv, int n_layers, qe_error *err);
void qe_kv_cache_free(qe_backend *be, int n_layers, qe_kv_cache *kv); /* leaves *kv zeroed */

/* What a forward pass allocates, for the memory estimate (estimate.c); model_forward.c
 * allocates by the same functions. A pass over n tokens runs in chunks of
 * qe_forward_chunk_tokens(...) tokens: chunk_tokens, or a benchmark's requested batch (> 0)
 * except on a model with sliding-window layers, whose rings are sized for chunk_tokens. Each
 * chunk's backend buffers (residual, q/k/v, MLP, a block of logit rows, rope tables) take
 * qe_forward_activation_bytes, plus a host-side rope table, seg rows and attention args of
 * qe_forward_host_table_bytes; the backend's workspace is reserved for the chunk, the positions
 * and qe_forward_max_n_in inputs. A KV cache position of one layer holds qe_kv_row_floats
 * float32 values for K and as many for V. */
int qe_forward_chunk_tokens(const qe_model_config *cfg, int chunk_tokens, int requested, int n_tokens);
/* The chunk a pass asks for on a device when no batch is requested: QE_FORWARD_CHUNK_TOKENS_GPU
 * on a GPU, 0 (chunk_tokens) elsewhere. */
int qe_forward_device_chunk(qe_device_kind device);
int qe_forward_max_n_in(const qe_model_config *cfg);
uint64_t qe_forward_activation_bytes(const qe_model_config *cfg, int chunk_tokens);
uint64_t qe_forward_host_table_bytes(const qe_model_config *cfg, int chunk_tokens);
size_t qe_kv_row_floats(const qe_model_config *cfg);

/* Positions at the start of ids[n] the cache already holds and a pass can resume after: the
 * longest common prefix, or 0 where the sliding-window rings no longer hold the keys that
 * resuming there needs (more than chunk_tokens positions before the furthest one written). At
 * most n, so pass n = the first row whose logits are wanted. */
int qe_model_cached_prefix(const qe_model *model, const int32_t *ids, int n);

#endif
