#!/usr/bin/env bash
# qeval estimate from the command line: the table and --json for the shared models (weights and KV
# cache as computed by hand in tests/test_estimate.c), a config.json alone, a synth shape name,
# --device-memory verdicts (t4, 16GB, 16GiB) and the errors of hostile config.json files, each one
# line naming the file with exit 1.
set -u
. "$QEVAL_SOURCE_DIR/tests/check.sh"
needs_shared models/stories260K/config.json models/tiny-gemma3/config.json models/tiny-qwen2/config.json datasets
needs_sqlite3

# json_get FILE EXPR: a Python expression over j (the parsed JSON), printed
json_get() { python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); v = eval(sys.argv[2]); print(json.dumps(v) if isinstance(v, (bool, type(None))) else v)' "$1" "$2"; }

# ---- the table -------------------------------------------------------------------------------
"$qeval" estimate "$shared/models/stories260K" --context 512 --device cpu >"$work/table"; check 0 $? "table: exit status"
check 1 "$(grep -c '^variant .*weights .*rule_of_thumb .*kv_cache .*activations .*total .*fits .*headroom .*max_context' "$work/table")" "table: header"
for v in fp32 bf16 int8 nf4; do
  check 1 "$(grep -c "^$v " "$work/table")" "table: a $v row"
done
check 1 "$(grep -c '^model .*llama, 5 layers, 260032 parameters, max context 512$' "$work/table")" "table: the model line"
check 1 "$(grep -c '^for  *context 512 x batch 1 on cpu$' "$work/table")" "table: the context line"

# ---- --json: the hand-computed figures of tests/test_estimate.c ------------------------------
"$qeval" estimate "$shared/models/stories260K" --context 512 --device cpu --variants fp32,bf16,int8,nf4,nf4-nodq \
  --json >"$work/s.json"; check 0 $? "json: exit status"
check "1040128 521472 306912 186540 195856" "$(json_get "$work/s.json" '" ".join(str(v["weights_bytes"]) for v in j["variants"])')" "json: stories260K weights"
check "655360" "$(json_get "$work/s.json" 'j["variants"][0]["kv_cache_bytes"]')" "json: stories260K kv cache"
check "260032" "$(json_get "$work/s.json" 'j["n_params"]')" "json: parameters"
for key in weights_bytes kv_cache_bytes activation_bytes total_bytes fits max_context rule_of_thumb_bytes; do
  check "5" "$(json_get "$work/s.json" "sum(1 for v in j['variants'] if '$key' in v)")" "json: every variant has $key"
done
check "null" "$(json_get "$work/s.json" 'j["variants"][0]["fits"]')" "json: no verdict without --device-memory"

# sliding windows: 5 layers bounded by a ring of 16 + 255 positions, 1 of the whole context:
# 256 bytes a position and layer x (5 x 271 + 600) against 256 x 6 x 600
"$qeval" estimate "$shared/models/tiny-gemma3" --context 600 --variants bf16 --json >"$work/g.json"
check "500480 921600 5 16" "$(json_get "$work/g.json" '"%d %d %d %d" % (j["variants"][0]["kv_cache_bytes"], j["variants"][0]["kv_cache_unbounded_bytes"], j["n_sliding_layers"], j["sliding_window"])')" "json: gemma sliding layers"

# a config.json alone gives the same figures as its directory
cp "$shared/models/tiny-qwen2/config.json" "$work/qwen2-config.json"
"$qeval" estimate "$work/qwen2-config.json" --context 100 --device cpu --threads 2 --json >"$work/c1.json"; check 0 $? "config.json alone: exit status"
"$qeval" estimate "$shared/models/tiny-qwen2" --context 100 --device cpu --threads 2 --json >"$work/c2.json"
check "$(json_get "$work/c2.json" '[v["total_bytes"] for v in j["variants"]]')" \
      "$(json_get "$work/c1.json" '[v["total_bytes"] for v in j["variants"]]')" "config.json alone: same totals"
check "2429440" "$(json_get "$work/c1.json" 'j["variants"][0]["weights_bytes"]')" "config.json alone: qwen2 fp32 weights (biases)"

# ---- --device-memory -------------------------------------------------------------------------
"$qeval" estimate gemma-3-4b --device-memory t4 --context 4096 --json >"$work/t4.json"; check 0 $? "t4: exit status"
check "cuda 16106127360" "$(json_get "$work/t4.json" '"%s %d" % (j["device"], j["device_memory_bytes"])')" "t4: 15360 MiB on cuda"
check "[false, true, true, true]" "$(json_get "$work/t4.json" 'json.dumps([v["fits"] for v in j["variants"]])')" "t4: fp32 does not fit, the others do"
check "131072" "$(json_get "$work/t4.json" 'j["variants"][3]["max_context"]')" "t4: nf4 runs the whole context"
check "true" "$(json_get "$work/t4.json" 'j["variants"][0]["headroom_bytes"] < 0 and j["variants"][0]["max_context"] < 4096')" "t4: fp32 short, a short max context"
check "true" "$(json_get "$work/t4.json" 'all(v["context_overhead_bytes"] == 512 << 20 for v in j["variants"])')" "t4: the CUDA context counted"
check "true" "$(json_get "$work/t4.json" 'all(v["total_bytes"] == v["weights_bytes"] + v["kv_cache_bytes"] + v["activation_bytes"] + v["context_overhead_bytes"] for v in j["variants"])')" "t4: total is the sum"
"$qeval" estimate gemma-3-4b --device-memory t4 --context 4096 >"$work/t4.txt"
check 1 "$(grep -c '^fp32 .* no  ' "$work/t4.txt")" "t4 table: fp32 does not fit"
check 1 "$(grep -c '^nf4 .* yes  .* 131072$' "$work/t4.txt")" "t4 table: nf4 fits"
for spec in 16GB:16000000000 16GiB:17179869184 24000MB:24000000000 512MiB:536870912 h100:85520809984; do
  IFS=: read -r size bytes <<<"$spec"
  "$qeval" estimate "$shared/models/stories260K" --device-memory "$size" --variants nf4 --json >"$work/m.json"
  check "$bytes" "$(json_get "$work/m.json" 'j["device_memory_bytes"]')" "--device-memory $size"
done
"$qeval" estimate "$shared/models/stories260K" --device-memory 16XB 2>"$work/err"; check 2 $? "bad size: usage"

# ---- errors: one line naming the file, exit 1 -------------------------------------------------
base='"model_type": "gemma3_text", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16'
hostile() { # NAME JSON NEEDLE
  mkdir -p "$work/$1"
  printf '%s\n' "$2" >"$work/$1/config.json"
  "$qeval" estimate "$work/$1" >"$work/out" 2>"$work/err"; check 1 $? "$1: exit status"
  check 1 "$(wc -l <"$work/err")" "$1: one line"
  check 1 "$(grep -c "^qeval: $work/$1/config.json: .*$3" "$work/err")" "$1: names the file and says [$3] (got: $(cat "$work/err"))"
  check 0 "$(wc -c <"$work/out")" "$1: nothing on stdout"
}
hostile window0 "{$base, \"num_hidden_layers\": 2, \"sliding_window\": 0, \"layer_types\": [\"sliding_attention\", \"full_attention\"]}" 'sliding_window'
hostile types_length "{$base, \"num_hidden_layers\": 3, \"sliding_window\": 8, \"layer_types\": [\"sliding_attention\", \"full_attention\"]}" 'layer_types'
hostile unknown_type "{$base, \"num_hidden_layers\": 2, \"sliding_window\": 8, \"layer_types\": [\"chunked_attention\", \"full_attention\"]}" 'layer_types\[0\]'
hostile no_head_dim '{"model_type": "llama", "vocab_size": 64, "hidden_size": 30, "intermediate_size": 64, "num_attention_heads": 4, "num_hidden_layers": 1}' 'head_dim'
hostile malformed '{"model_type": "llama", "vocab_size": 64,' 'not valid JSON'
hostile missing_field '{"model_type": "llama", "vocab_size": 64, "intermediate_size": 64, "num_attention_heads": 4, "num_hidden_layers": 1}' '"hidden_size" is missing'
hostile no_model_type '{"vocab_size": 64}' '"model_type" is missing'
"$qeval" estimate "$work/nowhere" 2>"$work/err"; check 1 $? "no such model: exit status"
check 1 "$(grep -c "^qeval: $work/nowhere: no such file" "$work/err")" "no such model: message"
"$qeval" estimate "$shared/models/stories260K" --context 513 2>"$work/err"; check 2 $? "context past the model's: usage"
check 1 "$(grep -c 'max_position_embeddings 512' "$work/err")" "context past the model's: message"
"$qeval" estimate 2>/dev/null; check 2 $? "no MODEL: usage"

# ---- qeval run stores the prediction beside the measurement (schema v6) -----------------------
"$qeval" run "$shared/models/stories260K" --variants fp32,nf4 --tasks truthfulqa_mc1 --limit 2 \
  --data-dir "$shared/datasets" --threads 2 --quiet --db "$work/r.db" >/dev/null 2>&1; check 0 $? "run: exit status"
check "fp32|1040128|1040128|512|655360
nf4|186540|186540|512|655360" \
      "$(sqlite3 "$work/r.db" 'SELECT variant, footprint_bytes, predicted_weights_bytes, predicted_context, predicted_kv_cache_bytes FROM run_variants ORDER BY variant')" \
      "run: predicted weights = footprint, the KV cache of the context reached"
check 2 "$(sqlite3 "$work/r.db" 'SELECT count(*) FROM run_variants WHERE predicted_peak_bytes = predicted_weights_bytes + predicted_kv_cache_bytes + predicted_activation_bytes')" "run: predicted peak is the sum"
"$qeval" report --db "$work/r.db" --format md >"$work/report.md"
check 1 "$(grep -c '| peak device GB | predicted peak GB |' "$work/report.md")" "report: predicted beside measured"
"$qeval" report --db "$work/r.db" --format json >"$work/report.json"
check "1040128" "$(json_get "$work/report.json" '[v for v in j["variants"] if v["name"] == "fp32"][0]["predicted_weights_bytes"]')" "report json: the prediction"
finish
