/* tests/cuda_emu.h — a small emulation of CUDA's thread model on the CPU, so that tests can run
 * the engine's CUDA kernels (the .cuh headers of engine/cuda) from their own source without a
 * GPU and check them against each other and against host references
 * (tests/test_attention_emu.cpp, tests/test_linear_emu.cpp).
 *
 * A block's threads are fibers (ucontext) run in turn on one OS thread; a fiber runs until it
 * reaches a barrier (__syncthreads, or the warp barrier that __syncwarp, the shuffles and the
 * warp-wide instructions use) and the barrier opens when every live thread of the block (or
 * warp) waits at it. The warps run one at a time from one block barrier to the next (odd blocks
 * in reverse order), so a warp that reads another's writes without a __syncthreads between them
 * reads what was there before; dynamic shared memory starts as NaNs each block, so a read before
 * a write shows. Blocks run one after another, so a kernel's static __shared__ arrays are plain
 * statics (they keep what the block before left there).
 *
 * The tensor-core instructions, as the PTX ISA defines their operands:
 *  - mma.m16n8k16 (mma_step): lane l = 4 g + q holds A's (row g, k 2q..2q+1), (g + 8, 2q..),
 *    (g, 2q + 8..), (g + 8, 2q + 8..), B's (k 2q.., column g), (k 2q + 8.., g), and C's
 *    (g, 2q), (g, 2q + 1), (g + 8, 2q), (g + 8, 2q + 1). The sum's rounding inside the unit is
 *    not specified, so the emulation picks one: c + the 16 products in k order, in double,
 *    rounded once to float. A function of row, column and accumulator only, as on the GPU:
 *    kernels that run the same steps agree here as they do there.
 *  - ldmatrix.x4: lane 8 i + j names row j of matrix i; lane l receives row l / 4, elements
 *    2 (l % 4) and + 1 of each matrix.
 *  - cp.async: the 16 bytes are read when issued and land in shared memory only when a
 *    cp.async.wait_group lets their group complete, so a read of a stage before its wait sees
 *    what was there before. Both addresses must be 16-byte aligned; a thread that ends with
 *    copies pending is an error. */
#pragma once

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#include <functional>
#include <type_traits>
#include <vector>

#include "check.h"

/* ---- the CUDA dialect the kernels use --------------------------------------------------------- */
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))

struct uint3_ {
    unsigned x, y, z;
};
static uint3_ threadIdx, blockIdx, blockDim;
struct alignas(8) float2 {
    float x, y;
};
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(8) uint2 {
    uint32_t x, y;
};
struct alignas(16) uint4 {
    uint32_t x, y, z, w;
};
static inline float2 make_float2(float x, float y) { return {x, y}; }
static inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
static inline uint4 make_uint4(uint32_t x, uint32_t y, uint32_t z, uint32_t w) { return {x, y, z, w}; }
template <typename T> static inline T __ldg(const T *p) { return *p; }
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
static inline uint32_t __float_as_uint(float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    return u;
}
static inline float __uint_as_float(uint32_t u)
{
    float v;
    memcpy(&v, &u, 4);
    return v;
}
static inline _Float16 __float2half_rn(float v) { return (_Float16)v; }
static inline float __half2float(_Float16 h) { return (float)h; }
static inline _Float16 __ushort_as_half(uint16_t bits)
{
    _Float16 h;
    memcpy(&h, &bits, 2);
    return h;
}

/* the 16-bit types name the mma's operand type (template arguments) */
struct __nv_bfloat16 {};
struct __half {};
struct __nv_bfloat162 {
    uint16_t x, y;
};
static inline uint16_t emu_bf16_bits(float v) /* round to nearest even, as cvt.rn.bf16.f32 */
{
    uint32_t bits = __float_as_uint(v);
    if ((bits & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((bits | 0x00400000u) >> 16);
    return (uint16_t)((bits + 0x7fffu + ((bits >> 16) & 1)) >> 16);
}
static inline uint16_t emu_f16_bits(float v)
{
    _Float16 h = (_Float16)v;
    uint16_t bits;
    memcpy(&bits, &h, 2);
    return bits;
}
static inline __nv_bfloat162 __floats2bfloat162_rn(float lo, float hi) { return {emu_bf16_bits(lo), emu_bf16_bits(hi)}; }
static inline uint32_t __byte_perm(uint32_t x, uint32_t y, uint32_t s) /* prmt.b32's default mode */
{
    uint64_t bytes = (uint64_t)y << 32 | x;
    uint32_t r = 0;
    for (int i = 0; i < 4; i++)
        r |= (uint32_t)(bytes >> 8 * (s >> 4 * i & 7) & 255u) << 8 * i;
    return r;
}
template <typename T> static inline uint32_t bits16_of(float v);
template <> inline uint32_t bits16_of<__nv_bfloat16>(float v) { return emu_bf16_bits(v); }
template <> inline uint32_t bits16_of<__half>(float v) { return emu_f16_bits(v); }

namespace emu {
enum { MAX_THREADS = 1024, STACK_BYTES = 256 * 1024, SMEM_BYTES = 232448 };
enum wait_kind { RUNNING, AT_BLOCK_BARRIER, AT_WARP_BARRIER, DONE };
static ucontext_t scheduler;
static ucontext_t contexts[MAX_THREADS];
static wait_kind state[MAX_THREADS];
static int current;
static std::vector<char> stacks((size_t)MAX_THREADS * STACK_BYTES);
alignas(16) static unsigned char smem[SMEM_BYTES];
alignas(16) static unsigned char warp_slots[MAX_THREADS / 32][32][8];
static std::function<void()> body;

/* cp.async copies issued and not yet completed, per thread */
struct pending_copy {
    unsigned char *to;
    unsigned char bytes[16];
    long group;
};
static std::vector<pending_copy> pending[MAX_THREADS];
static long n_committed[MAX_THREADS];
static int n_faults; /* misuse of an instruction (printed as it happens) */

static void fault(const char *what)
{
    if (n_faults++ < 10)
        fprintf(stderr, "block (%u, %u) thread %d: %s\n", blockIdx.x, blockIdx.y, current, what);
}

static void yield(wait_kind kind)
{
    state[current] = kind;
    swapcontext(&contexts[current], &scheduler);
}

static void thread_main()
{
    body();
    if (!pending[current].empty())
        fault("ends with cp.async copies pending");
    state[current] = DONE;
}

/* Runs warp w's threads until none can go on by itself: each to its next barrier, the warp's
 * barrier opened whenever every live thread of the warp waits at it. */
static void run_warp(int w, int n)
{
    for (;;) {
        int n_warp = 0, n_live = 0;
        for (int i = 32 * w; i < 32 * w + 32 && i < n; i++)
            if (state[i] == RUNNING) {
                current = i;
                threadIdx = {(unsigned)i, 0, 0};
                swapcontext(&scheduler, &contexts[i]);
            }
        for (int i = 32 * w; i < 32 * w + 32 && i < n; i++) {
            n_live += state[i] != DONE;
            n_warp += state[i] == AT_WARP_BARRIER;
        }
        if (n_warp == 0 || n_warp != n_live)
            return;
        for (int i = 32 * w; i < 32 * w + 32 && i < n; i++)
            state[i] = RUNNING;
    }
}

/* Runs the block blockIdx of n threads to its end, a warp at a time from one block barrier to
 * the next: a warp that reads what another writes without a __syncthreads between them reads
 * NaNs or stale values. Blocks of odd blockIdx.x take the warps in reverse order, so a read of
 * either direction shows. False on a deadlock (threads waiting at different barriers, as
 * divergent code on a GPU would hang or break). */
static bool run_block(int n)
{
    memset(smem, 0xff, sizeof smem);
    for (int i = 0; i < n; i++) {
        getcontext(&contexts[i]);
        contexts[i].uc_stack.ss_sp = &stacks[(size_t)i * STACK_BYTES];
        contexts[i].uc_stack.ss_size = STACK_BYTES;
        contexts[i].uc_link = &scheduler;
        makecontext(&contexts[i], thread_main, 0);
        state[i] = RUNNING;
        pending[i].clear();
        n_committed[i] = 0;
    }
    int n_warps = (n + 31) / 32;
    for (;;) {
        for (int k = 0; k < n_warps; k++)
            run_warp(blockIdx.x % 2 ? n_warps - 1 - k : k, n);
        int n_done = 0, n_block = 0;
        for (int i = 0; i < n; i++) {
            n_done += state[i] == DONE;
            n_block += state[i] == AT_BLOCK_BARRIER;
        }
        if (n_done == n)
            return true;
        if (n_block == 0 || n_block + n_done != n)
            return false;
        for (int i = 0; i < n; i++)
            if (state[i] == AT_BLOCK_BARRIER)
                state[i] = RUNNING;
    }
}
} // namespace emu

static void __syncthreads() { emu::yield(emu::AT_BLOCK_BARRIER); }
static void __syncwarp(unsigned = 0xffffffffu) { emu::yield(emu::AT_WARP_BARRIER); }
template <typename T> static T shuffle_from(T v, int src_lane)
{
    int warp = threadIdx.x >> 5;
    memcpy(emu::warp_slots[warp][threadIdx.x & 31], &v, sizeof v);
    __syncwarp();
    T got;
    memcpy(&got, emu::warp_slots[warp][src_lane & 31], sizeof got);
    __syncwarp();
    return got;
}
template <typename T> static T __shfl_xor_sync(unsigned, T v, int mask) { return shuffle_from(v, (threadIdx.x & 31) ^ mask); }
template <typename T> static T __shfl_sync(unsigned, T v, int lane) { return shuffle_from(v, lane); }
static float *dynamic_smem() { return (float *)emu::smem; }

/* ---- the tensor-core instructions ---------------------------------------------------------------- */

static inline float emu_operand(uint32_t bits16, bool is_bf16)
{
    return is_bf16 ? __uint_as_float(bits16 << 16) : (float)__ushort_as_half((uint16_t)bits16);
}

/* (row, k) of A and (k, column) of B in the fragments of a warp's lanes (the header's layout) */
static inline uint32_t emu_half_of(uint32_t reg, int k) { return k & 1 ? reg >> 16 : reg & 0xffffu; }

template <typename T> static inline void mma_step(float c[4], const uint32_t a[4], const uint32_t b[2])
{
    static uint32_t warp_a[emu::MAX_THREADS / 32][32][4], warp_b[emu::MAX_THREADS / 32][32][2];
    constexpr bool IS_BF16 = std::is_same<T, __nv_bfloat16>::value;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    memcpy(warp_a[warp][lane], a, sizeof warp_a[0][0]);
    memcpy(warp_b[warp][lane], b, sizeof warp_b[0][0]);
    __syncwarp();
    for (int e = 0; e < 4; e++) {
        int row = g + (e >= 2 ? 8 : 0), col = 2 * q + (e & 1);
        double sum = c[e];
        for (int k = 0; k < 16; k++) {
            const uint32_t *fa = warp_a[warp][(row % 8) * 4 + (k % 8) / 2];
            const uint32_t *fb = warp_b[warp][col * 4 + (k % 8) / 2];
            uint32_t av = emu_half_of(fa[(row >= 8 ? 1 : 0) + (k >= 8 ? 2 : 0)], k);
            uint32_t bv = emu_half_of(fb[k >= 8 ? 1 : 0], k);
            sum += (double)emu_operand(av, IS_BF16) * emu_operand(bv, IS_BF16);
        }
        c[e] = (float)sum;
    }
    __syncwarp();
}

static inline void ldmatrix_x4(uint32_t r[4], const uint16_t *shared_row)
{
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if ((uintptr_t)shared_row % 16)
        emu::fault("ldmatrix: a row address not 16-byte aligned");
    memcpy(emu::warp_slots[warp][lane], &shared_row, sizeof shared_row);
    __syncwarp();
    for (int i = 0; i < 4; i++) {
        const uint16_t *row;
        memcpy(&row, emu::warp_slots[warp][8 * i + lane / 4], sizeof row);
        r[i] = (uint32_t)row[2 * (lane % 4)] | (uint32_t)row[2 * (lane % 4) + 1] << 16;
    }
    __syncwarp();
}

static inline float shared_table_word(const float *table, uint32_t offsets, int b)
{
    if ((uintptr_t)table % 256)
        emu::fault("shared_table_word: a table not 256-byte aligned");
    return *(const float *)((uintptr_t)table | (offsets >> 8 * b & 255u));
}

static inline void prefetch_l2(const void *) {}

/* one grid at a time here: nothing runs before the grid it depends on has finished */
static inline void grid_enter() {}

static inline void cp_async_16(uint16_t *shared_dst, const void *global_src, int src_bytes)
{
    emu::pending_copy copy = {(unsigned char *)shared_dst, {}, emu::n_committed[threadIdx.x]};
    if ((uintptr_t)shared_dst % 16 || (uintptr_t)global_src % 16)
        emu::fault("cp.async: an address not 16-byte aligned");
    else if (src_bytes)
        memcpy(copy.bytes, global_src, 16);
    emu::pending[threadIdx.x].push_back(copy);
}
static inline void cp_async_commit() { emu::n_committed[threadIdx.x]++; }
/* cp.async.wait_group N: every group but the N most recently committed has landed */
template <int N> static inline void cp_async_wait_pending()
{
    std::vector<emu::pending_copy> &mine = emu::pending[threadIdx.x], still;
    for (const emu::pending_copy &copy : mine)
        if (copy.group < emu::n_committed[threadIdx.x] - N)
            memcpy(copy.to, copy.bytes, 16);
        else
            still.push_back(copy);
    mine.swap(still);
}

/* ---- launches ----------------------------------------------------------------------------------- */

template <typename... A> static void launch(void (*kernel)(A...), unsigned grid_x, unsigned grid_y, int threads,
                                            size_t smem_bytes, A... args)
{
    if (smem_bytes > sizeof emu::smem) { /* more than any GPU gives a block */
        CHECK(smem_bytes <= sizeof emu::smem);
        return;
    }
    blockDim = {(unsigned)threads, 1, 1};
    emu::body = [&] { kernel(args...); };
    int faults_before = emu::n_faults;
    for (unsigned y = 0; y < grid_y; y++)
        for (unsigned x = 0; x < grid_x; x++) {
            blockIdx = {x, y, 0};
            if (!emu::run_block(threads)) {
                fprintf(stderr, "block (%u, %u): threads wait at different barriers\n", x, y);
                CHECK(false);
                return;
            }
        }
    CHECK_INT_EQ(faults_before, emu::n_faults);
}
