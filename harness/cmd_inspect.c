/* qeval inspect MODEL [--variant V] [--device D] [--json] — what a model directory holds:
 * architecture, sizes, parameter count and every stored tensor's name, dtype, shape and bytes.
 * Reads no weights unless --variant is given; then the weights are prepared in that variant on
 * the device (default: the CPU) and the report adds each tensor's stored dtype and bytes and the
 * footprints (qe_model_info); on a GPU also what the device holds (qe_device_memory). */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "model_cache.h"
#include "qeval_engine.h"

static void shape_text(const qe_tensor_info *t, char *buf, size_t n)
{
    size_t used = snprintf(buf, n, "[");
    for (int d = 0; d < t->n_dims && used < n; d++)
        used += snprintf(buf + used, n - used, "%s%" PRId64, d ? ", " : "", t->shape[d]);
    if (used < n)
        snprintf(buf + used, n - used, "]");
}

static int print_json(const qe_model *model, const qe_model_info *info, const char *variant_name, bool with_footprint,
                      const qe_device_memory *device)
{
    cJSON *root = cJSON_CreateObject(), *tensors = cJSON_CreateArray();
    cJSON_AddStringToObject(root, "architecture", info->architecture);
    cJSON_AddNumberToObject(root, "n_params", (double)info->n_params);
    cJSON_AddNumberToObject(root, "n_vocab", info->n_vocab);
    cJSON_AddNumberToObject(root, "n_layers", info->n_layers);
    cJSON_AddNumberToObject(root, "hidden", info->hidden);
    cJSON_AddNumberToObject(root, "n_heads", info->n_heads);
    cJSON_AddNumberToObject(root, "n_kv_heads", info->n_kv_heads);
    cJSON_AddNumberToObject(root, "head_dim", info->head_dim);
    cJSON_AddNumberToObject(root, "max_context", info->max_context);
    cJSON_AddNumberToObject(root, "bos_id", info->bos_id);
    cJSON_AddNumberToObject(root, "eos_id", info->eos_id);
    cJSON_AddStringToObject(root, "variant", variant_name);
    if (with_footprint) {
        cJSON_AddNumberToObject(root, "footprint_bytes", (double)info->footprint_bytes);
        cJSON_AddNumberToObject(root, "hf_footprint_bytes", (double)info->hf_footprint_bytes);
        cJSON_AddNumberToObject(root, "estimate_bytes", (double)info->estimate_bytes);
    }
    if (device) {
        cJSON *d = cJSON_AddObjectToObject(root, "device");
        cJSON_AddStringToObject(d, "name", device->name);
        cJSON_AddNumberToObject(d, "weights_bytes", (double)device->weights_bytes);
        cJSON_AddNumberToObject(d, "peak_bytes", (double)device->peak_bytes);
        cJSON_AddNumberToObject(d, "free_before_bytes", (double)device->free_before_bytes);
        cJSON_AddNumberToObject(d, "free_now_bytes", (double)device->free_now_bytes);
        cJSON_AddNumberToObject(d, "total_bytes", (double)device->total_bytes);
    }
    cJSON_AddItemToObject(root, "tensors", tensors);
    for (int i = 0; i < qe_model_n_tensors(model); i++) {
        qe_tensor_info t;
        qe_error err = {0};
        if (qe_model_tensor_info(model, i, &t, &err) != QE_OK)
            break;
        cJSON *item = cJSON_CreateObject(), *shape = cJSON_CreateArray();
        cJSON_AddStringToObject(item, "name", t.name);
        cJSON_AddStringToObject(item, "dtype", t.dtype);
        for (int d = 0; d < t.n_dims; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t.shape[d]));
        cJSON_AddItemToObject(item, "shape", shape);
        cJSON_AddNumberToObject(item, "bytes", (double)t.n_bytes);
        cJSON_AddStringToObject(item, "stored_dtype", t.stored_dtype);
        cJSON_AddNumberToObject(item, "stored_bytes", (double)t.stored_bytes);
        cJSON_AddItemToArray(tensors, item);
    }
    return qh_print_json(root);
}

static void print_text(const qe_model *model, const qe_model_info *info, const char *variant_name, bool with_footprint,
                       const qe_device_memory *device)
{
    printf("architecture  %s\n", info->architecture);
    printf("parameters    %" PRIu64 "\n", info->n_params);
    printf("vocab         %d\n", info->n_vocab);
    printf("layers        %d\n", info->n_layers);
    printf("hidden        %d\n", info->hidden);
    printf("heads         %d (kv %d, head_dim %d)\n", info->n_heads, info->n_kv_heads, info->head_dim);
    printf("max_context   %d\n", info->max_context);
    printf("bos/eos       %d / %d\n", info->bos_id, info->eos_id);
    printf("variant       %s\n", variant_name);
    if (with_footprint)
        printf("footprint     %" PRIu64 " bytes resident, %" PRIu64 " as transformers counts, %" PRIu64 " estimated\n",
               info->footprint_bytes, info->hf_footprint_bytes, info->estimate_bytes);
    /* cudaMemGetInfo's drop since the backend started is the allocator's count plus what the
     * driver and cuBLAS keep for themselves: both shown so neither is taken on trust */
    if (device)
        printf("device        %s: %" PRIu64 " bytes of weights, %" PRIu64 " at peak; cudaMemGetInfo free %" PRIu64
               " -> %" PRIu64 " (%" PRIu64 " used) of %" PRIu64 "\n",
               device->name, device->weights_bytes, device->peak_bytes, device->free_before_bytes,
               device->free_now_bytes, device->free_before_bytes - device->free_now_bytes, device->total_bytes);
    printf("tensors       %d\n", qe_model_n_tensors(model));
    for (int i = 0; i < qe_model_n_tensors(model); i++) {
        qe_tensor_info t;
        qe_error err = {0};
        if (qe_model_tensor_info(model, i, &t, &err) != QE_OK)
            break;
        char shape[160];
        shape_text(&t, shape, sizeof shape);
        printf("  %-56s %-5s %-16s %10" PRIu64 "  -> %-5s %" PRIu64 "\n", t.name, t.dtype, shape, t.n_bytes,
               t.stored_dtype, t.stored_bytes);
    }
}

int qh_cmd_inspect(int argc, char **argv)
{
    const char *path = NULL;
    bool as_json = false;
    const char *variant_name = NULL;
    qe_device_kind device = QE_DEVICE_CPU;
    int device_index = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: qeval inspect MODEL [--variant fp32|bf16|int8|nf4|nf4-nodq] [--device cpu|cuda|cuda:N] "
                   "[--json]\n");
            return QH_EXIT_OK;
        } else if (!strcmp(argv[i], "--json"))
            as_json = true;
        else if (!strcmp(argv[i], "--variant") && i + 1 < argc)
            variant_name = argv[++i];
        else if (!strcmp(argv[i], "--device") && i + 1 < argc) {
            if (!qh_parse_device(argv[++i], &device, &device_index))
                return qh_usage_error("inspect", "--device must be cpu, cuda or cuda:N, not '%s'", argv[i]);
        } else if (argv[i][0] != '-' && !path)
            path = argv[i];
        else
            return qh_usage_error("inspect", "unexpected argument '%s'", argv[i]);
    }
    if (!path)
        return qh_usage_error("inspect", "a MODEL directory is required");
    qe_load_options options = {.variant = {.kind = QE_VARIANT_FP32}, .n_threads = 1, .metadata_only = !variant_name,
                               .device = device, .device_index = device_index};
    qe_model *model = NULL;
    qe_error err = {0};
    if (variant_name && qe_variant_parse(variant_name, &options.variant, &err) != QE_OK)
        return qh_usage_error("inspect", "%s", err.msg);
    if (qh_model_open(path, &options, &model, &err) != QE_OK)
        return qh_report_error(&err);
    qe_model_info info;
    qe_model_get_info(model, &info);
    qe_device_memory device_memory;
    const qe_device_memory *on_device = qe_model_device_memory(model, &device_memory) ? &device_memory : NULL;
    int rc = QH_EXIT_OK;
    if (as_json)
        rc = print_json(model, &info, qe_variant_name(&options.variant), variant_name != NULL, on_device);
    else
        print_text(model, &info, qe_variant_name(&options.variant), variant_name != NULL, on_device);
    qe_model_free(model);
    return rc;
}
