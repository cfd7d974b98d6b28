#include "model_config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "file_util.h"

const char *qe_arch_name(qe_arch arch)
{
    switch (arch) {
    case QE_ARCH_LLAMA: return "llama";
    case QE_ARCH_MISTRAL: return "mistral";
    case QE_ARCH_QWEN2: return "qwen2";
    case QE_ARCH_GEMMA3: return "gemma3";
    }
    return "?";
}

/* An integer field; absent -> *out = fallback when has_fallback, else an error. */
static qe_status get_int(const char *path, const cJSON *root, const char *key, bool required, int fallback,
                         int *out, qe_error *err)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!item || cJSON_IsNull(item)) {
        if (required)
            return qe_fail(err, QE_EFORMAT, "%s: required field \"%s\" is missing", path, key);
        *out = fallback;
        return QE_OK;
    }
    double v = item->valuedouble;
    if (!cJSON_IsNumber(item) || floor(v) != v || v < -1 || v > 1e9)
        return qe_fail(err, QE_EFORMAT, "%s: field \"%s\" is not an integer in range", path, key);
    *out = (int)v;
    return QE_OK;
}

static qe_status get_double(const char *path, const cJSON *root, const char *key, double fallback,
                            double *out, qe_error *err)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!item || cJSON_IsNull(item)) {
        *out = fallback;
        return QE_OK;
    }
    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble))
        return qe_fail(err, QE_EFORMAT, "%s: field \"%s\" is not a number", path, key);
    *out = item->valuedouble;
    return QE_OK;
}

static qe_status get_bool(const char *path, const cJSON *root, const char *key, bool fallback, bool *out,
                          qe_error *err)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!item || cJSON_IsNull(item)) {
        *out = fallback;
        return QE_OK;
    }
    if (!cJSON_IsBool(item))
        return qe_fail(err, QE_EFORMAT, "%s: field \"%s\" is not true/false", path, key);
    *out = cJSON_IsTrue(item);
    return QE_OK;
}

/* One rope description: {"rope_type"|"type": ..., "rope_theta": ..., "factor": ...}. */
static qe_status parse_rope(const char *path, const char *where, const cJSON *obj, double default_theta,
                            qe_rope_config *rope, qe_error *err)
{
    memset(rope, 0, sizeof *rope);
    rope->type = QE_ROPE_DEFAULT;
    rope->theta = default_theta;
    rope->factor = 1.0;
    if (!obj || cJSON_IsNull(obj))
        return QE_OK;
    if (!cJSON_IsObject(obj))
        return qe_fail(err, QE_EFORMAT, "%s: \"%s\" is not an object", path, where);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(obj, "rope_type");
    if (!type)
        type = cJSON_GetObjectItemCaseSensitive(obj, "type");
    const char *type_name = cJSON_IsString(type) ? type->valuestring : "default";
    if (!strcmp(type_name, "default"))
        rope->type = QE_ROPE_DEFAULT;
    else if (!strcmp(type_name, "linear"))
        rope->type = QE_ROPE_LINEAR;
    else if (!strcmp(type_name, "llama3"))
        rope->type = QE_ROPE_LLAMA3;
    else
        return qe_fail(err, QE_EUNSUPPORTED, "%s: %s: rope type \"%s\" is not supported (default, linear, llama3)",
                       path, where, type_name);
    qe_status rc;
    if ((rc = get_double(path, obj, "rope_theta", default_theta, &rope->theta, err)) ||
        (rc = get_double(path, obj, "factor", 1.0, &rope->factor, err)) ||
        (rc = get_double(path, obj, "low_freq_factor", 1.0, &rope->low_freq_factor, err)) ||
        (rc = get_double(path, obj, "high_freq_factor", 4.0, &rope->high_freq_factor, err)))
        return rc;
    if ((rc = get_int(path, obj, "original_max_position_embeddings", rope->type == QE_ROPE_LLAMA3, 0,
                      &rope->original_max_position, err)))
        return rc;
    if (!(rope->theta > 0) || !(rope->factor > 0))
        return qe_fail(err, QE_EFORMAT, "%s: %s: rope_theta %g and factor %g must be positive", path, where,
                       rope->theta, rope->factor);
    if (rope->type == QE_ROPE_LLAMA3 && !(rope->high_freq_factor > rope->low_freq_factor))
        return qe_fail(err, QE_EFORMAT, "%s: %s: llama3 high_freq_factor %g must exceed low_freq_factor %g",
                       path, where, rope->high_freq_factor, rope->low_freq_factor);
    return QE_OK;
}

/* Ropes and per-layer attention: rope_parameters (one rope or one per layer type) or the
 * legacy rope_theta/rope_scaling; sliding windows from layer_types or the arch's rule. */
static qe_status parse_layers(const char *path, const cJSON *root, qe_model_config *cfg, qe_error *err)
{
    qe_status rc;
    int sliding_window = cfg->arch == QE_ARCH_GEMMA3 ? 4096 : 0; /* Gemma3TextConfig's default */
    const cJSON *sw = cJSON_GetObjectItemCaseSensitive(root, "sliding_window");
    bool has_window = sw && !cJSON_IsNull(sw);
    if (has_window && (rc = get_int(path, root, "sliding_window", false, 0, &sliding_window, err)))
        return rc;
    if (has_window && sliding_window < 0)
        return qe_fail(err, QE_EFORMAT, "%s: \"sliding_window\" is %d; a window is a positive number of positions "
                       "(null: none)", path, sliding_window);
    double legacy_theta = 0; /* set by get_double on success; the compiler cannot see that */
    if ((rc = get_double(path, root, "rope_theta", cfg->arch == QE_ARCH_GEMMA3 ? 1e6 : 1e4, &legacy_theta, err)))
        return rc;

    /* ropes[0] serves full-attention layers, ropes[1] (when present) sliding ones */
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    if (params && cJSON_IsObject(params) && cJSON_GetObjectItemCaseSensitive(params, "full_attention")) {
        const cJSON *sliding = cJSON_GetObjectItemCaseSensitive(params, "sliding_attention");
        if ((rc = parse_rope(path, "rope_parameters.full_attention",
                             cJSON_GetObjectItemCaseSensitive(params, "full_attention"), legacy_theta,
                             &cfg->ropes[0], err)))
            return rc;
        cfg->n_ropes = 1;
        if (sliding) {
            if ((rc = parse_rope(path, "rope_parameters.sliding_attention", sliding, 1e4, &cfg->ropes[1], err)))
                return rc;
            cfg->n_ropes = 2;
        }
    } else if (params && !cJSON_IsNull(params)) {
        if ((rc = parse_rope(path, "rope_parameters", params, legacy_theta, &cfg->ropes[0], err)))
            return rc;
        cfg->n_ropes = 1;
    } else {
        if ((rc = parse_rope(path, "rope_scaling", cJSON_GetObjectItemCaseSensitive(root, "rope_scaling"),
                             legacy_theta, &cfg->ropes[0], err)))
            return rc;
        cfg->n_ropes = 1;
        if (cfg->arch == QE_ARCH_GEMMA3) {
            double local_theta = 0;
            if ((rc = get_double(path, root, "rope_local_base_freq", 1e4, &local_theta, err)))
                return rc;
            parse_rope(path, "rope_local_base_freq", NULL, local_theta, &cfg->ropes[1], err);
            cfg->n_ropes = 2;
        }
    }

    cfg->layers = calloc(cfg->n_layers, sizeof *cfg->layers);
    if (!cfg->layers)
        return qe_fail(err, QE_ENOMEM, "%s: out of memory for %d layers", path, cfg->n_layers);
    const cJSON *types = cJSON_GetObjectItemCaseSensitive(root, "layer_types");
    if (types && !cJSON_IsNull(types) && !cJSON_IsArray(types))
        return qe_fail(err, QE_EFORMAT, "%s: \"layer_types\" is not an array of num_hidden_layers=%d names", path,
                       cfg->n_layers);
    if (cJSON_IsArray(types) && cJSON_GetArraySize(types) != cfg->n_layers)
        return qe_fail(err, QE_EFORMAT, "%s: \"layer_types\" names %d layers but num_hidden_layers is %d", path,
                       cJSON_GetArraySize(types), cfg->n_layers);
    int qwen_window_from = cfg->n_layers;
    bool qwen_sliding = false;
    if (cfg->arch == QE_ARCH_QWEN2) {
        if ((rc = get_bool(path, root, "use_sliding_window", false, &qwen_sliding, err)) ||
            (rc = get_int(path, root, "max_window_layers", false, cfg->n_layers, &qwen_window_from, err)))
            return rc;
    }
    int pattern = 6;
    if (cfg->arch == QE_ARCH_GEMMA3 &&
        (rc = get_int(path, root, "sliding_window_pattern", false, 6, &pattern, err)))
        return rc;
    for (int i = 0; i < cfg->n_layers; i++) {
        bool is_sliding;
        if (types && cJSON_IsArray(types)) {
            const cJSON *t = cJSON_GetArrayItem(types, i);
            if (!cJSON_IsString(t))
                return qe_fail(err, QE_EFORMAT, "%s: layer_types[%d] is not a string", path, i);
            if (strcmp(t->valuestring, "full_attention") && strcmp(t->valuestring, "sliding_attention"))
                return qe_fail(err, QE_EUNSUPPORTED, "%s: layer_types[%d] \"%.64s\" is not supported "
                               "(full_attention, sliding_attention)", path, i, t->valuestring);
            is_sliding = !strcmp(t->valuestring, "sliding_attention");
        } else if (cfg->arch == QE_ARCH_MISTRAL) {
            is_sliding = has_window; /* a number there is the window of every layer */
        } else if (cfg->arch == QE_ARCH_QWEN2) {
            is_sliding = qwen_sliding && i >= qwen_window_from;
        } else if (cfg->arch == QE_ARCH_GEMMA3) {
            is_sliding = pattern > 0 && (i + 1) % pattern != 0;
        } else {
            is_sliding = false;
        }
        if (is_sliding && !has_window && cfg->arch != QE_ARCH_GEMMA3) /* gemma3 has a default */
            return qe_fail(err, QE_EFORMAT, "%s: layer %d uses sliding attention but \"sliding_window\" is missing",
                           path, i);
        if (is_sliding && sliding_window == 0)
            return qe_fail(err, QE_EFORMAT, "%s: layer %d uses sliding attention but \"sliding_window\" is 0; a "
                           "window is a positive number of positions", path, i);
        cfg->layers[i].sliding_window = is_sliding ? sliding_window : 0;
        cfg->layers[i].rope_index = is_sliding && cfg->n_ropes > 1 ? 1 : 0;
    }
    return QE_OK;
}

static qe_status parse_token_ids(const char *path, const cJSON *root, qe_model_config *cfg, qe_error *err)
{
    qe_status rc = get_int(path, root, "bos_token_id", false, -1, &cfg->bos_id, err);
    if (rc)
        return rc;
    const cJSON *eos = cJSON_GetObjectItemCaseSensitive(root, "eos_token_id");
    cfg->n_eos = 0;
    if (cJSON_IsArray(eos)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, eos) {
            if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 1e9)
                return qe_fail(err, QE_EFORMAT, "%s: \"eos_token_id\" holds a non-id", path);
            if (cfg->n_eos < QE_MAX_EOS)
                cfg->eos_ids[cfg->n_eos++] = (int)e->valuedouble;
        }
    } else if (eos && !cJSON_IsNull(eos)) {
        int id;
        if ((rc = get_int(path, root, "eos_token_id", true, -1, &id, err)))
            return rc;
        if (id >= 0)
            cfg->eos_ids[cfg->n_eos++] = id;
    }
    return QE_OK;
}

qe_status qe_model_config_check_sizes(const char *path, const qe_model_config *cfg, qe_error *err)
{
    /* every product the engine forms in int (rows of q, k, v; the widest linear input; a
     * vocabulary row block) stays far from overflow, and the layer list stays allocatable;
     * the largest released models are well inside (Llama-3.1-405B: 16,384 x 128 heads) */
    const int64_t max_dim = 1 << 20, max_layers = 4096, max_vocab = 1 << 24;
    int64_t q_dim = (int64_t)cfg->n_heads * cfg->head_dim, kv_dim = (int64_t)cfg->n_kv_heads * cfg->head_dim;
    if (cfg->n_layers > max_layers)
        return qe_fail(err, QE_EFORMAT, "%s: %d layers; at most %lld are supported", path, cfg->n_layers,
                       (long long)max_layers);
    if (cfg->hidden > max_dim || cfg->intermediate > max_dim || q_dim > max_dim || kv_dim > max_dim ||
        cfg->n_vocab > max_vocab)
        return qe_fail(err, QE_EFORMAT, "%s: sizes past what qeval supports: hidden %d, intermediate %d, heads x "
                       "head_dim %lld, kv heads x head_dim %lld (each at most %lld), vocabulary %d (at most %lld)",
                       path, cfg->hidden, cfg->intermediate, (long long)q_dim, (long long)kv_dim, (long long)max_dim,
                       cfg->n_vocab, (long long)max_vocab);
    return QE_OK;
}

qe_status qe_model_config_parse(const char *path, const char *json, qe_model_config *cfg, qe_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    cJSON *root = cJSON_Parse(json);
    if (!root)
        return qe_fail(err, QE_EFORMAT, "%s: not valid JSON", path);
    qe_status rc = QE_OK;
    if (!cJSON_IsObject(root)) {
        rc = qe_fail(err, QE_EFORMAT, "%s: not a JSON object", path);
        goto out;
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (!cJSON_IsString(type)) {
        rc = qe_fail(err, QE_EFORMAT, "%s: required field \"model_type\" is missing", path);
        goto out;
    }
    snprintf(cfg->model_type, sizeof cfg->model_type, "%s", type->valuestring);
    if (!strcmp(type->valuestring, "llama"))
        cfg->arch = QE_ARCH_LLAMA;
    else if (!strcmp(type->valuestring, "mistral"))
        cfg->arch = QE_ARCH_MISTRAL;
    else if (!strcmp(type->valuestring, "qwen2"))
        cfg->arch = QE_ARCH_QWEN2;
    else if (!strcmp(type->valuestring, "gemma3_text") || !strcmp(type->valuestring, "gemma3"))
        cfg->arch = QE_ARCH_GEMMA3;
    else {
        rc = qe_fail(err, QE_EUNSUPPORTED, "%s: model_type \"%s\" is not supported (llama, mistral, qwen2, "
                     "gemma3_text)", path, type->valuestring);
        goto out;
    }
    const cJSON *text_config = cJSON_GetObjectItemCaseSensitive(root, "text_config");
    const cJSON *fields = cfg->arch == QE_ARCH_GEMMA3 && cJSON_IsObject(text_config) ? text_config : root;
    bool is_gemma = cfg->arch == QE_ARCH_GEMMA3;
    /* Gemma3TextConfig's defaults: a multimodal checkpoint's text_config lists only what differs
     * from them (gemma-3-4b's has no vocab_size, head counts or head_dim) */
    if ((rc = get_int(path, fields, "vocab_size", !is_gemma, 262208, &cfg->n_vocab, err)) ||
        (rc = get_int(path, fields, "hidden_size", !is_gemma, 2304, &cfg->hidden, err)) ||
        (rc = get_int(path, fields, "num_hidden_layers", !is_gemma, 26, &cfg->n_layers, err)) ||
        (rc = get_int(path, fields, "num_attention_heads", !is_gemma, 8, &cfg->n_heads, err)) ||
        (rc = get_int(path, fields, "intermediate_size", !is_gemma, 9216, &cfg->intermediate, err)) ||
        (rc = get_int(path, fields, "num_key_value_heads", false, is_gemma ? 4 : cfg->n_heads, &cfg->n_kv_heads,
                      err)) ||
        (rc = get_int(path, fields, "max_position_embeddings", false, is_gemma ? 131072 : 2048, &cfg->max_context,
                      err)))
        goto out;
    if (cfg->n_vocab <= 0 || cfg->hidden <= 0 || cfg->n_layers <= 0 || cfg->n_heads <= 0 ||
        cfg->intermediate <= 0 || cfg->n_kv_heads <= 0 || cfg->max_context <= 0) {
        rc = qe_fail(err, QE_EFORMAT, "%s: sizes must be positive (vocab_size %d, hidden_size %d, "
                     "num_hidden_layers %d, num_attention_heads %d, num_key_value_heads %d, intermediate_size %d, "
                     "max_position_embeddings %d)", path, cfg->n_vocab, cfg->hidden, cfg->n_layers, cfg->n_heads,
                     cfg->n_kv_heads, cfg->intermediate, cfg->max_context);
        goto out;
    }
    if (cfg->n_heads % cfg->n_kv_heads) {
        rc = qe_fail(err, QE_EFORMAT, "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d",
                     path, cfg->n_heads, cfg->n_kv_heads);
        goto out;
    }
    /* transformers: gemma3 defaults head_dim to 256, the others to hidden_size / num_attention_heads */
    int default_head_dim = is_gemma ? 256 : cfg->hidden / cfg->n_heads;
    const cJSON *head_dim = cJSON_GetObjectItemCaseSensitive(fields, "head_dim");
    if (!is_gemma && (!head_dim || cJSON_IsNull(head_dim)) && cfg->hidden % cfg->n_heads) {
        rc = qe_fail(err, QE_EFORMAT, "%s: \"head_dim\" is missing and hidden_size %d is not a multiple of "
                     "num_attention_heads %d to give it", path, cfg->hidden, cfg->n_heads);
        goto out;
    }
    if ((rc = get_int(path, fields, "head_dim", false, default_head_dim, &cfg->head_dim, err)))
        goto out;
    if (cfg->head_dim <= 0 || cfg->head_dim % 2) {
        rc = qe_fail(err, QE_EFORMAT, "%s: head_dim %d must be positive and even", path, cfg->head_dim);
        goto out;
    }
    if ((rc = qe_model_config_check_sizes(path, cfg, err)))
        goto out;
    double eps;
    if ((rc = get_double(path, fields, "rms_norm_eps", 1e-6, &eps, err)) ||
        (rc = get_bool(path, fields, "tie_word_embeddings", is_gemma, &cfg->tie_embeddings, err)))
        goto out;
    cfg->rms_norm_eps = (float)eps;
    bool attention_bias;
    if ((rc = get_bool(path, fields, "attention_bias", false, &attention_bias, err)))
        goto out;
    cfg->has_qkv_bias = cfg->arch == QE_ARCH_QWEN2 || attention_bias;
    cfg->attn_scale = (float)(1.0 / sqrt((double)cfg->head_dim));
    cfg->embed_scale = 1.0f;
    cfg->activation = QE_ACT_SILU;
    if (is_gemma) {
        double scalar;
        if ((rc = get_double(path, fields, "query_pre_attn_scalar", cfg->head_dim, &scalar, err)))
            goto out;
        cfg->attn_scale = (float)(1.0 / sqrt(scalar));
        cfg->has_qk_norm = cfg->has_sandwich_norms = true;
        cfg->norm_weight_offset = 1.0f;
        cfg->embed_scale = (float)sqrt((double)cfg->hidden);
        cfg->activation = QE_ACT_GELU_TANH;
    }
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(fields, is_gemma ? "hidden_activation" : "hidden_act");
    if (cJSON_IsString(act)) {
        if (!strcmp(act->valuestring, "silu"))
            cfg->activation = QE_ACT_SILU;
        else if (!strcmp(act->valuestring, "gelu_pytorch_tanh"))
            cfg->activation = QE_ACT_GELU_TANH;
        else {
            rc = qe_fail(err, QE_EUNSUPPORTED, "%s: activation \"%s\" is not supported (silu, gelu_pytorch_tanh)",
                         path, act->valuestring);
            goto out;
        }
    }
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(fields, "torch_dtype");
    if (!dtype)
        dtype = cJSON_GetObjectItemCaseSensitive(fields, "dtype");
    if (!dtype) /* a multimodal checkpoint states it once, beside text_config */
        dtype = cJSON_GetObjectItemCaseSensitive(root, "torch_dtype");
    if (!dtype)
        dtype = cJSON_GetObjectItemCaseSensitive(root, "dtype");
    cfg->torch_dtype = QE_DTYPE_F32;
    if (cJSON_IsString(dtype)) {
        if (!strcmp(dtype->valuestring, "bfloat16"))
            cfg->torch_dtype = QE_DTYPE_BF16;
        else if (!strcmp(dtype->valuestring, "float16"))
            cfg->torch_dtype = QE_DTYPE_F16;
    }
    /* gemma keeps sqrt(hidden) in a buffer, which loading casts to the checkpoint's dtype */
    if (cfg->torch_dtype == QE_DTYPE_BF16)
        cfg->embed_scale = qe_bf16_to_f32(qe_f32_to_bf16(cfg->embed_scale));
    else if (cfg->torch_dtype == QE_DTYPE_F16)
        cfg->embed_scale = qe_f16_to_f32(qe_f32_to_f16(cfg->embed_scale));
    /* token ids: the text model's, else (a multimodal checkpoint's [1, 106]) the outer ones */
    const cJSON *ids_from = fields != root && !cJSON_GetObjectItemCaseSensitive(fields, "eos_token_id") ? root : fields;
    if ((rc = parse_token_ids(path, ids_from, cfg, err)) || (rc = parse_layers(path, fields, cfg, err)))
        goto out;
out:
    cJSON_Delete(root);
    if (rc != QE_OK)
        qe_model_config_free(cfg);
    return rc;
}

qe_status qe_model_config_load(const char *dir, qe_model_config *cfg, qe_error *err)
{
    char path[4096];
    char *json = NULL;
    qe_status rc = qe_path_join(path, sizeof path, dir, "config.json", err);
    if (rc == QE_OK && (rc = qe_read_file(path, &json, NULL, err)) == QE_OK)
        rc = qe_model_config_parse(path, json, cfg, err);
    free(json);
    return rc;
}

void qe_model_config_free(qe_model_config *cfg)
{
    if (!cfg)
        return;
    free(cfg->layers);
    cfg->layers = NULL;
}

void qe_rope_inv_freq(const qe_rope_config *rope, int head_dim, qe_dtype stored_dtype, float *inv_freq)
{
    const double pi = 3.14159265358979323846;
    for (int i = 0; i < head_dim / 2; i++) {
        /* transformers computes base ** (2i / dim) and its inverse in float32 */
        float exponent = (float)(2 * i) / (float)head_dim;
        float f = 1.0f / (float)pow(rope->theta, (double)exponent);
        if (rope->type == QE_ROPE_LINEAR) {
            f = (float)(f / rope->factor);
        } else if (rope->type == QE_ROPE_LLAMA3) {
            /* Llama 3.1: long wavelengths slowed by factor, short ones kept, a smooth blend between */
            double old_len = rope->original_max_position;
            double low_freq_wavelen = old_len / rope->low_freq_factor;
            double high_freq_wavelen = old_len / rope->high_freq_factor;
            double wavelen = 2 * pi / f;
            if (wavelen > low_freq_wavelen) {
                f = (float)(f / rope->factor);
            } else if (wavelen >= high_freq_wavelen) {
                double smooth = (old_len / wavelen - rope->low_freq_factor) /
                                (rope->high_freq_factor - rope->low_freq_factor);
                f = (float)((1 - smooth) * f / rope->factor + smooth * f);
            }
        }
        /* A checkpoint loaded in bfloat16/float16 has its inv_freq buffer cast to that dtype
         * along with the weights; the reference logits carry that rounding. */
        if (stored_dtype == QE_DTYPE_BF16)
            f = qe_bf16_to_f32(qe_f32_to_bf16(f));
        else if (stored_dtype == QE_DTYPE_F16)
            f = qe_f16_to_f32(qe_f32_to_f16(f));
        inv_freq[i] = f;
    }
}

/* The first capacity of the cache, doubled as positions come. */
#define KV_FIRST_CAPACITY 256

int qe_kv_ring(const qe_layer_config *layer, int max_context, int max_chunk)
{
    if (layer->sliding_window <= 0)
        return max_context;
    int64_t ring = (int64_t)layer->sliding_window + max_chunk - 1;
    return ring < max_context ? (int)ring : max_context;
}

int qe_kv_capacity(int n_positions, int max_context)
{
    if (n_positions <= 0)
        return 0;
    int64_t capacity = KV_FIRST_CAPACITY;
    while (capacity < n_positions)
        capacity *= 2;
    return capacity < max_context ? (int)capacity : max_context;
}

int qe_kv_positions(const qe_layer_config *layer, int n_positions, int max_context, int max_chunk)
{
    int capacity = qe_kv_capacity(n_positions, max_context);
    int ring = qe_kv_ring(layer, max_context, max_chunk);
    return capacity < ring ? (int)capacity : ring;
}

uint64_t qe_kv_cache_bytes(const qe_model_config *cfg, int n_positions, int max_context, int max_chunk)
{
    uint64_t rows = 0;
    for (int i = 0; i < cfg->n_layers; i++)
        rows += (uint64_t)qe_kv_positions(&cfg->layers[i], n_positions, max_context, max_chunk);
    return 2 * rows * (uint64_t)cfg->n_kv_heads * cfg->head_dim * sizeof(float);
}
