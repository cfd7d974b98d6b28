/* Loading a model (Hugging Face directory or GGUF file) into a qe_model on its backend, and the
 * model-level API calls.
 *
 * Loading streams: each tensor is read as float32 on its own (a view of the mapping, or one
 * converted or dequantized copy), turned into the variant's qe_weight, handed to the backend's
 * prepare_linear, and its float32 copy freed before the next tensor is read. So making a
 * variant holds at most its own resident bytes, one tensor in float32 and what the mapping has
 * touched. */
#include "model.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_template.h"
#include "cuda/backend_cuda.h"
#include "file_util.h"
#include "gguf_model.h"
#include "host_memory.h"
#include "variant.h"

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

static qe_status read_f32(qe_model *m, const qe_tensor_view *t, const float **data, float **owned, qe_error *err)
{
    return qe_weight_set_read_f32(&m->weights, t, data, owned, err);
}

/* A norm vector [n] rounded to the compute dtype (transformers holds every unquantized parameter
 * in it), uploaded to the backend. */
static qe_status load_vector(qe_model *m, const char *name, int n, float **out, qe_error *err)
{
    const qe_tensor_view *t;
    const float *data;
    float *owned;
    qe_status rc;
    if ((rc = find_tensor(m, name, &t, err)) || (rc = check_shape(t, n, 0, err)) ||
        (rc = read_f32(m, t, &data, &owned, err)))
        return rc;
    float rounded[n];
    for (int i = 0; i < n; i++)
        rounded[i] = qe_round_to(data[i], m->compute_dtype);
    free(owned);
    qe_backend *be = m->backend;
    if (!(*out = be->upload_new(be, rounded, (size_t)n, m->compute_dtype)))
        return be->sync(be, err);
    m->resident_bytes += qe_norm_bytes(n);
    return QE_OK;
}

/* Hands w to the backend; *out is its handle. */
static qe_status prepare(qe_model *m, qe_weight *w, qe_backend_linear **out, qe_error *err)
{
    qe_backend *be = m->backend;
    qe_status rc = be->prepare_linear(be, w, m->compute_dtype, out, err);
    if (rc == QE_OK)
        m->resident_bytes += be->linear_bytes(be, *out);
    return rc;
}

static qe_status load_linear(qe_model *m, const char *name, int rows, int cols, bool has_bias, qe_backend_linear **lin,
                             qe_error *err)
{
    char key[256];
    const qe_tensor_view *t, *b = NULL;
    qe_status rc;
    snprintf(key, sizeof key, "%s.weight", name);
    if ((rc = find_tensor(m, key, &t, err)) || (rc = check_shape(t, rows, cols, err)))
        return rc;
    if (has_bias) {
        snprintf(key, sizeof key, "%s.bias", name);
        if ((rc = find_tensor(m, key, &b, err)) || (rc = check_shape(b, rows, 0, err)))
            return rc;
    }
    const float *data, *bias_data = NULL;
    float *owned = NULL, *bias_owned = NULL;
    qe_weight w = {0};
    if ((rc = read_f32(m, t, &data, &owned, err)) == QE_OK) {
        if (m->variant.kind == QE_VARIANT_FP32 && data == owned) { /* a converted copy is the fp32 weight */
            qe_weight_wrap_f32(&w, data, owned, rows, cols);
            owned = NULL;
        } else if (m->variant.kind == QE_VARIANT_FP32) { /* a view of the mapping */
            qe_weight_wrap_f32(&w, data, NULL, rows, cols);
        } else if ((rc = qe_weight_quantize(&w, &m->variant, data, rows, cols, err)) != QE_OK) {
            qe_fail_context(err, "%s: tensor '%s'", t->file_path, t->name);
        }
        free(owned);
    }
    if (rc == QE_OK && b && (rc = read_f32(m, b, &bias_data, &bias_owned, err)) == QE_OK) {
        rc = qe_weight_set_bias(&w, bias_data, m->compute_dtype, err);
        free(bias_owned);
    }
    if (rc == QE_OK)
        return prepare(m, &w, lin, err);
    qe_weight_free(&w);
    return rc;
}

/* An embedding table or unquantized head [n_vocab, hidden] in the compute dtype's format. */
static qe_status load_table(qe_model *m, const char *name, qe_backend_linear **out, qe_error *err)
{
    const qe_model_config *c = &m->cfg;
    const qe_tensor_view *t;
    const float *data;
    float *owned;
    qe_status rc;
    if ((rc = find_tensor(m, name, &t, err)) || (rc = check_shape(t, c->n_vocab, c->hidden, err)) ||
        (rc = read_f32(m, t, &data, &owned, err)))
        return rc;
    qe_weight w;
    qe_weight_format format = qe_weight_format_of_dtype(m->compute_dtype);
    if (format == QE_WEIGHT_F32) {
        qe_weight_wrap_f32(&w, data, owned, c->n_vocab, c->hidden);
    } else {
        rc = qe_weight_init_half(&w, format, data, c->n_vocab, c->hidden, err);
        free(owned);
        if (rc != QE_OK)
            return qe_fail_context(err, "%s: tensor '%s'", t->file_path, t->name);
    }
    return prepare(m, &w, out, err);
}

int qe_layer_parts(const qe_model_config *c, qe_layer_part parts[QE_MAX_LAYER_PARTS])
{
    int q_rows = c->n_heads * c->head_dim, kv_rows = c->n_kv_heads * c->head_dim, n = 0;
#define LINEAR(nm, r, k, bias, field) \
    parts[n++] = (qe_layer_part){nm, QE_PART_LINEAR, r, k, bias, offsetof(qe_layer, field)}
#define NORM(nm, r, field) parts[n++] = (qe_layer_part){nm, QE_PART_NORM, r, 0, false, offsetof(qe_layer, field)}
    NORM("input_layernorm.weight", c->hidden, attn_norm);
    LINEAR("self_attn.q_proj", q_rows, c->hidden, c->has_qkv_bias, q);
    LINEAR("self_attn.k_proj", kv_rows, c->hidden, c->has_qkv_bias, k);
    LINEAR("self_attn.v_proj", kv_rows, c->hidden, c->has_qkv_bias, v);
    LINEAR("self_attn.o_proj", c->hidden, q_rows, false, o);
    LINEAR("mlp.gate_proj", c->intermediate, c->hidden, false, gate);
    LINEAR("mlp.up_proj", c->intermediate, c->hidden, false, up);
    LINEAR("mlp.down_proj", c->hidden, c->intermediate, false, down);
    if (c->has_sandwich_norms) {
        NORM("post_attention_layernorm.weight", c->hidden, post_attn_norm);
        NORM("pre_feedforward_layernorm.weight", c->hidden, ffn_norm);
        NORM("post_feedforward_layernorm.weight", c->hidden, post_ffn_norm);
    } else {
        NORM("post_attention_layernorm.weight", c->hidden, ffn_norm);
    }
    if (c->has_qk_norm) {
        NORM("self_attn.q_norm.weight", c->head_dim, q_norm);
        NORM("self_attn.k_norm.weight", c->head_dim, k_norm);
    }
#undef LINEAR
#undef NORM
    return n;
}

static qe_status load_layer(qe_model *m, int i, qe_layer *layer, qe_error *err)
{
    qe_layer_part parts[QE_MAX_LAYER_PARTS];
    int n_parts = qe_layer_parts(&m->cfg, parts);
    char key[256];
    qe_status rc = QE_OK;
    for (int p = 0; p < n_parts && rc == QE_OK; p++) {
        const qe_layer_part *part = &parts[p];
        void *slot = (char *)layer + part->offset;
        snprintf(key, sizeof key, "model.layers.%d.%s", i, part->name);
        if (part->kind == QE_PART_LINEAR)
            rc = load_linear(m, key, part->rows, part->cols, part->has_bias, (qe_backend_linear **)slot, err);
        else
            rc = load_vector(m, key, part->rows, (float **)slot, err);
    }
    return rc;
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

/* transformers' get_memory_footprint(): every parameter (a tied head once, each as
 * qe_variant_hf_tensor_bytes counts it) plus the buffers: each rotary embedding's inv_freq and
 * original_inv_freq, float32 [head_dim / 2]. Measured against transformers 5.17 +
 * bitsandbytes 0.50.2 (tests/golden/bnb/footprint.json). */
static uint64_t hf_footprint_bytes(const qe_model *m)
{
    uint64_t bytes = (uint64_t)m->cfg.n_ropes * 2 * (m->cfg.head_dim / 2) * sizeof(float);
    for (int i = 0; i < qe_weight_set_count(&m->weights); i++) {
        const qe_tensor_view *t = qe_weight_set_at(&m->weights, i);
        if (!(m->cfg.tie_embeddings && !strcmp(t->name, "lm_head.weight")))
            bytes += qe_variant_hf_tensor_bytes(&m->variant, t->name, t->n_elements);
    }
    return bytes;
}

static qe_status load_weights(qe_model *m, qe_error *err)
{
    const qe_model_config *c = &m->cfg;
    qe_status rc;
    if ((rc = load_table(m, "model.embed_tokens.weight", &m->embed, err)) ||
        (rc = load_vector(m, "model.norm.weight", c->hidden, &m->final_norm, err)))
        return rc;
    /* bitsandbytes leaves lm_head unquantized, in the compute dtype: a tied head is the
     * embedding's own handle */
    if (c->tie_embeddings)
        m->lm_head = m->embed;
    else if ((rc = load_table(m, "lm_head.weight", &m->lm_head, err)))
        return rc;
    if (m->variant.kind == QE_VARIANT_NF4) /* the code tables, shared by every linear */
        m->resident_bytes += qe_nf4_shared_table_bytes(m->variant.nf4_double_quant);
    m->layers = calloc(c->n_layers, sizeof *m->layers);
    if (!m->layers)
        return qe_fail(err, QE_ENOMEM, "%s: out of memory for %d layers", m->path, c->n_layers);
    for (int i = 0; i < c->n_layers; i++)
        if ((rc = load_layer(m, i, &m->layers[i], err)))
            return rc;
    return QE_OK;
}

/* The backend options ask for. */
static qe_status create_backend(const char *path, const qe_load_options *o, qe_backend **out, qe_error *err)
{
    qe_status rc;
    switch (o->device) {
    case QE_DEVICE_CPU: rc = qe_backend_cpu_create(o->n_threads, out, err); break;
    case QE_DEVICE_REF: rc = qe_backend_ref_create(out, err); break;
    case QE_DEVICE_CUDA: rc = qe_backend_cuda_create(o->device_index, out, err); break;
    default: rc = qe_fail(err, QE_EINVAL, "device %d is not one qeval knows", (int)o->device);
    }
    return rc == QE_OK ? QE_OK : qe_fail_context(err, "%s", path);
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
    info->estimate_bytes = qe_variant_estimate_bytes(&m->variant, m->n_params);
    uint64_t untied_embed = m->backend && m->embed && m->embed != m->lm_head ? m->backend->linear_bytes(m->backend, m->embed) : 0;
    info->decode_read_bytes = m->resident_bytes - untied_embed;
    info->source_note = m->source_note ? m->source_note : "";
    info->notice = m->notice;
}

qe_device_kind qe_default_device(void) { return qe_gpu_count() > 0 ? QE_DEVICE_CUDA : QE_DEVICE_CPU; }

bool qe_model_device_memory(const qe_model *model, qe_device_memory *out)
{
    memset(out, 0, sizeof *out);
    qe_backend_memory mem;
    if (!model->backend || !qe_backend_cuda_memory(model->backend, &mem))
        return false;
    out->weights_bytes = mem.current_bytes[QE_MEM_LINEAR] + mem.current_bytes[QE_MEM_EMBEDDING] +
                         mem.current_bytes[QE_MEM_NORM];
    out->kv_cache_peak_bytes = mem.peak_bytes[QE_MEM_KV_CACHE];
    out->workspace_peak_bytes = mem.peak_bytes[QE_MEM_WORKSPACE];
    out->activations_peak_bytes = mem.peak_bytes[QE_MEM_ACTIVATIONS];
    out->peak_bytes = mem.total_peak_bytes;
    out->free_before_bytes = mem.device_free_at_create_bytes;
    out->free_now_bytes = mem.device_free_now_bytes;
    out->used_peak_bytes = mem.device_used_peak_bytes;
    out->total_bytes = mem.device_total_bytes;
    snprintf(out->name, sizeof out->name, "%s", mem.device_name);
    return true;
}

uint64_t qe_model_kv_cache_bytes(const qe_model *model)
{
    uint64_t bytes = 0;
    for (int i = 0; i < qe_model_sequence_caches(model); i++)
        bytes += qe_kv_cache_bytes(&model->cfg, qe_model_cache(model, i)->kv_capacity, model->max_context,
                                   model->chunk_tokens);
    return bytes;
}

int qe_model_sequence_caches(const qe_model *model) { return 1 + model->n_gen_slots; }

uint64_t qe_model_free_memory_bytes(const qe_model *model)
{
    qe_backend_memory mem;
    if (model->backend && qe_backend_cuda_memory(model->backend, &mem))
        return mem.device_free_now_bytes;
    return qe_host_available_bytes();
}

qe_status qe_model_load(const char *path, const qe_load_options *options, qe_model **out, qe_error *err)
{
    *out = NULL;
    qe_load_options defaults = {.variant = {.kind = QE_VARIANT_FP32}, .device = QE_DEVICE_CPU};
    if (!options)
        options = &defaults;
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
    const char *gguf_notice = "";
    if (is_gguf)
        rc = qe_gguf_model_open(path, !options->metadata_only, &m->cfg, &m->weights, &m->tokenizer,
                                &m->chat_template, &m->source_note, &gguf_notice, err);
    else if ((rc = qe_model_config_load(path, &m->cfg, err)) == QE_OK)
        rc = qe_weight_set_open(path, &m->weights, err);
    if (gguf_notice[0])
        snprintf(m->notice, sizeof m->notice, "%s: %s", path, gguf_notice);
    else if (m->weights.text_prefix)
        snprintf(m->notice, sizeof m->notice, "%s: the text model of a multimodal checkpoint (tensors under '%s'); "
                 "%d vision tower / projector tensors ignored", path, m->weights.text_prefix, m->weights.n_ignored);
    if (rc || (rc = create_backend(path, options, &m->backend, err)) ||
        (!options->metadata_only && (rc = load_weights(m, err))))
        goto fail;
    m->is_runnable = !options->metadata_only;
    m->max_context = options->max_context > 0 && options->max_context < m->cfg.max_context ? options->max_context
                                                                                          : m->cfg.max_context;
    m->chunk_tokens = QE_FORWARD_CHUNK_TOKENS;
    m->pass_tokens = qe_forward_device_chunk(options->device);
    if ((rc = qe_kv_cache_init(&m->kv, m->cfg.n_layers, err)) != QE_OK) {
        qe_fail_context(err, "%s", path);
        goto fail;
    }
    if (!is_gguf && (rc = qe_path_join(tok_path, sizeof tok_path, path, "tokenizer.json", err)))
        goto fail;
    if (!is_gguf && qe_file_exists(tok_path) && (rc = qe_tokenizer_load_hf(path, &m->tokenizer, err)))
        goto fail;
    if (!is_gguf && (rc = qe_chat_template_read_hf(path, &m->chat_template, err)))
        goto fail;
    count_params(m);
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
    qe_backend *be = m->backend;
    if (be) {
        for (int i = 0; m->layers && i < m->cfg.n_layers; i++) {
            qe_layer *l = &m->layers[i];
            qe_backend_linear *lins[] = {l->q, l->k, l->v, l->o, l->gate, l->up, l->down};
            for (size_t j = 0; j < sizeof lins / sizeof lins[0]; j++)
                be->free_linear(be, lins[j]);
            float *norms[] = {l->attn_norm, l->ffn_norm, l->post_attn_norm, l->post_ffn_norm, l->q_norm, l->k_norm};
            for (size_t j = 0; j < sizeof norms / sizeof norms[0]; j++)
                be->release(be, norms[j]);
        }
        if (m->lm_head != m->embed)
            be->free_linear(be, m->lm_head);
        be->free_linear(be, m->embed);
        be->release(be, m->final_norm);
        qe_forward_scratch_free(be, &m->scratch);
    }
    for (int i = 0; i < qe_model_sequence_caches(m); i++)
        qe_kv_cache_free(be, m->cfg.n_layers, qe_model_cache(m, i));
    free(m->gen_slots);
    if (be)
        be->destroy(be);
    free(m->layers);
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
    if (model->cfg.tie_embeddings && !strcmp(t->name, "lm_head.weight")) {
        info->stored_dtype = "tied";
        info->stored_bytes = 0;
    } else {
        qe_variant_stored_form(&model->variant, t->name, t->n_dims, t->n_elements, t->shape[0], &info->stored_dtype,
                               &info->stored_bytes);
    }
    return QE_OK;
}
