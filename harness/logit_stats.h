/* logit_stats — how far one model's next-token distributions are from a base model's on the
 * same tokens, with the statistics llama.cpp's perplexity --kl-divergence reports: mean and
 * max KL(base || test), top-1 agreement, and the RMS of Δp, the change in the probability of
 * the token that actually comes next. Computed in double from float logits. */
#ifndef QH_LOGIT_STATS_H
#define QH_LOGIT_STATS_H

#include <stdint.h>

typedef struct {
    int64_t n_positions;      /* rows compared                                  */
    double sum_kl, max_kl;    /* KL(base || test) in nats                       */
    int64_t n_top1_agree;     /* rows whose argmax (first on ties) is the same  */
    int64_t n_dp;             /* rows with a known next token                   */
    double sum_dp2;           /* sum of (p_test(next) - p_base(next))^2         */
} qh_logit_stats;

/* Adds one position: base and test logits [n_vocab]; next_token < 0 when none follows. */
void qh_logit_stats_add(qh_logit_stats *stats, const float *base, const float *test, int n_vocab,
                        int32_t next_token);

double qh_logit_stats_mean_kl(const qh_logit_stats *stats);
double qh_logit_stats_top1(const qh_logit_stats *stats);   /* fraction in [0, 1] */
double qh_logit_stats_rms_dp(const qh_logit_stats *stats); /* probability units  */

#endif
