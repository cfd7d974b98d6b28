/* logit_stats.c — KL divergence, top-1 agreement and RMS Δp between two models' logits, from the
 * engine's one definition of log-softmax and KL (qe_logits_row_stats, qe_kl_divergence_f32). */
#include "logit_stats.h"

#include <math.h>

#include "qeval_engine.h"

void qh_logit_stats_add(qh_logit_stats *s, const float *base, const float *test, int n_vocab, int32_t next_token)
{
    qe_row_stats base_row, test_row;
    qe_logits_row_stats(base, n_vocab, next_token, &base_row);
    qe_logits_row_stats(test, n_vocab, next_token, &test_row);
    double kl = qe_kl_divergence_f32(base, test, (size_t)n_vocab);
    if (kl < 0) /* rounding can take an identical pair a hair below zero */
        kl = 0;
    s->n_positions++;
    s->sum_kl += kl;
    if (kl > s->max_kl || isnan(kl))
        s->max_kl = kl;
    s->n_top1_agree += base_row.argmax == test_row.argmax;
    if (next_token >= 0 && next_token < n_vocab) {
        double dp = exp(test_row.target_logit - test_row.log_z) - exp(base_row.target_logit - base_row.log_z);
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
