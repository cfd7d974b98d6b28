/* test_estimate — the memory estimate (qe_estimate_memory) against figures computed by hand from
 * each shared model's config.json, and its weight bytes against what the loader really holds
 * (qe_model_info.footprint_bytes) for every variant of every model; bad configs fail with one
 * message naming the file.
 *
 * The hand computation (the numbers below), per layer and variant, for a linear of n = rows x cols:
 *   fp32 4n (+ 4 per bias row) · bf16 2n (+ 2 per bias row) · int8 n + 4 rows (SCB) (+ 2 per bias row)
 *   nf4 (block b, double quant) ceil(n/2) + nb + 4 ceil(nb/256) + 4, nb = ceil(n/b)
 *   nf4-nodq ceil(n/2) + 4 nb
 * plus float32 norms, the embedding (and an untied head) in the compute dtype (4 bytes fp32, else 2),
 * and for nf4 the code tables (16 floats; with double quant also the 256-float dynamic map).
 * KV cache: layers x 2 (K, V) x n_kv_heads x head_dim x positions x 4 bytes; a sliding layer
 * holds min(context, window + 255) (its ring, model_config.h). Activations for c = min(context, 256)
 * rows (CUDA: 1024, but 256 with sliding-window layers): float32 buffers 3 c hidden + 2 c q_dim + 2 c kv_dim + 2 c intermediate + 16 vocab + ropes x c head_dim + c
 * (a packed pass's segment rows), and on the CPU the host rope table c head_dim / 2 floats + c
 * int32, rounded up to 8, + c attention args of 88 bytes (a sequences pass's). Workspace, CPU with 2 threads:
 * 2 x round64(max(dot tile 32k + 4(c+1)k + 128, int8 64 + c(k+64) + 4c + 8ck + 4(c+1) + 4k + 384,
 * 4 context)), k the widest linear input; CUDA: 9 c k + 8 c + 256 for int8 and nf4 (fp32, bf16: none)
 * + 4096 x 4 (token staging) + 2 c round8(k) for every 16-bit compute dtype (the prefill linears'
 * x rows: x16_cuda below, with c the CUDA rows). */
#include "check.h"

#include <stdint.h>

#include "qeval_engine.h"

typedef struct {
    const char *variant;
    uint64_t linear, table, norm, code, weights;
} weights_case;

typedef struct {
    const char *model;                 /* under $QEVAL_SHARED/models */
    uint64_t n_params;
    int context;
    uint64_t kv_bounded, kv_unbounded;
    uint64_t scoring_act_cpu, scoring_act_cuda, scoring_ws_cpu, scoring_ws_cuda;
    uint64_t decode_act_cpu, decode_ws_cpu, decode_ws_cuda;
    uint64_t x16_cuda;                 /* 2 c round8(k), c the CUDA scoring rows */
    weights_case weights[6];
} model_case;

static const model_case cases[] = {
    /* stories260K: llama, hidden 64, intermediate 172, 5 layers, 8 heads / 4 kv heads of 8, vocab 512,
     * tied; linears per layer 64x64, 32x64 x2, 64x64, 172x64 x2, 64x172 = 45,312 weights */
    {"stories260K", 260032, 512, 655360, 655360, 815104, 1542144, 831744, 813312, 35828, 14080, 18196,
     512 * 176 * 2,
     {{"fp32", 906240, 131072, 2816, 0, 1040128},
      {"bf16", 453120, 65536, 2816, 0, 521472},
      {"int8", 238560, 65536, 2816, 0, 306912},
      {"nf4", 117100, 65536, 2816, 1088, 186540},
      {"nf4-nodq", 127440, 65536, 2816, 64, 195856},
      {"nf4-bs128", 115330, 65536, 2816, 1088, 184770}}},
    /* tiny-llama3: explicit head_dim 16 (8 heads: q_dim 128 = hidden), GQA 8:2, untied head */
    {"tiny-llama3", 1090432, 300, 230400, 230400, 1687552, 1917872, 1810432, 1055840, 137156, 30976, 20104,
     300 * 384 * 2,
     {{"fp32", 2260992, 2097152, 3584, 0, 4361728},
      {"bf16", 1130496, 1048576, 3584, 0, 2182656},
      {"int8", 579840, 1048576, 3584, 0, 1632000},
      {"nf4", 291696, 1048576, 3584, 1088, 1344944},
      {"nf4-nodq", 317952, 1048576, 3584, 64, 1370176},
      {"nf4-bs128", 287244, 1048576, 3584, 1088, 1340492}}},
    /* tiny-qwen2: q/k/v biases (128 + 64 + 64 rows per layer: fp32 4 bytes each, else 2), tied */
    {"tiny-qwen2", 607360, 100, 102400, 102400, 723072, 707472, 593920, 305440, 136996, 25856, 19528,
     100 * 320 * 2,
     {{"fp32", 1378304, 1048576, 2560, 0, 2429440},
      {"bf16", 689152, 524288, 2560, 0, 1216000},
      {"int8", 354304, 524288, 2560, 0, 881152},
      {"nf4", 178592, 524288, 2560, 1088, 706528},
      {"nf4-nodq", 194560, 524288, 2560, 64, 721472},
      {"nf4-bs128", 175880, 524288, 2560, 1088, 703816}}},
    /* tiny-gemma3: 5 sliding layers (window 16) + 1 full, 1 kv head of 32: 2 x 32 x 4 = 256 bytes
     * a position and layer; at context 100 the rings (16 + 255 rows) are not reached: 256 x 6 x 100
     * = 153,600 bounded and unbounded (context 600: below); sandwich
     * and q/k norms; two ropes */
    {"tiny-gemma3", 1101312, 100, 153600, 153600, 659072, 643472, 478208, 247840, 136356, 20736, 18952,
     100 * 256 * 2,
     {{"fp32", 3342336, 1048576, 14336, 0, 4405248},
      {"bf16", 1671168, 524288, 14336, 0, 2209792},
      {"int8", 858624, 524288, 14336, 0, 1397248},
      {"nf4", 431256, 524288, 14336, 1088, 970968},
      {"nf4-nodq", 470016, 524288, 14336, 64, 1008704},
      {"nf4-bs128", 424656, 524288, 14336, 1088, 964368}}},
};

static void test_hand_computed(const model_case *mc, const char *path)
{
    for (int v = 0; v < 6; v++) {
        const weights_case *wc = &mc->weights[v];
        qe_estimate_options o = {.context = mc->context, .batch = 1, .device = QE_DEVICE_CPU, .n_threads = 2};
        qe_error err = {0};
        CHECK(qe_variant_parse(wc->variant, &o.variant, &err) == QE_OK);
        qe_memory_estimate e;
        if (qe_estimate_memory(path, NULL, &o, &e, &err) != QE_OK) {
            fprintf(stderr, "%s %s: %s\n", mc->model, wc->variant, err.msg);
            CHECK(false);
            continue;
        }
        CHECK_INT_EQ(mc->n_params, e.n_params);
        CHECK_INT_EQ(wc->linear, e.linear_bytes);
        CHECK_INT_EQ(wc->table, e.table_bytes);
        CHECK_INT_EQ(wc->norm, e.norm_bytes);
        CHECK_INT_EQ(wc->code, e.code_table_bytes);
        CHECK_INT_EQ(wc->weights, e.weights_bytes);
        CHECK_INT_EQ(mc->kv_bounded, e.kv_cache_bytes);
        CHECK_INT_EQ(mc->kv_unbounded, e.kv_cache_unbounded_bytes);
        CHECK_INT_EQ(mc->scoring_act_cpu, e.scoring_activation_bytes);
        CHECK_INT_EQ(mc->scoring_ws_cpu, e.scoring_workspace_bytes);
        CHECK_INT_EQ(mc->decode_act_cpu, e.decode_activation_bytes);
        CHECK_INT_EQ(mc->decode_ws_cpu, e.decode_workspace_bytes);
        CHECK_INT_EQ(0, e.context_overhead_bytes);
        uint64_t scoring = mc->scoring_act_cpu + mc->scoring_ws_cpu;
        CHECK_INT_EQ(wc->weights + mc->kv_bounded + scoring, e.total_bytes);
        CHECK(!e.has_verdict);

        /* the same on a GPU: no host rope table, the CUDA workspace, the context overhead; the
         * weights as the backend uploads them: norms in the variant's 16-bit compute dtype (half
         * the host's float32 bytes but in fp32), and nf4 holds neither its code tables (constant
         * memory) nor, with double quant, the float offset of each of the 7 linears a layer (a
         * kernel argument) */
        o.device = QE_DEVICE_CUDA;
        CHECK(qe_estimate_memory(path, NULL, &o, &e, &err) == QE_OK);
        uint64_t off_device = wc->code + (wc->code > 64 ? 4ull * 7 * (uint64_t)e.n_layers : 0);
        uint64_t norm_gpu = strcmp(wc->variant, "fp32") ? wc->norm / 2 : wc->norm;
        off_device += wc->norm - norm_gpu;
        CHECK_INT_EQ(norm_gpu, e.norm_bytes);
        CHECK_INT_EQ(wc->weights - off_device, e.weights_bytes);
        CHECK_INT_EQ(0, e.code_table_bytes);
        /* fp32 and bf16 linears need no quantization workspace: the token staging alone; every
         * variant but fp32 computes in bf16 and adds the prefill x rows */
        bool is_quantized = !strncmp(wc->variant, "int8", 4) || !strncmp(wc->variant, "nf4", 3);
        uint64_t scoring_ws_cuda =
            (is_quantized ? mc->scoring_ws_cuda : 4096 * 4) + (strcmp(wc->variant, "fp32") ? mc->x16_cuda : 0);
        CHECK_INT_EQ(mc->scoring_act_cuda, e.scoring_activation_bytes);
        CHECK_INT_EQ(scoring_ws_cuda, e.scoring_workspace_bytes);
        CHECK_INT_EQ(is_quantized ? mc->decode_ws_cuda : 4096 * 4, e.decode_workspace_bytes);
        CHECK_INT_EQ(512ull << 20, e.context_overhead_bytes);
        CHECK_INT_EQ(wc->weights - off_device + mc->kv_bounded + mc->scoring_act_cuda + scoring_ws_cuda + (512ull << 20),
                     e.total_bytes);

        /* batch 3: three caches */
        o.device = QE_DEVICE_CPU;
        o.batch = 3;
        CHECK(qe_estimate_memory(path, NULL, &o, &e, &err) == QE_OK);
        CHECK_INT_EQ(3 * mc->kv_bounded, e.kv_cache_bytes);
    }
}

/* The fixture tiny-gemma3 (2 sliding layers, window 8, + 1 full; 256 bytes a position and layer)
 * at context 600: the sliding layers stop at their ring of 8 + 255 = 263 rows, 256 x (2 x 263 +
 * 600) = 288,256 bytes, against 256 x 3 x 600 = 460,800 unbounded. */
static void test_sliding_ring(const char *path)
{
    qe_error err = {0};
    qe_estimate_options o = {.context = 600, .n_threads = 2};
    CHECK(qe_variant_parse("bf16", &o.variant, &err) == QE_OK);
    qe_memory_estimate e;
    CHECK(qe_estimate_memory(path, NULL, &o, &e, &err) == QE_OK);
    CHECK_INT_EQ(288256, e.kv_cache_bytes);
    CHECK_INT_EQ(460800, e.kv_cache_unbounded_bytes);
}

/* Predicted weight bytes, parameters and rule of thumb equal what the loader reports. */
static void test_matches_loader(const char *path)
{
    static const char *const variants[] = {"fp32", "bf16", "int8", "nf4", "nf4-nodq", "nf4-bs128", "nf4-nodq-bs32"};
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        qe_load_options load = {.device = QE_DEVICE_CPU, .n_threads = 1};
        qe_error err = {0};
        CHECK(qe_variant_parse(variants[v], &load.variant, &err) == QE_OK);
        qe_model *m = NULL;
        if (qe_model_load(path, &load, &m, &err) != QE_OK) {
            fprintf(stderr, "%s %s: %s\n", path, variants[v], err.msg);
            CHECK(false);
            continue;
        }
        qe_model_info info;
        qe_model_get_info(m, &info);
        qe_estimate_options o = {.variant = load.variant, .device = QE_DEVICE_CPU, .n_threads = 1};
        qe_memory_estimate from_config, from_model;
        CHECK(qe_estimate_memory(path, NULL, &o, &from_config, &err) == QE_OK);
        CHECK(qe_model_estimate_memory(m, &o, &from_model, &err) == QE_OK);
        if (info.footprint_bytes != from_config.weights_bytes)
            fprintf(stderr, "%s %s: footprint %llu, predicted %llu\n", path, variants[v],
                    (unsigned long long)info.footprint_bytes, (unsigned long long)from_config.weights_bytes);
        CHECK_INT_EQ(info.footprint_bytes, from_config.weights_bytes);
        CHECK_INT_EQ(info.footprint_bytes, from_model.weights_bytes);
        CHECK_INT_EQ(info.n_params, from_config.n_params);
        CHECK_INT_EQ(info.estimate_bytes, from_config.rule_of_thumb_bytes);
        CHECK_INT_EQ(info.max_context, from_config.context);
        qe_model_free(m);
    }
}

/* The longest context that fits is the last one whose total is within the memory. */
static void test_max_context(const char *path)
{
    qe_estimate_options o = {.variant = {.kind = QE_VARIANT_BF16}, .context = 64, .device = QE_DEVICE_CPU,
                             .n_threads = 2};
    qe_memory_estimate at, next, e;
    qe_error err = {0};
    CHECK(qe_estimate_memory(path, NULL, &o, &at, &err) == QE_OK);
    o.context = 65;
    CHECK(qe_estimate_memory(path, NULL, &o, &next, &err) == QE_OK);
    CHECK(next.total_bytes > at.total_bytes);
    o.memory_bytes = at.total_bytes; /* 64 fits exactly, 65 does not */
    CHECK(qe_estimate_memory(path, NULL, &o, &e, &err) == QE_OK);
    CHECK(e.has_verdict && !e.fits);
    CHECK_INT_EQ(64, e.max_context);
    CHECK_INT_EQ(-(int64_t)(next.total_bytes - at.total_bytes), e.headroom_bytes);
    o.memory_bytes = 1ull << 40;
    CHECK(qe_estimate_memory(path, NULL, &o, &e, &err) == QE_OK);
    CHECK(e.fits);
    CHECK_INT_EQ(e.max_position, e.max_context); /* capped at max_position_embeddings */
    o.memory_bytes = 1000; /* less than the weights: nothing fits */
    CHECK(qe_estimate_memory(path, NULL, &o, &e, &err) == QE_OK);
    CHECK(!e.fits);
    CHECK_INT_EQ(0, e.max_context);
    o.context = e.max_position + 1;
    CHECK(qe_estimate_memory(path, NULL, &o, &e, &err) == QE_EINVAL);
    CHECK(strstr(err.msg, "max_position_embeddings") != NULL);
}

static void expect_error(const char *json, qe_status code, const char *needle)
{
    qe_estimate_options o = {.variant = {.kind = QE_VARIANT_FP32}, .device = QE_DEVICE_CPU, .n_threads = 1};
    qe_memory_estimate e;
    qe_error err = {0};
    qe_status rc = qe_estimate_memory("bad/config.json", json, &o, &e, &err);
    CHECK_INT_EQ(code, rc);
    if (!strstr(err.msg, "bad/config.json") || !strstr(err.msg, needle)) {
        fprintf(stderr, "message \"%s\" lacks \"%s\" or the file name\n", err.msg, needle);
        CHECK(false);
    }
}

#define BASE "\"model_type\": \"gemma3_text\", \"vocab_size\": 64, \"hidden_size\": 32, \"intermediate_size\": 64, " \
             "\"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"head_dim\": 16, "

static void test_bad_configs(void)
{
    expect_error("{" BASE "\"num_hidden_layers\": 2, \"sliding_window\": 0, "
                 "\"layer_types\": [\"sliding_attention\", \"full_attention\"]}",
                 QE_EFORMAT, "sliding_window");
    expect_error("{" BASE "\"num_hidden_layers\": 3, \"sliding_window\": 8, "
                 "\"layer_types\": [\"sliding_attention\", \"full_attention\"]}",
                 QE_EFORMAT, "layer_types");
    expect_error("{" BASE "\"num_hidden_layers\": 2, \"sliding_window\": 8, "
                 "\"layer_types\": [\"chunked_attention\", \"full_attention\"]}",
                 QE_EUNSUPPORTED, "layer_types[0]");
    expect_error("{\"model_type\": \"llama\", \"vocab_size\": 64, \"hidden_size\": 30, \"intermediate_size\": 64, "
                 "\"num_attention_heads\": 4, \"num_hidden_layers\": 1}",
                 QE_EFORMAT, "head_dim");
    expect_error("{\"model_type\": \"llama\", \"vocab_size\": 64,", QE_EFORMAT, "not valid JSON");
    expect_error("{\"model_type\": \"llama\", \"vocab_size\": 64, \"intermediate_size\": 64, "
                 "\"num_attention_heads\": 4, \"num_hidden_layers\": 1}",
                 QE_EFORMAT, "hidden_size");
    /* products the engine forms in int: 65536 heads x 65536 dims would wrap to 0 */
    expect_error("{\"model_type\": \"llama\", \"vocab_size\": 64, \"hidden_size\": 64, \"intermediate_size\": 64, "
                 "\"num_attention_heads\": 65536, \"num_key_value_heads\": 65536, \"head_dim\": 65536, "
                 "\"num_hidden_layers\": 1}",
                 QE_EFORMAT, "heads x head_dim 4294967296");
    expect_error("{\"model_type\": \"llama\", \"vocab_size\": 64, \"hidden_size\": 64, \"intermediate_size\": 64, "
                 "\"num_attention_heads\": 4, \"num_hidden_layers\": 100000}",
                 QE_EFORMAT, "100000 layers");

    /* gemma3 without "sliding_window": Gemma3TextConfig's 4096, every 6th layer global */
    qe_estimate_options o = {.variant = {.kind = QE_VARIANT_FP32}, .device = QE_DEVICE_CPU, .n_threads = 1};
    qe_memory_estimate e;
    qe_error err = {0};
    CHECK_INT_EQ(QE_OK, qe_estimate_memory("g/config.json", "{" BASE "\"num_hidden_layers\": 6}", &o, &e, &err));
    CHECK_INT_EQ(5, e.n_sliding_layers);
    CHECK_INT_EQ(4096, e.sliding_window);
    /* B sequences: a prompt's chunk at a time, then steps of B rows; the caches' bytes do not
     * wrap, and a step past 2^30 rows is refused */
    uint64_t one_kv = e.kv_cache_bytes;
    o.batch = 10000000;
    CHECK_INT_EQ(QE_OK, qe_estimate_memory("g/config.json", "{" BASE "\"num_hidden_layers\": 6}", &o, &e, &err));
    CHECK(e.kv_cache_bytes == 10000000ull * one_kv && e.decode_activation_bytes > e.scoring_activation_bytes);
    o.batch = (1 << 30) + 1;
    CHECK_INT_EQ(QE_EINVAL, qe_estimate_memory("g/config.json", "{" BASE "\"num_hidden_layers\": 6}", &o, &e, &err));
    CHECK(strstr(err.msg, "batch 1073741825 rows a pass; at most 1073741824") != NULL);
}

/* nf4 on a GPU: a pass of more than 128 tokens holds a bf16 copy of the largest NF4 weight in the
 * workspace (llama-3.1-8b's MLP: 14,336 x 4,096 x 2 bytes, more than the int8 rule's 9 x 512 x
 * 14,336 + 8 x 512 + 256 at chunks of 512); int8 keeps the int8 rule; decoding needs no copy.
 * Both add the prefill x rows in bf16, 512 x 14,336 x 2 bytes; a decoding step has none. */
static void test_nf4_workspace(void)
{
    const char *config = "{\"model_type\": \"llama\", \"vocab_size\": 1000, \"hidden_size\": 4096, "
                         "\"intermediate_size\": 14336, \"num_hidden_layers\": 1, \"num_attention_heads\": 32, "
                         "\"num_key_value_heads\": 8, \"max_position_embeddings\": 8192}";
    qe_estimate_options o = {.context = 1024, .device = QE_DEVICE_CUDA, .chunk_tokens = 512};
    qe_memory_estimate e;
    qe_error err = {0};
    CHECK(qe_variant_parse("nf4", &o.variant, &err) == QE_OK);
    CHECK_INT_EQ(QE_OK, qe_estimate_memory("l/config.json", config, &o, &e, &err));
    CHECK_INT_EQ(14336ull * 4096 * 2 + 4096 * 4 + 512 * 14336 * 2, e.scoring_workspace_bytes);
    CHECK_INT_EQ(9ull * 14336 + 8 + 256 + 4096 * 4, e.decode_workspace_bytes);
    CHECK(qe_variant_parse("int8", &o.variant, &err) == QE_OK);
    CHECK_INT_EQ(QE_OK, qe_estimate_memory("l/config.json", config, &o, &e, &err));
    CHECK_INT_EQ(9ull * 512 * 14336 + 8 * 512 + 256 + 4096 * 4 + 512 * 14336 * 2, e.scoring_workspace_bytes);
}

int main(void)
{
    test_bad_configs();
    test_nf4_workspace();
    static const char *const fixtures[] = {"models/tiny-llama", "models/tiny-llama3", "models/tiny-qwen2",
                                           "models/tiny-gemma3"};
    char path[1200];
    for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) {
        check_fixture_path(path, sizeof path, fixtures[i]);
        test_matches_loader(path);
    }
    check_fixture_path(path, sizeof path, "models/tiny-gemma3");
    test_max_context(path);
    test_sliding_ring(path);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char relative[256];
        snprintf(relative, sizeof relative, "models/%s/config.json", cases[i].model);
        if (!check_shared_path(path, sizeof path, relative))
            continue;
        *strrchr(path, '/') = 0; /* the model directory */
        test_hand_computed(&cases[i], path);
        test_matches_loader(path);
    }
    return check_summary();
}
