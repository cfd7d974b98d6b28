/* qeval estimate MODEL|CONFIG.json|SHAPE [--variants ...] [--context N] [--batch B]
 *                [--device cpu|cuda] [--device-memory SIZE|CARD] [--threads N] [--json]
 *
 * What each variant needs in memory, from the configuration alone (no weights read): weights as
 * the loader holds them, the KV cache for the context and batch, activation and workspace peaks,
 * the CUDA context on a GPU, the total; parameters x bytes per parameter beside it; with a memory
 * size, whether it fits, the headroom and the longest context that fits. The arithmetic is the
 * engine's (qe_estimate_memory); this file resolves MODEL, parses sizes and prints. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "model_cache.h"
#include "synth.h"

#define MAX_VARIANTS 16
#define DEFAULT_VARIANTS "fp32,bf16,int8,nf4"

/* Cards by the total memory nvidia-smi reports for them (MiB), which is what a process can see
 * before the CUDA context takes its share. */
static const struct {
    const char *name;
    uint64_t mib;
    const char *what;
} cards[] = {
    {"t4", 15360, "NVIDIA T4 16GB"},        {"l4", 23034, "NVIDIA L4 24GB"},
    {"a10", 23028, "NVIDIA A10 24GB"},      {"rtx4090", 24564, "GeForce RTX 4090 24GB"},
    {"a100-40g", 40960, "NVIDIA A100 40GB"}, {"a100-80g", 81920, "NVIDIA A100 80GB"},
    {"h100", 81559, "NVIDIA H100 80GB HBM3"}, {"h200", 143771, "NVIDIA H200 141GB"},
};
#define N_CARDS (int)(sizeof cards / sizeof cards[0])

static int usage(FILE *out)
{
    fprintf(out,
            "usage: qeval estimate MODEL|CONFIG.json|SHAPE [--variants fp32,bf16,int8,nf4] [--context N] [--batch B]\n"
            "                      [--device cpu|cuda] [--device-memory SIZE|CARD] [--threads N] [--json]\n"
            "MODEL: a model directory, a .gguf file or a cached short name; CONFIG.json: a config.json alone;\n"
            "SHAPE: a `qeval synth` shape name (qeval synth --list). No weights are read.\n"
            "--context: positions per sequence (default: the model's max_position_embeddings)\n"
            "--batch: sequences held at once, each with its own KV cache (default 1)\n"
            "--device: where the model runs (default cuda with --device-memory, else this build's default)\n"
            "--device-memory: 16GB (10^9 bytes), 16GiB (2^30), 24000MB, 512MiB, bytes, or a card:\n"
            "  t4 l4 a10 rtx4090 a100-40g a100-80g h100 h200 (the total nvidia-smi reports)\n"
            "--threads: CPU threads the workspace is sliced for (default: this machine's cores)\n");
    return out == stdout ? QH_EXIT_OK : QH_EXIT_USAGE;
}

/* "16GB" = 16e9 (decimal, as cards are sold), "16GiB" = 16 * 2^30, "MB"/"MiB", "TB"/"TiB",
 * "KB"/"KiB", a plain byte count, or a card name. *label names a card, else NULL. */
static bool parse_memory(const char *text, uint64_t *bytes, const char **label)
{
    *label = NULL;
    for (int i = 0; i < N_CARDS; i++)
        if (!strcasecmp(text, cards[i].name)) {
            *bytes = cards[i].mib << 20;
            *label = cards[i].what;
            return true;
        }
    char *end;
    double value = strtod(text, &end);
    if (end == text || !isfinite(value) || value <= 0)
        return false;
    static const struct {
        const char *suffix;
        double factor;
    } units[] = {{"", 1},          {"B", 1},          {"KB", 1e3},   {"KiB", 1024.0}, {"MB", 1e6},
                 {"MiB", 1048576.0}, {"GB", 1e9},       {"GiB", 1073741824.0}, {"TB", 1e12},
                 {"TiB", 1099511627776.0}};
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++)
        if (!strcasecmp(end, units[u].suffix) && value * units[u].factor < 1.8e19) {
            *bytes = (uint64_t)(value * units[u].factor);
            return *bytes > 0;
        }
    return false;
}

/* 1536 -> "1.5 KiB"; binary units, as GPU memory is reported. */
static const char *human(char *buf, size_t n, uint64_t bytes)
{
    if (bytes >= (1ull << 30))
        snprintf(buf, n, "%.2f GiB", bytes / 1073741824.0);
    else if (bytes >= (1ull << 20))
        snprintf(buf, n, "%.1f MiB", bytes / 1048576.0);
    else if (bytes >= 1024)
        snprintf(buf, n, "%.1f KiB", bytes / 1024.0);
    else
        snprintf(buf, n, "%" PRIu64 " B", bytes);
    return buf;
}

static const char *human_signed(char *buf, size_t n, int64_t bytes)
{
    char b[32];
    snprintf(buf, n, "%s%s", bytes < 0 ? "-" : "", human(b, sizeof b, bytes < 0 ? (uint64_t)-bytes : (uint64_t)bytes));
    return buf;
}

/* What MODEL names: an existing path; a cached known model; a synth shape (its config.json as
 * text into *config_json, malloc'd). *path is malloc'd. */
static qe_status resolve_model(const char *name, char **path, char **config_json, qe_error *err)
{
    *path = *config_json = NULL;
    struct stat sb;
    if (stat(name, &sb) == 0) {
        *path = strdup(name);
        return *path ? QE_OK : qe_fail(err, QE_ENOMEM, "out of memory");
    }
    if (qh_model_lookup(name) && qh_model_resolve(name, path, err) == QE_OK)
        return QE_OK;
    const qh_synth_shape *shape = NULL;
    if (qh_synth_shape_find(name, &shape, err) != QE_OK)
        return qe_fail(err, QE_EIO, "%s: no such file or directory, and not a known model or synth shape "
                       "(qeval synth --list)", name);
    char label[256];
    snprintf(label, sizeof label, "%s (shape of %s)", shape->name, shape->source);
    *path = strdup(label);
    *config_json = qh_synth_config_json(shape);
    if (!*path || !*config_json)
        return qe_fail(err, QE_ENOMEM, "out of memory");
    return QE_OK;
}

typedef struct {
    const char *model;
    qe_estimate_options options;
    const char *memory_label;        /* a card's name, or NULL */
    int n_variants;
    char names[MAX_VARIANTS][32];
    qe_memory_estimate estimates[MAX_VARIANTS];
} estimate_set;

static void add_bytes(cJSON *o, const char *key, uint64_t bytes) { cJSON_AddNumberToObject(o, key, (double)bytes); }

static int print_json(const estimate_set *set)
{
    const qe_memory_estimate *first = &set->estimates[0];
    cJSON *root = cJSON_CreateObject(), *variants = cJSON_CreateArray();
    cJSON_AddStringToObject(root, "model", set->model);
    cJSON_AddStringToObject(root, "architecture", first->architecture);
    add_bytes(root, "n_params", first->n_params);
    cJSON_AddNumberToObject(root, "n_layers", first->n_layers);
    cJSON_AddNumberToObject(root, "n_sliding_layers", first->n_sliding_layers);
    cJSON_AddNumberToObject(root, "sliding_window", first->sliding_window);
    cJSON_AddNumberToObject(root, "max_position", first->max_position);
    cJSON_AddNumberToObject(root, "context", first->context);
    cJSON_AddNumberToObject(root, "batch", first->batch);
    cJSON_AddStringToObject(root, "device", set->options.device == QE_DEVICE_CUDA ? "cuda" : "cpu");
    if (set->options.memory_bytes)
        add_bytes(root, "device_memory_bytes", set->options.memory_bytes);
    else
        cJSON_AddNullToObject(root, "device_memory_bytes");
    if (set->memory_label)
        cJSON_AddStringToObject(root, "device_memory_card", set->memory_label);
    cJSON_AddStringToObject(root, "kv_cache_rule", "float32 K and V per layer; sliding-window layers hold "
                                                   "a ring of min(context, window + 255) positions");
    cJSON_AddItemToObject(root, "variants", variants);
    for (int i = 0; i < set->n_variants; i++) {
        const qe_memory_estimate *e = &set->estimates[i];
        cJSON *v = cJSON_CreateObject();
        cJSON_AddStringToObject(v, "variant", set->names[i]);
        add_bytes(v, "weights_bytes", e->weights_bytes);
        add_bytes(v, "linear_bytes", e->linear_bytes);
        add_bytes(v, "table_bytes", e->table_bytes);
        add_bytes(v, "norm_bytes", e->norm_bytes);
        add_bytes(v, "code_table_bytes", e->code_table_bytes);
        add_bytes(v, "rule_of_thumb_bytes", e->rule_of_thumb_bytes);
        add_bytes(v, "kv_cache_bytes", e->kv_cache_bytes);
        add_bytes(v, "kv_cache_unbounded_bytes", e->kv_cache_unbounded_bytes);
        add_bytes(v, "scoring_activation_bytes", e->scoring_activation_bytes);
        add_bytes(v, "scoring_workspace_bytes", e->scoring_workspace_bytes);
        add_bytes(v, "decode_activation_bytes", e->decode_activation_bytes);
        add_bytes(v, "decode_workspace_bytes", e->decode_workspace_bytes);
        add_bytes(v, "activation_bytes", e->activation_bytes);
        add_bytes(v, "context_overhead_bytes", e->context_overhead_bytes);
        add_bytes(v, "total_bytes", e->total_bytes);
        if (e->has_verdict) {
            cJSON_AddBoolToObject(v, "fits", e->fits);
            cJSON_AddNumberToObject(v, "headroom_bytes", (double)e->headroom_bytes);
            cJSON_AddNumberToObject(v, "max_context", e->max_context);
        } else {
            cJSON_AddNullToObject(v, "fits");
            cJSON_AddNullToObject(v, "headroom_bytes");
            cJSON_AddNullToObject(v, "max_context");
        }
        cJSON_AddItemToArray(variants, v);
    }
    return qh_print_json(root);
}

static void print_table(const estimate_set *set)
{
    const qe_memory_estimate *first = &set->estimates[0];
    char a[32], b[32], c[32], d[32], e_[32], f[32];
    bool is_cuda = set->options.device == QE_DEVICE_CUDA;
    printf("model     %s: %s, %d layers", set->model, first->architecture, first->n_layers);
    if (first->n_sliding_layers)
        printf(" (%d with a sliding window of %d)", first->n_sliding_layers, first->sliding_window);
    printf(", %" PRIu64 " parameters, max context %d\n", first->n_params, first->max_position);
    printf("for       context %d x batch %d on %s", first->context, first->batch, is_cuda ? "cuda" : "cpu");
    if (set->options.memory_bytes)
        printf(", %s of memory%s%s%s", human(a, sizeof a, set->options.memory_bytes),
               set->memory_label ? " (" : "", set->memory_label ? set->memory_label : "", set->memory_label ? ")" : "");
    printf("\n\n");
    printf("%-14s %11s %13s %11s %12s %11s %11s  %-5s %11s %11s\n", "variant", "weights", "rule_of_thumb",
           "kv_cache", "activations", is_cuda ? "cuda_ctx" : "overhead", "total", "fits", "headroom", "max_context");
    for (int i = 0; i < set->n_variants; i++) {
        const qe_memory_estimate *e = &set->estimates[i];
        char verdict[8] = "-", headroom[32] = "-", max_context[32] = "-";
        if (e->has_verdict) {
            snprintf(verdict, sizeof verdict, "%s", e->fits ? "yes" : "no");
            human_signed(headroom, sizeof headroom, e->headroom_bytes);
            snprintf(max_context, sizeof max_context, "%d", e->max_context);
        }
        printf("%-14s %11s %13s %11s %12s %11s %11s  %-5s %11s %11s\n", set->names[i],
               human(a, sizeof a, e->weights_bytes), human(b, sizeof b, e->rule_of_thumb_bytes),
               human(c, sizeof c, e->kv_cache_bytes), human(d, sizeof d, e->activation_bytes),
               human(e_, sizeof e_, e->context_overhead_bytes), human(f, sizeof f, e->total_bytes), verdict, headroom,
               max_context);
    }
    const qe_memory_estimate *e = first;
    printf("\nweights: as the loader holds them (int8 scales, nf4 block constants, embedding and head in 16 bit "
           "(fp32: 32), norms in %s, a tied head once)\n",
           is_cuda ? "the compute dtype" : "float32");
    printf("rule_of_thumb: parameters x 4 / 2 / 1 / 0.5 bytes\n");
    printf("kv_cache: float32 K and V, %s", human(a, sizeof a, e->kv_cache_bytes));
    if (e->n_sliding_layers)
        printf(" with sliding-window layers bounded by their window (ring buffer; %s if every layer held the "
               "whole context)", human(b, sizeof b, e->kv_cache_unbounded_bytes));
    printf("\nactivations: scoring %s + workspace %s (chunks of up to 256 tokens); a decoding step %s + %s\n",
           human(a, sizeof a, e->scoring_activation_bytes), human(b, sizeof b, e->scoring_workspace_bytes),
           human(c, sizeof c, e->decode_activation_bytes), human(d, sizeof d, e->decode_workspace_bytes));
    if (is_cuda)
        printf("cuda_ctx: the CUDA context, a documented constant (docs/estimate.md)\n");
}

static qe_status parse_variants(const char *list, estimate_set *set, qe_error *err)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", list);
    set->n_variants = 0;
    for (char *save = NULL, *name = strtok_r(buf, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        if (set->n_variants == MAX_VARIANTS)
            return qe_fail(err, QE_EINVAL, "--variants: at most %d", MAX_VARIANTS);
        qe_variant v;
        qe_status rc = qe_variant_parse(name, &v, err);
        if (rc != QE_OK)
            return rc;
        snprintf(set->names[set->n_variants++], sizeof set->names[0], "%s", qe_variant_name(&v));
    }
    if (set->n_variants == 0)
        return qe_fail(err, QE_EINVAL, "--variants: empty list");
    return QE_OK;
}

static bool parse_count(const char *text, int min, int *out)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (!isdigit((unsigned char)text[0]) || *end || v < min || v > 1000000000)
        return false;
    *out = (int)v;
    return true;
}

int qh_cmd_estimate(int argc, char **argv)
{
    const char *model = NULL, *variants = DEFAULT_VARIANTS, *device = NULL;
    bool as_json = false;
    estimate_set set = {0};
    qe_error err = {0};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        bool has_value = i + 1 < argc;
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h"))
            return usage(stdout);
        else if (!strcmp(arg, "--json"))
            as_json = true;
        else if (!strcmp(arg, "--variants") && has_value)
            variants = argv[++i];
        else if (!strcmp(arg, "--context") && has_value) {
            if (!parse_count(argv[++i], 1, &set.options.context))
                return qh_usage_error("estimate", "--context takes a positive integer, not '%s'", argv[i]);
        } else if (!strcmp(arg, "--batch") && has_value) {
            if (!parse_count(argv[++i], 1, &set.options.batch))
                return qh_usage_error("estimate", "--batch takes a positive integer, not '%s'", argv[i]);
        } else if (!strcmp(arg, "--threads") && has_value) {
            if (!parse_count(argv[++i], 1, &set.options.n_threads))
                return qh_usage_error("estimate", "--threads takes a positive integer, not '%s'", argv[i]);
        } else if (!strcmp(arg, "--device") && has_value) {
            device = argv[++i];
        } else if (!strcmp(arg, "--device-memory") && has_value) {
            if (!parse_memory(argv[++i], &set.options.memory_bytes, &set.memory_label))
                return qh_usage_error("estimate", "--device-memory '%s': a size (16GB, 16GiB, 24000MB, bytes) or "
                                      "a card (t4 l4 a10 rtx4090 a100-40g a100-80g h100 h200)", argv[i]);
        } else if (arg[0] != '-' && !model)
            model = arg;
        else
            return qh_usage_error("estimate", "unexpected argument '%s'", arg);
    }
    if (!model)
        return usage(stderr);
    set.options.device = set.options.memory_bytes ? QE_DEVICE_CUDA : qe_default_device();
    int device_index;
    if (device && !qh_parse_device(device, &set.options.device, &device_index))
        return qh_usage_error("estimate", "--device takes cpu or cuda, not '%s'", device);
    if (parse_variants(variants, &set, &err) != QE_OK)
        return qh_usage_error("estimate", "%s", err.msg);
    char *path = NULL, *config_json = NULL;
    qe_status rc = resolve_model(model, &path, &config_json, &err);
    for (int i = 0; i < set.n_variants && rc == QE_OK; i++) {
        qe_variant_parse(set.names[i], &set.options.variant, &err);
        rc = qe_estimate_memory(path, config_json, &set.options, &set.estimates[i], &err);
    }
    set.model = path;
    int exit_code = QH_EXIT_OK;
    if (rc != QE_OK)
        exit_code = qh_report_error(&err);
    else if (as_json)
        exit_code = print_json(&set);
    else
        print_table(&set);
    free(path);
    free(config_json);
    return exit_code;
}
