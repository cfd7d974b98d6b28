/* test_cuda_backend — the CUDA backend's ops against the reference backend on random inputs,
 * linears at real models' shapes in every weight format (NF4 and INT8 packed on the device),
 * fp32 and int8 across their kernels' tile edges and batch invariance (a token's outputs are the
 * same bits alone, in a batch and in a sub-batch), and its error paths: a GPU that does not exist, an allocation that cannot fit.
 *
 * The reference backend (engine/ref/) is the definition; its numbers come from outside the
 * code under test. Tolerances: fp32 ops to float rounding; 16-bit ops may differ by one unit
 * in the last place where the CPU's and the GPU's sums round apart before the final rounding,
 * so they must agree exactly on nearly every element and within one ulp on all. Skips (77)
 * on a machine without a GPU. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "check.h"
#include "cuda/backend_cuda.h"
#include "device.h"
#include "weight.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static double uniform(void) /* [0, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

static float normal(void)
{
    double u = uniform() + 1e-12, v = uniform();
    return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}

static float *random_floats(size_t n, float sigma)
{
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; x && i < n; i++)
        x[i] = normal() * sigma;
    return x;
}

static void round_all(float *x, size_t n, qe_dtype dtype)
{
    for (size_t i = 0; i < n; i++)
        x[i] = dtype == QE_DTYPE_BF16 ? qe_round_bf16(x[i]) : dtype == QE_DTYPE_F16 ? qe_round_f16(x[i]) : x[i];
}

/* A pair of backends and host<->device helpers for one buffer on each. */
typedef struct {
    qe_backend *ref, *gpu;
} pair;

static float *to_backend(qe_backend *be, const float *host, size_t n)
{
    float *buf = be->alloc(be, n);
    if (buf)
        be->upload(be, buf, host, n);
    return buf;
}

static float *from_backend(qe_backend *be, const float *buf, size_t n)
{
    float *host = malloc(n * sizeof *host);
    be->download(be, host, buf, n);
    return host;
}

/* Compares got against want: returns the largest |difference| / (|want| + floor), and counts
 * the elements that differ at all. */
static double compare(const float *want, const float *got, size_t n, double floor, size_t *n_differ)
{
    double worst = 0;
    *n_differ = 0;
    for (size_t i = 0; i < n; i++) {
        if (want[i] != got[i])
            (*n_differ)++;
        double d = fabs((double)want[i] - got[i]) / (fabs(want[i]) + floor);
        if (!(d <= worst))
            worst = isnan(d) ? INFINITY : d;
    }
    return worst;
}

static double ulp_of(qe_dtype dtype)
{
    return dtype == QE_DTYPE_BF16 ? 1.0 / 128 : dtype == QE_DTYPE_F16 ? 1.0 / 1024 : 1e-5;
}

/* Reports and checks one comparison: within tol (relative), and exact on >= min_exact of them. */
static void expect(const char *what, const float *want, const float *got, size_t n, double floor, double tol,
                   double min_exact)
{
    size_t n_differ;
    double worst = compare(want, got, n, floor, &n_differ);
    double exact = 1.0 - (double)n_differ / n;
    printf("%-44s worst rel %.3g  exact %.4f\n", what, worst, exact);
    if (!(worst <= tol) || exact < min_exact) {
        fprintf(stderr, "%s: worst relative difference %.3g (tol %.3g), exact %.4f (need %.4f)\n", what, worst, tol,
                exact, min_exact);
        check_n_failed++;
    } else
        check_n_passed++;
}

static qe_status make_weight(qe_weight *w, const char *variant_name, const float *data, const float *bias, int n_out,
                             int n_in, qe_dtype *compute, qe_error *err)
{
    qe_variant variant;
    qe_status rc;
    if (!strcmp(variant_name, "f16")) { /* the 16-bit head of the int8 variant */
        *compute = QE_DTYPE_F16;
        rc = qe_weight_init_half(w, QE_WEIGHT_F16, data, n_out, n_in, err);
    } else if (!strcmp(variant_name, "fp32")) {
        float *copy = malloc((size_t)n_out * n_in * sizeof *copy);
        if (!copy)
            return qe_fail(err, QE_ENOMEM, "out of memory");
        memcpy(copy, data, (size_t)n_out * n_in * sizeof *copy);
        *compute = QE_DTYPE_F32;
        qe_weight_wrap_f32(w, copy, copy, n_out, n_in);
        rc = QE_OK;
    } else {
        if ((rc = qe_variant_parse(variant_name, &variant, err)) != QE_OK)
            return rc;
        *compute = variant.kind == QE_VARIANT_FP32 ? QE_DTYPE_F32
                   : variant.kind == QE_VARIANT_INT8 ? QE_DTYPE_F16
                                                      : QE_DTYPE_BF16;
        rc = qe_weight_quantize(w, &variant, data, n_out, n_in, err);
    }
    if (rc == QE_OK && bias)
        rc = qe_weight_set_bias(w, bias, *compute, err);
    return rc;
}

/* One linear of shape [n_out, n_in] in a variant's format on n_tok tokens, GPU against ref. */
static void check_linear(pair *p, const char *variant_name, int n_out, int n_in, int n_tok, bool has_bias)
{
    qe_error err = {0};
    float *w = random_floats((size_t)n_out * n_in, 0.05f);
    float *bias = has_bias ? random_floats(n_out, 0.1f) : NULL;
    float *x = random_floats((size_t)n_tok * n_in, 1.0f);
    if (!strcmp(variant_name, "int8")) /* a few outlier columns, as LLM.int8() sees them */
        for (int t = 0; t < n_tok; t++)
            for (int c = 3; c < n_in; c += 97)
                x[(size_t)t * n_in + c] *= 9.0f;
    qe_weight wr, wg;
    qe_dtype compute = QE_DTYPE_F32;
    qe_backend_linear *lr = NULL, *lg = NULL;
    if (make_weight(&wr, variant_name, w, bias, n_out, n_in, &compute, &err) ||
        p->ref->prepare_linear(p->ref, &wr, compute, &lr, &err) ||
        make_weight(&wg, variant_name, w, bias, n_out, n_in, &compute, &err) ||
        p->gpu->prepare_linear(p->gpu, &wg, compute, &lg, &err)) {
        fprintf(stderr, "%s [%d, %d]: %s\n", variant_name, n_out, n_in, err.msg);
        check_n_failed++;
        goto out;
    }
    CHECK_INT_EQ(p->ref->linear_bytes(p->ref, lr), p->gpu->linear_bytes(p->gpu, lg));
    round_all(x, (size_t)n_tok * n_in, compute); /* activations arrive rounded, as in the model */
    int ws_tokens = n_tok > 64 ? n_tok : 64; /* one int8 pass: token tiles straddle as the call asks */
    qe_status rc = p->gpu->reserve_workspace(p->gpu, ws_tokens, 1024, 32, n_in, &err);
    if (rc == QE_OK)
        rc = p->ref->reserve_workspace(p->ref, ws_tokens, 1024, 32, n_in, &err);
    CHECK_INT_EQ(QE_OK, rc);
    float *xr = to_backend(p->ref, x, (size_t)n_tok * n_in), *yr = p->ref->alloc(p->ref, (size_t)n_tok * n_out);
    float *xg = to_backend(p->gpu, x, (size_t)n_tok * n_in), *yg = p->gpu->alloc(p->gpu, (size_t)n_tok * n_out);
    p->ref->linear(p->ref, lr, xr, n_tok, QE_DTYPE_F32, yr);
    p->gpu->linear(p->gpu, lg, xg, n_tok, QE_DTYPE_F32, yg);
    float *want = from_backend(p->ref, yr, (size_t)n_tok * n_out), *got = from_backend(p->gpu, yg, (size_t)n_tok * n_out);
    CHECK_INT_EQ(QE_OK, p->gpu->sync(p->gpu, &err));
    CHECK_INT_EQ(QE_OK, p->ref->sync(p->ref, &err));
    char what[128];
    snprintf(what, sizeof what, "linear %s [%d, %d] x %d%s", variant_name, n_out, n_in, n_tok, has_bias ? " +b" : "");
    /* fp32 sums over n_in products in another order: a few 1e-6 of the row's scale. INT8 is
     * integer arithmetic plus the same fp16 epilogue: equal up to the outliers' fp32 sum. */
    double scale = 0.05 * sqrt((double)n_in);
    if (!strcmp(variant_name, "int8"))
        expect(what, want, got, (size_t)n_tok * n_out, scale, 2e-3, 0.97);
    else
        expect(what, want, got, (size_t)n_tok * n_out, scale, 2e-5, 0.0);
    free(want);
    free(got);
    p->ref->release(p->ref, xr);
    p->ref->release(p->ref, yr);
    p->gpu->release(p->gpu, xg);
    p->gpu->release(p->gpu, yg);
out:
    p->ref->free_linear(p->ref, lr);
    p->gpu->free_linear(p->gpu, lg);
    free(w);
    free(bias);
    free(x);
}

/* Batch invariance of the GPU linear across its tile choices (decode and prefill kernels, both
 * block sizes): each token's outputs in calls of 1, 9, 17, 100 and 300 tokens must be the very
 * bits of its row in the call of 300. */
static void check_linear_batch_invariance(pair *p, const char *variant_name, int n_out, int n_in)
{
    enum { N_TOK = 300 };
    qe_error err = {0};
    float *w = random_floats((size_t)n_out * n_in, 0.05f), *bias = random_floats(n_out, 0.1f);
    float *x = random_floats((size_t)N_TOK * n_in, 1.0f);
    if (!strcmp(variant_name, "int8")) /* outlier columns, as check_linear has them */
        for (int t = 0; t < N_TOK; t++)
            for (int c = 3; c < n_in; c += 97)
                x[(size_t)t * n_in + c] *= 9.0f;
    qe_weight wg;
    qe_dtype compute = QE_DTYPE_F32;
    qe_backend_linear *lg = NULL;
    if (make_weight(&wg, variant_name, w, bias, n_out, n_in, &compute, &err) ||
        p->gpu->prepare_linear(p->gpu, &wg, compute, &lg, &err)) {
        fprintf(stderr, "%s [%d, %d]: %s\n", variant_name, n_out, n_in, err.msg);
        check_n_failed++;
        goto out;
    }
    round_all(x, (size_t)N_TOK * n_in, compute);
    CHECK_INT_EQ(QE_OK, p->gpu->reserve_workspace(p->gpu, N_TOK, 1024, 32, n_in, &err));
    float *xg = to_backend(p->gpu, x, (size_t)N_TOK * n_in), *yg = p->gpu->alloc(p->gpu, (size_t)N_TOK * n_out);
    float *ys = p->gpu->alloc(p->gpu, (size_t)N_TOK * n_out);
    p->gpu->linear(p->gpu, lg, xg, N_TOK, QE_DTYPE_F32, yg);
    float *batch = from_backend(p->gpu, yg, (size_t)N_TOK * n_out);
    int calls[][2] = {{0, 1}, {7, 1}, {8, 1}, {63, 1}, {64, 1}, {299, 1}, {5, 9}, {60, 17}, {37, 100}, {200, 100}};
    int n_same = 0, n_calls = (int)(sizeof calls / sizeof calls[0]);
    for (int c = 0; c < n_calls; c++) {
        int t0 = calls[c][0], nt = calls[c][1];
        p->gpu->linear(p->gpu, lg, xg + (size_t)t0 * n_in, nt, QE_DTYPE_F32, ys);
        float *part = from_backend(p->gpu, ys, (size_t)nt * n_out);
        if (memcmp(part, batch + (size_t)t0 * n_out, (size_t)nt * n_out * sizeof *part) == 0)
            n_same++;
        else
            fprintf(stderr, "linear %s [%d, %d]: tokens %d..%d alone differ from the batch of %d\n", variant_name,
                    n_out, n_in, t0, t0 + nt - 1, N_TOK);
        free(part);
    }
    CHECK_INT_EQ(QE_OK, p->gpu->sync(p->gpu, &err));
    printf("linear %-10s [%d, %d] batch invariance: %d of %d calls bit-identical\n", variant_name, n_out, n_in,
           n_same, n_calls);
    CHECK_INT_EQ(n_calls, n_same);
    free(batch);
    p->gpu->release(p->gpu, xg);
    p->gpu->release(p->gpu, yg);
    p->gpu->release(p->gpu, ys);
out:
    p->gpu->free_linear(p->gpu, lg);
    free(w);
    free(bias);
    free(x);
}

/* The fused ops give the bits of the plain ones: linears (q, k, v of Qwen2.5-0.5B with biases:
 * one decode launch up to 16 tokens, calls of linear past it) against three linear calls,
 * glu_linears (k and v as gate and up: one launch up to 16 tokens) against linear, linear, glu,
 * and add_rmsnorm against add then rmsnorm. */
static void check_fused_ops(pair *p, const char *variant_name)
{
    enum { N_IN = 896, MAX_TOK = 17 };
    qe_error err = {0};
    int n_out[3] = {896, 128, 128};
    qe_backend *gpu = p->gpu;
    const qe_backend_linear *lins[3] = {NULL, NULL, NULL};
    qe_dtype compute = QE_DTYPE_F32;
    float *x = random_floats((size_t)MAX_TOK * N_IN, 1.0f);
    for (int i = 0; i < 3; i++) {
        float *w = random_floats((size_t)n_out[i] * N_IN, 0.05f), *bias = random_floats(n_out[i], 0.1f);
        qe_weight wg;
        qe_backend_linear *lg = NULL;
        if (make_weight(&wg, variant_name, w, bias, n_out[i], N_IN, &compute, &err) ||
            gpu->prepare_linear(gpu, &wg, compute, &lg, &err)) {
            fprintf(stderr, "fused %s: %s\n", variant_name, err.msg);
            check_n_failed++;
        }
        lins[i] = lg;
        free(w), free(bias);
    }
    round_all(x, (size_t)MAX_TOK * N_IN, compute);
    CHECK_INT_EQ(QE_OK, gpu->reserve_workspace(gpu, MAX_TOK, 64, 14, N_IN, &err));
    float *xg = to_backend(gpu, x, (size_t)MAX_TOK * N_IN);
    int tokens[] = {1, 8, 9, 16, 17};
    for (size_t t = 0; t < sizeof tokens / sizeof tokens[0] && lins[0] && lins[1] && lins[2]; t++) {
        int nt = tokens[t];
        float *one[3], *each[3];
        for (int i = 0; i < 3; i++) {
            one[i] = gpu->alloc(gpu, (size_t)nt * n_out[i]);
            each[i] = gpu->alloc(gpu, (size_t)nt * n_out[i]);
            gpu->linear(gpu, lins[i], xg, nt, compute, each[i]);
        }
        qe_backend_linears(gpu, 3, lins, xg, nt, compute, one);
        int n_same = 0;
        for (int i = 0; i < 3; i++) {
            float *a = from_backend(gpu, one[i], (size_t)nt * n_out[i]), *b = from_backend(gpu, each[i], (size_t)nt * n_out[i]);
            n_same += memcmp(a, b, (size_t)nt * n_out[i] * sizeof *a) == 0;
            free(a), free(b);
            gpu->release(gpu, one[i]), gpu->release(gpu, each[i]);
        }
        printf("linears %-5s q, k, v x %2d: %d of 3 outputs bit-identical to linear\n", variant_name, nt, n_same);
        CHECK_INT_EQ(3, n_same);
        /* glu_linears with k as the gate and v as the up projection, both activations */
        for (int act = QE_ACT_SILU; act <= QE_ACT_GELU_TANH; act++) {
            size_t n = (size_t)nt * n_out[1];
            float *gate_y = gpu->alloc(gpu, n), *up_y = gpu->alloc(gpu, n), *fused = gpu->alloc(gpu, n),
                  *scratch = gpu->alloc(gpu, n);
            gpu->linear(gpu, lins[1], xg, nt, compute, gate_y);
            gpu->linear(gpu, lins[2], xg, nt, compute, up_y);
            gpu->glu(gpu, (qe_activation)act, gate_y, up_y, n, compute, gate_y);
            qe_backend_glu_linears(gpu, (qe_activation)act, lins[1], lins[2], xg, nt, n_out[1], compute, fused,
                                   scratch);
            float *a = from_backend(gpu, gate_y, n), *b = from_backend(gpu, fused, n);
            bool is_same = memcmp(a, b, n * sizeof *a) == 0;
            printf("glu_linears %-5s %s x %2d: %sbit-identical to linear, linear, glu\n", variant_name,
                   act == QE_ACT_SILU ? "SiLU" : "GELU-tanh", nt, is_same ? "" : "NOT ");
            CHECK_INT_EQ(1, is_same);
            free(a), free(b);
            gpu->release(gpu, gate_y), gpu->release(gpu, up_y), gpu->release(gpu, fused), gpu->release(gpu, scratch);
        }
    }
    /* add_rmsnorm: 3 rows of the hidden size, the norm weight in the compute dtype */
    float *delta = random_floats(3 * N_IN, 1.0f), *wt = random_floats(N_IN, 0.3f);
    round_all(delta, 3 * N_IN, compute);
    round_all(wt, N_IN, compute);
    float *x1 = to_backend(gpu, x, 3 * N_IN), *x2 = to_backend(gpu, x, 3 * N_IN), *dg = to_backend(gpu, delta, 3 * N_IN);
    float *wg = gpu->upload_new(gpu, wt, N_IN, compute), *y1 = gpu->alloc(gpu, 3 * N_IN), *y2 = gpu->alloc(gpu, 3 * N_IN);
    gpu->add(gpu, x1, dg, 3 * N_IN, compute);
    gpu->rmsnorm(gpu, x1, wg, 0.0f, 1e-6f, 3, N_IN, compute, y1);
    qe_backend_add_rmsnorm(gpu, x2, dg, wg, 0.0f, 1e-6f, 3, N_IN, compute, y2);
    float *got[4] = {from_backend(gpu, x1, 3 * N_IN), from_backend(gpu, x2, 3 * N_IN), from_backend(gpu, y1, 3 * N_IN),
                     from_backend(gpu, y2, 3 * N_IN)};
    bool is_same = !memcmp(got[0], got[1], 3 * N_IN * sizeof(float)) && !memcmp(got[2], got[3], 3 * N_IN * sizeof(float));
    printf("add_rmsnorm %-5s: residual and norm %sbit-identical to add + rmsnorm\n", variant_name, is_same ? "" : "NOT ");
    CHECK_INT_EQ(1, is_same);
    float *bufs[] = {xg, x1, x2, dg, wg, y1, y2};
    for (int i = 0; i < 7; i++)
        gpu->release(gpu, bufs[i]);
    for (int i = 0; i < 4; i++)
        free(got[i]);
    for (int i = 0; i < 3; i++)
        gpu->free_linear(gpu, (qe_backend_linear *)lins[i]);
    CHECK_INT_EQ(QE_OK, gpu->sync(gpu, &err));
    free(x), free(delta), free(wt);
}

static void check_norm_rope_glu(pair *p, qe_dtype dtype)
{
    qe_error err = {0};
    enum { ROWS = 37, DIM = 576, HEADS = 9, HD = 64 };
    float *x = random_floats(ROWS * DIM, 1.0f), *wt = random_floats(DIM, 0.3f);
    round_all(x, ROWS * DIM, dtype);
    round_all(wt, DIM, dtype);
    float *cs = malloc(ROWS * HD / 2 * sizeof *cs), *sn = malloc(ROWS * HD / 2 * sizeof *sn);
    for (int i = 0; i < ROWS * HD / 2; i++) {
        double angle = (i / (HD / 2)) * pow(10000.0, -2.0 * (i % (HD / 2)) / HD);
        cs[i] = (float)cos(angle);
        sn[i] = (float)sin(angle);
    }
    char what[96];
    for (int offset = 0; offset <= 1; offset++) {
        float *xr = to_backend(p->ref, x, ROWS * DIM), *wr = p->ref->upload_new(p->ref, wt, DIM, dtype);
        float *xg = to_backend(p->gpu, x, ROWS * DIM), *wg = p->gpu->upload_new(p->gpu, wt, DIM, dtype);
        p->ref->rmsnorm(p->ref, xr, wr, (float)offset, 1e-6f, ROWS, DIM, dtype, xr);
        p->gpu->rmsnorm(p->gpu, xg, wg, (float)offset, 1e-6f, ROWS, DIM, dtype, xg);
        float *want = from_backend(p->ref, xr, ROWS * DIM), *got = from_backend(p->gpu, xg, ROWS * DIM);
        snprintf(what, sizeof what, "rmsnorm offset %d %s", offset, qe_dtype_name(dtype));
        expect(what, want, got, ROWS * DIM, 1e-3, ulp_of(dtype), dtype == QE_DTYPE_F32 ? 0.0 : 0.99);
        free(want), free(got);
        /* rope over the normed rows as [ROWS tokens, HEADS, HD] */
        float *cr = to_backend(p->ref, cs, ROWS * HD / 2), *sr = to_backend(p->ref, sn, ROWS * HD / 2);
        float *cg = to_backend(p->gpu, cs, ROWS * HD / 2), *sg = to_backend(p->gpu, sn, ROWS * HD / 2);
        p->ref->rope(p->ref, xr, ROWS, HEADS, HD, cr, sr, dtype);
        p->gpu->rope(p->gpu, xg, ROWS, HEADS, HD, cg, sg, dtype);
        want = from_backend(p->ref, xr, ROWS * DIM), got = from_backend(p->gpu, xg, ROWS * DIM);
        if (offset == 0) {
            snprintf(what, sizeof what, "rope %s", qe_dtype_name(dtype));
            expect(what, want, got, ROWS * DIM, 1e-3, ulp_of(dtype), dtype == QE_DTYPE_F32 ? 0.0 : 0.99);
        }
        free(want), free(got);
        float *bufs_r[] = {xr, wr, cr, sr}, *bufs_g[] = {xg, wg, cg, sg};
        for (int i = 0; i < 4; i++) {
            p->ref->release(p->ref, bufs_r[i]);
            p->gpu->release(p->gpu, bufs_g[i]);
        }
    }
    for (int act = QE_ACT_SILU; act <= QE_ACT_GELU_TANH; act++) {
        float *gr = to_backend(p->ref, x, ROWS * DIM), *ur = to_backend(p->ref, x + DIM, (ROWS - 1) * DIM);
        float *gg = to_backend(p->gpu, x, ROWS * DIM), *ug = to_backend(p->gpu, x + DIM, (ROWS - 1) * DIM);
        size_t n = (ROWS - 1) * DIM;
        p->ref->glu(p->ref, (qe_activation)act, gr, ur, n, dtype, gr);
        p->gpu->glu(p->gpu, (qe_activation)act, gg, ug, n, dtype, gg);
        p->ref->add(p->ref, gr, ur, n, dtype);
        p->gpu->add(p->gpu, gg, ug, n, dtype);
        float *want = from_backend(p->ref, gr, n), *got = from_backend(p->gpu, gg, n);
        snprintf(what, sizeof what, "glu %s + add %s", act == QE_ACT_SILU ? "silu" : "gelu_tanh", qe_dtype_name(dtype));
        expect(what, want, got, n, 1e-3, dtype == QE_DTYPE_F32 ? 1e-5 : 2 * ulp_of(dtype),
               dtype == QE_DTYPE_F32 ? 0.0 : 0.99);
        free(want), free(got);
        p->ref->release(p->ref, gr), p->ref->release(p->ref, ur);
        p->gpu->release(p->gpu, gg), p->gpu->release(p->gpu, ug);
    }
    CHECK_INT_EQ(QE_OK, p->gpu->sync(p->gpu, &err));
    free(x), free(wt), free(cs), free(sn);
}

/* Batch invariance of the GPU attention: queries in calls of 1, 15, 16, 17 and 100 tokens (other
 * block splits, other tiles of keys around them) must give the very bits of their rows in one
 * call of N_TOK. window > 0: a sliding window on the flat cache. */
static void check_attention_batch_invariance(pair *p, int pos0, int n_heads, int n_kv_heads, int hd, int window,
                                             qe_dtype dtype)
{
    enum { N_TOK = 300 };
    qe_error err = {0};
    int n_pos = pos0 + N_TOK;
    size_t row = (size_t)n_heads * hd, nq = N_TOK * row, nkv = (size_t)n_pos * n_kv_heads * hd;
    float *q = random_floats(nq, 1.0f), *k = random_floats(nkv, 1.0f), *v = random_floats(nkv, 1.0f);
    round_all(q, nq, dtype), round_all(k, nkv, dtype), round_all(v, nkv, dtype);
    qe_attention_args a = {.q = to_backend(p->gpu, q, nq), .k_cache = to_backend(p->gpu, k, nkv),
                           .v_cache = to_backend(p->gpu, v, nkv), .out = p->gpu->alloc(p->gpu, nq), .n_tok = N_TOK,
                           .pos0 = pos0, .n_heads = n_heads, .n_kv_heads = n_kv_heads, .head_dim = hd,
                           .window = window, .scale = 1.0f / sqrtf((float)hd)};
    float *part_out = p->gpu->alloc(p->gpu, nq);
    CHECK_INT_EQ(QE_OK, p->gpu->reserve_workspace(p->gpu, N_TOK, n_pos, n_heads, 64, &err));
    p->gpu->attention(p->gpu, &a, dtype);
    float *batch = from_backend(p->gpu, a.out, nq);
    /* up to 8 tokens the decode kernel, past that the tiled one: the same bits either way */
    int calls[][2] = {{0, 1}, {5, 1}, {299, 1}, {100, 8}, {1, 15}, {16, 16}, {40, 17}, {150, 100}, {250, 9}};
    int n_same = 0, n_calls = (int)(sizeof calls / sizeof calls[0]);
    for (int c = 0; c < n_calls; c++) {
        qe_attention_args sub = a;
        sub.q = a.q + (size_t)calls[c][0] * row, sub.out = part_out;
        sub.pos0 = pos0 + calls[c][0], sub.n_tok = calls[c][1];
        p->gpu->attention(p->gpu, &sub, dtype);
        float *part = from_backend(p->gpu, part_out, (size_t)sub.n_tok * row);
        if (memcmp(part, batch + (size_t)calls[c][0] * row, (size_t)sub.n_tok * row * sizeof *part) == 0)
            n_same++;
        else
            fprintf(stderr, "attention %s @%d win %d: tokens %d..%d alone differ from the batch of %d\n",
                    qe_dtype_name(dtype), pos0, window, calls[c][0], calls[c][0] + calls[c][1] - 1, N_TOK);
        free(part);
    }
    CHECK_INT_EQ(QE_OK, p->gpu->sync(p->gpu, &err));
    printf("attention %s @%d, %d/%d heads, hd %d, win %d batch invariance: %d of %d calls bit-identical\n",
           qe_dtype_name(dtype), pos0, n_heads, n_kv_heads, hd, window, n_same, n_calls);
    CHECK_INT_EQ(n_calls, n_same);
    const float *bufs[] = {a.q, a.k_cache, a.v_cache, a.out, part_out};
    for (int i = 0; i < 5; i++)
        p->gpu->release(p->gpu, (float *)bufs[i]);
    free(batch), free(q), free(k), free(v);
}

/* GQA attention over a cache of pos0 + n_tok positions, with and without a window. With kv_ring
 * > 0 the GPU reads a sliding-window layer's ring (position p in row p % kv_ring, backend.h)
 * built from the same keys, the reference the flat cache: the ring must change nothing. */
static void check_attention(pair *p, int n_tok, int pos0, int n_heads, int n_kv_heads, int hd, int window,
                            int kv_ring, qe_dtype dtype)
{
    qe_error err = {0};
    int n_pos = pos0 + n_tok;
    size_t nq = (size_t)n_tok * n_heads * hd, nkv = (size_t)n_pos * n_kv_heads * hd;
    float *q = random_floats(nq, 1.0f), *k = random_floats(nkv, 1.0f), *v = random_floats(nkv, 1.0f);
    round_all(q, nq, dtype), round_all(k, nkv, dtype), round_all(v, nkv, dtype);
    qe_attention_args a = {.n_tok = n_tok, .pos0 = pos0, .n_heads = n_heads, .n_kv_heads = n_kv_heads,
                           .head_dim = hd, .window = window, .scale = 1.0f / sqrtf((float)hd)};
    qe_attention_args ar = a, ag = a;
    ar.q = to_backend(p->ref, q, nq), ar.k_cache = to_backend(p->ref, k, nkv), ar.v_cache = to_backend(p->ref, v, nkv);
    ar.out = p->ref->alloc(p->ref, nq);
    ag.q = to_backend(p->gpu, q, nq), ag.out = p->gpu->alloc(p->gpu, nq);
    if (kv_ring > 0) {
        size_t row = (size_t)n_kv_heads * hd, n_ring = (size_t)kv_ring * row;
        float *k_ring = calloc(n_ring, sizeof *k_ring), *v_ring = calloc(n_ring, sizeof *v_ring);
        for (int pos = qe_attention_first(&a, 0); pos < n_pos; pos++) {
            memcpy(k_ring + (size_t)(pos % kv_ring) * row, k + (size_t)pos * row, row * sizeof *k);
            memcpy(v_ring + (size_t)(pos % kv_ring) * row, v + (size_t)pos * row, row * sizeof *v);
        }
        ag.k_cache = to_backend(p->gpu, k_ring, n_ring), ag.v_cache = to_backend(p->gpu, v_ring, n_ring);
        ag.kv_ring = kv_ring;
        free(k_ring), free(v_ring);
    } else {
        ag.k_cache = to_backend(p->gpu, k, nkv), ag.v_cache = to_backend(p->gpu, v, nkv);
    }
    CHECK_INT_EQ(QE_OK, p->ref->reserve_workspace(p->ref, n_tok, n_pos, n_heads, 64, &err));
    CHECK_INT_EQ(QE_OK, p->gpu->reserve_workspace(p->gpu, n_tok, n_pos, n_heads, 64, &err));
    p->ref->attention(p->ref, &ar, dtype);
    p->gpu->attention(p->gpu, &ag, dtype);
    float *want = from_backend(p->ref, ar.out, nq), *got = from_backend(p->gpu, ag.out, nq);
    CHECK_INT_EQ(QE_OK, p->gpu->sync(p->gpu, &err));
    char what[128];
    snprintf(what, sizeof what, "attention %d tok @%d, %d/%d heads, hd %d, win %d, ring %d %s", n_tok, pos0,
             n_heads, n_kv_heads, hd, window, kv_ring, qe_dtype_name(dtype));
    /* fp32: the GPU's score dots sum in float32 (eight lanes and a tree, as the CPU's) where the
     * reference sums in double, and an output averages every key it attends to, so the
     * difference grows as the square root of their number (1.23e-5 seen at 37 keys, hd 64, on
     * an H100; the kernel of 32 lanes a score before it: 1.5e-5 at 1024 keys on an H200) */
    int n_keys = window > 0 && window < n_pos ? window : n_pos;
    double f32_tol = 1.5e-5 * sqrt(n_keys > 256 ? n_keys / 256.0 : 1.0);
    expect(what, want, got, nq, 1e-2, dtype == QE_DTYPE_F32 ? f32_tol : ulp_of(dtype), dtype == QE_DTYPE_F32 ? 0.0 : 0.98);
    free(want), free(got);
    const float *bufs_r[] = {ar.q, ar.k_cache, ar.v_cache, ar.out}, *bufs_g[] = {ag.q, ag.k_cache, ag.v_cache, ag.out};
    for (int i = 0; i < 4; i++) {
        p->ref->release(p->ref, (float *)bufs_r[i]);
        p->gpu->release(p->gpu, (float *)bufs_g[i]);
    }
    free(q), free(k), free(v);
}

/* The GPU's row stats of host rows against the reference backend's, bit for bit (the lane sums
 * of logprob_exp.h: log_z too, NaN where the reference has NaN); returns the GPU's first row. */
static qe_row_stats compare_row_stats(pair *p, const float *logits, int rows, int vocab, const int32_t *targets,
                                      const char *label)
{
    qe_error err = {0};
    size_t n = (size_t)rows * vocab;
    float *lgr = to_backend(p->ref, logits, n), *lgg = to_backend(p->gpu, logits, n);
    qe_row_stats *sr = calloc((size_t)rows, sizeof *sr), *sg = calloc((size_t)rows, sizeof *sg);
    p->ref->row_stats(p->ref, lgr, rows, vocab, targets, sr);
    p->gpu->row_stats(p->gpu, lgg, rows, vocab, targets, sg);
    CHECK_INT_EQ(QE_OK, p->gpu->sync(p->gpu, &err));
    int n_same = 0;
    for (int r = 0; r < rows; r++)
        n_same += sr[r].argmax == sg[r].argmax && !memcmp(&sr[r].max_logit, &sg[r].max_logit, sizeof(float)) &&
                  !memcmp(&sr[r].target_logit, &sg[r].target_logit, sizeof(float)) &&
                  (sr[r].log_z == sg[r].log_z || (isnan(sr[r].log_z) && isnan(sg[r].log_z)));
    if (n_same != rows)
        printf("%s: %d of %d rows differ from the reference\n", label, rows - n_same, rows);
    CHECK_INT_EQ(rows, n_same);
    qe_row_stats first = sg[0];
    p->ref->release(p->ref, lgr);
    p->gpu->release(p->gpu, lgg);
    free(sr), free(sg);
    return first;
}

/* Rows the scan treats specially, a Qwen2-wide vocabulary, and more rows than one pass; the
 * split pass of a few rows on the same rows. */
static void check_row_stats_edges(pair *p)
{
    enum { WIDE = 151936, EDGE_VOCAB = 1000, ROWS = 9, MANY = 700 };
    float *rows = random_floats((size_t)ROWS * EDGE_VOCAB, 4.0f);
    float *row[ROWS];
    for (int r = 0; r < ROWS; r++)
        row[r] = rows + (size_t)r * EDGE_VOCAB;
    row[0][0] = NAN;                                  /* NaN first: argmax 0, log_z NaN */
    row[1][500] = NAN, row[1][3] = 50.0f;             /* NaN inside, never the argmax */
    for (int i = 0; i < EDGE_VOCAB; i++)
        row[2][i] = -INFINITY;                        /* all -inf: argmax 0, log_z -inf */
    for (int i = 0; i < EDGE_VOCAB; i++)
        row[3][i] = i % 2 ? 0.0f : -0.0f;             /* signed zeros only: the first */
    row[4][999] = INFINITY;                           /* +inf: log_z +inf */
    row[5][998] = row[5][2] = 30.0f;                  /* a tie, far apart: the first */
    row[6][0] = -INFINITY, row[6][1] = 1e-30f;        /* -inf terms and tiny ones */
    row[7][7] = 1000.0f;                              /* every other term under the exp floor */
    int32_t targets[ROWS] = {0, 500, 3, -1, 999, EDGE_VOCAB, 1, 7, 998};
    compare_row_stats(p, rows, ROWS, EDGE_VOCAB, targets, "row stats edge rows");
    /* one row takes the split pass (row_max_kernel, row_sum_kernel): each edge row alone */
    for (int r = 0; r < ROWS; r++)
        compare_row_stats(p, row[r], 1, EDGE_VOCAB, &targets[r], "row stats, an edge row alone");
    free(rows);

    float *wide = random_floats((size_t)2 * WIDE, 6.0f);
    int32_t wide_targets[2] = {WIDE - 1, 12345};
    compare_row_stats(p, wide, 2, WIDE, wide_targets, "row stats 151936 wide");
    compare_row_stats(p, wide + WIDE, 1, WIDE, &wide_targets[1], "row stats, one row 151936 wide");
    free(wide);

    float *many = random_floats((size_t)MANY * 37, 2.0f);
    int32_t *many_targets = malloc(MANY * sizeof *many_targets);
    for (int r = 0; r < MANY; r++)
        many_targets[r] = r % 37;
    compare_row_stats(p, many, MANY, 37, many_targets, "row stats 700 rows of 37");
    compare_row_stats(p, many, MANY, 37, NULL, "row stats without targets");
    compare_row_stats(p, many, 1, 37, NULL, "row stats, one row of 37");
    free(many), free(many_targets);
}

static void check_embed_and_row_stats(pair *p)
{
    qe_error err = {0};
    enum { VOCAB = 49152, DIM = 64, ROWS = 5 };
    float *table = random_floats((size_t)VOCAB * DIM, 1.0f);
    qe_weight wr, wg;
    qe_backend_linear *lr = NULL, *lg = NULL;
    CHECK_INT_EQ(QE_OK, qe_weight_init_half(&wr, QE_WEIGHT_BF16, table, VOCAB, DIM, &err));
    CHECK_INT_EQ(QE_OK, qe_weight_init_half(&wg, QE_WEIGHT_BF16, table, VOCAB, DIM, &err));
    CHECK_INT_EQ(QE_OK, p->ref->prepare_linear(p->ref, &wr, QE_DTYPE_BF16, &lr, &err));
    CHECK_INT_EQ(QE_OK, p->gpu->prepare_linear(p->gpu, &wg, QE_DTYPE_BF16, &lg, &err));
    int32_t ids[ROWS] = {0, 17, VOCAB - 1, 17, 4096};
    float *er = p->ref->alloc(p->ref, ROWS * DIM), *eg = p->gpu->alloc(p->gpu, ROWS * DIM);
    p->ref->embed(p->ref, lr, ids, ROWS, 8.0f, QE_DTYPE_BF16, er);
    p->gpu->embed(p->gpu, lg, ids, ROWS, 8.0f, QE_DTYPE_BF16, eg);
    float *want = from_backend(p->ref, er, ROWS * DIM), *got = from_backend(p->gpu, eg, ROWS * DIM);
    expect("embed bf16 x 8", want, got, ROWS * DIM, 0, 0, 1.0);
    free(want), free(got);
    qe_backend_memory mem;
    CHECK(qe_backend_cuda_memory(p->gpu, &mem));
    CHECK_INT_EQ((uint64_t)VOCAB * DIM * 2, mem.current_bytes[QE_MEM_EMBEDDING]);

    /* row stats over logits with a tie for the maximum (the first index wins) */
    float *logits = random_floats((size_t)ROWS * VOCAB, 3.0f);
    logits[100] = logits[200] = 40.0f;
    int32_t targets[ROWS] = {5, 100, VOCAB - 1, 0, 77};
    CHECK_INT_EQ(100, compare_row_stats(p, logits, ROWS, VOCAB, targets, "row stats").argmax);
    CHECK_INT_EQ(100, compare_row_stats(p, logits, 1, VOCAB, targets, "row stats, one row").argmax);
    p->ref->release(p->ref, er);
    p->gpu->release(p->gpu, eg);
    p->ref->free_linear(p->ref, lr);
    p->gpu->free_linear(p->gpu, lg);
    free(table), free(logits);
}

/* Errors: a GPU that is not there, a ring too small for the keys a call reads, and an
 * allocation larger than the free memory. */
static void check_errors(pair *p)
{
    qe_error err = {0};
    float *buf = p->gpu->alloc(p->gpu, 64 * 64);
    CHECK_INT_EQ(QE_OK, p->gpu->reserve_workspace(p->gpu, 4, 64, 1, 64, &err));
    qe_attention_args short_ring = {.q = buf, .k_cache = buf, .v_cache = buf, .out = buf, .n_tok = 4, .pos0 = 40,
                                    .n_heads = 1, .n_kv_heads = 1, .head_dim = 64, .window = 8, .kv_ring = 10,
                                    .scale = 1};
    p->gpu->attention(p->gpu, &short_ring, QE_DTYPE_F32); /* reads positions 33..43: 11 rows */
    CHECK_INT_EQ(QE_EINVAL, p->gpu->sync(p->gpu, &err));
    CHECK(strstr(err.msg, "attention over a cache of 10 rows at positions 40..43: a ring smaller") != NULL);
    printf("short ring: %s\n", err.msg);
    p->gpu->release(p->gpu, buf);
    qe_backend *none = NULL;
    CHECK(qe_backend_cuda_create(qe_gpu_count() + 6, &none, &err) != QE_OK);
    CHECK(none == NULL);
    CHECK(strstr(err.msg, "this machine has") != NULL);
    printf("bad device: %s\n", err.msg);

    qe_backend_memory before, after;
    qe_backend_cuda_memory(p->gpu, &before);
    size_t too_many = (size_t)(before.device_total_bytes / sizeof(float)) + 1;
    CHECK(p->gpu->alloc(p->gpu, too_many) == NULL);
    float *after_failure = p->gpu->alloc(p->gpu, 16); /* a no-op until the error is taken */
    CHECK(after_failure == NULL);
    CHECK_INT_EQ(QE_ENOMEM, p->gpu->sync(p->gpu, &err));
    CHECK(strstr(err.msg, "GB free of") != NULL && strstr(err.msg, "--variants nf4") != NULL);
    printf("out of memory: %s\n", err.msg);
    float *fine = p->gpu->alloc(p->gpu, 16); /* usable again once sync returned the error */
    CHECK(fine != NULL);
    p->gpu->release(p->gpu, fine);
    CHECK_INT_EQ(QE_OK, p->gpu->sync(p->gpu, &err));
    qe_backend_cuda_memory(p->gpu, &after);
    CHECK_INT_EQ(before.total_current_bytes, after.total_current_bytes);
    CHECK(after.peak_bytes[QE_MEM_ACTIVATIONS] >= 64);
}

/* The weight arena: 20 float32 [896, 896] linears (3.06 MiB each, Qwen2.5-0.5B's q and o) take
 * their sum rounded up to the 2 MiB granularity once, as the estimate counts (cudaMalloc would
 * round each to 4 MiB: 80 MiB), and all of it goes back when the last one is released. A fresh
 * backend, so that nothing else lives in its arena. */
static void check_weight_arena(void)
{
    enum { N_LINEARS = 20, ROWS = 896 };
    const size_t granularity = 2u << 20, each = (size_t)ROWS * ROWS * sizeof(float);
    qe_error err = {0};
    qe_backend *gpu = NULL;
    CHECK_INT_EQ(QE_OK, qe_backend_cuda_create(0, &gpu, &err));
    if (!gpu)
        return;
    qe_backend_memory before, loaded, released;
    qe_backend_cuda_memory(gpu, &before);
    float *w = random_floats((size_t)ROWS * ROWS, 0.05f);
    qe_backend_linear *lins[N_LINEARS] = {0};
    for (int i = 0; i < N_LINEARS; i++) {
        qe_weight weight;
        float *copy = malloc(each);
        memcpy(copy, w, each);
        qe_weight_wrap_f32(&weight, copy, copy, ROWS, ROWS);
        CHECK_INT_EQ(QE_OK, gpu->prepare_linear(gpu, &weight, QE_DTYPE_F32, &lins[i], &err));
    }
    qe_backend_cuda_memory(gpu, &loaded);
    uint64_t sum = (uint64_t)N_LINEARS * each, used = before.device_free_now_bytes - loaded.device_free_now_bytes;
    uint64_t arena = (sum + 255 * N_LINEARS + granularity - 1) / granularity * granularity;
    printf("weight arena: %d linears of %.2f MiB: the device's free memory fell %.2f MiB (sum %.2f MiB, arena %.2f MiB)\n",
           N_LINEARS, each / 1048576.0, used / 1048576.0, sum / 1048576.0, arena / 1048576.0);
    CHECK_INT_EQ(sum, loaded.current_bytes[QE_MEM_LINEAR]);
    CHECK(used <= arena);
    CHECK(loaded.device_used_peak_bytes >= before.device_used_peak_bytes + used);
    for (int i = 0; i < N_LINEARS; i++)
        gpu->free_linear(gpu, lins[i]);
    CHECK_INT_EQ(QE_OK, gpu->sync(gpu, &err));
    qe_backend_cuda_memory(gpu, &released);
    CHECK_INT_EQ(0, released.current_bytes[QE_MEM_LINEAR]);
    CHECK(released.device_free_now_bytes >= before.device_free_now_bytes);
    free(w);
    gpu->destroy(gpu);
}

int main(void)
{
    qe_error err = {0};
    if (qe_gpu_count() == 0) {
        printf("skipped: no CUDA GPU on this machine\n");
        return 77;
    }
    pair p = {0};
    if (qe_backend_ref_create(&p.ref, &err) != QE_OK || qe_backend_cuda_create(0, &p.gpu, &err) != QE_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    qe_backend_memory mem;
    qe_backend_cuda_memory(p.gpu, &mem);
    printf("GPU: %s, %.1f GB, %.1f GB free\n", mem.device_name, mem.device_total_bytes / 1e9,
           mem.device_free_at_create_bytes / 1e9);

    /* real shapes: SmolLM2-135M q/o [576, 576], up [1536, 576], down [576, 1536]; Qwen2.5-0.5B
     * k with bias [128, 896]; Llama-3.1-8B down [4096, 14336]; an odd n_in */
    const char *variants[] = {"fp32", "bf16", "f16", "int8", "nf4", "nf4-nodq", "nf4-bs128"};
    int shapes[][2] = {{576, 576}, {1536, 576}, {576, 1536}, {128, 896}, {100, 1000}};
    int tokens[] = {1, 3, 17, 100};
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (size_t t = 0; t < sizeof tokens / sizeof tokens[0]; t++)
                if (s == 0 || t == 1 || t == 2)
                    check_linear(&p, variants[v], shapes[s][0], shapes[s][1], tokens[t], s == 3);
    check_linear(&p, "nf4", 4096, 14336, 2, false);
    check_linear(&p, "int8", 4096, 14336, 2, false);
    check_linear(&p, "bf16", 4096, 14336, 9, false);
    /* the tensor-core path (bf16, f16, nf4 on sm_80+): token counts around its tiles (8-token
     * decode groups up to 16, 64-token prefill tiles), n_in that is no multiple of 16, 8 or 2 */
    const char *mma_variants[] = {"bf16", "f16", "nf4", "nf4-bs128"};
    int mma_tokens[] = {1, 8, 9, 16, 17, 64, 65, 129, 300};
    int mma_shapes[][2] = {{896, 896}, {200, 1000}, {70, 172}, {33, 37}};
    for (size_t v = 0; v < sizeof mma_variants / sizeof mma_variants[0]; v++) {
        for (size_t t = 0; t < sizeof mma_tokens / sizeof mma_tokens[0]; t++)
            check_linear(&p, mma_variants[v], 896, 896, mma_tokens[t], false);
        for (size_t s = 1; s < sizeof mma_shapes / sizeof mma_shapes[0]; s++) {
            check_linear(&p, mma_variants[v], mma_shapes[s][0], mma_shapes[s][1], 3, true);
            check_linear(&p, mma_variants[v], mma_shapes[s][0], mma_shapes[s][1], 130, true);
        }
        for (size_t s = 0; s < sizeof mma_shapes / sizeof mma_shapes[0]; s++)
            check_linear_batch_invariance(&p, mma_variants[v], mma_shapes[s][0], mma_shapes[s][1]);
        check_linear_batch_invariance(&p, mma_variants[v], 8192, 576); /* the 128-row blocks */
        /* 38 whole slices: the decode kernel's stage rings wrap, its rounds leave warps idle; NF4
         * over 300 tokens from the dequantized copy in the workspace */
        check_linear_batch_invariance(&p, mma_variants[v], 256, 4864);
        check_fused_ops(&p, mma_variants[v]);
    }
    /* fp32 and int8 across their kernels' edges: decode below 16 tokens, 64-token tiles, 64 /
     * 128-row tiles; n_in off 4 (37), 16 (172), 64 (1000) */
    const char *tiled[] = {"fp32", "int8"};
    int edge_shapes[][2] = {{200, 172}, {136, 37}, {130, 1000}};
    int edge_tokens[] = {1, 8, 9, 64, 65, 129, 300};
    for (size_t v = 0; v < 2; v++) {
        for (size_t s = 0; s < sizeof edge_shapes / sizeof edge_shapes[0]; s++)
            for (size_t t = 0; t < sizeof edge_tokens / sizeof edge_tokens[0]; t++)
                check_linear(&p, tiled[v], edge_shapes[s][0], edge_shapes[s][1], edge_tokens[t], s == 0);
        check_linear_batch_invariance(&p, tiled[v], 200, 172);
        check_linear_batch_invariance(&p, tiled[v], 896, 896);
        check_linear_batch_invariance(&p, tiled[v], 130, 1000);
    }
    /* int8 rows enough for the 128-token IMMA tile (66 row blocks x 3 >= the SMs of any GPU) */
    check_linear(&p, "int8", 8448, 200, 300, false);
    check_linear(&p, "int8", 8448, 576, 300, true);
    check_linear_batch_invariance(&p, "int8", 8448, 576);

    qe_dtype dtypes[] = {QE_DTYPE_F32, QE_DTYPE_BF16, QE_DTYPE_F16};
    for (int d = 0; d < 3; d++) {
        check_norm_rope_glu(&p, dtypes[d]);
        check_attention(&p, 1, 0, 9, 3, 64, 0, 0, dtypes[d]);
        check_attention(&p, 7, 30, 14, 2, 64, 0, 0, dtypes[d]);
        check_attention(&p, 33, 1500, 8, 4, 256, 512, 0, dtypes[d]);
        check_attention(&p, 1, 2100, 32, 8, 128, 0, 0, dtypes[d]);
        /* sliding-window rings (window + chunk - 1 rows, the engine's rule): a chunk at the
         * smallest ring, Gemma-3 4B's decode step and a full 256-token chunk at window 1024 */
        check_attention(&p, 33, 1500, 8, 4, 256, 512, 512 + 33 - 1, dtypes[d]);
        check_attention(&p, 1, 5000, 8, 4, 256, 1024, 1024 + 256 - 1, dtypes[d]);
        check_attention(&p, 256, 3000, 4, 2, 128, 1024, 1024 + 256 - 1, dtypes[d]);
        check_attention(&p, 20, 40, 4, 2, 96, 0, 0, dtypes[d]);  /* head_dim not a multiple of 32 */
        check_attention(&p, 3, 10, 2, 1, 512, 0, 0, dtypes[d]);  /* the largest: 100 KB of shared memory */
        check_attention_batch_invariance(&p, 7, 14, 2, 64, 0, dtypes[d]);
        check_attention_batch_invariance(&p, 1000, 8, 4, 256, 77, dtypes[d]);
        check_attention_batch_invariance(&p, 40, 8, 2, 128, 0, dtypes[d]);
        check_attention_batch_invariance(&p, 1000, 4, 2, 96, 77, dtypes[d]);
    }
    check_embed_and_row_stats(&p);
    check_row_stats_edges(&p);
    check_errors(&p);
    check_weight_arena();

    qe_backend_cuda_memory(p.gpu, &mem);
    printf("peak device bytes: linear %.1f MB, workspace %.1f MB, activations %.1f MB, total %.1f MB\n",
           mem.peak_bytes[QE_MEM_LINEAR] / 1e6, mem.peak_bytes[QE_MEM_WORKSPACE] / 1e6,
           mem.peak_bytes[QE_MEM_ACTIVATIONS] / 1e6, mem.total_peak_bytes / 1e6);
    p.gpu->destroy(p.gpu);
    p.ref->destroy(p.ref);
    return check_summary();
}
