#!/usr/bin/env bash
# qeval synth from the command line: --list gives the released checkpoints' parameter counts (their
# model cards) and shard counts (their Hub repositories); a synthesized SmolLM2-135M shape is a
# model `qeval inspect` and `qeval generate` take; bad input gets one clear error. Needs no shared
# data (tests/test_synth.c checks the directory's content).
set -u
qeval="$QEVAL_BIN"
n_failed=0 n_passed=0
check() { if [ "$1" = "$2" ]; then n_passed=$((n_passed + 1)); else echo "FAIL $3: expected [$1] got [$2]"; n_failed=$((n_failed + 1)); fi; }
work=$(mktemp -d)
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT

list=$("$qeval" synth --list); check 0 $? "--list exit status"
field() { printf '%s\n' "$list" | awk -v n="$1" -v f="$2" '$1 == n { print $f }'; }
for spec in smollm2-135m:134515008:1 qwen2.5-0.5b:494032768:1 llama-3.2-1b:1235814400:1 \
            llama-3.1-8b:8030261248:4 mistral-7b:7248023552:3; do
  IFS=: read -r name params files <<<"$spec"
  check "$params" "$(field "$name" 2)" "$name parameters"
  check $((params * 2)) "$(field "$name" 3)" "$name bf16 bytes"
  check "$files" "$(field "$name" 4)" "$name safetensors files"
done
check 1 "$(field gemma-3-4b 4 | grep -c '^2$')" "gemma-3-4b in two files"

out="$work/smol"
"$qeval" synth --like smollm2-135m "$out" --seed 3 >"$work/stdout"; check 0 $? "synth exit status"
check "$out: random weights shaped as smollm2-135m (HuggingFaceTB/SmolLM2-135M), seed 3: 134515008 parameters, 269030016 bytes of BF16 in 1 file" \
      "$(cat "$work/stdout")" "synth summary line"
check 134515008 "$("$qeval" inspect "$out" --json | sed -n 's/^[[:space:]]*"n_params":[[:space:]]*\([0-9]*\),$/\1/p')" \
      "inspect n_params"
"$qeval" generate "$out" --prompt "ab ab" --max-new-tokens 3 >"$work/generated"; check 0 $? "generate exit status"
check 1 "$(grep -c '^ab ab' "$work/generated")" "generate continues the prompt"

"$qeval" synth --like gpt-5 "$work/x" 2>"$work/err"; check 2 $? "unknown name: exit status"
check "qeval: unknown model shape 'gpt-5' (known: smollm2-135m, qwen2.5-0.5b, llama-3.2-1b, llama-3.1-8b, mistral-7b, gemma-3-4b)" \
      "$(cat "$work/err")" "unknown name: message"
check 0 "$(ls "$work" | grep -c '^x$')" "unknown name: nothing written"

touch "$work/file"
"$qeval" synth --like smollm2-135m "$work/file/out" 2>"$work/err"; check 1 $? "OUT_DIR under a file: exit status"
check "qeval: $work/file: cannot create the output directory: a file of that name exists" "$(cat "$work/err")" \
      "OUT_DIR under a file: message"
if [ "$(id -u)" != 0 ]; then  # root writes through permissions
  mkdir "$work/locked" && chmod a-w "$work/locked"
  "$qeval" synth --like smollm2-135m "$work/locked/out" 2>"$work/err"; check 1 $? "read-only parent: exit status"
  check "qeval: $work/locked/out: cannot create the output directory: Permission denied" "$(cat "$work/err")" \
        "read-only parent: message"
fi
"$qeval" synth --like smollm2-135m 2>/dev/null; check 2 $? "no OUT_DIR: usage"
"$qeval" synth --like smollm2-135m "$work/y" --seed -1 2>/dev/null; check 2 $? "bad seed: usage"

echo "$n_passed passed, $n_failed failed"
[ "$n_failed" = 0 ]
