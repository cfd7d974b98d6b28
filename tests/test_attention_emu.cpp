/* tests/test_attention_emu.cpp — the CUDA attention kernels (engine/cuda/attention.cuh) run on the
 * CPU through a small emulation of the CUDA thread model, checked against each other bit for bit:
 * the register-tiled prefill kernel, the tiled one it replaces for head_dim <= 128, the decode
 * kernel (a query alone), packed segments against each segment alone, several sequences' decode
 * step in one launch against the decode kernel. The GPU tests check the
 * same on a GPU (tests/gpu); this runs everywhere, so a kernel change is checked before a GPU is
 * at hand. expf here is the host's, not CUDA's: the kernels are compared with each other, never
 * with the GPU's bits. The emulation of CUDA's threads is tests/cuda_emu.h's. */
extern "C" {
#include "backend.h"
#include "dtype.h"
}

#include "cuda_emu.h"

#include "cuda/kernel_math.cuh"
#include "cuda/attention.cuh"

template <int D32> static void tiled(const qe_attention_args &a, int dtype)
{
    launch(attention_kernel<D32>, (unsigned)((a.n_tok + ATT_QUERIES - 1) / ATT_QUERIES), (unsigned)a.n_heads,
           ATT_THREADS, attention_smem_bytes(a.head_dim), a, dtype);
}
/* n_slots: chunks whose scores are kept between the passes, plus one (1: none kept) */
template <int D32> static void tiled_rt(const qe_attention_args &a, int dtype, int n_slots)
{
    launch(attention_rt_kernel<D32>, (unsigned)((a.n_tok + ATT_RT_QUERIES - 1) / ATT_RT_QUERIES),
           (unsigned)a.n_heads, ATT_RT_THREADS, attention_rt_smem_bytes(D32, n_slots), a, dtype, n_slots);
}
template <int D32> static void decode(const qe_attention_args &a, int dtype)
{
    launch(attention_decode_kernel<D32>, (unsigned)a.n_tok, (unsigned)a.n_heads, ATT_DECODE_WARPS * 32,
           attention_decode_smem_bytes(a.head_dim), a, dtype);
}

/* ---- data ----------------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static std::vector<float> random_rounded(size_t n, int dtype, float scale)
{
    std::vector<float> v(n);
    for (float &x : v)
        x = round_to(check_uniform(&rng_state) * scale, dtype);
    return v;
}

/* One head_dim: a call of n_tok queries after pos0 cached positions through the tiled kernel and
 * the register-tiled one (the same bits), then runs of its queries alone. */
template <int D32> static void check_unpacked(int n_tok, int pos0, int n_heads, int n_kv_heads, int hd, int window,
                                              int dtype)
{
    int n_pos = pos0 + n_tok;
    size_t row = (size_t)n_heads * hd, kv_row_floats = (size_t)n_kv_heads * hd;
    std::vector<float> q = random_rounded(n_tok * row, dtype, 2.0f), k = random_rounded(n_pos * kv_row_floats, dtype, 2.0f),
                       v = random_rounded(n_pos * kv_row_floats, dtype, 1.0f);
    std::vector<float> out_tiled(n_tok * row), out_rt(n_tok * row), out_part(n_tok * row);
    qe_attention_args a = {};
    a.q = q.data(), a.k_cache = k.data(), a.v_cache = v.data(), a.n_tok = n_tok, a.pos0 = pos0;
    a.n_heads = n_heads, a.n_kv_heads = n_kv_heads, a.head_dim = hd, a.window = window;
    a.scale = 1.0f / sqrtf((float)hd);
    a.out = out_tiled.data();
    tiled<D32>(a, dtype);
    bool same = true;
    for (int n_slots : {1, 3, 9}) { /* every chunk's scores computed twice, a few kept, all */
        a.out = out_rt.data();
        tiled_rt<D32>(a, dtype, n_slots);
        same &= memcmp(out_tiled.data(), out_rt.data(), out_rt.size() * sizeof(float)) == 0;
    }
    printf("attention %s: %d queries @%d, %d/%d heads, hd %d, window %d: register tiles %s the tiled kernel\n",
           qe_dtype_name((qe_dtype)dtype), n_tok, pos0, n_heads, n_kv_heads, hd, window, same ? "give the bits of" : "DIFFER from");
    CHECK(same);
    /* runs of the call alone (other blocks, other chunks around them; up to 8 tokens the decode kernel) */
    int n_same = 0, runs[][2] = {{1, n_tok - 1 < 15 ? n_tok - 1 : 15}, {n_tok / 2, n_tok - n_tok / 2}, {0, 1}, {1, 1},
                                 {n_tok / 2, 1}, {n_tok - 1, 1}};
    for (auto &run : runs) {
        qe_attention_args sub = a;
        sub.q = q.data() + run[0] * row, sub.out = out_part.data(), sub.n_tok = run[1], sub.pos0 = pos0 + run[0];
        if (run[1] <= ATT_DECODE_MAX_TOKENS)
            decode<D32>(sub, dtype);
        else
            tiled_rt<D32>(sub, dtype, 3);
        n_same += memcmp(out_part.data(), out_rt.data() + run[0] * row, run[1] * row * sizeof(float)) == 0;
    }
    printf("  runs alone (2 register-tiled, 4 decode): %d of 6 bit-identical\n", n_same);
    CHECK_INT_EQ(6, n_same);
}

/* Packed segments after a shared prefix (qe_attention_args): the call through both prefill
 * kernels, and each segment alone (unpacked, its own cache laid out as prefix + its tokens). */
template <int D32> static void check_packed(int shared_len, const std::vector<int> &seg_lens, int n_heads, int n_kv_heads,
                                            int hd, int window, int dtype)
{
    int n_tok = 0;
    for (int len : seg_lens)
        n_tok += len;
    int n_rows = shared_len + n_tok;
    size_t row = (size_t)n_heads * hd, kv_row_floats = (size_t)n_kv_heads * hd;
    std::vector<float> q = random_rounded(n_tok * row, dtype, 2.0f), k = random_rounded(n_rows * kv_row_floats, dtype, 2.0f),
                       v = random_rounded(n_rows * kv_row_floats, dtype, 1.0f);
    std::vector<int32_t> seg_row(n_tok);
    for (int s = 0, t = 0; s < (int)seg_lens.size(); s++)
        for (int i = 0; i < seg_lens[s]; i++, t++)
            seg_row[t] = shared_len + t - i;
    std::vector<float> out_tiled(n_tok * row), out_rt(n_tok * row);
    qe_attention_args a = {};
    a.q = q.data(), a.k_cache = k.data(), a.v_cache = v.data(), a.n_tok = n_tok, a.pos0 = shared_len;
    a.n_heads = n_heads, a.n_kv_heads = n_kv_heads, a.head_dim = hd, a.window = window;
    a.scale = 1.0f / sqrtf((float)hd), a.seg_row = seg_row.data(), a.shared_len = shared_len;
    a.out = out_tiled.data();
    tiled<D32>(a, dtype);
    bool same = true;
    for (int n_slots : {1, 3, 9}) {
        a.out = out_rt.data();
        tiled_rt<D32>(a, dtype, n_slots);
        same &= memcmp(out_tiled.data(), out_rt.data(), out_rt.size() * sizeof(float)) == 0;
    }
    int n_alone = 0;
    for (int s = 0, t0 = 0; s < (int)seg_lens.size(); t0 += seg_lens[s++]) {
        std::vector<float> k_alone(k.begin(), k.begin() + shared_len * kv_row_floats),
            v_alone(v.begin(), v.begin() + shared_len * kv_row_floats), out_alone(seg_lens[s] * row);
        k_alone.insert(k_alone.end(), k.begin() + seg_row[t0] * kv_row_floats,
                       k.begin() + (seg_row[t0] + seg_lens[s]) * kv_row_floats);
        v_alone.insert(v_alone.end(), v.begin() + seg_row[t0] * kv_row_floats,
                       v.begin() + (seg_row[t0] + seg_lens[s]) * kv_row_floats);
        qe_attention_args one = a;
        one.seg_row = NULL, one.shared_len = 0, one.pos0 = shared_len, one.n_tok = seg_lens[s];
        one.q = q.data() + t0 * row, one.k_cache = k_alone.data(), one.v_cache = v_alone.data();
        one.out = out_alone.data();
        if (seg_lens[s] <= ATT_DECODE_MAX_TOKENS)
            decode<D32>(one, dtype);
        else
            tiled_rt<D32>(one, dtype, 3);
        n_alone += memcmp(out_alone.data(), out_rt.data() + t0 * row, out_alone.size() * sizeof(float)) == 0;
    }
    printf("attention %s packed: %zu segments after %d shared, hd %d, window %d: register tiles %s the tiled "
           "kernel; %d of %zu segments alone bit-identical\n",
           qe_dtype_name((qe_dtype)dtype), seg_lens.size(), shared_len, hd, window, same ? "give the bits of" : "DIFFER from",
           n_alone, seg_lens.size());
    CHECK(same);
    CHECK_INT_EQ((int)seg_lens.size(), n_alone);
}

/* The decode step of n_seq sequences in one launch (attention_rows_kernel): each sequence's
 * output is the decode kernel's over its cache with its new key and value row written first, and
 * the launch leaves that row in the cache. The row starts as NaN and the group's last head writes
 * it after its own query; blocks run here in head order, so a block that read the row from the
 * cache would read NaN. ring > 0: the caches are rings of that many rows. rope: each sequence
 * has its own cos / sin rows, and the decode kernel gets the query and key rotated by rope_pair
 * (the rope kernel's arithmetic) beforehand, the cache the rotated key. */
template <int D32>
static void check_rows(int n_seq, int n_heads, int n_kv_heads, int hd, int window, int ring, bool rope, int dtype)
{
    size_t row = (size_t)n_heads * hd, kvd = (size_t)n_kv_heads * hd;
    int half = hd / 2;
    std::vector<float> q = random_rounded(n_seq * row, dtype, 2.0f), k_rows = random_rounded(n_seq * kvd, dtype, 2.0f),
                       v_rows = random_rounded(n_seq * kvd, dtype, 1.0f);
    std::vector<float> cos_rows = random_rounded(n_seq * half, QE_DTYPE_F32, 1.0f),
                       sin_rows = random_rounded(n_seq * half, QE_DTYPE_F32, 1.0f);
    std::vector<float> q_want = q, k_rows_want = k_rows;
    if (rope)
        for (int i = 0; i < n_seq; i++) {
            const float *c = cos_rows.data() + i * half, *s = sin_rows.data() + i * half;
            for (int h = 0; h < n_heads + n_kv_heads; h++) {
                float *x =
                    h < n_heads ? q_want.data() + i * row + h * hd : k_rows_want.data() + i * kvd + (h - n_heads) * hd;
                for (int j = 0; j < half; j++)
                    rope_pair(x, x, j, half, c, s, dtype);
            }
        }
    std::vector<float> out(n_seq * row), out_alone(row);
    std::vector<std::vector<float>> k(n_seq), v(n_seq);
    attention_rows rows = {};
    rows.common.n_heads = n_heads, rows.common.n_kv_heads = n_kv_heads, rows.common.head_dim = hd;
    rows.common.window = window, rows.common.scale = 1.0f / sqrtf((float)hd), rows.common.n_tok = 1;
    rows.k_rows = k_rows.data(), rows.v_rows = v_rows.data();
    if (rope)
        rows.cos_rows = cos_rows.data(), rows.sin_rows = sin_rows.data();
    std::vector<int> positions(n_seq);
    for (int i = 0; i < n_seq; i++) {
        positions[i] = (i * 37 + 3) % 90 + (i == n_seq - 1 ? 1100 : 0); /* one past the kept scores */
        int n_rows = ring > 0 ? ring : positions[i] + 1;
        k[i] = random_rounded(n_rows * kvd, dtype, 2.0f), v[i] = random_rounded(n_rows * kvd, dtype, 1.0f);
        size_t at = (size_t)(ring > 0 ? positions[i] % ring : positions[i]) * kvd;
        std::fill(k[i].begin() + at, k[i].begin() + at + kvd, NAN);
        std::fill(v[i].begin() + at, v[i].begin() + at + kvd, NAN);
        rows.row[i] = {q.data() + i * row, k[i].data(), v[i].data(), out.data() + i * row, NULL, positions[i], ring};
    }
    std::vector<std::vector<float>> k_want = k, v_want = v;
    launch(attention_rows_kernel<D32>, (unsigned)n_seq, (unsigned)n_heads, ATT_DECODE_WARPS * 32,
           attention_decode_smem_bytes(hd), rows, dtype);
    int n_same = 0, n_cached = 0;
    for (int i = 0; i < n_seq; i++) {
        size_t at = (size_t)(ring > 0 ? positions[i] % ring : positions[i]) * kvd;
        std::copy(k_rows_want.begin() + i * kvd, k_rows_want.begin() + (i + 1) * kvd, k_want[i].begin() + at);
        std::copy(v_rows.begin() + i * kvd, v_rows.begin() + (i + 1) * kvd, v_want[i].begin() + at);
        qe_attention_args one = rows.common;
        one.q = q_want.data() + i * row, one.k_cache = k_want[i].data(), one.v_cache = v_want[i].data();
        one.out = out_alone.data(), one.pos0 = positions[i], one.kv_ring = ring;
        decode<D32>(one, dtype);
        n_same += memcmp(out_alone.data(), out.data() + i * row, row * sizeof(float)) == 0;
        n_cached += k[i] == k_want[i] && v[i] == v_want[i];
    }
    printf("attention %s rows%s: %d sequences, %d/%d heads, hd %d, window %d, ring %d: %d bit-identical to the "
           "decode kernel after the rows' %scopy, %d caches holding their new row\n",
           qe_dtype_name((qe_dtype)dtype), rope ? " with rope" : "", n_seq, n_heads, n_kv_heads, hd, window, ring,
           n_same, rope ? "rope and " : "", n_cached);
    CHECK_INT_EQ(n_seq, n_same);
    CHECK_INT_EQ(n_seq, n_cached);
}

int main(void)
{
    int dtypes[] = {QE_DTYPE_F32, QE_DTYPE_BF16, QE_DTYPE_F16};
    for (int dtype : dtypes) {
        check_unpacked<2>(100, 7, 2, 1, 64, 0, dtype);
        check_unpacked<2>(70, 130, 2, 2, 40, 45, dtype); /* head_dim not a multiple of 32, a window */
        check_unpacked<4>(40, 61, 2, 1, 128, 0, dtype);
        check_unpacked<4>(20, 3, 1, 1, 96, 0, dtype);
        check_unpacked<2>(12, 1100, 1, 1, 64, 0, dtype); /* decode: kept scores for 1024 keys, the rest again */
        check_packed<2>(75, {40, 3, 90, 1, 20}, 2, 1, 64, 0, dtype);
        check_packed<4>(64, {65, 7}, 1, 1, 128, 50, dtype);
        check_packed<2>(300, {70, 2, 60}, 1, 1, 64, 100, dtype); /* the window inside the shared prefix */
        check_rows<2>(5, 4, 2, 64, 0, 0, false, dtype);
        check_rows<2>(3, 2, 2, 40, 0, 0, false, dtype);
        check_rows<4>(4, 4, 1, 128, 16, 19, false, dtype); /* rings of window + 3 rows, wrapped */
        check_rows<2>(5, 4, 2, 64, 0, 0, true, dtype);
        check_rows<4>(4, 4, 1, 128, 16, 19, true, dtype);
    }
    return check_summary();
}
