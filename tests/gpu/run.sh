#!/usr/bin/env bash
# tests/gpu/run.sh — the GPU checks, on a machine with an NVIDIA GPU and the CUDA toolkit:
#   1. builds with CUDA (-DCMAKE_CUDA_ARCHITECTURES=$CUDA_ARCH, default native);
#   2. the backend tests that run on every built backend (test_backends) and the GPU tests
#      (tests/gpu/test_*.c: ops and linears against the reference backend, error paths, every
#      shared model in every variant against the CPU);
#   3. qeval verify --device cuda on every shared model in fp32 (the CPU tolerances);
#   4. bad devices: cuda:N past the last GPU fails with one clear message, exit 1;
#   5. a qeval run on cpu and on cuda with the same picks per document (the summaries compared).
# Usage: QEVAL_SHARED=DIR bash tests/gpu/run.sh [BUILD_DIR]; logs go to $OUT (default BUILD_DIR).
set -u
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$src/build-gpu}
logs=${OUT:-$build}
shared=${QEVAL_SHARED:-$src/../shared}
export QEVAL_SHARED=$shared
status=0
step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAILED: $*"; status=1; }

step build
command -v nvcc >/dev/null || [ -n "${CUDACXX:-}" ] || export CUDACXX=/usr/local/cuda/bin/nvcc
cmake -S "$src" -B "$build" -DQEVAL_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-native}" \
    -DCMAKE_BUILD_TYPE=Release >"$logs/configure.log" 2>&1 || { tail -20 "$logs/configure.log"; exit 1; }
cmake --build "$build" -j"$(nproc)" >"$logs/build.log" 2>&1 || { grep -E "error" "$logs/build.log" | head -20; exit 1; }
qeval=$build/qeval

step "GPU tests and backend tests"
ctest --test-dir "$build" -R 'test_cuda|test_backends' --output-on-failure 2>&1 | tee "$logs/gpu_tests.log" \
    | grep -E "^(linear|rmsnorm|rope|glu|attention|embed|GPU|peak|bad|out of|short ring|sliding window|[a-zA-Z0-9-]+ +(fp32|bf16|int8|nf4)|all )|passed|failed|Test +#" \
    || true
grep -q "tests passed, 0 tests failed out of\|100% tests passed" "$logs/gpu_tests.log" || fail "GPU tests"
"$build/test_cuda_models" | tail -30  # its figures: GPU against CPU per model and variant, the sliding window

step "qeval verify --device cuda (fp32)"
for model in stories260K tiny-llama3 tiny-qwen2 tiny-gemma3; do
    dir="$shared/models/$model"
    out=$("$qeval" verify "$dir" --golden "$dir/golden.safetensors" --device cuda 2>&1)
    rc=$?
    echo "$model: $out (exit $rc)"
    if [ $rc -ne 0 ] || ! grep -Eq '^max_abs_diff=[0-9.e+-]+ argmax_agree=([0-9]+)/\1 greedy_match=([0-9]+)/\2$' <<<"$out"; then
        fail "verify $model"
    fi
done

step "bad devices"
out=$("$qeval" verify "$shared/models/stories260K" --golden "$shared/models/stories260K/golden.safetensors" \
    --device cuda:7 2>&1)
rc=$?
echo "cuda:7: $out (exit $rc)"
[ $rc -eq 1 ] && grep -q "cuda:7: this machine has" <<<"$out" || fail "cuda:7"
out=$("$qeval" verify "$shared/models/stories260K" --golden x --device tpu 2>&1)
rc=$?
echo "tpu: $out (exit $rc)"
[ $rc -eq 2 ] || fail "--device tpu"

step "qeval run on cpu and cuda"
model="$shared/models/stories260K"
for device in cpu cuda; do
    rm -f "$logs/run_$device.db"
    "$qeval" run "$model" --device "$device" --limit 3 --tasks mmlu,truthfulqa_mc1,truthfulqa_mc2 \
        --subjects abstract_algebra,marketing --data-dir "$shared/datasets" --db "$logs/run_$device.db" \
        --quiet --json >"$logs/run_$device.json" 2>"$logs/run_$device.err" || fail "run --device $device: $(tail -2 "$logs/run_$device.err")"
done
python3 - "$logs/run_cpu.db" "$logs/run_cuda.db" <<'PY' || fail "cpu and cuda picks differ"
import sqlite3, sys
def picks(path):
    db = sqlite3.connect(path)
    rows = db.execute("select variant, task, doc_id, filtered, response_json from samples").fetchall()
    return {r[:3]: r[3:] for r in rows}
a, b = picks(sys.argv[1]), picks(sys.argv[2])
diff = [k for k in a if a[k][0] != (b.get(k) or (None,))[0]]
print(f"{len(a)} samples on cpu, {len(b)} on cuda: {len(diff)} picks differ")
for k in diff[:10]:
    print("  differs:", k, "cpu", a[k][0], a[k][1][:200], "| cuda", b[k][0], b[k][1][:200])
sys.exit(1 if diff or len(a) != len(b) or not a else 0)
PY

echo
[ $status -eq 0 ] && echo "GPU checks: all passed" || echo "GPU checks: FAILED"
exit $status
