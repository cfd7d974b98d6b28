/* check.h — the tests' assertions. Each failure prints file:line and both values; a test
 * program ends with check_summary(), which prints "N passed, N failed" and returns the exit
 * status. Expected values come from outside the code under test (golden files, hand
 * computation), never from the code itself. */
#ifndef QE_CHECK_H
#define QE_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_n_passed, check_n_failed;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (cond) check_n_passed++;                                                  \
        else { check_n_failed++; fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); } \
    } while (0)

#define CHECK_INT_EQ(expected, got)                                                  \
    do {                                                                             \
        long long e_ = (long long)(expected), g_ = (long long)(got);                \
        if (e_ == g_) check_n_passed++;                                              \
        else { check_n_failed++; fprintf(stderr, "%s:%d: %s: expected %lld, got %lld\n", __FILE__, __LINE__, #got, e_, g_); } \
    } while (0)

#define CHECK_STR_EQ(expected, got)                                                  \
    do {                                                                             \
        const char *e_ = (expected), *g_ = (got);                                   \
        if (e_ && g_ && strcmp(e_, g_) == 0) check_n_passed++;                       \
        else { check_n_failed++; fprintf(stderr, "%s:%d: %s: expected \"%s\", got \"%s\"\n", __FILE__, __LINE__, #got, e_ ? e_ : "(null)", g_ ? g_ : "(null)"); } \
    } while (0)

#define CHECK_NEAR(expected, got, tol)                                               \
    do {                                                                             \
        double e_ = (expected), g_ = (got);                                          \
        if (fabs(e_ - g_) <= (tol)) check_n_passed++;                                \
        else { check_n_failed++; fprintf(stderr, "%s:%d: %s: expected %.9g, got %.9g (tol %g)\n", __FILE__, __LINE__, #got, e_, g_, (double)(tol)); } \
    } while (0)

/* Every element within tol; reports the first bad index. */
#define CHECK_CLOSE(expected, got, n, tol)                                           \
    do {                                                                             \
        long bad_ = -1;                                                              \
        for (long i_ = 0; i_ < (long)(n); i_++)                                      \
            if (!(fabs((double)(expected)[i_] - (double)(got)[i_]) <= (tol))) { bad_ = i_; break; } \
        if (bad_ < 0) check_n_passed++;                                              \
        else { check_n_failed++; fprintf(stderr, "%s:%d: %s[%ld]: expected %.9g, got %.9g (tol %g)\n", __FILE__, __LINE__, #got, bad_, (double)(expected)[bad_], (double)(got)[bad_], (double)(tol)); } \
    } while (0)

static inline int check_summary(void)
{
    printf("%d passed, %d failed\n", check_n_passed, check_n_failed);
    return check_n_failed ? 1 : 0;
}

/* Where the shared test data lives: $QEVAL_SHARED, else ../shared beside the checkout. */
static inline const char *check_shared_dir(void)
{
    const char *dir = getenv("QEVAL_SHARED");
    return dir && *dir ? dir : QEVAL_DEFAULT_SHARED;
}

#endif
