#!/usr/bin/env bash
# qeval bench --json on the project's own tiny model (runs on a clone with nothing beside it):
# one JSON document naming the command, version, build commit, host, device and plan, with
# every figure per variant (speed: prefill and decode mean/sd, bytes a decode step reads; on the
# CPU no device memory, and the machine's bandwidth); --decode-batch's plan and figure; --scoring
# the same with documents/s; bad options are usage errors (exit 2). The numbers are
# measurements: only their presence and signs are checked, never their size.
set -u
. "$QEVAL_SOURCE_DIR/tests/check.sh"
model="$fixtures/models/tiny-llama3"
json_get() { python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); v = eval(sys.argv[2]); print(json.dumps(v) if isinstance(v, (bool, type(None))) else v)' "$1" "$2"; }

"$qeval" bench "$model" --variants fp32,nf4 -p 8 -n 3 -r 2 --threads 1 --device cpu --json >"$work/speed.json"
check 0 $? "speed --json: exit"
check "speed cpu 1" "$(json_get "$work/speed.json" '"%s %s %d" % (j["mode"], j["device"], j["threads"])')" "speed: mode, device, threads"
check "8 3 2 8 False" "$(json_get "$work/speed.json" '"%d %d %d %d %s" % tuple(j["plan"][k] for k in ("prompt_tokens", "gen_tokens", "repetitions", "batch", "decode_after_prompt"))')" "speed: the plan"
check "true" "$(json_get "$work/speed.json" 'j["command"].startswith("qeval bench ") and "--json" in j["command"] and j["model"] == "'"$model"'"')" "speed: the command and model"
check "true" "$(json_get "$work/speed.json" 'j["qeval_version"] != "" and (j["git_commit"] is None or len(j["git_commit"].removesuffix("-dirty")) == 12)')" "speed: version and commit"
check "true" "$(json_get "$work/speed.json" 'j["host"]["cores"] >= 1 and "gpu" in j["host"]')" "speed: the host"
check "fp32 nf4" "$(json_get "$work/speed.json" '" ".join(v["variant"] for v in j["variants"])')" "speed: variants in order"
check "true" "$(json_get "$work/speed.json" 'all(v["prefill_tok_s"]["mean"] > 0 and v["decode_tok_s"]["mean"] > 0 and v["prefill_tok_s"]["sd"] >= 0 and v["decode_read_bytes"] > 0 and v["device_memory"] is None for v in j["variants"])')" "speed: every figure per variant"
check "true" "$(json_get "$work/speed.json" 'j["variants"][1]["decode_read_bytes"] < j["variants"][0]["decode_read_bytes"]')" "speed: nf4 reads fewer bytes than fp32"
check "true" "$(json_get "$work/speed.json" 'all(0 < v["load_seconds"] < 60 for v in j["variants"])')" "speed: load seconds per variant"
check "true" "$(json_get "$work/speed.json" 'j["memory_bandwidth"]["read_bytes_s"] > 0 and j["memory_bandwidth"]["copy_bytes_s"] > 0')" "speed: bandwidth"

# batched decoding: tg3@ppx4, four sequences a step after their prompts, tokens/s of all four
"$qeval" bench "$model" --variants bf16 -p 4 -n 3 -r 1 --decode-batch 4 --decode-after-prompt --threads 1 --device cpu --json >"$work/batch.json"
check 0 $? "decode batch --json: exit"
check "4 True" "$(json_get "$work/batch.json" '"%d %s" % (j["plan"]["decode_batch"], j["plan"]["decode_after_prompt"])')" "decode batch: the plan"
check "true" "$(json_get "$work/batch.json" 'j["variants"][0]["decode_tok_s"]["mean"] > 0')" "decode batch: tokens/s"
check 1 "$(python3 "$QEVAL_SOURCE_DIR/bench/benchmarks_md.py" "$work/batch.json" | grep -c 'tg3@ppx4 tok/s')" "decode batch: the table's test name"

"$qeval" bench "$model" --variants bf16 --scoring --docs 2 --context-tokens 32 --threads 1 --device cpu --json >"$work/scoring.json"
check 0 $? "scoring --json: exit"
check "scoring 2 32" "$(json_get "$work/scoring.json" '"%s %d %d" % (j["mode"], j["plan"]["docs"], j["plan"]["context_tokens"])')" "scoring: mode and plan"
check "true" "$(json_get "$work/scoring.json" 'len(j["variants"]) == 1 and j["variants"][0]["docs_per_s"] > 0 and j["variants"][0]["mean_context_tokens"] > 0 and "memory_bandwidth" not in j')" "scoring: figures"

# docs/benchmarks.md's generator reads both documents, and refuses one that is not such a document
python3 "$QEVAL_SOURCE_DIR/bench/benchmarks_md.py" "$work/speed.json" "$work/scoring.json" -o "$work/benchmarks.md"
check 0 $? "benchmarks_md: exit"
check 2 "$(grep -c '^## .*tiny-llama3: \(speed\|scoring\) on cpu' "$work/benchmarks.md")" "benchmarks_md: a section per document"
check 1 "$(grep -c '^| nf4 | ' "$work/benchmarks.md")" "benchmarks_md: the nf4 row"
echo '{"mode": "speed"}' >"$work/not-bench.json"
python3 "$QEVAL_SOURCE_DIR/bench/benchmarks_md.py" "$work/not-bench.json" >/dev/null 2>"$work/err"
check 1 $? "benchmarks_md: a foreign document: exit"
check 1 "$(grep -c 'not-bench.json: not a qeval bench --json document' "$work/err")" "benchmarks_md: the error names the file"

for args in "--batch -1" "-p 0" "--docs 0 --scoring" "--variants fp64" "--decode-batch 0" "--decode-batch 257"; do
  "$qeval" bench "$model" $args --json >"$work/out" 2>"$work/err"
  rc=$?
  check 2 $rc "bench $args: exit"
  check 1 "$(wc -l <"$work/err")" "bench $args: one error line"
  check 0 "$(wc -c <"$work/out")" "bench $args: nothing on stdout"
done
finish
