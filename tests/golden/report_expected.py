"""Expected numbers for tests/test_report.c, computed with numpy/scipy from the fixture's raw
outcomes (the same lists the C test writes into its fixture database). Run: python3 this file."""
import math
import numpy as np
from scipy import stats

fp32_mmlu = [1] * 14 + [0] * 6
nf4_mmlu = [1] * 8 + [0] * 6 + [1] + [0] * 5
int8_mmlu = [0] + [1] * 13 + [1] + [0] * 5
mc2 = {
    "fp32": [0.62, 0.55, 0.71, 0.40, 0.83, 0.51, 0.66, 0.58],
    "int8": [0.61, 0.55, 0.70, 0.40, 0.82, 0.52, 0.66, 0.57],
    "nf4": [0.58, 0.50, 0.69, 0.41, 0.75, 0.47, 0.60, 0.55],
}

def se(x):
    x = np.asarray(x, float)
    return x.std(ddof=1) / math.sqrt(len(x))

def mcnemar(a, b):
    a, b = np.asarray(a), np.asarray(b)
    n01 = int(((a == 1) & (b == 0)).sum()); n10 = int(((a == 0) & (b == 1)).sum())
    return n01, n10, min(1.0, stats.binomtest(min(n01, n10), n01 + n10, 0.5).pvalue) if n01 + n10 else 1.0

def paired(a, b):  # b - a, mean +- 1.96 se of differences
    d = np.asarray(b, float) - np.asarray(a, float)
    m, s = d.mean(), se(d)
    return m, m - 1.959963984540054 * s, m + 1.959963984540054 * s

for name, x in [("fp32 mmlu", fp32_mmlu), ("nf4 mmlu", nf4_mmlu), ("int8 mmlu", int8_mmlu)] + \
        [(k + " mc2", v) for k, v in mc2.items()]:
    m, s = np.mean(x), se(x)
    print(f"{name}: value {m:.10g} se {s:.10g} ci [{m - 1.959963984540054 * s:.10g}, {m + 1.959963984540054 * s:.10g}]")

print("nf4 vs fp32 mmlu mcnemar (b, c, p):", mcnemar(fp32_mmlu, nf4_mmlu), "delta/ci:", paired(fp32_mmlu, nf4_mmlu))
print("int8 vs fp32 mmlu mcnemar:", mcnemar(fp32_mmlu, int8_mmlu), paired(fp32_mmlu, int8_mmlu))
for v in ("int8", "nf4"):
    t = stats.ttest_rel(mc2[v], mc2["fp32"])
    print(f"{v} mc2 paired t: t {t.statistic:.10g} p {t.pvalue:.10g}", "delta/ci:", paired(mc2["fp32"], mc2[v]))

# Unpaired two-proportion z-test (pooled), 0.70 of 20 vs 0.45 of 20; interval from the unpooled se.
p1, n1, p2, n2 = 0.70, 20, 0.45, 20
pool = (p1 * n1 + p2 * n2) / (n1 + n2)
z = (p2 - p1) / math.sqrt(pool * (1 - pool) * (1 / n1 + 1 / n2))
half = 1.959963984540054 * math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
print(f"two-proportion z: z {z:.10g} p {2 * stats.norm.sf(abs(z)):.10g} ci [{p2 - p1 - half:.10g}, {p2 - p1 + half:.10g}]")

# compare fixtures: fp32 candidate with 6 (resp. 2) of its right answers turned wrong
for k in (6, 2):
    cand = [0] * k + [1] * (14 - k) + [0] * 6
    print(f"drop of {k}:", mcnemar(fp32_mmlu, cand), paired(fp32_mmlu, cand))
# pooled perf and fidelity of the fixture
print("prefill pooled", 2000 / (1000 / 500 + 1000 / 250), "kl pooled", (10 * 0.01 + 30 * 0.03) / 40,
      "top1 pooled", (10 * 0.9 + 30 * 0.7) / 40)

# The subtasks fixture (test_report.c, test_subtasks): MMLU stored as `qeval run` stores it, under
# "mmlu" with doc_ids over all subjects; each subject's and category's rows paired on those docs.
sub = {  # subject: (category, fp32, nf4)
    "abstract_algebra": ("stem", [1, 1, 1, 1, 1, 0], [0, 0, 0, 0, 1, 0]),
    "anatomy": ("stem", [1, 1, 0, 0, 1, 1], [0, 1, 1, 0, 0, 0]),
    "sociology": ("social_sciences", [1, 0, 1, 1], [1, 1, 1, 0]),
    "econometrics": ("social_sciences", [1, 1, 1, 0], [0, 0, 0, 0]),
}
rows = {"mmlu_" + k: (v[1], v[2]) for k, v in sub.items()}
for cat in ("stem", "social_sciences"):
    rows["mmlu_" + cat] = tuple(sum((v[i] for v in sub.values() if v[0] == cat), []) for i in (1, 2))
rows["mmlu"] = tuple(sum((v[i] for v in sub.values()), []) for i in (1, 2))
for name, (a, b) in rows.items():
    print(f"subtasks {name}: n {len(a)} mcnemar {mcnemar(a, b)} delta/ci {paired(a, b)}")

# Newcombe's hybrid score interval (method 10) for an unpaired difference of two shares,
# p2 - p1, from the two Wilson intervals (scipy's).
def newcombe(x1, n1, x2, n2):
    w1 = stats.binomtest(x1, n1).proportion_ci(0.95, method="wilson")
    w2 = stats.binomtest(x2, n2).proportion_ci(0.95, method="wilson")
    p1, p2 = x1 / n1, x2 / n2
    d = p2 - p1
    return d, d - math.hypot(p2 - w2.low, w1.high - p1), d + math.hypot(w2.high - p2, p1 - w1.low)

print("newcombe 0.45 of 20 - 0.70 of 20:", newcombe(14, 20, 9, 20))
print("newcombe 0 of 1 - 1 of 1:", newcombe(1, 1, 0, 1))
print("newcombe abstract_algebra unpaired, 1 of 6 - 5 of 6:", newcombe(5, 6, 1, 6))
p1, n1, p2, n2 = 5 / 6, 6, 1 / 6, 6
pool = (p1 * n1 + p2 * n2) / (n1 + n2)
z = (p2 - p1) / math.sqrt(pool * (1 - pool) * (1 / n1 + 1 / n2))
print(f"two-proportion z abstract_algebra: z {z:.10g} p {2 * stats.norm.sf(abs(z)):.10g}")

# Run 5: TruthfulQA mc2 near 1; the unclipped intervals reach past 1 (the report clips them there).
near_one_mc2 = {"fp32": [1.0, 0.91, 1.0, 0.99], "nf4": [0.99, 0.93, 1.0, 0.96]}
for name, x in near_one_mc2.items():
    m, s = np.mean(x), se(x)
    print(f"run 5 {name} mc2: value {m:.10g} se {s:.10g} ci [{m - 1.959963984540054 * s:.10g}, {m + 1.959963984540054 * s:.10g}]")
