/* logprob — the one definition of the numbers qeval takes from a distribution given as
 * log-probabilities up to an additive constant (a row of logits, a log-softmax row, the
 * loglikelihoods of a question's choices): argmax (first on ties), log-sum-exp (the log-softmax
 * normalizer) and KL divergence. Sums run in double in a fixed order (the lanes and pairwise
 * fold of logprob_exp.h, with its exp), so scoring, verify, the reports and every backend's
 * row_stats — a GPU's kernel included — get the same bits for the same row. The public half
 * (qe_log_sum_exp*, qe_kl_divergence*) is declared in qeval_engine.h; this header adds the
 * engine-internal row reduction that backend.h's row_stats op is defined by. */
#ifndef QE_LOGPROB_H
#define QE_LOGPROB_H

#include <stdbool.h>
#include <stdint.h>

#include "qeval_engine.h"

/* What scoring needs of one logits row, reduced where the row lives so only these numbers
 * travel. (The contract of backend.h in the engine-backends refactor; this is its one home.) */
typedef struct {
    int32_t argmax;             /* first index of the largest logit                          */
    float max_logit;
    double log_z;               /* max_logit + log(sum_j exp(row[j] - max_logit)), in double */
    float target_logit;         /* row[target] (target < 0 or out of range: 0)               */
} qe_row_stats;

/* The row-stats reduction of one host row, the definition every backend matches bit for bit;
 * log p(target) = target_logit - log_z. */
qe_row_stats qe_row_stats_of(const float *row, int n_vocab, int32_t target);

/* The reduction's last step, for a backend that summed the lanes itself: log_z of a row whose
 * maximum is max, whose lanes (logprob_exp.h) summed to lane_sum, NaN in it or not. */
double qe_log_z_of(double max, bool has_nan, double lane_sum);

#endif
