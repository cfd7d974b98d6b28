#!/usr/bin/env bash
# qeval verify on every shared model with golden files: fp32 must reproduce the float64
# reference logits within 1e-3, agree on every argmax and every greedy continuation.
set -u
shared="${QEVAL_SHARED:-$QEVAL_DEFAULT_SHARED}"
[ -d "$shared/models" ] || { echo "skipped: no $shared/models"; exit 77; }
status=0
for model in stories260K tiny-llama3 tiny-qwen2 tiny-gemma3; do
    dir="$shared/models/$model"
    out=$("$QEVAL_BIN" verify "$dir" --golden "$dir/golden.safetensors" --threads 2 2>&1)
    rc=$?
    echo "$model: $out (exit $rc)"
    if [ $rc -ne 0 ] || ! grep -Eq '^max_abs_diff=[0-9.e+-]+ argmax_agree=([0-9]+)/\1 greedy_match=([0-9]+)/\2$' <<<"$out"; then
        status=1
    fi
done
# a golden file that is not one fails cleanly
out=$("$QEVAL_BIN" verify "$shared/models/stories260K" --golden "$shared/models/stories260K/config.json" 2>&1)
rc=$?
echo "bad golden: $out (exit $rc)"
[ $rc -eq 1 ] && grep -q "config.json: header length" <<<"$out" || status=1
out=$("$QEVAL_BIN" verify "$shared/models/stories260K" --golden x --variant fp64 2>&1)
rc=$?
echo "bad variant: $out (exit $rc)"
[ $rc -eq 2 ] && grep -q "unknown variant 'fp64' (valid: fp32, bf16, int8, nf4, nf4-nodq)" <<<"$out" || status=1
exit $status
