#!/usr/bin/env bash
# qeval code-exec end to end: canonical solutions score pass@1 = 1, empty ones 0; several
# samples per task give the hand-computed pass@1/pass@10; bad completion files are one clear error.
set -uo pipefail
. "$QEVAL_SOURCE_DIR/tests/check.sh"
needs_shared datasets/humaneval/HumanEval.jsonl.gz
data="$shared/datasets"
tmp="$work"
fail=0
expect() { if [ "$2" != "$3" ]; then echo "FAIL $1: expected '$2', got '$3'"; fail=1; else echo "ok $1"; fi; }

python3 - "$data/humaneval/HumanEval.jsonl.gz" "$tmp" <<'PY'
import gzip, json, sys
ps = [json.loads(l) for l in gzip.open(sys.argv[1])]
out = sys.argv[2]
def dump(name, rows):
    with open(f"{out}/{name}", "w") as f:
        for r in rows: f.write(json.dumps(r) + "\n")
dump("canon.jsonl", [{"task_id": p["task_id"], "completion": p["canonical_solution"]} for p in ps[:40]])
dump("empty.jsonl", [{"task_id": p["task_id"], "completion": ""} for p in ps[:40]])
# task 0: 3 of 10 right; task 1: 0 of 10; task 2: 10 of 10
rows = []
for i, n_right in [(0, 3), (1, 0), (2, 10)]:
    for j in range(10):
        rows.append({"task_id": ps[i]["task_id"], "completion": ps[i]["canonical_solution"] if j < n_right else "    return None\n"})
dump("multi.jsonl", rows)
PY
summary() { "$QEVAL_BIN" code-exec --task humaneval --data-dir "$data" --exec-timeout 5 "$@"; }
field() { python3 -c "import json,sys; d=json.loads(sys.stdin.readline()); print(round(d.get('$1', -1), 6))"; }

expect "canonical pass@1" 1 "$(summary --completions "$tmp/canon.jsonl" -o "$tmp/r.jsonl" | field pass@1)"
expect "result lines" 40 "$(wc -l < "$tmp/r.jsonl")"
expect "first result" '{"task_id":"HumanEval/0","passed":true,"result":"passed","outcome":"passed"' \
    "$(head -1 "$tmp/r.jsonl" | cut -d, -f1-4)"
expect "empty pass@1" 0 "$(summary --completions "$tmp/empty.jsonl" -o "$tmp/r.jsonl" --workers 1 | field pass@1)"
out=$(summary --completions "$tmp/multi.jsonl" -o "$tmp/r.jsonl")
expect "multi pass@1" 0.433333 "$(echo "$out" | field pass@1)"     # (0.3 + 0 + 1) / 3
expect "multi pass@10" 0.666667 "$(echo "$out" | field pass@10)"   # (1 + 0 + 1) / 3
expect "no pass@100" -1 "$(echo "$out" | field pass@100)"
expect "default output" 1 "$(summary --completions "$tmp/canon.jsonl" >/dev/null && wc -l < "$tmp/canon.jsonl_results.jsonl" | awk '{print ($1 == 40)}')"
expect "fallback none" 1 "$(summary --completions "$tmp/canon.jsonl" -o "$tmp/r.jsonl" --isolation none 2>/dev/null | field pass@1)"

bad() {  # name, file content, expected message part
    printf '%s' "$2" > "$tmp/bad.jsonl"
    msg=$("$QEVAL_BIN" code-exec --task humaneval --data-dir "$data" --completions "$tmp/bad.jsonl" -o "$tmp/r.jsonl" 2>&1)
    rc=$?
    expect "$1 exit" 1 "$rc"
    case "$msg" in *"$3"*) echo "ok $1 message";; *) echo "FAIL $1 message: $msg"; fail=1;; esac
}
bad "malformed json" '{"task_id": "HumanEval/0", "completion": ' "bad.jsonl: line 1: not a JSON object"
bad "unknown task" '{"task_id": "HumanEval/999", "completion": ""}' "line 1: task_id \"HumanEval/999\""
bad "missing field" $'\n{"task_id": "HumanEval/0"}' "line 2: needs string fields"
bad "empty file" '' "no completions"
"$QEVAL_BIN" code-exec --task gsm8k --completions x 2>/dev/null; expect "wrong task is usage" 2 $?
"$QEVAL_BIN" code-exec --task humaneval --completions x --exec-timeout -3 2>/dev/null; expect "bad timeout is usage" 2 $?
"$QEVAL_BIN" code-exec --task humaneval --data-dir "$tmp" --completions "$tmp/canon.jsonl" 2>/dev/null; expect "missing data" 1 $?
exit $fail
