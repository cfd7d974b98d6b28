/* logprob — log-softmax and KL, once for everyone (contract: logprob.h, qeval_engine.h). */
#include <math.h>
#include <stdbool.h>

#include "logprob.h"
#include "logprob_exp.h"

double qe_log_z_of(double max, bool has_nan, double lane_sum)
{
    if (isinf(max))
        return max;
    return has_nan ? NAN : max + log(lane_sum);
}

/* Written once for float and double rows. The sum of exp(x - max) runs in the lanes of
 * logprob_exp.h (a GPU block reduces a row in the same order, the same bits); NaN anywhere gives
 * NaN, an infinite maximum is returned as it is. */
#define MAX_LANES 16 /* the maximum's search: lanes a vector unit takes at once */
#define QE_DEFINE_MAX(name, type)                                                                \
    /* The first index of the largest element, as a scan keeping the first strictly larger one \
     * finds it (NaN is never larger; x[0] NaN: 0), and whether a NaN was seen. The maximum is   \
     * taken in lanes, then its first index found. */                                            \
    static size_t name(const type *x, size_t n, bool *has_nan)                                     \
    {                                                                                              \
        *has_nan = x[0] != x[0];                                                                   \
        if (*has_nan)                                                                              \
            return 0;                                                                              \
        type lane_max[MAX_LANES], max = x[0];                                                      \
        bool lane_nan[MAX_LANES], nan = false;                                                     \
        for (int j = 0; j < MAX_LANES; j++)                                                        \
            lane_max[j] = x[0], lane_nan[j] = false;                                               \
        size_t i = 0;                                                                              \
        for (; i + MAX_LANES <= n; i += MAX_LANES)                                                 \
            for (int j = 0; j < MAX_LANES; j++) {                                                  \
                type v = x[i + j];                                                                 \
                lane_max[j] = v > lane_max[j] ? v : lane_max[j];                                   \
                lane_nan[j] |= v != v;                                                             \
            }                                                                                      \
        for (; i < n; i++) {                                                                       \
            max = x[i] > max ? x[i] : max;                                                         \
            nan |= x[i] != x[i];                                                                   \
        }                                                                                          \
        for (int j = 0; j < MAX_LANES; j++) {                                                      \
            max = lane_max[j] > max ? lane_max[j] : max;                                           \
            nan |= lane_nan[j];                                                                    \
        }                                                                                          \
        *has_nan = nan;                                                                            \
        size_t best = 0;                                                                           \
        while (!(x[best] == max)) /* -0 == +0: the first of either, as the scan */                 \
            best++;                                                                                \
        return best;                                                                               \
    }

#define QE_DEFINE_LOG_SUM_EXP(name, max_of, type)                                                \
    static double name(const type *x, size_t n, size_t *argmax)                                   \
    {                                                                                              \
        bool has_nan;                                                                              \
        *argmax = max_of(x, n, &has_nan);                                                          \
        double max = x[*argmax], lanes[QE_LSE_LANES] = {0};                                        \
        if (isinf(max) || has_nan)                                                                 \
            return qe_log_z_of(max, has_nan, 0);                                                   \
        for (size_t i0 = 0; i0 < n; i0 += QE_LSE_LANES) {                                          \
            size_t m = n - i0 < QE_LSE_LANES ? n - i0 : QE_LSE_LANES;                              \
            for (size_t j = 0; j < m; j++)                                                         \
                lanes[j] += qe_exp_nonpositive((double)x[i0 + j] - max);                           \
        }                                                                                          \
        qe_lse_fold_lanes(lanes);                                                                  \
        return qe_log_z_of(max, has_nan, lanes[0]);                                                \
    }

/* KL(ref || var) = sum p_ref (log p_ref - log p_var), each side normalized first; outcomes
 * with p_ref = 0 contribute nothing. Summed in the same lanes. */
#define QE_DEFINE_KL(name, log_sum_exp, type)                                                    \
    static double name(const type *logp_ref, const type *logp_var, size_t n)                      \
    {                                                                                              \
        size_t unused;                                                                             \
        double lse_ref = log_sum_exp(logp_ref, n, &unused), lse_var = log_sum_exp(logp_var, n, &unused); \
        double lanes[QE_LSE_LANES] = {0};                                                          \
        for (size_t i0 = 0; i0 < n; i0 += QE_LSE_LANES) {                                          \
            size_t m = n - i0 < QE_LSE_LANES ? n - i0 : QE_LSE_LANES;                              \
            for (size_t j = 0; j < m; j++) {                                                       \
                double lr = logp_ref[i0 + j] - lse_ref, lv = logp_var[i0 + j] - lse_var;           \
                double term = qe_exp_nonpositive(lr) * (lr - lv);                                  \
                lanes[j] += isinf(lr) && lr < 0 ? 0.0 : term;                                      \
            }                                                                                      \
        }                                                                                          \
        qe_lse_fold_lanes(lanes);                                                                  \
        return lanes[0];                                                                           \
    }

QE_DEFINE_MAX(max_f32, float)
QE_DEFINE_MAX(max_f64, double)
QE_DEFINE_LOG_SUM_EXP(log_sum_exp_f32, max_f32, float)
QE_DEFINE_LOG_SUM_EXP(log_sum_exp_f64, max_f64, double)
QE_DEFINE_KL(kl_f32, log_sum_exp_f32, float)
QE_DEFINE_KL(kl_f64, log_sum_exp_f64, double)

qe_row_stats qe_row_stats_of(const float *row, int n_vocab, int32_t target)
{
    qe_row_stats stats = {0, -INFINITY, -INFINITY, 0};
    if (n_vocab > 0) {
        size_t argmax = 0;
        stats.log_z = log_sum_exp_f32(row, (size_t)n_vocab, &argmax);
        stats.argmax = (int32_t)argmax;
        stats.max_logit = row[argmax];
    }
    if (target >= 0 && target < n_vocab)
        stats.target_logit = row[target];
    return stats;
}

double qe_log_sum_exp_f32(const float *x, size_t n, int32_t *argmax)
{
    size_t best = 0;
    double log_z = n > 0 ? log_sum_exp_f32(x, n, &best) : -INFINITY;
    if (argmax)
        *argmax = (int32_t)best;
    return log_z;
}

double qe_log_sum_exp(const double *x, size_t n)
{
    size_t unused;
    return n > 0 ? log_sum_exp_f64(x, n, &unused) : -INFINITY;
}

double qe_kl_divergence(const double *logp_ref, const double *logp_var, size_t n)
{
    return n > 0 ? kl_f64(logp_ref, logp_var, n) : 0;
}

double qe_kl_divergence_f32(const float *logp_ref, const float *logp_var, size_t n)
{
    return n > 0 ? kl_f32(logp_ref, logp_var, n) : 0;
}
