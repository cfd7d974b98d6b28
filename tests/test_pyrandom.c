/* qt_pyrandom against CPython's random module (tests/golden/pyrandom_golden.h), and the GSM8K
 * few-shot indices lm-eval draws with random.Random(1234) (tests/golden/gsm8k_shots.txt). */
#include "check.h"
#include "golden/pyrandom_golden.h"
#include "qt_pyrandom.h"

int main(void)
{
    qe_error err = {0};
    for (size_t c = 0; c < sizeof pyrandom_golden / sizeof *pyrandom_golden; c++) {
        const __typeof__(pyrandom_golden[0]) *g = &pyrandom_golden[c];
        qt_pyrandom rng;
        qt_pyrandom_seed(&rng, g->seed);
        for (int i = 0; i < 3; i++)
            CHECK_INT_EQ(g->u32[i], qt_pyrandom_getrandbits(&rng, 32));
        const int widths[5] = {1, 7, 31, 33, 64};
        for (int i = 0; i < 5; i++)
            CHECK(g->bits[i] == qt_pyrandom_getrandbits(&rng, widths[i]));
        const unsigned long long bounds[5] = {1, 2, 10, 7473, 1000003};
        for (int i = 0; i < 5; i++)
            CHECK_INT_EQ(g->below[i], qt_pyrandom_randbelow(&rng, bounds[i]));
        CHECK(g->rnd == qt_pyrandom_random(&rng));
        int got[10];
        CHECK_INT_EQ(QE_OK, qt_pyrandom_sample(&rng, 7473, 5, got, &err));
        CHECK_CLOSE(g->s_set, got, 5, 0);
        CHECK_INT_EQ(QE_OK, qt_pyrandom_sample(&rng, 10, 10, got, &err));
        CHECK_CLOSE(g->s_pool, got, 10, 0);
        CHECK_INT_EQ(QE_OK, qt_pyrandom_sample(&rng, 70, 6, got, &err));
        CHECK_CLOSE(g->s_six, got, 6, 0);
        CHECK_INT_EQ(QE_OK, qt_pyrandom_sample(&rng, 86, 6, got, &err));
        CHECK_CLOSE(g->s_six_big, got, 6, 0);
    }

    /* gsm8k_shots.txt: doc 0, 1, 9 and 100 of one Random(1234) drawing sample(train, 5) per doc. */
    static const int expected[][5] = {{6374, 3610, 957, 61, 742}, {7462, 6610, 4769, 286, 5501},
                                      {4219, 4743, 376, 2208, 6753}, {6785, 2401, 3493, 2787, 1211}};
    const int check_docs[] = {0, 1, 9, 100};
    qt_pyrandom rng;
    qt_pyrandom_seed(&rng, 1234);
    int k = 0;
    for (int doc = 0; doc <= 100; doc++) {
        int shots[5];
        CHECK_INT_EQ(QE_OK, qt_pyrandom_sample(&rng, 7473, 5, shots, &err));
        if (doc == check_docs[k]) {
            CHECK_CLOSE(expected[k], shots, 5, 0);
            k++;
        }
    }
    int too_many[3];
    CHECK_INT_EQ(QE_EINVAL, qt_pyrandom_sample(&rng, 2, 3, too_many, &err));
    return check_summary();
}
