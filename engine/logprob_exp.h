/* logprob_exp — the pieces of the log-sum-exp definition (logprob.h) that a GPU kernel repeats,
 * written once for the host compiler and nvcc so both give the same bits: an exponential of a
 * non-positive argument made of correctly rounded operations only (fma, +, *), and the lane
 * layout of the sum. libm's exp and CUDA's exp may differ in the last bit; these cannot. Both
 * sides compile without contraction (-ffp-contract=off, -fmad=false), so a product stays a
 * product. */
#ifndef QE_LOGPROB_EXP_H
#define QE_LOGPROB_EXP_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define QE_HOST_DEVICE __host__ __device__
#else
#define QE_HOST_DEVICE
#endif

/* Element i of a row is summed into lane i % QE_LSE_LANES in index order; the lanes are then
 * added pairwise (lane j += lane j + w, w = QE_LSE_LANES / 2 .. 1). One GPU block of this many
 * threads reduces a row; the host keeps the lanes in an array. */
#define QE_LSE_LANES 1024

/* Below this argument exp is taken as 0: a term under 2^-1021 cannot change a sum that holds
 * exp(0) = 1 (the maximum's own term), and 2^k stays a normal number. */
#define QE_EXP_FLOOR (-708.0)

/* exp(t) for t <= 0: t = k ln2 + r with |r| <= ln2 / 2, exp(r) by its Taylor series to r^13
 * (truncation under 5e-18), times 2^k built from its bits. Within 2 ulp of exp; NaN and
 * arguments below QE_EXP_FLOOR give 0 (callers account for NaN themselves). */
QE_HOST_DEVICE static inline double qe_exp_nonpositive(double t)
{
    const double shift = 0x1.8p52, log2e = 0x1.71547652b82fep0;
    const double ln2_hi = 0x1.62e42fee00000p-1, ln2_lo = 0x1.a39ef35793c76p-33;
    double tc = t >= QE_EXP_FLOOR ? t : QE_EXP_FLOOR; /* NaN too: keeps k in range */
    double kd = fma(tc, log2e, shift) - shift;        /* round(t / ln2), exactly an integer */
    double r = fma(-kd, ln2_lo, fma(-kd, ln2_hi, tc));
    double p = 1.0 / 6227020800.0;                    /* 1/13! */
    p = fma(p, r, 1.0 / 479001600.0);
    p = fma(p, r, 1.0 / 39916800.0);
    p = fma(p, r, 1.0 / 3628800.0);
    p = fma(p, r, 1.0 / 362880.0);
    p = fma(p, r, 1.0 / 40320.0);
    p = fma(p, r, 1.0 / 5040.0);
    p = fma(p, r, 1.0 / 720.0);
    p = fma(p, r, 1.0 / 120.0);
    p = fma(p, r, 1.0 / 24.0);
    p = fma(p, r, 1.0 / 6.0);
    p = fma(p, r, 0.5);
    p = fma(p, r, 1.0);
    p = fma(p, r, 1.0);
    uint64_t bits = (uint64_t)((int64_t)kd + 1023) << 52;
    double two_k;
    memcpy(&two_k, &bits, sizeof two_k);
    return t >= QE_EXP_FLOOR ? p * two_k : 0.0;
}

/* The pairwise sum of the lanes, lanes[0] holding it after. */
QE_HOST_DEVICE static inline void qe_lse_fold_lanes(double *lanes)
{
    for (int w = QE_LSE_LANES / 2; w >= 1; w /= 2)
        for (int j = 0; j < w; j++)
            lanes[j] += lanes[j + w];
}

#endif
