/* logit_stats.c — KL divergence, top-1 agreement and RMS Δp between two models' logits. */
#include "logit_stats.h"

#include <math.h>

/* log-sum-exp of a row, and its argmax (first on ties) */
static double log_norm(const float *logits, int n, int *argmax)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best])
            best = i;
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += exp((double)logits[i] - logits[best]);
    *argmax = best;
    return logits[best] + log(sum);
}

void qh_logit_stats_add(qh_logit_stats *s, const float *base, const float *test, int n_vocab, int32_t next_token)
{
    int base_top, test_top;
    double base_norm = log_norm(base, n_vocab, &base_top), test_norm = log_norm(test, n_vocab, &test_top);
    double kl = 0;
    for (int i = 0; i < n_vocab; i++) {
        double lp = base[i] - base_norm, lq = test[i] - test_norm;
        kl += exp(lp) * (lp - lq);
    }
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
