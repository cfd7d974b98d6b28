/* simd — 8-lane float vectors (GCC/clang vector extensions) for the CPU kernels.
 *
 * The whole build uses -ffp-contract=off: left to itself, GCC 13 fused a multiply and an add in
 * some inlined copies of a dot product and not in others, so one token alone and the same token
 * in a batch got different bits. Where a kernel wants a fused multiply-add it says so with
 * qe_fma8, and every copy of a sum then rounds the same way. */
#ifndef QE_SIMD_H
#define QE_SIMD_H

#include <string.h>
#ifdef __FMA__
#include <immintrin.h>
#endif

typedef float qe_v8 __attribute__((vector_size(32)));

static inline qe_v8 qe_load8(const float *p)
{
    qe_v8 v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* acc + a * b, fused (one rounding) where the CPU has FMA. */
static inline qe_v8 qe_fma8(qe_v8 a, qe_v8 b, qe_v8 acc)
{
#ifdef __FMA__
    return (qe_v8)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)acc);
#else
    return acc + a * b;
#endif
}

/* The lanes' sum in a fixed pairwise order. */
static inline float qe_reduce8(qe_v8 v)
{
    return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
}

#endif
