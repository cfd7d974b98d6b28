// engine/cuda/linear_mma.cuh — the tensor-core linears of 16-bit and NF4 weights (decode, the
// whole-slice GEMV, the prefill GEMM) and NF4 dequantization, kept apart from backend_cuda.cu so
// that tests/test_linear_emu.cpp can run the same source on the CPU (tests/cuda_emu.h). The
// includer provides the instructions (mma_step, ldmatrix_x4, cp_async_16, cp_async_commit,
// cp_async_wait_pending, shared_table_word, bits16_of, grid_enter: inline PTX in backend_cuda.cu,
// an emulation in the test), dynamic_smem and the code tables c_nf4_code and c_code8, and sets
// QE_CUDA_MMA where the instructions exist (sm_80+).
#pragma once

// ---- tensor-core linears (mma.sync) ---------------------------------------------------------
// BF16 and NF4 weights in a bf16 model, F16 weights in an f16 model: x holds exact values of the
// 16-bit type, so y = x W^T runs on mma.sync.m16n8k16 (fp32 accumulation) with W as the A
// operand (16 output rows) and x as B (8 tokens). NF4 is dequantized on the way into the
// fragments as nf4_value does: bf16(code4 * absmax).
//
// Why the bits of y[t, r] do not depend on the batch: every output is summed the same way by
// both kernels below, whatever n_tok and tile: k is cut into slices of MMA_SLICE (a function of
// n_in only); a slice's partial sum is a chain of mma k16 steps from zero in increasing k (a
// step that would start at or past n_in is not run; the last one is zero-padded); the output is
// ((0 + p0) + p1) + ... in slice order, then + bias. An mma's result for element (i, j) depends
// only on row i of A, column j of B and its own accumulator, so the row and token tiles (16 rows
// x 8 tokens per warp for decode, up to 128 x 64 per block for prefill) change nothing.
// Decode gets its parallelism from the slices: the warps of a block take different slices of
// the same 16 rows and add the partials in slice order through shared memory.

// Every accumulator of a warp's [row tiles][token tiles][fragment] block set to +0.
template <int ROW_TILES, int TOKEN_TILES>
__device__ __forceinline__ void zero_fragments(float (&f)[ROW_TILES][TOKEN_TILES][4])
{
#pragma unroll
    for (int m = 0; m < ROW_TILES; m++)
#pragma unroll
        for (int n = 0; n < TOKEN_TILES; n++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                f[m][n][e] = 0.0f;
}

#define MMA_SLICE 128           // k per partial sum (a multiple of MMA_BK)
#define MMA_BK 64               // k per shared-memory stage of the tiled kernel
#define MMA_BN 64               // tokens per block of the tiled kernel
#define MMA_LD (MMA_BK + 8)     // 16-bit elements per shared row: 144 bytes, conflict-free ldmatrix
#define MMA_STAGES 3            // k tiles in flight in the tiled kernel's ring
#define MMA_DECODE_WARPS 8      // slices worked on at once by a decode block
#define MMA_DECODE_MAX_TOKENS 16 // up to here one decode block per 16 rows and 8 tokens

#if QE_CUDA_MMA

// Two 16-bit values in one register as mma fragments hold them: the lower k in the low half.
template <typename T> __device__ __forceinline__ uint32_t pack_pair(float lo, float hi)
{
    return bits16_of<T>(lo) | bits16_of<T>(hi) << 16;
}

// NF4 elements are dequantized from the codes' offsets into the code table: byte b of *hi of a
// word of codes is 4 x the high nibble of its byte b (element 2b, the first of the pair), byte b
// of *lo 4 x the low one; two instructions a word for eight elements, where extracting each
// nibble and scaling it to an address took three.
__device__ __forceinline__ void nf4_code_offsets(uint32_t codes, uint32_t &hi, uint32_t &lo)
{
    hi = codes >> 2 & 0x3c3c3c3cu;
    lo = codes << 2 & 0x3c3c3c3cu;
}

// bf16(code4 * absmax) of the two elements of byte b of a word of codes, from its offsets
// (nf4_code_offsets), as nf4_value; code: c_nf4_code copied to shared memory, 256-byte aligned
// (shared_table_word; lanes index it divergently, 16 words in 16 banks: no conflicts). One cvt
// rounds both products to nearest even, as round_bf16 does for every finite value (products of
// finite codes and absmax are finite): the decode and prefill kernels spend most of their NF4
// instructions here.
__device__ __forceinline__ uint32_t nf4_pair(uint32_t hi, uint32_t lo, int b, float absmax, const float *code)
{
    __nv_bfloat162 pair = __floats2bfloat162_rn(shared_table_word(code, hi, b) * absmax,
                                                shared_table_word(code, lo, b) * absmax);
    return *(const uint32_t *)&pair; // .x, the first element, in the low half
}

// The block's copy of c_nf4_code in shared memory, 256-byte aligned for shared_table_word: threads
// 0..15 write it, and the caller's next barrier publishes it.
__device__ __forceinline__ const float *shared_nf4_code()
{
    __shared__ __align__(256) float table[16];
    if (threadIdx.x < 16)
        table[threadIdx.x] = c_nf4_code[threadIdx.x];
    return table;
}

// nf4_pair of one byte (element 2m in the high nibble).
__device__ __forceinline__ uint32_t nf4_byte_pair(uint32_t byte, float absmax, const float *code)
{
    uint32_t hi, lo;
    nf4_code_offsets(byte, hi, lo);
    return nf4_pair(hi, lo, 0, absmax, code);
}

// W[row, k] and W[row, k + 1] (k even) as one fragment register; 0 outside the matrix.
// nf4_code: as nf4_byte_pair's (NF4 only).
template <typename T, bool IS_NF4>
__device__ __forceinline__ uint32_t weight_pair(const qe_backend_linear &w, int row, int k, const float *nf4_code)
{
    if (row >= w.n_out || k >= w.n_in)
        return 0;
    int64_t i = (int64_t)row * w.n_in + k;
    bool has_second = k + 1 < w.n_in;
    if (IS_NF4) {
        // an even i shares its byte and (block_size being even) its block with i + 1
        if ((i & 1) == 0 && has_second)
            return nf4_byte_pair(__ldg((const uint8_t *)w.data + i / 2), nf4_block_absmax(w, i / w.block_size),
                                 nf4_code);
        return pack_pair<T>(nf4_value(w, i), has_second ? nf4_value(w, i + 1) : 0.0f);
    }
    const uint16_t *bits = (const uint16_t *)w.data;
    if ((i & 1) == 0 && has_second)
        return __ldg((const uint32_t *)(bits + i));
    return (uint32_t)__ldg(bits + i) | (has_second ? (uint32_t)__ldg(bits + i + 1) << 16 : 0u);
}

// x[t, k] and x[t, k + 1] (k even) in T as one fragment register; 0 outside.
template <typename T> __device__ __forceinline__ uint32_t x_pair(const float *x, int n_in, int n_tok, int t, int k)
{
    if (t >= n_tok || k >= n_in)
        return 0;
    const float *at = x + (size_t)t * n_in + k;
    return pack_pair<T>(__ldg(at), k + 1 < n_in ? __ldg(at + 1) : 0.0f);
}

#endif // QE_CUDA_MMA

// Decode (few tokens): one block per 16 output rows and 8 tokens, no shared tiles. Each warp
// computes one slice's 16 x 8 partial from fragments it loads straight from global memory; a
// round of MMA_DECODE_WARPS slices lands in shared memory and threads 0..127 (one output each)
// add them in slice order.
template <typename T, bool IS_NF4>
__global__ void __launch_bounds__(MMA_DECODE_WARPS * 32)
    mma_decode_kernel(qe_backend_linear w, const float *x, int n_tok, float *y)
{
    grid_enter();
#if QE_CUDA_MMA
    __shared__ float partials[MMA_DECODE_WARPS][16 * 8]; // [warp][row * 8 + token]
    const float *nf4_code = shared_nf4_code();
    __syncthreads();
    constexpr int STEPS = MMA_SLICE / 16;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, group = lane >> 2, quad = lane & 3;
    int r0 = blockIdx.x * 16, t0 = blockIdx.y * 8, n_in = w.n_in;
    int n_slices = (n_in + MMA_SLICE - 1) / MMA_SLICE;
    float total = 0.0f; // threads 0..127: output row r0 + threadIdx.x / 8, token t0 + threadIdx.x % 8
    for (int s0 = 0; s0 < n_slices; s0 += MMA_DECODE_WARPS) {
        int slice = s0 + warp;
        if (slice < n_slices) {
            int k_begin = slice * MMA_SLICE;
            int n_steps = ((n_in - k_begin < MMA_SLICE ? n_in - k_begin : MMA_SLICE) + 15) / 16;
            uint32_t a[STEPS][4], b[STEPS][2];
#pragma unroll
            for (int j = 0; j < STEPS; j++)
                if (j < n_steps) { // fragments as ldmatrix would give them (mma's operand layout)
                    int k = k_begin + 16 * j + 2 * quad;
                    a[j][0] = weight_pair<T, IS_NF4>(w, r0 + group, k, nf4_code);
                    a[j][1] = weight_pair<T, IS_NF4>(w, r0 + group + 8, k, nf4_code);
                    a[j][2] = weight_pair<T, IS_NF4>(w, r0 + group, k + 8, nf4_code);
                    a[j][3] = weight_pair<T, IS_NF4>(w, r0 + group + 8, k + 8, nf4_code);
                    b[j][0] = x_pair<T>(x, n_in, n_tok, t0 + group, k);
                    b[j][1] = x_pair<T>(x, n_in, n_tok, t0 + group, k + 8);
                }
            float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
            for (int j = 0; j < STEPS; j++)
                if (j < n_steps)
                    mma_step<T>(acc, a[j], b[j]);
            float *mine = partials[warp];
            mine[group * 8 + 2 * quad] = acc[0];
            mine[group * 8 + 2 * quad + 1] = acc[1];
            mine[(group + 8) * 8 + 2 * quad] = acc[2];
            mine[(group + 8) * 8 + 2 * quad + 1] = acc[3];
        }
        __syncthreads();
        if (threadIdx.x < 128)
            for (int i = 0; i < MMA_DECODE_WARPS && s0 + i < n_slices; i++)
                total += partials[i][threadIdx.x];
        __syncthreads();
    }
    int r = r0 + (int)threadIdx.x / 8, t = t0 + (int)threadIdx.x % 8;
    if (threadIdx.x < 128 && r < w.n_out && t < n_tok)
        y[(size_t)t * w.n_out + r] = linear_output(w, r, total);
#endif
}

// Decode of whole slices (n_in % MMA_SLICE == 0, n_out % 16 == 0; NF4 in blocks of 64): the
// arithmetic of mma_decode_kernel (each slice an mma chain from zero, the slices added in order)
// with far fewer instructions and more bytes in flight. A block of WARPS warps takes 16 rows; a
// warp streams its slices (slice r * WARPS + warp in round r) through a ring of STAGES shared
// buffers by cp.async, 16 coalesced bytes a lane, so STAGES - 1 slices are on their way while one
// is multiplied; 16-bit slices leave shared memory by ldmatrix (chunks XOR-swizzled by row: no
// bank conflicts), NF4 codes as two 16-byte reads a row and half slice, a lane's bytes gathered
// into a word per k pair and dequantized by nf4_pair; x comes as float2 loads one round ahead. A
// round's partials meet in shared memory, added in slice order, so WARPS does not change the
// sums: 4 where the row tiles fill the SMs, 8 or 16 where a few long rows (the down projection's
// 56 tiles of 38 slices on qwen2.5-0.5b) would leave most of them idle and the rest with too few
// bytes in flight.
#define GEMV_NF4_ROW_BYTES 80 // 64 bytes of codes a slice row, padded: the rows' reads hit distinct banks
template <bool IS_NF4, int WARPS> struct gemv_shape {
    // NF4 slices are a quarter of the bytes: more in flight; 16 warps of 16-bit slices take 3
    // stages, within a block's shared memory
    static constexpr int STAGES = IS_NF4 ? 8 : WARPS >= 16 ? 3 : 4;
    static constexpr int STAGE_BYTES = IS_NF4 ? 16 * GEMV_NF4_ROW_BYTES : 16 * MMA_SLICE * 2;
    static constexpr int SMEM_BYTES = WARPS * STAGES * STAGE_BYTES; // the rings (dynamic)
    // mma_gemv_kernel's partials, then the code table at a 256-byte boundary
    static constexpr int STATIC_BYTES = 2 * WARPS * 16 * 8 * 4 + 256 + 16 * 4;
    static constexpr int BLOCK_BYTES = SMEM_BYTES + STATIC_BYTES;
};

// The linears of one launch (linears that share x: q, k, v; gate, up): linear i's 16-row tiles
// are blocks first_block[i] .. first_block[i + 1] - 1. With glu_act >= 0 the blocks are w[0]'s
// tiles and each also runs w[1]'s same rows: y[0] = glu(act, w[0] x, w[1] x), each linear's
// output rounded to its out_dtype first, as the linears and the glu op give it.
struct gemv_batch {
    qe_backend_linear w[QE_LINEARS_MAX];
    float *y[QE_LINEARS_MAX];
    int first_block[QE_LINEARS_MAX + 1];
    int n;
    int glu_act, glu_dtype; // -1: no GLU
};

// The batch of linears lins[i] -> ys[i], i < n <= QE_LINEARS_MAX: blocks first_block[n] in all.
static gemv_batch gemv_batch_of(int n, const qe_backend_linear *const *lins, float *const *ys)
{
    gemv_batch batch = {};
    batch.n = n;
    batch.glu_act = -1;
    for (int i = 0; i < n; i++) {
        batch.w[i] = *lins[i];
        batch.y[i] = ys[i];
        batch.first_block[i + 1] = batch.first_block[i] + lins[i]->n_out / 16;
    }
    return batch;
}

// y = glu(act, gate x, up x) rounded to dtype: blocks first_block[1], over gate's tiles.
static gemv_batch gemv_glu_batch(const qe_backend_linear *gate, const qe_backend_linear *up, int act, int dtype,
                                 float *y)
{
    const qe_backend_linear *lins[2] = {gate, up};
    float *ys[2] = {y, NULL};
    gemv_batch batch = gemv_batch_of(2, lins, ys);
    batch.n = 1;
    batch.glu_act = act;
    batch.glu_dtype = dtype;
    return batch;
}

// Linear w's rows r0 .. r0 + 15 for tokens t0 .. t0 + 7 through the warp's ring: the sum of row
// r0 + threadIdx.x / 8, token t0 + threadIdx.x % 8 in threads 0..127 (without the bias). The
// launch's first linear (is_first) issues its first slices before grid_enter: the weights are
// no kernel's output, x is.
template <typename T, bool IS_NF4, int WARPS>
__device__ float gemv_rows(const qe_backend_linear &w, int r0, int t0, const float *x, int n_tok, uint8_t *ring,
                           float (*partials)[WARPS][16 * 8], const float *nf4_code, bool is_first)
{
#if QE_CUDA_MMA
    using shape = gemv_shape<IS_NF4, WARPS>;
    constexpr int STEPS = MMA_SLICE / 16, D = shape::STAGES;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, group = lane >> 2, quad = lane & 3, n_in = w.n_in;
    int n_slices = n_in / MMA_SLICE, n_rounds = (n_slices + WARPS - 1) / WARPS;
    bool has_token = t0 + group < n_tok;
    const float *x_row = x + (size_t)(t0 + group) * n_in;

    auto issue = [&](int round) { // round's slice into its stage; a group is committed either way
        int slice = round * WARPS + warp;
        if (round < n_rounds && slice < n_slices) {
            uint8_t *stage = ring + (round % D) * shape::STAGE_BYTES;
            if (IS_NF4) {
                const uint8_t *codes = (const uint8_t *)w.data + ((size_t)r0 * n_in + (size_t)slice * MMA_SLICE) / 2;
#pragma unroll
                for (int c = lane; c < 64; c += 32) // 16 rows of 4 chunks
                    cp_async_16((uint16_t *)(stage + (c / 4) * GEMV_NF4_ROW_BYTES + c % 4 * 16),
                                codes + (size_t)(c / 4) * (n_in / 2) + c % 4 * 16, 16);
            } else {
                const uint16_t *bits = (const uint16_t *)w.data + (size_t)r0 * n_in + (size_t)slice * MMA_SLICE;
#pragma unroll
                for (int c = lane; c < 256; c += 32) { // 16 rows of 16 chunks
                    int row = c / 16, chunk = c % 16;
                    cp_async_16((uint16_t *)(stage + row * 256 + ((chunk ^ (row & 7)) * 16)),
                                bits + (size_t)row * n_in + chunk * 8, 16);
                }
            }
        }
        cp_async_commit();
    };
    float2 xs[STEPS][2];   // the next slice's x[t0 + group, k .. k + 1] at k = 16 j + 2 quad and + 8
    float absmax[2][2];    // NF4: [row group, + 8][first, second 64 of the slice]
    auto fetch = [&](int round) {
        int slice = round * WARPS + warp;
        if (round >= n_rounds || slice >= n_slices)
            return;
        int k_begin = slice * MMA_SLICE;
#pragma unroll
        for (int j = 0; j < STEPS; j++)
#pragma unroll
            for (int h = 0; h < 2; h++)
                xs[j][h] = has_token ? __ldg((const float2 *)(x_row + k_begin + 16 * j + 8 * h + 2 * quad))
                                     : make_float2(0.0f, 0.0f);
        if (IS_NF4)
#pragma unroll
            for (int m = 0; m < 2; m++) {
                int64_t block = ((int64_t)(r0 + group + 8 * m) * n_in + k_begin) / 64;
                absmax[m][0] = nf4_block_absmax(w, block);
                absmax[m][1] = nf4_block_absmax(w, block + 1);
            }
    };

#pragma unroll
    for (int round = 0; round < D - 1; round++)
        issue(round);
    if (is_first)
        grid_enter(); // the weights' first slices are on their way while the kernel before finishes x
    fetch(0);
    float total = 0.0f;
    for (int round = 0; round < n_rounds; round++) {
        issue(round + D - 1); // into the stage the previous round finished with
        cp_async_wait_pending<D - 1>();
        __syncwarp();
        bool has_slice = round * WARPS + warp < n_slices;
        if (has_slice) {
            const uint8_t *stage = ring + (round % D) * shape::STAGE_BYTES;
            float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            // NF4, the current half of the slice (64 k, one absmax a row): [row group, + 8][k pair at
            // 2 quad, + 8][high, low nibbles] as nf4_code_offsets gives them, byte s for step 4 h + s
            uint32_t offsets[2][2][2];
#pragma unroll
            for (int j = 0; j < STEPS; j++) {
                uint32_t a[4], b[2] = {pack_pair<T>(xs[j][0].x, xs[j][0].y), pack_pair<T>(xs[j][1].x, xs[j][1].y)};
                if (IS_NF4) {
                    constexpr int HALF = STEPS / 2;
                    if (j % HALF == 0)
#pragma unroll
                        for (int m = 0; m < 2; m++) {
                            // bytes 32 h .. 32 h + 31 of row group + 8m; step s takes bytes 8s + quad
                            // (k pair 2 quad) and 8s + 4 + quad (+ 8) of them, gathered a word each
                            const uint4 *half = (const uint4 *)(stage + (group + 8 * m) * GEMV_NF4_ROW_BYTES + 8 * j);
                            uint4 lo = half[0], hi = half[1];
                            uint32_t pick = quad | (quad + 4) << 4;
                            nf4_code_offsets(__byte_perm(__byte_perm(lo.x, lo.z, pick), __byte_perm(hi.x, hi.z, pick),
                                                         0x5410u),
                                             offsets[m][0][0], offsets[m][0][1]);
                            nf4_code_offsets(__byte_perm(__byte_perm(lo.y, lo.w, pick), __byte_perm(hi.y, hi.w, pick),
                                                         0x5410u),
                                             offsets[m][1][0], offsets[m][1][1]);
                        }
#pragma unroll
                    for (int m = 0; m < 2; m++) {
                        float scale = absmax[m][j / HALF];
                        a[m] = nf4_pair(offsets[m][0][0], offsets[m][0][1], j % HALF, scale, nf4_code);
                        a[m + 2] = nf4_pair(offsets[m][1][0], offsets[m][1][1], j % HALF, scale, nf4_code);
                    }
                } else {
                    int row = lane % 16, chunk = 2 * j + lane / 16;
                    ldmatrix_x4(a, (const uint16_t *)(stage + row * 256 + ((chunk ^ (row & 7)) * 16)));
                }
                mma_step<T>(acc, a, b);
            }
            float *mine = partials[round & 1][warp];
            mine[group * 8 + 2 * quad] = acc[0];
            mine[group * 8 + 2 * quad + 1] = acc[1];
            mine[(group + 8) * 8 + 2 * quad] = acc[2];
            mine[(group + 8) * 8 + 2 * quad + 1] = acc[3];
        }
        fetch(round + 1);
        __syncwarp(); // every lane is done with this round's stage before it is refilled
        __syncthreads();
        // partials[round & 1] is written again two rounds on, after every thread passed the next barrier
        if (threadIdx.x < 128)
            for (int i = 0; i < WARPS && round * WARPS + i < n_slices; i++)
                total += partials[round & 1][i][threadIdx.x];
    }
    cp_async_wait_pending<0>();
    return total;
#else
    return 0.0f;
#endif
}

template <typename T, bool IS_NF4, int WARPS>
__global__ void __launch_bounds__(WARPS * 32) mma_gemv_kernel(gemv_batch batch, const float *x, int n_tok)
{
#if QE_CUDA_MMA
    int which = 0;
    while (which + 1 < batch.n && (int)blockIdx.x >= batch.first_block[which + 1])
        which++;
    // selected field by field: an indexed kernel parameter would be copied to local memory
    const qe_backend_linear w = which == 0 ? batch.w[0] : which == 1 ? batch.w[1] : batch.w[2];
    float *y = which == 0 ? batch.y[0] : which == 1 ? batch.y[1] : batch.y[2];
    using shape = gemv_shape<IS_NF4, WARPS>;
    uint8_t *gemv_stages = (uint8_t *)dynamic_smem(); // [warp][stage][STAGE_BYTES]
    __shared__ float partials[2][WARPS][16 * 8];           // [round & 1][warp][row * 8 + token]
    const float *nf4_code = shared_nf4_code();
    __syncthreads();
    int r0 = (blockIdx.x - batch.first_block[which]) * 16, t0 = blockIdx.y * 8;
    uint8_t *ring = gemv_stages + (size_t)(threadIdx.x >> 5) * shape::STAGES * shape::STAGE_BYTES;
    float total = gemv_rows<T, IS_NF4, WARPS>(w, r0, t0, x, n_tok, ring, partials, nf4_code, true);
    bool has_output = threadIdx.x < 128; // row r0 + threadIdx.x / 8, token t0 + threadIdx.x % 8
    int r = r0 + (int)threadIdx.x / 8, t = t0 + (int)threadIdx.x % 8;
    float out = has_output ? linear_output(w, r, total) : 0.0f;
    if (batch.glu_act >= 0) {
        __syncthreads(); // the gate's last partials are read before the up projection's rounds write them
        const qe_backend_linear up = batch.w[1];
        float up_total = gemv_rows<T, IS_NF4, WARPS>(up, r0, t0, x, n_tok, ring, partials, nf4_code, false);
        if (has_output)
            out = glu_value(batch.glu_act, out, linear_output(up, r, up_total), batch.glu_dtype);
    }
    if (has_output && t < n_tok)
        y[(size_t)t * w.n_out + r] = out;
#endif
}

// The tiled kernel's x: x[n_tok, n_in] (exact values of T) as T bits in rows of x16_ld(n_in)
// values, zero past n_in, so that every 16-byte piece of a row is aligned and whole: one copy a
// call (q, k and v share it), then cp.async alone moves x in the kernel.
__host__ __device__ constexpr int x16_ld(int n_in) { return (n_in + 7) / 8 * 8; }

template <typename T> __global__ void x16_kernel(const float *x, int n_tok, int n_in, uint4 *x16)
{
    grid_enter();
#if QE_CUDA_MMA
    int row_chunks = x16_ld(n_in) / 8;
    size_t c = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= (size_t)n_tok * row_chunks)
        return;
    size_t t = c / row_chunks;
    int k = (int)(c % row_chunks) * 8;
    const float *row = x + t * n_in;
    uint32_t pairs[4];
#pragma unroll
    for (int j = 0; j < 4; j++)
        pairs[j] = (k + 2 * j < n_in ? bits16_of<T>(row[k + 2 * j]) : 0u) |
                   (k + 2 * j + 1 < n_in ? bits16_of<T>(row[k + 2 * j + 1]) : 0u) << 16;
    x16[c] = make_uint4(pairs[0], pairs[1], pairs[2], pairs[3]);
#endif
}

// Prefill: one block per WARPS_M * 32 output rows and MMA_BN tokens, warps in a WARPS_M x 2 grid
// of 32 x 32 tiles, over k tiles of MMA_BK in a ring of MMA_STAGES stages: a tile's loads are
// issued MMA_STAGES - 1 tiles before its mma, so a block does not wait a memory latency per
// tile. x arrives as x16_kernel left it, 16-bit weights (rows of a multiple of 8 values) as
// they are, both by cp.async straight into the ldmatrix layout: one barrier a tile, and 4 mma
// k-steps of 8 mma a warp behind it (the kernel is bound by its instructions at the 1 - 2
// blocks a multiprocessor that a pass's linears give: a 32-value k tile with float32 x rounded
// in shared memory spent ~1,600 cycles a tile). NF4 codes and unaligned rows go through
// registers, fetched at issue and stored after the current tile's mma. The mma steps, slices
// and sums are those of the decode kernels.
template <int WARPS_M> struct mma_linear_shape {
    static constexpr int BM = WARPS_M * 32, THREADS = WARPS_M * 64;
    static constexpr size_t W_STAGE = (size_t)BM * MMA_LD * sizeof(uint16_t);
    static constexpr size_t X_STAGE = (size_t)MMA_BN * MMA_LD * sizeof(uint16_t);
    static constexpr size_t SMEM_BYTES = MMA_STAGES * (W_STAGE + X_STAGE);
};

template <typename T, bool IS_NF4, int WARPS_M>
__global__ void __launch_bounds__(WARPS_M * 64)
    mma_linear_kernel(qe_backend_linear w, const uint16_t *x16, int n_tok, float *y)
{
    grid_enter();
#if QE_CUDA_MMA
    using shape = mma_linear_shape<WARPS_M>;
    constexpr int BM = shape::BM, THREADS = shape::THREADS;
    constexpr int TILE_CHUNKS = MMA_BK / 8;                       // 16-byte pieces of a row's k tile
    constexpr int W_CHUNKS = BM * TILE_CHUNKS / THREADS;          // per thread: 4
    constexpr int X_CHUNKS = MMA_BN * TILE_CHUNKS / THREADS;      // 4 or 2
    constexpr int TILES_PER_SLICE = MMA_SLICE / MMA_BK;
    unsigned char *mma_smem = (unsigned char *)dynamic_smem();
    uint16_t *w_ring = (uint16_t *)mma_smem;                           // [stage][BM][MMA_LD]
    uint16_t *x_ring = (uint16_t *)(mma_smem + MMA_STAGES * shape::W_STAGE); // [stage][MMA_BN][MMA_LD]
    const float *nf4_code = shared_nf4_code();
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, group = lane >> 2, quad = lane & 3;
    int warp_row = (warp % WARPS_M) * 32, warp_tok = (warp / WARPS_M) * 32;
    int t0 = blockIdx.x * MMA_BN, r0 = blockIdx.y * BM, n_in = w.n_in, n_out = w.n_out, x_ld = x16_ld(n_in);
    int n_tiles = (n_in + MMA_BK - 1) / MMA_BK;
    // 16-bit rows of a multiple of 8 values: whole 16-byte chunks, aligned, by cp.async
    bool is_w_async = !IS_NF4 && n_in % 8 == 0;
    // NF4 rows of a multiple of 8 values: a chunk is 4 aligned bytes in one absmax block
    bool is_nf4_chunked = IS_NF4 && n_in % 8 == 0;

    // a thread's chunks: chunk c = threadIdx.x + i * THREADS is row (or token) c / TILE_CHUNKS,
    // k c % TILE_CHUNKS * 8 of the tile
    uint32_t nf4_codes[W_CHUNKS];
    float nf4_absmax[W_CHUNKS];

    // Starts tile `tile`'s loads into `stage`: cp.async where it can, registers otherwise.
    auto fetch = [&](int stage, int tile) {
        int k_tile = tile * MMA_BK;
        uint16_t *w_stage = w_ring + (size_t)stage * BM * MMA_LD;
        uint16_t *x_stage = x_ring + (size_t)stage * MMA_BN * MMA_LD;
        if (is_w_async)
#pragma unroll
            for (int i = 0; i < W_CHUNKS; i++) {
                int c = threadIdx.x + i * THREADS, row = r0 + c / TILE_CHUNKS, k = k_tile + c % TILE_CHUNKS * 8;
                bool is_inside = row < n_out && k < n_in;
                const uint16_t *src = (const uint16_t *)w.data + (is_inside ? (size_t)row * n_in + k : 0);
                cp_async_16(&w_stage[(c / TILE_CHUNKS) * MMA_LD + c % TILE_CHUNKS * 8], src, is_inside ? 16 : 0);
            }
        if (is_nf4_chunked)
#pragma unroll
            for (int i = 0; i < W_CHUNKS; i++) {
                int c = threadIdx.x + i * THREADS, row = r0 + c / TILE_CHUNKS, k = k_tile + c % TILE_CHUNKS * 8;
                nf4_codes[i] = 0;
                nf4_absmax[i] = 0.0f;
                if (row < n_out && k < n_in) {
                    int64_t at = (int64_t)row * n_in + k;
                    nf4_codes[i] = __ldg((const uint32_t *)((const uint8_t *)w.data + at / 2));
                    nf4_absmax[i] = nf4_block_absmax(w, at / w.block_size);
                }
            }
#pragma unroll
        for (int i = 0; i < X_CHUNKS; i++) {
            int c = threadIdx.x + i * THREADS, t = t0 + c / TILE_CHUNKS, k = k_tile + c % TILE_CHUNKS * 8;
            bool is_inside = t < n_tok && k < x_ld;
            cp_async_16(&x_stage[(c / TILE_CHUNKS) * MMA_LD + c % TILE_CHUNKS * 8],
                        x16 + (is_inside ? (size_t)t * x_ld + k : 0), is_inside ? 16 : 0);
        }
    };
    // Writes what fetch left in registers to `stage` (weights not copied by cp.async).
    auto store = [&](int stage, int tile) {
        if (is_w_async)
            return;
        int k_tile = tile * MMA_BK;
        uint16_t *w_stage = w_ring + (size_t)stage * BM * MMA_LD;
#pragma unroll
        for (int i = 0; i < W_CHUNKS; i++) {
            int c = threadIdx.x + i * THREADS, row = r0 + c / TILE_CHUNKS, k = k_tile + c % TILE_CHUNKS * 8;
            uint32_t v[4], hi, lo;
            nf4_code_offsets(nf4_codes[i], hi, lo);
#pragma unroll
            for (int j = 0; j < 4; j++) // the byte holding elements 2j, 2j + 1 of the chunk
                v[j] = is_nf4_chunked ? nf4_pair(hi, lo, j, nf4_absmax[i], nf4_code)
                                      : weight_pair<T, IS_NF4>(w, row, k + 2 * j, nf4_code);
            *(uint4 *)&w_stage[(c / TILE_CHUNKS) * MMA_LD + c % TILE_CHUNKS * 8] = make_uint4(v[0], v[1], v[2], v[3]);
        }
    };

    float total[2][4][4], part[2][4][4]; // [row tile][token tile][fragment]
    zero_fragments(total);
    __syncthreads(); // nf4_code
#pragma unroll
    for (int s = 0; s < MMA_STAGES - 1; s++) {
        if (s < n_tiles) {
            fetch(s, s);
            store(s, s);
        }
        cp_async_commit();
    }
    for (int tile = 0; tile < n_tiles; tile++) {
        int stage = tile % MMA_STAGES, ahead = tile + MMA_STAGES - 1;
        cp_async_wait_pending<MMA_STAGES - 2>(); // this thread's pieces of `tile` are in
        __syncthreads(); // everyone's are; every warp is done with tile - 1, whose stage `ahead` takes
        if (ahead < n_tiles)
            fetch(ahead % MMA_STAGES, ahead);
        cp_async_commit(); // one group a tile, empty or not: the wait above counts them
        if (tile % TILES_PER_SLICE == 0)
            zero_fragments(part);
        const uint16_t *ws = w_ring + (size_t)stage * BM * MMA_LD, *xs = x_ring + (size_t)stage * MMA_BN * MMA_LD;
#pragma unroll
        for (int step = 0; step < MMA_BK / 16; step++) {
            if (tile * MMA_BK + step * 16 >= n_in)
                break;
            uint32_t a[2][4], b[4][2], pair[4];
#pragma unroll
            for (int m = 0; m < 2; m++)
                ldmatrix_x4(a[m], ws + (warp_row + m * 16 + lane % 16) * MMA_LD + step * 16 + lane / 16 * 8);
#pragma unroll
            for (int n2 = 0; n2 < 2; n2++) {
                ldmatrix_x4(pair, xs + (warp_tok + n2 * 16 + lane % 8 + lane / 16 * 8) * MMA_LD + step * 16 +
                                      lane / 8 % 2 * 8);
                b[2 * n2][0] = pair[0];
                b[2 * n2][1] = pair[1];
                b[2 * n2 + 1][0] = pair[2];
                b[2 * n2 + 1][1] = pair[3];
            }
#pragma unroll
            for (int m = 0; m < 2; m++)
#pragma unroll
                for (int n = 0; n < 4; n++)
                    mma_step<T>(part[m][n], a[m], b[n]);
        }
        if ((tile + 1) % TILES_PER_SLICE == 0 || tile + 1 == n_tiles)
#pragma unroll
            for (int m = 0; m < 2; m++)
#pragma unroll
                for (int n = 0; n < 4; n++)
#pragma unroll
                    for (int e = 0; e < 4; e++)
                        total[m][n][e] += part[m][n][e];
        if (ahead < n_tiles)
            store(ahead % MMA_STAGES, ahead);
    }
    cp_async_wait_pending<0>();
#pragma unroll
    for (int m = 0; m < 2; m++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int r = r0 + warp_row + m * 16 + group + (e >= 2 ? 8 : 0);
            if (r >= n_out)
                continue;
            float bias = bias_value(w, r);
#pragma unroll
            for (int n = 0; n < 4; n++) {
                int t = t0 + warp_tok + n * 8 + 2 * quad + (e & 1);
                if (t < n_tok)
                    y[(size_t)t * n_out + r] = round_to(w.bias ? total[m][n][e] + bias : total[m][n][e], w.out_dtype);
            }
        }
#endif
}

// out[8 c .. 8 c + 7] = the bf16 bits of NF4 elements 8 c .. 8 c + 7, as nf4_byte_pair gives
// them to the fused kernels (a block_size is a multiple of 8: one absmax a chunk).
__global__ void nf4_dequantize_kernel(qe_backend_linear w, uint4 *out, size_t n_chunks)
{
    grid_enter();
#if QE_CUDA_MMA
    const float *nf4_code = shared_nf4_code();
    __syncthreads();
    size_t c = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= n_chunks)
        return;
    uint32_t codes = __ldg((const uint32_t *)w.data + c); // byte b: elements 8c + 2b (high nibble), + 1
    float absmax = nf4_block_absmax(w, (int64_t)(c * 8 / (size_t)w.block_size));
    uint32_t pairs[4], hi, lo;
    nf4_code_offsets(codes, hi, lo);
#pragma unroll
    for (int b = 0; b < 4; b++)
        pairs[b] = nf4_pair(hi, lo, b, absmax, nf4_code);
    out[c] = make_uint4(pairs[0], pairs[1], pairs[2], pairs[3]);
#endif
}
