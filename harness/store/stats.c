#include "stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qeval_engine.h"

qr_mean_se qr_mean_stderr(const double *x, size_t n)
{
    qr_mean_se r = {NAN, NAN, n};
    if (n == 0)
        return r;
    double sum = 0, ss = 0;
    for (size_t i = 0; i < n; i++)
        sum += x[i];
    r.mean = sum / (double)n;
    if (n < 2)
        return r;
    for (size_t i = 0; i < n; i++) /* two passes: no cancellation when the mean is large */
        ss += (x[i] - r.mean) * (x[i] - r.mean);
    r.std_error = sqrt(ss / (double)(n - 1) / (double)n);
    return r;
}

qr_interval qr_normal_ci95(double mean, double std_error)
{
    return (qr_interval){mean - QR_Z95 * std_error, mean + QR_Z95 * std_error};
}

qr_interval qr_wilson_ci95(size_t successes, size_t n)
{
    if (n == 0)
        return (qr_interval){0, 1};
    double z2 = QR_Z95 * QR_Z95, count = (double)n, p = (double)successes / count;
    double denom = 1 + z2 / count;
    double center = (p + z2 / (2 * count)) / denom;
    double half = QR_Z95 * sqrt(p * (1 - p) / count + z2 / (4 * count * count)) / denom;
    return (qr_interval){fmax(0, center - half), fmin(1, center + half)};
}

double qr_mcnemar_exact_p(size_t b, size_t c)
{
    size_t n = b + c, k = b < c ? b : c;
    if (n == 0)
        return 1;
    /* Terms in log space: C(n, i) / 2^n underflows long before n reaches MMLU's 14042. */
    double log_total = lgamma((double)n + 1) - (double)n * log(2.0), cdf = 0;
    for (size_t i = 0; i <= k; i++)
        cdf += exp(log_total - lgamma((double)i + 1) - lgamma((double)(n - i) + 1));
    return fmin(1, 2 * cdf);
}

void qr_discordant_pairs(const double *first, const double *second, size_t n, size_t *b, size_t *c)
{
    *b = *c = 0;
    for (size_t i = 0; i < n; i++) {
        bool x = first[i] != 0, y = second[i] != 0;
        *b += x && !y;
        *c += !x && y;
    }
}

/* The continued fraction for I_x(a, b) (modified Lentz), converging for x < (a+1)/(a+b+2). */
static double beta_continued_fraction(double x, double a, double b)
{
    const double tiny = 1e-300, eps = 1e-16;
    double c = 1, d = 1 - (a + b) * x / (a + 1);
    d = 1 / (fabs(d) < tiny ? tiny : d);
    double h = d;
    for (int m = 1; m <= 10000; m++) {
        double even = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m));
        double odd = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1));
        for (int half = 0; half < 2; half++) {
            double coef = half ? odd : even;
            d = 1 + coef * d;
            d = 1 / (fabs(d) < tiny ? tiny : d);
            c = 1 + coef / c;
            if (fabs(c) < tiny)
                c = tiny;
            h *= c * d;
        }
        if (fabs(c * d - 1) < eps)
            break;
    }
    return h;
}

double qr_incomplete_beta(double x, double a, double b)
{
    if (!(x > 0))
        return 0;
    if (!(x < 1))
        return 1;
    double log_front = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x);
    if (x < (a + 1) / (a + b + 2))
        return exp(log_front) * beta_continued_fraction(x, a, b) / a;
    return 1 - exp(log_front) * beta_continued_fraction(1 - x, b, a) / b;
}

double qr_student_t_cdf(double t, double df)
{
    if (isnan(t) || !(df > 0))
        return NAN;
    if (isinf(t))
        return t > 0 ? 1 : 0;
    double tail = 0.5 * qr_incomplete_beta(df / (df + t * t), df / 2, 0.5); /* P(T > |t|) */
    return t > 0 ? 1 - tail : tail;
}

qr_ttest qr_paired_ttest(const double *a, const double *b, size_t n)
{
    qr_ttest r = {NAN, NAN, (double)n - 1, NAN};
    if (n == 0)
        return r;
    double sum = 0, ss = 0;
    for (size_t i = 0; i < n; i++)
        sum += a[i] - b[i];
    r.mean_diff = sum / (double)n;
    if (n < 2)
        return r;
    for (size_t i = 0; i < n; i++) {
        double dev = a[i] - b[i] - r.mean_diff;
        ss += dev * dev;
    }
    double se = sqrt(ss / (double)(n - 1) / (double)n);
    if (se == 0) {
        r.t = r.mean_diff == 0 ? 0 : copysign(INFINITY, r.mean_diff);
        r.p = r.mean_diff == 0 ? 1 : 0;
        return r;
    }
    r.t = r.mean_diff / se;
    r.p = qr_incomplete_beta(r.df / (r.df + r.t * r.t), r.df / 2, 0.5);
    return r;
}

/* ---- bootstrap: splitmix64 seeds xoshiro256** (Blackman and Vigna) ------------------------- */

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro_next(uint64_t s[4])
{
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, n) without modulo bias: draws below 2^64 mod n are redrawn. */
static size_t uniform_index(uint64_t s[4], size_t n)
{
    uint64_t bound = (uint64_t)n, threshold = (0 - bound) % bound, r;
    do
        r = xoshiro_next(s);
    while (r < threshold);
    return (size_t)(r % bound);
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

qe_status qr_paired_bootstrap(const double *a, const double *b, size_t n, size_t n_resamples, uint64_t seed,
                              qr_bootstrap *out, qe_error *err)
{
    if (n == 0 || n_resamples == 0)
        return qe_fail(err, QE_EINVAL, "paired bootstrap: needs documents and resamples (got %zu and %zu)", n,
                       n_resamples);
    double *diffs = malloc(n * sizeof *diffs), *means = malloc(n_resamples * sizeof *means);
    if (!diffs || !means) {
        free(diffs);
        free(means);
        return qe_fail(err, QE_ENOMEM, "paired bootstrap: out of memory for %zu documents x %zu resamples", n,
                       n_resamples);
    }
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += diffs[i] = a[i] - b[i];
    uint64_t seeder = seed, state[4];
    for (int i = 0; i < 4; i++)
        state[i] = splitmix64(&seeder);
    size_t n_le = 0, n_ge = 0;
    for (size_t r = 0; r < n_resamples; r++) {
        double resampled = 0;
        for (size_t i = 0; i < n; i++)
            resampled += diffs[uniform_index(state, n)];
        means[r] = resampled / (double)n;
        n_le += means[r] <= 0;
        n_ge += means[r] >= 0;
    }
    qsort(means, n_resamples, sizeof *means, compare_doubles);
    out->mean_diff = sum / (double)n;
    out->ci95 = (qr_interval){qr_percentile_sorted(means, n_resamples, 2.5),
                              qr_percentile_sorted(means, n_resamples, 97.5)};
    out->p = fmin(1, 2 * (double)(n_le < n_ge ? n_le : n_ge) / (double)n_resamples);
    out->n_resamples = n_resamples;
    free(diffs);
    free(means);
    return QE_OK;
}

/* ---- distributions ------------------------------------------------------------------------- */

size_t qr_argmax(const double *x, size_t n)
{
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

/* log-softmax and KL: the engine's one definition (engine/logprob.c) */
double qr_kl_divergence(const double *logp_ref, const double *logp_var, size_t n)
{
    return qe_kl_divergence(logp_ref, logp_var, n);
}

qr_dist_compare qr_compare_distributions(const double *logp_ref, const double *logp_var, size_t n, size_t target)
{
    qr_dist_compare r = {qr_kl_divergence(logp_ref, logp_var, n), qr_argmax(logp_ref, n) == qr_argmax(logp_var, n),
                         NAN};
    if (target < n)
        r.delta_p = exp(logp_var[target] - qe_log_sum_exp(logp_var, n)) - exp(logp_ref[target] - qe_log_sum_exp(logp_ref, n));
    return r;
}

double qr_rms(const double *x, size_t n)
{
    if (n == 0)
        return NAN;
    double ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += x[i] * x[i];
    return sqrt(ss / (double)n);
}

double qr_percentile_sorted(const double *sorted, size_t n, double q)
{
    if (n == 0 || !(q >= 0 && q <= 100))
        return NAN;
    double pos = q / 100 * (double)(n - 1);
    size_t lo = (size_t)floor(pos), hi = lo + 1 < n ? lo + 1 : n - 1;
    double frac = pos - (double)lo;
    return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
}

qe_status qr_percentiles(const double *x, size_t n, const double *qs, size_t n_qs, double *out, qe_error *err)
{
    double *sorted = malloc((n ? n : 1) * sizeof *sorted);
    if (!sorted)
        return qe_fail(err, QE_ENOMEM, "percentiles: out of memory for %zu values", n);
    memcpy(sorted, x, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, compare_doubles);
    for (size_t i = 0; i < n_qs; i++)
        out[i] = qr_percentile_sorted(sorted, n, qs[i]);
    free(sorted);
    return QE_OK;
}

double qr_pass_at_k(size_t n, size_t c, size_t k)
{
    if (k == 0 || k > n || c > n)
        return NAN;
    if (n - c < k)
        return 1;
    double fail_all = 1; /* C(n-c, k) / C(n, k) as a product, which never overflows */
    for (size_t i = n - c + 1; i <= n; i++)
        fail_all *= 1 - (double)k / (double)i;
    return 1 - fail_all;
}
