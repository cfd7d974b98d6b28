/* logprob — log-softmax and KL, once for everyone (contract: logprob.h, qeval_engine.h). */
#include <math.h>

#include "logprob.h"

/* Written once for float and double rows. log-sum-exp of x[n] (n >= 1) around its maximum:
 * max + log(sum exp(x - max)); an infinite maximum is returned as it is. */
#define QE_DEFINE_LOG_SUM_EXP(name, type)                                                        \
    static double name(const type *x, size_t n, size_t *argmax)                                   \
    {                                                                                              \
        size_t best = 0;                                                                           \
        for (size_t i = 1; i < n; i++)                                                             \
            if (x[i] > x[best])                                                                    \
                best = i;                                                                          \
        *argmax = best;                                                                            \
        double max = x[best], sum = 0;                                                             \
        if (isinf(max))                                                                            \
            return max;                                                                            \
        for (size_t i = 0; i < n; i++)                                                             \
            sum += exp((double)x[i] - max);                                                        \
        return max + log(sum);                                                                     \
    }

/* KL(ref || var) = sum p_ref (log p_ref - log p_var), each side normalized first; outcomes
 * with p_ref = 0 contribute nothing. */
#define QE_DEFINE_KL(name, log_sum_exp, type)                                                    \
    static double name(const type *logp_ref, const type *logp_var, size_t n)                      \
    {                                                                                              \
        size_t unused;                                                                             \
        double lse_ref = log_sum_exp(logp_ref, n, &unused), lse_var = log_sum_exp(logp_var, n, &unused); \
        double kl = 0;                                                                             \
        for (size_t i = 0; i < n; i++) {                                                           \
            double lr = logp_ref[i] - lse_ref;                                                     \
            if (isinf(lr))                                                                         \
                continue;                                                                          \
            kl += exp(lr) * (lr - (logp_var[i] - lse_var));                                        \
        }                                                                                          \
        return kl;                                                                                 \
    }

QE_DEFINE_LOG_SUM_EXP(log_sum_exp_f32, float)
QE_DEFINE_LOG_SUM_EXP(log_sum_exp_f64, double)
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
