#!/usr/bin/env bash
# qeval generate and qeval tokenize on stories260K: greedy text from "Zoo" is the story in
# golden.json, and token ids equal the golden ones.
set -u
. "$QEVAL_SOURCE_DIR/tests/check.sh"
needs_shared models/stories260K/golden.json
dir="$shared/models/stories260K"
# a build without the tokenizer has nothing to check here
if "$QEVAL_BIN" tokenize "$dir" --text x 2>&1 | grep -q "cannot be tokenized"; then
    echo "skipped: this build has no tokenizer"; exit 77
fi
status=0
want=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["greedy"][0]["output_text"], end="")' "$dir/golden.json")
got=$("$QEVAL_BIN" generate "$dir" --prompt Zoo --max-new-tokens 60 --threads 2)
rc=$?
echo "generate: exit $rc: $got"
[ $rc -eq 0 ] && [ "$got" == "${want%$'\n'}" ] || { echo "expected: $want"; status=1; }
# the default (more tokens) starts with the same story
got=$("$QEVAL_BIN" generate "$dir" --prompt Zoo)
[ "${got:0:${#want}}" == "$want" ] || { echo "default-length generation does not start with the golden story"; status=1; }

out=$("$QEVAL_BIN" tokenize "$dir" --text "Once upon a time")
echo "tokenize: $out"
[ "$out" == '{"ids":[403,407,261,378]}' ] || status=1
tmp=$(mktemp)
printf '{"text":"Zoo"}\n{"text":"Once upon a time"}\n' >"$tmp"
out=$("$QEVAL_BIN" tokenize "$dir" --jsonl "$tmp")
[ "$out" == $'{"ids":[410,469,347]}\n{"ids":[403,407,261,378]}' ] || { echo "jsonl: $out"; status=1; }
printf 'not json\n' >"$tmp"
out=$("$QEVAL_BIN" tokenize "$dir" --jsonl "$tmp" 2>&1)
rc=$?
echo "bad jsonl: exit $rc: $out"
[ $rc -eq 1 ] && grep -q ':1: not a JSON object with a string "text"' <<<"$out" || status=1
rm -f "$tmp"

# --chat: the prompt goes into the model's chat template (here ChatML in a copy of the model's
# tokenizer_config.json) and only the answer is printed; without a template, one clear error.
chat="$work/chat"
chatml_model "$dir" "$chat"
rendered=$'<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nZoo<|im_end|>\n<|im_start|>assistant\n'
answer=$("$QEVAL_BIN" generate "$chat" --system "Be brief." --prompt Zoo --max-new-tokens 20 --threads 2)
rc=$?
whole=$("$QEVAL_BIN" generate "$chat" --prompt "$rendered" --max-new-tokens 20 --threads 2)
echo "chat: exit $rc: $answer"
[ $rc -eq 0 ] && [ -n "$answer" ] && [ "$whole" == "$rendered$answer" ] || { echo "chat answer is not the continuation of the rendered template: [$whole]"; status=1; }
out=$("$QEVAL_BIN" generate "$dir" --chat --prompt Zoo 2>&1)
rc=$?
echo "chat without a template: exit $rc: $out"
[ $rc -eq 1 ] && grep -qi "template" <<<"$out" || status=1

out=$("$QEVAL_BIN" inspect "$dir" --json)
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["architecture"]=="llama" and d["n_params"]==260032 and len(d["tensors"])==47, d' "$out" || status=1
exit $status
