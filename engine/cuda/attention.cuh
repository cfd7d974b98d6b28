// engine/cuda/attention.cuh — the attention kernels of the CUDA backend (backend_cuda.cu includes
// this after its rounding and warp helpers: round_to, warp_sum; and grid_enter, prefetch_l2). Kept
// apart so that tests/test_attention_emu.cpp can run the same source on the CPU through a small
// emulation of the CUDA thread model and check, without a GPU, that every kernel gives the bits of
// the others.
#pragma once

// ---- attention: one block per (tile of ATT_QUERIES queries, head) ----------------------------
// As the CPU: scores = q.k * scale, their max, w = expf(score - max), sum of w in double,
// out = round(acc * (float)(1 / sum)) with acc[d] = sum of w * v[d] in key (position) order,
// position s read from cache row kv_row(s) (a sliding-window layer's ring). The block's queries
// share each tile of ATT_KEYS keys, loaded once into shared memory (one block per query read
// every key from memory per query: 54% of a 512-token prefill). The scores are computed twice
// (once for the max, once for the weights) instead of kept, so the kernel needs no scratch
// however long the context.
//
// Batch invariance: a query's arithmetic does not depend on the other queries of its block.
// Its score is one thread's dot (eight partial sums over d mod 8 and a fixed tree); the tiles start at multiples of ATT_KEYS, so the
// same keys meet in the same tile whatever the call; a tile's weights (0 for keys the query
// does not read) are summed by one fixed warp tree, the tile sums added in tile order; a tile's
// values are accumulated from zero over the query's own keys in position order and the tiles'
// shares added to acc in tile order. A tile without any of its keys adds 0 to the sum and
// nothing to acc, so a token alone gets its bits in any batch. A few tokens (decoding) take
// attention_decode_kernel, which spreads one query's tiles over warps in the same arithmetic.

#define ATT_THREADS 128
#define ATT_WARPS (ATT_THREADS / 32)
#define ATT_QUERIES 16                          // per block; warp w holds w, w + 4, w + 8, w + 12
#define ATT_QUERIES_PER_WARP (ATT_QUERIES / ATT_WARPS)
#define ATT_KEYS 32                             // per tile, one per lane
#define ATT_MAX_HEAD_DIM 512

// The cache row of position s (qe_kv_row of backend.h): a sliding-window layer's ring.
__device__ __forceinline__ size_t kv_row(int s, int ring) { return (size_t)(ring > 0 ? s % ring : s); }

static size_t attention_smem_bytes(int head_dim)
{
    // the queries [ATT_QUERIES, hd], one tile of keys or values [ATT_KEYS, hd + 4] (rows of 16-byte
    // chunks whose lanes' float4 reads fall in distinct banks), the tile's weights [ATT_QUERIES, ATT_KEYS]
    return sizeof(float) * ((size_t)ATT_QUERIES * head_dim + (size_t)ATT_KEYS * (head_dim + 4) + ATT_QUERIES * ATT_KEYS);
}

// Where the keys of a run of queries are: position s in cache row s + shift from position split
// on (a packed segment's own tokens), below it in kv_row(s, ring).
struct key_rows {
    int split, shift, ring;
    __device__ __forceinline__ size_t of(int s) const { return s >= split ? (size_t)(s + shift) : kv_row(s, ring); }
};

// Positions s0 .. s0 + ATT_KEYS - 1 of one head's keys or values into tile [ATT_KEYS, hd + 4];
// positions outside [lo, hi] (not read by this run of queries) as zeros. hd % 8 == 0.
__device__ __forceinline__ void load_kv_tile(float *tile, const float *base, size_t row_stride, int s0, int lo,
                                             int hi, int hd, key_rows rows)
{
    int hd4 = hd / 4;
    for (int i = threadIdx.x; i < ATT_KEYS * hd4; i += ATT_THREADS) {
        int j = i / hd4, d4 = i - j * hd4, s = s0 + j;
        float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (s >= lo && s <= hi)
            v = __ldg((const float4 *)(base + rows.of(s) * row_stride) + d4);
        *((float4 *)(tile + j * (hd + 4)) + d4) = v;
    }
}

// Scores of NQ queries (q, q + q_stride, ...) against one key row k: per query eight partial sums
// (d mod 8, as the CPU's dot) added in a fixed tree, then scaled. The tiled kernel's lane and the
// decode kernel's lane both score a (query, key) pair with this arithmetic.
template <int NQ>
__device__ __forceinline__ void key_scores(const float *q, int q_stride, const float4 *k, int hd, float scale,
                                           float score[NQ])
{
    float part[NQ][8] = {};
    for (int d8 = 0; d8 < hd / 8; d8++) {
        float4 k_lo = k[2 * d8], k_hi = k[2 * d8 + 1];
#pragma unroll
        for (int i = 0; i < NQ; i++) {
            const float4 *qi = (const float4 *)(q + i * q_stride) + 2 * d8;
            float4 q_lo = qi[0], q_hi = qi[1];
            part[i][0] = fmaf(q_lo.x, k_lo.x, part[i][0]);
            part[i][1] = fmaf(q_lo.y, k_lo.y, part[i][1]);
            part[i][2] = fmaf(q_lo.z, k_lo.z, part[i][2]);
            part[i][3] = fmaf(q_lo.w, k_lo.w, part[i][3]);
            part[i][4] = fmaf(q_hi.x, k_hi.x, part[i][4]);
            part[i][5] = fmaf(q_hi.y, k_hi.y, part[i][5]);
            part[i][6] = fmaf(q_hi.z, k_hi.z, part[i][6]);
            part[i][7] = fmaf(q_hi.w, k_hi.w, part[i][7]);
        }
    }
#pragma unroll
    for (int i = 0; i < NQ; i++) {
        const float *p = part[i];
        score[i] = (((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]))) * scale;
    }
}

// The scores of the warp's queries against lane's key of the tile in shared memory.
__device__ __forceinline__ void tile_scores(const float *q_tile, const float *k_tile, int hd, int warp, int lane,
                                            float scale, float score[ATT_QUERIES_PER_WARP])
{
    key_scores<ATT_QUERIES_PER_WARP>(q_tile + warp * hd, ATT_WARPS * hd, (const float4 *)(k_tile + lane * (hd + 4)),
                                     hd, scale, score);
}

// Queries [q_begin, q_end) of the block's tile (already in q_tile), all at positions
// pos_base + qi and with their keys where `rows` says: one call's tokens, or one packed segment's.
template <int D32>
__device__ void attend(const qe_attention_args &a, const float *q_tile, float *kv_tile, float *w_tile, int q_begin,
                       int q_end, int pos_base, key_rows rows, int h, int dtype)
{
    int hd = a.head_dim, kvh = h / (a.n_heads / a.n_kv_heads), lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    size_t kv_stride = (size_t)a.n_kv_heads * hd;
    const float *k0 = a.k_cache + (size_t)kvh * hd, *v0 = a.v_cache + (size_t)kvh * hd;
    // the warp's queries read positions [first, last]; last -1 for a slot outside the run
    int first[ATT_QUERIES_PER_WARP], last[ATT_QUERIES_PER_WARP];
#pragma unroll
    for (int i = 0; i < ATT_QUERIES_PER_WARP; i++) {
        int qi = warp + ATT_WARPS * i, pos = pos_base + qi;
        last[i] = qi >= q_begin && qi < q_end ? pos : -1;
        first[i] = a.window > 0 && pos - a.window + 1 > 0 ? pos - a.window + 1 : 0;
    }
    int pos_lo = pos_base + q_begin, lo = a.window > 0 && pos_lo - a.window + 1 > 0 ? pos_lo - a.window + 1 : 0;
    int hi = pos_base + q_end - 1, tile_lo = lo - lo % ATT_KEYS;

    float max_score[ATT_QUERIES_PER_WARP], score[ATT_QUERIES_PER_WARP];
#pragma unroll
    for (int i = 0; i < ATT_QUERIES_PER_WARP; i++)
        max_score[i] = -INFINITY;
    for (int s0 = tile_lo; s0 <= hi; s0 += ATT_KEYS) {
        __syncthreads(); // the previous tile is consumed (the first time: q_tile is written)
        load_kv_tile(kv_tile, k0, kv_stride, s0, lo, hi, hd, rows);
        __syncthreads();
        tile_scores(q_tile, kv_tile, hd, warp, lane, a.scale, score);
#pragma unroll
        for (int i = 0; i < ATT_QUERIES_PER_WARP; i++)
            if (s0 + lane >= first[i] && s0 + lane <= last[i])
                max_score[i] = fmaxf(max_score[i], score[i]);
    }
#pragma unroll
    for (int i = 0; i < ATT_QUERIES_PER_WARP; i++)
        for (int o = 16; o > 0; o >>= 1)
            max_score[i] = fmaxf(max_score[i], __shfl_xor_sync(0xffffffffu, max_score[i], o));

    double sum[ATT_QUERIES_PER_WARP] = {};
    float acc[ATT_QUERIES_PER_WARP][D32] = {};
    for (int s0 = tile_lo; s0 <= hi; s0 += ATT_KEYS) {
        __syncthreads();
        load_kv_tile(kv_tile, k0, kv_stride, s0, lo, hi, hd, rows);
        __syncthreads();
        tile_scores(q_tile, kv_tile, hd, warp, lane, a.scale, score);
        // the query's own keys of this tile, [j0, j1]: the same whichever tokens share the block
        int j0[ATT_QUERIES_PER_WARP], j1[ATT_QUERIES_PER_WARP], j_begin = ATT_KEYS, j_end = -1;
#pragma unroll
        for (int i = 0; i < ATT_QUERIES_PER_WARP; i++) {
            bool reads = s0 + lane >= first[i] && s0 + lane <= last[i];
            float w = reads ? expf(score[i] - max_score[i]) : 0.0f;
            sum[i] += warp_sum((double)w);
            w_tile[(warp + ATT_WARPS * i) * ATT_KEYS + lane] = w;
            j0[i] = first[i] > s0 ? first[i] - s0 : 0;
            j1[i] = last[i] - s0 < ATT_KEYS - 1 ? last[i] - s0 : ATT_KEYS - 1;
            if (j0[i] <= j1[i]) {
                j_begin = min(j_begin, j0[i]);
                j_end = max(j_end, j1[i]);
            }
        }
        __syncthreads(); // every score of the tile is taken: its values replace its keys
        load_kv_tile(kv_tile, v0, kv_stride, s0, lo, hi, hd, rows);
        __syncthreads();
        float part[ATT_QUERIES_PER_WARP][D32] = {}; // the tile's share, from zero (attention_decode_kernel's order)
        for (int j = j_begin; j <= j_end; j++) {
            float v[D32];
#pragma unroll
            for (int m = 0; m < D32; m++)
                v[m] = lane + 32 * m < hd ? kv_tile[j * (hd + 4) + lane + 32 * m] : 0.0f;
#pragma unroll
            for (int i = 0; i < ATT_QUERIES_PER_WARP; i++)
                if (j >= j0[i] && j <= j1[i]) {
                    float w = w_tile[(warp + ATT_WARPS * i) * ATT_KEYS + j];
#pragma unroll
                    for (int m = 0; m < D32; m++)
                        part[i][m] = fmaf(w, v[m], part[i][m]);
                }
        }
#pragma unroll
        for (int i = 0; i < ATT_QUERIES_PER_WARP; i++)
            if (j0[i] <= j1[i])
#pragma unroll
                for (int m = 0; m < D32; m++)
                    acc[i][m] += part[i][m];
    }
    int t0 = blockIdx.x * ATT_QUERIES;
#pragma unroll
    for (int i = 0; i < ATT_QUERIES_PER_WARP; i++) {
        int qi = warp + ATT_WARPS * i;
        if (qi < q_begin || qi >= q_end)
            continue;
        float inv_sum = (float)(1.0 / sum[i]);
        float *out = a.out + ((size_t)(t0 + qi) * a.n_heads + h) * hd;
#pragma unroll
        for (int m = 0; m < D32; m++)
            if (lane + 32 * m < hd)
                out[lane + 32 * m] = round_to(acc[i][m] * inv_sum, dtype);
    }
}

template <int D32> // head_dim <= 32 * D32
__global__ void __launch_bounds__(ATT_THREADS) attention_kernel(qe_attention_args a, int dtype)
{
    grid_enter();
    float *att_smem = dynamic_smem();
    int hd = a.head_dim;
    float *q_tile = att_smem, *kv_tile = q_tile + ATT_QUERIES * hd, *w_tile = kv_tile + ATT_KEYS * (hd + 4);
    int t0 = blockIdx.x * ATT_QUERIES, h = blockIdx.y;
    int n_q = a.n_tok - t0 < ATT_QUERIES ? a.n_tok - t0 : ATT_QUERIES;
    for (int i = threadIdx.x; i < ATT_QUERIES * hd; i += ATT_THREADS) {
        int qi = i / hd;
        q_tile[i] = qi < n_q ? a.q[((size_t)(t0 + qi) * a.n_heads + h) * hd + (i - qi * hd)] : 0.0f;
    }
    if (!a.seg_row) {
        attend<D32>(a, q_tile, kv_tile, w_tile, 0, n_q, a.pos0 + t0, key_rows{INT_MAX, 0, a.kv_ring}, h, dtype);
        return;
    }
    // packed: the block's queries one segment at a time, each as it runs alone after the prefix
    for (int q_begin = 0, q_end; q_begin < n_q; q_begin = q_end) {
        int seg = a.seg_row[t0 + q_begin];
        for (q_end = q_begin + 1; q_end < n_q && a.seg_row[t0 + q_end] == seg; q_end++) {
        }
        attend<D32>(a, q_tile, kv_tile, w_tile, q_begin, q_end, a.shared_len + a.pos0 + t0 - seg,
                    key_rows{a.shared_len, seg - a.shared_len, 0}, h, dtype);
    }
}

// ---- prefill attention for head_dim <= 128: register tiles -----------------------------------
// attend()'s numbers, bit for bit, at several times its speed: attend's lanes each hold one
// key and re-read every query from shared memory for each of its eight multiply-adds, so the
// kernel was bound by shared memory (5 TFLOP/s on an H100). Here 256 threads take 64 queries
// over chunks of 64 keys (two tiles), each thread a register tile of pairs:
//  - scores: 4 queries x 4 keys a thread. key_scores' eight partial sums (d = 8 d8 + r) are
//    eight independent fmaf chains over d8; a thread runs them one r at a time and folds each
//    into key_scores' tree as it completes, so a pair needs four registers, not eight. Queries
//    and keys sit in shared memory as [row][r][d8] (d8 padded with zeros to 4 D32: fmaf(0, 0, p)
//    is p but for p = -0, and a score's zero sign moves neither the max nor a weight), so a
//    chain step reads float4s.
//  - weights: a warp per query as attend(): lane j scores key j of a tile, the same warp tree of
//    doubles gives the tile's sum, the tile sums are added in tile order.
//  - values: 4 queries x 2 D32 dimensions a thread, each tile's share from zero in position
//    order, then added to acc. A tile without the query's keys adds +0 (acc and a share are
//    never -0: they start at +0 and every step rounds to nearest), the same as attend's skip.
// Chunks inside every query's range run without masks; the others (the diagonal, a window's
// edge) skip each pair outside its query's range, as attend does, so a non-finite value the
// query does not read never reaches it.
#define ATT_RT_THREADS 256
#define ATT_RT_QUERIES 64
#define ATT_RT_KEYS 64 // per chunk: two tiles of ATT_KEYS
#define ATT_RT_MAX_D32 4
#ifndef ATT_RT_MIN_BLOCKS // a multiprocessor's: 1 lets a thread hold its tiles in registers (248 at D32 2)
#define ATT_RT_MIN_BLOCKS 1
#endif

// Floats a row of the query, key or value tiles takes: 32 D32 values and 4 of padding, so eight
// rows' float4 reads at one offset fall in distinct banks.
#define ATT_RT_STRIDE(D32) (32 * (D32) + 4)
#define ATT_RT_W_STRIDE (ATT_RT_KEYS + 4)

#define ATT_RT_SLOT_FLOATS (ATT_RT_QUERIES * ATT_RT_W_STRIDE) // a chunk's scores, then weights

static size_t attention_rt_smem_bytes(int d32, int n_slots)
{
    // queries and one chunk of keys or values [ATT_RT_QUERIES or _KEYS, stride]; the two key
    // halves' maxima and 1 / sum per query; rt_slots' three ints per query; n_slots chunk slots
    return sizeof(float) * ((size_t)(ATT_RT_QUERIES + ATT_RT_KEYS) * ATT_RT_STRIDE(d32) + 6 * ATT_RT_QUERIES +
                            (size_t)n_slots * ATT_RT_SLOT_FLOATS);
}

// Rows s0 .. s0 + rows - 1 of a [., hd] float32 source into a tile of stride ATT_RT_STRIDE(D32):
// as [r][d8] (is_split, queries and keys) or as they are (values); zeros where `has_row` says no
// row and in the padding.
template <int D32, bool IS_SPLIT, typename HasRow, typename RowOf>
__device__ __forceinline__ void load_rt_tile(float *tile, int rows, int hd, HasRow has_row, RowOf row_of)
{
    constexpr int F4 = 8 * D32, STRIDE = ATT_RT_STRIDE(D32), D8P = 4 * D32; // float4s a row
    for (int i = threadIdx.x; i < rows * F4; i += ATT_RT_THREADS) {
        int j = i / F4, d = 4 * (i - j * F4);
        float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (d < hd && has_row(j))
            v = __ldg((const float4 *)(row_of(j) + d));
        float *at = tile + j * STRIDE;
        if (IS_SPLIT) { // d = 8 d8 + r, r = 0..3 or 4..7
            at += (d & 7) * D8P + (d >> 3);
            at[0] = v.x, at[D8P] = v.y, at[2 * D8P] = v.z, at[3 * D8P] = v.w;
        } else
            *(float4 *)(at + d) = v;
    }
}

// The scores of queries q_row + 4 i and keys k_row + 8 j (i, j < 4) of split tiles: key_scores'
// arithmetic, one partial sum r at a time.
template <int D32>
__device__ __forceinline__ void rt_scores(const float *q_t, const float *k_t, int q_row, int k_row, float scale,
                                          float score[4][4])
{
    constexpr int STRIDE = ATT_RT_STRIDE(D32), D8P = 4 * D32;
    float a[4][4], b[4][4], c[4][4];
#pragma unroll
    for (int r = 0; r < 8; r++) {
        float p[4][4] = {};
#pragma unroll
        for (int c4 = 0; c4 < D32; c4++) {
            float4 qv[4], kv[4];
#pragma unroll
            for (int i = 0; i < 4; i++) {
                qv[i] = *(const float4 *)(q_t + (q_row + 4 * i) * STRIDE + r * D8P + 4 * c4);
                kv[i] = *(const float4 *)(k_t + (k_row + 8 * i) * STRIDE + r * D8P + 4 * c4);
            }
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    p[i][j] = fmaf(qv[i].x, kv[j].x, p[i][j]);
                    p[i][j] = fmaf(qv[i].y, kv[j].y, p[i][j]);
                    p[i][j] = fmaf(qv[i].z, kv[j].z, p[i][j]);
                    p[i][j] = fmaf(qv[i].w, kv[j].w, p[i][j]);
                }
        }
        // (((p0 + p1) + (p2 + p3)) + ((p4 + p5) + (p6 + p7))) * scale, as each p completes
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int j = 0; j < 4; j++) {
                float v = p[i][j];
                if (r == 0)
                    a[i][j] = v;
                else if (r == 1)
                    a[i][j] = a[i][j] + v;
                else if (r == 2)
                    b[i][j] = v;
                else if (r == 3)
                    a[i][j] = a[i][j] + (b[i][j] + v);
                else if (r == 4)
                    b[i][j] = v;
                else if (r == 5)
                    b[i][j] = b[i][j] + v;
                else if (r == 6)
                    c[i][j] = v;
                else
                    score[i][j] = (a[i][j] + (b[i][j] + (c[i][j] + v))) * scale;
            }
    }
}

// One tile's values: part[i][.] = sum over the tile's keys j, in order, of w[i][j] v[j][.], from
// zero, for queries w_row + i; the dimensions 4 dg + 64 m. MASKED: only keys s0 + j in
// [first[i], last[i]].
template <int D32, bool MASKED>
__device__ __forceinline__ void rt_values(const float *w_t, const float *v_t, int w_row, int dg, int s0,
                                          const int first[4], const int last[4], float acc[4][2 * D32])
{
    constexpr int STRIDE = ATT_RT_STRIDE(D32), NV = D32 / 2; // float4s of values a thread
    float part[4][2 * D32] = {};
#pragma unroll 2
    for (int j = 0; j < ATT_KEYS; j += 4) {
        float4 w4[4];
#pragma unroll
        for (int i = 0; i < 4; i++)
            w4[i] = *(const float4 *)(w_t + (w_row + i) * ATT_RT_W_STRIDE + j);
#pragma unroll
        for (int u = 0; u < 4; u++) {
            float v[2 * D32];
#pragma unroll
            for (int m = 0; m < NV; m++) {
                float4 f = *(const float4 *)(v_t + (j + u) * STRIDE + 4 * dg + 64 * m);
                v[4 * m] = f.x, v[4 * m + 1] = f.y, v[4 * m + 2] = f.z, v[4 * m + 3] = f.w;
            }
#pragma unroll
            for (int i = 0; i < 4; i++) {
                float w = u == 0 ? w4[i].x : u == 1 ? w4[i].y : u == 2 ? w4[i].z : w4[i].w;
                if (!MASKED || (s0 + j + u >= first[i] && s0 + j + u <= last[i]))
#pragma unroll
                    for (int d = 0; d < 2 * D32; d++)
                        part[i][d] = fmaf(w, v[d], part[i][d]);
            }
        }
    }
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int d = 0; d < 2 * D32; d++)
            acc[i][d] += part[i][d];
}

// One phase of a block's work: the positions [clip_lo, clip_hi] for the query slots
// [q_begin, q_end), their keys where `rows` says. An unpacked call is one phase over every slot;
// a packed one first reads the shared prefix's whole tiles for every slot at once (the same rows
// whichever segment asks), then each segment's slots the rest, their own tokens among them: the
// tiles of every query still come in position order.
struct rt_phase {
    int clip_lo, clip_hi, q_begin, q_end;
    key_rows rows;
};

// The block's bookkeeping in shared memory: per query slot its position (-1: no query), the
// first position it reads and its segment's first row (packed).
struct rt_slots {
    int *pos, *first, *seg;
    __device__ __forceinline__ void range(const rt_phase &ph, int qi, int &lo, int &hi) const
    {
        lo = max(first[qi], ph.clip_lo);
        hi = qi >= ph.q_begin && qi < ph.q_end ? min(pos[qi], ph.clip_hi) : -1;
    }
};

// attend()'s contract for the block's queries (already split in q_t) in register tiles, phase
// by phase, in two passes: the maxima, then the weights and values. A chunk's scores from the
// first pass are kept for the second in one of n_slots - 1 slots of shared memory while they
// last; the last slot holds the scores of any further chunk, computed again.
template <int D32>
__device__ void attend_rt(const qe_attention_args &a, const float *q_t, float *kv_t, float *slots, int n_slots,
                          float *maxima, float *inv_sums, rt_slots qs, int n_q, int h, int dtype)
{
    int hd = a.head_dim, kvh = h / (a.n_heads / a.n_kv_heads), lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    size_t kv_stride = (size_t)a.n_kv_heads * hd;
    const float *k0 = a.k_cache + (size_t)kvh * hd, *v0 = a.v_cache + (size_t)kvh * hd;
    int shared_end = a.seg_row ? a.shared_len - a.shared_len % ATT_KEYS : 0; // the prefix's whole tiles
    auto for_each_phase = [&](auto &&run) {
        if (!a.seg_row) {
            run(rt_phase{0, INT_MAX, 0, n_q, key_rows{INT_MAX, 0, a.kv_ring}});
            return;
        }
        if (shared_end > 0)
            run(rt_phase{0, shared_end - 1, 0, n_q, key_rows{INT_MAX, 0, 0}});
        for (int q_begin = 0, q_end; q_begin < n_q; q_begin = q_end) {
            for (q_end = q_begin + 1; q_end < n_q && qs.seg[q_end] == qs.seg[q_begin]; q_end++) {
            }
            run(rt_phase{shared_end, INT_MAX, q_begin, q_end, key_rows{a.shared_len, qs.seg[q_begin] - a.shared_len, 0}});
        }
    };
    // scores: warp w holds queries 16 (w % 4) + (lane / 8) + 4 i and keys 32 (w / 4) + lane % 8 + 8 j of a chunk;
    // weights: warp w queries 8 w .. 8 w + 7, lane a key; values: queries 4 (t / 16) + i, dims 4 (t % 16) + 64 m
    int s_q = 16 * (warp & 3) + (lane >> 3), s_k = 32 * (warp >> 2) + (lane & 7);
    int v_row = 4 * (threadIdx.x >> 4), dg = threadIdx.x & 15;
    float max_score[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    double sum = 0; // lane u < 8: query 8 warp + u's, the tile sums in tile order
    float acc[4][2 * D32] = {};

    for (int pass = 0; pass < 2; pass++) {
        int chunk = 0; // across the phases: the kept slot of the first n_slots - 1
        for_each_phase([&](const rt_phase &ph) {
            // the keys any slot of the phase reads, [lo, hi]; those all read, [full_lo, full_hi]
            int lo = INT_MAX, hi = -1, full_lo = 0, full_hi = INT_MAX;
            for (int qi = ph.q_begin; qi < ph.q_end; qi++) {
                int first, last;
                qs.range(ph, qi, first, last);
                if (first <= last)
                    lo = min(lo, first), hi = max(hi, last);
                full_lo = max(full_lo, first), full_hi = min(full_hi, last);
            }
            int s_first[4], s_last[4], v_first[4], v_last[4];
#pragma unroll
            for (int i = 0; i < 4; i++) {
                qs.range(ph, s_q + 4 * i, s_first[i], s_last[i]);
                qs.range(ph, v_row + i, v_first[i], v_last[i]);
            }
            auto load_keys = [&](int s0, const float *base, bool is_split) {
                auto has_row = [&](int j) { return s0 + j >= lo && s0 + j <= hi; };
                auto row_of = [&](int j) { return base + ph.rows.of(s0 + j) * kv_stride; };
                if (is_split)
                    load_rt_tile<D32, true>(kv_t, ATT_RT_KEYS, hd, has_row, row_of);
                else
                    load_rt_tile<D32, false>(kv_t, ATT_RT_KEYS, hd, has_row, row_of);
            };
            auto score_chunk = [&](int s0, float *sw, float score[4][4]) {
                __syncthreads(); // the previous chunk is consumed
                load_keys(s0, k0, true);
                __syncthreads();
                rt_scores<D32>(q_t, kv_t, s_q, s_k, a.scale, score);
                if (sw)
#pragma unroll
                    for (int i = 0; i < 4; i++)
#pragma unroll
                        for (int j = 0; j < 4; j++)
                            sw[(s_q + 4 * i) * ATT_RT_W_STRIDE + s_k + 8 * j] = score[i][j];
            };
            for (int s0 = lo - lo % ATT_KEYS; s0 <= hi; s0 += ATT_RT_KEYS, chunk++) {
                bool is_kept = chunk < n_slots - 1;
                float *sw = slots + (size_t)(is_kept ? chunk : n_slots - 1) * ATT_RT_SLOT_FLOATS;
                float score[4][4];
                if (pass == 0) {
                    score_chunk(s0, is_kept ? sw : NULL, score);
#pragma unroll
                    for (int i = 0; i < 4; i++)
#pragma unroll
                        for (int j = 0; j < 4; j++) {
                            int s = s0 + s_k + 8 * j;
                            if (s >= s_first[i] && s <= s_last[i])
                                max_score[i] = fmaxf(max_score[i], score[i][j]);
                        }
                    continue;
                }
                if (!is_kept)
                    score_chunk(s0, sw, score);
                __syncthreads(); // the scores are in; the previous chunk's values are consumed
                load_keys(s0, v0, false);
#pragma unroll
                for (int u = 0; u < 8; u++) {
                    int qi = 8 * warp + u, first, last;
                    qs.range(ph, qi, first, last);
                    float m = fmaxf(maxima[qi], maxima[ATT_RT_QUERIES + qi]);
#pragma unroll
                    for (int t = 0; t < ATT_RT_KEYS / ATT_KEYS; t++) {
                        int j = ATT_KEYS * t + lane, s = s0 + j;
                        float w = s >= first && s <= last ? expf(sw[qi * ATT_RT_W_STRIDE + j] - m) : 0.0f;
                        sw[qi * ATT_RT_W_STRIDE + j] = w;
                        double tile_sum = warp_sum((double)w);
                        if (lane == u)
                            sum += tile_sum;
                    }
                }
                __syncthreads();
                bool is_full = s0 >= full_lo && s0 + ATT_RT_KEYS - 1 <= full_hi;
#pragma unroll
                for (int t = 0; t < ATT_RT_KEYS / ATT_KEYS; t++) {
                    const float *w_t = sw + ATT_KEYS * t, *v_t = kv_t + ATT_KEYS * t * ATT_RT_STRIDE(D32);
                    if (is_full)
                        rt_values<D32, false>(w_t, v_t, v_row, dg, s0 + ATT_KEYS * t, v_first, v_last, acc);
                    else
                        rt_values<D32, true>(w_t, v_t, v_row, dg, s0 + ATT_KEYS * t, v_first, v_last, acc);
                }
            }
        });
        if (pass == 0)
#pragma unroll
            for (int i = 0; i < 4; i++) {
                for (int o = 1; o < 8; o <<= 1)
                    max_score[i] = fmaxf(max_score[i], __shfl_xor_sync(0xffffffffu, max_score[i], o));
                if ((lane & 7) == 0)
                    maxima[(warp >> 2) * ATT_RT_QUERIES + s_q + 4 * i] = max_score[i];
            }
    }
    if (lane < 8)
        inv_sums[8 * warp + lane] = (float)(1.0 / sum);
    __syncthreads();
    int t0 = blockIdx.x * ATT_RT_QUERIES;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        int qi = v_row + i;
        if (qi >= n_q)
            continue;
        float inv_sum = inv_sums[qi], *out = a.out + ((size_t)(t0 + qi) * a.n_heads + h) * hd;
#pragma unroll
        for (int m = 0; m < D32 / 2; m++) {
            int d = 4 * dg + 64 * m;
            if (d < hd)
                *(float4 *)(out + d) =
                    make_float4(round_to(acc[i][4 * m] * inv_sum, dtype), round_to(acc[i][4 * m + 1] * inv_sum, dtype),
                                round_to(acc[i][4 * m + 2] * inv_sum, dtype),
                                round_to(acc[i][4 * m + 3] * inv_sum, dtype));
        }
    }
}

template <int D32> // head_dim <= 32 * D32, D32 2 or 4
__global__ void __launch_bounds__(ATT_RT_THREADS, ATT_RT_MIN_BLOCKS)
    attention_rt_kernel(qe_attention_args a, int dtype, int n_slots)
{
    grid_enter();
    constexpr int Q = ATT_RT_QUERIES;
    float *q_t = dynamic_smem(), *kv_t = q_t + Q * ATT_RT_STRIDE(D32), *maxima = kv_t + ATT_RT_KEYS * ATT_RT_STRIDE(D32);
    float *inv_sums = maxima + 2 * Q;
    rt_slots qs = {(int *)(inv_sums + Q), (int *)(inv_sums + 2 * Q), (int *)(inv_sums + 3 * Q)};
    float *slots = inv_sums + 4 * Q;
    int t0 = blockIdx.x * Q, h = blockIdx.y, hd = a.head_dim;
    int n_q = a.n_tok - t0 < Q ? a.n_tok - t0 : Q;
    load_rt_tile<D32, true>(
        q_t, Q, hd, [&](int qi) { return qi < n_q; },
        [&](int qi) { return a.q + ((size_t)(t0 + qi) * a.n_heads + h) * hd; });
    for (int qi = threadIdx.x; qi < Q; qi += ATT_RT_THREADS) {
        int seg = a.seg_row && qi < n_q ? a.seg_row[t0 + qi] : 0;
        int pos = qi >= n_q ? -1 : a.seg_row ? a.shared_len + a.pos0 + t0 + qi - seg : a.pos0 + t0 + qi;
        qs.pos[qi] = pos, qs.seg[qi] = seg;
        qs.first[qi] = a.window > 0 && pos - a.window + 1 > 0 ? pos - a.window + 1 : 0;
    }
    __syncthreads();
    attend_rt<D32>(a, q_t, kv_t, slots, n_slots, maxima, inv_sums, qs, n_q, h, dtype);
}

// Decoding: one block per (query, head) whose warps take the query's tiles round-robin, so a
// long context is read by ATT_DECODE_WARPS warps at once instead of one tile at a time by one
// block of 16 queries. The numbers are the tiled kernel's: each (query, key) score by
// key_scores, the maximum over the same keys, a tile's weights summed by the same warp tree and
// its values from zero in position order; the tile sums and shares are added in tile order, a
// round of ATT_DECODE_WARPS tiles at a time through shared memory. Unpacked calls only.
#define ATT_DECODE_WARPS 16 // a head's tiles at once: a decode step has n_heads blocks, fewer than SMs
#define ATT_DECODE_MAX_TOKENS 8
#define ATT_DECODE_KEPT 4 // rounds of scores a lane keeps between the max and the weights
#define ATT_DECODE_SLOTS (ATT_MAX_HEAD_DIM / (ATT_DECODE_WARPS * 32)) // of acc per thread

// Value rows a warp loads before it sums them: a whole tile where 64 registers hold it (every
// load of the tile in flight at once), at least 4.
__host__ __device__ constexpr int att_decode_rows(int d32)
{
    return 64 / d32 > ATT_KEYS ? ATT_KEYS : 64 / d32 < 4 ? 4 : 64 / d32;
}

static size_t attention_decode_smem_bytes(int head_dim)
{
    // the query [hd], each warp's tile share [ATT_DECODE_WARPS, hd], the warps' maxima, the new
    // key rotated (attention_rows_kernel with rope tables) [hd]
    return sizeof(float) * ((size_t)head_dim + (size_t)ATT_DECODE_WARPS * head_dim + ATT_DECODE_WARPS + head_dim);
}

// Query t of a, head h: the body of both decode kernels. new_k, new_v (or NULL): the key and value
// rows [n_kv_heads * head_dim] of the query's own position, read there instead of from the cache
// (attention_rows_kernel writes them into it meanwhile). cos_row, sin_row (or NULL) [head_dim /
// 2]: the query and the new key are rotated with them first, as the rope kernel does, in shared
// memory (new_k itself is left as it is). Returns the head's key row of the position as the query
// used it: new_k's row, or its rotation in shared memory.
template <int D32>
__device__ __forceinline__ const float *attention_decode_query(const qe_attention_args &a, int t, int h, int dtype,
                                                               const float *new_k = nullptr,
                                                               const float *new_v = nullptr,
                                                               const float *cos_row = nullptr,
                                                               const float *sin_row = nullptr)
{
    float *dec_smem = dynamic_smem();
    __shared__ double tile_sums[ATT_DECODE_WARPS];
    int hd = a.head_dim, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    float *q = dec_smem, *shares = q + hd, *maxima = shares + ATT_DECODE_WARPS * hd,
          *rotated_k = maxima + ATT_DECODE_WARPS;
    int kvh = h / (a.n_heads / a.n_kv_heads), pos = a.pos0 + t;
    const float *q_row = a.q + ((size_t)t * a.n_heads + h) * hd;
    const float *new_key = new_k ? new_k + (size_t)kvh * hd : nullptr;
    if (cos_row) {
        for (int i = threadIdx.x; i < hd / 2; i += blockDim.x) {
            rope_pair(q_row, q, i, hd / 2, cos_row, sin_row, dtype);
            rope_pair(new_key, rotated_k, i, hd / 2, cos_row, sin_row, dtype);
        }
        new_key = rotated_k;
    } else {
        for (int d = threadIdx.x; d < hd; d += blockDim.x)
            q[d] = q_row[d];
    }
    int first = a.window > 0 && pos - a.window + 1 > 0 ? pos - a.window + 1 : 0;
    int tile_lo = first - first % ATT_KEYS, n_tiles = (pos - tile_lo) / ATT_KEYS + 1;
    size_t kv_stride = (size_t)a.n_kv_heads * hd;
    const float *k0 = a.k_cache + (size_t)kvh * hd, *v0 = a.v_cache + (size_t)kvh * hd;
    auto key_at = [&](int s) { return new_key && s == pos ? new_key : k0 + kv_row(s, a.kv_ring) * kv_stride; };
    auto value_at = [&](int s) { return new_v && s == pos ? new_v + (size_t)kvh * hd : v0 + kv_row(s, a.kv_ring) * kv_stride; };
    __syncthreads();

    // the lane's scores of its first ATT_DECODE_KEPT rounds, kept for the weights (keys read once
    // for contexts up to ATT_DECODE_KEPT * ATT_DECODE_WARPS * ATT_KEYS)
    float kept[ATT_DECODE_KEPT];
    float max_score = -INFINITY;
#pragma unroll
    for (int r = 0; r < ATT_DECODE_KEPT; r++)
        kept[r] = -INFINITY;
    for (int round = 0, tile = warp; tile < n_tiles; round++, tile += ATT_DECODE_WARPS) {
        int s = tile_lo + tile * ATT_KEYS + lane;
        if (s >= first && s <= pos) {
            float score;
            key_scores<1>(q, 0, (const float4 *)key_at(s), hd, a.scale, &score);
            max_score = fmaxf(max_score, score);
#pragma unroll
            for (int r = 0; r < ATT_DECODE_KEPT; r++)
                if (r == round)
                    kept[r] = score;
        }
    }
    for (int o = 16; o > 0; o >>= 1)
        max_score = fmaxf(max_score, __shfl_xor_sync(0xffffffffu, max_score, o));
    if (lane == 0)
        maxima[warp] = max_score;
    __syncthreads();
    for (int w = 0; w < ATT_DECODE_WARPS; w++)
        max_score = fmaxf(max_score, maxima[w]);

    double sum = 0;                   // thread 0: the tile sums in tile order
    float acc[ATT_DECODE_SLOTS] = {}; // element threadIdx.x + 256 m: the tile shares in tile order
    for (int round = 0; round < n_tiles; round += ATT_DECODE_WARPS) {
        int tile = round + warp, s0 = tile_lo + tile * ATT_KEYS;
        if (tile < n_tiles) {
            int s = s0 + lane;
            bool reads = s >= first && s <= pos;
            float w = 0.0f;
            if (reads) {
                float score = kept[0];
#pragma unroll
                for (int r = 1; r < ATT_DECODE_KEPT; r++)
                    if (r * ATT_DECODE_WARPS == round)
                        score = kept[r];
                if (round >= ATT_DECODE_KEPT * ATT_DECODE_WARPS)
                    key_scores<1>(q, 0, (const float4 *)key_at(s), hd, a.scale, &score);
                w = expf(score - max_score);
            }
            double tile_sum = warp_sum((double)w);
            if (lane == 0)
                tile_sums[warp] = tile_sum;
            int j0 = first > s0 ? first - s0 : 0, j1 = pos - s0 < ATT_KEYS - 1 ? pos - s0 : ATT_KEYS - 1;
            float share[D32] = {};
            // ROWS value rows in flight at a time (their loads first, the sums in order)
            constexpr int ROWS = att_decode_rows(D32);
            for (int jb = j0; jb <= j1; jb += ROWS) {
                float v[ROWS][D32];
#pragma unroll
                for (int u = 0; u < ROWS; u++) {
                    const float *row = value_at(min(jb + u, j1) + s0);
#pragma unroll
                    for (int m = 0; m < D32; m++)
                        v[u][m] = lane + 32 * m < hd ? row[lane + 32 * m] : 0.0f;
                }
#pragma unroll
                for (int u = 0; u < ROWS; u++) {
                    float wj = __shfl_sync(0xffffffffu, w, (jb + u) & 31);
                    if (jb + u <= j1)
#pragma unroll
                        for (int m = 0; m < D32; m++)
                            if (lane + 32 * m < hd)
                                share[m] = fmaf(wj, v[u][m], share[m]);
                }
            }
#pragma unroll
            for (int m = 0; m < D32; m++)
                if (lane + 32 * m < hd)
                    shares[warp * hd + lane + 32 * m] = share[m];
        }
        __syncthreads();
        int n_in_round = n_tiles - round < ATT_DECODE_WARPS ? n_tiles - round : ATT_DECODE_WARPS;
        if (threadIdx.x == 0)
            for (int i = 0; i < n_in_round; i++)
                sum += tile_sums[i];
#pragma unroll
        for (int m = 0; m < ATT_DECODE_SLOTS; m++) {
            int d = threadIdx.x + m * ATT_DECODE_WARPS * 32;
            if (d < hd)
                for (int i = 0; i < n_in_round; i++)
                    acc[m] += shares[i * hd + d];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0)
        tile_sums[0] = sum;
    __syncthreads();
    float inv_sum = (float)(1.0 / tile_sums[0]);
    float *out = a.out + ((size_t)t * a.n_heads + h) * hd;
#pragma unroll
    for (int m = 0; m < ATT_DECODE_SLOTS; m++) {
        int d = threadIdx.x + m * ATT_DECODE_WARPS * 32;
        if (d < hd)
            out[d] = round_to(acc[m] * inv_sum, dtype);
    }
    return new_key;
}

// The cached key and value rows query t of head h reads (positions below its own), asked into L2
// before grid_enter, so that they stream in while the kernel before ends: the kernels before it
// in the step write the position's own row or rows past it, never these (a prefetch is a hint
// either way). The heads of a group read the same rows and each asks for its share of them; past
// ATT_DECODE_PREFETCH positions (the first rounds' tiles) a long context's rows are left to the
// rounds that read them, so that the prologue stays short and L2 holds what was asked.
#define ATT_DECODE_PREFETCH 4096
__device__ __forceinline__ void prefetch_decode_rows(const qe_attention_args &a, int t, int h)
{
    int hd = a.head_dim, group = a.n_heads / a.n_kv_heads, kvh = h / group, pos = a.pos0 + t;
    int first = a.window > 0 && pos - a.window + 1 > 0 ? pos - a.window + 1 : 0;
    int n_rows = pos - first < ATT_DECODE_PREFETCH ? pos - first : ATT_DECODE_PREFETCH;
    int lines = (hd + 31) / 32; // of 128 bytes, a row
    size_t kv_stride = (size_t)a.n_kv_heads * hd;
    for (int i = threadIdx.x + h % group * blockDim.x; i < n_rows * lines; i += group * blockDim.x) {
        size_t at = kv_row(first + i / lines, a.kv_ring) * kv_stride + (size_t)kvh * hd + 32 * (i % lines);
        prefetch_l2(a.k_cache + at);
        prefetch_l2(a.v_cache + at);
    }
}

template <int D32> // head_dim <= 32 * D32
__global__ void __launch_bounds__(ATT_DECODE_WARPS * 32) attention_decode_kernel(qe_attention_args a, int dtype)
{
    prefetch_decode_rows(a, blockIdx.x, blockIdx.y);
    grid_enter();
    attention_decode_query<D32>(a, blockIdx.x, blockIdx.y, dtype);
}

// The decode step of several sequences, each one token in its own cache (attend_rows): what
// differs between their attention calls travels in the argument, ATT_ROWS_MAX at a time.
#define ATT_ROWS_MAX 64
struct attention_row {
    const float *q, *k_cache, *v_cache;
    float *out;
    const int32_t *pos_buf; // the position in device memory, or NULL: pos0 (a recorded step reads it there)
    int pos0, kv_ring;
};

__device__ __forceinline__ int row_position(const attention_row &r) { return r.pos_buf ? *r.pos_buf : r.pos0; }
struct attention_rows {
    qe_attention_args common; // heads, head_dim, window, scale: the same for every sequence
    attention_row row[ATT_ROWS_MAX];
    const float *k_rows, *v_rows; // [n, n_kv_heads * head_dim]: the new key and value of each
    const float *cos_rows, *sin_rows; // [n, head_dim / 2]: each one's rope tables, or NULL: none
};

// Block (i, h): sequence i's query of head h, reading its own key and value from k_rows and
// v_rows (the query and key rotated first where the rows have rope tables); the group's last
// head then writes them into the cache row of the position, which no block of the launch reads
// (a sliding-window ring holds more rows than the window: the row's old position is out of every
// query's reach). One launch where the rope and a copy of the rows first took two more.
template <int D32>
__global__ void __launch_bounds__(ATT_DECODE_WARPS * 32) attention_rows_kernel(attention_rows rows, int dtype)
{
    const attention_row &r = rows.row[blockIdx.x];
    qe_attention_args a = rows.common;
    a.q = r.q, a.k_cache = r.k_cache, a.v_cache = r.v_cache, a.out = r.out, a.pos0 = row_position(r), a.kv_ring = r.kv_ring;
    // the position was uploaded before the step's first kernel, the rows written by earlier steps
    prefetch_decode_rows(a, 0, blockIdx.y);
    grid_enter();
    size_t kvd = (size_t)a.n_kv_heads * a.head_dim, half = a.head_dim / 2;
    const float *new_k = rows.k_rows + blockIdx.x * kvd, *new_v = rows.v_rows + blockIdx.x * kvd;
    const float *cos_row = rows.cos_rows ? rows.cos_rows + blockIdx.x * half : nullptr;
    const float *sin_row = rows.sin_rows ? rows.sin_rows + blockIdx.x * half : nullptr;
    const float *key = attention_decode_query<D32>(a, 0, blockIdx.y, dtype, new_k, new_v, cos_row, sin_row);
    int group = a.n_heads / a.n_kv_heads, kvh = blockIdx.y / group;
    if (blockIdx.y % group != group - 1)
        return;
    size_t at = kv_row(a.pos0, a.kv_ring) * kvd + (size_t)kvh * a.head_dim;
    for (int d = threadIdx.x; d < a.head_dim; d += blockDim.x) {
        ((float *)a.k_cache)[at + d] = key[d];
        ((float *)a.v_cache)[at + d] = new_v[(size_t)kvh * a.head_dim + d];
    }
}
