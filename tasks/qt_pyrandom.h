/* qt_pyrandom — Python's random.Random, bit for bit, for the parts lm-evaluation-harness uses
 * to draw few-shot examples: seeding from an integer (init_by_array over the integer's 32-bit
 * words), getrandbits, _randbelow (rejection on getrandbits) and sample() with both of its
 * algorithms (pool for small populations, set of picked indices for large ones).
 * tests/test_pyrandom.c holds outputs of CPython 3.11 to compare against. */
#ifndef QT_PYRANDOM_H
#define QT_PYRANDOM_H

#include <stdint.h>

#include "qe_error.h"

typedef struct {
    uint32_t mt[624];
    int index;                 /* next word of mt to temper; 624 = regenerate */
} qt_pyrandom;

/* random.Random(seed) for a non-negative integer seed. */
void qt_pyrandom_seed(qt_pyrandom *rng, uint64_t seed);

uint32_t qt_pyrandom_u32(qt_pyrandom *rng);
/* random.getrandbits(k), 0 <= k <= 64. */
uint64_t qt_pyrandom_getrandbits(qt_pyrandom *rng, int k);
/* random._randbelow(n), n >= 1. */
uint64_t qt_pyrandom_randbelow(qt_pyrandom *rng, uint64_t n);
/* random.random() */
double qt_pyrandom_random(qt_pyrandom *rng);

/* Indices that random.sample(range(n), k) returns, in order, into out[k]. */
qe_status qt_pyrandom_sample(qt_pyrandom *rng, int n, int k, int *out, qe_error *err);

#endif
