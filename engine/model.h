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
    int max_batch;                /* tokens per chunk of a forward pass; 0: CHUNK_TOKENS (256) */

    /* KV cache: per layer [kv_capacity, n_kv_heads, head_dim]; positions [0, n_cached) hold
     * the keys/values of cached_ids. */
    float **k_cache, **v_cache;   /* [n_layers] backend buffers */
    int kv_capacity, n_cached;
    int32_t *cached_ids;          /* [kv_capacity] */

    qe_tokenizer *tokenizer;      /* NULL when the directory has no tokenizer.json */
    const char *source_note;      /* static: "fp32 from Q4_1" for a dequantized GGUF; NULL otherwise */
    char *chat_template;          /* Jinja text (GGUF tokenizer.chat_template, tokenizer_config.json); NULL when none */
    qe_model_info info;
};

/* Runs ids[n_tok] at positions pos0.. (needs pos0 <= n_cached and pos0 + n_tok <= max_context),
 * leaving the cache valid for [0, pos0 + n_tok). For rows [first_logit_row, n_tok), i.e.
 * n_rows = n_tok - first_logit_row of them (none when first_logit_row >= n_tok):
 *   logits (may be NULL): their logits [n_rows, n_vocab], host memory;
 *   stats (may be NULL): their qe_row_stats [n_rows], host memory, with target_logit =
 *     row[targets[i]] for row first_logit_row + i (targets [n_rows], host, may be NULL).
 * Only what is asked for leaves the device. */
qe_status qe_model_forward(qe_model *model, const int32_t *ids, int n_tok, int pos0, int first_logit_row,
                           float *logits, const int32_t *targets, qe_row_stats *stats, qe_error *err);

/* Positions at the start of ids[n] the cache already holds. */
int qe_model_cached_prefix(const qe_model *model, const int32_t *ids, int n);

#endif
