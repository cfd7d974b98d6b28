#!/usr/bin/env bash
# bench/gpu_ab.sh — a speed change's A/B in one device call: this tree against the commits of
# BASE built beside it in the same job (bench/bases.sh), so that every ratio is of one machine:
#   1. the builds (CUDA_ARCH, default 90), then the GPU tests on the tree (test_backends,
#      test_linear_emu, test_cuda_backend, test_cuda_models);
#   2. `qeval synth --like qwen2.5-0.5b`, with the real Qwen2 tokenizer where the shared data has it;
#   3. per variant of VARIANTS (default "bf16 nf4 int8 fp32"), decode tg64 after a 512-token
#      prompt: each base, the tree launching op by op (QEVAL_CUDA_GRAPHS=0), the tree with each
#      kernel starting after the one before (QEVAL_CUDA_PDL=0), the tree; then bf16
#      with 16 sequences, and bf16 prefill pp2048 in passes of 1024;
#   4. LARGE=SHAPE (e.g. llama-3.1-8b, synthesized beside the tests): the tree's decode of
#      LARGE_VARIANTS (default "bf16 nf4"), tg32 after a 128-token prompt (LARGE_BASES=1: each
#      base's first; PROFILE_LARGE=1: ncu's view of a few NF4 GEMV launches of the shape,
#      OUT/ncu_large.txt);
#      PROFILE=1: where the tree's bf16 decode steps spend GPU time, per kernel (ncu,
#      bench/ncu_kernels.py; 64 steps after a 16-token prompt), and a few launches of the GEMV,
#      RMSNorm and decode attention in detail (ncu sections, OUT/ncu_detail.txt);
#   5. full MMLU 5-shot per MMLU_VARIANTS on the tree (default VARIANTS) and bf16 on the first
#      base (not with MMLU_BASE=0): wall seconds, and an md5 of the samples' outcomes (the same
#      outcomes, the same md5);
#   6. JSON=1: the tree's `qeval bench --json` of every variant (VARIANTS), tg32 after a 512-token
#      prompt, one sequence and 16 (OUT/results/, for bench/benchmarks_md.py).
# A step starts only while enough of BUDGET seconds (default 580; the device tool gives a call
# 600) is left, so a slow step leaves the others' figures.
# A follow-up call on a warm machine may leave steps out: GPU_TESTS=0 (step 1's tests),
# VARIANTS="" (step 3's per-variant decode), X16=0 (its 16 sequences and prefill), MMLU_VARIANTS="".
# Usage: BASE="COMMIT ..." bash bench/gpu_ab.sh OUT_DIR (BUILD=DIR: the tree's build is there
# already; BUILD_TARGETS="qeval test_...": only those built, the GPU tests' and qeval where time
# is short; MMLU_LIMIT=N: N documents a subject instead of all; QEVAL_GIT_COMMIT=C: the commit
# the tree's builds record where the copy has no git history, as the device machine's has none;
# PREBUILT=DIR: no builds, the tree's qeval and GPU tests in DIR/tree, each base's qeval in
# DIR/base-COMMIT, all built elsewhere for CUDA_ARCH by bench/prebuild.sh: the device's minutes
# go to measurements)
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
out=$1
mkdir -p "$out"
t0=$(date +%s)
left() { echo $((${BUDGET:-580} - ($(date +%s) - t0))); }
step() { printf '\n== %s (%s s in, %s s left)\n' "$*" "$(($(date +%s) - t0))" "$(left)"; }
variants=${VARIANTS-bf16 nf4 int8 fp32}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader

step "builds"
. "$src/bench/bases.sh"
if [ -n "${PREBUILT:-}" ]; then
    bases=()
    for commit in ${BASE:-}; do bases+=("$commit $PREBUILT/base-$commit/qeval"); done
    BUILD=$PREBUILT/tree
    export QEVAL_TASKS=$src/tasks QEVAL_MANIFEST=$src/datasets/manifest.tsv # not the building machine's
else
    CUDA_ARCH=${CUDA_ARCH:-90} start_bases "$src" "$out"
fi
build=${BUILD:-$src/build-gpu}
if [ -z "${BUILD:-}" ]; then
    cmake -S "$src" -B "$build" -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90}" -DCMAKE_BUILD_TYPE=Release \
        >"$out/build.log" 2>&1 && cmake --build "$build" -j12 ${BUILD_TARGETS:+--target $BUILD_TARGETS} \
        >>"$out/build.log" 2>&1 ||
        { echo "the tree's build failed:"; tail -30 "$out/build.log"; exit 1; }
fi
qeval=$build/qeval
model=$out/qwen2.5-0.5b
(timeout 120 "$qeval" synth --like qwen2.5-0.5b "$model" >"$out/synth.log" 2>&1 &&
    { [ ! -f "${QEVAL_SHARED:-}/tokenizers/qwen2/tokenizer.json" ] ||
        cp "$QEVAL_SHARED"/tokenizers/qwen2/tokenizer*.json "$model/"; }
    echo "synth: exit $?") &
large=/tmp/qeval-${LARGE:-none} # outside OUT: 16 GB do not travel back
[ -z "${LARGE:-}" ] || (timeout 240 "$qeval" synth --like "$LARGE" "$large" >"$out/synth_large.log" 2>&1
    echo "synth $LARGE: exit $?") &

step "GPU tests"
if [ "${GPU_TESTS:-1}" = 0 ]; then
    echo "skipped (GPU_TESTS=0)"
elif [ -n "${PREBUILT:-}" ]; then # ctest's files name the paths of the machine that built them
    for t in $gpu_tests; do
        (cd "$build" && QEVAL_SOURCE_DIR=$src QEVAL_BIN=$qeval QEVAL_REQUIRE_SHARED=1 timeout 200 "./$t") \
            >"$out/$t.log" 2>&1
        echo "$t: exit $? ($(grep -E "passed, [0-9]+ failed" "$out/$t.log" | tail -1))"
        grep -hE "sequences decoded|sliding window|NOT |DIFFER|FAIL" "$out/$t.log" | head -20
    done
else
    QEVAL_REQUIRE_SHARED=1 timeout $(($(left) > 240 ? 240 : $(left))) ctest --test-dir "$build" \
        -R 'test_cuda|test_backends|test_linear_emu|test_attention_emu' --output-on-failure >"$out/ctest.log" 2>&1
    echo "ctest: exit $?"
    grep -E "Test +#|tests passed" "$out/ctest.log"
    grep -hE "sequences decoded|sliding window" "$build/Testing/Temporary/LastTest.log"
fi
wait # the base builds and the model

decode_args=(-p 512 -n 64 -r 2 --batch 1024 --decode-after-prompt)
for v in $variants; do
    [ "$(left)" -gt 120 ] || break
    step "decode $v"
    for base in "${bases[@]}"; do
        set -- $base
        timeout 60 "$2" bench "$model" --device cuda --variants "$v" "${decode_args[@]}" 2>&1 | grep tg | sed "s/^/$1 /"
    done
    QEVAL_CUDA_GRAPHS=0 timeout 60 "$qeval" bench "$model" --device cuda --variants "$v" "${decode_args[@]}" 2>&1 |
        grep tg | sed "s/^/tree, graphs off /"
    QEVAL_CUDA_PDL=0 timeout 60 "$qeval" bench "$model" --device cuda --variants "$v" "${decode_args[@]}" 2>&1 |
        grep tg | sed "s/^/tree, PDL off /"
    timeout 60 "$qeval" bench "$model" --device cuda --variants "$v" "${decode_args[@]}" 2>&1 | grep tg | sed "s/^/tree /"
done
if [ "${X16:-1}" = 1 ] && [ "$(left)" -gt 120 ]; then
    step "decode bf16, 16 sequences; prefill bf16 pp2048"
    for run in "${bases[@]}" "tree $qeval"; do
        set -- $run
        timeout 60 "$2" bench "$model" --device cuda --variants bf16 "${decode_args[@]}" --decode-batch 16 2>&1 |
            grep tg | sed "s/^/$1 /"
        timeout 60 "$2" bench "$model" --device cuda --variants bf16 -p 2048 -n 1 -r 2 --batch 1024 2>&1 |
            grep pp | sed "s/^/$1 /"
    done
fi
if [ -n "${LARGE:-}" ] && [ "$(left)" -gt 150 ]; then
    step "decode $LARGE (tg32 after a 128-token prompt)"
    runs=("tree $qeval")
    [ "${LARGE_BASES:-0}" = 1 ] && runs=("${bases[@]}" "${runs[@]}")
    for v in ${LARGE_VARIANTS:-bf16 nf4}; do
        for run in "${runs[@]}"; do
            set -- $run
            [ "$(left)" -gt 60 ] || break
            timeout 120 "$2" bench "$large" --device cuda --variants "$v" -p 128 -n 32 -r 1 --batch 512 \
                --decode-after-prompt 2>&1 | grep -E "tg|pp|load|memory" | sed "s/^/$1 /"
        done
    done
    if [ "${PROFILE_LARGE:-0}" = 1 ] && command -v ncu >/dev/null && [ "$(left)" -gt 100 ]; then
        # the NF4 GEMV of the large shape in detail: where its warps wait (ncu_large.txt)
        timeout 90 ncu --section SpeedOfLight --section Occupancy --section WarpStateStats \
            --section InstructionStats -k "regex:mma_gemv" --launch-skip 200 --launch-count 6 "$qeval" bench \
            "$large" --device cuda --variants nf4 -p 16 -n 4 -r 1 --decode-after-prompt >"$out/ncu_large.txt" 2>&1
        grep -E "mma_gemv|^ +Duration|Memory Throughput|Issue Slots Busy|Achieved Occupancy|Registers" \
            "$out/ncu_large.txt" | head -40
    fi
fi
if [ "${PROFILE:-0}" = 1 ] && command -v ncu >/dev/null && [ "$(left)" -gt 150 ]; then
    step "ncu: the tree's bf16 decode steps, per kernel"
    # 64 steps of ~270 kernels after the prompt's pass and the warm-up's
    timeout 120 ncu --csv --metrics gpu__time_duration.sum --launch-skip 2000 --launch-count 5000 "$qeval" bench \
        "$model" --device cuda --variants bf16 -p 16 -n 64 -r 1 --decode-after-prompt >"$out/ncu_decode.csv" 2>/dev/null
    python3 "$src/bench/ncu_kernels.py" "$out/ncu_decode.csv" | head -24
    # a few decode launches of the kernels that lead, in detail (ncu_detail.txt)
    timeout 90 ncu --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy \
        --section WarpStateStats -k "regex:attention_rows|rmsnorm|mma_gemv" --launch-skip 400 --launch-count 8 \
        "$qeval" bench "$model" --device cuda --variants bf16 -p 16 -n 8 -r 1 --decode-after-prompt \
        >"$out/ncu_detail.txt" 2>&1
    grep -E "mma_gemv|attention_rows|rmsnorm_kernel|^ +Duration|Memory Throughput|Achieved Occupancy" \
        "$out/ncu_detail.txt" | head -40
fi

mmlu() { # NAME QEVAL VARIANT
    rm -f "$out/mmlu.db"
    local start end rc
    start=$(date +%s.%N)
    timeout $(($(left) - 5)) "$2" run "$model" --tasks mmlu --variants "$3" --device cuda \
        $([ -n "${MMLU_LIMIT:-}" ] && echo --limit "$MMLU_LIMIT") --data-dir "$QEVAL_SHARED/datasets" \
        --db "$out/mmlu.db" --quiet >/dev/null 2>"$out/mmlu_$1_$3.err"
    rc=$? end=$(date +%s.%N)
    python3 - "$out/mmlu.db" "$1 $3" "$rc" "$start" "$end" <<'PY'
import hashlib, sqlite3, sys
rows = sqlite3.connect(sys.argv[1]).execute("select outcome_json from samples order by task, doc_id").fetchall()
md5 = hashlib.md5("".join(r[0] or "" for r in rows).encode()).hexdigest()[:12]
print(f"mmlu {sys.argv[2]}: {len(rows)} samples, outcomes md5 {md5}, "
      f"wall {float(sys.argv[5]) - float(sys.argv[4]):.1f} s, exit {sys.argv[3]}")
PY
}
if [ -d "${QEVAL_SHARED:-}/datasets/mmlu" ]; then
    runs=()
    for v in ${MMLU_VARIANTS-$variants}; do
        runs+=("tree $qeval $v")
        [ "$v" = bf16 ] && [ ${#bases[@]} -gt 0 ] && [ "${MMLU_BASE:-1}" = 1 ] && runs+=("${bases[0]} bf16")
    done
    for run in "${runs[@]}"; do
        [ "$(left)" -gt 70 ] || { echo "mmlu: no time left for $run"; break; }
        set -- $run
        step "mmlu $1 $3"
        mmlu "$1" "$2" "$3"
    done
fi
if [ "${JSON:-0}" = 1 ]; then
    mkdir -p "$out/results"
    for batch in 1 16; do
        [ "$(left)" -gt 60 ] || { echo "json: no time left for --decode-batch $batch"; break; }
        step "json, --decode-batch $batch"
        timeout $(($(left) - 5)) "$qeval" bench "$model" --device cuda --variants "${variants// /,}" -p 512 -n 32 -r 2 \
            --batch 512 --decode-after-prompt --decode-batch $batch --json >"$out/results/qwen2.5-0.5b-x$batch.json"
        echo "json x$batch: exit $?"
    done
fi
step done
