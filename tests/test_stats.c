/* Report statistics against values computed independently with scipy/numpy by
 * tests/golden/make_stats_expectations.py (its output: tests/golden/stats_expectations.txt). */
#include "check.h"
#include "stats.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static void test_means_and_intervals(void)
{
    const double x[] = {0.1, 0.4, 0.35, 0.8, 0.55, 0.2};
    qr_mean_se m = qr_mean_stderr(x, N_OF(x));
    CHECK_NEAR(0.4000000000000001, m.mean, 1e-15);
    CHECK_NEAR(0.10246950765959599, m.std_error, 1e-15);
    CHECK_INT_EQ(6, m.n);
    qr_interval ci = qr_normal_ci95(m.mean, m.std_error);
    CHECK_NEAR(0.4 - 1.959963984540054 * 0.10246950765959599, ci.lo, 1e-14);
    CHECK(isnan(qr_mean_stderr(x, 1).std_error));
    CHECK(isnan(qr_mean_stderr(x, 0).mean));

    qr_interval w = qr_wilson_ci95(8, 10);
    CHECK_NEAR(0.4901624715366418, w.lo, 1e-12);
    CHECK_NEAR(0.9433178485456248, w.hi, 1e-12);
    w = qr_wilson_ci95(0, 20);
    CHECK_NEAR(0.0, w.lo, 1e-15);
    CHECK_NEAR(0.16112515805281935, w.hi, 1e-12);
    w = qr_wilson_ci95(140, 200);
    CHECK_NEAR(0.6332093162728073, w.lo, 1e-12);
    CHECK_NEAR(0.759252553176286, w.hi, 1e-12);
    w = qr_wilson_ci95(0, 0);
    CHECK(w.lo == 0 && w.hi == 1);
}

static void test_mcnemar(void)
{
    CHECK_NEAR(0.09228515625, qr_mcnemar_exact_p(10, 3), 1e-13);
    CHECK_NEAR(0.09228515625, qr_mcnemar_exact_p(3, 10), 1e-13);
    CHECK_NEAR(1.0, qr_mcnemar_exact_p(5, 5), 0);
    CHECK_NEAR(0.125, qr_mcnemar_exact_p(0, 4), 1e-15);
    CHECK_NEAR(0.013902723449447724, qr_mcnemar_exact_p(700, 610), 1e-11);
    CHECK_NEAR(1.0, qr_mcnemar_exact_p(1, 0), 0);
    CHECK_NEAR(1.0, qr_mcnemar_exact_p(0, 0), 0);
    /* The 2x2 table from outcomes: first right only at 0, 2, 5; second right only at 7. */
    const double first[] = {1, 1, 1, 0, 0, 1, 1, 0}, second[] = {0, 1, 0, 0, 0, 0, 1, 1};
    size_t b, c;
    qr_discordant_pairs(first, second, N_OF(first), &b, &c);
    CHECK_INT_EQ(3, b);
    CHECK_INT_EQ(1, c);
}

static void test_t(void)
{
    const double a[] = {0.62, 0.71, 0.55, 0.80, 0.67, 0.59, 0.73, 0.66};
    const double b[] = {0.60, 0.65, 0.56, 0.74, 0.61, 0.60, 0.70, 0.62};
    qr_ttest t = qr_paired_ttest(a, b, N_OF(a));
    CHECK_NEAR(2.9972608987669407, t.t, 1e-11);
    CHECK_NEAR(0.02001955339649364, t.p, 1e-12);
    CHECK_NEAR(7, t.df, 0);
    const double a2[] = {1, 0, 1, 1, 0, 1, 1, 1, 0, 1}, b2[] = {1, 0, 0, 1, 0, 0, 1, 1, 1, 0};
    t = qr_paired_ttest(a2, b2, N_OF(a2));
    CHECK_NEAR(1.0, t.t, 1e-12);
    CHECK_NEAR(0.3434363961379136, t.p, 1e-12);
    t = qr_paired_ttest(a, a, N_OF(a)); /* no difference at all */
    CHECK(t.t == 0 && t.p == 1);
    CHECK(isnan(qr_paired_ttest(a, b, 1).p));

    CHECK_NEAR(0.6742760175759245, qr_student_t_cdf(0.5, 3), 1e-13);
    CHECK_NEAR(0.036935598106461326, qr_student_t_cdf(-2.1, 7), 1e-13);
    CHECK_NEAR(0.9220208696226306, qr_student_t_cdf(4.0, 1), 1e-13);
    CHECK_NEAR(0.9748634075221256, qr_student_t_cdf(1.96, 1000), 1e-12);
    CHECK_NEAR(0.39367118574759863, qr_student_t_cdf(-0.3, 2.5), 1e-13);
    CHECK_NEAR(0.34829999999999994, qr_incomplete_beta(0.3, 2.0, 3.0), 1e-14);
    CHECK_NEAR(0.7951672353008665, qr_incomplete_beta(0.9, 0.5, 0.5), 1e-13);
    CHECK_NEAR(1.770034965528571e-21, qr_incomplete_beta(0.01, 10.0, 0.5), 1e-32);
    CHECK_NEAR(0.9979524488148462, qr_incomplete_beta(0.7, 50.0, 40.0), 1e-12);
}

static void test_bootstrap(void)
{
    const double a[] = {0.91, 0.42, 0.77, 0.63, 0.55, 0.88, 0.31, 0.69, 0.74, 0.5};
    const double b[] = {0.85, 0.47, 0.70, 0.60, 0.58, 0.80, 0.33, 0.61, 0.72, 0.46};
    qr_bootstrap r, again;
    qe_error err = {0};
    CHECK_INT_EQ(QE_OK, qr_paired_bootstrap(a, b, N_OF(a), 2000, 20261128, &r, &err));
    CHECK_NEAR(0.028000000000000014, r.mean_diff, 1e-15);
    CHECK_NEAR(2.2204460492503132e-17, r.ci95.lo, 1e-12);
    CHECK_NEAR(0.05500000000000001, r.ci95.hi, 1e-12);
    CHECK_NEAR(0.048, r.p, 1e-12);
    CHECK_INT_EQ(QE_OK, qr_paired_bootstrap(a, b, N_OF(a), 2000, 20261128, &again, &err));
    CHECK(memcmp(&r, &again, sizeof r) == 0); /* deterministic */
    CHECK_INT_EQ(QE_OK, qr_paired_bootstrap(a, b, N_OF(a), 2000, 7, &again, &err));
    CHECK(again.ci95.lo != r.ci95.lo); /* and the seed matters */
    CHECK_INT_EQ(QE_EINVAL, qr_paired_bootstrap(a, b, 0, 2000, 1, &r, &err));
}

static void test_distributions(void)
{
    const double ref[] = {-1.2, -0.3, -2.5, -0.9};
    const double var[] = {2.0, 2.5, 1.0, 1.6}; /* unnormalized: normalized inside */
    qr_dist_compare d = qr_compare_distributions(ref, var, 4, 1);
    CHECK_NEAR(0.04252464923964798, d.kl, 1e-14);
    CHECK_NEAR(-0.036802797592223546, d.delta_p, 1e-14);
    CHECK(d.is_top1_same);
    CHECK_NEAR(0.04252464923964798, qr_kl_divergence(ref, var, 4), 1e-14);
    CHECK_NEAR(0.0, qr_kl_divergence(ref, ref, 4), 1e-15);
    const double flipped[] = {-0.1, -0.3, -2.5, -0.9};
    CHECK(!qr_compare_distributions(ref, flipped, 4, 0).is_top1_same);
    const double ties[] = {1, 3, 3};
    CHECK_INT_EQ(1, qr_argmax(ties, 3));
    const double dp[] = {0.1, -0.2, 0.05};
    CHECK_NEAR(0.13228756555322954, qr_rms(dp, 3), 1e-15);
}

static void test_percentiles_and_pass_at_k(void)
{
    const double data[] = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5};
    const double qs[] = {50, 95, 99, 0, 100, 12.5};
    const double expected[] = {4.0, 7.5, 8.700000000000001, 1.0, 9.0, 1.25};
    double got[6];
    qe_error err = {0};
    CHECK_INT_EQ(QE_OK, qr_percentiles(data, N_OF(data), qs, 6, got, &err));
    CHECK_CLOSE(expected, got, 6, 1e-12);
    CHECK(isnan(qr_percentile_sorted(data, 0, 50)));
    CHECK(isnan(qr_percentile_sorted(data, 3, 101)));

    CHECK_NEAR(0.30000000000000004, qr_pass_at_k(10, 3, 1), 1e-15);
    CHECK_NEAR(0.9166666666666666, qr_pass_at_k(10, 3, 5), 1e-14);
    CHECK_NEAR(0.5974489015799118, qr_pass_at_k(200, 17, 10), 1e-13);
    CHECK_NEAR(1.0, qr_pass_at_k(5, 5, 2), 0);
    CHECK_NEAR(0.0, qr_pass_at_k(20, 0, 1), 0);
    CHECK_NEAR(1.0, qr_pass_at_k(10, 8, 3), 0);
    CHECK(isnan(qr_pass_at_k(3, 1, 5)));
}

int main(void)
{
    test_means_and_intervals();
    test_mcnemar();
    test_t();
    test_bootstrap();
    test_distributions();
    test_percentiles_and_pass_at_k();
    return check_summary();
}
