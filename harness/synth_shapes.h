/* synth_shapes — the exact shapes of real models, for `qeval synth --like NAME`: every number a
 * random-weight copy needs to have the same tensors, parameter count, attention layout and
 * config.json as the released checkpoint. The values are those of each model's official
 * config.json on the Hugging Face Hub (the repository is named in each entry); the table in
 * synth_shapes.c is the one place they live. */
#ifndef QH_SYNTH_SHAPES_H
#define QH_SYNTH_SHAPES_H

#include <stdbool.h>
#include <stddef.h>

#include "qe_error.h"

typedef struct {
    const char *name;              /* the short name --like takes: "llama-3.1-8b"           */
    const char *source;            /* the Hub repository whose config.json these are        */
    const char *model_type;        /* config.json model_type: llama, qwen2, mistral, gemma3_text */
    const char *architecture;      /* config.json architectures[0]                          */
    int hidden, intermediate, n_layers, n_heads, n_kv_heads, head_dim, n_vocab;
    int max_position;              /* max_position_embeddings                               */
    double rope_theta;             /* of the full-attention layers                          */
    double rms_norm_eps;
    double rope_llama3_factor;     /* rope_scaling rope_type llama3; 0 = no scaling          */
    int rope_original_max_position;/* its original_max_position_embeddings                  */
    double rope_linear_factor;     /* gemma3: linear scaling of the full-attention layers; 0 = none */
    double rope_local_theta;       /* gemma3: rope_local_base_freq of the sliding layers    */
    int sliding_window;            /* tokens; 0 = every layer attends to the whole context  */
    int sliding_window_pattern;    /* gemma3: every pattern-th layer is full attention      */
    int query_pre_attn_scalar;     /* gemma3; 0 = head_dim                                  */
    bool has_qkv_bias;             /* qwen2: q/k/v projections carry biases                 */
    bool tie_embeddings;           /* lm_head is the embedding (no lm_head.weight)          */
    bool adds_bos;                 /* the real tokenizer prepends BOS                       */
    int bos_id, eos_id, pad_id;    /* -1 when the config names none                         */
} qh_synth_shape;

/* The i-th shape of the table (0-based); NULL past its end. */
const qh_synth_shape *qh_synth_shape_at(int i);

/* The names of the table's shapes, ", "-separated, into buf (cut to fit). */
void qh_synth_shape_names(char *buf, size_t buf_bytes);

/* The shape called name; QE_EINVAL listing the names when there is none. */
qe_status qh_synth_shape_find(const char *name, const qh_synth_shape **out, qe_error *err);

#endif
