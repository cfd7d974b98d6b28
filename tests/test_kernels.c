/* Fast CPU kernels against their plain twins, dtype conversions and rope frequencies against
 * hand-computed values, and config parsing of both config.json forms. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "check.h"
#include "cpu/linear.h"
#include "cpu/threadpool.h"
#include "dtype.h"
#include "model_config.h"
#include "ref/ref_ops.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static void fill_random(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = check_uniform(&rng_state);
}

static void test_dtypes(void)
{
    CHECK_NEAR(1.0, qe_bf16_to_f32(0x3f80), 0);
    CHECK_NEAR(-2.5, qe_bf16_to_f32(0xc020), 0);
    CHECK_NEAR(1.0, qe_f16_to_f32(0x3c00), 0);
    CHECK_NEAR(-0.000060975552, qe_f16_to_f32(0x83ff), 1e-12); /* largest subnormal, negative */
    CHECK_NEAR(65504.0, qe_f16_to_f32(0x7bff), 0);
    CHECK_INT_EQ(0x3f80, qe_f32_to_bf16(1.0f));
    CHECK_INT_EQ(0x3f80, qe_f32_to_bf16(1.00390625f));  /* halfway 1 + 2^-8: ties to even (down) */
    CHECK_INT_EQ(0x3f82, qe_f32_to_bf16(1.01171875f));  /* halfway 1 + 3*2^-8: ties to even (up) */
    CHECK_INT_EQ(0x3c00, qe_f32_to_f16(1.0f));
    CHECK_INT_EQ(0x7c00, qe_f32_to_f16(70000.0f));      /* overflow -> inf */
    CHECK_INT_EQ(0x0001, qe_f32_to_f16(5.9604645e-08f)); /* smallest subnormal 2^-24 */
    CHECK_INT_EQ(0x3c00, qe_f32_to_f16(1.00048828125f)); /* 1 + 2^-11 halfway: to even */
    CHECK_INT_EQ(QE_DTYPE_BF16, qe_dtype_from_name("BF16"));
    CHECK_INT_EQ(-1, qe_dtype_from_name("bf16"));
}

/* The inline and vector roundings of activations against the conversions (qe_f32_to_f16 and
 * qe_f32_to_bf16 are hand-checked above): a spread of bit patterns over every exponent, halfway
 * cases, subnormals, overflow, infinities and NaNs, in place and one at a time. */
static void test_rounding(void)
{
    enum { N = 1 << 16 };
    static float values[N], f16[N], bf16[N];
    for (int i = 0; i < N; i++) {
        uint32_t bits = (uint32_t)i * 65537u + (i & 1 ? 0x1000u : 0); /* odd ones sit on fp16 halfway points */
        memcpy(&values[i], &bits, sizeof bits);
    }
    values[7] = 65520.0f;           /* halfway to 2^16: rounds to inf */
    values[8] = 2.98023224e-8f;     /* half the smallest subnormal: ties to 0 */
    values[9] = -INFINITY;
    values[10] = NAN;
    memcpy(f16, values, sizeof values);
    memcpy(bf16, values, sizeof values);
    for (int i = 0; i < N; i += 8) { /* 8 at a time: a NaN sends only its own group down the scalar path */
        qe_round_to_dtype(f16 + i, 8, QE_DTYPE_F16);
        qe_round_to_dtype(bf16 + i, 8, QE_DTYPE_BF16);
    }
    int n_bad = 0;
    for (int i = 0; i < N; i++) {
        float want16 = qe_f16_to_f32(qe_f32_to_f16(values[i])), want_bf = qe_bf16_to_f32(qe_f32_to_bf16(values[i]));
        float one16 = qe_round_f16(values[i]), one_bf = qe_round_bf16(values[i]);
        n_bad += memcmp(&want16, &f16[i], 4) != 0 || memcmp(&want16, &one16, 4) != 0 ||
                 memcmp(&want_bf, &bf16[i], 4) != 0 || memcmp(&want_bf, &one_bf, 4) != 0;
    }
    CHECK_INT_EQ(0, n_bad);
    CHECK(isinf(f16[7]) && f16[8] == 0.0f && isnan(f16[10]) && isnan(bf16[10]));
}

static void test_linear(qe_pool *pool)
{
    /* {n_tok, n_in, n_out}: n_in off the 8-lane blocks, n_out off the 4- and 8-row blocks, odd n_tok */
    const int shapes[][3] = {{1, 7, 5}, {3, 64, 17}, {5, 33, 40}, {9, 130, 9}, {16, 128, 64}, {7, 100, 21},
                             {13, 20, 8}, {2, 8, 30}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int n_tok = shapes[s][0], n_in = shapes[s][1], n_out = shapes[s][2];
        float *w = malloc(sizeof(float) * n_out * n_in), *b = malloc(sizeof(float) * n_out);
        float *x = malloc(sizeof(float) * n_tok * n_in);
        float *ref = malloc(sizeof(float) * n_tok * n_out), *got = malloc(sizeof(float) * n_tok * n_out);
        float *one_by_one = malloc(sizeof(float) * n_tok * n_out);
        fill_random(w, (size_t)n_out * n_in);
        fill_random(b, n_out);
        fill_random(x, (size_t)n_tok * n_in);
        size_t stride = (qe_linear_scratch_bytes(n_tok, n_in) + 63) & ~(size_t)63;
        char *scratch = aligned_alloc(64, stride * qe_pool_threads(pool));
        qe_linear lin;
        qe_weight wt;
        qe_weight_wrap_f32(&wt, w, NULL, n_out, n_in);
        qe_linear_init(&lin, &wt, QE_DTYPE_F32);
        qe_linear_f32_rows_ref(&lin.w, x, n_tok, ref, 0, n_out);
        qe_linear_forward(&lin, x, n_tok, got, pool, scratch, stride);
        CHECK_CLOSE(ref, got, n_tok * n_out, 1e-4);
        /* each token alone gives the same bits as in the batch */
        for (int t = 0; t < n_tok; t++)
            qe_linear_forward(&lin, x + (size_t)t * n_in, 1, one_by_one + (size_t)t * n_out, NULL, scratch, stride);
        CHECK(!memcmp(got, one_by_one, sizeof(float) * n_tok * n_out));
        /* bias is added once per row */
        qe_linear_free(&lin);
        qe_weight_wrap_f32(&wt, w, NULL, n_out, n_in);
        qe_weight_set_bias(&wt, b, QE_DTYPE_F32, NULL);
        qe_linear_init(&lin, &wt, QE_DTYPE_F32);
        qe_linear_forward(&lin, x, n_tok, got, pool, scratch, stride);
        qe_linear_free(&lin);
        free(scratch);
        for (int t = 0; t < n_tok; t++)
            for (int r = 0; r < n_out; r++)
                ref[t * n_out + r] += b[r];
        CHECK_CLOSE(ref, got, n_tok * n_out, 1e-4);
        free(w);
        free(b);
        free(x);
        free(ref);
        free(got);
        free(one_by_one);
    }
}

static void test_attention(qe_backend *be)
{
    /* GQA 6:2, head_dim 12, 5 new tokens after 4 cached positions, with and without a window */
    int n_heads = 6, n_kv = 2, hd = 12, pos0 = 4, n_tok = 5, n_pos = pos0 + n_tok;
    float *q = malloc(sizeof(float) * n_tok * n_heads * hd);
    float *k = malloc(sizeof(float) * n_pos * n_kv * hd), *v = malloc(sizeof(float) * n_pos * n_kv * hd);
    float *ref = malloc(sizeof(float) * n_tok * n_heads * hd), *got = malloc(sizeof(float) * n_tok * n_heads * hd);
    fill_random(q, (size_t)n_tok * n_heads * hd);
    fill_random(k, (size_t)n_pos * n_kv * hd);
    fill_random(v, (size_t)n_pos * n_kv * hd);
    double scores[n_pos];
    qe_error err = {0};
    CHECK_INT_EQ(QE_OK, be->reserve_workspace(be, n_tok, n_pos, n_heads, hd, &err));
    for (int window = 0; window <= 3; window += 3) {
        qe_attention_args a = {.q = q, .k_cache = k, .v_cache = v, .n_tok = n_tok, .pos0 = pos0, .n_heads = n_heads,
                               .n_kv_heads = n_kv, .head_dim = hd, .window = window, .scale = 0.3f};
        a.out = ref;
        qe_attention_ref(&a, QE_DTYPE_F32, scores);
        a.out = got;
        be->attention(be, &a, QE_DTYPE_F32);
        CHECK_CLOSE(ref, got, n_tok * n_heads * hd, 1e-5);
    }
    /* a sliding layer's ring (backend.h): window 3 over positions 4..8 reads positions 2..8, 7
     * rows; position p in row p % 7. The same bits as the flat cache, on both twins. */
    {
        enum { RING = 7 };
        size_t row = (size_t)n_kv * hd;
        float *k_ring = malloc(sizeof(float) * RING * row), *v_ring = malloc(sizeof(float) * RING * row);
        float *flat = malloc(sizeof(float) * n_tok * n_heads * hd);
        for (int p = 2; p < n_pos; p++) {
            memcpy(k_ring + (size_t)(p % RING) * row, k + (size_t)p * row, row * sizeof(float));
            memcpy(v_ring + (size_t)(p % RING) * row, v + (size_t)p * row, row * sizeof(float));
        }
        qe_attention_args a = {.q = q, .k_cache = k, .v_cache = v, .out = flat, .n_tok = n_tok, .pos0 = pos0,
                               .n_heads = n_heads, .n_kv_heads = n_kv, .head_dim = hd, .window = 3, .scale = 0.3f};
        qe_attention_args r = a;
        r.k_cache = k_ring, r.v_cache = v_ring, r.kv_ring = RING, r.out = got;
        qe_attention_ref(&a, QE_DTYPE_F32, scores);
        qe_attention_ref(&r, QE_DTYPE_F32, scores);
        CHECK_INT_EQ(0, memcmp(flat, got, sizeof(float) * n_tok * n_heads * hd));
        be->attention(be, &a, QE_DTYPE_F32);
        be->attention(be, &r, QE_DTYPE_F32);
        CHECK_INT_EQ(0, memcmp(flat, got, sizeof(float) * n_tok * n_heads * hd));
        CHECK_INT_EQ(QE_OK, be->sync(be, &err));
        /* a ring one row short would alias position 2 with 8: refused, not computed */
        r.kv_ring = RING - 1;
        be->attention(be, &r, QE_DTYPE_F32);
        CHECK_INT_EQ(QE_EINVAL, be->sync(be, &err));
        CHECK(strstr(err.msg, "attention over a cache of 6 rows at positions 4..8: a ring smaller than the positions "
                              "one call reads") != NULL);
        free(k_ring), free(v_ring), free(flat);
    }
    /* hand check: one query, one key -> the output is that key's value */
    qe_attention_args single = {.q = q, .k_cache = k, .v_cache = v, .out = got, .n_tok = 1, .pos0 = 0,
                                .n_heads = 1, .n_kv_heads = 1, .head_dim = hd, .window = 0, .scale = 1};
    be->attention(be, &single, QE_DTYPE_F32);
    CHECK_CLOSE(v, got, hd, 0);
    free(q);
    free(k);
    free(v);
    free(ref);
    free(got);
}

static void test_small_ops(qe_backend *be)
{
    /* rmsnorm of (3, 4) with eps 0: rms = sqrt(12.5); times weight (1, 2) */
    float x[2] = {3, 4}, w[2] = {1, 2}, y[2];
    be->rmsnorm(be, x, w, 0, 0, 1, 2, QE_DTYPE_F32, y);
    CHECK_NEAR(3 / sqrt(12.5), y[0], 1e-6);
    CHECK_NEAR(8 / sqrt(12.5), y[1], 1e-6);
    be->rmsnorm(be, x, w, 1, 0, 1, 2, QE_DTYPE_F32, y); /* gemma: (1 + weight) */
    CHECK_NEAR(6 / sqrt(12.5), y[0], 1e-6);
    /* rope with angle pi/2 on pair (x0, x1) = (1, 2): (1*0 - 2*1, 2*0 + 1*1) = (-2, 1) */
    float r[2] = {1, 2}, c[1] = {0}, s[1] = {1};
    be->rope(be, r, 1, 1, 2, c, s, QE_DTYPE_F32);
    CHECK_NEAR(-2, r[0], 0);
    CHECK_NEAR(1, r[1], 0);
    /* silu(1) * 2 = 2 / (1 + e^-1); gelu_tanh(1) = 0.841191990 */
    float g[1] = {1}, u[1] = {2}, out[1];
    be->glu(be, QE_ACT_SILU, g, u, 1, QE_DTYPE_F32, out);
    CHECK_NEAR(1.46211716, out[0], 1e-6);
    be->glu(be, QE_ACT_GELU_TANH, g, u, 1, QE_DTYPE_F32, out);
    CHECK_NEAR(2 * 0.841191990, out[0], 1e-6);
}

static void test_configs(void)
{
    /* the same Llama-3 rope, transformers-5 form and legacy form */
    const char *v5 = "{\"model_type\":\"llama\",\"vocab_size\":8,\"hidden_size\":32,\"num_hidden_layers\":2,"
                     "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"head_dim\":16,\"intermediate_size\":8,"
                     "\"rope_parameters\":{\"rope_type\":\"llama3\",\"rope_theta\":500000.0,\"factor\":8.0,"
                     "\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,\"original_max_position_embeddings\":512},"
                     "\"eos_token_id\":[7,5]}";
    const char *legacy = "{\"model_type\":\"llama\",\"vocab_size\":8,\"hidden_size\":32,\"num_hidden_layers\":2,"
                         "\"num_attention_heads\":4,\"num_key_value_heads\":2,\"head_dim\":16,\"intermediate_size\":8,"
                         "\"rope_theta\":500000.0,\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8.0,"
                         "\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,\"original_max_position_embeddings\":512}}";
    /* expected: transformers' _compute_llama3_parameters, evaluated by hand in float32 */
    const float want[8] = {1.0f, 0.193922758f, 0.0273441356f, 0.000911583134f, 0.000176776681f, 3.42810235e-05f,
                           6.64787058e-06f, 1.28917316e-06f};
    const char *forms[2] = {v5, legacy};
    for (int f = 0; f < 2; f++) {
        qe_model_config cfg;
        qe_error err = {0};
        CHECK_INT_EQ(QE_OK, qe_model_config_parse("config.json", forms[f], &cfg, &err));
        CHECK_INT_EQ(16, cfg.head_dim);
        CHECK_INT_EQ(QE_ROPE_LLAMA3, cfg.ropes[0].type);
        float inv[8];
        qe_rope_inv_freq(&cfg.ropes[0], 16, QE_DTYPE_F32, inv);
        for (int i = 0; i < 8; i++)
            CHECK_NEAR(want[i], inv[i], want[i] * 1e-6);
        CHECK_NEAR(0.25, cfg.attn_scale, 1e-7);
        qe_model_config_free(&cfg);
    }
    qe_model_config cfg;
    qe_error err = {0};
    CHECK_INT_EQ(QE_OK, qe_model_config_parse("config.json", v5, &cfg, &err));
    CHECK_INT_EQ(2, cfg.n_eos);
    CHECK_INT_EQ(5, cfg.eos_ids[1]);
    qe_model_config_free(&cfg);

    /* mistral: every layer windowed; qwen2: biases, no window unless use_sliding_window */
    const char *mistral = "{\"model_type\":\"mistral\",\"vocab_size\":8,\"hidden_size\":8,\"num_hidden_layers\":2,"
                          "\"num_attention_heads\":2,\"intermediate_size\":8,\"sliding_window\":4096}";
    CHECK_INT_EQ(QE_OK, qe_model_config_parse("config.json", mistral, &cfg, &err));
    CHECK_INT_EQ(4096, cfg.layers[1].sliding_window);
    CHECK(!cfg.tie_embeddings);
    qe_model_config_free(&cfg);
    const char *qwen = "{\"model_type\":\"qwen2\",\"vocab_size\":8,\"hidden_size\":8,\"num_hidden_layers\":2,"
                       "\"num_attention_heads\":2,\"intermediate_size\":8,\"sliding_window\":4096,"
                       "\"use_sliding_window\":false}";
    CHECK_INT_EQ(QE_OK, qe_model_config_parse("config.json", qwen, &cfg, &err));
    CHECK(cfg.has_qkv_bias);
    CHECK_INT_EQ(0, cfg.layers[1].sliding_window);
    qe_model_config_free(&cfg);

    const char *bad_gqa = "{\"model_type\":\"llama\",\"vocab_size\":8,\"hidden_size\":8,\"num_hidden_layers\":1,"
                          "\"num_attention_heads\":3,\"num_key_value_heads\":2,\"intermediate_size\":8}";
    CHECK_INT_EQ(QE_EFORMAT, qe_model_config_parse("x/config.json", bad_gqa, &cfg, &err));
    CHECK(strstr(err.msg, "x/config.json: num_attention_heads 3 is not a multiple of num_key_value_heads 2") != NULL);
    CHECK_INT_EQ(QE_EFORMAT, qe_model_config_parse("x/config.json", "{\"model_type\":", &cfg, &err));
    CHECK(strstr(err.msg, "not valid JSON") != NULL);
}

typedef struct {
    int *hits;
} count_ctx;
static void count_items(void *p, int begin, int end, int thread)
{
    count_ctx *c = p;
    for (int i = begin; i < end; i++)
        c->hits[i]++;
}

static void test_pool(qe_pool *pool)
{
    int hits[1000] = {0};
    count_ctx c = {hits};
    for (int n = 1; n <= 1000; n = n * 3 + 1)
        qe_pool_run(pool, n, 4, count_items, &c);
    /* n = 1, 4, 13, 40, 121, 364: items below 1 ran 6 times, ..., items in [121, 364) once */
    CHECK_INT_EQ(6, hits[0]);
    CHECK_INT_EQ(5, hits[1]);
    CHECK_INT_EQ(1, hits[363]);
    CHECK_INT_EQ(0, hits[364]);
}

int main(void)
{
    qe_pool *pool = NULL;
    qe_backend *be = NULL;
    qe_error err = {0};
    CHECK_INT_EQ(QE_OK, qe_pool_create(3, &pool, &err));
    CHECK_INT_EQ(QE_OK, qe_backend_cpu_create(3, &be, &err));
    test_dtypes();
    test_rounding();
    test_linear(pool);
    test_attention(be);
    test_small_ops(be);
    test_configs();
    test_pool(pool);
    be->destroy(be);
    qe_pool_free(pool);
    return check_summary();
}
