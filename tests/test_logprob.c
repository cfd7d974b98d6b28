/* engine/logprob.c, the one log-softmax / KL definition, against numbers worked out by hand:
 * first index on ties, log_z around the maximum, a target out of range, an all -inf row, and
 * KL of float rows equal to that of the same rows in double (test_stats and test_logit_stats
 * hold KL itself to hand-computed values). The definition's own exp within 2 ulp of libm's, its
 * lane sum over a vocabulary-sized row within 1e-15 of a long double sum, NaN and signed-zero
 * rows as the first-index scan treats them. */
#include <math.h>
#include <stdint.h>

#include "check.h"
#include "logprob.h"
#include "logprob_exp.h"

/* ulps between two positive doubles */
static double ulps(double a, double b) { return fabs(a - b) / (nextafter(b, INFINITY) - b); }

int main(void)
{
    const float row[4] = {1, 3, 3, 0};
    qe_row_stats s = qe_row_stats_of(row, 4, 0);
    CHECK_INT_EQ(1, s.argmax);
    CHECK_NEAR(3.0, s.max_logit, 0);
    /* 3 + log(e^-2 + 1 + 1 + e^-3) */
    CHECK_NEAR(3.0 + log(exp(-2.0) + 2.0 + exp(-3.0)), s.log_z, 1e-15);
    CHECK_NEAR(1.0, s.target_logit, 0);
    s = qe_row_stats_of(row, 4, 4);
    CHECK_NEAR(0.0, s.target_logit, 0);
    s = qe_row_stats_of(row, 4, -1);
    CHECK_NEAR(0.0, s.target_logit, 0);

    const float dead[2] = {-INFINITY, -INFINITY};
    s = qe_row_stats_of(dead, 2, 0);
    CHECK(isinf(s.log_z) && s.log_z < 0);
    const double dead_d[2] = {-INFINITY, -INFINITY};
    CHECK(isinf(qe_log_sum_exp(dead_d, 2)) && qe_log_sum_exp(dead_d, 2) < 0);
    CHECK(isinf(qe_log_sum_exp(dead_d, 0)));
    /* log(e^0 + e^0) */
    const double two[2] = {0, 0};
    CHECK_NEAR(log(2.0), qe_log_sum_exp(two, 2), 1e-15);
    int32_t top = -1;
    CHECK(qe_log_sum_exp_f32(row, 4, &top) == qe_row_stats_of(row, 4, 0).log_z);
    CHECK_INT_EQ(1, top);

    /* p_ref = (1/4, 3/4) against (1/2, 1/2): 0.25 log 0.5 + 0.75 log 1.5; a zero-probability
     * outcome of the reference adds nothing */
    const float ref[3] = {0, (float)log(3.0), -INFINITY}, var[3] = {5, 5, 1};
    const double ref_d[3] = {0, (float)log(3.0), -INFINITY}, var_d[3] = {5, 5, 1};
    /* var's third outcome takes e^-4 / (2 + e^-4) of its mass from the other two */
    double want = 0.25 * log(0.5) + 0.75 * log(1.5) + log(1 + exp(-4.0) / 2);
    CHECK(qe_kl_divergence_f32(ref, var, 3) == qe_kl_divergence(ref_d, var_d, 3));
    CHECK_NEAR(want, qe_kl_divergence(ref_d, var_d, 3), 1e-7);
    CHECK_NEAR(0.0, qe_kl_divergence(ref_d, ref_d, 3), 1e-15);
    CHECK_NEAR(0.0, qe_kl_divergence(ref_d, var_d, 0), 0);
    /* the exp: a sweep of [-708, 0], and 0 below the floor and for -inf */
    double worst = 0;
    for (double t = -708.0; t <= 0; t += 0.0137)
        worst = fmax(worst, ulps(qe_exp_nonpositive(t), exp(t)));
    CHECK(worst <= 2.0);
    CHECK(qe_exp_nonpositive(0.0) == 1.0);
    CHECK(qe_exp_nonpositive(-709.0) == 0.0 && qe_exp_nonpositive(-INFINITY) == 0.0);

    /* a 151,936-wide row (Qwen2's vocabulary): log_z against a long double sum */
    enum { WIDE = 151936 };
    static float wide[WIDE];
    uint32_t state = 12345;
    for (int i = 0; i < WIDE; i++) {
        state = state * 1664525u + 1013904223u;
        wide[i] = (float)(state >> 8) / (1 << 24) * 30.0f - 20.0f;
    }
    wide[77777] = 11.5f;
    qe_row_stats w = qe_row_stats_of(wide, WIDE, 5);
    long double exact = 0;
    for (int i = 0; i < WIDE; i++)
        exact += expl((long double)wide[i] - 11.5L);
    CHECK_INT_EQ(77777, w.argmax);
    CHECK_NEAR((double)(11.5L + logl(exact)), w.log_z, 1e-14);

    /* NaN: never the argmax (x[0] NaN: 0), log_z NaN; +0 after -0 is not larger: the first */
    const float with_nan[4] = {1, NAN, 2, 0}, nan_first[3] = {NAN, 5, 1}, zeros[3] = {-0.0f, 0.0f, -1};
    s = qe_row_stats_of(with_nan, 4, 2);
    CHECK_INT_EQ(2, s.argmax);
    CHECK(isnan(s.log_z));
    s = qe_row_stats_of(nan_first, 3, -1);
    CHECK_INT_EQ(0, s.argmax);
    CHECK(isnan(s.log_z));
    s = qe_row_stats_of(zeros, 3, -1);
    CHECK_INT_EQ(0, s.argmax);
    const float inf_row[3] = {1, INFINITY, NAN};
    CHECK(qe_row_stats_of(inf_row, 3, -1).log_z == INFINITY);
    return check_summary();
}
