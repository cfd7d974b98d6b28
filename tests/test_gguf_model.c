/* A GGUF llama model loads into the same forward pass as its Hugging Face original. The test
 * converts the shared stories260K safetensors the way llama.cpp's convert_hf_to_gguf.py does
 * (HF -> GGUF tensor names, q/k rows permuted per head with reshape(n_head, 2, half, n_in)
 * .swapaxes(1, 2)), writes a GGUF file, loads it with qe_model_load and compares the logits
 * with PyTorch's golden ones. */
#include <stdint.h>
#include <unistd.h>

#include "check.h"
#include "gguf_model.h"
#include "qeval_engine.h"
#include "safetensors.h"

enum { HIDDEN = 64, N_LAYERS = 5, N_HEADS = 8, N_KV_HEADS = 4, HEAD_DIM = 8, FFN = 172, VOCAB = 512 };

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

/* llama.cpp's permute for rope: rows (h, j, i) of [n_head, 2, half] go to (h, i, j). */
static void permute_like_llamacpp(const float *hf, float *out, int n_head, int rows, int cols)
{
    int head_dim = rows / n_head, half = head_dim / 2;
    for (int h = 0; h < n_head; h++)
        for (int i = 0; i < half; i++)
            for (int j = 0; j < 2; j++)
                memcpy(out + (size_t)(h * head_dim + i * 2 + j) * cols,
                       hf + (size_t)(h * head_dim + j * half + i) * cols, (size_t)cols * sizeof(float));
}

typedef struct {
    char gguf_name[64];
    const qe_tensor_view *t;
    int permute_heads;
} planned;

static int plan(const qe_safetensors *st, planned *p)
{
    static const struct { const char *hf, *gguf; int heads; } names[] = {
        {"input_layernorm.weight", "attn_norm.weight", 0}, {"post_attention_layernorm.weight", "ffn_norm.weight", 0},
        {"self_attn.q_proj.weight", "attn_q.weight", N_HEADS}, {"self_attn.k_proj.weight", "attn_k.weight", N_KV_HEADS},
        {"self_attn.v_proj.weight", "attn_v.weight", 0}, {"self_attn.o_proj.weight", "attn_output.weight", 0},
        {"mlp.gate_proj.weight", "ffn_gate.weight", 0}, {"mlp.up_proj.weight", "ffn_up.weight", 0},
        {"mlp.down_proj.weight", "ffn_down.weight", 0},
    };
    int n = 0;
    p[n++] = (planned){"token_embd.weight", qe_safetensors_find(st, "model.embed_tokens.weight"), 0};
    p[n++] = (planned){"output_norm.weight", qe_safetensors_find(st, "model.norm.weight"), 0};
    for (int l = 0; l < N_LAYERS; l++)
        for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
            char hf[128];
            snprintf(hf, sizeof hf, "model.layers.%d.%s", l, names[k].hf);
            p[n].t = qe_safetensors_find(st, hf);
            snprintf(p[n].gguf_name, sizeof p[n].gguf_name, "blk.%d.%s", l, names[k].gguf);
            p[n].permute_heads = names[k].heads;
            n++;
        }
    return n;
}

static void write_gguf(const qe_safetensors *st, const char *path)
{
    planned p[64];
    int n = plan(st, p);
    buffer b = {0};
    put(&b, "GGUF", 4);
    put_u32(&b, 3);
    put_u64(&b, (uint64_t)n);
    put_u64(&b, 11);
    put_str(&b, "general.architecture"); put_u32(&b, 8); put_str(&b, "llama");
    kv_u32(&b, "llama.embedding_length", HIDDEN);
    kv_u32(&b, "llama.block_count", N_LAYERS);
    kv_u32(&b, "llama.attention.head_count", N_HEADS);
    kv_u32(&b, "llama.attention.head_count_kv", N_KV_HEADS);
    kv_u32(&b, "llama.feed_forward_length", FFN);
    kv_u32(&b, "llama.context_length", 512);
    kv_f32(&b, "llama.rope.freq_base", 10000.0f);
    kv_f32(&b, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    kv_u32(&b, "tokenizer.ggml.bos_token_id", 1);
    kv_u32(&b, "tokenizer.ggml.eos_token_id", 2);
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        const qe_tensor_view *t = p[i].t;
        put_str(&b, p[i].gguf_name);
        put_u32(&b, (uint32_t)t->n_dims);
        for (int d = t->n_dims - 1; d >= 0; d--) /* ggml lists the contiguous dimension first */
            put_u64(&b, (uint64_t)t->shape[d]);
        put_u32(&b, 0); /* F32 */
        put_u64(&b, offset);
        offset += (t->n_bytes + 31) / 32 * 32;
    }
    while (b.n % 32)
        put(&b, "", 1);
    for (int i = 0; i < n; i++) {
        const qe_tensor_view *t = p[i].t;
        float *rows = malloc(t->n_bytes);
        if (p[i].permute_heads)
            permute_like_llamacpp(t->data, rows, p[i].permute_heads, (int)t->shape[0], (int)t->shape[1]);
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

int main(void)
{
    char dir[1024], path[1100], gguf_path[] = "/tmp/qeval-gguf-model-XXXXXX.gguf";
    snprintf(dir, sizeof dir, "%s/models/stories260K", check_shared_dir());
    qe_safetensors *st = NULL, *golden = NULL;
    qe_error err = {0};
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (qe_safetensors_open(path, &st, &err) != QE_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int fd = mkstemps(gguf_path, 5);
    CHECK(fd >= 0);
    close(fd);
    write_gguf(st, gguf_path);

    qe_model *m = NULL;
    qe_load_options options = {.variant = {.kind = QE_VARIANT_FP32}, .device = QE_DEVICE_CPU, .n_threads = 1};
    CHECK_INT_EQ(QE_OK, qe_model_load(gguf_path, &options, &m, &err));
    if (!m) {
        fprintf(stderr, "%s\n", err.msg);
    } else {
        qe_model_info info;
        qe_model_get_info(m, &info);
        CHECK_STR_EQ("llama", info.architecture);
        CHECK_INT_EQ(VOCAB, info.n_vocab);
        CHECK_INT_EQ(N_KV_HEADS, info.n_kv_heads);
        CHECK_STR_EQ("", info.source_note); /* all F32: nothing was dequantized from a lower precision */
        snprintf(path, sizeof path, "%s/golden.safetensors", dir);
        CHECK_INT_EQ(QE_OK, qe_safetensors_open(path, &golden, &err));
        for (int s = 0; golden && s < 4; s++) {
            char name[64];
            snprintf(name, sizeof name, "seq%d.input_ids", s);
            const qe_tensor_view *ids = qe_safetensors_find(golden, name);
            snprintf(name, sizeof name, "seq%d.logits", s);
            const qe_tensor_view *expected = qe_safetensors_find(golden, name);
            CHECK(ids && expected);
            if (!ids || !expected)
                continue;
            int n_tok = (int)ids->shape[0];
            int32_t *tok = malloc((size_t)n_tok * sizeof *tok);
            float *want = malloc(expected->n_bytes), *got = malloc(expected->n_bytes);
            memcpy(tok, ids->data, (size_t)n_tok * sizeof *tok);
            memcpy(want, expected->data, expected->n_bytes);
            CHECK_INT_EQ(QE_OK, qe_forward_logits(m, tok, n_tok, got, &err));
            CHECK_CLOSE(want, got, (long)expected->n_elements, 1e-4);
            free(tok);
            free(want);
            free(got);
        }
        qe_safetensors_close(golden);
    }
    qe_model_free(m);

    /* the unpermute is the inverse of llama.cpp's permute on a hand-made 2-head matrix */
    float hf[2 * 4 * 3], gg[2 * 4 * 3];
    for (int i = 0; i < 24; i++)
        hf[i] = (float)i;
    permute_like_llamacpp(hf, gg, 2, 8, 3);
    /* head 0 rows in GGUF order: HF rows 0, 2, 1, 3 (pairs (i, j) -> j*half + i) */
    CHECK(gg[3] == 6.0f && gg[6] == 3.0f && gg[9] == 9.0f && gg[12] == 12.0f);
    CHECK_INT_EQ(QE_OK, qe_gguf_unpermute_rows(gg, 2, 4, 3, &err));
    CHECK(memcmp(hf, gg, sizeof hf) == 0);

    unlink(gguf_path);
    qe_safetensors_close(st);
    return check_summary();
}
