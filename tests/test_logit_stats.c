/* test_logit_stats — KL / top-1 / RMS Δp against values worked out by hand. */
#include "check.h"
#include "logit_stats.h"

int main(void)
{
    qh_logit_stats s = {0};
    /* base p = (1/4, 3/4), test q = (1/2, 1/2): KL = 1/4 ln(1/2) + 3/4 ln(3/2) = 0.1308120...,
     * argmax 1 vs 0 (first on ties), next token 1: Δp = 1/2 - 3/4 */
    const float base[2] = {0.0f, (float)log(3.0)}, test[2] = {5.0f, 5.0f};
    qh_logit_stats_add(&s, base, test, 2, 1);
    CHECK_NEAR(0.25 * log(0.5) + 0.75 * log(1.5), qh_logit_stats_mean_kl(&s), 1e-7);
    CHECK_NEAR(0.0, qh_logit_stats_top1(&s), 0);
    CHECK_NEAR(0.25, qh_logit_stats_rms_dp(&s), 1e-7);
    /* an identical row: KL 0, agreement, Δp 0; no next token leaves Δp's count alone */
    qh_logit_stats_add(&s, base, base, 2, -1);
    CHECK_INT_EQ(2, s.n_positions);
    CHECK_INT_EQ(1, s.n_dp);
    CHECK_NEAR((0.25 * log(0.5) + 0.75 * log(1.5)) / 2, qh_logit_stats_mean_kl(&s), 1e-7);
    CHECK_NEAR(0.25 * log(0.5) + 0.75 * log(1.5), s.max_kl, 1e-7);
    CHECK_NEAR(0.5, qh_logit_stats_top1(&s), 0);
    /* large logits do not overflow: p = (e^-1000 ~ 0, 1) vs q = (1/2, 1/2): KL = ln 2 */
    const float big[2] = {1000.0f, 2000.0f}, flat[2] = {-1000.0f, -1000.0f};
    qh_logit_stats tail = {0};
    qh_logit_stats_add(&tail, big, flat, 2, 0);
    CHECK_NEAR(log(2.0), qh_logit_stats_mean_kl(&tail), 1e-9);
    CHECK_NEAR(0.5, qh_logit_stats_rms_dp(&tail), 1e-9);
    return check_summary();
}
