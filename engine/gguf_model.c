#include "gguf_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml_dequant.h"
#include "gguf_tokenizer.h"

/* An integer <arch>.<suffix>; fallback < 0 makes the key required. */
static qe_status arch_int(const qe_gguf *g, const char *arch, const char *suffix, int64_t fallback, int *out,
                          qe_error *err)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int64_t v = fallback;
    if ((qe_gguf_find_kv(g, key) || fallback < 0) && qe_gguf_get_int(g, key, &v, err) != QE_OK)
        return err->code;
    if (v <= 0 || v > (1 << 30))
        return qe_fail(err, QE_EFORMAT, "%s: %s = %lld is not a positive size", g->path, key, (long long)v);
    *out = (int)v;
    return QE_OK;
}

static qe_status arch_float(const qe_gguf *g, const char *arch, const char *suffix, double fallback, double *out,
                            qe_error *err)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    *out = fallback;
    return qe_gguf_find_kv(g, key) ? qe_gguf_get_float(g, key, out, err) : QE_OK;
}

/* The id of the vocabulary token spelled text, -1 when there is none (or no vocabulary). */
static int find_token(const qe_gguf *g, const char *text)
{
    const qe_gguf_kv *kv = qe_gguf_find_kv(g, "tokenizer.ggml.tokens");
    if (!kv || kv->value.type != QE_GGUF_ARRAY || kv->value.elem_type != QE_GGUF_STRING ||
        kv->value.n_items > INT32_MAX)
        return -1;
    for (uint64_t i = 0; i < kv->value.n_items; i++)
        if (!strcmp(kv->value.str_items[i], text))
            return (int)i;
    return -1;
}

/* Which layers of a gemma3 model attend through the sliding window: <arch>.attention.
 * sliding_window_pattern as an integer N (every Nth layer global) or one bool per layer (true =
 * sliding), else llama.cpp's fixed rule for gemma3, N = 6. */
static qe_status gemma3_layers(const qe_gguf *g, const char *arch, int window, qe_model_config *cfg, qe_error *err)
{
    char key[128];
    snprintf(key, sizeof key, "%s.attention.sliding_window_pattern", arch);
    const qe_gguf_kv *kv = qe_gguf_find_kv(g, key);
    int64_t pattern = 6;
    const uint8_t *per_layer = NULL;
    if (kv && kv->value.type == QE_GGUF_ARRAY) {
        if (kv->value.elem_type != QE_GGUF_BOOL || kv->value.n_items != (uint64_t)cfg->n_layers)
            return qe_fail(err, QE_EFORMAT, "%s: %s is an array of %llu %s, not one bool per layer (%d)", g->path,
                           key, (unsigned long long)kv->value.n_items, qe_gguf_type_name(kv->value.elem_type),
                           cfg->n_layers);
        per_layer = kv->value.raw_items;
    } else if (kv && qe_gguf_get_int(g, key, &pattern, err) != QE_OK) {
        return err->code;
    }
    if (!per_layer && (pattern < 1 || pattern > (1 << 20)))
        return qe_fail(err, QE_EFORMAT, "%s: %s = %lld is not a layer period", g->path, key, (long long)pattern);
    for (int i = 0; i < cfg->n_layers; i++) {
        bool is_sliding = per_layer ? per_layer[i] != 0 : (i + 1) % pattern != 0;
        cfg->layers[i].sliding_window = is_sliding ? window : 0;
        cfg->layers[i].rope_index = is_sliding ? 1 : 0;
    }
    return QE_OK;
}

/* What gemma3 adds to the llama fields, as llama.cpp's llama-model.cpp reads a gemma3 GGUF:
 * sandwich and q/k norms, gelu-tanh, embeddings times sqrt(hidden), a sliding window with a
 * local rope of base 10000 (rope.freq_base and any linear scaling serve the global layers),
 * scores scaled by head_dim^-0.5 except on the 62-layer 27B (hidden / n_heads, its
 * query_pre_attn_scalar), which the file does not store. Soft-capping (Gemma-2) is refused. */
static qe_status gemma3_config(const qe_gguf *g, const char *arch, qe_model_config *cfg, qe_error *err)
{
    static const char *const refused[] = {"attn_logit_softcapping", "final_logit_softcapping"};
    char key[128];
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        snprintf(key, sizeof key, "%s.%s", arch, refused[i]);
        if (qe_gguf_find_kv(g, key))
            return qe_fail(err, QE_EUNSUPPORTED, "%s: %s is set; logit soft-capping is not supported", g->path, key);
    }
    int window = 0;
    double local_theta;
    qe_status rc;
    if ((rc = arch_int(g, arch, "attention.sliding_window", -1, &window, err)) ||
        (rc = arch_float(g, arch, "rope.freq_base_swa", 10000.0, &local_theta, err)))
        return rc;
    if (!(local_theta > 0))
        return qe_fail(err, QE_EFORMAT, "%s: %s.rope.freq_base_swa %g must be positive", g->path, arch, local_theta);
    cfg->has_qk_norm = cfg->has_sandwich_norms = true;
    cfg->norm_weight_offset = 1.0f; /* the stored weights hold the 1; make_f32 takes it off */
    cfg->embed_scale = sqrtf((float)cfg->hidden);
    cfg->activation = QE_ACT_GELU_TANH;
    double scalar = cfg->n_layers == 62 ? (double)(cfg->hidden / cfg->n_heads) : (double)cfg->head_dim;
    cfg->attn_scale = (float)(1.0 / sqrt(scalar));
    cfg->n_ropes = 2;
    cfg->ropes[1] = (qe_rope_config){.type = QE_ROPE_DEFAULT, .theta = local_theta, .factor = 1.0,
                                     .low_freq_factor = 1.0, .high_freq_factor = 4.0};
    return gemma3_layers(g, arch, window, cfg, err);
}

qe_status qe_gguf_model_config(const qe_gguf *g, qe_model_config *cfg, qe_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    const char *arch;
    qe_status rc = qe_gguf_get_string(g, "general.architecture", &arch, err);
    if (rc != QE_OK)
        return rc;
    if (!strcmp(arch, "llama"))
        cfg->arch = QE_ARCH_LLAMA;
    else if (!strcmp(arch, "qwen2"))
        cfg->arch = QE_ARCH_QWEN2;
    else if (!strcmp(arch, "gemma3"))
        cfg->arch = QE_ARCH_GEMMA3;
    else
        return qe_fail(err, QE_EUNSUPPORTED, "%s: general.architecture '%s' is not supported for GGUF (llama, qwen2, "
                       "gemma3)", g->path, arch);
    snprintf(cfg->model_type, sizeof cfg->model_type, "%s", arch);
    if (qe_gguf_find_tensor(g, "rope_freqs.weight"))
        return qe_fail(err, QE_EUNSUPPORTED, "%s: rope_freqs.weight (Llama-3.1 rope scaling) is not supported for GGUF",
                       g->path);
    const qe_gguf_tensor *embd = qe_gguf_find_tensor(g, "token_embd.weight");
    if (!embd || embd->n_dims != 2)
        return qe_fail(err, QE_EFORMAT, "%s: tensor token_embd.weight is missing or not 2-D", g->path);
    if ((rc = arch_int(g, arch, "embedding_length", -1, &cfg->hidden, err)) ||
        (rc = arch_int(g, arch, "block_count", -1, &cfg->n_layers, err)) ||
        (rc = arch_int(g, arch, "attention.head_count", -1, &cfg->n_heads, err)) ||
        (rc = arch_int(g, arch, "feed_forward_length", -1, &cfg->intermediate, err)) ||
        (rc = arch_int(g, arch, "attention.head_count_kv", cfg->n_heads, &cfg->n_kv_heads, err)) ||
        (rc = arch_int(g, arch, "context_length", 2048, &cfg->max_context, err)) ||
        (rc = arch_int(g, arch, "vocab_size", embd->ne[1], &cfg->n_vocab, err)))
        return rc;
    /* a layer count from a stranger sizes an allocation: a real model has its tensors */
    char block0[32];
    snprintf(block0, sizeof block0, "blk.%d.attn_norm.weight", cfg->n_layers - 1);
    if (cfg->n_layers > 4096 || !qe_gguf_find_tensor(g, block0))
        return qe_fail(err, QE_EFORMAT, "%s: %s.block_count %d, but there is no tensor %s", g->path, arch,
                       cfg->n_layers, block0);
    if (embd->ne[0] != cfg->hidden)
        return qe_fail(err, QE_EFORMAT, "%s: token_embd.weight rows hold %lld values, %s.embedding_length says %d",
                       g->path, (long long)embd->ne[0], arch, cfg->hidden);
    char key_length[96];
    if (cfg->n_heads % cfg->n_kv_heads)
        return qe_fail(err, QE_EFORMAT, "%s: head_count %d is not a multiple of head_count_kv %d", g->path,
                       cfg->n_heads, cfg->n_kv_heads);
    snprintf(key_length, sizeof key_length, "%s.attention.key_length", arch);
    if (!qe_gguf_find_kv(g, key_length) && cfg->hidden % cfg->n_heads)
        return qe_fail(err, QE_EFORMAT, "%s: %s is missing and embedding_length %d is not a multiple of head_count %d",
                       g->path, key_length, cfg->hidden, cfg->n_heads);
    if ((rc = arch_int(g, arch, "attention.key_length", cfg->hidden / cfg->n_heads, &cfg->head_dim, err)))
        return rc;
    if (cfg->head_dim % 2)
        return qe_fail(err, QE_EFORMAT, "%s: head dimension %d is odd", g->path, cfg->head_dim);
    if ((rc = qe_model_config_check_sizes(g->path, cfg, err)))
        return rc;
    int value_dim;
    if ((rc = arch_int(g, arch, "attention.value_length", cfg->head_dim, &value_dim, err)))
        return rc;
    if (value_dim != cfg->head_dim)
        return qe_fail(err, QE_EUNSUPPORTED, "%s: value_length %d differs from key_length %d", g->path, value_dim,
                       cfg->head_dim);
    double eps, theta, scale = 1.0;
    if ((rc = arch_float(g, arch, "attention.layer_norm_rms_epsilon", 1e-6, &eps, err)) ||
        (rc = arch_float(g, arch, "rope.freq_base", 10000.0, &theta, err)))
        return rc;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    const char *scaling = "none";
    if (qe_gguf_find_kv(g, key) && (rc = qe_gguf_get_string(g, key, &scaling, err)))
        return rc;
    if (!strcmp(scaling, "linear")) {
        if ((rc = arch_float(g, arch, "rope.scaling.factor", 1.0, &scale, err)))
            return rc;
    } else if (strcmp(scaling, "none") != 0) {
        return qe_fail(err, QE_EUNSUPPORTED, "%s: %s '%s' is not supported (none, linear)", g->path, key, scaling);
    }
    if (!(theta > 0) || !(scale > 0) || !(eps > 0))
        return qe_fail(err, QE_EFORMAT, "%s: rope.freq_base %g, rope scaling factor %g and rms epsilon %g must be "
                       "positive", g->path, theta, scale, eps);
    cfg->rms_norm_eps = (float)eps;
    cfg->tie_embeddings = qe_gguf_find_tensor(g, "output.weight") == NULL;
    cfg->has_qkv_bias = cfg->arch == QE_ARCH_QWEN2;
    cfg->embed_scale = 1.0f;
    cfg->attn_scale = (float)(1.0 / sqrt((double)cfg->head_dim));
    cfg->activation = QE_ACT_SILU;
    cfg->n_ropes = 1;
    cfg->ropes[0] = (qe_rope_config){.type = scale != 1.0 ? QE_ROPE_LINEAR : QE_ROPE_DEFAULT, .theta = theta,
                                     .factor = scale, .low_freq_factor = 1.0, .high_freq_factor = 4.0};
    cfg->torch_dtype = QE_DTYPE_F32; /* llama.cpp computes rope frequencies in float32 */
    int64_t id;
    cfg->bos_id = qe_gguf_get_int(g, "tokenizer.ggml.bos_token_id", &id, err) == QE_OK ? (int)id : -1;
    if (qe_gguf_get_int(g, "tokenizer.ggml.eos_token_id", &id, err) == QE_OK)
        cfg->eos_ids[cfg->n_eos++] = (int)id;
    /* a chat turn ends with end-of-turn, which llama.cpp also stops on (its EOT token) */
    int64_t eot = qe_gguf_get_int(g, "tokenizer.ggml.eot_token_id", &id, err) == QE_OK ? id
                : find_token(g, "<end_of_turn>");
    if (eot >= cfg->n_vocab || eot < -1)
        return qe_fail(err, QE_EFORMAT, "%s: tokenizer.ggml.eot_token_id %lld is outside the vocabulary of %d",
                       g->path, (long long)eot, cfg->n_vocab);
    if (eot >= 0 && (cfg->n_eos == 0 || cfg->eos_ids[0] != eot))
        cfg->eos_ids[cfg->n_eos++] = (int)eot;
    cfg->layers = calloc((size_t)cfg->n_layers, sizeof *cfg->layers);
    if (!cfg->layers)
        return qe_fail(err, QE_ENOMEM, "%s: out of memory for %d layers", g->path, cfg->n_layers);
    if (cfg->arch == QE_ARCH_GEMMA3 && (rc = gemma3_config(g, arch, cfg, err)) != QE_OK) {
        qe_model_config_free(cfg);
        return rc;
    }
    return QE_OK;
}

qe_status qe_gguf_unpermute_rows(float *w, int n_heads, int head_dim, int n_cols, qe_error *err)
{
    size_t head_floats = (size_t)head_dim * (size_t)n_cols;
    float *tmp = malloc(head_floats * sizeof(float));
    if (!tmp)
        return qe_fail(err, QE_ENOMEM, "out of memory unpermuting a %d-row head", head_dim);
    int half = head_dim / 2;
    for (int h = 0; h < n_heads; h++) {
        float *head = w + (size_t)h * head_floats;
        memcpy(tmp, head, head_floats * sizeof(float));
        for (int j = 0; j < 2; j++)
            for (int i = 0; i < half; i++)
                memcpy(head + (size_t)(j * half + i) * n_cols, tmp + (size_t)(2 * i + j) * n_cols,
                       (size_t)n_cols * sizeof(float));
    }
    free(tmp);
    return QE_OK;
}

/* GGUF tensor name -> Hugging Face name; *permute_heads > 0 for q/k of llama models, *norm_shift
 * the amount llama.cpp's converter added to the tensor (1 for gemma3's RMSNorm weights, whose
 * (1 + weight) it stores whole), which make_f32 takes off again. */
static bool hf_name(const qe_gguf_tensor *t, const qe_model_config *cfg, char *out, size_t out_bytes,
                    int *permute_heads, float *norm_shift)
{
    static const struct { const char *gguf, *hf; } layer_names[] = {
        {"attn_norm.weight", "input_layernorm.weight"}, {"ffn_norm.weight", "post_attention_layernorm.weight"},
        {"attn_q.weight", "self_attn.q_proj.weight"},   {"attn_k.weight", "self_attn.k_proj.weight"},
        {"attn_v.weight", "self_attn.v_proj.weight"},   {"attn_output.weight", "self_attn.o_proj.weight"},
        {"attn_q.bias", "self_attn.q_proj.bias"},       {"attn_k.bias", "self_attn.k_proj.bias"},
        {"attn_v.bias", "self_attn.v_proj.bias"},       {"ffn_gate.weight", "mlp.gate_proj.weight"},
        {"ffn_up.weight", "mlp.up_proj.weight"},         {"ffn_down.weight", "mlp.down_proj.weight"},
    };
    /* gemma's sandwich norms: llama.cpp's ffn_norm is the pre-feedforward one there */
    static const struct { const char *gguf, *hf; } gemma_names[] = {
        {"ffn_norm.weight", "pre_feedforward_layernorm.weight"},
        {"post_attention_norm.weight", "post_attention_layernorm.weight"},
        {"post_ffw_norm.weight", "post_feedforward_layernorm.weight"},
        {"attn_q_norm.weight", "self_attn.q_norm.weight"}, {"attn_k_norm.weight", "self_attn.k_norm.weight"},
    };
    bool is_gemma = cfg->arch == QE_ARCH_GEMMA3;
    *permute_heads = 0;
    *norm_shift = is_gemma && strstr(t->name, "norm.weight") ? 1.0f : 0.0f;
    if (!strcmp(t->name, "token_embd.weight"))
        return snprintf(out, out_bytes, "model.embed_tokens.weight") > 0;
    if (!strcmp(t->name, "output_norm.weight"))
        return snprintf(out, out_bytes, "model.norm.weight") > 0;
    if (!strcmp(t->name, "output.weight"))
        return snprintf(out, out_bytes, "lm_head.weight") > 0;
    int layer, n_prefix = 0;
    if (sscanf(t->name, "blk.%d.%n", &layer, &n_prefix) != 1 || n_prefix == 0 || layer < 0 || layer >= cfg->n_layers)
        return false;
    const char *rest = t->name + n_prefix;
    for (size_t k = 0; is_gemma && k < sizeof gemma_names / sizeof gemma_names[0]; k++)
        if (!strcmp(rest, gemma_names[k].gguf))
            return snprintf(out, out_bytes, "model.layers.%d.%s", layer, gemma_names[k].hf) > 0;
    for (size_t k = 0; k < sizeof layer_names / sizeof layer_names[0]; k++)
        if (!strcmp(rest, layer_names[k].gguf)) {
            if (cfg->arch == QE_ARCH_LLAMA && !strcmp(rest, "attn_q.weight"))
                *permute_heads = cfg->n_heads;
            else if (cfg->arch == QE_ARCH_LLAMA && !strcmp(rest, "attn_k.weight"))
                *permute_heads = cfg->n_kv_heads;
            snprintf(out, out_bytes, "model.layers.%d.%s", layer, layer_names[k].hf);
            return true;
        }
    return false;
}

/* What a GGUF weight set makes its tensors from: the open file, and per tensor of the set the
 * GGUF tensor and whether its rows need unpermuting. */
typedef struct {
    qe_gguf *g;
    int head_dim;
    const qe_gguf_tensor **tensors;  /* [n_tensors of the set] */
    int *permute_heads;              /* [same]; 0 = none */
    float *norm_shift;               /* [same]; subtracted from every value (gemma norms: 1) */
} gguf_source;

static void close_source(void *p)
{
    gguf_source *src = p;
    if (!src)
        return;
    qe_gguf_close(src->g);
    free(src->tensors);
    free(src->permute_heads);
    free(src->norm_shift);
    free(src);
}

static qe_status make_f32(void *p, int index, float *out, qe_error *err)
{
    const gguf_source *src = p;
    const qe_gguf_tensor *t = src->tensors[index];
    char what[300];
    snprintf(what, sizeof what, "%s: tensor '%s'", src->g->path, t->name);
    qe_status rc = qe_ggml_dequantize(t->type, t->data, out, t->n_elements, what, err);
    if (rc == QE_OK && src->permute_heads[index])
        rc = qe_gguf_unpermute_rows(out, src->permute_heads[index], src->head_dim, (int)t->ne[0], err);
    for (int64_t i = 0; rc == QE_OK && src->norm_shift[index] != 0.0f && i < t->n_elements; i++)
        out[i] -= src->norm_shift[index];
    return rc;
}

qe_status qe_gguf_model_weights(qe_gguf *g, const qe_model_config *cfg, bool with_data, qe_weight_set *set,
                                const char **source_note, qe_error *err)
{
    memset(set, 0, sizeof *set);
    *source_note = "";
    size_t n = g->n_tensors ? (size_t)g->n_tensors : 1;
    gguf_source *src = calloc(1, sizeof *src);
    set->memory = calloc(n, sizeof *set->memory);
    set->memory_source = strdup(g->path);
    if (src) {
        src->tensors = calloc(n, sizeof *src->tensors);
        src->permute_heads = calloc(n, sizeof *src->permute_heads);
        src->norm_shift = calloc(n, sizeof *src->norm_shift);
        src->head_dim = cfg->head_dim;
    }
    if (!set->memory || !set->memory_source || !src || !src->tensors || !src->permute_heads || !src->norm_shift) {
        close_source(src);
        qe_weight_set_close(set);
        return qe_fail(err, QE_ENOMEM, "%s: out of memory", g->path);
    }
    uint64_t n_matrices_of[64] = {0};
    qe_status rc = QE_OK;
    for (uint64_t i = 0; i < g->n_tensors && rc == QE_OK; i++) {
        const qe_gguf_tensor *t = &g->tensors[i];
        char name[160];
        int permute_heads;
        float norm_shift;
        if (!hf_name(t, cfg, name, sizeof name, &permute_heads, &norm_shift)) {
            rc = qe_fail(err, QE_EUNSUPPORTED, "%s: tensor '%s' has no place in a %s model", g->path, t->name,
                         cfg->model_type);
            break;
        }
        if (t->n_dims > 2 || (t->n_dims == 2 && t->ne[1] > 1 << 30) || t->ne[0] > 1 << 30) {
            rc = qe_fail(err, QE_EFORMAT, "%s: tensor '%s' is not a vector or matrix of sane size", g->path, t->name);
            break;
        }
        qe_tensor_view *v = &set->memory[set->n_memory];
        if (!(v->name = strdup(name))) {
            rc = qe_fail(err, QE_ENOMEM, "%s: out of memory for tensor '%s'", g->path, t->name);
            break;
        }
        src->tensors[set->n_memory] = t;
        src->permute_heads[set->n_memory] = permute_heads;
        src->norm_shift[set->n_memory] = norm_shift;
        set->n_memory++;
        v->dtype = QE_DTYPE_F32;
        v->n_dims = t->n_dims;
        v->shape[0] = t->n_dims == 2 ? t->ne[1] : t->ne[0]; /* ggml lists the contiguous dim first */
        v->shape[1] = t->n_dims == 2 ? t->ne[0] : 0;
        v->n_elements = (uint64_t)t->n_elements;
        v->n_bytes = (size_t)t->n_elements * sizeof(float);
        v->file_path = set->memory_source;
        if (t->n_dims == 2 && t->type < 64)
            n_matrices_of[t->type]++;
        if (permute_heads && (t->n_dims != 2 || v->shape[0] != (int64_t)permute_heads * cfg->head_dim))
            rc = qe_fail(err, QE_EFORMAT, "%s: tensor '%s' has %lld rows, expected %d heads x %d", g->path, t->name,
                         (long long)v->shape[0], permute_heads, cfg->head_dim);
    }
    if (rc == QE_OK && with_data) { /* the set now owns g: tensors are made from the mapping when read */
        src->g = g;
        set->source = src;
        set->make_f32 = make_f32;
        set->close_source = close_source;
    } else {
        close_source(src);
    }
    if (rc != QE_OK) {
        qe_weight_set_close(set);
        return rc;
    }
    /* Static notes, one per quantized type, so qe_model_info can point at them. F16 and BF16
     * widen exactly, as a Hugging Face bf16 checkpoint loaded in fp32 does: no note. */
    static const char *const notes[64] = {
        [QE_GGML_Q8_0] = "fp32 from Q8_0",
        [QE_GGML_Q4_0] = "fp32 from Q4_0", [QE_GGML_Q4_1] = "fp32 from Q4_1", [QE_GGML_Q5_0] = "fp32 from Q5_0",
        [QE_GGML_Q5_1] = "fp32 from Q5_1", [QE_GGML_Q4_K] = "fp32 from Q4_K", [QE_GGML_Q5_K] = "fp32 from Q5_K",
        [QE_GGML_Q6_K] = "fp32 from Q6_K",
    };
    int most = QE_GGML_F32;
    for (int type = 0; type < 64; type++)
        if (n_matrices_of[type] > n_matrices_of[most])
            most = type;
    *source_note = notes[most] ? notes[most] : "";
    return QE_OK;
}

/* The Gemma-3 chat template (text turns only, as tests/golden/make_chat_golden.py holds it and
 * google/gemma-3's tokenizer_config.json ships it), for a gemma3 GGUF converted without one:
 * gguf-my-repo's gemma-3-270m has none. */
static const char gemma_turns[] =
    "{{ bos_token }}\n"
    "{%- if messages[0]['role'] == 'system' -%}\n"
    "{%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}\n"
    "{%- set loop_messages = messages[1:] -%}\n"
    "{%- else -%}\n"
    "{%- set first_user_prefix = \"\" -%}\n"
    "{%- set loop_messages = messages -%}\n"
    "{%- endif -%}\n"
    "{%- for message in loop_messages -%}\n"
    "{%- if (message['role'] == 'assistant') -%}{%- set role = \"model\" -%}{%- else -%}"
    "{%- set role = message['role'] -%}{%- endif -%}\n"
    "{{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else \"\") }}"
    "{{ message['content'] | trim }}{{ '<end_of_turn>\\n' }}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}{{'<start_of_turn>model\\n'}}{%- endif -%}\n";

qe_status qe_gguf_model_open(const char *path, bool with_data, qe_model_config *cfg, qe_weight_set *set,
                             qe_tokenizer **tokenizer, char **chat_template, const char **source_note,
                             const char **notice, qe_error *err)
{
    *tokenizer = NULL;
    *chat_template = NULL;
    *notice = "";
    memset(cfg, 0, sizeof *cfg);
    memset(set, 0, sizeof *set);
    qe_gguf *g = NULL;
    qe_status rc = qe_gguf_open(path, &g, err);
    if (rc == QE_OK)
        rc = qe_gguf_model_config(g, cfg, err);
    if (rc == QE_OK)
        rc = qe_gguf_model_weights(g, cfg, with_data, set, source_note, err);
    if (rc == QE_OK && qe_gguf_find_kv(g, "tokenizer.ggml.model"))
        rc = qe_gguf_tokenizer_load(g, tokenizer, err);
    const char *text;
    if (rc == QE_OK && qe_gguf_find_kv(g, "tokenizer.chat_template") &&
        (rc = qe_gguf_get_string(g, "tokenizer.chat_template", &text, err)) == QE_OK && !(*chat_template = strdup(text)))
        rc = qe_fail(err, QE_ENOMEM, "%s: out of memory", path);
    if (rc == QE_OK && !*chat_template && cfg->arch == QE_ARCH_GEMMA3 && find_token(g, "<start_of_turn>") >= 0 &&
        find_token(g, "<end_of_turn>") >= 0) {
        if (!(*chat_template = strdup(gemma_turns)))
            rc = qe_fail(err, QE_ENOMEM, "%s: out of memory", path);
        *notice = "the file has no tokenizer.chat_template; its <start_of_turn>/<end_of_turn> tokens give the Gemma "
                  "turn format";
    }
    if (!set->source) /* the weight set holds the mapping when it makes tensors from it */
        qe_gguf_close(g);
    if (rc != QE_OK) {
        qe_model_config_free(cfg);
        qe_weight_set_close(set);
        qe_tokenizer_free(*tokenizer);
        *tokenizer = NULL;
        free(*chat_template);
        *chat_template = NULL;
    }
    return rc;
}
