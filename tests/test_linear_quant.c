/* test_linear_quant — the BF16/F16, NF4 and INT8 linear kernels: each fast path against its
 * reference twin (several shapes, token counts and row splits; the bf16 pairs kernels of a
 * bf16-compute model bit for bit), and the int8 definition against bitsandbytes' own LLM.int8()
 * matmul (tests/golden/bnb/int8.safetensors). */
#include <stdint.h>

#include "check.h"
#include "cpu/dot_tile.h"
#include "dtype.h"
#include "ref/ref_ops.h"
#include "safetensors.h"
#include "variant.h"

static uint64_t rng_state = 88172645463325252ull;

static float uniform(void) /* [-1, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / (1 << 23)) - 1.0);
}

/* The linear a variant's loader makes of w and bias b (b rounded to the compute dtype), with the
 * kernels of the given compute dtype (QE_DTYPE_F32 keeps BF16 and NF4 off the bf16 pairs
 * kernels, so this CPU tests both). */
static qe_status init_quant_as(qe_linear *lin, const qe_variant *variant, qe_dtype compute, const float *w,
                               const float *b, int n_out, int n_in, qe_error *err)
{
    qe_weight wt;
    qe_status rc = qe_weight_quantize(&wt, variant, w, n_out, n_in, err);
    if (rc == QE_OK && b && (rc = qe_weight_set_bias(&wt, b, qe_variant_compute_dtype(variant), err)) != QE_OK)
        qe_weight_free(&wt);
    if (rc == QE_OK)
        qe_linear_init(lin, &wt, compute);
    return rc;
}

/* ... with the variant's own compute dtype, as a model loads it */
static qe_status init_quant(qe_linear *lin, const qe_variant *variant, const float *w, const float *b, int n_out,
                            int n_in, qe_error *err)
{
    return init_quant_as(lin, variant, qe_variant_compute_dtype(variant), w, b, n_out, n_in, err);
}

/* A 16-bit linear of w, and b (when given) rounded to that dtype; kernels as init_quant_as. */
static qe_status init_half(qe_linear *lin, qe_dtype dtype, qe_dtype compute, const float *w, const float *b,
                           int n_out, int n_in, qe_error *err)
{
    qe_weight wt;
    qe_status rc = qe_weight_init_half(&wt, qe_weight_format_of_dtype(dtype), w, n_out, n_in, err);
    if (rc == QE_OK && b && (rc = qe_weight_set_bias(&wt, b, dtype, err)) != QE_OK)
        qe_weight_free(&wt);
    if (rc == QE_OK)
        qe_linear_init(lin, &wt, compute);
    return rc;
}

/* |fast - ref| within rel * sum_k |x w| for every output */
static void check_against_ref(const qe_linear *lin, qe_linear_rows_ref_fn ref, const float *x, int n_tok, double rel,
                              const char *what)
{
    size_t n = (size_t)n_tok * lin->w.n_out;
    float *want = calloc(n, sizeof *want), *got = calloc(n, sizeof *got), *split = calloc(n, sizeof *split);
    char *scratch = malloc(qe_linear_scratch_bytes(n_tok, lin->w.n_in));
    ref(&lin->w, x, n_tok, want, 0, lin->w.n_out);
    lin->rows(lin, x, n_tok, got, 0, lin->w.n_out, scratch);
    /* uneven row ranges must give the very same numbers */
    for (int r = 0; r < lin->w.n_out;) {
        int end = r + 1 + (int)((uniform() + 1.0f) * 5);
        if (end > lin->w.n_out) end = lin->w.n_out;
        lin->rows(lin, x, n_tok, split, r, end, scratch);
        r = end;
    }
    int n_bad = 0, n_split_bad = 0;
    for (size_t i = 0; i < n; i++) {
        double bound = 0;
        for (int k = 0; k < lin->w.n_in; k++) bound += fabs(x[(i / lin->w.n_out) * lin->w.n_in + k]);
        if (!(fabs((double)want[i] - got[i]) <= rel * bound + 1e-30) && n_bad++ == 0)
            fprintf(stderr, "%s [%zu]: ref %.9g fast %.9g\n", what, i, want[i], got[i]);
        n_split_bad += memcmp(&got[i], &split[i], sizeof(float)) != 0;
    }
    CHECK_INT_EQ(0, n_bad);
    CHECK_INT_EQ(0, n_split_bad);
    /* one token at a time gives what the batch gave */
    for (int t = 0; t < n_tok; t++) {
        float *one = calloc((size_t)lin->w.n_out, sizeof *one);
        lin->rows(lin, x + (size_t)t * lin->w.n_in, 1, one, 0, lin->w.n_out, scratch);
        CHECK_INT_EQ(0, memcmp(one, got + (size_t)t * lin->w.n_out, (size_t)lin->w.n_out * sizeof *one));
        free(one);
    }
    free(want), free(got), free(split), free(scratch);
}

/* Threads splitting rows or tokens give the bits of one thread. */
static void check_threads(const qe_linear *lin, qe_pool *pool, const float *x, int n_tok)
{
    size_t n = (size_t)n_tok * lin->w.n_out, stride = (qe_linear_scratch_bytes(n_tok, lin->w.n_in) + 63) & ~(size_t)63;
    float *one = calloc(n, sizeof *one), *many = calloc(n, sizeof *many);
    char *scratch = aligned_alloc(64, stride * qe_pool_threads(pool));
    qe_linear_forward(lin, x, n_tok, one, NULL, scratch, stride);
    qe_linear_forward(lin, x, n_tok, many, pool, scratch, stride);
    CHECK_INT_EQ(0, memcmp(one, many, n * sizeof *one));
    free(one), free(many), free(scratch);
}

/* Every format on a SmolLM2-like shape with a prompt's worth of tokens, over 3 threads: enough
 * tokens that int8 splits them rather than rows. */
static void test_threads(void)
{
    int n_out = 96, n_in = 200, n_tok = 29;
    qe_pool *pool = NULL;
    qe_error err = {0};
    CHECK_INT_EQ(QE_OK, qe_pool_create(3, &pool, &err));
    float *w = malloc((size_t)n_out * n_in * sizeof *w), *b = malloc((size_t)n_out * sizeof *b);
    float *x = malloc((size_t)n_tok * n_in * sizeof *x);
    for (int i = 0; i < n_out * n_in; i++) w[i] = uniform() * 0.1f;
    for (int i = 0; i < n_out; i++) b[i] = uniform();
    for (int i = 0; i < n_tok * n_in; i++) x[i] = uniform() * 2.0f;
    x[5 * n_in + 7] = -8.0f; /* an int8 outlier */
    static const qe_variant variants[] = {{.kind = QE_VARIANT_BF16},
                                          {.kind = QE_VARIANT_NF4, .nf4_block_size = 64, .nf4_double_quant = true},
                                          {.kind = QE_VARIANT_INT8, .int8_threshold = 6.0f}};
    qe_linear lin;
    qe_weight wt;
    qe_weight_wrap_f32(&wt, w, NULL, n_out, n_in);
    CHECK(qe_weight_set_bias(&wt, b, QE_DTYPE_F32, &err) == QE_OK);
    qe_linear_init(&lin, &wt, QE_DTYPE_F32);
    check_threads(&lin, pool, x, n_tok);
    qe_linear_free(&lin);
    for (size_t v = 0; v < sizeof variants / sizeof *variants; v++) {
        CHECK(init_quant(&lin, &variants[v], w, b, n_out, n_in, &err) == QE_OK);
        check_threads(&lin, pool, x, n_tok);
        qe_linear_free(&lin);
    }
    free(w), free(b), free(x);
    qe_pool_free(pool);
}

static void test_formats(void)
{
    /* {n_out, n_in}: n_in off the 8-lane, 64-byte and nf4 blocks, n_out off the 4- and 8-row blocks */
    static const int shapes[][2] = {{8, 64}, {13, 172}, {33, 37}, {64, 256}, {5, 7}, {21, 200}, {12, 96}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int n_out = shapes[s][0], n_in = shapes[s][1];
        float *w = malloc((size_t)n_out * n_in * sizeof *w), *b = malloc((size_t)n_out * sizeof *b);
        for (int i = 0; i < n_out * n_in; i++) w[i] = uniform() * 0.1f;
        for (int i = 0; i < n_out; i++) b[i] = uniform();
        w[3] = 0.9f; /* an outlier weight makes uneven absmax blocks */
        /* every remainder of the kernels' 3-, 4- and 2x2-token blocks */
        static const int n_toks[] = {1, 2, 3, 5, 8, 9};
        for (size_t nt = 0; nt < sizeof n_toks / sizeof *n_toks; nt++) {
            int n_tok = n_toks[nt];
            float *x = malloc((size_t)n_tok * n_in * sizeof *x);
            for (int i = 0; i < n_tok * n_in; i++) x[i] = qe_bf16_to_f32(qe_f32_to_bf16(uniform() * 2.0f));
            x[n_in / 2] = 9.0f; /* int8 outlier columns for the first token, two in one 8-block */
            x[n_in / 2 + 1] = -7.5f;
            qe_linear lin;
            qe_error err = {0};
            /* bf16 compute: the bf16 pairs kernels where the CPU has them; f32: the 8-lane ones */
            static const qe_dtype halves[] = {QE_DTYPE_BF16, QE_DTYPE_F16}, computes[] = {QE_DTYPE_BF16, QE_DTYPE_F32};
            for (int c = 0; c < 2; c++) {
                for (int h = 0; h < 2; h++) {
                    CHECK(init_half(&lin, halves[h], computes[c], w, b, n_out, n_in, &err) == QE_OK);
                    check_against_ref(&lin, qe_linear_half_rows_ref, x, n_tok, 1e-6, "half");
                    qe_linear_free(&lin);
                }
                qe_variant nf4 = {.kind = QE_VARIANT_NF4, .nf4_block_size = 64, .nf4_double_quant = true};
                for (int dq = 0; dq < 2; dq++) {
                    nf4.nf4_double_quant = dq;
                    nf4.nf4_block_size = dq ? 64 : 32;
                    CHECK(init_quant_as(&lin, &nf4, computes[c], w, b, n_out, n_in, &err) == QE_OK);
                    check_against_ref(&lin, qe_linear_nf4_rows_ref, x, n_tok, 1e-6, "nf4");
                    qe_linear_free(&lin);
                }
            }
            qe_variant int8 = {.kind = QE_VARIANT_INT8, .int8_threshold = 6.0f};
            CHECK(init_quant(&lin, &int8, w, b, n_out, n_in, &err) == QE_OK);
            check_against_ref(&lin, qe_linear_int8_rows_ref, x, n_tok, 0.0, "int8"); /* integer sums: exact */
            qe_linear_free(&lin);
            free(x);
        }
        free(w), free(b);
    }
    printf("fast paths %s\n", !qe_cpu_has_avx2()   ? "not available (reference twins ran)"
                               : qe_cpu_has_avx512() ? "AVX2/FMA and AVX-512"
                                                     : "AVX2/FMA");
}

/* bitsandbytes' Linear8bitLt (threshold 6 and 0) on a crafted fp16 input: the definition with
 * bitsandbytes' batch-wide outlier columns must land within fp16 rounding of its output. */
static void test_int8_against_bitsandbytes(void)
{
    char path[1200];
    const char *src = getenv("QEVAL_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/tests/golden/bnb/int8.safetensors", src && *src ? src : QEVAL_SOURCE_DIR);
    qe_safetensors *st = NULL;
    qe_error err = {0};
    if (qe_safetensors_open(path, &st, &err) != QE_OK) {
        fprintf(stderr, "%s\n", err.msg);
        CHECK(false);
        return;
    }
    const qe_tensor_view *wv = qe_safetensors_find(st, "mm.W16"), *bv = qe_safetensors_find(st, "mm.b16"),
                         *xv = qe_safetensors_find(st, "act.x16");
    const char *outs[] = {"mm.y_t6", "mm.y_t0"};
    CHECK(wv && bv && xv);
    if (!wv || !bv || !xv) {
        qe_safetensors_close(st);
        return;
    }
    int n_out = (int)wv->shape[0], n_in = (int)wv->shape[1], n_tok = (int)xv->shape[0];
    float *w = malloc(wv->n_elements * 4), *b = malloc(bv->n_elements * 4), *x = malloc(xv->n_elements * 4);
    qe_convert_to_f32(w, wv->data, wv->dtype, wv->n_elements);
    qe_convert_to_f32(b, bv->data, bv->dtype, bv->n_elements);
    qe_convert_to_f32(x, xv->data, xv->dtype, xv->n_elements);
    for (int o = 0; o < 2; o++) {
        const qe_tensor_view *yv = qe_safetensors_find(st, outs[o]);
        CHECK(yv != NULL);
        if (!yv) continue;
        float *want = malloc(yv->n_elements * 4), *got = malloc(yv->n_elements * 4);
        qe_convert_to_f32(want, yv->data, yv->dtype, yv->n_elements);
        qe_variant v = {.kind = QE_VARIANT_INT8, .int8_threshold = o == 0 ? 6.0f : 0.0f};
        qe_linear lin;
        CHECK(init_quant(&lin, &v, w, b, n_out, n_in, &err) == QE_OK);
        /* bitsandbytes' own int8 weight (test_quant_bnb checks its making, up to .5 ties) */
        const qe_tensor_view *cb = qe_safetensors_find(st, "mm.CB");
        CHECK(cb && cb->n_bytes == (size_t)n_out * n_in);
        if (cb) memcpy(lin.w.int8.q, cb->data, cb->n_bytes);
        bool *is_outlier = calloc((size_t)n_in, 1);
        qe_int8_outlier_columns(x, n_tok, n_in, v.int8_threshold, is_outlier);
        qe_int8_matmul_ref(&lin.w, x, n_tok, is_outlier, got, 0, n_out);
        int n_exact = 0, n_bad = 0;
        for (int i = 0; i < n_tok * n_out; i++) {
            double ulp = fmax(fabs(want[i]) * (1.0 / 1024), 6.1e-5); /* one fp16 ulp, roughly */
            n_exact += want[i] == got[i];
            if (!(fabs(want[i] - got[i]) <= ulp) && n_bad++ == 0)
                fprintf(stderr, "%s[%d]: bitsandbytes %.6g, qeval %.6g\n", outs[o], i, want[i], got[i]);
        }
        CHECK_INT_EQ(0, n_bad);
        printf("%s: %d of %d outputs bit-equal to bitsandbytes, all within one fp16 ulp\n", outs[o], n_exact,
               n_tok * n_out);
        qe_linear_free(&lin);
        free(is_outlier), free(want), free(got);
    }
    free(w), free(b), free(x);
    qe_safetensors_close(st);
}

/* Bad shapes and options fail with a message, never crash. */
static void test_bad_arguments(void)
{
    float w[4] = {1, 2, 3, 4};
    qe_nf4_weight q;
    qe_int8_weight q8;
    qe_error err = {0};
    CHECK_INT_EQ(QE_EINVAL, qe_nf4_quantize(w, 2, 2, 48, true, &q, &err));
    CHECK(strstr(err.msg, "block size 48") != NULL);
    CHECK_INT_EQ(QE_EINVAL, qe_nf4_quantize(w, 0, 2, 64, true, &q, &err));
    CHECK_INT_EQ(QE_EINVAL, qe_int8_quantize(w, 2, 0, &q8, &err));
    qe_nf4_free(&q);
    qe_nf4_free(NULL);
    qe_int8_free(&q8);
    qe_int8_free(NULL);
    qe_linear lin;
    qe_variant fp32 = {.kind = QE_VARIANT_FP32};
    CHECK_INT_EQ(QE_EINVAL, init_quant(&lin, &fp32, w, NULL, 2, 2, &err));
    qe_variant odd = {.kind = QE_VARIANT_NF4, .nf4_block_size = 100, .nf4_double_quant = true};
    CHECK_INT_EQ(QE_EINVAL, init_quant(&lin, &odd, w, NULL, 2, 2, &err));
}

/* Decode: one token through qe_linear_forward (the gemv kernels, rows split over 3 threads in
 * chunks) gives the bits that token gets inside a batch (the batched kernels), for every format,
 * on shapes with whole NF4 blocks (the AVX-512 NF4 gemv) and odd row counts. */
static void test_decode_matches_batch(void)
{
    static const int shapes[][2] = {{13, 128}, {64, 576}, {7, 64}, {50, 200}, {2, 64}};
    qe_pool *pool = NULL;
    qe_error err = {0};
    CHECK_INT_EQ(QE_OK, qe_pool_create(3, &pool, &err));
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int n_out = shapes[s][0], n_in = shapes[s][1], n_tok = 5;
        float *w = malloc((size_t)n_out * n_in * sizeof *w), *b = malloc((size_t)n_out * sizeof *b);
        float *x = malloc((size_t)n_tok * n_in * sizeof *x);
        float *batch = malloc((size_t)n_tok * n_out * sizeof *batch), *one = malloc((size_t)n_out * sizeof *one);
        for (int i = 0; i < n_out * n_in; i++) w[i] = uniform() * 0.1f;
        for (int i = 0; i < n_out; i++) b[i] = uniform();
        for (int i = 0; i < n_tok * n_in; i++) x[i] = qe_bf16_to_f32(qe_f32_to_bf16(uniform() * 2.0f));
        x[2 * n_in + 3] = 8.0f; /* an int8 outlier in token 2 */
        size_t stride = (qe_linear_scratch_bytes(n_tok, n_in) + 63) & ~(size_t)63;
        char *scratch = aligned_alloc(64, stride * qe_pool_threads(pool));
        /* bf16 and nf4 twice: under their bf16 compute (the bf16 pairs kernels where the CPU has
         * them) and under f32 (the 8-lane kernels) */
        static const struct {
            qe_variant variant;
            qe_dtype compute;
        } variants[] = {{{.kind = QE_VARIANT_FP32}, QE_DTYPE_F32},
                        {{.kind = QE_VARIANT_BF16}, QE_DTYPE_BF16},
                        {{.kind = QE_VARIANT_BF16}, QE_DTYPE_F32},
                        {{.kind = QE_VARIANT_NF4, .nf4_block_size = 64, .nf4_double_quant = true}, QE_DTYPE_BF16},
                        {{.kind = QE_VARIANT_NF4, .nf4_block_size = 64, .nf4_double_quant = true}, QE_DTYPE_F32},
                        {{.kind = QE_VARIANT_NF4, .nf4_block_size = 64}, QE_DTYPE_BF16},
                        {{.kind = QE_VARIANT_NF4, .nf4_block_size = 32}, QE_DTYPE_BF16},
                        {{.kind = QE_VARIANT_NF4, .nf4_block_size = 64}, QE_DTYPE_F32},
                        {{.kind = QE_VARIANT_INT8, .int8_threshold = 6.0f}, QE_DTYPE_F16}};
        for (size_t v = 0; v < sizeof variants / sizeof *variants; v++) {
            qe_linear lin;
            if (variants[v].variant.kind == QE_VARIANT_FP32) {
                qe_weight wt;
                qe_weight_wrap_f32(&wt, w, NULL, n_out, n_in);
                CHECK(qe_weight_set_bias(&wt, b, QE_DTYPE_F32, &err) == QE_OK);
                qe_linear_init(&lin, &wt, QE_DTYPE_F32);
            } else {
                CHECK(init_quant_as(&lin, &variants[v].variant, variants[v].compute, w, b, n_out, n_in, &err) == QE_OK);
            }
            qe_linear_forward(&lin, x, n_tok, batch, pool, scratch, stride);
            for (int t = 0; t < n_tok; t++) {
                qe_linear_forward(&lin, x + (size_t)t * n_in, 1, one, pool, scratch, stride);
                int n_bad = 0;
                for (int r = 0; r < n_out; r++)
                    if (memcmp(&one[r], &batch[(size_t)t * n_out + r], sizeof *one) && n_bad++ == 0)
                        fprintf(stderr, "decode %s (%s compute) [%d x %d] token %d row %d: alone %.9g, batched %.9g\n",
                                qe_variant_name(&variants[v].variant), qe_dtype_name(variants[v].compute), n_out, n_in,
                                t, r, one[r], batch[(size_t)t * n_out + r]);
                CHECK_INT_EQ(0, n_bad);
            }
            qe_linear_free(&lin);
        }
        free(scratch), free(w), free(b), free(x), free(batch), free(one);
    }
    qe_pool_free(pool);
}

/* The bf16 pairs kernels (AVX512_BF16) against their twin, bit for bit: BF16 and NF4 (block
 * sizes 32 to 128, with and without double quant; in every other shape a row of values near 1e-38,
 * so NF4 blocks scaled under 2^-122 and bf16 denormals), n_in off the 32-chunks and the blocks, 1
 * to 300 tokens, inputs neither bf16 values nor normal, uneven row ranges, and one token through
 * the threads (the gemv kernels). */
static void test_bf16_pairs(void)
{
    if (!qe_cpu_has_avx512_bf16()) {
        printf("bf16 pairs kernels: not available on this CPU\n");
        return;
    }
    static const int shapes[][2] = {{5, 7},   {9, 31},   {8, 32},   {13, 33}, {6, 64},
                                    {11, 65}, {17, 172}, {10, 576}, {4, 640}};
    static const int n_toks[] = {1, 2, 5, 6, 7, 13, 300};
    static const qe_variant nf4s[] = {{.kind = QE_VARIANT_NF4, .nf4_block_size = 32, .nf4_double_quant = true},
                                      {.kind = QE_VARIANT_NF4, .nf4_block_size = 64, .nf4_double_quant = true},
                                      {.kind = QE_VARIANT_NF4, .nf4_block_size = 64},
                                      {.kind = QE_VARIANT_NF4, .nf4_block_size = 128}};
    qe_pool *pool = NULL;
    qe_error err = {0};
    CHECK_INT_EQ(QE_OK, qe_pool_create(3, &pool, &err));
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int n_out = shapes[s][0], n_in = shapes[s][1];
        float *w = malloc((size_t)n_out * n_in * sizeof *w);
        for (int i = 0; i < n_out * n_in; i++) w[i] = uniform() * 0.1f;
        if (s % 2) /* a row of tiny scales (the NF4 kernels' integer rounding) in every other shape */
            for (int k = 0; k < n_in; k++) w[(size_t)(n_out - 1) * n_in + k] = uniform() * 1e-38f;
        for (int nt = 0; nt < (int)(sizeof n_toks / sizeof *n_toks); nt++) {
            int n_tok = n_toks[nt];
            size_t n_y = (size_t)n_tok * n_out;
            float *x = malloc((size_t)n_tok * n_in * sizeof *x), *want = malloc(n_y * sizeof *want);
            float *got = malloc(n_y * sizeof *got), *split = malloc(n_y * sizeof *split);
            for (int i = 0; i < n_tok * n_in; i++) x[i] = uniform() * 2.0f;
            x[0] = 3e-39f;      /* denormals read as zero */
            x[n_in - 1] = -1e-40f;
            size_t stride = (qe_linear_scratch_bytes(n_tok, n_in) + 63) & ~(size_t)63;
            char *scratch = aligned_alloc(64, stride * qe_pool_threads(pool));
            for (int f = -1; f < (int)(sizeof nf4s / sizeof *nf4s); f++) { /* -1: BF16 */
                qe_linear lin;
                CHECK((f < 0 ? init_half(&lin, QE_DTYPE_BF16, QE_DTYPE_BF16, w, NULL, n_out, n_in, &err)
                             : init_quant(&lin, &nf4s[f], w, NULL, n_out, n_in, &err)) == QE_OK);
                const char *what = f < 0 ? "bf16" : qe_variant_name(&nf4s[f]);
                qe_linear_bf16_pairs_rows_ref(&lin.w, x, n_tok, want, 0, n_out);
                lin.rows(&lin, x, n_tok, got, 0, n_out, scratch);
                for (int r = 0; r < n_out;) {
                    int end = r + 1 + (int)((uniform() + 1.0f) * 3);
                    if (end > n_out) end = n_out;
                    lin.rows(&lin, x, n_tok, split, r, end, scratch);
                    r = end;
                }
                int n_bad = 0, n_split_bad = 0, n_decode_bad = 0;
                for (size_t i = 0; i < n_y; i++) {
                    if (memcmp(&want[i], &got[i], sizeof *got) && n_bad++ == 0)
                        fprintf(stderr, "bf16 pairs %s [%d x %d] %d tokens, output %zu: twin %.9g, kernel %.9g\n", what,
                                n_out, n_in, n_tok, i, want[i], got[i]);
                    n_split_bad += memcmp(&got[i], &split[i], sizeof *got) != 0;
                }
                for (int t = 0; t < n_tok && t < 7; t++) {
                    qe_linear_forward(&lin, x + (size_t)t * n_in, 1, split, pool, scratch, stride);
                    n_decode_bad += memcmp(split, want + (size_t)t * n_out, (size_t)n_out * sizeof *split) != 0;
                }
                CHECK_INT_EQ(0, n_bad);
                CHECK_INT_EQ(0, n_split_bad);
                CHECK_INT_EQ(0, n_decode_bad);
                qe_linear_free(&lin);
            }
            free(scratch), free(x), free(want), free(got), free(split);
        }
        free(w);
    }
    qe_pool_free(pool);
    printf("bf16 pairs kernels: bit-equal to their twin\n");
}

/* qe_weight_move_bulk (the CPU backend moves every weight's bulk array into its huge-page arena):
 * a moved weight gives the bits of the one left where it was, in every format, from an owned
 * F32 copy and from a borrowed view alike, and frees what it owned once (ASan watches). */
static void test_move_bulk(void)
{
    enum { N_OUT = 24, N_IN = 128, N_TOK = 3 };
    float *w = malloc(N_OUT * N_IN * sizeof *w), x[N_TOK * N_IN], want[N_TOK * N_OUT], got[N_TOK * N_OUT];
    for (int i = 0; i < N_OUT * N_IN; i++) w[i] = uniform() * 0.1f;
    for (int i = 0; i < N_TOK * N_IN; i++) x[i] = qe_bf16_to_f32(qe_f32_to_bf16(uniform()));
    char *scratch = aligned_alloc(64, (qe_linear_scratch_bytes(N_TOK, N_IN) + 63) & ~(size_t)63);
    static const qe_variant variants[] = {{.kind = QE_VARIANT_FP32}, {.kind = QE_VARIANT_FP32},
                                          {.kind = QE_VARIANT_BF16}, {.kind = QE_VARIANT_INT8, .int8_threshold = 6.0f},
                                          {.kind = QE_VARIANT_NF4, .nf4_block_size = 64, .nf4_double_quant = true}};
    qe_error err = {0};
    for (size_t v = 0; v < sizeof variants / sizeof *variants; v++) {
        qe_weight kept, moved;
        if (variants[v].kind == QE_VARIANT_FP32) { /* the first an owned copy, the second a view */
            float *copy = malloc(N_OUT * N_IN * sizeof *copy);
            memcpy(copy, w, N_OUT * N_IN * sizeof *copy);
            qe_weight_wrap_f32(&kept, w, NULL, N_OUT, N_IN);
            qe_weight_wrap_f32(&moved, v == 0 ? copy : w, v == 0 ? copy : NULL, N_OUT, N_IN);
            if (v != 0)
                free(copy);
        } else {
            CHECK_INT_EQ(QE_OK, qe_weight_quantize(&kept, &variants[v], w, N_OUT, N_IN, &err));
            CHECK_INT_EQ(QE_OK, qe_weight_quantize(&moved, &variants[v], w, N_OUT, N_IN, &err));
        }
        size_t n_bytes, n_moved_bytes;
        const void *bulk = qe_weight_bulk(&kept, &n_bytes);
        qe_weight_bulk(&moved, &n_moved_bytes);
        CHECK_INT_EQ(n_bytes, n_moved_bytes);
        void *home = malloc(n_bytes);
        qe_weight_move_bulk(&moved, home);
        CHECK(qe_weight_bulk(&moved, &n_moved_bytes) == home && memcmp(home, bulk, n_bytes) == 0);
        CHECK(qe_weight_bytes(&moved) == qe_weight_bytes(&kept));
        qe_linear a, b;
        qe_linear_init(&a, &kept, QE_DTYPE_F32);
        qe_linear_init(&b, &moved, QE_DTYPE_F32);
        qe_linear_forward(&a, x, N_TOK, want, NULL, scratch, 0);
        qe_linear_forward(&b, x, N_TOK, got, NULL, scratch, 0);
        CHECK(memcmp(want, got, sizeof want) == 0);
        qe_linear_free(&a);
        qe_linear_free(&b);
        free(home);
    }
    free(scratch);
    free(w);
}

int main(void)
{
    test_bad_arguments();
    test_formats();
    test_threads();
    test_decode_matches_batch();
    test_move_bulk();
    test_bf16_pairs();
    test_int8_against_bitsandbytes();
    return check_summary();
}
