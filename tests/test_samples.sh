#!/usr/bin/env bash
# datasets/samples (qeval's own smoke-run items in the real files' formats): every task reads
# them and makes the expected number of requests; the HumanEval canonical solutions pass their
# tests; the generator rewrites the committed files byte for byte.
set -u
samples="$QEVAL_SOURCE_DIR/datasets/samples"
n_failed=0; n_passed=0
check() { if [ "$1" = "$2" ]; then n_passed=$((n_passed + 1)); else echo "FAIL $3: expected [$1] got [$2]"; n_failed=$((n_failed + 1)); fi; }

# mmlu: 57 subjects x 2 test rows; the others one request per document.
for spec in mmlu:114 gsm8k:10 humaneval:5 truthfulqa_mc1:10 truthfulqa_mc2:10; do
    task=${spec%%:*} want=${spec##*:}
    out=$("$QEVAL_BIN" requests --task "$task" --data-dir "$samples" --tasks-dir "$QEVAL_SOURCE_DIR/tasks" 2>&1)
    check 0 $? "$task exit code"
    check "$want" "$(printf '%s\n' "$out" | grep -c '^{"task"')" "$task request count"
done

if command -v python3 >/dev/null; then
    check "5 passed" "$(python3 - "$samples/humaneval/HumanEval.jsonl.gz" <<'PY'
import gzip, json, sys
n = 0
for line in gzip.open(sys.argv[1], "rt", encoding="utf-8"):
    p = json.loads(line)
    scope = {}
    exec(p["prompt"] + p["canonical_solution"] + p["test"] + f"\ncheck({p['entry_point']})\n", scope)
    n += 1
print(f"{n} passed")
PY
)" "humaneval canonical solutions"
    tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
    mkdir -p "$tmp/datasets/samples" "$tmp/tasks"
    cp "$samples/make_samples.py" "$tmp/datasets/samples/" && cp "$QEVAL_SOURCE_DIR/tasks/mmlu.json" "$tmp/tasks/"
    python3 "$tmp/datasets/samples/make_samples.py"
    rm "$tmp/datasets/samples/make_samples.py"
    check "" "$(cd "$tmp/datasets/samples" && find . -type f | sort | while read -r f; do
                    cmp -s "$f" "$samples/$f" || echo "$f differs"; done)" "make_samples.py reproduces the files"
else
    echo "python3 missing: HumanEval and generator checks skipped"
fi
echo "$n_passed passed, $n_failed failed"
[ "$n_failed" -eq 0 ]
