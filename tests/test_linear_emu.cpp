/* tests/test_linear_emu.cpp — the tensor-core linears (engine/cuda/linear_mma.cuh) run on the CPU
 * through tests/cuda_emu.h: the decode kernel, the whole-slice GEMV (one linear and several in one
 * launch, in blocks of 4, 8 and 16 warps; gate and up with the GLU), the prefill GEMM in 64- and
 * 128-row blocks, and NF4 dequantized once then run as bf16,
 * each against a host reference of the arithmetic the header promises, bit for bit: k in slices
 * of MMA_SLICE, a slice an mma chain of 16-wide k steps from zero (the last zero-padded), the
 * slices added in order, then the bias and the output's rounding. The emulated mma rounds a step
 * its own way (cuda_emu.h), and the reference rounds it the same way: what is checked is that
 * every kernel runs those steps and sums on the right values, whatever its tiles, rings and
 * batch — the bits a GPU gives are the GPU tests' to check. Weights: bf16 and f16 bits, NF4 from
 * the engine's quantizer (qe_nf4_quantize, with and without double quant) and its dequantizer
 * as the reference's values; shapes around the tiles (rows and k not multiples of 16 or 8, odd
 * k, x not 16-byte aligned), and rings that wrap. */
extern "C" {
#include "backend.h"
#include "dtype.h"
#include "quant.h"
#include "weight.h"
}

#include "cuda_emu.h"

static float c_nf4_code[16];
static float c_code8[256];
#define QE_CUDA_MMA 1
#include "cuda/linear_weight.cuh"
#include "cuda/linear_mma.cuh"

/* ---- data ----------------------------------------------------------------------------------- */

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

/* A linear [n_out, n_in] in one format with the float values the kernels must use (w_values:
 * bf16 / f16 values, NF4's bf16(code4 * absmax)); storage owned here. */
struct test_linear {
    qe_backend_linear lin = {};
    std::vector<float> w_values;
    std::vector<uint16_t> bits, bias_bits;
    qe_nf4_weight nf4 = {};
    ~test_linear() { qe_nf4_free(&nf4); }
};

static void make_linear(test_linear &t, qe_weight_format format, int n_out, int n_in, int nf4_block, bool double_quant,
                        bool has_bias)
{
    qe_dtype dtype = format == QE_WEIGHT_F16 ? QE_DTYPE_F16 : QE_DTYPE_BF16;
    size_t n = (size_t)n_out * n_in;
    std::vector<float> w(n);
    for (float &v : w)
        v = qe_round_to(check_uniform(&rng_state) * 0.5f, dtype);
    t.lin.format = format;
    t.lin.n_out = n_out, t.lin.n_in = n_in;
    t.lin.compute_dtype = dtype;
    t.lin.out_dtype = dtype;
    t.w_values.resize(n);
    if (format == QE_WEIGHT_NF4) {
        qe_error err = {};
        CHECK(qe_nf4_quantize(w.data(), n_out, n_in, nf4_block, double_quant, &t.nf4, &err) == QE_OK);
        qe_nf4_dequantize(&t.nf4, t.w_values.data());
        for (float &v : t.w_values)
            v = qe_round_bf16(v);
        t.lin.data = t.nf4.packed;
        t.lin.absmax = t.nf4.absmax, t.lin.qabsmax = t.nf4.qabsmax, t.lin.absmax2 = t.nf4.absmax2;
        t.lin.offset = t.nf4.offset, t.lin.block_size = nf4_block;
    } else {
        t.bits.resize(n);
        for (size_t i = 0; i < n; i++) {
            t.bits[i] = dtype == QE_DTYPE_F16 ? qe_f32_to_f16(w[i]) : qe_f32_to_bf16(w[i]);
            t.w_values[i] = w[i];
        }
        t.lin.data = t.bits.data();
    }
    if (has_bias) {
        t.bias_bits.resize(n_out);
        for (uint16_t &b : t.bias_bits) {
            float v = check_uniform(&rng_state);
            b = dtype == QE_DTYPE_F16 ? qe_f32_to_f16(v) : qe_f32_to_bf16(v);
        }
        t.lin.bias = t.bias_bits.data();
        t.lin.bias_dtype = dtype;
    }
}

/* x [n_tok, n_in] of exact values of dtype, at `offset` floats into its buffer */
static std::vector<float> make_x(int n_tok, int n_in, qe_dtype dtype, size_t offset)
{
    std::vector<float> x(offset + (size_t)n_tok * n_in);
    for (size_t i = offset; i < x.size(); i++)
        x[i] = qe_round_to(check_uniform(&rng_state) * 2.0f, dtype);
    return x;
}

/* ---- the reference: the arithmetic linear_mma.cuh promises ---------------------------------- */

static std::vector<float> reference(const test_linear &t, const float *x, int n_tok)
{
    const qe_backend_linear &w = t.lin;
    std::vector<float> y((size_t)n_tok * w.n_out);
    for (int tok = 0; tok < n_tok; tok++)
        for (int r = 0; r < w.n_out; r++) {
            const float *wr = &t.w_values[(size_t)r * w.n_in], *xt = x + (size_t)tok * w.n_in;
            float total = 0.0f;
            for (int k0 = 0; k0 < w.n_in; k0 += MMA_SLICE) {
                float part = 0.0f;
                for (int k1 = k0; k1 < k0 + MMA_SLICE && k1 < w.n_in; k1 += 16) { /* one mma step, as cuda_emu.h */
                    double sum = part;
                    for (int k = k1; k < k1 + 16; k++)
                        sum += k < w.n_in ? (double)wr[k] * xt[k] : 0.0;
                    part = (float)sum;
                }
                total += part;
            }
            if (w.bias) /* 16-bit bits: exact in float */
                total += w.bias_dtype == QE_DTYPE_F16 ? qe_f16_to_f32(t.bias_bits[r]) : qe_bf16_to_f32(t.bias_bits[r]);
            y[(size_t)tok * w.n_out + r] = qe_round_to(total, (qe_dtype)w.out_dtype);
        }
    return y;
}

/* ---- launches, as backend_cuda.cu makes them ------------------------------------------------- */

static unsigned blocks_for(size_t n, size_t per) { return (unsigned)((n + per - 1) / per); }

template <typename T, bool IS_NF4> static void run_decode(const qe_backend_linear &w, const float *x, int n_tok, float *y)
{
    launch(mma_decode_kernel<T, IS_NF4>, blocks_for(w.n_out, 16), blocks_for(n_tok, 8), MMA_DECODE_WARPS * 32, 0, w, x,
           n_tok, y);
}

template <typename T, bool IS_NF4, int WARPS>
static void run_gemv(const gemv_batch &batch, const float *x, int n_tok)
{
    launch(mma_gemv_kernel<T, IS_NF4, WARPS>, (unsigned)batch.first_block[batch.n], blocks_for(n_tok, 8), WARPS * 32,
           (size_t)gemv_shape<IS_NF4, WARPS>::SMEM_BYTES, batch, x, n_tok);
}

/* x rounded to 16-bit rows by x16_kernel, as x16_of does, then the tiled kernel */
template <typename T, bool IS_NF4, int WARPS_M>
static void run_gemm(const qe_backend_linear &w, const float *x, int n_tok, float *y)
{
    using shape = mma_linear_shape<WARPS_M>;
    size_t n_chunks = (size_t)n_tok * (x16_ld(w.n_in) / 8);
    std::vector<uint4> x16(n_chunks);
    launch(x16_kernel<T>, blocks_for(n_chunks, 256), 1u, 256, 0, x, n_tok, w.n_in, x16.data());
    launch(mma_linear_kernel<T, IS_NF4, WARPS_M>, blocks_for(n_tok, MMA_BN), blocks_for(w.n_out, shape::BM),
           shape::THREADS, shape::SMEM_BYTES, w, (const uint16_t *)x16.data(), n_tok, y);
}

/* ---- checks ------------------------------------------------------------------------------------ */

static bool same_bits(const std::vector<float> &a, const std::vector<float> &b)
{
    return a.size() == b.size() && memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

static const char *format_name(const test_linear &t)
{
    if (t.lin.format == QE_WEIGHT_NF4)
        return t.lin.qabsmax ? "nf4 (double quant)" : "nf4";
    return t.lin.format == QE_WEIGHT_F16 ? "f16" : "bf16";
}

/* One linear through every kernel that takes it, each token count against the reference. */
template <typename T, bool IS_NF4>
static void check_linear(qe_weight_format format, int n_out, int n_in, int nf4_block, bool double_quant, bool has_bias,
                         size_t x_offset, std::initializer_list<int> token_counts)
{
    test_linear t;
    make_linear(t, format, n_out, n_in, nf4_block, double_quant, has_bias);
    for (int n_tok : token_counts) {
        std::vector<float> x_buffer = make_x(n_tok, n_in, (qe_dtype)t.lin.compute_dtype, x_offset);
        const float *x = x_buffer.data() + x_offset;
        std::vector<float> want = reference(t, x, n_tok), got(want.size());
        const qe_backend_linear *lin = &t.lin;
        float *y = got.data();
        int n_kernels = 0, n_same = 0;
        auto compare = [&](const char *kernel) {
            n_kernels++;
            bool same = same_bits(want, got);
            n_same += same;
            if (!same)
                printf("  %s: DIFFERS from the reference\n", kernel);
            std::fill(got.begin(), got.end(), NAN);
        };
        if (n_tok <= MMA_DECODE_MAX_TOKENS) {
            run_decode<T, IS_NF4>(t.lin, x, n_tok, y);
            compare("mma_decode_kernel");
            bool is_whole = n_in % MMA_SLICE == 0 && n_out % 16 == 0 && (!IS_NF4 || nf4_block == 64);
            if (is_whole && x_offset % 4 == 0) {
                run_gemv<T, IS_NF4, 4>(gemv_batch_of(1, &lin, &y), x, n_tok);
                compare("mma_gemv_kernel, 4 warps");
                run_gemv<T, IS_NF4, 8>(gemv_batch_of(1, &lin, &y), x, n_tok);
                compare("mma_gemv_kernel, 8 warps");
                run_gemv<T, IS_NF4, 16>(gemv_batch_of(1, &lin, &y), x, n_tok);
                compare("mma_gemv_kernel, 16 warps");
            }
        }
        run_gemm<T, IS_NF4, 2>(t.lin, x, n_tok, y);
        compare("mma_linear_kernel, 64-row blocks");
        run_gemm<T, IS_NF4, 4>(t.lin, x, n_tok, y);
        compare("mma_linear_kernel, 128-row blocks");
        if (IS_NF4 && n_in % 8 == 0) { /* dequantized once, then the bf16 GEMM */
            std::vector<uint16_t> bf16((size_t)n_out * n_in);
            size_t n_chunks = bf16.size() / 8;
            launch(nf4_dequantize_kernel, blocks_for(n_chunks, 256), 1u, 256, 0, t.lin, (uint4 *)bf16.data(), n_chunks);
            qe_backend_linear as_bf16 = t.lin;
            as_bf16.format = QE_WEIGHT_BF16;
            as_bf16.data = bf16.data();
            run_gemm<__nv_bfloat16, false, 4>(as_bf16, x, n_tok, y);
            compare("nf4_dequantize_kernel + the bf16 GEMM");
        }
        printf("linear %s [%d, %d]%s%s, %d tokens: %d of %d kernels give the reference's bits\n", format_name(t), n_out,
               n_in, has_bias ? " + bias" : "", x_offset % 4 ? ", x unaligned" : "", n_tok, n_same, n_kernels);
        CHECK_INT_EQ(n_kernels, n_same);
    }
}

/* Several linears of one x in one GEMV launch (q, k, v), each against itself alone. */
template <typename T, bool IS_NF4> static void check_gemv_batch(qe_weight_format format, int n_in, int n_tok)
{
    const int n_outs[3] = {64, 16, 32};
    test_linear t[3];
    for (int i = 0; i < 3; i++)
        make_linear(t[i], format, n_outs[i], n_in, 64, false, i == 0);
    std::vector<float> x = make_x(n_tok, n_in, (qe_dtype)t[0].lin.compute_dtype, 0);
    std::vector<float> y[3];
    const qe_backend_linear *lins[3];
    float *ys[3];
    for (int i = 0; i < 3; i++) {
        y[i].assign((size_t)n_tok * n_outs[i], NAN);
        lins[i] = &t[i].lin;
        ys[i] = y[i].data();
    }
    run_gemv<T, IS_NF4, 4>(gemv_batch_of(3, lins, ys), x.data(), n_tok);
    int n_same = 0;
    for (int i = 0; i < 3; i++)
        n_same += same_bits(reference(t[i], x.data(), n_tok), y[i]);
    printf("gemv %s: 3 linears [64 | 16 | 32, %d] in one launch, %d tokens: %d of 3 give the reference's bits\n",
           format_name(t[0]), n_in, n_tok, n_same);
    CHECK_INT_EQ(3, n_same);
}

/* gate and up in one launch with the GLU applied (gemv_glu_batch), against glu_value of the
 * two linears' reference outputs; WARPS 4 and 16 (rounds of a gate's slices then an up's). */
template <typename T, bool IS_NF4> static void check_gemv_glu(qe_weight_format format, int n_in, int n_tok, int act)
{
    test_linear gate, up;
    make_linear(gate, format, 48, n_in, 64, true, true);
    make_linear(up, format, 48, n_in, 64, false, false);
    qe_dtype dtype = (qe_dtype)gate.lin.compute_dtype;
    std::vector<float> x = make_x(n_tok, n_in, dtype, 0);
    std::vector<float> g = reference(gate, x.data(), n_tok), u = reference(up, x.data(), n_tok), want(g.size());
    for (size_t i = 0; i < want.size(); i++)
        want[i] = glu_value(act, g[i], u[i], dtype);
    int n_same = 0;
    std::vector<float> y(want.size(), NAN);
    run_gemv<T, IS_NF4, 4>(gemv_glu_batch(&gate.lin, &up.lin, act, dtype, y.data()), x.data(), n_tok);
    n_same += same_bits(want, y);
    std::fill(y.begin(), y.end(), NAN);
    run_gemv<T, IS_NF4, 16>(gemv_glu_batch(&gate.lin, &up.lin, act, dtype, y.data()), x.data(), n_tok);
    n_same += same_bits(want, y);
    printf("gemv %s: gate and up [48, %d] with the %s GLU in one launch, %d tokens: %d of 2 launches give the "
           "reference's bits\n",
           format_name(gate), n_in, act == QE_ACT_SILU ? "SiLU" : "GELU-tanh", n_tok, n_same);
    CHECK_INT_EQ(2, n_same);
}

int main(void)
{
    memcpy(c_nf4_code, qe_nf4_code, sizeof c_nf4_code);
    qe_dynamic_map_signed(c_code8);
    using bf16 = __nv_bfloat16;
    using f16 = __half;
    /* whole slices: decode, GEMV (rings of 4 wrap past 16 slices) and GEMM (a ring of 4 k tiles) */
    check_linear<bf16, false>(QE_WEIGHT_BF16, 48, 384, 0, false, true, 0, {1, 9, 16, 70});
    check_linear<bf16, false>(QE_WEIGHT_BF16, 16, 2304, 0, false, false, 0, {3});
    check_linear<f16, false>(QE_WEIGHT_F16, 32, 256, 0, false, true, 0, {5, 40});
    /* rows and k off the tiles: guards, the last k step zero-padded, register paths */
    check_linear<bf16, false>(QE_WEIGHT_BF16, 40, 200, 0, false, true, 0, {3, 37});   /* k % 8 == 0, not % 16 */
    check_linear<bf16, false>(QE_WEIGHT_BF16, 24, 203, 0, false, false, 0, {2, 65}); /* odd k: no cp.async */
    check_linear<bf16, false>(QE_WEIGHT_BF16, 32, 256, 0, false, false, 1, {4, 20}); /* x not 16-byte aligned */
    check_linear<f16, false>(QE_WEIGHT_F16, 130, 136, 0, false, false, 0, {17});
    /* NF4: fused (codes through registers), GEMV rings of 8 wrapping, dequantized once */
    check_linear<bf16, true>(QE_WEIGHT_NF4, 32, 256, 64, false, true, 0, {1, 8, 33});
    check_linear<bf16, true>(QE_WEIGHT_NF4, 16, 4224, 64, true, false, 0, {2});
    check_linear<bf16, true>(QE_WEIGHT_NF4, 48, 384, 128, true, false, 0, {6, 70});
    check_linear<bf16, true>(QE_WEIGHT_NF4, 20, 200, 64, false, false, 0, {3, 18});
    check_gemv_batch<bf16, false>(QE_WEIGHT_BF16, 512, 5);
    check_gemv_batch<bf16, true>(QE_WEIGHT_NF4, 256, 9);
    check_gemv_glu<bf16, false>(QE_WEIGHT_BF16, 640, 3, QE_ACT_SILU);
    check_gemv_glu<bf16, true>(QE_WEIGHT_NF4, 384, 11, QE_ACT_GELU_TANH);
    check_gemv_glu<f16, false>(QE_WEIGHT_F16, 256, 1, QE_ACT_SILU);
    return check_summary();
}
