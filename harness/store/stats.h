/* stats — the statistics the reports print: means with standard errors and intervals, paired
 * tests between two variants on the same documents, distribution comparisons against the fp32
 * reference, percentiles and pass@k.
 *
 * Definitions follow the tools the numbers are compared with: the standard error is the sample
 * standard deviation over sqrt(n) (lm-evaluation-harness's mean_stderr); percentiles are numpy's
 * default (linear interpolation between order statistics); pass@k is the unbiased estimator of
 * Chen et al. (2021). Pure functions: no allocation except where a status is returned. An
 * undefined value (a standard error from one item, a mean of none) is NAN. */
#ifndef QR_STATS_H
#define QR_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qe_error.h"

#define QR_Z95 1.959963984540054 /* the standard normal's 97.5th percentile */

typedef struct {
    double mean;
    double std_error; /* sample stddev / sqrt(n); NAN when n < 2 */
    size_t n;
} qr_mean_se;

typedef struct {
    double lo, hi;
} qr_interval;

qr_mean_se qr_mean_stderr(const double *x, size_t n);
/* mean +- QR_Z95 * std_error */
qr_interval qr_normal_ci95(double mean, double std_error);
/* Wilson score interval for successes out of n at 95%; [0, 1] when n == 0. */
qr_interval qr_wilson_ci95(size_t successes, size_t n);

/* Exact McNemar test on paired binary outcomes: b = pairs where only the first is right, c =
 * pairs where only the second is. p = min(1, 2 P(X <= min(b, c))), X ~ Bin(b + c, 1/2). */
double qr_mcnemar_exact_p(size_t b, size_t c);
/* Counts the discordant pairs of two 0/1 outcome vectors (nonzero = correct). */
void qr_discordant_pairs(const double *first, const double *second, size_t n, size_t *b, size_t *c);

typedef struct {
    double mean_diff; /* mean of (a[i] - b[i])                                       */
    double t;         /* mean_diff / (sd / sqrt(n)); +-INFINITY when sd is 0 and mean isn't */
    double df;        /* n - 1                                                        */
    double p;         /* two-sided; 1 when every difference is 0; NAN when n < 2      */
} qr_ttest;
qr_ttest qr_paired_ttest(const double *a, const double *b, size_t n);

/* Student's t distribution: P(T <= t) with df degrees of freedom (df > 0). */
double qr_student_t_cdf(double t, double df);
/* The regularized incomplete beta function I_x(a, b), a, b > 0, 0 <= x <= 1. */
double qr_incomplete_beta(double x, double a, double b);

typedef struct {
    double mean_diff;      /* mean of (a[i] - b[i]) over the documents                           */
    qr_interval ci95;      /* 2.5th and 97.5th percentiles of the resampled mean differences      */
    double p;              /* two-sided: min(1, 2 min(share of resamples <= 0, share >= 0))       */
    size_t n_resamples;
} qr_bootstrap;

/* Paired bootstrap of the mean difference: n_resamples draws of n documents with replacement,
 * from a xoshiro256** stream seeded by splitmix64(seed); the same seed gives the same result. */
qe_status qr_paired_bootstrap(const double *a, const double *b, size_t n, size_t n_resamples, uint64_t seed,
                              qr_bootstrap *out, qe_error *err);

/* Comparing the reference's distribution over n outcomes (answer choices, or a vocabulary) with
 * a variant's. Inputs are log-probabilities up to an additive constant (raw loglikelihoods or
 * logits are fine): each side is normalized with a log-softmax first. */
typedef struct {
    double kl;          /* KL(reference || variant) = sum p_ref (log p_ref - log p_var), nats */
    bool is_top1_same;  /* the argmax (first on ties) is the same                         */
    double delta_p;     /* p_var[target] - p_ref[target]                                   */
} qr_dist_compare;
qr_dist_compare qr_compare_distributions(const double *logp_ref, const double *logp_var, size_t n, size_t target);
double qr_kl_divergence(const double *logp_ref, const double *logp_var, size_t n);
size_t qr_argmax(const double *x, size_t n);
/* sqrt(mean(x^2)): the RMS of the per-item delta_p gives the report's "RMS delta p". */
double qr_rms(const double *x, size_t n);

/* q-th percentile (0 <= q <= 100) of ascending-sorted x, numpy's linear interpolation. */
double qr_percentile_sorted(const double *sorted, size_t n, double q);
/* Percentiles of unsorted x (copied and sorted): out[i] = percentile qs[i]. */
qe_status qr_percentiles(const double *x, size_t n, const double *qs, size_t n_qs, double *out, qe_error *err);

/* Unbiased pass@k from n samples of which c passed: 1 - C(n - c, k) / C(n, k). */
double qr_pass_at_k(size_t n, size_t c, size_t k);

#endif
