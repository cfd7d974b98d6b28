/* Loading a Hugging Face model directory into a qe_model, and the model-level API calls. */
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_template.h"
#include "file_util.h"
#include "gguf_model.h"
#include "linear_quant.h"

static qe_status keep_owned(qe_model *m, void *buf, qe_error *err)
{
    if (!buf)
        return QE_OK;
    if (m->n_owned == m->owned_capacity) {
        int cap = m->owned_capacity ? 2 * m->owned_capacity : 64;
        void **grown = realloc(m->owned, (size_t)cap * sizeof *grown);
        if (!grown) {
            free(buf);
            return qe_fail(err, QE_ENOMEM, "%s: out of memory", m->path);
        }
        m->owned = grown;
        m->owned_capacity = cap;
    }
    m->owned[m->n_owned++] = buf;
    return QE_OK;
}

static qe_status find_tensor(const qe_model *m, const char *name, const qe_tensor_view **out, qe_error *err)
{
    *out = qe_weight_set_find(&m->weights, name);
    if (!*out)
        return qe_fail(err, QE_EFORMAT, "%s: tensor '%s' is missing (%s needs it)", m->path, name,
                       qe_arch_name(m->cfg.arch));
    return QE_OK;
}

static qe_status check_shape(const qe_tensor_view *t, int64_t rows, int64_t cols, qe_error *err)
{
    bool ok = cols ? (t->n_dims == 2 && t->shape[0] == rows && t->shape[1] == cols)
                   : (t->n_dims == 1 && t->shape[0] == rows);
    if (ok)
        return QE_OK;
    char got[128] = "", want[64];
    for (int d = 0; d < t->n_dims; d++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "", (long long)t->shape[d]);
    if (cols)
        snprintf(want, sizeof want, "%lld, %lld", (long long)rows, (long long)cols);
    else
        snprintf(want, sizeof want, "%lld", (long long)rows);
    return qe_fail(err, QE_EFORMAT, "%s: tensor '%s' has shape [%s], the config says [%s]", t->file_path, t->name,
                   got, want);
}

/* In a 16-bit variant, *data[n] becomes a copy rounded to the compute dtype, as transformers
 * holds every unquantized parameter (embedding, norms, head) in that dtype. */
static qe_status round_to_compute(qe_model *m, const float **data, size_t n, qe_error *err)
{
    if (m->compute_dtype == QE_DTYPE_F32)
        return QE_OK;
    float *copy = malloc(n ? n * sizeof *copy : 1);
    if (!copy)
        return qe_fail(err, QE_ENOMEM, "%s: out of memory rounding %zu weights to %s", m->path, n,
                       qe_dtype_name(m->compute_dtype));
    memcpy(copy, *data, n * sizeof *copy);
    qe_round_to_dtype(copy, n, m->compute_dtype);
    *data = copy;
    return keep_owned(m, copy, err);
}

/* A float32 vector [n] copied out of the file (norm weights, small). */
static qe_status load_vector(qe_model *m, const char *name, int n, const float **out, qe_error *err)
{
    const qe_tensor_view *t;
    const float *data;
    float *owned;
    qe_status rc;
    if ((rc = find_tensor(m, name, &t, err)) || (rc = check_shape(t, n, 0, err)) ||
        (rc = qe_tensor_as_f32(t, &data, &owned, err)) || (rc = keep_owned(m, owned, err)) ||
        (rc = round_to_compute(m, &data, (size_t)n, err)))
        return rc;
    *out = data;
    return QE_OK;
}

static qe_status load_linear(qe_model *m, const char *name, int rows, int cols, bool has_bias, qe_linear *lin,
                             qe_error *err)
{
    char key[256];
    const qe_tensor_view *w, *b = NULL;
    qe_status rc;
    snprintf(key, sizeof key, "%s.weight", name);
    if ((rc = find_tensor(m, key, &w, err)) || (rc = check_shape(w, rows, cols, err)))
        return rc;
    if (has_bias) {
        snprintf(key, sizeof key, "%s.bias", name);
        if ((rc = find_tensor(m, key, &b, err)) || (rc = check_shape(b, rows, 0, err)))
            return rc;
    }
    return qe_linear_init(lin, &m->variant, w, b, err);
}

static qe_status load_layer(qe_model *m, int i, qe_layer *layer, qe_error *err)
{
    const qe_model_config *c = &m->cfg;
    char p[128], key[256];
    snprintf(p, sizeof p, "model.layers.%d", i);
    int q_rows = c->n_heads * c->head_dim, kv_rows = c->n_kv_heads * c->head_dim;
    qe_status rc;
#define LINEAR(suffix, rows, cols, bias, dst) \
    (snprintf(key, sizeof key, "%s.%s", p, suffix), load_linear(m, key, rows, cols, bias, dst, err))
#define VECTOR(suffix, n, dst) (snprintf(key, sizeof key, "%s.%s", p, suffix), load_vector(m, key, n, dst, err))
    if ((rc = VECTOR("input_layernorm.weight", c->hidden, &layer->attn_norm)) ||
        (rc = LINEAR("self_attn.q_proj", q_rows, c->hidden, c->has_qkv_bias, &layer->q)) ||
        (rc = LINEAR("self_attn.k_proj", kv_rows, c->hidden, c->has_qkv_bias, &layer->k)) ||
        (rc = LINEAR("self_attn.v_proj", kv_rows, c->hidden, c->has_qkv_bias, &layer->v)) ||
        (rc = LINEAR("self_attn.o_proj", c->hidden, q_rows, false, &layer->o)) ||
        (rc = LINEAR("mlp.gate_proj", c->intermediate, c->hidden, false, &layer->gate)) ||
        (rc = LINEAR("mlp.up_proj", c->intermediate, c->hidden, false, &layer->up)) ||
        (rc = LINEAR("mlp.down_proj", c->hidden, c->intermediate, false, &layer->down)))
        return rc;
    if (c->has_sandwich_norms) {
        if ((rc = VECTOR("post_attention_layernorm.weight", c->hidden, &layer->post_attn_norm)) ||
            (rc = VECTOR("pre_feedforward_layernorm.weight", c->hidden, &layer->ffn_norm)) ||
            (rc = VECTOR("post_feedforward_layernorm.weight", c->hidden, &layer->post_ffn_norm)))
            return rc;
    } else if ((rc = VECTOR("post_attention_layernorm.weight", c->hidden, &layer->ffn_norm))) {
        return rc;
    }
    if (c->has_qk_norm && ((rc = VECTOR("self_attn.q_norm.weight", c->head_dim, &layer->q_norm)) ||
                           (rc = VECTOR("self_attn.k_norm.weight", c->head_dim, &layer->k_norm))))
        return rc;
#undef LINEAR
#undef VECTOR
    return QE_OK;
}

static void count_params(qe_model *m)
{
    m->n_params = 0;
    for (int i = 0; i < qe_weight_set_count(&m->weights); i++) {
        const qe_tensor_view *t = qe_weight_set_at(&m->weights, i);
        if (m->cfg.tie_embeddings && !strcmp(t->name, "lm_head.weight"))
            continue; /* a tied head is the embedding, counted once */
        m->n_params += t->n_elements;
    }
}

/* The seven linears of a decoder block, the ones bitsandbytes quantizes. */
static bool is_block_linear_weight(const char *name)
{
    static const char *const suffixes[] = {"q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight",
                                           "gate_proj.weight", "up_proj.weight", "down_proj.weight"};
    if (strncmp(name, "model.layers.", 13))
        return false;
    size_t len = strlen(name);
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
        size_t n = strlen(suffixes[i]);
        if (len > n && !strcmp(name + len - n, suffixes[i]) && name[len - n - 1] == '.')
            return true;
    }
    return false;
}

/* transformers' get_memory_footprint(): every parameter's numel x element size (a tied head
 * once; Int8Params 1 byte, Params4bit's packed uint8 ceil(n/2) bytes, with neither SCB nor
 * the quant_state absmax counted) plus the buffers: each rotary embedding's inv_freq and
 * original_inv_freq, float32 [head_dim / 2]. Measured against transformers 5.17 +
 * bitsandbytes 0.50.2 (tests/golden/bnb/footprint.json). */
static uint64_t hf_footprint_bytes(const qe_model *m)
{
    uint64_t bytes = (uint64_t)m->cfg.n_ropes * 2 * (m->cfg.head_dim / 2) * sizeof(float);
    size_t other_size = m->compute_dtype == QE_DTYPE_F32 ? 4 : 2;
    for (int i = 0; i < qe_weight_set_count(&m->weights); i++) {
        const qe_tensor_view *t = qe_weight_set_at(&m->weights, i);
        if (m->cfg.tie_embeddings && !strcmp(t->name, "lm_head.weight"))
            continue;
        bool is_quantized = is_block_linear_weight(t->name);
        if (is_quantized && m->variant.kind == QE_VARIANT_INT8)
            bytes += t->n_elements;
        else if (is_quantized && m->variant.kind == QE_VARIANT_NF4)
            bytes += (t->n_elements + 1) / 2;
        else
            bytes += t->n_elements * other_size;
    }
    return bytes;
}

/* How the variant keeps tensor t (qe_tensor_info.stored_dtype/bytes). */
static void stored_form(const qe_model *m, const qe_tensor_view *t, const char **dtype, uint64_t *bytes)
{
    uint64_t n = t->n_elements;
    bool is_quantized = is_block_linear_weight(t->name) && t->n_dims == 2;
    if (m->cfg.tie_embeddings && !strcmp(t->name, "lm_head.weight")) {
        *dtype = "tied";
        *bytes = 0;
    } else if (is_quantized && m->variant.kind == QE_VARIANT_INT8) {
        *dtype = "INT8";
        *bytes = n + (uint64_t)t->shape[0] * 4;
    } else if (is_quantized && m->variant.kind == QE_VARIANT_NF4) {
        uint64_t block = m->variant.nf4_block_size > 0 ? (uint64_t)m->variant.nf4_block_size : 64;
        uint64_t n_blocks = (n + block - 1) / block;
        *dtype = "NF4";
        *bytes = (n + 1) / 2 + (m->variant.nf4_double_quant
                                    ? n_blocks + (n_blocks + QE_NF4_DQ_BLOCK - 1) / QE_NF4_DQ_BLOCK * 4 + 4
                                    : n_blocks * 4);
    } else {
        *dtype = qe_dtype_name(m->compute_dtype);
        *bytes = n * qe_dtype_size(m->compute_dtype);
    }
}

/* parameters x the variant's nominal bytes per parameter */
static uint64_t estimate_bytes(const qe_model *m)
{
    switch (m->variant.kind) {
    case QE_VARIANT_BF16: return m->n_params * 2;
    case QE_VARIANT_INT8: return m->n_params;
    case QE_VARIANT_NF4: return (m->n_params + 1) / 2;
    default: return m->n_params * 4;
    }
}

static uint64_t resident_bytes(const qe_model *m)
{
    uint64_t bytes = ((uint64_t)m->cfg.n_vocab + 1) * m->cfg.hidden * sizeof(float); /* embedding, final norm */
    if (!m->cfg.tie_embeddings || m->lm_head.owned[0]) /* a 16-bit head is a copy even when tied */
        bytes += m->lm_head.resident_bytes;
    if (m->variant.kind == QE_VARIANT_NF4) /* the code tables, shared by every linear */
        bytes += qe_nf4_shared_table_bytes(m->variant.nf4_double_quant);
    for (int i = 0; i < m->cfg.n_layers; i++) {
        const qe_layer *l = &m->layers[i];
        const qe_linear *lins[] = {&l->q, &l->k, &l->v, &l->o, &l->gate, &l->up, &l->down};
        for (size_t j = 0; j < sizeof lins / sizeof lins[0]; j++)
            bytes += lins[j]->resident_bytes;
        bytes += (uint64_t)(l->post_attn_norm ? 4 : 2) * m->cfg.hidden * sizeof(float);
    }
    return bytes;
}

static qe_status load_weights(qe_model *m, qe_error *err)
{
    const qe_model_config *c = &m->cfg;
    const qe_tensor_view *emb;
    float *owned;
    qe_status rc;
    if ((rc = find_tensor(m, "model.embed_tokens.weight", &emb, err)) ||
        (rc = check_shape(emb, c->n_vocab, c->hidden, err)) ||
        (rc = qe_tensor_as_f32(emb, &m->embed, &owned, err)) || (rc = keep_owned(m, owned, err)) ||
        (rc = round_to_compute(m, &m->embed, (size_t)c->n_vocab * c->hidden, err)) ||
        (rc = load_vector(m, "model.norm.weight", c->hidden, &m->final_norm, err)))
        return rc;
    /* bitsandbytes leaves lm_head unquantized: float32, or 16-bit in the compute dtype */
    const float *head_data = m->embed;
    if (!c->tie_embeddings) {
        const qe_tensor_view *head;
        if ((rc = find_tensor(m, "lm_head.weight", &head, err)) ||
            (rc = check_shape(head, c->n_vocab, c->hidden, err)) ||
            (rc = qe_tensor_as_f32(head, &head_data, &owned, err)) || (rc = keep_owned(m, owned, err)))
            return rc;
    }
    if (m->compute_dtype == QE_DTYPE_F32)
        qe_linear_wrap_f32(&m->lm_head, head_data, NULL, c->n_vocab, c->hidden);
    else if ((rc = qe_linear_init_half(&m->lm_head, m->compute_dtype, head_data, NULL, c->n_vocab, c->hidden, err)))
        return rc;
    m->layers = calloc(c->n_layers, sizeof *m->layers);
    if (!m->layers)
        return qe_fail(err, QE_ENOMEM, "%s: out of memory for %d layers", m->path, c->n_layers);
    for (int i = 0; i < c->n_layers; i++)
        if ((rc = load_layer(m, i, &m->layers[i], err)))
            return rc;
    return QE_OK;
}

static void fill_info(qe_model *m)
{
    qe_model_info *info = &m->info;
    const qe_model_config *c = &m->cfg;
    info->architecture = qe_arch_name(c->arch);
    info->n_vocab = c->n_vocab;
    info->n_layers = c->n_layers;
    info->hidden = c->hidden;
    info->n_heads = c->n_heads;
    info->n_kv_heads = c->n_kv_heads;
    info->head_dim = c->head_dim;
    info->max_context = m->max_context;
    info->n_params = m->n_params;
    info->bos_id = m->tokenizer && qe_tokenizer_bos_id(m->tokenizer) >= 0 ? qe_tokenizer_bos_id(m->tokenizer)
                                                                           : c->bos_id;
    info->eos_id = m->tokenizer && qe_tokenizer_eos_id(m->tokenizer) >= 0 ? qe_tokenizer_eos_id(m->tokenizer)
                                                                           : (c->n_eos ? c->eos_ids[0] : -1);
    info->add_bos = m->tokenizer ? qe_tokenizer_adds_bos(m->tokenizer) : false;
    info->footprint_bytes = m->resident_bytes;
    info->hf_footprint_bytes = hf_footprint_bytes(m);
    info->estimate_bytes = estimate_bytes(m);
    info->source_note = m->source_note ? m->source_note : "";
}

qe_device_kind qe_default_device(void) { return QE_DEVICE_CPU; /* no CUDA backend yet */ }

qe_status qe_model_load(const char *path, const qe_load_options *options, qe_model **out, qe_error *err)
{
    *out = NULL;
    qe_load_options defaults = {.variant = {.kind = QE_VARIANT_FP32}, .device = QE_DEVICE_CPU};
    if (!options)
        options = &defaults;
    if (options->device != QE_DEVICE_CPU)
        return qe_fail(err, QE_EUNSUPPORTED, "%s: only the CPU device is implemented (the CUDA backend is not written yet; use --device cpu)", path);
    qe_model *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(path))) {
        free(m);
        return qe_fail(err, QE_ENOMEM, "%s: out of memory", path);
    }
    m->variant = options->variant;
    m->compute_dtype = qe_variant_compute_dtype(&m->variant);
    qe_status rc;
    char tok_path[4096];
    size_t path_len = strlen(path);
    bool is_gguf = path_len > 5 && !strcmp(path + path_len - 5, ".gguf");
    if (is_gguf)
        rc = qe_gguf_model_open(path, !options->metadata_only, &m->cfg, &m->weights, &m->tokenizer,
                                &m->chat_template, &m->source_note, err);
    else if ((rc = qe_model_config_load(path, &m->cfg, err)) == QE_OK)
        rc = qe_weight_set_open(path, &m->weights, err);
    if (rc || (!options->metadata_only && (rc = load_weights(m, err))))
        goto fail;
    m->is_runnable = !options->metadata_only;
    m->max_context = options->max_context > 0 && options->max_context < m->cfg.max_context ? options->max_context
                                                                                          : m->cfg.max_context;
    if ((rc = qe_pool_create(options->n_threads, &m->pool, err)) ||
        (rc = qe_backend_cpu_create(m->pool, &m->backend, err)))
        goto fail;
    m->k_cache = calloc(m->cfg.n_layers, sizeof *m->k_cache);
    m->v_cache = calloc(m->cfg.n_layers, sizeof *m->v_cache);
    if (!m->k_cache || !m->v_cache) {
        rc = qe_fail(err, QE_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    if (!is_gguf && (rc = qe_path_join(tok_path, sizeof tok_path, path, "tokenizer.json", err)))
        goto fail;
    if (!is_gguf && qe_file_exists(tok_path) && (rc = qe_tokenizer_load_hf(path, &m->tokenizer, err)))
        goto fail;
    if (!is_gguf && (rc = qe_chat_template_read_hf(path, &m->chat_template, err)))
        goto fail;
    count_params(m);
    m->resident_bytes = m->is_runnable ? resident_bytes(m) : 0;
    fill_info(m);
    *out = m;
    return QE_OK;
fail:
    qe_model_free(m);
    return rc;
}

void qe_model_free(qe_model *m)
{
    if (!m)
        return;
    if (m->layers)
        for (int i = 0; i < m->cfg.n_layers; i++) {
            qe_layer *l = &m->layers[i];
            qe_linear *lins[] = {&l->q, &l->k, &l->v, &l->o, &l->gate, &l->up, &l->down};
            for (size_t j = 0; j < sizeof lins / sizeof lins[0]; j++)
                qe_linear_free(lins[j]);
        }
    free(m->layers);
    qe_linear_free(&m->lm_head);
    if (m->backend) {
        for (int i = 0; i < m->cfg.n_layers && m->k_cache && m->v_cache; i++) {
            m->backend->release(m->backend, m->k_cache[i]);
            m->backend->release(m->backend, m->v_cache[i]);
        }
        m->backend->destroy(m->backend);
    }
    free(m->k_cache);
    free(m->v_cache);
    free(m->cached_ids);
    qe_pool_free(m->pool);
    for (int i = 0; i < m->n_owned; i++)
        free(m->owned[i]);
    free(m->owned);
    qe_tokenizer_free(m->tokenizer);
    free(m->chat_template);
    qe_weight_set_close(&m->weights);
    qe_model_config_free(&m->cfg);
    free(m->path);
    free(m);
}

void qe_model_get_info(const qe_model *model, qe_model_info *info) { *info = model->info; }

int qe_model_n_tensors(const qe_model *model) { return qe_weight_set_count(&model->weights); }

qe_status qe_model_tensor_info(const qe_model *model, int index, qe_tensor_info *info, qe_error *err)
{
    const qe_tensor_view *t = qe_weight_set_at(&model->weights, index);
    if (!t)
        return qe_fail(err, QE_EINVAL, "%s: tensor index out of range", model->path);
    info->name = t->name;
    info->dtype = qe_dtype_name(t->dtype);
    info->n_dims = t->n_dims;
    memcpy(info->shape, t->shape, sizeof info->shape);
    info->n_elements = t->n_elements;
    info->n_bytes = t->n_bytes;
    stored_form(model, t, &info->stored_dtype, &info->stored_bytes);
    return QE_OK;
}
