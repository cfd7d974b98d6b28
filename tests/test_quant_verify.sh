#!/usr/bin/env bash
# qeval verify on stories260K, a real trained model: fp32 reproduces its float64 golden logits
# and greedy stories; --variant V for each quantized variant runs, reports the comparison with
# fp32 (mean/max KL, top-1 agreement, RMS dp), and bf16/int8 keep >= 98% top-1.
set -u
. "$QEVAL_SOURCE_DIR/tests/check.sh"
needs_shared models/stories260K
dir="$shared/models/stories260K"
status=0
out=$("$QEVAL_BIN" verify "$dir" --golden "$dir/golden.safetensors" --threads 2 2>&1)
rc=$?
echo "fp32: $out (exit $rc)"
[ $rc -eq 0 ] && grep -Eq '^max_abs_diff=[0-9.e+-]+ argmax_agree=([0-9]+)/\1 greedy_match=([1-9][0-9]*)/\2$' <<<"$out" || status=1
for variant in bf16 int8 nf4 nf4-nodq; do
    out=$("$QEVAL_BIN" verify "$dir" --golden "$dir/golden.safetensors" --variant "$variant" --threads 2 2>&1)
    rc=$?
    echo "$variant: $out (exit $rc)"
    line=$(grep -E '^vs fp32: mean_kl=[0-9.e+-]+ max_kl=[0-9.e+-]+ top1_agree=[0-9]+/[0-9]+ \([0-9.]+%\) rms_dp=[0-9.]+%$' <<<"$out")
    if [ $rc -ne 0 ] || [ -z "$line" ]; then
        status=1
        continue
    fi
    pct=$(sed -E 's/.*\(([0-9.]+)%\).*/\1/' <<<"$line")
    case $variant in
    bf16 | int8) awk -v p="$pct" 'BEGIN { exit !(p >= 98) }' || status=1 ;;
    esac
done
# another NF4 block size, named back as given
out=$("$QEVAL_BIN" inspect "$dir" --variant nf4-nodq-bs128 --json 2>&1)
grep -Eq '"variant":[[:space:]]*"nf4-nodq-bs128"' <<<"$out" || { echo "nf4-nodq-bs128: $out"; status=1; }
out=$("$QEVAL_BIN" inspect "$dir" --variant nf4-bs100 2>&1)
rc=$?
echo "nf4-bs100: $out (exit $rc)"
[ $rc -eq 2 ] || status=1
exit $status
