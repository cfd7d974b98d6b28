/* logprob — the one definition of the numbers qeval takes from a distribution given as
 * log-probabilities up to an additive constant (a row of logits, a log-softmax row, the
 * loglikelihoods of a question's choices): its argmax (first on ties), its log-sum-exp (the
 * log-softmax normalizer) and the KL divergence between two of them. Sums run in double in
 * index order, so scoring, verify, the reports and the reference backend's row_stats all get
 * the same bits for the same row. Declared in qeval_engine.h. */
#include <math.h>

#include "qeval_engine.h"

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

void qe_logits_row_stats(const float *logits, int n, int32_t target, qe_row_stats *out)
{
    size_t argmax = 0;
    out->log_z = n > 0 ? log_sum_exp_f32(logits, (size_t)n, &argmax) : -INFINITY;
    out->argmax = (int32_t)argmax;
    out->max_logit = n > 0 ? logits[argmax] : -INFINITY;
    out->target_logit = target >= 0 && target < n ? logits[target] : 0;
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
