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
