/* estimate — what a model variant needs in memory for a context and batch, from its
 * configuration alone (qeval_engine.h, qe_estimate_memory). Nothing here restates a size: the
 * weights come from the loader's own list of layer parts (qe_layer_parts) and byte rules
 * (qe_weight_format_bytes, qe_norm_bytes, qe_nf4_shared_table_bytes), the activations from the
 * forward pass's scratch sizes, the workspace from each backend's reservation rule. So the
 * predicted weight bytes are the loaded footprint exactly (tests/test_estimate.c checks it for
 * every shared model and variant).
 *
 * The KV cache is the forward pass's own rule (qe_kv_cache_bytes, model_config.h) for a run whose
 * longest context is the one asked for: a sliding-window layer holds a ring of at most window +
 * QE_FORWARD_CHUNK_TOKENS - 1 positions; the unbounded figure is every layer holding the whole
 * context. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cuda/backend_cuda.h"
#include "file_util.h"
#include "gguf.h"
#include "gguf_model.h"
#include "model.h"
#include "variant.h"

/* A norm vector of n values as the backend of device holds it (the CPU: float32). */
static uint64_t norm_bytes_on(qe_device_kind device, int n, qe_dtype compute_dtype)
{
    return device == QE_DEVICE_CUDA ? qe_cuda_norm_bytes(n, compute_dtype) : qe_norm_bytes(n);
}

/* Weights and parameters of cfg in the variant, as load_weights loads them, and as the backend
 * of device holds them (the CUDA backend's linears and norms: qe_cuda_linear_bytes,
 * qe_cuda_norm_bytes; NF4's code tables are in its constant memory). */
static void count_weights(const qe_model_config *cfg, const qe_variant *variant, qe_device_kind device,
                          qe_memory_estimate *out)
{
    bool is_nf4 = variant->kind == QE_VARIANT_NF4, on_gpu = device == QE_DEVICE_CUDA;
    qe_dtype compute_dtype = qe_variant_compute_dtype(variant);
    qe_weight_format linear_format = qe_weight_linear_format(variant);
    qe_weight_format table_format = qe_weight_format_of_dtype(compute_dtype);
    qe_layer_part parts[QE_MAX_LAYER_PARTS];
    int n_parts = qe_layer_parts(cfg, parts);
    uint64_t layer_linear = 0, layer_norm = 0, layer_params = 0;
    for (int p = 0; p < n_parts; p++) {
        const qe_layer_part *part = &parts[p];
        if (part->kind == QE_PART_LINEAR) {
            layer_linear += (on_gpu ? qe_cuda_linear_bytes : qe_weight_format_bytes)(
                linear_format, part->rows, part->cols, variant->nf4_block_size, variant->nf4_double_quant, part->has_bias);
            layer_params += (uint64_t)part->rows * part->cols + (part->has_bias ? (uint64_t)part->rows : 0);
        } else {
            layer_norm += norm_bytes_on(device, part->rows, compute_dtype);
            layer_params += (uint64_t)part->rows;
        }
    }
    int n_tables = cfg->tie_embeddings ? 1 : 2; /* embedding, and the head unless it is the embedding */
    out->linear_bytes = layer_linear * (uint64_t)cfg->n_layers;
    out->norm_bytes = layer_norm * (uint64_t)cfg->n_layers + norm_bytes_on(device, cfg->hidden, compute_dtype);
    out->table_bytes = (uint64_t)n_tables * qe_weight_format_bytes(table_format, cfg->n_vocab, cfg->hidden, 0,
                                                                   false, false);
    out->code_table_bytes = is_nf4 && !on_gpu ? qe_nf4_shared_table_bytes(variant->nf4_double_quant) : 0;
    out->weights_bytes = out->linear_bytes + out->norm_bytes + out->table_bytes + out->code_table_bytes;
    out->n_params = layer_params * (uint64_t)cfg->n_layers + (uint64_t)n_tables * cfg->n_vocab * cfg->hidden +
                    (uint64_t)cfg->hidden;
    out->rule_of_thumb_bytes = qe_variant_estimate_bytes(variant, out->n_params);
}

/* KV cache of context positions for batch sequences, each run with max_context = context:
 * bounded (sliding layers hold their ring) and unbounded (every layer the context). */
static void count_kv(const qe_model_config *cfg, int context, int batch, uint64_t *bounded, uint64_t *unbounded)
{
    *bounded = qe_kv_cache_bytes(cfg, context, context, QE_FORWARD_CHUNK_TOKENS) * (uint64_t)batch;
    *unbounded = 2 * (uint64_t)qe_kv_row_floats(cfg) * sizeof(float) * (uint64_t)context * (uint64_t)cfg->n_layers *
                 (uint64_t)batch; /* K and V */
}

/* The chunk a pass asks for (model.c's pass_tokens): the option, else the device's default. */
static int requested_chunk(const qe_estimate_options *o)
{
    return o->chunk_tokens ? o->chunk_tokens : qe_forward_device_chunk(o->device);
}

/* Values of the largest linear of a layer (an NF4 variant's largest NF4 weight). */
static uint64_t largest_linear_elements(const qe_model_config *cfg)
{
    qe_layer_part parts[QE_MAX_LAYER_PARTS];
    int n_parts = qe_layer_parts(cfg, parts);
    uint64_t most = 0;
    for (int p = 0; p < n_parts; p++)
        if (parts[p].kind == QE_PART_LINEAR && (uint64_t)parts[p].rows * (uint64_t)parts[p].cols > most)
            most = (uint64_t)parts[p].rows * (uint64_t)parts[p].cols;
    return most;
}

/* One forward pass of `rows` rows with the cache reaching context positions: its activations
 * and the workspace the backend keeps for it. */
static void count_pass(const qe_model_config *cfg, const qe_estimate_options *o, int rows, int context,
                       uint64_t *activation, uint64_t *workspace)
{
    int max_n_in = qe_forward_max_n_in(cfg);
    *activation = qe_forward_activation_bytes(cfg, rows);
    if (o->device == QE_DEVICE_CUDA) {
        /* the int8 and nf4 variants' linears (qe_cuda_format_needs_workspace); the others' need
         * none; nf4's passes of many tokens hold a bf16 copy of a weight there. A 16-bit compute
         * dtype's prefill linears read x as 16-bit rows (qe_cuda_x16_bytes) */
        bool is_nf4 = o->variant.kind == QE_VARIANT_NF4, is_quantized = is_nf4 || o->variant.kind == QE_VARIANT_INT8;
        uint64_t nf4_max = is_nf4 ? largest_linear_elements(cfg) : 0;
        *workspace = (is_quantized ? qe_cuda_workspace_bytes_nf4(rows, max_n_in, nf4_max) : 0) +
                     qe_cuda_x16_bytes(rows, max_n_in, qe_variant_compute_dtype(&o->variant) != QE_DTYPE_F32) +
                     QE_CUDA_STAGING_ROWS * sizeof(int32_t);
    } else {
        *activation += qe_forward_host_table_bytes(cfg, rows); /* host memory like the rest */
        *workspace = qe_cpu_workspace_bytes(o->n_threads, rows, context, max_n_in);
    }
}

/* Everything that depends on the context; the weights are already in out. */
static void count_context(const qe_model_config *cfg, const qe_estimate_options *o, int context, int batch,
                          qe_memory_estimate *out)
{
    out->context = context;
    out->batch = batch;
    count_kv(cfg, context, batch, &out->kv_cache_bytes, &out->kv_cache_unbounded_bytes);
    /* as batched generation runs B sequences: each prompt in passes of its own (a chunk), then
     * steps of one token for each of them */
    int chunk_rows = qe_forward_chunk_tokens(cfg, QE_FORWARD_CHUNK_TOKENS, requested_chunk(o), context);
    count_pass(cfg, o, chunk_rows, context, &out->scoring_activation_bytes, &out->scoring_workspace_bytes);
    count_pass(cfg, o, batch, context, &out->decode_activation_bytes, &out->decode_workspace_bytes);
    uint64_t scoring = out->scoring_activation_bytes + out->scoring_workspace_bytes;
    uint64_t decode = out->decode_activation_bytes + out->decode_workspace_bytes;
    out->activation_bytes = scoring > decode ? scoring : decode;
    out->context_overhead_bytes = o->device == QE_DEVICE_CUDA ? QE_CUDA_CONTEXT_BYTES : 0;
    out->total_bytes = out->weights_bytes + out->kv_cache_bytes + out->activation_bytes + out->context_overhead_bytes;
}

static qe_status estimate_config(const char *path, const qe_model_config *cfg, int default_context,
                                 const qe_estimate_options *o, qe_memory_estimate *out, qe_error *err)
{
    memset(out, 0, sizeof *out);
    if (o->device != QE_DEVICE_CPU && o->device != QE_DEVICE_CUDA)
        return qe_fail(err, QE_EINVAL, "%s: a memory estimate is for the cpu or cuda device", path);
    if (o->context < 0 || o->batch < 0 || o->n_threads < 0 || o->chunk_tokens < 0)
        return qe_fail(err, QE_EINVAL, "%s: context %d, batch %d, threads %d and chunk %d must not be negative", path,
                       o->context, o->batch, o->n_threads, o->chunk_tokens);
    int context = o->context ? o->context : default_context, batch = o->batch ? o->batch : 1;
    int chunk = requested_chunk(o);
    if (chunk == 0)
        chunk = QE_FORWARD_CHUNK_TOKENS;
    /* a pass holds a chunk of one sequence or a token of each, an int in the forward pass */
    if (chunk > (1 << 30) || batch > (1 << 30))
        return qe_fail(err, QE_EINVAL, "%s: chunk %d or batch %d rows a pass; at most %d", path, chunk, batch, 1 << 30);
    if (context > cfg->max_context)
        return qe_fail(err, QE_EINVAL, "%s: context %d is longer than the model's max_position_embeddings %d", path,
                       context, cfg->max_context);
    out->architecture = qe_arch_name(cfg->arch);
    out->n_layers = cfg->n_layers;
    out->max_position = cfg->max_context;
    for (int i = 0; i < cfg->n_layers; i++)
        if (cfg->layers[i].sliding_window > 0) {
            out->n_sliding_layers++;
            if (cfg->layers[i].sliding_window > out->sliding_window)
                out->sliding_window = cfg->layers[i].sliding_window;
        }
    count_weights(cfg, &o->variant, o->device, out);
    if (o->memory_bytes > 0) {
        /* the total grows with the context: the longest that fits by bisection */
        qe_memory_estimate probe = *out;
        int lo = 0, hi = default_context; /* a loaded model runs at most its own max_context */
        while (lo < hi) {
            int mid = lo + (hi - lo + 1) / 2;
            count_context(cfg, o, mid, batch, &probe);
            if (probe.total_bytes <= o->memory_bytes)
                lo = mid;
            else
                hi = mid - 1;
        }
        out->max_context = lo;
    }
    count_context(cfg, o, context, batch, out);
    if (o->memory_bytes > 0) {
        out->has_verdict = true;
        out->fits = out->total_bytes <= o->memory_bytes;
        out->headroom_bytes = (int64_t)o->memory_bytes - (int64_t)out->total_bytes;
    }
    return QE_OK;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

qe_status qe_estimate_memory(const char *path, const char *config_json, const qe_estimate_options *options,
                             qe_memory_estimate *out, qe_error *err)
{
    memset(out, 0, sizeof *out);
    qe_model_config cfg;
    qe_status rc;
    char *json = NULL;
    if (config_json) {
        rc = qe_model_config_parse(path, config_json, &cfg, err);
    } else if (ends_with(path, ".gguf")) {
        qe_gguf *g = NULL;
        if ((rc = qe_gguf_open(path, &g, err)) == QE_OK)
            rc = qe_gguf_model_config(g, &cfg, err);
        qe_gguf_close(g);
    } else if (qe_is_directory(path)) {
        rc = qe_model_config_load(path, &cfg, err);
    } else if ((rc = qe_read_file(path, &json, NULL, err)) == QE_OK) {
        rc = qe_model_config_parse(path, json, &cfg, err);
    }
    free(json);
    if (rc != QE_OK)
        return rc;
    rc = estimate_config(path, &cfg, cfg.max_context, options, out, err);
    qe_model_config_free(&cfg);
    return rc;
}

qe_status qe_model_estimate_memory(const qe_model *model, const qe_estimate_options *options, qe_memory_estimate *out,
                                   qe_error *err)
{
    return estimate_config(model->path, &model->cfg, model->max_context, options, out, err);
}
