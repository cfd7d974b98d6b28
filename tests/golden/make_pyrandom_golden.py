#!/usr/bin/env python3
"""Outputs of CPython's random.Random for tests/test_pyrandom.c (python3 make_pyrandom_golden.py > pyrandom_golden.h).
Covers seeding (0, 1, 1234, a seed wider than 32 bits), getrandbits, _randbelow, random() and
both sample() algorithms (pool: n <= setsize; set of indices: n > setsize)."""
import random, sys

print("/* Made by tests/golden/make_pyrandom_golden.py with Python %s. */" % sys.version.split()[0])
cases = []
for seed in (0, 1, 1234, 2**32 + 5):
    r = random.Random(seed)
    u32 = [r.getrandbits(32) for _ in range(3)]
    bits = [r.getrandbits(k) for k in (1, 7, 31, 33, 64)]
    below = [r._randbelow(n) for n in (1, 2, 10, 7473, 1000003)]
    rnd = r.random()
    s_set = r.sample(range(7473), 5)        # k=5, n > 21: set algorithm
    s_pool = r.sample(range(10), 10)        # n <= 21: pool algorithm
    s_six = r.sample(range(70), 6)          # k=6: setsize 21 + 4**3 = 85 >= 70: pool
    s_six_big = r.sample(range(86), 6)      # n=86 > 85: set
    cases.append((seed, u32, bits, below, rnd, s_set, s_pool, s_six, s_six_big))
print("static const struct { unsigned long long seed; unsigned int u32[3]; unsigned long long bits[5];"
      " unsigned long long below[5]; double rnd; int s_set[5]; int s_pool[10]; int s_six[6]; int s_six_big[6]; } pyrandom_golden[] = {")
for seed, u32, bits, below, rnd, a, b, c, d in cases:
    j = lambda xs: ", ".join(str(x) for x in xs)
    print("    {%du, {%su}, {%s}, {%s}, %r, {%s}, {%s}, {%s}, {%s}}," % (
        seed, "u, ".join(map(str, u32)), j(str(x) + "ull" for x in bits), j(str(x) + "ull" for x in below), rnd, j(a), j(b), j(c), j(d)))
print("};")
