/* check.h — the tests' assertions. Each failure prints file:line and both values; a test
 * program ends with check_summary(), which prints "N passed, N failed" and returns the exit
 * status. Expected values come from outside the code under test (golden files, hand
 * computation), never from the code itself.
 *
 * Third-party test data (real tokenizers, llama.cpp vectors, benchmarks, stories260K) lives
 * outside the project, in $QEVAL_SHARED or ../shared. A test asks for each file with
 * check_shared_path(); a missing one prints one line naming it, and the test ends as skipped
 * (77) once the rest has passed. Under QEVAL_REQUIRE_SHARED=1 (CI) a missing file fails the
 * test instead. The project's own fixtures (tests/fixtures) need no such data. */
#ifndef QE_CHECK_H
#define QE_CHECK_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int check_n_passed, check_n_failed;
static int check_n_missing; /* third-party files asked for and absent */

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

/* Whether a missing third-party file fails the test (CI sets QEVAL_REQUIRE_SHARED=1). */
static inline int check_shared_required(void)
{
    const char *required = getenv("QEVAL_REQUIRE_SHARED");
    return required && *required && strcmp(required, "0") != 0;
}

/* 1 on any failure, or on missing data under QEVAL_REQUIRE_SHARED; 77 (skipped) when data was
 * missing and everything that ran passed; else 0. */
static inline int check_summary(void)
{
    printf("%d passed, %d failed%s\n", check_n_passed, check_n_failed,
           check_n_missing ? ", some checks skipped for missing test data" : "");
    if (check_n_failed)
        return 1;
    if (check_n_missing)
        return check_shared_required() ? 1 : 77;
    return 0;
}

/* Test data: the next float of a deterministic sequence in [-1, 1) from *state (any seed): a
 * 64-bit LCG's top 24 bits, exact in float. */
static inline float check_uniform(uint64_t *state)
{
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((*state >> 40) / 8388608.0 - 1.0);
}

/* Where the shared test data lives: $QEVAL_SHARED, else ../shared beside the checkout. */
static inline const char *check_shared_dir(void)
{
    const char *dir = getenv("QEVAL_SHARED");
    return dir && *dir ? dir : QEVAL_DEFAULT_SHARED;
}

/* Writes the shared data's relative path into path; false, with one line saying what is
 * missing and how to get it, when it is not there (the test then ends as check_summary says). */
static inline bool check_shared_path(char *path, size_t cap, const char *relative)
{
    snprintf(path, cap, "%s/%s", check_shared_dir(), relative);
    if (access(path, R_OK) == 0)
        return true;
    check_n_missing++;
    printf("%s: needs %s, third-party test data: point QEVAL_SHARED at it or put it at ../shared "
           "(README, \"Tests and their data\")\n", check_shared_required() ? "FAILED" : "skipped", path);
    return false;
}

/* The project's own fixture path, under the source tree. */
static inline void check_fixture_path(char *path, size_t cap, const char *relative)
{
    const char *src = getenv("QEVAL_SOURCE_DIR");
    snprintf(path, cap, "%s/tests/fixtures/%s", src && *src ? src : QEVAL_SOURCE_DIR, relative);
}

#endif
