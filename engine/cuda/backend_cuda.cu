// The CUDA backend (backend.h): device memory through one counting allocator and the kernels
// below. Each kernel follows its CPU twin (engine/cpu/backend_cpu.c, weight.h) one rounding at a
// time; this file is compiled with -fmad=false so that a*b+c is two roundings here too, and
// fmaf() is written where the twin fuses. What still differs from the CPU is summation order
// and the last bit of expf/tanhf.
//
// Every kernel computes a token's outputs in an order that does not depend on which tokens
// share the call, as the contract asks (a token alone, in a batch or through the KV cache gives
// the same bits). cuBLAS picks its kernel, tiling and split by the matrix sizes, so its results
// for one column change with the number of columns: the linears here are our own kernels.
#include <cuda.h>          // driver types for the weight arena; entry points through the runtime
#include <cudaTypedefs.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "backend.h"
#include "device.h"
#include "quant.h"
#include "weight.h"
}
#include "cuda/backend_cuda.h"
#include "logprob_exp.h"

#define LINEAR_TOKENS 8            // tokens per warp pass over a weight row
#define STAGING_ROWS QE_CUDA_STAGING_ROWS // token ids staged per embed call
#define GB(bytes) ((double)(bytes) / 1e9)
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define QE_CUDA_MMA 1 // mma.sync, ldmatrix and cp.async: the tensor-core kernels of linear_mma.cuh
#else
#define QE_CUDA_MMA 0
#endif

// Programmatic dependent launch (sm_90+): a kernel launched with it (launch, below) may start
// while the kernel before it still runs. Every kernel begins with grid_enter: it waits there
// until the grids before it have finished and their writes are visible (griddepcontrol.wait),
// then lets the next kernel start (launch_dependents), whose blocks take the SMs this one leaves
// and wait in turn. What a kernel reads that no kernel writes (the weights) it may load before
// its wait: the decode GEMV streams its first weight slices while the kernel before it ends.
// Elsewhere a no-op.
__device__ __forceinline__ void grid_enter()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// Asks L2 for the 128-byte line at p (a hint: what the kernel reads is the same either way).
__device__ __forceinline__ void prefetch_l2(const void *p) { asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p)); }

__constant__ float c_nf4_code[16];
__constant__ float c_code8[256];

// ---- state ---------------------------------------------------------------------------------

typedef struct {
    void *ptr;
    size_t bytes;
    qe_mem_class cls;
} allocation;

// The CUDA driver's virtual memory functions, fetched through the runtime
// (cudaGetDriverEntryPointByVersion) so that the binary does not link libcuda and still starts on
// a machine without a driver.
typedef struct {
    PFN_cuMemGetAllocationGranularity_v10020 granularity;
    PFN_cuMemAddressReserve_v10020 reserve;
    PFN_cuMemAddressFree_v10020 address_free;
    PFN_cuMemCreate_v10020 create;
    PFN_cuMemRelease_v10020 release;
    PFN_cuMemMap_v10020 map;
    PFN_cuMemUnmap_v10020 unmap;
    PFN_cuMemSetAccess_v10020 set_access;
} vmm_api;

// The weights (classes linear, embedding, norm: they live as long as the model) packed end to
// end, 256-byte aligned, in one reserved virtual range whose physical memory is mapped in the
// device's granularity (2 MiB) as it fills. cudaMalloc rounds each tensor up to its 2 MiB pages
// (a 3.06 MiB fp32 projection of Qwen2.5-0.5B takes 4 MiB: 150 MiB over the model), which the
// estimate cannot see; the arena holds the sum rounded up once. Memory goes back when every
// weight in it is released.
typedef struct {
    bool is_on;                   // the driver gave the functions
    vmm_api api;
    CUdeviceptr base;
    size_t reserved_bytes, used_bytes, mapped_bytes, live_bytes, granularity;
    CUmemGenericAllocationHandle *chunks; // [n_chunks] mapped in order from base
    size_t *chunk_bytes;
    int n_chunks, chunks_capacity;
} weight_arena;

// Host-to-device copies go through pinned memory: from pageable memory cudaMemcpyAsync may wait
// for the stream (a chunk's rope tables for the chunk before to finish), and the host and the
// GPU would take turns. The ring's slots are filled in turn; one is refilled once the stream has
// run the copies from it (its event). A copy larger than a slot goes directly. (Full MMLU on an
// H100 measured the same with it, 45.8 s against 44.8 s: those copies were not what the GPU
// waited for; it is kept as the one way copies go, none of them able to wait.)
#define UPLOAD_SLOTS 4
#define UPLOAD_SLOT_BYTES (1u << 20)

// Recorded steps (graph_begin): a few, the least recently used replaced.
#define GRAPH_SLOTS 8
#define GRAPH_KEY_BYTES 1024

typedef struct {
    unsigned char key[GRAPH_KEY_BYTES];
    size_t key_bytes;             // 0: the slot is free
    uint64_t generation;          // the allocator's generation it was recorded in
    uint64_t last_used;
    cudaGraphExec_t exec;         // kept when the slot is recorded again: updated, not rebuilt, where it can be
} recorded_graph;

typedef struct {
    int device;
    char device_name[256];
    cudaStream_t stream;
    allocation *items;            // [n_items] live allocations
    int n_items, items_capacity;
    uint64_t current[QE_MEM_CLASSES], peak[QE_MEM_CLASSES], total_current, total_peak;
    size_t free_at_create, device_total;
    size_t device_used_peak;      // cudaMemGetInfo total - free, the most seen after an allocation
    weight_arena arena;
    // scratch, reserved by reserve_workspace while quantized linears are prepared: the int8
    // linears' per-token activation rows [ws_tokens, ws_n_in] (an NF4 weight dequantized for a
    // prefill borrows it); attention may reach ws_context positions
    unsigned char *workspace;
    size_t ws_bytes;              // the workspace's size
    int ws_tokens, ws_n_in, ws_context;
    int n_quantized_linears;      // INT8 and NF4 linears prepared and not yet freed
    bool has_16bit_compute;       // a linear of a 16-bit compute dtype was prepared: prefill
                                  // linears take their x as 16-bit rows (x16_kernel)
    uint16_t *x16;                // [x16_bytes / 2]: those rows, reserved by reserve_workspace
    size_t x16_bytes;
    uint64_t nf4_max_elements;    // the largest NF4 weight prepared so far (never lowered)
    int32_t *staged_ids;          // [STAGING_ROWS]: an embed call's ids, or a row_stats pass's
                                  // targets [ROW_STATS_ROWS], its row_partial [ROW_STATS_ROWS], a row_split
    struct row_partial *host_partials; // [ROW_STATS_ROWS] pinned
    int compute_capability;       // 10 * major + minor: tensor-core linears (mma, IMMA) from 80 on
    int n_sms;                    // multiprocessors, for the linears' tile choices
    int smem_optin_bytes;         // the shared memory a block may ask for
    unsigned char *upload_ring;   // [UPLOAD_SLOTS * UPLOAD_SLOT_BYTES] pinned
    cudaEvent_t upload_done[UPLOAD_SLOTS]; // recorded on the stream as it leaves a slot
    int upload_slot;
    size_t upload_used;           // bytes of the current slot taken
    uint64_t generation;          // counts allocations and releases: a recording holds addresses
    recorded_graph graphs[GRAPH_SLOTS];
    int recording;                // the slot being recorded, or -1
    uint64_t graph_clock, n_replays;
    bool graphs_off;              // QEVAL_CUDA_GRAPHS=0, or qe_backend_cuda_set_graphs
    bool early_launch;            // kernels launched as programmatic dependents (sm_90+, not QEVAL_CUDA_PDL=0)
} cuda_state;

// A prepared weight: the format's arrays in device memory, packed as on the host.
#include "cuda/linear_weight.cuh"

static cuda_state *state_of(const qe_backend *be) { return (cuda_state *)be->impl; }

static const char *short_path(const char *file)
{
    const char *p = strstr(file, "engine/");
    return p ? p : file;
}

// The check macros: record file:line and the CUDA / cuBLAS message as the sticky error.
static bool check_cuda(qe_backend *be, cudaError_t rc, const char *file, int line)
{
    if (rc == cudaSuccess)
        return true;
    qe_backend_fail(be, rc == cudaErrorMemoryAllocation ? QE_ENOMEM : QE_EIO, "%s:%d: CUDA: %s", short_path(file),
                    line, cudaGetErrorString(rc));
    return false;
}

#define CHECK_CUDA(be, call) check_cuda((be), (call), __FILE__, __LINE__)
#define CHECK_LAUNCH(be) check_cuda((be), cudaGetLastError(), __FILE__, __LINE__)

static unsigned blocks_for(size_t n, unsigned threads) { return (unsigned)((n + threads - 1) / threads); }

// kernel<<<grid, block, smem_bytes, s->stream>>>(args...), as a programmatic dependent where
// s->early_launch (grid_enter); errors as a launch's, through cudaGetLastError.
template <typename... Params, typename... Args>
static void launch(const cuda_state *s, void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem_bytes,
                   Args... args)
{
    cudaLaunchAttribute early;
    early.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    early.val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t config = {};
    config.gridDim = grid;
    config.blockDim = block;
    config.dynamicSmemBytes = smem_bytes;
    config.stream = s->stream;
    config.attrs = &early;
    config.numAttrs = s->early_launch ? 1 : 0;
    cudaLaunchKernelEx(&config, kernel, (Params)args...);
}

// ---- the allocator -------------------------------------------------------------------------

static const char *const mem_class_names[QE_MEM_CLASSES] = {"linear",   "embedding", "norm",
                                                            "kv_cache", "workspace", "activations"};

extern "C" const char *qe_mem_class_name(qe_mem_class cls)
{
    return cls >= 0 && cls < QE_MEM_CLASSES ? mem_class_names[cls] : "?";
}

static void count(cuda_state *s, qe_mem_class cls, size_t bytes, bool is_add)
{
    if (is_add) {
        s->current[cls] += bytes;
        s->total_current += bytes;
    } else {
        s->current[cls] -= bytes;
        s->total_current -= bytes;
    }
    if (s->current[cls] > s->peak[cls])
        s->peak[cls] = s->current[cls];
    if (s->total_current > s->total_peak)
        s->total_peak = s->total_current;
}

static bool is_weight_class(qe_mem_class cls)
{
    return cls == QE_MEM_LINEAR || cls == QE_MEM_EMBEDDING || cls == QE_MEM_NORM;
}

static size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

// Fetches the driver's virtual memory functions; the arena stays off (weights go through
// cudaMalloc) when the driver lacks them.
static void arena_init(weight_arena *a, int device)
{
    memset(a, 0, sizeof *a);
    struct {
        const char *name;
        void **fn;
    } wanted[] = {{"cuMemGetAllocationGranularity", (void **)&a->api.granularity},
                  {"cuMemAddressReserve", (void **)&a->api.reserve},
                  {"cuMemAddressFree", (void **)&a->api.address_free},
                  {"cuMemCreate", (void **)&a->api.create},
                  {"cuMemRelease", (void **)&a->api.release},
                  {"cuMemMap", (void **)&a->api.map},
                  {"cuMemUnmap", (void **)&a->api.unmap},
                  {"cuMemSetAccess", (void **)&a->api.set_access}};
    for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++) {
        cudaDriverEntryPointQueryResult found;
        if (cudaGetDriverEntryPointByVersion(wanted[i].name, wanted[i].fn, 10020, cudaEnableDefault, &found) !=
                cudaSuccess ||
            found != cudaDriverEntryPointSuccess) {
            cudaGetLastError();
            return;
        }
    }
    CUmemAllocationProp prop = {};
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = device;
    a->is_on = a->api.granularity(&a->granularity, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM) == CUDA_SUCCESS &&
               a->granularity > 0;
}

// Unmaps and frees every chunk; the reserved range stays for the next weights.
static void arena_unmap_all(weight_arena *a)
{
    size_t at = 0;
    for (int i = 0; i < a->n_chunks; i++) {
        a->api.unmap(a->base + at, a->chunk_bytes[i]);
        a->api.release(a->chunks[i]);
        at += a->chunk_bytes[i];
    }
    a->n_chunks = 0;
    a->used_bytes = a->mapped_bytes = a->live_bytes = 0;
}

static void arena_destroy(weight_arena *a)
{
    if (!a->is_on)
        return;
    arena_unmap_all(a);
    if (a->base)
        a->api.address_free(a->base, a->reserved_bytes);
    free(a->chunks);
    free(a->chunk_bytes);
    memset(a, 0, sizeof *a);
}

// bytes from the arena at *ptr; cudaErrorMemoryAllocation when the device cannot map more, or
// another error (the driver's, as the runtime's generic one).
static cudaError_t arena_alloc(weight_arena *a, int device, size_t device_total, size_t bytes, void **ptr)
{
    if (!a->base) { // the whole card's memory as address space: what fits is the physical limit
        a->reserved_bytes = round_up(device_total, a->granularity);
        if (a->api.reserve(&a->base, a->reserved_bytes, 0, 0, 0) != CUDA_SUCCESS) {
            a->base = 0;
            return cudaErrorMemoryAllocation;
        }
    }
    size_t at = round_up(a->used_bytes, 256);
    if (at + bytes > a->reserved_bytes)
        return cudaErrorMemoryAllocation;
    if (at + bytes > a->mapped_bytes) {
        if (a->n_chunks == a->chunks_capacity) {
            int cap = a->chunks_capacity ? 2 * a->chunks_capacity : 64;
            CUmemGenericAllocationHandle *chunks =
                (CUmemGenericAllocationHandle *)realloc(a->chunks, (size_t)cap * sizeof *chunks);
            if (chunks)
                a->chunks = chunks;
            size_t *sizes = (size_t *)realloc(a->chunk_bytes, (size_t)cap * sizeof *sizes);
            if (sizes)
                a->chunk_bytes = sizes;
            if (!chunks || !sizes)
                return cudaErrorMemoryAllocation;
            a->chunks_capacity = cap;
        }
        size_t grow = round_up(at + bytes - a->mapped_bytes, a->granularity);
        CUmemAllocationProp prop = {};
        prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
        prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
        prop.location.id = device;
        CUmemGenericAllocationHandle chunk;
        CUresult rc = a->api.create(&chunk, grow, &prop, 0);
        if (rc != CUDA_SUCCESS)
            return rc == CUDA_ERROR_OUT_OF_MEMORY ? cudaErrorMemoryAllocation : cudaErrorUnknown;
        CUmemAccessDesc access = {};
        access.location = prop.location;
        access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
        CUdeviceptr where = a->base + a->mapped_bytes;
        if ((rc = a->api.map(where, grow, 0, chunk, 0)) != CUDA_SUCCESS) {
            a->api.release(chunk);
            return cudaErrorUnknown;
        }
        if ((rc = a->api.set_access(where, grow, &access, 1)) != CUDA_SUCCESS) {
            a->api.unmap(where, grow);
            a->api.release(chunk);
            return cudaErrorUnknown;
        }
        a->chunks[a->n_chunks] = chunk;
        a->chunk_bytes[a->n_chunks++] = grow;
        a->mapped_bytes += grow;
    }
    *ptr = (void *)(a->base + at);
    a->used_bytes = at + bytes;
    a->live_bytes += bytes;
    return cudaSuccess;
}

static bool in_arena(const weight_arena *a, const void *ptr)
{
    return a->base && (CUdeviceptr)ptr >= a->base && (CUdeviceptr)ptr < a->base + a->reserved_bytes;
}

static const char *hint_for(qe_mem_class cls)
{
    if (cls == QE_MEM_KV_CACHE || cls == QE_MEM_ACTIVATIONS || cls == QE_MEM_WORKSPACE)
        return "try a shorter --max-length or a smaller variant (--variants nf4)";
    return "try --variants nf4 or a shorter --max-length";
}

// Returns an allocation of bytes to where it came from (the arena, whose memory goes back with
// its last weight, or cudaMalloc); the stream has finished with it.
static cudaError_t device_give_back(cuda_state *s, void *ptr, size_t bytes)
{
    if (!in_arena(&s->arena, ptr))
        return cudaFree(ptr);
    s->arena.live_bytes -= bytes;
    if (s->arena.live_bytes == 0)
        arena_unmap_all(&s->arena);
    return cudaSuccess;
}

// bytes of device memory in class cls, or NULL with the sticky error saying what did not fit.
static void *device_alloc(qe_backend *be, size_t bytes, qe_mem_class cls)
{
    cuda_state *s = state_of(be);
    if (qe_backend_failed(be))
        return NULL;
    if (bytes == 0)
        bytes = 1;
    size_t free_bytes = 0, total_bytes = 0;
    void *ptr = NULL;
    cudaError_t rc = cudaMemGetInfo(&free_bytes, &total_bytes);
    if (rc == cudaSuccess && bytes > free_bytes)
        rc = cudaErrorMemoryAllocation;
    else if (rc == cudaSuccess && is_weight_class(cls) && s->arena.is_on)
        rc = arena_alloc(&s->arena, s->device, s->device_total, bytes, &ptr);
    else if (rc == cudaSuccess)
        rc = cudaMalloc(&ptr, bytes);
    if (rc == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        qe_backend_fail(be, QE_ENOMEM,
                        "out of GPU memory: %s needs %.2f GB more, %.2f GB free of %.1f GB on %s (this model holds "
                        "%.2f GB: linear %.2f, embedding %.2f, norm %.3f, kv_cache %.2f, workspace %.2f, activations "
                        "%.2f): %s",
                        mem_class_names[cls], GB(bytes), GB(free_bytes), GB(total_bytes), s->device_name,
                        GB(s->total_current), GB(s->current[QE_MEM_LINEAR]), GB(s->current[QE_MEM_EMBEDDING]),
                        GB(s->current[QE_MEM_NORM]), GB(s->current[QE_MEM_KV_CACHE]),
                        GB(s->current[QE_MEM_WORKSPACE]), GB(s->current[QE_MEM_ACTIVATIONS]), hint_for(cls));
        return NULL;
    }
    if (!CHECK_CUDA(be, rc))
        return NULL;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess && total_bytes - free_bytes > s->device_used_peak)
        s->device_used_peak = total_bytes - free_bytes;
    if (s->n_items == s->items_capacity) {
        int cap = s->items_capacity ? 2 * s->items_capacity : 256;
        allocation *items = (allocation *)realloc(s->items, (size_t)cap * sizeof *items);
        if (!items) {
            device_give_back(s, ptr, bytes);
            qe_backend_fail(be, QE_ENOMEM, "CUDA backend: out of host memory for the allocation list");
            return NULL;
        }
        s->items = items;
        s->items_capacity = cap;
    }
    allocation *item = &s->items[s->n_items++];
    s->generation++;
    item->ptr = ptr;
    item->bytes = bytes;
    item->cls = cls;
    count(s, cls, bytes, true);
    return ptr;
}

static int find_allocation(const cuda_state *s, const void *ptr)
{
    for (int i = s->n_items - 1; i >= 0; i--) // recent allocations are released first
        if (s->items[i].ptr == ptr)
            return i;
    return -1;
}

static void device_free(qe_backend *be, void *ptr)
{
    cuda_state *s = state_of(be);
    if (!ptr)
        return;
    int i = find_allocation(s, ptr);
    if (i < 0) {
        qe_backend_fail(be, QE_EINVAL, "CUDA backend: release of %p, which it did not allocate", ptr);
        return;
    }
    size_t bytes = s->items[i].bytes;
    s->generation++;
    count(s, s->items[i].cls, bytes, false);
    s->items[i] = s->items[--s->n_items];
    // queued kernels may still read it (cudaFree's own wait is not promised for a non-blocking stream)
    CHECK_CUDA(be, cudaStreamSynchronize(s->stream));
    CHECK_CUDA(be, device_give_back(s, ptr, bytes));
}

static void reclassify(cuda_state *s, const void *ptr, qe_mem_class cls)
{
    int i = ptr ? find_allocation(s, ptr) : -1;
    if (i < 0 || s->items[i].cls == cls)
        return;
    count(s, s->items[i].cls, s->items[i].bytes, false);
    s->items[i].cls = cls;
    count(s, cls, s->items[i].bytes, true);
}

extern "C" bool qe_backend_cuda_memory(const qe_backend *be, qe_backend_memory *out)
{
    memset(out, 0, sizeof *out);
    if (!be || strcmp(be->name, "cuda") != 0)
        return false;
    const cuda_state *s = state_of(be);
    for (int c = 0; c < QE_MEM_CLASSES; c++) {
        out->current_bytes[c] = s->current[c];
        out->peak_bytes[c] = s->peak[c];
    }
    out->total_current_bytes = s->total_current;
    out->total_peak_bytes = s->total_peak;
    out->device_total_bytes = s->device_total;
    out->device_free_at_create_bytes = s->free_at_create;
    out->device_used_peak_bytes = s->device_used_peak;
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess)
        out->device_free_now_bytes = free_bytes;
    else
        cudaGetLastError();
    snprintf(out->device_name, sizeof out->device_name, "%s", s->device_name);
    return true;
}

// ---- a block's sum -------------------------------------------------------------------------

// Sum of v over a block of blockDim.x (a multiple of 32, at most 1024) threads, on every thread.
template <typename T> __device__ T block_sum(T v, T *shared32)
{
    v = warp_sum(v);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0)
        shared32[warp] = v;
    __syncthreads();
    T total = 0;
    for (int w = 0; w < n_warps; w++) // every thread adds in the same order: the same total
        total += shared32[w];
    return total;
}

// ---- elementwise kernels --------------------------------------------------------------------

__global__ void add_kernel(float *y, const float *x, size_t n, int dtype)
{
    grid_enter();
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        y[i] = round_to(y[i] + x[i], dtype);
}

__global__ void glu_kernel(int act, const float *gate, const float *up, size_t n, int dtype, float *y)
{
    grid_enter();
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        y[i] = glu_value(act, gate[i], up[i], dtype);
}

// out[t, i] = table[ids[t], i] * scale (scale already rounded), rounded to dtype.
__global__ void embed_kernel(const void *table, int format, int dim, const int32_t *ids, int n_tok, float scale,
                             int dtype, float *out)
{
    grid_enter();
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)n_tok * dim)
        return;
    int t = (int)(i / dim), c = (int)(i % dim);
    size_t at = (size_t)ids[t] * dim + c;
    float v = format == QE_WEIGHT_F32 ? ((const float *)table)[at]
                                      : half_bits_to_f32(((const uint16_t *)table)[at], format == QE_WEIGHT_BF16);
    out[i] = round_to(scale == 1.0f ? v : v * scale, dtype);
}

// ---- rmsnorm, rope: one block per row --------------------------------------------------------

// delta != NULL: x += delta first (rounded as add_kernel), and y is another buffer. A thread's
// first RMSNORM_KEPT elements stay in registers, their weights loaded before grid_enter (no
// kernel writes them): rows of up to RMSNORM_KEPT * 256 values are read once, with every load in
// flight at once. The sum runs over a thread's elements in index order either way.
#define RMSNORM_KEPT 4
__global__ void rmsnorm_kernel(float *x, const float *delta, const void *weight, float offset, float eps, int dim,
                               int dtype, float *y)
{
    float kept_x[RMSNORM_KEPT], kept_w[RMSNORM_KEPT];
#pragma unroll
    for (int k = 0; k < RMSNORM_KEPT; k++) {
        int i = threadIdx.x + k * blockDim.x;
        kept_w[k] = i < dim ? dtype_value(weight, i, dtype) : 0.0f;
    }
    grid_enter();
    __shared__ double partial[32];
    float *xr = x + (size_t)blockIdx.x * dim;
    float *yr = y + (size_t)blockIdx.x * dim;
    const float *dr = delta ? delta + (size_t)blockIdx.x * dim : NULL;
    auto load = [&](int i) {
        float v = xr[i];
        if (dr) {
            v = round_to(v + dr[i], dtype);
            xr[i] = v;
        }
        return v;
    };
    double sum_sq = 0;
#pragma unroll
    for (int k = 0; k < RMSNORM_KEPT; k++) {
        int i = threadIdx.x + k * blockDim.x;
        kept_x[k] = i < dim ? load(i) : 0.0f;
        if (i < dim)
            sum_sq += (double)kept_x[k] * kept_x[k];
    }
    for (int i = threadIdx.x + RMSNORM_KEPT * blockDim.x; i < dim; i += blockDim.x) {
        float v = load(i);
        sum_sq += (double)v * v;
    }
    sum_sq = block_sum(sum_sq, partial);
    float inv = (float)(1.0 / sqrt(sum_sq / dim + eps));
    auto store = [&](int i, float v, float wi) {
        float n = v * inv;
        yr[i] = offset != 0 ? round_to(n * (offset + wi), dtype) : round_to(wi * round_to(n, dtype), dtype);
    };
    // y may alias x: every thread has read its elements above, and block_sum synchronized
#pragma unroll
    for (int k = 0; k < RMSNORM_KEPT; k++) {
        int i = threadIdx.x + k * blockDim.x;
        if (i < dim)
            store(i, kept_x[k], kept_w[k]);
    }
    for (int i = threadIdx.x + RMSNORM_KEPT * blockDim.x; i < dim; i += blockDim.x)
        store(i, xr[i], dtype_value(weight, i, dtype));
}

// Block b: row b of q [n_tok * n_heads rows], then of k (n_kv_heads a token; none when k is NULL).
__global__ void rope_kernel(float *q, float *k, int n_tok, int n_heads, int n_kv_heads, int head_dim,
                            const float *cos_table, const float *sin_table, int dtype)
{
    grid_enter();
    int row = blockIdx.x, half = head_dim / 2;
    bool is_q = row < n_tok * n_heads;
    if (!is_q)
        row -= n_tok * n_heads;
    int t = row / (is_q ? n_heads : n_kv_heads);
    float *xr = (is_q ? q : k) + (size_t)row * head_dim;
    const float *c = cos_table + (size_t)t * half, *s = sin_table + (size_t)t * half;
    for (int i = threadIdx.x; i < half; i += blockDim.x)
        rope_pair(xr, xr, i, half, c, s, dtype);
}

// The block's dynamic shared memory (the attention kernels take it through this, so that their
// emulation can hand them a buffer).
__device__ __forceinline__ float *dynamic_smem()
{
    extern __shared__ __align__(16) float qe_dynamic_smem[];
    return qe_dynamic_smem;
}

#include "cuda/attention.cuh"

// ---- row stats: one block of QE_LSE_LANES threads per logits row -----------------------------
// qe_row_stats_of's definition (logprob.c) in parallel: thread j sums lane j (elements j,
// j + QE_LSE_LANES, ... in order) with the same exp, the lanes fold pairwise as
// qe_lse_fold_lanes does, so the sum has the host's bits; the maximum and its first index are
// exact whatever the order. The host finishes log_z (qe_log_z_of) from what comes back.

struct row_partial {
    double lane_sum;
    float max_logit, target_logit;
    int32_t argmax, has_nan;
};

// A pass of up to ROW_SPLIT_ROWS rows (decoding one sequence: one token's logits) would keep one
// SM busy with 1024 lanes of ~150 exps each while the others idle (75 us a token on an H100 at
// Qwen2's 151,936 logits): there a row is split over ROW_SPLIT_BLOCKS blocks (row_max_kernel,
// then row_sum_kernel), with the same numbers.
#define ROW_STATS_ROWS 256 // rows per pass: their targets, partials and the split's records in the staging buffer
#define ROW_SPLIT_ROWS 1
#define ROW_SPLIT_BLOCKS 32
struct row_split { // per row, zeroed before each split pass
    unsigned long long best[ROW_SPLIT_ROWS]; // the maximum and its index as one key (best_key), 0: none yet
    int has_nan[ROW_SPLIT_ROWS], blocks_done[ROW_SPLIT_ROWS];
    double lanes[ROW_SPLIT_ROWS][QE_LSE_LANES];
};
static_assert(ROW_STATS_ROWS * (sizeof(int32_t) + sizeof(row_partial)) + sizeof(row_split) <=
                  STAGING_ROWS * sizeof(int32_t),
              "row stats staging");

// (value, index) of the larger value, the smaller index on equal values (-0 == +0, as the
// host's search); index INT_MAX stands for no candidate (NaN is never one).
__device__ __forceinline__ void keep_larger(float &v, int &i, float v2, int i2)
{
    if (v2 > v || (v2 == v && i2 < i))
        v = v2, i = i2;
}

// Over the block: the largest non-NaN of row[first], row[first + stride], ... below n_vocab with
// its first index (INT_MAX: none), and whether a NaN was met; every thread gets them.
// warp_*: shared, blockDim.x / 32 each.
__device__ void block_row_max(const float *row, int first, int stride, int n_vocab, float *warp_max, int *warp_arg,
                              int *warp_nan, float &max, int &arg, int &nan)
{
    max = -INFINITY, arg = INT_MAX, nan = 0;
    for (int i = first; i < n_vocab; i += stride) {
        float v = row[i];
        nan |= v != v;
        if (v == v)
            keep_larger(max, arg, v, i);
    }
    for (int o = 16; o > 0; o >>= 1) {
        float v2 = __shfl_xor_sync(0xffffffffu, max, o);
        int i2 = __shfl_xor_sync(0xffffffffu, arg, o);
        nan |= __shfl_xor_sync(0xffffffffu, nan, o);
        keep_larger(max, arg, v2, i2);
    }
    if ((threadIdx.x & 31) == 0)
        warp_max[threadIdx.x >> 5] = max, warp_arg[threadIdx.x >> 5] = arg, warp_nan[threadIdx.x >> 5] = nan;
    __syncthreads();
    for (int w = 0; w < (int)blockDim.x / 32; w++) {
        keep_larger(max, arg, warp_max[w], warp_arg[w]);
        nan |= warp_nan[w];
    }
}

__global__ void __launch_bounds__(QE_LSE_LANES) row_stats_kernel(const float *logits, int n_vocab,
                                                                 const int32_t *targets, row_partial *out)
{
    grid_enter();
    __shared__ double lanes[QE_LSE_LANES];
    __shared__ float warp_max[QE_LSE_LANES / 32];
    __shared__ int warp_arg[QE_LSE_LANES / 32], warp_nan[QE_LSE_LANES / 32];
    const float *row = logits + (size_t)blockIdx.x * n_vocab;
    int j = threadIdx.x;
    float max;
    int arg, nan;
    block_row_max(row, j, QE_LSE_LANES, n_vocab, warp_max, warp_arg, warp_nan, max, arg, nan);
    if (row[0] != row[0] || arg == INT_MAX) // the host's scan starts at 0 and never leaves a NaN or all -inf
        arg = 0;
    double m = row[arg], sum = 0;
    if (!isinf(m) && !nan)
        for (int i = j; i < n_vocab; i += QE_LSE_LANES)
            sum += qe_exp_nonpositive((double)row[i] - m);
    lanes[j] = sum;
    for (int w = QE_LSE_LANES / 2; w >= 1; w /= 2) {
        __syncthreads();
        if (j < w)
            lanes[j] += lanes[j + w];
    }
    if (j == 0) {
        int32_t target = targets ? targets[blockIdx.x] : -1;
        out[blockIdx.x] = {lanes[0], row[arg], target >= 0 && target < n_vocab ? row[target] : 0.0f, arg, nan};
    }
}

// Larger keys for larger values, then smaller indices: atomicMax over a row's blocks keeps what
// keep_larger keeps (zeros made +0 first, so that -0 == +0; NaN never comes here). Every key of a
// value is above 0, the empty record.
__device__ __forceinline__ unsigned long long best_key(float v, int i)
{
    uint32_t bits = __float_as_uint(v == 0.0f ? 0.0f : v);
    uint32_t ordered = bits & 0x80000000u ? ~bits : bits | 0x80000000u;
    return (unsigned long long)ordered << 32 | (0xffffffffu - (uint32_t)i);
}

// Block (b, r): elements b * 256 + threadIdx.x, + ROW_SPLIT_BLOCKS * 256, ... of row r; their
// maximum and NaN flag into split->best / has_nan.
__global__ void __launch_bounds__(256) row_max_kernel(const float *logits, int n_vocab, row_split *split)
{
    grid_enter();
    __shared__ float warp_max[8];
    __shared__ int warp_arg[8], warp_nan[8];
    const float *row = logits + (size_t)blockIdx.y * n_vocab;
    float max;
    int arg, nan;
    block_row_max(row, blockIdx.x * 256 + threadIdx.x, ROW_SPLIT_BLOCKS * 256, n_vocab, warp_max, warp_arg, warp_nan,
                  max, arg, nan);
    if (threadIdx.x != 0)
        return;
    if (arg != INT_MAX)
        atomicMax(&split->best[blockIdx.y], best_key(max, arg));
    if (nan)
        atomicOr(&split->has_nan[blockIdx.y], 1);
}

// Block (b, r), one warp: lanes 32 b .. 32 b + 31 of row r as row_stats_kernel sums them, into
// split->lanes; the row's last block to finish folds the lanes as qe_lse_fold_lanes does and
// writes the row's partial.
__global__ void __launch_bounds__(32) row_sum_kernel(const float *logits, int n_vocab, const int32_t *targets,
                                                     row_split *split, row_partial *out)
{
    static_assert(ROW_SPLIT_BLOCKS * 32 == QE_LSE_LANES, "a warp a block");
    grid_enter();
    __shared__ double lanes[QE_LSE_LANES];
    __shared__ bool is_last;
    int r = blockIdx.y, j = blockIdx.x * 32 + threadIdx.x;
    const float *row = logits + (size_t)r * n_vocab;
    unsigned long long best = split->best[r];
    int nan = split->has_nan[r];
    // the host's scan starts at 0 and never leaves a NaN or all -inf
    int arg = best == 0 || row[0] != row[0] ? 0 : (int)(0xffffffffu - (uint32_t)best);
    double m = row[arg], sum = 0;
    if (!isinf(m) && !nan)
#pragma unroll 4
        for (int i = j; i < n_vocab; i += QE_LSE_LANES)
            sum += qe_exp_nonpositive((double)row[i] - m);
    split->lanes[r][j] = sum;
    __threadfence(); // the lane sums are visible before the count that lets the last block read them
    __syncwarp();
    if (threadIdx.x == 0)
        is_last = atomicAdd(&split->blocks_done[r], 1) == ROW_SPLIT_BLOCKS - 1;
    __syncwarp();
    if (!is_last)
        return;
    __threadfence();
    for (int i = threadIdx.x; i < QE_LSE_LANES; i += 32)
        lanes[i] = __ldcg(&split->lanes[r][i]);
    for (int w = QE_LSE_LANES / 2; w >= 1; w /= 2) {
        __syncwarp();
        for (int i = threadIdx.x; i < w; i += 32)
            lanes[i] += lanes[i + w];
    }
    if (threadIdx.x == 0) {
        int32_t target = targets ? targets[r] : -1;
        out[r] = {lanes[0], row[arg], target >= 0 && target < n_vocab ? row[target] : 0.0f, arg, nan};
    }
}

// ---- the tensor-core instructions (sm_80+), as engine/cuda/linear_mma.cuh takes them ----------

#if QE_CUDA_MMA

template <typename T> __device__ __forceinline__ uint32_t bits16_of(float v);
template <> __device__ __forceinline__ uint32_t bits16_of<__nv_bfloat16>(float v)
{
    return __bfloat16_as_ushort(__float2bfloat16_rn(v));
}
template <> __device__ __forceinline__ uint32_t bits16_of<__half>(float v)
{
    return __half_as_ushort(__float2half_rn(v));
}

// c += a b for one 16 x 8 x 16 step.
template <typename T> __device__ __forceinline__ void mma_step(float c[4], const uint32_t a[4], const uint32_t b[2]);
template <>
__device__ __forceinline__ void mma_step<__nv_bfloat16>(float c[4], const uint32_t a[4], const uint32_t b[2])
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
template <> __device__ __forceinline__ void mma_step<__half>(float c[4], const uint32_t a[4], const uint32_t b[2])
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const uint16_t *shared_row)
{
    uint32_t at = (uint32_t)__cvta_generic_to_shared(shared_row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(at));
}

// table[byte b of offsets / 4], table 256-byte aligned in shared memory: its address with the low
// byte replaced by one prmt (an address plus an offset took an add besides the offset's own
// extraction).
__device__ __forceinline__ float shared_table_word(const float *table, uint32_t offsets, int b)
{
    uint32_t at = __byte_perm(offsets, (uint32_t)__cvta_generic_to_shared(table), 0x7650u + b);
    float v;
    asm volatile("ld.shared.f32 %0, [%1];\n" : "=f"(v) : "r"(at));
    return v;
}

// 16 bytes global -> shared without registers; only src_bytes (0 or 16) are read, the rest zeroed.
__device__ __forceinline__ void cp_async_16(uint16_t *shared_dst, const void *global_src, int src_bytes)
{
    uint32_t at = (uint32_t)__cvta_generic_to_shared(shared_dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(at), "l"(global_src), "r"(src_bytes)
                 : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

template <int N> __device__ __forceinline__ void cp_async_wait_pending()
{
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
#endif // QE_CUDA_MMA

#include "cuda/linear_mma.cuh"

// ---- linear kernels --------------------------------------------------------------------------

__device__ __forceinline__ float weight_value(const qe_backend_linear &w, int64_t i)
{
    switch (w.format) {
    case QE_WEIGHT_BF16: return half_bits_to_f32(((const uint16_t *)w.data)[i], true);
    case QE_WEIGHT_F16: return half_bits_to_f32(((const uint16_t *)w.data)[i], false);
    default: return nf4_value(w, i);
    }
}

// One warp per output row r and group of LINEAR_TOKENS tokens: the row is read once per group,
// each token's float32 FMA sum runs over k in the same lane-strided order whatever the group,
// then the warp's tree; bias added after, as the CPU does.
__global__ void linear_kernel(qe_backend_linear w, const float *x, int n_tok, float *y)
{
    grid_enter();
    int r = blockIdx.x * (blockDim.x / 32) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    int t0 = blockIdx.y * LINEAR_TOKENS;
    if (r >= w.n_out)
        return;
    int nt = n_tok - t0 < LINEAR_TOKENS ? n_tok - t0 : LINEAR_TOKENS;
    const float *xt = x + (size_t)t0 * w.n_in;
    float acc[LINEAR_TOKENS];
    for (int t = 0; t < LINEAR_TOKENS; t++)
        acc[t] = 0.0f;
    int64_t row0 = (int64_t)r * w.n_in;
    for (int k = lane; k < w.n_in; k += 32) {
        float wv = weight_value(w, row0 + k);
#pragma unroll
        for (int t = 0; t < LINEAR_TOKENS; t++)
            if (t < nt)
                acc[t] = fmaf(xt[(size_t)t * w.n_in + k], wv, acc[t]);
    }
#pragma unroll
    for (int t = 0; t < LINEAR_TOKENS; t++) {
        float v = warp_sum(acc[t]);
        if (lane == 0 && t < nt)
            y[(size_t)(t0 + t) * w.n_out + r] = linear_output(w, r, v);
    }
}

// LLM.int8() activations, one block per token: x16 = fp16(x); columns with |x16| >= threshold
// are outliers (listed in ascending order with their x16), the rest quantized with the row's
// absmax as qe_int8_quantize_row does.
#define INT8_THREADS 256

__global__ void int8_quantize_kernel(const float *x, int n_in, float threshold, int8_t *q, float *row_absmax,
                                     int *n_outliers, int *outlier_cols, float *outlier_x16)
{
    grid_enter();
    __shared__ float warp_absmax[INT8_THREADS / 32];
    __shared__ int warp_count[INT8_THREADS / 32];
    __shared__ int base;
    int t = blockIdx.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const float *xr = x + (size_t)t * n_in;
    bool is_sparse = threshold > 0.0f;
    // absmax over non-outliers, starting from -0 as the host (an all-outlier row keeps -0)
    float absmax = -0.0f;
    for (int c = threadIdx.x; c < n_in; c += blockDim.x) {
        float a = fabsf(__half2float(__float2half_rn(xr[c])));
        if (is_sparse && !(a < threshold))
            continue;
        if (a > absmax || (a == 0.0f && signbit(absmax)))
            absmax = a;
    }
    for (int o = 16; o > 0; o >>= 1) {
        float other = __shfl_xor_sync(0xffffffffu, absmax, o);
        if (other > absmax || (other == 0.0f && signbit(absmax) && !signbit(other)))
            absmax = other;
    }
    if (lane == 0)
        warp_absmax[warp] = absmax;
    if (threadIdx.x == 0)
        base = 0;
    __syncthreads();
    for (int w = 0; w < INT8_THREADS / 32; w++) {
        float other = warp_absmax[w];
        if (other > absmax || (other == 0.0f && signbit(absmax) && !signbit(other)))
            absmax = other;
    }
    float scale = 127.0f * __frcp_rn(absmax);
    // quantize, and list outliers in column order: chunks of blockDim.x columns, ballots per warp
    int *cols = outlier_cols + (size_t)t * n_in;
    float *vals = outlier_x16 + (size_t)t * n_in;
    for (int c0 = 0; c0 < n_in; c0 += blockDim.x) {
        int c = c0 + threadIdx.x;
        float x16 = c < n_in ? __half2float(__float2half_rn(xr[c])) : 0.0f;
        // as qe_int8_matmul_ref: |x16| >= threshold takes the 16-bit path; a NaN is only zeroed
        bool is_outlier = c < n_in && is_sparse && fabsf(x16) >= threshold;
        if (c < n_in) {
            float v = x16 * scale;
            bool is_zeroed = (is_sparse && !(fabsf(x16) < threshold)) || isnan(v);
            q[(size_t)t * n_in + c] = is_zeroed ? 0 : (int8_t)__float2int_rn(v);
        }
        unsigned mask = __ballot_sync(0xffffffffu, is_outlier);
        if (lane == 0)
            warp_count[warp] = __popc(mask);
        __syncthreads();
        int before = base;
        for (int w = 0; w < warp; w++)
            before += warp_count[w];
        if (is_outlier) {
            int at = before + __popc(mask & ((1u << lane) - 1));
            cols[at] = c;
            vals[at] = x16;
        }
        __syncthreads();
        if (threadIdx.x == 0)
            for (int w = 0; w < INT8_THREADS / 32; w++)
                base += warp_count[w];
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        row_absmax[t] = absmax;
        n_outliers[t] = base;
    }
}

// A call's quantized activations (int8_quantize_kernel's outputs, in the workspace).
typedef struct {
    const int8_t *q;          // [n_tok, n_in], 0 in a token's outlier columns
    const float *row_absmax;  // [n_tok] SCA
    const int *n_outliers;    // [n_tok]
    const int *cols;          // [n_tok, n_in]: a token's outlier columns, ascending, then unused
    const float *x16;         // [n_tok, n_in]: their fp16 values, likewise
} int8_activations;

// Output (row r, token tok) from the exact int32 dot `total` of W's int8 row and the token's
// quantized row, as the host: outliers in fp16 (summed in column order),
// y = fp16(fp16(fma((acc * SCA) * SCB, 1/127^2, bias)) + outliers). Both int8 matmuls end here.
__device__ __forceinline__ float int8_output(const qe_backend_linear &w, const int8_activations &a, int r, int tok,
                                             int total)
{
    const int8_t *wr = (const int8_t *)w.data + (size_t)r * w.n_in;
    float scb = w.scale[r];
    float acc16 = 0.0f;
    for (int j = 0; j < a.n_outliers[tok]; j++) {
        int c = a.cols[(size_t)tok * w.n_in + j];
        float wd = __half2float(__float2half_rn((float)wr[c] * scb * QE_INT8_WEIGHT_SCALE));
        acc16 += a.x16[(size_t)tok * w.n_in + j] * wd;
    }
    float v = ((float)total * a.row_absmax[tok]) * scb;
    float out = __half2float(__float2half_rn(fmaf(v, QE_INT8_DEQUANT_SCALE, bias_value(w, r))));
    return __half2float(__float2half_rn(out + acc16));
}

#define INT8_TOKENS 4   // tokens per warp pass over a weight row (dp4a kernel)

// dp4a, for sm_75 and for calls of fewer than INT8_MMA_MIN_TOKENS tokens (decode): one warp per
// output row r and group of INT8_TOKENS tokens, the row read once per group. Batch-invariant:
// the int32 sum is exact in any order, and int8_output is per element.
__global__ void int8_matmul_kernel(qe_backend_linear w, int8_activations a, int n_tok, float *y)
{
    grid_enter();
    int r = blockIdx.x * (blockDim.x / 32) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    int t0 = blockIdx.y * INT8_TOKENS;
    if (r >= w.n_out)
        return;
    int n_in = w.n_in, nt = n_tok - t0 < INT8_TOKENS ? n_tok - t0 : INT8_TOKENS;
    const int8_t *wr = (const int8_t *)w.data + (size_t)r * n_in;
    int acc[INT8_TOKENS] = {0, 0, 0, 0};
    if (n_in % 16 == 0) {
        for (int k = lane * 16; k < n_in; k += 32 * 16) {
            int4 wv = *(const int4 *)(wr + k);
            for (int t = 0; t < nt; t++) {
                int4 xv = *(const int4 *)(a.q + (size_t)(t0 + t) * n_in + k);
                acc[t] = __dp4a(wv.x, xv.x, acc[t]);
                acc[t] = __dp4a(wv.y, xv.y, acc[t]);
                acc[t] = __dp4a(wv.z, xv.z, acc[t]);
                acc[t] = __dp4a(wv.w, xv.w, acc[t]);
            }
        }
    } else {
        for (int k = lane; k < n_in; k += 32)
            for (int t = 0; t < nt; t++)
                acc[t] += (int)wr[k] * a.q[(size_t)(t0 + t) * n_in + k];
    }
    for (int t = 0; t < nt; t++) {
        int total = warp_sum(acc[t]);
        if (lane == 0)
            y[(size_t)(t0 + t) * w.n_out + r] = round_to(int8_output(w, a, r, t0 + t, total), w.out_dtype);
    }
}

// Whether mma_gemv_kernel takes this call: whole slices and row tiles, 16-byte aligned rows.
static bool gemv_fits(const qe_backend_linear *lin, const float *x)
{
    bool is_nf4_blocked = lin->format != QE_WEIGHT_NF4 || lin->block_size == 64;
    return lin->n_in % MMA_SLICE == 0 && lin->n_out % 16 == 0 && (uintptr_t)x % 16 == 0 &&
           (uintptr_t)lin->data % 16 == 0 && is_nf4_blocked;
}

// Warps a GEMV block: 4 where the row tiles give every SM a block; else as many as a round
// can use (a round takes one slice a warp), up to 16, so that few blocks still have bytes in
// flight; fewer where a block cannot hold their rings: 16 warps of 16-bit slices take 208 KB
// (an A100 gives a block 163 KB), 8 take 136 KB (sm_86 and sm_89: 99 KB), the rings and the
// kernel's static arrays (gemv_shape's BLOCK_BYTES). 4 warps' 68 KB fit every tensor-core GPU.
template <bool IS_NF4> static int gemv_warps(const cuda_state *s, unsigned n_blocks, int n_slices)
{
    int warps = n_blocks >= (unsigned)s->n_sms || n_slices <= 4 ? 4 : n_slices <= 8 ? 8 : 16;
    auto block_bytes = [](int w) { // w: 8 or 16
        return w == 8 ? gemv_shape<IS_NF4, 8>::BLOCK_BYTES : gemv_shape<IS_NF4, 16>::BLOCK_BYTES;
    };
    while (warps > 4 && block_bytes(warps) > s->smem_optin_bytes)
        warps /= 2;
    return warps;
}

template <typename T, bool IS_NF4, int WARPS>
static void launch_gemv_warps(const cuda_state *s, dim3 grid, const gemv_batch &batch, const float *x, int n_tok)
{
    launch(s, mma_gemv_kernel<T, IS_NF4, WARPS>, grid, WARPS * 32, gemv_shape<IS_NF4, WARPS>::SMEM_BYTES, batch, x,
           n_tok);
}

// The linears of batch (gemv_batch_of, gemv_glu_batch: ones that gemv_fits, of one format) in
// one launch.
template <typename T, bool IS_NF4>
static void launch_gemv(const cuda_state *s, const gemv_batch &batch, const float *x, int n_tok)
{
    dim3 grid(batch.first_block[batch.n], blocks_for(n_tok, 8));
    int warps = gemv_warps<IS_NF4>(s, grid.x * grid.y, batch.w[0].n_in / MMA_SLICE);
    if (warps == 4)
        launch_gemv_warps<T, IS_NF4, 4>(s, grid, batch, x, n_tok);
    else if (warps == 8)
        launch_gemv_warps<T, IS_NF4, 8>(s, grid, batch, x, n_tok);
    else
        launch_gemv_warps<T, IS_NF4, 16>(s, grid, batch, x, n_tok);
}

static void launch_gemv_of(const cuda_state *s, const gemv_batch &batch, const float *x, int n_tok)
{
    if (batch.w[0].format == QE_WEIGHT_F16)
        launch_gemv<__half, false>(s, batch, x, n_tok);
    else if (batch.w[0].format == QE_WEIGHT_NF4)
        launch_gemv<__nv_bfloat16, true>(s, batch, x, n_tok);
    else
        launch_gemv<__nv_bfloat16, false>(s, batch, x, n_tok);
}

// Whether lin runs on tensor cores: x must hold exact values of the mma's input type.
static bool linear_uses_mma(const cuda_state *s, const qe_backend_linear *lin)
{
    if (s->compute_capability < 80)
        return false;
    if (lin->format == QE_WEIGHT_BF16 || lin->format == QE_WEIGHT_NF4)
        return lin->compute_dtype == QE_DTYPE_BF16;
    return lin->format == QE_WEIGHT_F16 && lin->compute_dtype == QE_DTYPE_F16;
}

// The ring takes more than the 48 KB a block gets unasked: allowed at creation (allow_large_smem).
template <typename T, bool IS_NF4, int WARPS_M>
static void launch_mma_linear(const cuda_state *s, const qe_backend_linear *lin, const uint16_t *x16, int n_tok,
                              float *y)
{
    using shape = mma_linear_shape<WARPS_M>;
    dim3 grid(blocks_for(n_tok, MMA_BN), blocks_for(lin->n_out, shape::BM));
    launch(s, mma_linear_kernel<T, IS_NF4, WARPS_M>, grid, shape::THREADS, shape::SMEM_BYTES, *lin, x16, n_tok, y);
}

static_assert(QE_CUDA_X16_MIN_TOKENS == MMA_DECODE_MAX_TOKENS + 1, "the tiled kernel takes the calls decode does not");

// x[n_tok, n_in] as the tiled kernel reads it (x16_kernel), in s->x16; NULL (sticky error)
// where reserve_workspace did not make room.
template <typename T>
static const uint16_t *x16_of(qe_backend *be, const float *x, int n_tok, int n_in)
{
    cuda_state *s = state_of(be);
    size_t n_chunks = (size_t)n_tok * (x16_ld(n_in) / 8);
    if (n_chunks * 16 > s->x16_bytes) {
        qe_backend_fail(be, QE_EINVAL, "CUDA backend: a linear over %d tokens of %d inputs needs %zu bytes of 16-bit "
                        "rows, %zu reserved (reserve_workspace)", n_tok, n_in, n_chunks * 16, s->x16_bytes);
        return NULL;
    }
    launch(s, x16_kernel<T>, blocks_for(n_chunks, 256), 256, 0, x, n_tok, n_in, (uint4 *)s->x16);
    return CHECK_LAUNCH(be) ? s->x16 : NULL;
}

// x16: x16_of's rows of x, or NULL: made here where the tiled kernel needs them.
template <typename T, bool IS_NF4>
static void launch_mma(qe_backend *be, const qe_backend_linear *lin, const float *x, const uint16_t *x16, int n_tok,
                       float *y)
{
    const cuda_state *s = state_of(be);
    if (n_tok <= MMA_DECODE_MAX_TOKENS) {
        dim3 grid(blocks_for(lin->n_out, 16), blocks_for(n_tok, 8));
        if (gemv_fits(lin, x))
            launch_gemv<T, IS_NF4>(s, gemv_batch_of(1, &lin, &y), x, n_tok);
        else
            launch(s, mma_decode_kernel<T, IS_NF4>, grid, MMA_DECODE_WARPS * 32, 0, *lin, x, n_tok, y);
        return;
    }
    if (!x16 && !(x16 = x16_of<T>(be, x, n_tok, lin->n_in)))
        return;
    // token tiles in x: the blocks running together share their weight tile (read once from memory)
    unsigned token_tiles = blocks_for(n_tok, MMA_BN);
    if ((size_t)blocks_for(lin->n_out, 128) * token_tiles >= 2 * (size_t)s->n_sms)
        launch_mma_linear<T, IS_NF4, 4>(s, lin, x16, n_tok, y);
    else // smaller blocks where the large ones would leave multiprocessors idle
        launch_mma_linear<T, IS_NF4, 2>(s, lin, x16, n_tok, y);
}

// An NF4 linear over more than two token tiles: the fused kernel would dequantize every weight
// once per tile of MMA_BN tokens, so the weight is dequantized once into the workspace (free
// outside int8 linears; reserve_workspace sizes it for the largest NF4 weight,
// qe_cuda_workspace_bytes_nf4) and the bf16 kernel reads it: the same bf16 values, the same
// sums. NULL where it does not pay or fit.
static void *nf4_dequantized(qe_backend *be, const qe_backend_linear *lin, int n_tok)
{
    cuda_state *s = state_of(be);
    size_t bytes = (size_t)lin->n_out * lin->n_in * sizeof(uint16_t);
    if (n_tok < QE_CUDA_NF4_DEQUANT_MIN_TOKENS || lin->n_in % 8 || !s->workspace || bytes > s->ws_bytes)
        return NULL;
    size_t n_chunks = (size_t)lin->n_out * lin->n_in / 8;
    launch(s, nf4_dequantize_kernel, blocks_for(n_chunks, 256), 256, 0, *lin, (uint4 *)s->workspace, n_chunks);
    return CHECK_LAUNCH(be) ? s->workspace : NULL;
}

// x16: x16_of's rows of x, or NULL (see launch_mma).
static void linear_mma(qe_backend *be, const qe_backend_linear *lin, const float *x, const uint16_t *x16, int n_tok,
                       float *y)
{
    void *dequantized = lin->format == QE_WEIGHT_NF4 ? nf4_dequantized(be, lin, n_tok) : NULL;
    if (lin->format == QE_WEIGHT_F16) {
        launch_mma<__half, false>(be, lin, x, x16, n_tok, y);
    } else if (dequantized) {
        qe_backend_linear bf16 = *lin;
        bf16.format = QE_WEIGHT_BF16;
        bf16.data = dequantized;
        launch_mma<__nv_bfloat16, false>(be, &bf16, x, x16, n_tok, y);
    } else if (lin->format == QE_WEIGHT_NF4) {
        launch_mma<__nv_bfloat16, true>(be, lin, x, x16, n_tok, y);
    } else {
        launch_mma<__nv_bfloat16, false>(be, lin, x, x16, n_tok, y);
    }
    CHECK_LAUNCH(be);
}

// ---- int8 tensor-core matmul (sm_80+) ----------------------------------------------------------

// Block tile: IMMA_BM weight rows x imma_tokens(WARP_NTILES) tokens, 8 warps of 32 rows x
// 8 * WARP_NTILES tokens (2 x WARP_NTILES m16n8k32 tiles); k in stages of IMMA_BK bytes through an
// IMMA_STAGES-deep cp.async ring in dynamic shared memory (imma_smem_bytes).
#define IMMA_WARPS_M 4
#define IMMA_WARPS_N 2
#define IMMA_THREADS (IMMA_WARPS_M * IMMA_WARPS_N * 32)
#define IMMA_BM (IMMA_WARPS_M * 32)
#define IMMA_BK 64
#define IMMA_ROW_BYTES (IMMA_BK + 16) // shared row pitch: 8 rows of an ldmatrix hit 32 distinct banks
#define IMMA_STAGES 3
#define IMMA_NARROW 4 // WARP_NTILES of the 64-token tile
#define IMMA_WIDE 8   // ... of the 128-token tile, for calls with blocks enough to fill the GPU
#define INT8_MMA_MIN_TOKENS 16 // fewer tokens per call: the dp4a kernel (same bits, decode speed)

__host__ __device__ constexpr int imma_tokens(int warp_ntiles) { return IMMA_WARPS_N * 8 * warp_ntiles; }
__host__ __device__ constexpr int imma_stage_bytes(int warp_ntiles)
{
    return (IMMA_BM + imma_tokens(warp_ntiles)) * IMMA_ROW_BYTES;
}
__host__ __device__ constexpr int imma_smem_bytes(int warp_ntiles)
{
    return IMMA_STAGES * imma_stage_bytes(warp_ntiles);
}

// 16 bytes of a row from byte k to shared dst, zeros past n_in or for a row outside the matrix
// (row then points at a valid row; nothing of it is used). Rows are 16-byte aligned when
// n_in % 16 == 0: cp.async (zero-filling); otherwise byte loads.
__device__ __forceinline__ void imma_load_16(int8_t *dst, const int8_t *row, int k, int n_in, bool is_row)
{
#if __CUDA_ARCH__ >= 800
    if (n_in % 16 == 0) {
        int src_bytes = is_row && k < n_in ? 16 : 0;
        unsigned to = (unsigned)__cvta_generic_to_shared(dst);
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(to), "l"(row + (src_bytes ? k : 0)),
                     "r"(src_bytes)
                     : "memory");
        return;
    }
    unsigned word[4] = {0, 0, 0, 0};
    for (int i = 0; i < 16; i++)
        if (is_row && k + i < n_in)
            word[i / 4] |= (unsigned)(uint8_t)row[k + i] << (8 * (i % 4));
    *(uint4 *)dst = make_uint4(word[0], word[1], word[2], word[3]);
#endif
}

// Stage k0 .. k0 + IMMA_BK of the block's weight rows (the stage's first IMMA_BM rows) and
// tokens (the next BN), each row IMMA_ROW_BYTES apart.
template <int BN>
__device__ __forceinline__ void imma_load_stage(int8_t *stage, const int8_t *wq, const int8_t *xq, int n_out,
                                                int n_tok, int n_in, int r0, int t0, int k0)
{
    constexpr int chunks = (IMMA_BM + BN) * (IMMA_BK / 16); // 16-byte pieces
    static_assert(chunks % IMMA_THREADS == 0, "whole pieces per thread");
#pragma unroll
    for (int i = 0; i < chunks / IMMA_THREADS; i++) {
        int chunk = threadIdx.x + i * IMMA_THREADS;
        int row = chunk / (IMMA_BK / 16), k = k0 + chunk % (IMMA_BK / 16) * 16;
        int8_t *dst = stage + row * IMMA_ROW_BYTES + (k - k0);
        if (row < IMMA_BM) {
            int r = r0 + row;
            imma_load_16(dst, wq + (size_t)(r < n_out ? r : 0) * n_in, k, n_in, r < n_out);
        } else {
            int t = t0 + row - IMMA_BM;
            imma_load_16(dst, xq + (size_t)(t < n_tok ? t : 0) * n_in, k, n_in, t < n_tok);
        }
    }
}

// One block per IMMA_BM rows x imma_tokens(WARP_NTILES) tokens: the int32 dot of every
// (row, token) through mma.m16n8k32 (A = W rows, B = token rows, both k-contiguous: row.col), k
// zero-padded to IMMA_BK; then int8_output per element. Batch-invariant (and bit-identical to
// the dp4a kernel and to either tile width): integer sums are exact whatever the tile, order or
// padding, outlier columns are 0 in q, and the float epilogue is the per-element int8_output.
template <int WARP_NTILES>
__global__ void __launch_bounds__(IMMA_THREADS) int8_mma_kernel(qe_backend_linear w, int8_activations a, int n_tok,
                                                                float *y)
{
    grid_enter();
#if __CUDA_ARCH__ >= 800
    constexpr int bn = imma_tokens(WARP_NTILES), stage_bytes = imma_stage_bytes(WARP_NTILES);
    extern __shared__ __align__(16) int8_t imma_ring[];
    const int8_t *wq = (const int8_t *)w.data;
    int n_in = w.n_in, r0 = blockIdx.x * IMMA_BM, t0 = blockIdx.y * bn;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int warp_row = warp % IMMA_WARPS_M * 32, warp_tok = warp / IMMA_WARPS_M * (8 * WARP_NTILES);
    int acc[2][WARP_NTILES][4] = {};
    int n_stages = (n_in + IMMA_BK - 1) / IMMA_BK;
    for (int s = 0; s < IMMA_STAGES - 1; s++) {
        if (s < n_stages)
            imma_load_stage<bn>(imma_ring + s * stage_bytes, wq, a.q, w.n_out, n_tok, n_in, r0, t0, s * IMMA_BK);
        asm volatile("cp.async.commit_group;\n" ::: "memory");
    }
    for (int s = 0; s < n_stages; s++) {
        asm volatile("cp.async.wait_group %0;\n" ::"n"(IMMA_STAGES - 2) : "memory");
        __syncthreads(); // stage s landed for all; stage s - 1 is read by no one any more
        int next = s + IMMA_STAGES - 1;
        if (next < n_stages)
            imma_load_stage<bn>(imma_ring + next % IMMA_STAGES * stage_bytes, wq, a.q, w.n_out, n_tok, n_in, r0, t0,
                                next * IMMA_BK);
        asm volatile("cp.async.commit_group;\n" ::: "memory");
        const int8_t *rows = imma_ring + s % IMMA_STAGES * stage_bytes, *toks = rows + IMMA_BM * IMMA_ROW_BYTES;
#pragma unroll
        for (int kk = 0; kk < IMMA_BK; kk += 32) {
            // ldmatrix.x4: lane l gives the address of row l % 8 of 8x16-byte matrix l / 8.
            // A (16 rows x 32 bytes): matrices rows 0-7 | 8-15 at bytes 0 | 16 = a0..a3 of the mma.
            unsigned af[2][4], bf[WARP_NTILES][2];
#pragma unroll
            for (int m = 0; m < 2; m++) {
                unsigned from = (unsigned)__cvta_generic_to_shared(
                    rows + (warp_row + m * 16 + lane % 16) * IMMA_ROW_BYTES + kk + lane / 16 * 16);
                asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                             : "=r"(af[m][0]), "=r"(af[m][1]), "=r"(af[m][2]), "=r"(af[m][3])
                             : "r"(from));
            }
            // B (8 tokens x 32 bytes) twice: tokens 0-7 at bytes 0 | 16, then tokens 8-15.
#pragma unroll
            for (int n = 0; n < WARP_NTILES; n += 2) {
                unsigned from = (unsigned)__cvta_generic_to_shared(
                    toks + (warp_tok + n * 8 + lane / 16 * 8 + lane % 8) * IMMA_ROW_BYTES + kk + lane / 8 % 2 * 16);
                asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                             : "=r"(bf[n][0]), "=r"(bf[n][1]), "=r"(bf[n + 1][0]), "=r"(bf[n + 1][1])
                             : "r"(from));
            }
#pragma unroll
            for (int m = 0; m < 2; m++)
#pragma unroll
                for (int n = 0; n < WARP_NTILES; n++)
                    asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, "
                                 "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                                 : "+r"(acc[m][n][0]), "+r"(acc[m][n][1]), "+r"(acc[m][n][2]), "+r"(acc[m][n][3])
                                 : "r"(af[m][0]), "r"(af[m][1]), "r"(af[m][2]), "r"(af[m][3]), "r"(bf[n][0]),
                                   "r"(bf[n][1]));
        }
    }
    asm volatile("cp.async.wait_group 0;\n" ::: "memory");
    // accumulator i of tile (m, n): row (lane / 4) + 8 * (i / 2), token 2 * (lane % 4) + i % 2
#pragma unroll
    for (int m = 0; m < 2; m++)
#pragma unroll
        for (int n = 0; n < WARP_NTILES; n++)
#pragma unroll
            for (int i = 0; i < 4; i++) {
                int r = r0 + warp_row + m * 16 + lane / 4 + i / 2 * 8;
                int tok = t0 + warp_tok + n * 8 + lane % 4 * 2 + i % 2;
                if (r < w.n_out && tok < n_tok)
                    y[(size_t)tok * w.n_out + r] = round_to(int8_output(w, a, r, tok, acc[m][n][i]), w.out_dtype);
            }
#endif
}

// ---- fp32 linear (true float32) ----------------------------------------------------------------

// Every fp32 output y[t, r] is summed in one order, fixed by n_in alone: k in slices of
// F32_SLICE, each slice an fmaf chain over its k in ascending order starting from +0, the
// slices' partials added in slice order onto -0 (the identity: the first partial passes
// unchanged), then the bias added. Both kernels below follow it step for step, so a token's
// outputs are the same bits whichever kernel, tile or batch computes them; the slices let
// decode spread a row over many threads.
#define F32_SLICE 64

// SGEMM for calls of F32_GEMM_MIN_TOKENS tokens or more: F32_BM rows x F32_BN tokens per block,
// F32_TM x F32_TN outputs per thread, k through shared memory in steps of F32_BK (double-buffered
// via registers).
#define F32_BM 64
#define F32_BN 64 // = F32_BM: one loader for both tiles
#define F32_BK 16 // divides F32_SLICE
#define F32_TM 8
#define F32_TN 4
#define F32_THREADS (F32_BM / F32_TM * (F32_BN / F32_TN))
#define F32_PITCH (F32_BM + 4) // floats per k in the [k][row] tiles
#define F32_LOADS (F32_BM * F32_BK / 4 / F32_THREADS) // float4 pieces per thread per tile
#define F32_GEMM_MIN_TOKENS 16

// Values k .. k + 3 of row `row` of m[n_rows, n_in], zeros past n_in or n_rows (k % 4 == 0); one
// float4 load where the rows are 16-byte aligned.
__device__ __forceinline__ float4 f32_load_4(const float *m, int n_rows, int n_in, int row, int k)
{
    float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (row >= n_rows || k >= n_in)
        return v;
    const float *at = m + (size_t)row * n_in + k;
    if (n_in % 4 == 0 && (uintptr_t)m % 16 == 0)
        return *(const float4 *)at;
    v.x = at[0];
    v.y = k + 1 < n_in ? at[1] : 0.0f;
    v.z = k + 2 < n_in ? at[2] : 0.0f;
    v.w = k + 3 < n_in ? at[3] : 0.0f;
    return v;
}

// The F32_BK-wide k step at k0 of the block's weight rows and tokens, into registers; piece p
// of a tile is row p / (F32_BK / 4), values 4 * (p % (F32_BK / 4)) .. + 3.
__device__ __forceinline__ void f32_load_step(const qe_backend_linear &w, const float *x, int n_tok, int r0, int t0,
                                              int k0, float4 *w_piece, float4 *x_piece)
{
#pragma unroll
    for (int i = 0; i < F32_LOADS; i++) {
        int p = threadIdx.x + i * F32_THREADS, row = p / (F32_BK / 4), k = k0 + p % (F32_BK / 4) * 4;
        w_piece[i] = f32_load_4((const float *)w.data, w.n_out, w.n_in, r0 + row, k);
        x_piece[i] = f32_load_4(x, n_tok, w.n_in, t0 + row, k);
    }
}

__device__ __forceinline__ void f32_store_step(float (*w_tile)[F32_PITCH], float (*x_tile)[F32_PITCH],
                                               const float4 *w_piece, const float4 *x_piece)
{
#pragma unroll
    for (int i = 0; i < F32_LOADS; i++) {
        int p = threadIdx.x + i * F32_THREADS, row = p / (F32_BK / 4), kk = p % (F32_BK / 4) * 4;
        w_tile[kk][row] = w_piece[i].x;
        w_tile[kk + 1][row] = w_piece[i].y;
        w_tile[kk + 2][row] = w_piece[i].z;
        w_tile[kk + 3][row] = w_piece[i].w;
        x_tile[kk][row] = x_piece[i].x;
        x_tile[kk + 1][row] = x_piece[i].y;
        x_tile[kk + 2][row] = x_piece[i].z;
        x_tile[kk + 3][row] = x_piece[i].w;
    }
}

// One block per F32_BM rows x F32_BN tokens; thread (threadIdx.x / 16, threadIdx.x % 16) holds
// rows 8 * (threadIdx.x / 16) + 0..7 and tokens 4 * (threadIdx.x % 16) + 0..3. Batch-invariant:
// each output runs the F32_SLICE order above (the zero padding of a last partial step is
// skipped, not multiplied), whatever block or position its token has.
__global__ void __launch_bounds__(F32_THREADS) f32_gemm_kernel(qe_backend_linear w, const float *x, int n_tok,
                                                               float *y)
{
    grid_enter();
    __shared__ __align__(16) float w_tile[2][F32_BK][F32_PITCH], x_tile[2][F32_BK][F32_PITCH];
    int n_in = w.n_in, r0 = blockIdx.x * F32_BM, t0 = blockIdx.y * F32_BN;
    int my_row = threadIdx.x / (F32_BN / F32_TN) * F32_TM, my_tok = threadIdx.x % (F32_BN / F32_TN) * F32_TN;
    float partial[F32_TM][F32_TN], total[F32_TM][F32_TN];
#pragma unroll
    for (int i = 0; i < F32_TM; i++)
#pragma unroll
        for (int j = 0; j < F32_TN; j++) {
            partial[i][j] = 0.0f;
            total[i][j] = -0.0f;
        }
    float4 w_piece[F32_LOADS], x_piece[F32_LOADS];
    int n_steps = (n_in + F32_BK - 1) / F32_BK;
    f32_load_step(w, x, n_tok, r0, t0, 0, w_piece, x_piece);
    f32_store_step(w_tile[0], x_tile[0], w_piece, x_piece);
    __syncthreads();
    for (int s = 0; s < n_steps; s++) {
        int buf = s & 1, k_valid = n_in - s * F32_BK;
        if (s + 1 < n_steps)
            f32_load_step(w, x, n_tok, r0, t0, (s + 1) * F32_BK, w_piece, x_piece);
#pragma unroll
        for (int kk = 0; kk < F32_BK; kk++) {
            if (kk >= k_valid)
                break;
            float4 w_lo = *(const float4 *)&w_tile[buf][kk][my_row];
            float4 w_hi = *(const float4 *)&w_tile[buf][kk][my_row + 4];
            float4 x4 = *(const float4 *)&x_tile[buf][kk][my_tok];
            float wv[F32_TM] = {w_lo.x, w_lo.y, w_lo.z, w_lo.w, w_hi.x, w_hi.y, w_hi.z, w_hi.w};
            float xv[F32_TN] = {x4.x, x4.y, x4.z, x4.w};
#pragma unroll
            for (int i = 0; i < F32_TM; i++)
#pragma unroll
                for (int j = 0; j < F32_TN; j++)
                    partial[i][j] = fmaf(xv[j], wv[i], partial[i][j]);
        }
        if ((s + 1) % (F32_SLICE / F32_BK) == 0 || s + 1 == n_steps) { // a slice ends
#pragma unroll
            for (int i = 0; i < F32_TM; i++)
#pragma unroll
                for (int j = 0; j < F32_TN; j++) {
                    total[i][j] = total[i][j] + partial[i][j];
                    partial[i][j] = 0.0f;
                }
        }
        if (s + 1 < n_steps) {
            f32_store_step(w_tile[buf ^ 1], x_tile[buf ^ 1], w_piece, x_piece); // read last in step s - 1
            __syncthreads();
        }
    }
#pragma unroll
    for (int i = 0; i < F32_TM; i++) {
        int r = r0 + my_row + i;
        if (r >= w.n_out)
            continue;
#pragma unroll
        for (int j = 0; j < F32_TN; j++) {
            int t = t0 + my_tok + j;
            if (t < n_tok)
                y[(size_t)t * w.n_out + r] = linear_output(w, r, total[i][j]);
        }
    }
}

// Decode (fewer than F32_GEMM_MIN_TOKENS tokens): a lane per (row, slice), the row's weights read
// once per LINEAR_TOKENS tokens. Each warp holds two rows (lanes 0-15 and 16-31) and walks k in
// passes of F32_DECODE_SLICES slices, one per lane; the block stages the pass's token values in
// shared memory; lanes 0-15 then add the pass's partials in slice order (row lane / 8, token
// lane % 8). Batch-invariant: the same F32_SLICE order as f32_gemm_kernel, per token.
#define F32_DECODE_WARPS 2
#define F32_DECODE_ROWS (2 * F32_DECODE_WARPS)
#define F32_DECODE_SLICES 16
#define F32_DECODE_PASS (F32_DECODE_SLICES * F32_SLICE)
#define F32_DECODE_PITCH (F32_SLICE + 4) // float4 reads of 8 consecutive slices: distinct banks

__global__ void __launch_bounds__(F32_DECODE_WARPS * 32) f32_decode_kernel(qe_backend_linear w, const float *x,
                                                                           int n_tok, float *y)
{
    grid_enter();
    __shared__ __align__(16) float x_pass[LINEAR_TOKENS][F32_DECODE_SLICES][F32_DECODE_PITCH];
    __shared__ float partials[F32_DECODE_WARPS][2][F32_DECODE_SLICES][LINEAR_TOKENS];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, row_of_pair = lane / F32_DECODE_SLICES;
    int slice_in_pass = lane % F32_DECODE_SLICES;
    int n_in = w.n_in, t0 = blockIdx.y * LINEAR_TOKENS;
    int nt = n_tok - t0 < LINEAR_TOKENS ? n_tok - t0 : LINEAR_TOKENS;
    int row0 = blockIdx.x * F32_DECODE_ROWS + 2 * warp, r = row0 + row_of_pair;
    const float *wr = (const float *)w.data + (size_t)r * n_in;
    float total = -0.0f; // lanes 0-15: row row0 + lane / 8, token t0 + lane % 8
    for (int p0 = 0; p0 < n_in; p0 += F32_DECODE_PASS) {
        int k0 = p0 + slice_in_pass * F32_SLICE, len = n_in - k0 < F32_SLICE ? n_in - k0 : F32_SLICE;
        bool is_vector = r < w.n_out && len == F32_SLICE && n_in % 4 == 0;
        float4 wv[F32_SLICE / 4]; // a whole slice of the row in flight while the tokens are staged
        if (is_vector)
#pragma unroll
            for (int u = 0; u < F32_SLICE / 4; u++)
                wv[u] = *(const float4 *)(wr + k0 + 4 * u);
        __syncthreads(); // the last pass's values are read by no one any more
        for (int i = threadIdx.x; i < nt * F32_DECODE_PASS; i += blockDim.x) {
            int t = i / F32_DECODE_PASS, kk = i % F32_DECODE_PASS;
            x_pass[t][kk / F32_SLICE][kk % F32_SLICE] = p0 + kk < n_in ? x[(size_t)(t0 + t) * n_in + p0 + kk] : 0.0f;
        }
        __syncthreads();
        float acc[LINEAR_TOKENS];
#pragma unroll
        for (int t = 0; t < LINEAR_TOKENS; t++)
            acc[t] = 0.0f;
        if (is_vector) {
#pragma unroll
            for (int u = 0; u < F32_SLICE / 4; u++)
#pragma unroll
                for (int t = 0; t < LINEAR_TOKENS; t++)
                    if (t < nt) {
                        float4 xv = *(const float4 *)&x_pass[t][slice_in_pass][4 * u];
                        acc[t] = fmaf(xv.x, wv[u].x, acc[t]);
                        acc[t] = fmaf(xv.y, wv[u].y, acc[t]);
                        acc[t] = fmaf(xv.z, wv[u].z, acc[t]);
                        acc[t] = fmaf(xv.w, wv[u].w, acc[t]);
                    }
        } else if (r < w.n_out) { // the last, short slice, or rows not 16-byte aligned
            for (int c = 0; c < len; c++) {
                float wc = wr[k0 + c];
#pragma unroll
                for (int t = 0; t < LINEAR_TOKENS; t++)
                    if (t < nt)
                        acc[t] = fmaf(x_pass[t][slice_in_pass][c], wc, acc[t]);
            }
        }
#pragma unroll
        for (int t = 0; t < LINEAR_TOKENS; t++)
            partials[warp][row_of_pair][slice_in_pass][t] = acc[t];
        __syncwarp();
        if (lane < 2 * LINEAR_TOKENS) {
            int n_slices = (n_in - p0 + F32_SLICE - 1) / F32_SLICE;
            for (int s = 0; s < n_slices && s < F32_DECODE_SLICES; s++)
                total = total + partials[warp][lane / LINEAR_TOKENS][s][lane % LINEAR_TOKENS];
        }
        __syncwarp(); // partials are rewritten by the next pass
    }
    int out_row = row0 + lane / LINEAR_TOKENS, t = lane % LINEAR_TOKENS;
    if (lane < 2 * LINEAR_TOKENS && out_row < w.n_out && t < nt)
        y[(size_t)(t0 + t) * w.n_out + out_row] = linear_output(w, out_row, total);
}

// ---- memory ops ------------------------------------------------------------------------------

static float *cuda_alloc(qe_backend *be, size_t n_floats)
{
    return (float *)device_alloc(be, n_floats * sizeof(float), QE_MEM_ACTIVATIONS);
}

static void cuda_release(qe_backend *be, float *buf) { device_free(be, buf); }

static float *cuda_grow(qe_backend *be, float *buf, size_t n_keep, size_t n_floats)
{
    float *bigger = (float *)device_alloc(be, n_floats * sizeof(float), QE_MEM_KV_CACHE);
    if (!bigger)
        return NULL;
    if (buf && n_keep)
        CHECK_CUDA(be, cudaMemcpyAsync(bigger, buf, n_keep * sizeof(float), cudaMemcpyDeviceToDevice,
                                       state_of(be)->stream));
    device_free(be, buf);
    return bigger;
}


static qe_status cuda_reserve_workspace(qe_backend *be, int max_tokens, int max_context, int n_heads, int max_n_in,
                                        qe_error *err)
{
    cuda_state *s = state_of(be);
    if (max_context > s->ws_context)
        s->ws_context = max_context; // attention needs no scratch: this only bounds what it may read
    size_t x16_bytes = (size_t)qe_cuda_x16_bytes(max_tokens, max_n_in, s->has_16bit_compute);
    if (x16_bytes > s->x16_bytes) {
        device_free(be, s->x16);
        s->x16_bytes = 0;
        if (!(s->x16 = (uint16_t *)device_alloc(be, x16_bytes, QE_MEM_WORKSPACE)))
            return qe_backend_take_error(be, err);
        s->x16_bytes = x16_bytes;
    }
    int tokens = max_tokens > s->ws_tokens ? max_tokens : s->ws_tokens;
    int n_in = max_n_in > s->ws_n_in ? max_n_in : s->ws_n_in;
    size_t bytes = (size_t)qe_cuda_workspace_bytes_nf4(tokens, n_in, s->nf4_max_elements);
    if (s->n_quantized_linears == 0 || (tokens == s->ws_tokens && n_in == s->ws_n_in && bytes <= s->ws_bytes))
        return QE_OK; // a 16-bit or fp32 model's linears need no more
    device_free(be, s->workspace);
    s->ws_tokens = s->ws_n_in = 0;
    s->ws_bytes = 0;
    if (!(s->workspace = (unsigned char *)device_alloc(be, bytes, QE_MEM_WORKSPACE)))
        return qe_backend_take_error(be, err);
    s->ws_tokens = tokens;
    s->ws_n_in = n_in;
    s->ws_bytes = bytes;
    return QE_OK;
}

// ---- weights ---------------------------------------------------------------------------------

// A device copy of host[bytes] counted in cls; NULL (sticky error) when it does not fit.
static void *upload_copy(qe_backend *be, const void *host, size_t bytes, qe_mem_class cls)
{
    void *dev = device_alloc(be, bytes, cls);
    if (dev && !CHECK_CUDA(be, cudaMemcpy(dev, host, bytes, cudaMemcpyHostToDevice))) {
        device_free(be, dev);
        return NULL;
    }
    return dev;
}

// A device copy of the float vector host[n], whose values are dtype values, held in dtype (2 bytes
// each for BF16 / F16); NULL (sticky error) when it does not fit.
static void *upload_in_dtype(qe_backend *be, const float *host, size_t n, qe_dtype dtype, qe_mem_class cls)
{
    if (dtype == QE_DTYPE_F32)
        return upload_copy(be, host, n * sizeof(float), cls);
    uint16_t *bits = (uint16_t *)malloc((n ? n : 1) * sizeof *bits);
    if (!bits) {
        qe_backend_fail(be, QE_ENOMEM, "CUDA backend: out of host memory for a vector of %zu values", n);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        bits[i] = dtype == QE_DTYPE_BF16 ? qe_f32_to_bf16(host[i]) : qe_f32_to_f16(host[i]);
    void *dev = upload_copy(be, bits, n * sizeof *bits, cls);
    free(bits);
    return dev;
}

static void cuda_free_linear(qe_backend *be, qe_backend_linear *lin)
{
    if (!lin)
        return;
    void *parts[] = {lin->data, lin->scale, lin->absmax, lin->qabsmax, lin->absmax2, lin->bias};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        device_free(be, parts[i]);
    if (qe_cuda_format_needs_workspace(lin->format))
        state_of(be)->n_quantized_linears--;
    free(lin);
}

static qe_status cuda_prepare_linear(qe_backend *be, qe_weight *w, qe_dtype compute_dtype, qe_backend_linear **out,
                                     qe_error *err)
{
    *out = NULL;
    qe_backend_linear *lin = (qe_backend_linear *)calloc(1, sizeof *lin);
    if (!lin) {
        qe_weight_free(w);
        return qe_fail(err, QE_ENOMEM, "CUDA backend: out of host memory for a linear");
    }
    lin->format = w->format;
    lin->n_out = w->n_out;
    lin->n_in = w->n_in;
    lin->bytes = qe_weight_bytes(w);
    size_t n = (size_t)w->n_out * w->n_in;
    switch (w->format) {
    case QE_WEIGHT_F32: lin->data = upload_copy(be, w->f32, n * sizeof(float), QE_MEM_LINEAR); break;
    case QE_WEIGHT_BF16:
    case QE_WEIGHT_F16: lin->data = upload_copy(be, w->half, n * sizeof(uint16_t), QE_MEM_LINEAR); break;
    case QE_WEIGHT_INT8:
        lin->threshold = w->int8_threshold;
        if ((lin->data = upload_copy(be, w->int8.q, n, QE_MEM_LINEAR)))
            lin->scale = (float *)upload_copy(be, w->int8.scale, (size_t)w->n_out * sizeof(float), QE_MEM_LINEAR);
        break;
    case QE_WEIGHT_NF4: {
        const qe_nf4_weight *q = &w->nf4;
        float code8[256];
        qe_dynamic_map_signed(code8);
        if (q->is_double_quant && memcmp(code8, q->code8, sizeof code8) != 0) {
            qe_backend_fail(be, QE_EUNSUPPORTED, "CUDA backend: an NF4 weight double-quantized with another map");
            break;
        }
        lin->block_size = q->block_size;
        lin->offset = q->offset;
        if (!(lin->data = upload_copy(be, q->packed, (size_t)(q->n_elements + 1) / 2, QE_MEM_LINEAR)))
            break;
        if (!q->is_double_quant)
            lin->absmax = (float *)upload_copy(be, q->absmax, (size_t)q->n_blocks * sizeof(float), QE_MEM_LINEAR);
        else if ((lin->qabsmax = (uint8_t *)upload_copy(be, q->qabsmax, (size_t)q->n_blocks, QE_MEM_LINEAR)))
            lin->absmax2 =
                (float *)upload_copy(be, q->absmax2, (size_t)q->n_blocks2 * sizeof(float), QE_MEM_LINEAR);
        break;
    }
    }
    // the bias as the loader rounded it: in the compute dtype (a float32 weight's in float32)
    lin->compute_dtype = compute_dtype;
    lin->bias_dtype = w->format == QE_WEIGHT_F32 ? QE_DTYPE_F32 : compute_dtype;
    if (w->bias && !qe_backend_failed(be))
        lin->bias = upload_in_dtype(be, w->bias, (size_t)w->n_out, (qe_dtype)lin->bias_dtype, QE_MEM_LINEAR);
    qe_weight_free(w);
    if (qe_cuda_format_needs_workspace(lin->format))
        state_of(be)->n_quantized_linears++;
    if (compute_dtype != QE_DTYPE_F32)
        state_of(be)->has_16bit_compute = true;
    uint64_t n_elements = (uint64_t)lin->n_out * (uint64_t)lin->n_in;
    if (lin->format == QE_WEIGHT_NF4 && n_elements > state_of(be)->nf4_max_elements)
        state_of(be)->nf4_max_elements = n_elements;
    if (qe_backend_failed(be)) {
        cuda_free_linear(be, lin);
        return qe_backend_take_error(be, err);
    }
    *out = lin;
    return QE_OK;
}

static uint64_t cuda_linear_bytes(const qe_backend *be, const qe_backend_linear *lin) { return lin ? lin->bytes : 0; }

// Held in dtype; rmsnorm_kernel reads it with the same dtype (backend.h).
static float *cuda_upload_new(qe_backend *be, const float *host, size_t n, qe_dtype dtype)
{
    return (float *)upload_in_dtype(be, host, n, dtype, QE_MEM_NORM);
}

// ---- ops -------------------------------------------------------------------------------------

// host[bytes] to dst, in stream order, through the pinned ring (UPLOAD_SLOTS); host may be
// reused on return.
static bool stage_upload(qe_backend *be, void *dst, const void *host, size_t bytes)
{
    cuda_state *s = state_of(be);
    if (bytes > UPLOAD_SLOT_BYTES)
        return CHECK_CUDA(be, cudaMemcpyAsync(dst, host, bytes, cudaMemcpyHostToDevice, s->stream));
    if (s->upload_used + bytes > UPLOAD_SLOT_BYTES) {
        if (!CHECK_CUDA(be, cudaEventRecord(s->upload_done[s->upload_slot], s->stream)))
            return false;
        s->upload_slot = (s->upload_slot + 1) % UPLOAD_SLOTS;
        s->upload_used = 0;
        if (!CHECK_CUDA(be, cudaEventSynchronize(s->upload_done[s->upload_slot])))
            return false;
    }
    unsigned char *at = s->upload_ring + (size_t)s->upload_slot * UPLOAD_SLOT_BYTES + s->upload_used;
    memcpy(at, host, bytes);
    s->upload_used += round_up(bytes, 16);
    return CHECK_CUDA(be, cudaMemcpyAsync(dst, at, bytes, cudaMemcpyHostToDevice, s->stream));
}

static void cuda_embed(qe_backend *be, const qe_backend_linear *table, const int32_t *ids, int n_tok, float scale,
                       qe_dtype dtype, float *out)
{
    cuda_state *s = state_of(be);
    if (qe_backend_failed(be))
        return;
    if (table->format != QE_WEIGHT_F32 && table->format != QE_WEIGHT_BF16 && table->format != QE_WEIGHT_F16) {
        qe_backend_fail(be, QE_EINVAL, "CUDA backend: an embedding table in format %s",
                        qe_weight_format_name(table->format));
        return;
    }
    if (!table->is_embedding) { // the first lookup tells which weight is the table
        qe_backend_linear *t = (qe_backend_linear *)table;
        t->is_embedding = true;
        reclassify(s, t->data, QE_MEM_EMBEDDING);
    }
    // the scale as the CPU rounds it, on the host: one value
    float rounded = scale;
    if (dtype == QE_DTYPE_BF16)
        rounded = qe_round_bf16(scale);
    else if (dtype == QE_DTYPE_F16)
        rounded = qe_round_f16(scale);
    int dim = table->n_in;
    for (int t0 = 0; t0 < n_tok; t0 += STAGING_ROWS) {
        int nt = n_tok - t0 < STAGING_ROWS ? n_tok - t0 : STAGING_ROWS;
        for (int t = t0; t < t0 + nt; t++)
            if (ids[t] < 0 || ids[t] >= table->n_out) {
                qe_backend_fail(be, QE_EINVAL, "CUDA backend: token id %d outside the table of %d", ids[t],
                                table->n_out);
                return;
            }
        if (!stage_upload(be, s->staged_ids, ids + t0, (size_t)nt * sizeof *ids))
            return;
        size_t n = (size_t)nt * dim;
        launch(s, embed_kernel, blocks_for(n, 256), 256, 0, table->data, table->format, dim, s->staged_ids, nt, rounded,
               dtype, out + (size_t)t0 * dim);
        if (!CHECK_LAUNCH(be))
            return;
        // the staging buffer is reused by the next chunk: let this one's kernel read it first
        if (t0 + nt < n_tok && !CHECK_CUDA(be, cudaStreamSynchronize(s->stream)))
            return;
    }
}

// Tokens per workspace pass, or 0 (sticky error) when the workspace cannot hold one token.
static int workspace_tokens(qe_backend *be, const qe_backend_linear *lin)
{
    cuda_state *s = state_of(be);
    if (!s->workspace || lin->n_in > s->ws_n_in) {
        qe_backend_fail(be, QE_EINVAL,
                        "CUDA backend: a [%d, %d] linear needs workspace for %d inputs per token, %d reserved "
                        "(reserve_workspace)",
                        lin->n_out, lin->n_in, lin->n_in, s->ws_n_in);
        return 0;
    }
    return s->ws_tokens;
}

template <int WARP_NTILES>
static void launch_int8_mma(const cuda_state *s, const qe_backend_linear *lin, const int8_activations &a, int n_tok,
                            float *y)
{
    dim3 grid(blocks_for(lin->n_out, IMMA_BM), blocks_for(n_tok, imma_tokens(WARP_NTILES)));
    launch(s, int8_mma_kernel<WARP_NTILES>, grid, IMMA_THREADS, imma_smem_bytes(WARP_NTILES), *lin, a, n_tok, y);
}

static void linear_int8_tokens(qe_backend *be, const qe_backend_linear *lin, const float *x, int n_tok, float *y)
{
    cuda_state *s = state_of(be);
    size_t n = (size_t)n_tok * lin->n_in;
    int8_t *q = (int8_t *)s->workspace;
    int *cols = (int *)(s->workspace + ((n + 15) & ~(size_t)15));
    float *vals = (float *)(cols + n);
    float *row_absmax = vals + n;
    int *n_outliers = (int *)(row_absmax + n_tok);
    launch(s, int8_quantize_kernel, n_tok, INT8_THREADS, 0, x, lin->n_in, lin->threshold, q, row_absmax, n_outliers,
           cols, vals);
    if (!CHECK_LAUNCH(be))
        return;
    int8_activations a = {q, row_absmax, n_outliers, cols, vals};
    if (s->compute_capability >= 80 && n_tok >= INT8_MMA_MIN_TOKENS) {
        // 128-token tiles read the weights half as often, where they still give every SM a block
        bool is_wide = n_tok > imma_tokens(IMMA_NARROW) &&
                       blocks_for(lin->n_out, IMMA_BM) * blocks_for(n_tok, imma_tokens(IMMA_WIDE)) >=
                           (unsigned)s->n_sms;
        if (is_wide)
            launch_int8_mma<IMMA_WIDE>(s, lin, a, n_tok, y);
        else
            launch_int8_mma<IMMA_NARROW>(s, lin, a, n_tok, y);
    } else {
        dim3 grid(blocks_for(lin->n_out, 8), blocks_for(n_tok, INT8_TOKENS));
        launch(s, int8_matmul_kernel, grid, 256, 0, *lin, a, n_tok, y);
    }
    CHECK_LAUNCH(be);
}

static void cuda_linear(qe_backend *be, const qe_backend_linear *weight, const float *x, int n_tok, qe_dtype out_dtype,
                        float *y)
{
    cuda_state *s = state_of(be);
    if (qe_backend_failed(be) || n_tok <= 0)
        return;
    qe_backend_linear call = *weight; // the kernels take it by value, with this call's rounding
    call.out_dtype = out_dtype;
    const qe_backend_linear *lin = &call;
    if (linear_uses_mma(s, lin)) {
        linear_mma(be, lin, x, NULL, n_tok, y);
        return;
    }
    if (lin->format == QE_WEIGHT_F32) {
        if (n_tok >= F32_GEMM_MIN_TOKENS) {
            dim3 grid(blocks_for(lin->n_out, F32_BM), blocks_for(n_tok, F32_BN));
            launch(s, f32_gemm_kernel, grid, F32_THREADS, 0, *lin, x, n_tok, y);
        } else {
            dim3 grid(blocks_for(lin->n_out, F32_DECODE_ROWS), blocks_for(n_tok, LINEAR_TOKENS));
            launch(s, f32_decode_kernel, grid, F32_DECODE_WARPS * 32, 0, *lin, x, n_tok, y);
        }
        CHECK_LAUNCH(be);
        return;
    }
    if (lin->format != QE_WEIGHT_INT8) {
        dim3 grid(blocks_for(lin->n_out, 8), blocks_for(n_tok, LINEAR_TOKENS));
        launch(s, linear_kernel, grid, 256, 0, *lin, x, n_tok, y);
        CHECK_LAUNCH(be);
        return;
    }
    int chunk = workspace_tokens(be, lin);
    for (int t0 = 0; chunk > 0 && t0 < n_tok && !qe_backend_failed(be); t0 += chunk) {
        int nt = n_tok - t0 < chunk ? n_tok - t0 : chunk;
        linear_int8_tokens(be, lin, x + (size_t)t0 * lin->n_in, nt, y + (size_t)t0 * lin->n_out);
    }
}

// One launch where every linear takes the decode kernel in one format; prefill linears that
// all run on tensor cores share one x16_of; else one call each.
static void cuda_linears(qe_backend *be, int n, const qe_backend_linear *const *weights, const float *x, int n_tok,
                         qe_dtype out_dtype, float *const *ys)
{
    cuda_state *s = state_of(be);
    qe_backend_linear calls[QE_LINEARS_MAX];
    const qe_backend_linear *call_of[QE_LINEARS_MAX];
    bool is_mma = n >= 1 && n <= QE_LINEARS_MAX && n_tok >= 1;
    bool is_one_launch = is_mma && n_tok <= MMA_DECODE_MAX_TOKENS;
    for (int i = 0; i < n && is_mma; i++) {
        calls[i] = *weights[i];
        calls[i].out_dtype = out_dtype;
        call_of[i] = &calls[i];
        is_mma = linear_uses_mma(s, &calls[i]) && calls[i].compute_dtype == calls[0].compute_dtype &&
                 calls[i].n_in == calls[0].n_in;
        is_one_launch = is_one_launch && is_mma && gemv_fits(&calls[i], x) && calls[i].format == calls[0].format;
    }
    if (is_mma && n_tok > MMA_DECODE_MAX_TOKENS && !qe_backend_failed(be)) {
        const uint16_t *x16 = calls[0].compute_dtype == QE_DTYPE_F16 ? x16_of<__half>(be, x, n_tok, calls[0].n_in)
                                                                    : x16_of<__nv_bfloat16>(be, x, n_tok, calls[0].n_in);
        for (int i = 0; i < n && x16; i++)
            linear_mma(be, &calls[i], x, x16, n_tok, ys[i]);
        return;
    }
    if (!is_one_launch) {
        for (int i = 0; i < n; i++)
            cuda_linear(be, weights[i], x, n_tok, out_dtype, ys[i]);
        return;
    }
    if (qe_backend_failed(be))
        return;
    launch_gemv_of(s, gemv_batch_of(n, call_of, ys), x, n_tok);
    CHECK_LAUNCH(be);
}

static void cuda_rmsnorm(qe_backend *be, const float *x, const float *weight, float offset, float eps, int n_rows,
                         int dim, qe_dtype dtype, float *y)
{
    if (qe_backend_failed(be) || n_rows <= 0)
        return;
    // x is only read without a delta
    launch(state_of(be), rmsnorm_kernel, n_rows, 256, 0, (float *)x, NULL, weight, offset, eps, dim, dtype, y);
    CHECK_LAUNCH(be);
}

static void cuda_add_rmsnorm(qe_backend *be, float *x, const float *delta, const float *weight, float offset, float eps,
                             int n_rows, int dim, qe_dtype dtype, float *y)
{
    if (qe_backend_failed(be) || n_rows <= 0)
        return;
    launch(state_of(be), rmsnorm_kernel, n_rows, 256, 0, x, delta, weight, offset, eps, dim, dtype, y);
    CHECK_LAUNCH(be);
}

static void cuda_rope_qk(qe_backend *be, float *q, float *k, int n_tok, int n_heads, int n_kv_heads, int head_dim,
                         const float *cos_table, const float *sin_table, qe_dtype dtype)
{
    if (qe_backend_failed(be) || n_tok <= 0)
        return;
    launch(state_of(be), rope_kernel, n_tok * (n_heads + n_kv_heads), 64, 0, q, k, n_tok, n_heads, n_kv_heads, head_dim,
           cos_table, sin_table, dtype);
    CHECK_LAUNCH(be);
}

static void cuda_rope(qe_backend *be, float *x, int n_tok, int n_heads, int head_dim, const float *cos_table,
                      const float *sin_table, qe_dtype dtype)
{
    cuda_rope_qk(be, x, NULL, n_tok, n_heads, 0, head_dim, cos_table, sin_table, dtype);
}

// Whether args may run (sticky error if not): reserved positions, ring, head_dim.
static bool attention_args_fit(qe_backend *be, const qe_attention_args *args)
{
    if (args->pos0 + args->n_tok > state_of(be)->ws_context) {
        qe_backend_fail(be, QE_EINVAL, "CUDA backend: attention over %d positions, %d reserved (reserve_workspace)",
                        args->pos0 + args->n_tok, state_of(be)->ws_context);
        return false;
    }
    const char *ring_problem = qe_attention_ring_problem(args);
    if (ring_problem) {
        qe_backend_fail(be, QE_EINVAL, "CUDA backend: attention over a cache of %d rows at positions %d..%d: %s",
                        args->kv_ring, args->pos0, args->pos0 + args->n_tok - 1, ring_problem);
        return false;
    }
    if (args->head_dim > ATT_MAX_HEAD_DIM || args->head_dim % 8) {
        qe_backend_fail(be, QE_EUNSUPPORTED, "CUDA backend: attention over head_dim %d (a multiple of 8, at most %d)",
                        args->head_dim, ATT_MAX_HEAD_DIM);
        return false;
    }
    return true;
}

// The kernel of a head_dim: KERNEL<D32> for the smallest D32 (of 2, 4, 8, the most) that holds it.
#define ATT_BY_HEAD_DIM(KERNEL, head_dim)                                                                          \
    ((head_dim) <= 64    ? KERNEL<2>                                                                               \
     : (head_dim) <= 128 ? KERNEL<4>                                                                               \
     : (head_dim) <= 256 ? KERNEL<8>                                                                               \
                         : KERNEL<ATT_MAX_HEAD_DIM / 32>)

static void cuda_attention(qe_backend *be, const qe_attention_args *args, qe_dtype dtype)
{
    if (qe_backend_failed(be) || args->n_tok <= 0 || !attention_args_fit(be, args))
        return;
    if (!args->seg_row && args->n_tok <= ATT_DECODE_MAX_TOKENS) {
        launch(state_of(be), ATT_BY_HEAD_DIM(attention_decode_kernel, args->head_dim), dim3(args->n_tok, args->n_heads),
               ATT_DECODE_WARPS * 32, attention_decode_smem_bytes(args->head_dim), *args, dtype);
        CHECK_LAUNCH(be);
        return;
    }
    // head_dim <= 128 takes the register tiles where a block gets their shared memory and one
    // chunk slot, and as many slots as fit (scores kept between the passes); the rest attend()
    int rt_d32 = args->head_dim <= 64 ? 2 : ATT_RT_MAX_D32, n_slots = 0;
    if (args->head_dim <= 32 * ATT_RT_MAX_D32) {
        size_t slot_bytes = sizeof(float) * ATT_RT_SLOT_FLOATS, fixed_bytes = attention_rt_smem_bytes(rt_d32, 0);
        if ((size_t)state_of(be)->smem_optin_bytes >= fixed_bytes + slot_bytes)
            n_slots = (int)(((size_t)state_of(be)->smem_optin_bytes - fixed_bytes) / slot_bytes);
    }
    bool is_rt = n_slots > 0;
    void (*kernel)(qe_attention_args, int) = ATT_BY_HEAD_DIM(attention_kernel, args->head_dim);
    void (*rt_kernel)(qe_attention_args, int, int) = rt_d32 == 2 ? attention_rt_kernel<2> : attention_rt_kernel<ATT_RT_MAX_D32>;
    size_t smem_bytes = is_rt ? attention_rt_smem_bytes(rt_d32, n_slots) : attention_smem_bytes(args->head_dim);
    if (smem_bytes > (size_t)state_of(be)->smem_optin_bytes) {
        qe_backend_fail(be, QE_EUNSUPPORTED, "CUDA backend: attention over head_dim %d needs %zu bytes of shared memory",
                        args->head_dim, smem_bytes);
        return;
    }
    const cuda_state *s = state_of(be);
    if (is_rt)
        launch(s, rt_kernel, dim3((args->n_tok + ATT_RT_QUERIES - 1) / ATT_RT_QUERIES, args->n_heads), ATT_RT_THREADS,
               smem_bytes, *args, dtype, n_slots);
    else
        launch(s, kernel, dim3((args->n_tok + ATT_QUERIES - 1) / ATT_QUERIES, args->n_heads), ATT_THREADS, smem_bytes,
               *args, dtype);
    CHECK_LAUNCH(be);
}

// ATT_ROWS_MAX sequences a launch: their rope, one-token attention, their cache rows written by it.
static void cuda_attend_rows(qe_backend *be, int n, const qe_attention_args *args, float *k_rows, const float *v_rows,
                             const float *cos_table, const float *sin_table, qe_dtype dtype)
{
    for (int i = 0; i < n; i++)
        if (qe_backend_failed(be) || !attention_args_fit(be, &args[i]))
            return;
    size_t kvd = (size_t)args[0].n_kv_heads * args[0].head_dim, half = (size_t)args[0].head_dim / 2;
    for (int i0 = 0; i0 < n; i0 += ATT_ROWS_MAX) {
        int n_rows = n - i0 < ATT_ROWS_MAX ? n - i0 : ATT_ROWS_MAX;
        attention_rows rows = {};
        rows.common = args[i0];
        rows.k_rows = k_rows + i0 * kvd;
        rows.v_rows = v_rows + i0 * kvd;
        rows.cos_rows = cos_table ? cos_table + i0 * half : NULL;
        rows.sin_rows = sin_table ? sin_table + i0 * half : NULL;
        for (int i = 0; i < n_rows; i++) {
            const qe_attention_args *a = &args[i0 + i];
            rows.row[i] = {a->q, a->k_cache, a->v_cache, a->out, a->pos_buf, a->pos0, a->kv_ring};
        }
        launch(state_of(be), ATT_BY_HEAD_DIM(attention_rows_kernel, rows.common.head_dim),
               dim3(n_rows, rows.common.n_heads), ATT_DECODE_WARPS * 32,
               attention_decode_smem_bytes(rows.common.head_dim), rows, dtype);
        if (!CHECK_LAUNCH(be))
            return;
    }
}

static void cuda_glu(qe_backend *be, qe_activation act, const float *gate, const float *up, size_t n, qe_dtype dtype,
                     float *y)
{
    if (qe_backend_failed(be) || n == 0)
        return;
    launch(state_of(be), glu_kernel, blocks_for(n, 256), 256, 0, act, gate, up, n, dtype, y);
    CHECK_LAUNCH(be);
}

// Decoding, where both linears take the GEMV in one format: one launch whose blocks run a row
// tile of gate and of up and apply the GLU to the two rounded outputs (gemv_glu_batch); else the
// linears, then glu.
static void cuda_glu_linears(qe_backend *be, qe_activation act, const qe_backend_linear *gate,
                             const qe_backend_linear *up, const float *x, int n_tok, int n_out, qe_dtype dtype,
                             float *gate_y, float *up_y)
{
    cuda_state *s = state_of(be);
    qe_backend_linear calls[2] = {*gate, *up};
    calls[0].out_dtype = calls[1].out_dtype = dtype;
    bool is_one_launch = n_tok >= 1 && n_tok <= MMA_DECODE_MAX_TOKENS && calls[0].format == calls[1].format &&
                         calls[0].n_in == calls[1].n_in && calls[0].n_out == calls[1].n_out;
    for (int i = 0; i < 2; i++)
        is_one_launch = is_one_launch && linear_uses_mma(s, &calls[i]) && gemv_fits(&calls[i], x);
    if (!is_one_launch) {
        const qe_backend_linear *lins[2] = {gate, up};
        float *ys[2] = {gate_y, up_y};
        cuda_linears(be, 2, lins, x, n_tok, dtype, ys);
        cuda_glu(be, act, gate_y, up_y, (size_t)n_tok * n_out, dtype, gate_y);
        return;
    }
    if (qe_backend_failed(be))
        return;
    launch_gemv_of(s, gemv_glu_batch(&calls[0], &calls[1], act, dtype, gate_y), x, n_tok);
    CHECK_LAUNCH(be);
}

static void cuda_add(qe_backend *be, float *y, const float *x, size_t n, qe_dtype dtype)
{
    if (qe_backend_failed(be) || n == 0)
        return;
    launch(state_of(be), add_kernel, blocks_for(n, 256), 256, 0, y, x, n, dtype);
    CHECK_LAUNCH(be);
}

static void memcpy_op(qe_backend *be, void *dst, const void *src, size_t n, cudaMemcpyKind kind)
{
    cuda_state *s = state_of(be);
    if (qe_backend_failed(be) || n == 0)
        return;
    if (CHECK_CUDA(be, cudaMemcpyAsync(dst, src, n * sizeof(float), kind, s->stream)) &&
        kind == cudaMemcpyDeviceToHost) // the caller reads the host copy as soon as we return
        CHECK_CUDA(be, cudaStreamSynchronize(s->stream));
}

static void cuda_copy(qe_backend *be, float *dst, const float *src, size_t n)
{
    memcpy_op(be, dst, src, n, cudaMemcpyDeviceToDevice);
}

static void cuda_download(qe_backend *be, float *host, const float *src, size_t n)
{
    if (qe_backend_failed(be)) // the caller reads host: leave no stale numbers there
        for (size_t i = 0; i < n; i++)
            host[i] = NAN;
    memcpy_op(be, host, src, n, cudaMemcpyDeviceToHost);
}

static void cuda_upload(qe_backend *be, float *dst, const float *host, size_t n)
{
    if (!qe_backend_failed(be) && n > 0)
        stage_upload(be, dst, host, n * sizeof(float));
}

// The rows are reduced where they are (row_stats_kernel, the host's bits); a pass sends its
// targets through the staging buffer and brings back one row_partial per row.
static void cuda_row_stats(qe_backend *be, const float *logits, int n_rows, int n_vocab, const int32_t *targets,
                           qe_row_stats *out)
{
    cuda_state *s = state_of(be);
    if (n_vocab <= 0 && !qe_backend_failed(be))
        qe_backend_fail(be, QE_EINVAL, "CUDA backend: row stats of a %d-wide row", n_vocab);
    int32_t *staged_targets = s->staged_ids;
    row_partial *partials = (row_partial *)(s->staged_ids + ROW_STATS_ROWS);
    row_split *split = (row_split *)(partials + ROW_STATS_ROWS);
    for (int r0 = 0; r0 < n_rows && !qe_backend_failed(be); r0 += ROW_STATS_ROWS) {
        int nr = n_rows - r0 < ROW_STATS_ROWS ? n_rows - r0 : ROW_STATS_ROWS;
        if (targets && !stage_upload(be, staged_targets, targets + r0, (size_t)nr * sizeof *targets))
            break;
        const float *rows = logits + (size_t)r0 * n_vocab;
        if (nr <= ROW_SPLIT_ROWS) {
            CHECK_CUDA(be, cudaMemsetAsync(split, 0, offsetof(row_split, lanes), s->stream));
            launch(s, row_max_kernel, dim3(ROW_SPLIT_BLOCKS, nr), 256, 0, rows, n_vocab, split);
            launch(s, row_sum_kernel, dim3(ROW_SPLIT_BLOCKS, nr), 32, 0, rows, n_vocab,
                   targets ? staged_targets : NULL, split, partials);
        } else {
            launch(s, row_stats_kernel, nr, QE_LSE_LANES, 0, rows, n_vocab, targets ? staged_targets : NULL, partials);
        }
        if (!CHECK_LAUNCH(be) ||
            !CHECK_CUDA(be, cudaMemcpyAsync(s->host_partials, partials, (size_t)nr * sizeof *partials,
                                            cudaMemcpyDeviceToHost, s->stream)) ||
            !CHECK_CUDA(be, cudaStreamSynchronize(s->stream)))
            break;
        for (int r = 0; r < nr; r++) {
            const row_partial *p = &s->host_partials[r];
            out[r0 + r] = (qe_row_stats){p->argmax, p->max_logit, qe_log_z_of(p->max_logit, p->has_nan, p->lane_sum),
                                         p->target_logit};
        }
    }
    if (qe_backend_failed(be))
        for (int r = 0; r < n_rows; r++) {
            out[r].argmax = -1;
            out[r].max_logit = out[r].target_logit = NAN;
            out[r].log_z = NAN;
        }
}

static qe_status cuda_sync(qe_backend *be, qe_error *err)
{
    cuda_state *s = state_of(be);
    CHECK_CUDA(be, cudaStreamSynchronize(s->stream));
    CHECK_CUDA(be, cudaGetLastError());
    return qe_backend_take_error(be, err);
}

// ---- recorded steps ---------------------------------------------------------------------------
// A decode step is ~300 launches of a few microseconds each, and the GPU would wait on the host's
// launching; a recording (a CUDA graph) is launched once and its kernels follow each other on the
// device. Recorded by stream capture; recorded again under a slot's key, the old executable is
// updated in place where the two graphs have the same shape (cudaGraphExecUpdate).

static void forget_graph(recorded_graph *g)
{
    if (g->exec)
        cudaGraphExecDestroy(g->exec);
    memset(g, 0, sizeof *g);
}

static bool cuda_graph_begin(qe_backend *be, const void *key, size_t key_bytes)
{
    cuda_state *s = state_of(be);
    s->recording = -1;
    if (s->graphs_off || key_bytes == 0 || key_bytes > GRAPH_KEY_BYTES || qe_backend_failed(be))
        return false;
    int slot = -1, spare = 0;
    for (int i = 0; i < GRAPH_SLOTS; i++) {
        recorded_graph *g = &s->graphs[i];
        if (g->key_bytes == key_bytes && memcmp(g->key, key, key_bytes) == 0)
            slot = i;
        if (g->last_used < s->graphs[spare].last_used) // free slots have 0
            spare = i;
    }
    if (slot >= 0 && s->graphs[slot].generation == s->generation) {
        s->graphs[slot].last_used = ++s->graph_clock;
        s->n_replays++;
        CHECK_CUDA(be, cudaGraphLaunch(s->graphs[slot].exec, s->stream));
        return true;
    }
    if (slot < 0) { // a new key takes the least recently used slot (and may update its executable)
        slot = spare;
        memcpy(s->graphs[slot].key, key, key_bytes);
        s->graphs[slot].key_bytes = key_bytes;
    }
    if (CHECK_CUDA(be, cudaStreamBeginCapture(s->stream, cudaStreamCaptureModeThreadLocal)))
        s->recording = slot;
    return false;
}

static void cuda_graph_end(qe_backend *be)
{
    cuda_state *s = state_of(be);
    if (s->recording < 0)
        return;
    recorded_graph *g = &s->graphs[s->recording];
    s->recording = -1;
    cudaGraph_t graph = NULL;
    // a failed op's error is already the sticky one; the capture's own failure names it otherwise
    bool ok = CHECK_CUDA(be, cudaStreamEndCapture(s->stream, &graph)) && !qe_backend_failed(be);
    if (ok && g->exec) {
        cudaGraphExecUpdateResultInfo info;
        if (cudaGraphExecUpdate(g->exec, graph, &info) != cudaSuccess) { // another shape: built anew
            cudaGetLastError();
            cudaGraphExecDestroy(g->exec);
            g->exec = NULL;
        }
    }
    if (ok && !g->exec)
        ok = CHECK_CUDA(be, cudaGraphInstantiate(&g->exec, graph, 0));
    if (graph)
        cudaGraphDestroy(graph);
    if (!ok) {
        forget_graph(g);
        return;
    }
    g->generation = s->generation;
    g->last_used = ++s->graph_clock;
    CHECK_CUDA(be, cudaGraphLaunch(g->exec, s->stream));
}

extern "C" void qe_backend_cuda_set_graphs(qe_backend *be, bool on) { state_of(be)->graphs_off = !on; }
extern "C" uint64_t qe_backend_cuda_replays(const qe_backend *be) { return state_of(be)->n_replays; }

static void cuda_destroy(qe_backend *be)
{
    if (!be)
        return;
    cuda_state *s = state_of(be);
    if (s) {
        if (s->stream)
            cudaStreamSynchronize(s->stream);
        for (int i = 0; i < s->n_items; i++) // whatever the model did not release
            device_give_back(s, s->items[i].ptr, s->items[i].bytes);
        arena_destroy(&s->arena);
        for (int i = 0; i < GRAPH_SLOTS; i++)
            forget_graph(&s->graphs[i]);
        for (int i = 0; i < UPLOAD_SLOTS; i++)
            if (s->upload_done[i])
                cudaEventDestroy(s->upload_done[i]);
        if (s->upload_ring)
            cudaFreeHost(s->upload_ring);
        if (s->host_partials)
            cudaFreeHost(s->host_partials);
        if (s->stream)
            cudaStreamDestroy(s->stream);
        free(s->items);
        free(s);
    }
    free(be);
}

// ---- creation --------------------------------------------------------------------------------

// The kernels whose shared memory may pass the 48 KB a block gets unasked (the linears' rings, the
// prefill attention's kept scores) may take what the device gives, set once here: the setting
// is a driver call that a launch must not pay (decode launches ~300 kernels a token).
#define GEMV_KERNELS(T, IS_NF4)                                                                                   \
    (const void *)mma_gemv_kernel<T, IS_NF4, 4>, (const void *)mma_gemv_kernel<T, IS_NF4, 8>,                        \
        (const void *)mma_gemv_kernel<T, IS_NF4, 16>

static bool allow_large_smem(qe_backend *be)
{
    cuda_state *s = state_of(be);
    const void *attention_kernels[] = {
        (const void *)attention_kernel<2>, (const void *)attention_kernel<4>, (const void *)attention_kernel<8>,
        (const void *)attention_kernel<ATT_MAX_HEAD_DIM / 32>, (const void *)attention_rt_kernel<2>,
        (const void *)attention_rt_kernel<ATT_RT_MAX_D32>};
    const void *tensor_core_kernels[] = { // sm_80 on
        (const void *)int8_mma_kernel<IMMA_NARROW>, (const void *)int8_mma_kernel<IMMA_WIDE>,
        GEMV_KERNELS(__nv_bfloat16, false), GEMV_KERNELS(__nv_bfloat16, true), GEMV_KERNELS(__half, false),
        (const void *)mma_linear_kernel<__nv_bfloat16, false, 2>,
        (const void *)mma_linear_kernel<__nv_bfloat16, false, 4>, (const void *)mma_linear_kernel<__nv_bfloat16, true, 2>,
        (const void *)mma_linear_kernel<__nv_bfloat16, true, 4>, (const void *)mma_linear_kernel<__half, false, 2>,
        (const void *)mma_linear_kernel<__half, false, 4>};
    size_t n_attention = sizeof attention_kernels / sizeof *attention_kernels;
    size_t n_tensor_core = s->compute_capability >= 80 ? sizeof tensor_core_kernels / sizeof *tensor_core_kernels : 0;
    bool ok = true;
    for (size_t i = 0; ok && i < n_attention + n_tensor_core; i++) {
        const void *kernel = i < n_attention ? attention_kernels[i] : tensor_core_kernels[i - n_attention];
        cudaFuncAttributes attributes; // the block's static shared memory comes out of the same budget
        ok = CHECK_CUDA(be, cudaFuncGetAttributes(&attributes, kernel)) &&
             CHECK_CUDA(be, cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                 s->smem_optin_bytes - (int)attributes.sharedSizeBytes));
    }
    return ok;
}

// Whether the environment sets variable to "0": a speed-up turned off, to compare with it on.
static bool is_turned_off(const char *variable)
{
    const char *value = getenv(variable);
    return value && strcmp(value, "0") == 0;
}

static qe_status create_fail(qe_backend *be, qe_error *err)
{
    qe_status rc = qe_backend_take_error(be, err);
    cuda_destroy(be);
    return rc;
}

extern "C" qe_status qe_backend_cuda_create(int device_index, qe_backend **out, qe_error *err)
{
    *out = NULL;
    int n_gpus = qe_gpu_count();
    if (n_gpus == 0)
        return qe_fail(err, QE_EUNSUPPORTED, "--device cuda:%d: this machine has no CUDA GPU (or no driver): use --device cpu",
                       device_index);
    if (device_index < 0 || device_index >= n_gpus) {
        qe_gpu_info first;
        qe_error ignored;
        if (qe_gpu_describe(0, &first, &ignored) != QE_OK)
            snprintf(first.name, sizeof first.name, "?");
        return qe_fail(err, QE_EUNSUPPORTED, "--device cuda:%d: this machine has %d GPU%s (cuda:0 is %s)", device_index,
                       n_gpus, n_gpus == 1 ? "" : "s", first.name);
    }
    qe_backend *be = (qe_backend *)calloc(1, sizeof *be);
    cuda_state *s = (cuda_state *)calloc(1, sizeof *s);
    if (!be || !s) {
        free(be);
        free(s);
        return qe_fail(err, QE_ENOMEM, "CUDA backend: out of host memory");
    }
    be->name = "cuda";
    be->impl = s;
    s->device = device_index;
    qe_gpu_info info;
    if (qe_gpu_describe(device_index, &info, err) != QE_OK) {
        cuda_destroy(be);
        return err->code;
    }
    snprintf(s->device_name, sizeof s->device_name, "%s", info.name);
    int cc_major = 0, cc_minor = 0;
    if (!CHECK_CUDA(be, cudaSetDevice(device_index)) || !CHECK_CUDA(be, cudaFree(0)) || // creates the context
        !CHECK_CUDA(be, cudaDeviceGetAttribute(&cc_major, cudaDevAttrComputeCapabilityMajor, device_index)) ||
        !CHECK_CUDA(be, cudaDeviceGetAttribute(&cc_minor, cudaDevAttrComputeCapabilityMinor, device_index)) ||
        !CHECK_CUDA(be, cudaDeviceGetAttribute(&s->n_sms, cudaDevAttrMultiProcessorCount, device_index)) ||
        !CHECK_CUDA(be, cudaDeviceGetAttribute(&s->smem_optin_bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin,
                                               device_index)) ||
        !CHECK_CUDA(be, cudaMemGetInfo(&s->free_at_create, &s->device_total)) ||
        !CHECK_CUDA(be, cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking)))
        return create_fail(be, err);
    s->compute_capability = 10 * cc_major + cc_minor;
    arena_init(&s->arena, device_index);
    s->device_used_peak = s->device_total - s->free_at_create;
    if (!allow_large_smem(be))
        return create_fail(be, err);
    float code8[256];
    qe_dynamic_map_signed(code8);
    if (!CHECK_CUDA(be, cudaMemcpyToSymbol(c_nf4_code, qe_nf4_code, sizeof(float) * 16)) ||
        !CHECK_CUDA(be, cudaMemcpyToSymbol(c_code8, code8, sizeof code8)) ||
        !CHECK_CUDA(be, cudaMallocHost((void **)&s->host_partials, ROW_STATS_ROWS * sizeof(row_partial))) ||
        !CHECK_CUDA(be, cudaMallocHost((void **)&s->upload_ring, (size_t)UPLOAD_SLOTS * UPLOAD_SLOT_BYTES)))
        return create_fail(be, err);
    for (int i = 0; i < UPLOAD_SLOTS; i++)
        if (!CHECK_CUDA(be, cudaEventCreateWithFlags(&s->upload_done[i], cudaEventDisableTiming)))
            return create_fail(be, err);
    s->recording = -1;
    // off: every op launched as it is called; each kernel started after the one before
    s->graphs_off = is_turned_off("QEVAL_CUDA_GRAPHS");
    s->early_launch = s->compute_capability >= 90 && !is_turned_off("QEVAL_CUDA_PDL");
    if (!(s->staged_ids = (int32_t *)device_alloc(be, STAGING_ROWS * sizeof(int32_t), QE_MEM_WORKSPACE)))
        return create_fail(be, err);

    be->alloc = cuda_alloc;
    be->release = cuda_release;
    be->grow = cuda_grow;
    be->reserve_workspace = cuda_reserve_workspace;
    be->prepare_linear = cuda_prepare_linear;
    be->free_linear = cuda_free_linear;
    be->linear_bytes = cuda_linear_bytes;
    be->upload_new = cuda_upload_new;
    be->embed = cuda_embed;
    be->linear = cuda_linear;
    be->linears = cuda_linears;
    be->rmsnorm = cuda_rmsnorm;
    be->add_rmsnorm = cuda_add_rmsnorm;
    be->rope = cuda_rope;
    be->rope_qk = cuda_rope_qk;
    be->attention = cuda_attention;
    be->attend_rows = cuda_attend_rows;
    be->glu = cuda_glu;
    be->glu_linears = cuda_glu_linears;
    be->add = cuda_add;
    be->copy = cuda_copy;
    be->download = cuda_download;
    be->upload = cuda_upload;
    be->row_stats = cuda_row_stats;
    be->graph_begin = cuda_graph_begin;
    be->graph_end = cuda_graph_end;
    be->sync = cuda_sync;
    be->destroy = cuda_destroy;
    *out = be;
    return QE_OK;
}
