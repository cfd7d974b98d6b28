#include "qt_pyrandom.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

enum { MT_N = 624, MT_M = 397 };

static void init_genrand(qt_pyrandom *rng, uint32_t s)
{
    rng->mt[0] = s;
    for (int i = 1; i < MT_N; i++)
        rng->mt[i] = 1812433253u * (rng->mt[i - 1] ^ (rng->mt[i - 1] >> 30)) + (uint32_t)i;
    rng->index = MT_N;
}

static void init_by_array(qt_pyrandom *rng, const uint32_t *key, int n_key)
{
    init_genrand(rng, 19650218u);
    uint32_t *mt = rng->mt;
    int i = 1, j = 0;
    for (int k = MT_N > n_key ? MT_N : n_key; k; k--) {
        mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1664525u)) + key[j] + (uint32_t)j;
        i++;
        j++;
        if (i >= MT_N) {
            mt[0] = mt[MT_N - 1];
            i = 1;
        }
        if (j >= n_key)
            j = 0;
    }
    for (int k = MT_N - 1; k; k--) {
        mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1566083941u)) - (uint32_t)i;
        i++;
        if (i >= MT_N) {
            mt[0] = mt[MT_N - 1];
            i = 1;
        }
    }
    mt[0] = 0x80000000u;
}

void qt_pyrandom_seed(qt_pyrandom *rng, uint64_t seed)
{
    /* CPython splits abs(seed) into 32-bit words, least significant first; 0 is one zero word. */
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    init_by_array(rng, key, key[1] ? 2 : 1);
}

uint32_t qt_pyrandom_u32(qt_pyrandom *rng)
{
    static const uint32_t mag01[2] = {0, 0x9908b0dfu};
    uint32_t *mt = rng->mt;
    if (rng->index >= MT_N) {
        int kk;
        uint32_t y;
        for (kk = 0; kk < MT_N - MT_M; kk++) {
            y = (mt[kk] & 0x80000000u) | (mt[kk + 1] & 0x7fffffffu);
            mt[kk] = mt[kk + MT_M] ^ (y >> 1) ^ mag01[y & 1];
        }
        for (; kk < MT_N - 1; kk++) {
            y = (mt[kk] & 0x80000000u) | (mt[kk + 1] & 0x7fffffffu);
            mt[kk] = mt[kk + (MT_M - MT_N)] ^ (y >> 1) ^ mag01[y & 1];
        }
        y = (mt[MT_N - 1] & 0x80000000u) | (mt[0] & 0x7fffffffu);
        mt[MT_N - 1] = mt[MT_M - 1] ^ (y >> 1) ^ mag01[y & 1];
        rng->index = 0;
    }
    uint32_t y = mt[rng->index++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

uint64_t qt_pyrandom_getrandbits(qt_pyrandom *rng, int k)
{
    if (k <= 0)
        return 0;
    if (k <= 32)
        return qt_pyrandom_u32(rng) >> (32 - k);
    /* Wider requests fill 32-bit words from the least significant end; the last word keeps its
     * top bits only. */
    uint64_t low = qt_pyrandom_u32(rng);
    uint64_t high = qt_pyrandom_u32(rng) >> (64 - (k > 64 ? 64 : k));
    return low | high << 32;
}

uint64_t qt_pyrandom_randbelow(qt_pyrandom *rng, uint64_t n)
{
    int k = 0;
    for (uint64_t v = n; v; v >>= 1)
        k++; /* n.bit_length() */
    uint64_t r = qt_pyrandom_getrandbits(rng, k);
    while (r >= n)
        r = qt_pyrandom_getrandbits(rng, k);
    return r;
}

double qt_pyrandom_random(qt_pyrandom *rng)
{
    uint32_t a = qt_pyrandom_u32(rng) >> 5, b = qt_pyrandom_u32(rng) >> 6;
    return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
}

qe_status qt_pyrandom_sample(qt_pyrandom *rng, int n, int k, int *out, qe_error *err)
{
    if (k < 0 || k > n)
        return qe_fail(err, QE_EINVAL, "cannot sample %d of %d items", k, n);
    int setsize = 21;
    if (k > 5)
        setsize += (int)pow(4.0, ceil(log(k * 3.0) / log(4.0)));
    if (n <= setsize) {
        int *pool = malloc((size_t)(n ? n : 1) * sizeof *pool);
        if (!pool)
            return qe_fail(err, QE_ENOMEM, "out of memory sampling %d of %d", k, n);
        for (int i = 0; i < n; i++)
            pool[i] = i;
        for (int i = 0; i < k; i++) {
            int j = (int)qt_pyrandom_randbelow(rng, (uint64_t)(n - i));
            out[i] = pool[j];
            pool[j] = pool[n - i - 1];
        }
        free(pool);
        return QE_OK;
    }
    for (int i = 0; i < k; i++) {
        int j;
        bool taken;
        do {
            j = (int)qt_pyrandom_randbelow(rng, (uint64_t)n);
            taken = false;
            for (int p = 0; p < i && !taken; p++)
                taken = out[p] == j;
        } while (taken);
        out[i] = j;
    }
    return QE_OK;
}
