#!/usr/bin/env bash
# bench/gpu_session.sh — the GPU figures of the CUDA backend, the memory planner and the
# sliding-window cache, in one pass on a machine with an NVIDIA GPU (the device tool's, whose
# every call costs a machine start: so everything is here):
#   1. tests/gpu/run.sh: build with CUDA, the backend and GPU tests, verify, cpu/cuda picks;
#   2. `qeval synth --like NAME` for each NAME in $SHAPES (default qwen2.5-0.5b gemma-3-4b
#      llama-3.1-8b) into MODELS_DIR (kept for a later peers pass: bench/footprint_peers.py);
#   3. per shape, `qeval estimate --device cuda --json` and `qeval bench --device cuda --json` of
#      every variant at two contexts (pp512 and pp1536, then 32 decode steps after the prompt,
#      chunks of 256 as scoring runs them): speed and device memory measured against predicted,
#      rendered by bench/benchmarks_md.py as docs/benchmarks.md is;
#   4. the peers on the same shapes in the same job, where Python has torch + transformers
#      (+ bitsandbytes for int8 / nf4; PYTHONPATH may point at carried wheels):
#      bench/peer_transformers.py, one JSON line per variant into peers_SHAPE.jsonl;
#   5. MMLU 5-shot scoring time on the first shape, every variant: `qeval run --tasks mmlu` over
#      MMLU_LIMIT documents per subject (default 5: 285 documents; 0: all 14,042), wall seconds
#      and documents per second (needs the datasets: $QEVAL_SHARED/datasets);
#   6. GSM8K on the first shape, bf16, GSM8K_LIMIT documents (default 64) generated in blocks of
#      64 and 16 and one at a time: wall seconds and decode tokens/s of each. Step 3 also times decode
#      of 16 sequences at once (--decode-batch 16) per shape;
#   7. PROFILE_VARIANTS: per-kernel time of decode steps (ncu); STALLS=1: ncu's throughput and
#      warp-stall sections for the prefill kernels (GEMMs, attention) of a 1024-token pass;
#      MMLU_PROFILE=1: the kernels' summed time in a short MMLU run against its wall clock.
# BASE="COMMIT ...": each commit's qeval is built beside this tree's, in the background while
# step 1 runs (bench/bases.sh), and each bench of step 3
# runs on them first, in order, in the same job: the A/B that a speed change needs (figures of
# another call are of another machine); several commits split a series' gain by commit.
# MMLU_BASE=1: step 5 times them too.
# Usage: bash bench/gpu_session.sh BUILD_DIR MODELS_DIR LOG_DIR (GPU_TESTS_SECONDS=0: step 1 ran
# before, BUILD_DIR holds its build; PEERS=0: no peers this time; PROMPTS: the prompt lengths of
# step 3, default "512 1536"; MMLU_VARIANTS: step 5's, space-separated, "" for none; GSM8K_BATCHES:
# step 6's blocks, default "64 16 1", "" for none; PROFILE_VARIANTS: step 7's, e.g. "bf16 nf4")
# Each step is bounded by `timeout` so a slow one leaves the others' figures.
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
build=$1 models=$2 logs=$3
shapes=${SHAPES:-qwen2.5-0.5b gemma-3-4b llama-3.1-8b}
variants=${VARIANTS:-fp32,bf16,int8,nf4}
mkdir -p "$models" "$logs"
step() { printf '\n== %s (%s)\n' "$*" "$(date +%T)"; }

. "$src/bench/bases.sh"
start_bases "$src" "$logs"

if [ "${GPU_TESTS_SECONDS:-300}" -gt 0 ]; then # 0: the build and its tests ran in an earlier call
    step "GPU tests"
    mkdir -p "$logs/gpu"
    OUT="$logs/gpu" timeout "${GPU_TESTS_SECONDS:-300}" bash "$src/tests/gpu/run.sh" "$build" || echo "GPU tests: exit $?"
fi
qeval=$build/qeval
[ -x "$qeval" ] || exit 1
wait # BASE's build
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
echo "commit $(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo unknown)"

for shape in $shapes; do
    dir=$models/$shape
    step "synth $shape"
    [ -f "$dir/config.json" ] || timeout 300 "$qeval" synth --like "$shape" "$dir" || { echo "synth $shape failed"; continue; }
    step "estimate $shape"
    for context in 544 1568; do
        "$qeval" estimate "$dir" --variants "$variants" --device cuda --context "$context" --json \
            >"$logs/estimate_${shape}_$context.json" && echo "estimate $shape context $context: saved"
        "$qeval" estimate "$dir" --variants "$variants" --device cuda --context "$context" | tail -n +1
    done
    for prompt in ${PROMPTS:-512 1536}; do
        step "bench $shape pp$prompt"
        # the document is written at the end: kept only when complete, so one bench cut short
        # leaves the others' rendering intact
        json=$logs/bench_${shape}_$prompt.json
        for base in "${bases[@]}"; do
            set -- $base
            [ -x "$2" ] && timeout "${BENCH_SECONDS:-240}" "$2" bench "$dir" --device cuda --variants "$variants" \
                -p "$prompt" -n 32 -r 1 --batch 256 --decode-after-prompt | sed "s/^/BASE $1  /"
        done
        if timeout "${BENCH_SECONDS:-240}" "$qeval" bench "$dir" --device cuda --variants "$variants" -p "$prompt" \
            -n 32 -r 1 --batch 256 --decode-after-prompt --json >"$json.part"; then
            mv "$json.part" "$json"
        else
            echo "bench $shape pp$prompt: exit $?"; rm -f "$json.part"
        fi
    done
    step "bench $shape decode x16"
    json=$logs/bench_${shape}_x16.json
    if timeout "${BENCH_SECONDS:-240}" "$qeval" bench "$dir" --device cuda --variants "$variants" -p 512 -n 32 -r 1 \
        --batch 256 --decode-after-prompt --decode-batch 16 --json >"$json.part"; then
        mv "$json.part" "$json"
    else
        echo "bench $shape decode x16: exit $?"; rm -f "$json.part"
    fi
done
peers=
if [ "${PEERS:-1}" = 0 ]; then
    echo "peers: skipped (PEERS=0)"
elif python3 -c "import torch, transformers" 2>/dev/null; then
    peers=fp32,bf16
    python3 -c "import bitsandbytes" 2>/dev/null && peers=$peers,int8,nf4
else
    echo "peers: no torch + transformers"
fi
for shape in $shapes; do
    dir=$models/$shape
    [ -n "$peers" ] && [ -f "$dir/config.json" ] || continue
    step "peers $shape ($peers)"
    timeout "${PEER_SECONDS:-240}" python3 "$src/bench/peer_transformers.py" time "$dir" --device cuda \
        --variants "$peers" --prompt-tokens 512 --batch 8 --gen-tokens 32 2>/dev/null | grep '^{' \
        | tee "$logs/peers_$shape.jsonl"
done
first=${shapes%% *}
# the synthetic byte-level BPE spells " A" in two tokens (docs/synth.md); where the shared data
# has the real Qwen2 tokenizer, the qwen shapes score MMLU with it: real token counts, one-token answers
case $first in qwen2*)
    [ -f "${QEVAL_SHARED:-}/tokenizers/qwen2/tokenizer.json" ] && cp "$QEVAL_SHARED"/tokenizers/qwen2/tokenizer*.json "$models/$first/" ;;
esac
if [ -f "$models/$first/config.json" ] && [ -d "${QEVAL_SHARED:-}/datasets/mmlu" ] && [ "${MMLU_VARIANTS-x}" != "" ]; then
    limit=${MMLU_LIMIT:-5}
    runs=("tree $qeval")
    [ "${MMLU_BASE:-0}" = 1 ] && runs=("${bases[@]}" "${runs[@]}")
    for variant in ${MMLU_VARIANTS:-${variants//,/ }}; do
      for run in "${runs[@]}"; do
        set -- $run
        step "mmlu $first $variant, $1 ($([ "$limit" -gt 0 ] && echo "limit $limit" || echo "all documents"))"
        rm -f "$logs/mmlu.db"
        start=$(date +%s.%N)
        timeout "${MMLU_SECONDS:-300}" "$2" run "$models/$first" --tasks mmlu --variants "$variant" --device cuda \
            $([ "$limit" -gt 0 ] && echo --limit "$limit") --data-dir "$QEVAL_SHARED/datasets" --db "$logs/mmlu.db" \
            --quiet >/dev/null 2>"$logs/mmlu_${variant}_$1.err"
        rc=$?
        python3 - "$logs/mmlu.db" "$start" "$rc" "$variant $1" <<'PY'
import sqlite3, sys, time
n = sqlite3.connect(sys.argv[1]).execute("select count(*) from samples").fetchone()[0]
wall = time.time() - float(sys.argv[2])
print(f"mmlu {sys.argv[4]}: {n} documents in {wall:.1f} s ({n / wall:.1f} documents/s), exit {sys.argv[3]}")
PY
      done
    done
fi
# GSM8K generation on the first shape: blocks of 64 and of 16 documents decoded together, then one at a time
if [ -f "$models/$first/config.json" ] && [ -d "${QEVAL_SHARED:-}/datasets/gsm8k" ]; then
    for batch in ${GSM8K_BATCHES-64 16 1}; do
        step "gsm8k $first bf16, --batch-size $batch (limit ${GSM8K_LIMIT:-64})"
        rm -f "$logs/gsm8k.db"
        start=$(date +%s.%N)
        timeout "${GSM8K_SECONDS:-240}" "$qeval" run "$models/$first" --tasks gsm8k --variants bf16 --device cuda \
            --limit "${GSM8K_LIMIT:-64}" --batch-size "$batch" --data-dir "$QEVAL_SHARED/datasets" --db "$logs/gsm8k.db" \
            --no-cache --quiet >/dev/null 2>"$logs/gsm8k_$batch.err"
        rc=$?
        python3 - "$logs/gsm8k.db" "$start" "$rc" "$batch" <<'PY'
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
n = db.execute("select count(*) from samples").fetchone()[0]
perf = db.execute("select tokens_out, decode_tok_s from perf").fetchone() or (0, 0)
wall = time.time() - float(sys.argv[2])
print(f"gsm8k --batch-size {sys.argv[4]}: {n} documents in {wall:.1f} s, {perf[0]} tokens generated, "
      f"decode {perf[1]:.1f} tok/s, exit {sys.argv[3]}")
PY
    done
fi
# 7. where a decode step's GPU time goes, per kernel (PROFILE_VARIANTS, default none: ncu replays
#    each kernel, a minute or two a variant): 700 launches of the first shape's decode steps
#    (-p 16 -n 64 after the warm-up's ~6,000), summed per step by bench/ncu_kernels.py
if [ -n "${PROFILE_VARIANTS:-}" ] && command -v ncu >/dev/null && [ -f "$models/$first/config.json" ]; then
    for variant in $PROFILE_VARIANTS; do
        step "ncu: $first $variant decode kernels"
        timeout "${PROFILE_SECONDS:-180}" ncu --csv --metrics gpu__time_duration.sum --launch-skip 6000 \
            --launch-count 700 "$qeval" bench "$models/$first" --device cuda --variants "$variant" -p 16 -n 64 -r 1 \
            >"$logs/ncu_$variant.csv" 2>/dev/null
        python3 "$src/bench/ncu_kernels.py" "$logs/ncu_$variant.csv" | head -20
    done
fi
if [ "${STALLS:-0}" = 1 ] && command -v ncu >/dev/null && [ -f "$models/$first/config.json" ]; then
    step "ncu: $first bf16 prefill kernels, throughput and warp stalls"
    timeout "${PROFILE_SECONDS:-180}" ncu --section SpeedOfLight --section WarpStateStats --section Occupancy \
        -k regex:"mma_|attention_kernel|f32_gemm" --launch-count 8 "$qeval" bench "$models/$first" --device cuda \
        --variants bf16 -p 1024 -n 1 -r 1 --batch 1024 >"$logs/ncu_stalls.txt" 2>&1
    grep -E "^  [a-z_]|Duration|Throughput|Achieved Occupancy|Warp Cycles Per Issued|stalled" "$logs/ncu_stalls.txt" \
        | cut -c1-200 | head -60
fi
# MMLU_PROFILE=1: how much of an MMLU run's wall clock the GPU spends in kernels (bf16, one document
# a subject: 57 documents; ncu replays each kernel in ~12 ms, and 2 a subject were still running
# after 10,359 kernels and 120 s on an H100, whose partial CSV came back only after the check), and
# in which: the rest is the host's work and the gaps it leaves
if [ "${MMLU_PROFILE:-0}" = 1 ] && command -v ncu >/dev/null && [ -f "$models/$first/config.json" ] &&
    [ -d "${QEVAL_SHARED:-}/datasets/mmlu" ]; then
    step "ncu: $first bf16 mmlu --limit 1, kernel time against wall"
    short=("$qeval" run "$models/$first" --tasks mmlu --variants bf16 --device cuda --limit 1 --no-cache
        --data-dir "$QEVAL_SHARED/datasets" --db "$logs/mmlu_profile.db" --quiet)
    rm -f "$logs/mmlu_profile.db" && start=$(date +%s.%N) && "${short[@]}" >/dev/null 2>"$logs/mmlu_profile.err" &&
        echo "wall: $(python3 -c "import time; print(f'{time.time() - $start:.2f}')") s (load included)"
    rm -f "$logs/mmlu_profile.db"
    timeout "${MMLU_PROFILE_SECONDS:-240}" ncu --csv --metrics gpu__time_duration.sum "${short[@]}" \
        >"$logs/ncu_mmlu.csv" 2>/dev/null
    python3 "$src/bench/ncu_kernels.py" "$logs/ncu_mmlu.csv" | head -16
fi
step "docs/benchmarks.md from the bench documents"
ls "$logs"/bench_*.json >/dev/null 2>&1 && python3 "$src/bench/benchmarks_md.py" "$logs"/bench_*.json --title "Benchmarks on $(nvidia-smi --query-gpu=name \
    --format=csv,noheader | head -1)" -o "$logs/benchmarks.md" && cat "$logs/benchmarks.md"
step done
