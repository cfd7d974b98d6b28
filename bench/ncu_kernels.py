#!/usr/bin/env python3
"""bench/ncu_kernels.py — where a run's GPU time goes, per kernel, from Nsight Compute's CSV.

    ncu --csv --metrics gpu__time_duration.sum [--launch-skip N --launch-count M] CMD > k.csv
    python3 bench/ncu_kernels.py k.csv [--steps S]

Prints each kernel (template arguments kept: they tell the paths apart) with its launches, total
and mean microseconds and share of the summed GPU time; --steps divides the totals by the
number of forward passes the window held, to give per-step figures."""
import argparse
import csv
import sys
from collections import defaultdict


def rows(path):
    with open(path, newline="") as f:
        lines = [line for line in f if line.startswith('"')]  # ncu's own "==PROF==" lines are not CSV
    return csv.DictReader(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--steps", type=float, default=1.0)
    args = ap.parse_args()
    total_ns, launches = defaultdict(float), defaultdict(int)
    for r in rows(args.csv):
        if r.get("Metric Name") != "gpu__time_duration.sum":
            continue
        value = float(r["Metric Value"].replace(",", ""))
        scale = {"nsecond": 1, "usecond": 1e3, "msecond": 1e6, "second": 1e9}.get(r["Metric Unit"], 1)
        name = r["Kernel Name"]
        total_ns[name] += value * scale
        launches[name] += 1
    if not total_ns:
        sys.exit(f"{args.csv}: no gpu__time_duration.sum rows")
    grand = sum(total_ns.values())
    print(f"{'kernel':<70} {'launches':>9} {'total us':>11} {'mean us':>9} {'share':>6}")
    for name, ns in sorted(total_ns.items(), key=lambda kv: -kv[1]):
        print(f"{name[:70]:<70} {launches[name] / args.steps:>9.1f} {ns / 1e3 / args.steps:>11.1f} "
              f"{ns / 1e3 / launches[name]:>9.2f} {100 * ns / grand:>5.1f}%")
    print(f"{'all':<70} {sum(launches.values()) / args.steps:>9.1f} {grand / 1e3 / args.steps:>11.1f}")


if __name__ == "__main__":
    main()
