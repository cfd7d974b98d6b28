/* model — the engine's inside view of a loaded model: configuration, mapped weights, the
 * backend that runs it, its KV cache and its tokenizer. qeval_engine.h is the outside view;
 * this header is for engine code only (model.c loads, model_forward.c runs, engine_api.c
 * builds the lm-evaluation-harness operations on top). */
#ifndef QE_MODEL_H
#define QE_MODEL_H

#include "backend.h"
#include "linear.h"
#include "model_config.h"
#include "qeval_engine.h"
#include "threadpool.h"
#include "tokenizer.h"
#include "weight_set.h"

/* One decoder layer. Norm weights are float32 copies [hidden] (or [head_dim] for q/k norms). */
typedef struct {
    const float *attn_norm;       /* input_layernorm                                        */
    const float *ffn_norm;        /* before the MLP: post_attention_layernorm (llama naming),
                                     pre_feedforward_layernorm (gemma)                      */
    const float *post_attn_norm;  /* gemma: on the attention output before the residual; else NULL */
    const float *post_ffn_norm;   /* gemma: on the MLP output before the residual; else NULL  */
    const float *q_norm, *k_norm; /* gemma: per-head RMSNorm of q and k [head_dim]; else NULL */
    qe_linear q, k, v, o;         /* [n_heads*head_dim | n_kv_heads*head_dim, hidden], o [hidden, n_heads*head_dim] */
    qe_linear gate, up, down;     /* [intermediate, hidden] x2, [hidden, intermediate]        */
} qe_layer;

struct qe_model {
    char *path;
    qe_model_config cfg;
    bool is_runnable;             /* weights prepared (not loaded with metadata_only) */
    qe_variant variant;
    qe_dtype compute_dtype;       /* activations are rounded to this between ops */
    int max_context;              /* positions the model will run: min(option, config) */
    qe_weight_set weights;
    const float *embed;           /* [n_vocab, hidden] float32 (view of the mapping or owned) */
    const float *final_norm;      /* [hidden] */
    qe_linear lm_head;            /* [n_vocab, hidden]; borrows embed when tied */
    qe_layer *layers;             /* [n_layers] */
    void **owned;                 /* float buffers the model allocated (norms, upcasts) */
    int n_owned, owned_capacity;
    uint64_t n_params;            /* as transformers' named_parameters() counts them */
    uint64_t resident_bytes;      /* bytes the variant keeps: linears + owned buffers */

    qe_pool *pool;
    qe_backend *backend;
    /* KV cache: per layer [kv_capacity, n_kv_heads, head_dim]; positions [0, n_cached) hold
     * the keys/values of cached_ids. */
    float **k_cache, **v_cache;   /* [n_layers] backend buffers */
    int kv_capacity, n_cached;
    int32_t *cached_ids;          /* [kv_capacity] */

    qe_tokenizer *tokenizer;      /* NULL when the directory has no tokenizer.json */
    const char *source_note;      /* static: "fp32 from Q4_1" for a dequantized GGUF; NULL otherwise */
    qe_model_info info;
};

/* Runs ids[n_tok] at positions pos0.. (needs pos0 <= n_cached and pos0 + n_tok <= max_context),
 * leaving the cache valid for [0, pos0 + n_tok). When logits is not NULL, writes the logits of
 * rows [first_logit_row, n_tok) there: [(n_tok - first_logit_row), n_vocab], host memory. */
qe_status qe_model_forward(qe_model *model, const int32_t *ids, int n_tok, int pos0, int first_logit_row,
                           float *logits, qe_error *err);

/* Positions at the start of ids[n] the cache already holds. */
int qe_model_cached_prefix(const qe_model *model, const int32_t *ids, int n);

#endif
