#!/usr/bin/env bash
# qeval verify on the project's fixture models (tests/fixtures/models, golden logits from
# tests/golden/make_fixture_models.py): fp32 must reproduce the float64 reference logits within
# 1e-3, agree on every argmax and every greedy continuation; their tokenizer gives the golden
# texts' ids. Bad arguments fail cleanly.
set -u
. "$QEVAL_SOURCE_DIR/tests/check.sh"
status=0
for model in tiny-llama3 tiny-llama tiny-qwen2 tiny-gemma3; do
    dir="$fixtures/models/$model"
    out=$("$QEVAL_BIN" verify "$dir" --golden "$dir/golden.safetensors" --threads 2 2>&1)
    rc=$?
    echo "$model: $out (exit $rc)"
    if [ $rc -ne 0 ] || ! grep -Eq '^max_abs_diff=[0-9.e+-]+ argmax_agree=([0-9]+)/\1 greedy_match=([1-9][0-9]*)/\2$' <<<"$out"; then
        status=1
    fi
done
dir="$fixtures/models/tiny-llama3"
# the fixtures' byte-level BPE gives the ids Hugging Face tokenizers gave the golden texts (less BOS)
python3 -c 'import json, sys
for s in json.load(open(sys.argv[1]))["sequences"]:
    if "text" in s: print(json.dumps({"text": s["text"]})); print(json.dumps({"ids": s["input_ids"][1:]}), file=sys.stderr)' \
    "$dir/golden.json" > "$work/texts.jsonl" 2> "$work/want.jsonl"
out=$("$QEVAL_BIN" tokenize "$dir" --jsonl "$work/texts.jsonl" | tr -d ' ')
[ -s "$work/want.jsonl" ] && [ "$out" == "$(tr -d ' ' < "$work/want.jsonl")" ] || { echo "tokenize: $out"; status=1; }
# a golden file that is not one fails cleanly
out=$("$QEVAL_BIN" verify "$dir" --golden "$dir/config.json" 2>&1)
rc=$?
echo "bad golden: $out (exit $rc)"
[ $rc -eq 1 ] && grep -q "config.json: header length" <<<"$out" || status=1
out=$("$QEVAL_BIN" verify "$dir" --golden x --variant fp64 2>&1)
rc=$?
echo "bad variant: $out (exit $rc)"
[ $rc -eq 2 ] && grep -q "unknown variant 'fp64' (valid: fp32, bf16, int8, nf4, nf4-nodq)" <<<"$out" || status=1
exit $status
