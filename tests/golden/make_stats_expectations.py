"""Expected values for tests/test_stats.c, computed with scipy/numpy (not with qeval's code).
Run: pip install scipy numpy; python3 tests/golden/make_stats_expectations.py"""
from math import comb, sqrt
import numpy as np
from scipy import special, stats

def show(name, v):
    print(f"{name} = {float(v)!r}")

x = [0.1, 0.4, 0.35, 0.8, 0.55, 0.2]
show("mean", np.mean(x)); show("sem", stats.sem(x))
for k, n in [(8, 10), (0, 20), (140, 200)]:
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    show(f"wilson {k}/{n} lo", ci.low); show(f"wilson {k}/{n} hi", ci.high)
for b, c in [(10, 3), (5, 5), (0, 4), (700, 610), (1, 0)]:
    show(f"mcnemar {b},{c}", stats.binomtest(min(b, c), b + c, 0.5).pvalue)
a = [0.62, 0.71, 0.55, 0.80, 0.67, 0.59, 0.73, 0.66]
b = [0.60, 0.65, 0.56, 0.74, 0.61, 0.60, 0.70, 0.62]
r = stats.ttest_rel(a, b)
show("ttest t", r.statistic); show("ttest p", r.pvalue)
a2 = [1, 0, 1, 1, 0, 1, 1, 1, 0, 1]; b2 = [1, 0, 0, 1, 0, 0, 1, 1, 1, 0]
r = stats.ttest_rel(a2, b2)
show("ttest2 t", r.statistic); show("ttest2 p", r.pvalue)
for t, df in [(0.5, 3), (-2.1, 7), (4.0, 1), (1.96, 1000), (-0.3, 2.5)]:
    show(f"tcdf {t},{df}", stats.t.cdf(t, df))
for xx, aa, bb in [(0.3, 2.0, 3.0), (0.9, 0.5, 0.5), (0.01, 10.0, 0.5), (0.7, 50.0, 40.0)]:
    show(f"betainc {xx},{aa},{bb}", special.betainc(aa, bb, xx))

ref = np.array([-1.2, -0.3, -2.5, -0.9]); var = np.array([-1.0, -0.5, -2.0, -1.4]) + 3.0  # unnormalized
pr = special.softmax(ref); pv = special.softmax(var)
show("kl", stats.entropy(pr, pv)); show("delta_p target 1", pv[1] - pr[1])
show("rms", sqrt(np.mean(np.square([0.1, -0.2, 0.05]))))

data = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0, 5.0]
for q in (50, 95, 99, 0, 100, 12.5):
    show(f"percentile {q}", np.percentile(data, q))

for n, c, k in [(10, 3, 1), (10, 3, 5), (200, 17, 10), (5, 5, 2), (20, 0, 1), (10, 8, 3)]:
    show(f"pass@{k} n={n} c={c}", 1 - comb(n - c, k) / comb(n, k))

# The bootstrap, re-implemented here from the published definitions of splitmix64 and
# xoshiro256**, with the documented index draw (reject r < 2^64 mod n, then r mod n).
M = (1 << 64) - 1
def splitmix(state):
    state = (state + 0x9E3779B97F4A7C15) & M
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return state, z ^ (z >> 31)
def rotl(x, k): return ((x << k) | (x >> (64 - k))) & M
class Xoshiro:
    def __init__(self, seed):
        self.s = []
        st = seed
        for _ in range(4):
            st, v = splitmix(st); self.s.append(v)
    def next(self):
        s = self.s
        result = (rotl((s[1] * 5) & M, 7) * 9) & M
        t = (s[1] << 17) & M
        s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 45)
        return result
    def index(self, n):
        threshold = (1 << 64) % n
        while True:
            r = self.next()
            if r >= threshold: return r % n

ba = [0.91, 0.42, 0.77, 0.63, 0.55, 0.88, 0.31, 0.69, 0.74, 0.5]
bb = [0.85, 0.47, 0.70, 0.60, 0.58, 0.80, 0.33, 0.61, 0.72, 0.46]
d = [p - q for p, q in zip(ba, bb)]
g = Xoshiro(20261128)
means = []
for _ in range(2000):
    means.append(sum(d[g.index(len(d))] for _ in range(len(d))) / len(d))
show("boot mean_diff", np.mean(d))
show("boot lo", np.percentile(means, 2.5)); show("boot hi", np.percentile(means, 97.5))
le = sum(m <= 0 for m in means); ge = sum(m >= 0 for m in means)
show("boot p", min(1.0, 2 * min(le, ge) / len(means)))
