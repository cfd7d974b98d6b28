/* A GGUF llama, qwen2 or gemma3 model loads into the same forward pass as its Hugging Face
 * original. The test converts the project's fixtures tiny-llama (F32), tiny-qwen2 (q/k/v
 * biases, BF16) and tiny-gemma3 (BF16) the way llama.cpp's convert_hf_to_gguf.py does (HF ->
 * GGUF tensor names; llama's q/k rows permuted per head with reshape(n_head, 2, half,
 * n_in).swapaxes(1, 2); Gemma3Model.modify_tensors adds norm_shift 1.0 to every *norm.weight,
 * and 1-D tensors are stored F32), writes a GGUF file,
 * loads it with qe_model_load and compares the logits with their float64 golden ones
 * (transformers' computation, tests/golden/make_fixture_models.py). When `qeval model fetch`
 * has cached smollm2-135m or gemma3-270m, its logits are compared with an independent numpy
 * forward pass over the GGUF as llama.cpp runs it (tests/golden/make_smollm2_logits_golden.py,
 * make_gemma3_logits_golden.py). Then hostile metadata. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <unistd.h>

#include "check.h"
#include "gguf_model.h"
#include "model.h"
#include "model_cache.h"
#include "qeval_engine.h"
#include "safetensors.h"

/* What convert_hf_to_gguf.py would write for one of the fixture models. */
typedef struct {
    const char *dir, *arch;
    int hidden, n_layers, n_heads, n_kv_heads, ffn, vocab, context;
    float rope_theta, rms_eps;
    bool has_bias, permutes_qk;  /* qwen2 has q/k/v biases; only llama's q/k are permuted */
    qe_dtype torch_dtype;        /* transformers rounds rope frequencies to it (llama.cpp does not) */
    bool is_gemma;               /* gemma3: the keys and tensors below */
} fixture_model;

static const fixture_model fixture_models[] = {
    {"tiny-llama", "llama", 64, 2, 4, 2, 96, 320, 2048, 10000.0f, 1e-5f, false, true, QE_DTYPE_F32, false},
    {"tiny-qwen2", "qwen2", 64, 2, 4, 2, 96, 320, 2048, 1000000.0f, 1e-6f, true, false, QE_DTYPE_BF16, false},
    {"tiny-gemma3", "gemma3", 64, 3, 2, 1, 128, 320, 4096, 1000000.0f, 1e-6f, false, false, QE_DTYPE_BF16, true},
};

/* tiny-gemma3's config.json: head_dim 32, layer_types sliding, sliding, full with window 8, the
 * full layer's rope linear x8, query_pre_attn_scalar 24 */
enum { GEMMA_HEAD_DIM = 32, GEMMA_WINDOW = 8, GEMMA_QUERY_SCALAR = 24 };

typedef struct {
    uint8_t *bytes;
    size_t n, cap;
} buffer;

static void put(buffer *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->bytes = realloc(b->bytes, b->cap);
    }
    memcpy(b->bytes + b->n, p, n);
    b->n += n;
}
static void put_u32(buffer *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(buffer *b, uint64_t v) { put(b, &v, 8); }
static void put_str(buffer *b, const char *s) { put_u64(b, strlen(s)); put(b, s, strlen(s)); }
static void kv_u32(buffer *b, const char *k, uint32_t v) { put_str(b, k); put_u32(b, 4); put_u32(b, v); }
static void kv_f32(buffer *b, const char *k, float v) { put_str(b, k); put_u32(b, 6); put(b, &v, 4); }
static void kv_string(buffer *b, const char *k, const char *v) { put_str(b, k); put_u32(b, 8); put_str(b, v); }

/* llama.cpp's permute for rope: rows (h, j, i) of [n_head, 2, half] go to (h, i, j). */
static void permute_like_llamacpp(const void *hf, void *out, int n_head, int rows, size_t row_bytes)
{
    int head_dim = rows / n_head, half = head_dim / 2;
    for (int h = 0; h < n_head; h++)
        for (int i = 0; i < half; i++)
            for (int j = 0; j < 2; j++)
                memcpy((char *)out + (size_t)(h * head_dim + i * 2 + j) * row_bytes,
                       (const char *)hf + (size_t)(h * head_dim + j * half + i) * row_bytes, row_bytes);
}

typedef struct {
    char gguf_name[64];
    const qe_tensor_view *t;
    int permute_heads;
    bool is_norm_shifted;  /* gemma: written as F32 (1 + weight) */
} planned;

static int plan(const fixture_model *sm, const qe_safetensors *st, planned *p)
{
    static const struct { const char *hf, *gguf; int heads; bool is_bias; } names[] = {
        {"input_layernorm.weight", "attn_norm.weight", 0, false},
        {"post_attention_layernorm.weight", "ffn_norm.weight", 0, false},
        {"self_attn.q_proj.weight", "attn_q.weight", 1, false}, {"self_attn.k_proj.weight", "attn_k.weight", 2, false},
        {"self_attn.v_proj.weight", "attn_v.weight", 0, false}, {"self_attn.o_proj.weight", "attn_output.weight", 0, false},
        {"self_attn.q_proj.bias", "attn_q.bias", 0, true}, {"self_attn.k_proj.bias", "attn_k.bias", 0, true},
        {"self_attn.v_proj.bias", "attn_v.bias", 0, true},
        {"mlp.gate_proj.weight", "ffn_gate.weight", 0, false}, {"mlp.up_proj.weight", "ffn_up.weight", 0, false},
        {"mlp.down_proj.weight", "ffn_down.weight", 0, false},
    };
    /* llama.cpp's gemma names: ffn_norm is the pre-feedforward norm, the other sandwich norms new */
    static const struct { const char *hf, *gguf; int heads; bool is_bias; } gemma_names[] = {
        {"input_layernorm.weight", "attn_norm.weight", 0, false},
        {"post_attention_layernorm.weight", "post_attention_norm.weight", 0, false},
        {"pre_feedforward_layernorm.weight", "ffn_norm.weight", 0, false},
        {"post_feedforward_layernorm.weight", "post_ffw_norm.weight", 0, false},
        {"self_attn.q_norm.weight", "attn_q_norm.weight", 0, false},
        {"self_attn.k_norm.weight", "attn_k_norm.weight", 0, false},
        {"self_attn.q_proj.weight", "attn_q.weight", 0, false}, {"self_attn.k_proj.weight", "attn_k.weight", 0, false},
        {"self_attn.v_proj.weight", "attn_v.weight", 0, false}, {"self_attn.o_proj.weight", "attn_output.weight", 0, false},
        {"mlp.gate_proj.weight", "ffn_gate.weight", 0, false}, {"mlp.up_proj.weight", "ffn_up.weight", 0, false},
        {"mlp.down_proj.weight", "ffn_down.weight", 0, false},
    };
    int n = 0;
    p[n++] = (planned){"token_embd.weight", qe_safetensors_find(st, "model.embed_tokens.weight"), 0, false};
    p[n++] = (planned){"output_norm.weight", qe_safetensors_find(st, "model.norm.weight"), 0, sm->is_gemma};
    for (int l = 0; l < sm->n_layers && sm->is_gemma; l++)
        for (size_t k = 0; k < sizeof gemma_names / sizeof gemma_names[0]; k++) {
            char hf[128];
            snprintf(hf, sizeof hf, "model.layers.%d.%s", l, gemma_names[k].hf);
            p[n].t = qe_safetensors_find(st, hf);
            snprintf(p[n].gguf_name, sizeof p[n].gguf_name, "blk.%d.%s", l, gemma_names[k].gguf);
            p[n].permute_heads = 0;
            p[n].is_norm_shifted = strstr(hf, "norm.weight") != NULL;
            n++;
        }
    for (int l = 0; l < sm->n_layers && !sm->is_gemma; l++)
        for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
            if (names[k].is_bias && !sm->has_bias)
                continue;
            char hf[128];
            snprintf(hf, sizeof hf, "model.layers.%d.%s", l, names[k].hf);
            p[n].t = qe_safetensors_find(st, hf);
            snprintf(p[n].gguf_name, sizeof p[n].gguf_name, "blk.%d.%s", l, names[k].gguf);
            p[n].permute_heads = !sm->permutes_qk ? 0 : names[k].heads == 1 ? sm->n_heads
                               : names[k].heads == 2 ? sm->n_kv_heads : 0;
            p[n].is_norm_shifted = false;
            n++;
        }
    return n;
}

static void write_gguf(const fixture_model *sm, const qe_safetensors *st, const char *path)
{
    planned p[128];
    int n = plan(sm, st, p);
    buffer b = {0};
    char key[96];
    put(&b, "GGUF", 4);
    put_u32(&b, 3);
    put_u64(&b, (uint64_t)n);
    put_u64(&b, sm->is_gemma ? 16 : 11);
    put_str(&b, "general.architecture"); put_u32(&b, 8); put_str(&b, sm->arch);
#define ARCH_KEY(suffix) (snprintf(key, sizeof key, "%s.%s", sm->arch, suffix), key)
    kv_u32(&b, ARCH_KEY("embedding_length"), (uint32_t)sm->hidden);
    kv_u32(&b, ARCH_KEY("block_count"), (uint32_t)sm->n_layers);
    kv_u32(&b, ARCH_KEY("attention.head_count"), (uint32_t)sm->n_heads);
    kv_u32(&b, ARCH_KEY("attention.head_count_kv"), (uint32_t)sm->n_kv_heads);
    kv_u32(&b, ARCH_KEY("feed_forward_length"), (uint32_t)sm->ffn);
    kv_u32(&b, ARCH_KEY("context_length"), (uint32_t)sm->context);
    kv_f32(&b, ARCH_KEY("rope.freq_base"), sm->rope_theta);
    kv_f32(&b, ARCH_KEY("attention.layer_norm_rms_epsilon"), sm->rms_eps);
    if (sm->is_gemma) { /* what Gemma3Model.set_gguf_parameters writes, and the per-layer pattern */
        kv_u32(&b, ARCH_KEY("attention.key_length"), GEMMA_HEAD_DIM);
        kv_u32(&b, ARCH_KEY("attention.sliding_window"), GEMMA_WINDOW);
        kv_string(&b, ARCH_KEY("rope.scaling.type"), "linear");
        kv_f32(&b, ARCH_KEY("rope.scaling.factor"), 8.0f);
        put_str(&b, ARCH_KEY("attention.sliding_window_pattern"));
        put_u32(&b, 9); put_u32(&b, 7); put_u64(&b, 3); put(&b, "\1\1\0", 3);
    }
#undef ARCH_KEY
    kv_u32(&b, "tokenizer.ggml.bos_token_id", 1);
    kv_u32(&b, "tokenizer.ggml.eos_token_id", 2);
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        const qe_tensor_view *t = p[i].t;
        put_str(&b, p[i].gguf_name);
        put_u32(&b, (uint32_t)t->n_dims);
        for (int d = t->n_dims - 1; d >= 0; d--) /* ggml lists the contiguous dimension first */
            put_u64(&b, (uint64_t)t->shape[d]);
        put_u32(&b, p[i].is_norm_shifted ? 0 : t->dtype == QE_DTYPE_BF16 ? 30 : t->dtype == QE_DTYPE_F16 ? 1 : 0);
        put_u64(&b, offset);
        size_t n_bytes = p[i].is_norm_shifted ? t->n_elements * sizeof(float) : t->n_bytes;
        offset += (n_bytes + 31) / 32 * 32;
    }
    while (b.n % 32)
        put(&b, "", 1);
    for (int i = 0; i < n; i++) {
        const qe_tensor_view *t = p[i].t;
        if (p[i].is_norm_shifted) {
            /* llama.cpp adds the 1 in the checkpoint's dtype; float32 here keeps it exact, so the
             * comparison below isolates the loader (a bf16 sum would round each weight) */
            float shifted[256];
            qe_convert_to_f32(shifted, t->data, t->dtype, t->n_elements);
            for (uint64_t k = 0; k < t->n_elements; k++)
                shifted[k] += 1.0f;
            put(&b, shifted, t->n_elements * sizeof(float));
            while (b.n % 32)
                put(&b, "", 1);
            continue;
        }
        void *rows = malloc(t->n_bytes);
        if (p[i].permute_heads)
            permute_like_llamacpp(t->data, rows, p[i].permute_heads, (int)t->shape[0], t->n_bytes / t->shape[0]);
        else
            memcpy(rows, t->data, t->n_bytes);
        put(&b, rows, t->n_bytes);
        free(rows);
        while (b.n % 32)
            put(&b, "", 1);
    }
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(b.bytes, 1, b.n, f);
        fclose(f);
    }
    free(b.bytes);
}

/* Converts the fixture model, loads the GGUF and compares every golden sequence's logits. */
static void test_fixture_model(const fixture_model *sm)
{
    char dir[1024], path[1100], relative[128], gguf_path[] = "/tmp/qeval-gguf-model-XXXXXX.gguf";
    snprintf(relative, sizeof relative, "models/%s", sm->dir);
    check_fixture_path(dir, sizeof dir, relative);
    qe_safetensors *st = NULL, *golden = NULL;
    qe_error err = {0};
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (qe_safetensors_open(path, &st, &err) != QE_OK) {
        check_n_failed++;
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    int fd = mkstemps(gguf_path, 5);
    CHECK(fd >= 0);
    close(fd);
    write_gguf(sm, st, gguf_path);

    qe_model *m = NULL;
    qe_load_options options = {.variant = {.kind = QE_VARIANT_FP32}, .device = QE_DEVICE_CPU, .n_threads = 1};
    CHECK_INT_EQ(QE_OK, qe_model_load(gguf_path, &options, &m, &err));
    if (!m) {
        fprintf(stderr, "%s\n", err.msg);
    } else {
        qe_model_info info;
        qe_model_get_info(m, &info);
        CHECK_STR_EQ(sm->arch, info.architecture);
        CHECK_INT_EQ(sm->vocab, info.n_vocab);
        CHECK_INT_EQ(sm->n_kv_heads, info.n_kv_heads);
        CHECK_STR_EQ("", info.source_note); /* F32 and BF16 widen exactly: nothing to say */
        char *prompt = NULL;
        CHECK_INT_EQ(QE_EUNSUPPORTED, qe_model_chat_prompt(m, NULL, "hi", &prompt, &err));
        CHECK(strstr(err.msg, "has no chat template") != NULL);
        /* A GGUF computes rope frequencies in float32, as llama.cpp does; transformers' golden of
         * a bfloat16 checkpoint rounds them to bfloat16 (0.5 logits apart on tiny-qwen2). Match
         * transformers here so the comparison isolates the weight and config mapping. */
        CHECK_INT_EQ(QE_DTYPE_F32, m->cfg.torch_dtype);
        m->cfg.torch_dtype = sm->torch_dtype;
        if (sm->is_gemma) {
            const qe_model_config *c = &m->cfg;
            CHECK(c->has_qk_norm && c->has_sandwich_norms && c->norm_weight_offset == 1.0f);
            CHECK(c->activation == QE_ACT_GELU_TANH && c->embed_scale == 8.0f && c->head_dim == GEMMA_HEAD_DIM);
            CHECK(c->n_ropes == 2 && c->ropes[0].type == QE_ROPE_LINEAR && c->ropes[0].factor == 8.0 &&
                  c->ropes[0].theta == 1e6 && c->ropes[1].type == QE_ROPE_DEFAULT && c->ropes[1].theta == 1e4);
            CHECK(c->layers[0].sliding_window == GEMMA_WINDOW && c->layers[0].rope_index == 1 &&
                  c->layers[1].sliding_window == GEMMA_WINDOW && c->layers[2].sliding_window == 0 &&
                  c->layers[2].rope_index == 0);
            /* llama.cpp scales scores by head_dim^-0.5 (the file has no query_pre_attn_scalar);
             * the fixture's 24 is set here as its config.json says */
            CHECK(fabsf(c->attn_scale - 1.0f / sqrtf(GEMMA_HEAD_DIM)) < 1e-7f);
            m->cfg.attn_scale = (float)(1.0 / sqrt(GEMMA_QUERY_SCALAR));
        }
        snprintf(path, sizeof path, "%s/golden.safetensors", dir);
        CHECK_INT_EQ(QE_OK, qe_safetensors_open(path, &golden, &err));
        double max_diff = 0;
        for (int s = 0; golden; s++) {
            char name[64];
            snprintf(name, sizeof name, "seq%d.input_ids", s);
            const qe_tensor_view *ids = qe_safetensors_find(golden, name);
            snprintf(name, sizeof name, "seq%d.logits", s);
            const qe_tensor_view *expected = qe_safetensors_find(golden, name);
            if (!ids || !expected)
                break;
            int n_tok = (int)ids->shape[0];
            int32_t *tok = malloc((size_t)n_tok * sizeof *tok);
            float *want = malloc(expected->n_bytes), *got = malloc(expected->n_bytes);
            memcpy(tok, ids->data, (size_t)n_tok * sizeof *tok);
            memcpy(want, expected->data, expected->n_bytes);
            CHECK_INT_EQ(QE_OK, qe_forward_logits(m, tok, n_tok, got, &err));
            for (uint64_t k = 0; k < expected->n_elements; k++)
                max_diff = fmax(max_diff, fabs((double)want[k] - got[k]));
            free(tok);
            free(want);
            free(got);
        }
        printf("%s as GGUF: max |logit - golden| %.2e\n", sm->dir, max_diff);
        CHECK(max_diff < 1e-4);
        qe_safetensors_close(golden);
    }
    /* metadata only: the same shapes and parameter count, nothing dequantized */
    uint64_t n_params = 0;
    if (m) {
        qe_model_info info;
        qe_model_get_info(m, &info);
        n_params = info.n_params;
    }
    qe_model_free(m);
    m = NULL;
    options.metadata_only = true;
    CHECK_INT_EQ(QE_OK, qe_model_load(gguf_path, &options, &m, &err));
    if (m) {
        qe_model_info info;
        qe_model_get_info(m, &info);
        CHECK(n_params > 0 && info.n_params == n_params);
        qe_tensor_info tensor;
        CHECK_INT_EQ(QE_OK, qe_model_tensor_info(m, 0, &tensor, &err));
        CHECK_STR_EQ("model.embed_tokens.weight", tensor.name);
        CHECK(tensor.n_dims == 2 && tensor.shape[0] == sm->vocab && tensor.shape[1] == sm->hidden);
    }
    qe_model_free(m);
    unlink(gguf_path);
    qe_safetensors_close(st);
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    fclose(f);
    if (s)
        s[n] = '\0';
    return s;
}

/* A known model's logits against an independent numpy forward pass over its GGUF, when `qeval
 * model fetch` has cached it. */
typedef struct {
    const char *short_name, *golden;   /* tests/golden/gguf/<golden> */
    const char *source_note, *user_turn, *chat_prompt, *notice;
    uint64_t n_params;
    int n_layers, hidden, n_heads, n_kv_heads;
} cached_model;

static const cached_model cached_models[] = {
    {"smollm2-135m", "smollm2_logits.json", "fp32 from Q4_1", "What is the capital of France?",
     "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
     "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n", "",
     134515008, 30, 576, 9, 3},
    /* no chat template in the file: the Gemma turns from its vocabulary, said in the notice */
    {"gemma3-270m", "gemma3_logits.json", "fp32 from Q5_0", "What is the capital of France?",
     "<start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n",
     "the file has no tokenizer.chat_template", 268098176, 18, 640, 4, 1},
};

static void test_cached_model(const cached_model *cm)
{
    char *model_path = NULL, golden_path[1024];
    qe_error err = {0};
    if (qh_model_cached_path(qh_model_lookup(cm->short_name), &model_path, &err) != QE_OK ||
        access(model_path, R_OK) != 0) {
        printf("%s: not in the model cache, skipped (qeval model fetch %s puts it there)\n", cm->short_name,
               cm->short_name);
        free(model_path);
        return;
    }
    snprintf(golden_path, sizeof golden_path, "%s/tests/golden/gguf/%s", QEVAL_SOURCE_DIR, cm->golden);
    char *text = read_all(golden_path);
    cJSON *golden = text ? cJSON_Parse(text) : NULL;
    free(text);
    const cJSON *ids = cJSON_GetObjectItem(golden, "ids"), *probes = cJSON_GetObjectItem(golden, "probe_ids");
    const cJSON *argmax = cJSON_GetObjectItem(golden, "argmax"), *probe_logits = cJSON_GetObjectItem(golden, "probe_logits");
    CHECK(ids && probes && argmax && probe_logits);
    qe_model *m = NULL;
    qe_load_options options = {.variant = {.kind = QE_VARIANT_FP32}, .device = QE_DEVICE_CPU};
    CHECK_INT_EQ(QE_OK, qe_model_load(model_path, &options, &m, &err));
    free(model_path);
    if (m && ids) {
        qe_model_info info;
        qe_model_get_info(m, &info);
        CHECK_STR_EQ(cm->source_note, info.source_note);
        CHECK(cm->notice[0] ? strstr(info.notice, cm->notice) != NULL : !info.notice[0]);
        char *prompt = NULL;
        CHECK_INT_EQ(QE_OK, qe_model_chat_prompt(m, NULL, cm->user_turn, &prompt, &err));
        CHECK_STR_EQ(cm->chat_prompt, prompt);
        /* the rendered prompt plus the BOS the tokenizer adds are the golden's ids */
        int32_t *prompt_ids = NULL;
        int n_prompt = 0;
        CHECK_INT_EQ(QE_OK, qe_tokenize(m, prompt, true, &prompt_ids, &n_prompt, &err));
        CHECK_INT_EQ(cJSON_GetArraySize(ids), n_prompt);
        for (int i = 0; i < n_prompt && i < cJSON_GetArraySize(ids); i++)
            CHECK_INT_EQ(cJSON_GetArrayItem(ids, i)->valueint, prompt_ids[i]);
        free(prompt_ids);
        free(prompt);
        CHECK_INT_EQ(cm->n_params, info.n_params);
        CHECK(info.n_layers == cm->n_layers && info.hidden == cm->hidden && info.n_heads == cm->n_heads &&
              info.n_kv_heads == cm->n_kv_heads);
        int n = cJSON_GetArraySize(ids);
        int32_t tok[64];
        for (int i = 0; i < n && i < 64; i++)
            tok[i] = cJSON_GetArrayItem(ids, i)->valueint;
        float *logits = malloc((size_t)n * info.n_vocab * sizeof(float));
        CHECK_INT_EQ(QE_OK, qe_forward_logits(m, tok, n, logits, &err));
        int n_argmax_same = 0;
        double max_diff = 0;
        for (int t = 0; t < n; t++) {
            const float *row = logits + (size_t)t * info.n_vocab;
            int best = 0;
            for (int v = 1; v < info.n_vocab; v++)
                if (row[v] > row[best])
                    best = v;
            n_argmax_same += best == cJSON_GetArrayItem(argmax, t)->valueint;
            const cJSON *want = cJSON_GetArrayItem(probe_logits, t);
            for (int k = 0; k < cJSON_GetArraySize(probes); k++) {
                double d = fabs(row[cJSON_GetArrayItem(probes, k)->valueint] - cJSON_GetArrayItem(want, k)->valuedouble);
                max_diff = d > max_diff ? d : max_diff;
            }
        }
        printf("%s: argmax equal at %d/%d positions, max |logit - numpy reference| %.2e\n", cm->short_name,
               n_argmax_same, n, max_diff);
        CHECK_INT_EQ(n, n_argmax_same);
        CHECK(max_diff < 1e-3);
        free(logits);
    }
    qe_model_free(m);
    cJSON_Delete(golden);
}

/* Loading a GGUF whose metadata is missing or wrong fails naming the file and key. */
static void expect_config_error(buffer *b, uint64_t n_kv, const char *needle)
{
    memcpy(b->bytes + 16, &n_kv, 8);
    qe_gguf *g = NULL;
    qe_error err = {0};
    qe_model_config cfg;
    CHECK_INT_EQ(QE_OK, qe_gguf_open_memory(b->bytes, b->n, "bad.gguf", &g, &err));
    if (!g)
        return;
    qe_status rc = qe_gguf_model_config(g, &cfg, &err);
    CHECK(rc != QE_OK);
    if (rc == QE_OK)
        qe_model_config_free(&cfg);
    else if (!strstr(err.msg, needle) || !strstr(err.msg, "bad.gguf")) {
        check_n_failed++;
        fprintf(stderr, "message '%s' lacks '%s'\n", err.msg, needle);
    }
    qe_gguf_close(g);
}

static void start(buffer *b, const char *arch, int n_tensors)
{
    b->n = 0;
    put(b, "GGUF", 4); put_u32(b, 3); put_u64(b, (uint64_t)n_tensors); put_u64(b, 0);
    put_str(b, "general.architecture"); put_u32(b, 8); put_str(b, arch);
}

/* token_embd [4 tokens, 8] and blk.0.attn_norm [8], zeros */
static void add_tensors(buffer *b)
{
    put_str(b, "token_embd.weight"); put_u32(b, 2); put_u64(b, 8); put_u64(b, 4); put_u32(b, 0); put_u64(b, 0);
    put_str(b, "blk.0.attn_norm.weight"); put_u32(b, 1); put_u64(b, 8); put_u32(b, 0); put_u64(b, 128);
    while (b->n % 32)
        put(b, "", 1);
    float zeros[40] = {0};
    put(b, zeros, sizeof zeros);
}

static void test_hostile_config(void)
{
    buffer b = {0};
    start(&b, "gpt2", 0);
    expect_config_error(&b, 1, "general.architecture 'gpt2' is not supported");
    start(&b, "llama", 0);
    expect_config_error(&b, 1, "token_embd.weight is missing");
    start(&b, "llama", 2);
    kv_u32(&b, "llama.embedding_length", 8); kv_u32(&b, "llama.block_count", 1000000);
    kv_u32(&b, "llama.attention.head_count", 2); kv_u32(&b, "llama.feed_forward_length", 16);
    add_tensors(&b);
    expect_config_error(&b, 5, "block_count 1000000, but there is no tensor blk.999999.attn_norm.weight");
    start(&b, "llama", 2);
    kv_u32(&b, "llama.embedding_length", 16); kv_u32(&b, "llama.block_count", 1);
    kv_u32(&b, "llama.attention.head_count", 2); kv_u32(&b, "llama.feed_forward_length", 16);
    add_tensors(&b);
    expect_config_error(&b, 5, "token_embd.weight rows hold 8 values, llama.embedding_length says 16");
    start(&b, "llama", 2);
    kv_u32(&b, "llama.embedding_length", 8);
    add_tensors(&b);
    expect_config_error(&b, 2, "'llama.block_count' (integer) is missing");
    start(&b, "llama", 2);
    kv_u32(&b, "llama.embedding_length", 0);
    add_tensors(&b);
    expect_config_error(&b, 2, "llama.embedding_length = 0 is not a positive size");
    start(&b, "llama", 2);
    kv_u32(&b, "llama.embedding_length", 8); kv_u32(&b, "llama.block_count", 1);
    kv_u32(&b, "llama.attention.head_count", 3); kv_u32(&b, "llama.feed_forward_length", 16);
    kv_u32(&b, "llama.attention.head_count_kv", 2);
    add_tensors(&b);
    expect_config_error(&b, 6, "head_count 3 is not a multiple of head_count_kv 2");
    start(&b, "llama", 2);
    kv_u32(&b, "llama.embedding_length", 8); kv_u32(&b, "llama.block_count", 1);
    kv_u32(&b, "llama.attention.head_count", 2); kv_u32(&b, "llama.feed_forward_length", 16);
    put_str(&b, "llama.rope.scaling.type"); put_u32(&b, 8); put_str(&b, "yarn");
    add_tensors(&b);
    expect_config_error(&b, 6, "llama.rope.scaling.type 'yarn' is not supported");

    /* gemma3: what llama.cpp requires or refuses, and a per-layer pattern that does not fit */
#define GEMMA_BASE(b) (start(b, "gemma3", 2), kv_u32(b, "gemma3.embedding_length", 8), \
                       kv_u32(b, "gemma3.block_count", 1), kv_u32(b, "gemma3.attention.head_count", 2), \
                       kv_u32(b, "gemma3.feed_forward_length", 16))
    GEMMA_BASE(&b);
    add_tensors(&b);
    expect_config_error(&b, 5, "'gemma3.attention.sliding_window' (integer) is missing");
    GEMMA_BASE(&b);
    kv_u32(&b, "gemma3.attention.sliding_window", 4); kv_f32(&b, "gemma3.final_logit_softcapping", 30.0f);
    add_tensors(&b);
    expect_config_error(&b, 7, "gemma3.final_logit_softcapping is set; logit soft-capping is not supported");
    GEMMA_BASE(&b);
    kv_u32(&b, "gemma3.attention.sliding_window", 4); kv_u32(&b, "gemma3.attention.value_length", 2);
    add_tensors(&b);
    expect_config_error(&b, 7, "value_length 2 differs from key_length 4");
    GEMMA_BASE(&b);
    kv_u32(&b, "gemma3.attention.sliding_window", 4);
    put_str(&b, "gemma3.attention.sliding_window_pattern"); put_u32(&b, 9); put_u32(&b, 7); put_u64(&b, 2);
    put(&b, "\1\0", 2);
    add_tensors(&b);
    expect_config_error(&b, 7, "sliding_window_pattern is an array of 2 BOOL, not one bool per layer (1)");
    GEMMA_BASE(&b);
    kv_u32(&b, "gemma3.attention.sliding_window", 4);
    put_str(&b, "gemma3.attention.sliding_window_pattern"); put_u32(&b, 9); put_u32(&b, 4); put_u64(&b, 1);
    put_u32(&b, 1);
    add_tensors(&b);
    expect_config_error(&b, 7, "sliding_window_pattern is an array of 1 UINT32, not one bool per layer (1)");
    GEMMA_BASE(&b);
    kv_u32(&b, "gemma3.attention.sliding_window", 4); kv_u32(&b, "gemma3.attention.sliding_window_pattern", 0);
    add_tensors(&b);
    expect_config_error(&b, 7, "gemma3.attention.sliding_window_pattern = 0 is not a layer period");
    GEMMA_BASE(&b);
    kv_u32(&b, "gemma3.attention.sliding_window", 0);
    add_tensors(&b);
    expect_config_error(&b, 6, "gemma3.attention.sliding_window = 0 is not a positive size");
    GEMMA_BASE(&b);
    kv_u32(&b, "gemma3.attention.sliding_window", 4); kv_u32(&b, "tokenizer.ggml.eot_token_id", 4);
    add_tensors(&b);
    expect_config_error(&b, 7, "tokenizer.ggml.eot_token_id 4 is outside the vocabulary of 4");
#undef GEMMA_BASE
    free(b.bytes);
}

/* A gemma3 GGUF without tokenizer.chat_template (as gguf-my-repo's gemma-3-270m is) chats in the
 * Gemma turn format its <start_of_turn>/<end_of_turn> tokens imply, says so in the load notice,
 * stops generating at <end_of_turn>, and gets exactly one BOS: the rendered prompt leaves it to
 * the tokenizer (tokenizer.ggml.add_bos_token). A hand-made 20-token SentencePiece vocabulary;
 * the expected ids are read off it by hand. */
static void test_gemma_turns_without_template(void)
{
    static const char *const tokens[] = {"<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>",
                                         "\n", "user", "model", "hi", "us", "er", "mo", "de", "mode",
                                         "u", "s", "e", "r", "m", "o", "d", "l", "h", "i"};
    enum { N_VOCAB = sizeof tokens / sizeof tokens[0], HIDDEN = 8 };
    buffer b = {0};
    start(&b, "gemma3", 2);
    kv_u32(&b, "gemma3.embedding_length", HIDDEN); kv_u32(&b, "gemma3.block_count", 1);
    kv_u32(&b, "gemma3.attention.head_count", 2); kv_u32(&b, "gemma3.feed_forward_length", 16);
    kv_u32(&b, "gemma3.attention.key_length", 4); kv_u32(&b, "gemma3.attention.sliding_window", 4);
    kv_string(&b, "tokenizer.ggml.model", "llama");
    put_str(&b, "tokenizer.ggml.tokens"); put_u32(&b, 9); put_u32(&b, 8); put_u64(&b, N_VOCAB);
    for (int i = 0; i < N_VOCAB; i++)
        put_str(&b, tokens[i]);
    put_str(&b, "tokenizer.ggml.scores"); put_u32(&b, 9); put_u32(&b, 6); put_u64(&b, N_VOCAB);
    for (int i = 0; i < N_VOCAB; i++) {
        float score = i < 6 ? -1000.0f : (float)strlen(tokens[i]); /* longer pieces merge first */
        put(&b, &score, 4);
    }
    put_str(&b, "tokenizer.ggml.token_type"); put_u32(&b, 9); put_u32(&b, 5); put_u64(&b, N_VOCAB);
    for (int i = 0; i < N_VOCAB; i++)
        put_u32(&b, i == 3 ? 2 : i < 6 ? 3 : i == 6 ? 4 : 1); /* unknown, control, user-defined "\n", normal */
    kv_u32(&b, "tokenizer.ggml.bos_token_id", 2); kv_u32(&b, "tokenizer.ggml.eos_token_id", 1);
    put_str(&b, "tokenizer.ggml.add_bos_token"); put_u32(&b, 7); put(&b, "\1", 1);
    put_str(&b, "tokenizer.ggml.add_space_prefix"); put_u32(&b, 7); put(&b, "", 1);
    uint64_t n_kv = 15; /* the architecture, six gemma3 keys, eight tokenizer keys */
    memcpy(b.bytes + 16, &n_kv, 8);
    put_str(&b, "token_embd.weight"); put_u32(&b, 2); put_u64(&b, HIDDEN); put_u64(&b, N_VOCAB); put_u32(&b, 0);
    put_u64(&b, 0);
    put_str(&b, "blk.0.attn_norm.weight"); put_u32(&b, 1); put_u64(&b, HIDDEN); put_u32(&b, 0);
    put_u64(&b, (HIDDEN * N_VOCAB * 4 + 31) / 32 * 32);
    while (b.n % 32)
        put(&b, "", 1);
    float zeros[HIDDEN * N_VOCAB + 8 + 8] = {0};
    put(&b, zeros, sizeof zeros);

    char path[] = "/tmp/qeval-gemma-turns-XXXXXX.gguf";
    int fd = mkstemps(path, 5);
    CHECK(fd >= 0 && write(fd, b.bytes, b.n) == (ssize_t)b.n);
    close(fd);
    free(b.bytes);
    qe_model *m = NULL;
    qe_error err = {0};
    qe_load_options options = {.variant = {.kind = QE_VARIANT_FP32}, .device = QE_DEVICE_CPU, .metadata_only = true};
    CHECK_INT_EQ(QE_OK, qe_model_load(path, &options, &m, &err));
    if (!m) {
        fprintf(stderr, "%s\n", err.msg);
        unlink(path);
        return;
    }
    qe_model_info info;
    qe_model_get_info(m, &info);
    CHECK(strstr(info.notice, "the file has no tokenizer.chat_template; its <start_of_turn>/<end_of_turn> tokens "
                 "give the Gemma turn format") != NULL);
    CHECK(m->cfg.n_eos == 2 && m->cfg.eos_ids[0] == 1 && m->cfg.eos_ids[1] == 5);
    const char *family = NULL;
    CHECK_INT_EQ(QE_OK, qe_model_chat_family(m, &family, &err));
    CHECK_STR_EQ("gemma", family);
    char *prompt = NULL;
    CHECK_INT_EQ(QE_OK, qe_model_chat_prompt(m, NULL, " hi\n", &prompt, &err));
    CHECK_STR_EQ("<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n", prompt);
    int32_t *ids = NULL;
    int n_ids = 0;
    CHECK_INT_EQ(QE_OK, qe_tokenize(m, prompt, true, &ids, &n_ids, &err));
    static const int32_t expected[] = {2, 4, 7, 6, 9, 5, 6, 4, 8, 6}; /* <bos> once, then the turns */
    CHECK_INT_EQ(10, n_ids);
    for (int i = 0; i < n_ids && i < 10; i++)
        CHECK_INT_EQ(expected[i], ids[i]);
    free(ids);
    free(prompt);
    qe_model_free(m);
    unlink(path);
}

int main(void)
{
    for (size_t i = 0; i < sizeof fixture_models / sizeof fixture_models[0]; i++)
        test_fixture_model(&fixture_models[i]);

    /* the unpermute is the inverse of llama.cpp's permute on a hand-made 2-head matrix */
    qe_error err = {0};
    float hf[2 * 4 * 3], gg[2 * 4 * 3];
    for (int i = 0; i < 24; i++)
        hf[i] = (float)i;
    permute_like_llamacpp(hf, gg, 2, 8, 3 * sizeof(float));
    /* head 0 rows in GGUF order: HF rows 0, 2, 1, 3 (pairs (i, j) -> j*half + i) */
    CHECK(gg[3] == 6.0f && gg[6] == 3.0f && gg[9] == 9.0f && gg[12] == 12.0f);
    CHECK_INT_EQ(QE_OK, qe_gguf_unpermute_rows(gg, 2, 4, 3, &err));
    CHECK(memcmp(hf, gg, sizeof hf) == 0);

    test_hostile_config();
    test_gemma_turns_without_template();
    for (size_t i = 0; i < sizeof cached_models / sizeof cached_models[0]; i++)
        test_cached_model(&cached_models[i]);
    return check_summary();
}
