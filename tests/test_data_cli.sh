#!/usr/bin/env bash
# qeval data verify / fetch, and corrupt copies of real benchmark files through qeval requests:
# each must stop with file, line and reason (or be counted with --skip-bad-rows).
set -u
. "$QEVAL_SOURCE_DIR/tests/check.sh"
needs_shared datasets/mmlu
shared="$shared/datasets"
tmp="$work"
n_failed=0; n_passed=0
# expect NAME WANT_RC PATTERN CMD...: runs CMD, checks its exit code and that stdout+stderr match PATTERN.
expect() {
    local name=$1 want=$2 pattern=$3; shift 3
    "$@" > "$tmp/out" 2>&1; local rc=$?
    if [ "$rc" -eq "$want" ] && grep -Eq -- "$pattern" "$tmp/out"; then
        n_passed=$((n_passed + 1))
    else
        echo "FAIL $name: exit $rc (wanted $want), output:"; head -5 "$tmp/out"; n_failed=$((n_failed + 1))
    fi
}
q() { "$QEVAL_BIN" "$@"; }
tasks=(--tasks-dir "$QEVAL_SOURCE_DIR/tasks")

expect verify_all 0 "120 files checked in .*, 0 failed" q data verify --data-dir "$shared"
QEVAL_DATA="$shared" expect verify_env 0 "3 files checked" q data verify truthfulqa
expect verify_missing 1 "FAIL  $tmp/empty/gsm8k/test.jsonl: missing .*qeval data fetch gsm8k" q data verify gsm8k --data-dir "$tmp/empty"
mkdir -p "$tmp/cut/truthfulqa"
head -c 1000 "$shared/truthfulqa/mc_task.json" > "$tmp/cut/truthfulqa/mc_task.json"
expect verify_sha 1 "mc_task.json: sha256 [0-9a-f]{64}, expected 6eb4125d" q data verify truthfulqa --data-dir "$tmp/cut"
expect verify_unknown 2 "no benchmark \"mmlu2\"" q data verify mmlu2 --data-dir "$shared"

# Corrupt copies of anatomy_test.csv (row 1 is line 1).
mk() { mkdir -p "$tmp/$1/mmlu/test"; echo "$tmp/$1/mmlu/test/anatomy_test.csv"; }
src="$shared/mmlu/test/anatomy_test.csv"
f=$(mk fields); awk 'NR==3 { sub(/,[ABCD]$/, "") } { print }' "$src" > "$f"
expect wrong_field_count 1 "anatomy_test.csv:3: 5 fields, expected 6" q requests "${tasks[@]}" --task mmlu --subjects anatomy --num-fewshot 0 --data-dir "$tmp/fields"
expect skip_bad_rows 0 "skipped 1 bad rows \(first: .*anatomy_test.csv:3: 5 fields" q requests "${tasks[@]}" --task mmlu --subjects anatomy --num-fewshot 0 --data-dir "$tmp/fields" --skip-bad-rows
n=$(q requests "${tasks[@]}" --task mmlu --subjects anatomy --num-fewshot 0 --data-dir "$tmp/fields" --skip-bad-rows 2>/dev/null | wc -l)
[ "$n" -eq 134 ] && n_passed=$((n_passed + 1)) || { echo "FAIL skip count: $n requests, wanted 134"; n_failed=$((n_failed + 1)); }
f=$(mk letter); awk 'NR==2 { sub(/,[ABCD]$/, ",E") } { print }' "$src" > "$f"
expect bad_letter 1 "anatomy_test.csv:2: field \"answer\" is \"E\", expected one of A, B, C, D" q requests "${tasks[@]}" --task mmlu --subjects anatomy --num-fewshot 0 --data-dir "$tmp/letter"
f=$(mk quoting); awk 'NR==4 { $0 = "x\"y" $0 } { print }' "$src" > "$f"
expect bad_quoting 1 "anatomy_test.csv:4: a quote inside an unquoted field" q requests "${tasks[@]}" --task mmlu --subjects anatomy --num-fewshot 0 --data-dir "$tmp/quoting"
f=$(mk truncated); { head -n 5 "$src"; printf '"A question cut off, mid'; } > "$f"
expect truncated 1 "anatomy_test.csv:6: the file ends inside a quoted field" q requests "${tasks[@]}" --task mmlu --subjects anatomy --num-fewshot 0 --data-dir "$tmp/truncated"
expect missing_file 1 "mmlu/test/anatomy_test.csv: cannot open" q requests "${tasks[@]}" --task mmlu --subjects anatomy --data-dir "$tmp/empty"
mkdir -p "$tmp/gz/humaneval"; head -c 20000 "$shared/humaneval/HumanEval.jsonl.gz" > "$tmp/gz/humaneval/HumanEval.jsonl.gz"
expect truncated_gzip 1 "HumanEval.jsonl.gz: (truncated or corrupt|read failed)" q requests "${tasks[@]}" --task humaneval --data-dir "$tmp/gz"
expect usage 2 "--task is required" q requests
expect unknown_task 1 "unknown task \"mmmlu\"" q requests "${tasks[@]}" --task mmmlu --data-dir "$shared"

# fetch: file:// URLs stand in for the network (a plain file and an archive member), then an
# unreachable URL must fail clearly.
mkdir -p "$tmp/tarsrc/data/test" && cp "$src" "$tmp/tarsrc/data/test/" && tar -cf "$tmp/data.tar" -C "$tmp/tarsrc" data
sha_a=$(sha256sum "$src" | cut -c1-64); sha_g=$(sha256sum "$shared/gsm8k/test.jsonl" | cut -c1-64)
printf 'bench\tpath\tformat\trecords\tsha256\turl\nmmlu\tmmlu/test/anatomy_test.csv\tcsv\t135\t%s\tfile://%s!data/test/anatomy_test.csv\ngsm8k\tgsm8k/test.jsonl\tjsonl\t1319\t%s\tfile://%s\n' \
    "$sha_a" "$tmp/data.tar" "$sha_g" "$shared/gsm8k/test.jsonl" > "$tmp/manifest.tsv"
expect fetch_file_urls 0 "fetched  gsm8k/test.jsonl" q data fetch --manifest "$tmp/manifest.tsv" --data-dir "$tmp/fetched"
expect fetch_again 0 "ok       mmlu/test/anatomy_test.csv" q data fetch mmlu --manifest "$tmp/manifest.tsv" --data-dir "$tmp/fetched"
expect verify_fetched 0 "2 files checked .* 0 failed" q data verify --manifest "$tmp/manifest.tsv" --data-dir "$tmp/fetched"
printf 'bench\tpath\tformat\trecords\tsha256\turl\ngsm8k\tgsm8k/test.jsonl\tjsonl\t1319\t%s\thttp://127.0.0.1:9/test.jsonl\n' "$sha_g" > "$tmp/offline.tsv"
expect fetch_offline 1 "fetch gsm8k: curl could not download http://127.0.0.1:9/test.jsonl \(exit 7: no network" q data fetch --manifest "$tmp/offline.tsv" --data-dir "$tmp/offline"
[ ! -e "$tmp/offline/gsm8k/test.jsonl" ] && n_passed=$((n_passed + 1)) || { echo "FAIL offline fetch left a file"; n_failed=$((n_failed + 1)); }
echo "$n_passed passed, $n_failed failed"
[ "$n_failed" -eq 0 ]
