#!/usr/bin/env python3
"""qeval bench against llama.cpp's llama-bench: same machine, same GGUF, same threads.

    python3 bench/llama_compare.py LLAMA_BENCH QEVAL MODEL_F32.gguf [--threads N] [-p 128] [-n 32] [-r 5]
                                   [--rounds K] [--variants fp32,bf16,int8,nf4]

llama.cpp is not vendored or built by the project: LLAMA_BENCH is the path of a llama-bench
binary you built; llama-quantize is taken from beside it (or --quantize PATH) to make the F16,
Q8_0 and Q4_0 copies of MODEL_F32.gguf (in --work-dir, default a temporary directory; kept
there when given, so a second run reuses them). qeval runs the F32 file as fp32, bf16, int8
and nf4. Prints one row per pair (fp32 / F32, bf16 / F16, int8 / Q8_0, nf4 / Q4_0): prefill and
decode tokens/s of each (mean over -r runs), their ratio, and the bytes each streams per second
in decode (bytes read per token x tokens/s; llama.cpp's read per token is its model size), and
whether qeval's decode meets the target of docs/engine.md: its bandwidth at least llama.cpp's,
and for fp32, bf16 and int8 also its tokens/s.

--rounds K (default 1) runs each pair K times, qeval and llama-bench back to back and taking
turns to go first, so that a busy host slows both sides of a round alike: the table then gives
the medians over the rounds, each ratio's median and range over the rounds, and in how many
rounds the target was met (a shared VM's bandwidth drifts by more than the margins between runs
minutes apart). Each round's decode tokens/s are printed below the table. --variants runs only
the pairs of those qeval variants.
"""
import argparse
import csv
import io
import os
import re
import statistics
import subprocess
import sys
import tempfile

PAIRS = [("fp32", "F32"), ("bf16", "F16"), ("int8", "Q8_0"), ("nf4", "Q4_0")]


def run(cmd):
    print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        sys.exit(f"llama_compare: {cmd[0]} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return done.stdout


def llama_results(llama_bench, model, args):
    """{'pp': (tok/s, sd), 'tg': (tok/s, sd), 'size': bytes} from llama-bench's CSV."""
    out = run([llama_bench, "-m", model, "-p", str(args.p), "-n", str(args.n), "-r", str(args.r),
               "-t", str(args.threads), "-o", "csv"])
    res = {}
    for row in csv.DictReader(io.StringIO(out)):
        test = "pp" if int(row["n_gen"]) == 0 else "tg"
        res[test] = (float(row["avg_ts"]), float(row["stddev_ts"]))
        res["size"] = int(row["model_size"])
    return res


def qeval_results(qeval, model, variants, args):
    """{variant: {'pp': (tok/s, sd), 'tg': (tok/s, sd), 'read': bytes per token}} and the bandwidth line."""
    out = run([qeval, "bench", model, "--variants", ",".join(variants), "-p", str(args.p),
               "-n", str(args.n), "-r", str(args.r), "--threads", str(args.threads)])
    res, bandwidth = {}, ""
    for line in out.splitlines():
        m = re.match(r"(\S+)\s+(pp|tg)\d+\S*\s+([\d.]+) ± +([\d.]+)(?:\s+([\d.]+)\s+([\d.]+))?", line)
        if m:
            r = res.setdefault(m.group(1), {})
            r[m.group(2)] = (float(m.group(3)), float(m.group(4)))
            if m.group(5):
                r["read"] = float(m.group(5)) * 1e6
        elif line.startswith("memory bandwidth"):
            bandwidth = line
    return res, bandwidth


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("llama_bench")
    ap.add_argument("qeval")
    ap.add_argument("model", help="an F32 GGUF (llama-quantize makes the others from it)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("-p", type=int, default=128)
    ap.add_argument("-n", type=int, default=32)
    ap.add_argument("-r", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=1, help="each pair this many times, the two sides taking turns")
    ap.add_argument("--variants", default=",".join(v for v, _ in PAIRS), help="qeval variants of the pairs to run")
    ap.add_argument("--quantize", help="llama-quantize (default: beside llama-bench)")
    ap.add_argument("--work-dir", help="where the quantized copies go (default: a temporary directory)")
    args = ap.parse_args()
    pairs_run = [(v, t) for v, t in PAIRS if v in args.variants.split(",")]
    if not pairs_run:
        sys.exit(f"--variants {args.variants}: none of {', '.join(v for v, _ in PAIRS)}")
    quantize = args.quantize or os.path.join(os.path.dirname(os.path.abspath(args.llama_bench)), "llama-quantize")
    tmp = None
    work = args.work_dir
    if not work:
        tmp = tempfile.TemporaryDirectory()
        work = tmp.name
    os.makedirs(work, exist_ok=True)
    files = {}
    for _, ltype in pairs_run:
        if ltype == "F32":
            files[ltype] = args.model
            continue
        path = os.path.join(work, f"{os.path.basename(args.model).rsplit('.', 1)[0]}-{ltype}.gguf")
        if not os.path.exists(path):
            run([quantize, args.model, path, ltype])
        files[ltype] = path
    bandwidth = ""
    rounds = []  # per round: {variant: (qeval results, llama.cpp results)}
    for k in range(args.rounds):
        pairs = {}
        for variant, ltype in pairs_run:
            def ours():
                nonlocal bandwidth
                res, line = qeval_results(args.qeval, args.model, [variant], args)
                bandwidth = line or bandwidth
                return res[variant]
            def theirs():
                return llama_results(args.llama_bench, files[ltype], args)
            if k % 2 == 0:
                q = ours()
                pairs[variant] = (q, theirs())
            else:
                l = theirs()
                pairs[variant] = (ours(), l)
        rounds.append(pairs)

    def med(values):
        return statistics.median(values)

    def ratio(values):
        text = f"{med(values):.2f}×"
        return text if len(values) == 1 else f"{text} [{min(values):.2f}–{max(values):.2f}]"

    pp, tg = f"pp{args.p}", f"tg{args.n}"
    what = f"{args.r} runs each (mean ± sd)" if args.rounds == 1 else \
        f"{args.rounds} rounds of {args.r} runs each (medians over the rounds; ratio: median [range])"
    print(f"\n{args.threads} threads, {what}, {args.model}")
    print(f"| qeval variant vs llama.cpp type | {pp} tok/s (qeval / llama.cpp) | {tg} tok/s (qeval / llama.cpp) "
          f"| decode GB/s (qeval / llama.cpp) | target met |")
    print("|---|---|---|---|---|")
    for variant, ltype in pairs_run:
        runs = [r[variant] for r in rounds]
        q_pp, l_pp = [q["pp"][0] for q, _ in runs], [l["pp"][0] for _, l in runs]
        q_tg, l_tg = [q["tg"][0] for q, _ in runs], [l["tg"][0] for _, l in runs]
        q_gbs = [q["read"] * q["tg"][0] / 1e9 for q, _ in runs]
        l_gbs = [l["size"] * l["tg"][0] / 1e9 for _, l in runs]
        met = [qg >= lg and (variant == "nf4" or qt >= lt) for qg, lg, qt, lt in zip(q_gbs, l_gbs, q_tg, l_tg)]
        if args.rounds == 1:
            (q, l), = runs
            pp_cell = f"{q['pp'][0]:.0f} ± {q['pp'][1]:.0f} / {l['pp'][0]:.0f} ± {l['pp'][1]:.0f}"
            tg_cell = f"{q['tg'][0]:.1f} ± {q['tg'][1]:.1f} / {l['tg'][0]:.1f} ± {l['tg'][1]:.1f}"
            met_cell = "yes" if met[0] else "no"
        else:
            pp_cell = f"{med(q_pp):.0f} / {med(l_pp):.0f}"
            tg_cell = f"{med(q_tg):.1f} / {med(l_tg):.1f}"
            met_cell = f"{sum(met)} of {len(met)} rounds"
        print(f"| {variant} vs {ltype} "
              f"| {pp_cell} ({ratio([a / b for a, b in zip(q_pp, l_pp)])}) "
              f"| {tg_cell} ({ratio([a / b for a, b in zip(q_tg, l_tg)])}) "
              f"| {med(q_gbs):.1f} / {med(l_gbs):.1f} "
              f"| {met_cell} |")
    first = rounds[0]
    print(f"qeval read per decode token: " +
          ", ".join(f"{v} {first[v][0]['read'] / 1e6:.1f} MB" for v, _ in pairs_run) +
          "; llama.cpp model sizes: " + ", ".join(f"{t} {first[v][1]['size'] / 1e6:.1f} MB" for v, t in pairs_run))
    for variant, ltype in pairs_run:
        print(f"{tg} tok/s by round, {variant} / {ltype}: " +
              ", ".join(f"{r[variant][0]['tg'][0]:.1f} / {r[variant][1]['tg'][0]:.1f}" for r in rounds))
    if bandwidth:
        print(bandwidth)


if __name__ == "__main__":
    main()
