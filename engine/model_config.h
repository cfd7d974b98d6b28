/* model_config — a decoder-only transformer's shape and numerics, read from a Hugging Face
 * config.json. Both config forms are accepted: legacy (`rope_theta` + `rope_scaling`) and
 * transformers-5 (`rope_parameters`, possibly one entry per layer type).
 *
 * Everything architecture-specific is a field here, decided once at load time, so the
 * forward pass reads flags instead of testing model_type. Per-layer fields (attention
 * window, which rope) let sliding-window models such as Gemma-3 mix layer kinds. */
#ifndef QE_MODEL_CONFIG_H
#define QE_MODEL_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "dtype.h"
#include "qe_error.h"

typedef enum { QE_ARCH_LLAMA, QE_ARCH_MISTRAL, QE_ARCH_QWEN2, QE_ARCH_GEMMA3 } qe_arch;
typedef enum { QE_ACT_SILU, QE_ACT_GELU_TANH } qe_activation;
typedef enum { QE_ROPE_DEFAULT, QE_ROPE_LINEAR, QE_ROPE_LLAMA3 } qe_rope_type;

typedef struct {
    qe_rope_type type;
    double theta;                     /* base of the inverse frequencies             */
    double factor;                    /* linear, llama3: frequency divisor           */
    double low_freq_factor, high_freq_factor; /* llama3                             */
    int original_max_position;        /* llama3: original_max_position_embeddings    */
} qe_rope_config;

#define QE_MAX_ROPES 2
#define QE_MAX_EOS 8

typedef struct {
    int sliding_window;   /* attend to at most this many positions back (incl. self); 0 = all */
    int rope_index;       /* which qe_model_config.ropes entry this layer uses              */
} qe_layer_config;

typedef struct {
    qe_arch arch;
    char model_type[32];              /* as config.json spells it */
    int n_vocab, hidden, n_layers, n_heads, n_kv_heads, head_dim, intermediate;
    int max_context;                  /* max_position_embeddings */
    float rms_norm_eps;
    bool tie_embeddings;              /* lm_head shares embed_tokens.weight */
    bool has_qkv_bias;                /* q/k/v projections carry a bias (qwen2) */
    bool has_qk_norm;                 /* RMSNorm over each head of q and k (gemma3) */
    bool has_sandwich_norms;          /* post-attention and pre/post-feedforward norms (gemma3) */
    float norm_weight_offset;         /* RMSNorm multiplies by (offset + weight): 1 for gemma */
    float embed_scale;                /* embeddings times this: sqrt(hidden) for gemma, else 1 */
    float attn_scale;                 /* scores times this: head_dim^-0.5, gemma query_pre_attn_scalar^-0.5 */
    qe_activation activation;
    int n_ropes;
    qe_rope_config ropes[QE_MAX_ROPES];
    qe_layer_config *layers;          /* [n_layers] */
    int bos_id;                       /* -1 when none */
    int n_eos;
    int eos_ids[QE_MAX_EOS];          /* generation stops on any of these */
    qe_dtype torch_dtype;             /* the dtype the weights were published for */
} qe_model_config;

/* Tokens that run through the decoder stack together: a forward pass over more is cut into
 * chunks of at most this many (model_forward.c). The KV rule below depends on it. */
#define QE_FORWARD_CHUNK_TOKENS 256

/* Whether any layer attends through a sliding window (and so keeps a ring, below). */
static inline bool qe_config_has_sliding_window(const qe_model_config *cfg)
{
    for (int i = 0; i < cfg->n_layers; i++)
        if (cfg->layers[i].sliding_window > 0)
            return true;
    return false;
}

/* A pass's chunk on a GPU, where a model without sliding-window layers takes it (their rings are
 * sized for QE_FORWARD_CHUNK_TOKENS): 256 tokens left the SMs idle (a [128, 896] linear is 8
 * blocks of 64 x 64, a 16-query attention block per head 224 blocks on 132 SMs). */
#define QE_FORWARD_CHUNK_TOKENS_GPU 1024

/* The KV cache rule, written here once: the forward pass sizes its cache with it and the memory
 * planner predicts with it. A layer keeps qe_kv_positions(...) rows of keys and as many of values,
 * a row being n_kv_heads * head_dim float32 (4 bytes each), in every backend, once positions
 * [0, n_positions) have run (n_positions <= max_context):
 *   - the cache grows geometrically: capacity = 256, doubled until >= n_positions, at most
 *     max_context (a full-attention layer holds exactly that);
 *   - a sliding-window layer (window W) holds min(capacity, W + max_chunk - 1) rows, a ring:
 *     position p lives in row p % min(max_context, W + max_chunk - 1). A chunk of c <= max_chunk
 *     tokens at positions p0.. writes its c rows before its attention reads positions
 *     p0 - W + 1 .. p0 + c - 1, W + c - 1 distinct rows, so no row still needed is overwritten.
 *     The same slack lets a pass resume up to max_chunk positions before the furthest position
 *     written (the shared-prefix reuse of scoring), see qe_model_cached_prefix.
 * max_chunk is QE_FORWARD_CHUNK_TOKENS in every model qeval runs. So, per layer,
 * KV bytes = 2 * qe_kv_positions(...) * n_kv_heads * head_dim * 4 (qe_kv_cache_bytes sums them). */
int qe_kv_positions(const qe_layer_config *layer, int n_positions, int max_context, int max_chunk);
/* The geometric capacity above: what a full-attention layer holds after n_positions (0 for none). */
int qe_kv_capacity(int n_positions, int max_context);
/* The rows a layer's ring cycles through: p lives in row p % qe_kv_ring(...) (max_context for a
 * full-attention layer, whose positions never wrap). */
int qe_kv_ring(const qe_layer_config *layer, int max_context, int max_chunk);
/* KV bytes of all layers of cfg (K and V), by qe_kv_positions. */
uint64_t qe_kv_cache_bytes(const qe_model_config *cfg, int n_positions, int max_context, int max_chunk);

/* Sizes whose products the engine forms in int and whose layer list it allocates, checked in
 * 64 bits (both config.json and GGUF metadata go through it); path names the file. */
qe_status qe_model_config_check_sizes(const char *path, const qe_model_config *cfg, qe_error *err);

/* Reads dir/config.json. */
qe_status qe_model_config_load(const char *dir, qe_model_config *cfg, qe_error *err);
/* Parses config.json text; path names it in errors. */
qe_status qe_model_config_parse(const char *path, const char *json, qe_model_config *cfg, qe_error *err);
void qe_model_config_free(qe_model_config *cfg); /* frees layers; NULL-safe */

/* Inverse frequencies [head_dim/2] of one rope after its scaling, computed in float32 as
 * transformers does, then rounded to the checkpoint's dtype (stored_dtype, see the .c). */
void qe_rope_inv_freq(const qe_rope_config *rope, int head_dim, qe_dtype stored_dtype, float *inv_freq);

const char *qe_arch_name(qe_arch arch);

#endif
