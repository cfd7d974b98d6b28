/* logit_stats.c — KL divergence, top-1 agreement and RMS Δp between two models' logits, from the
 * engine's one definition of log-softmax and KL (qe_log_sum_exp_f32, qe_kl_divergence_f32). */
#include "logit_stats.h"

#include <math.h>

#include "qeval_engine.h"

void qh_logit_stats_add(qh_logit_stats *s, const float *base, const float *test, int n_vocab, int32_t next_token)
{
    int32_t base_top, test_top;
    double base_norm = qe_log_sum_exp_f32(base, (size_t)n_vocab, &base_top);
    double test_norm = qe_log_sum_exp_f32(test, (size_t)n_vocab, &test_top);
    double kl = qe_kl_divergence_f32(base, test, (size_t)n_vocab);
    if (kl < 0) /* rounding can take an identical pair a hair below zero */
        kl = 0;
    s->n_positions++;
    s->sum_kl += kl;
    if (kl > s->max_kl || isnan(kl))
        s->max_kl = kl;
    s->n_top1_agree += base_top == test_top;
    if (next_token >= 0 && next_token < n_vocab) {
        double dp = exp(test[next_token] - test_norm) - exp(base[next_token] - base_norm);
        s->sum_dp2 += dp * dp;
        s->n_dp++;
    }
}

double qh_logit_stats_mean_kl(const qh_logit_stats *s) { return s->n_positions ? s->sum_kl / s->n_positions : 0; }

double qh_logit_stats_top1(const qh_logit_stats *s)
{
    return s->n_positions ? (double)s->n_top1_agree / s->n_positions : 0;
}

double qh_logit_stats_rms_dp(const qh_logit_stats *s) { return s->n_dp ? sqrt(s->sum_dp2 / s->n_dp) : 0; }
