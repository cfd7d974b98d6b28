#!/usr/bin/env bash
# qeval run --chat-template end to end on stories260K. A copy of the model whose
# tokenizer_config.json carries a ChatML template runs truthfulqa_mc1 and gsm8k with
# --chat-template auto: the run completes, stores the template with the run (options_json,
# tasks_json) and shows it in qeval runs and the summary, and its samples were made from the
# templated requests `qeval requests --chat-template chatml` prints. The request cache, shared by a
# plain and a templated run of the same weights, answers neither with the other's results, and
# answers a repeated templated run. auto on a model without a template and an unknown name fail
# with clear messages (exit 1 and 2), before any run is stored.
set -uo pipefail
. "$QEVAL_SOURCE_DIR/tests/check.sh"
needs_shared models/stories260K datasets
needs_sqlite3
model="$shared/models/stories260K"
if "$QEVAL_BIN" tokenize "$model" --text x 2>&1 | grep -q "cannot be tokenized"; then
    echo "skipped: this build has no tokenizer"; exit 77
fi
db="$work/r.db"
q() { sqlite3 "$db" "$1"; }

chat="$work/chat"
chatml_model "$model" "$chat"
args=(--variants fp32 --tasks truthfulqa_mc1,gsm8k --limit 2 --data-dir "$shared/datasets" --threads 2 --quiet
      --db "$db")

# 1. Plain (the default), then auto: the template comes from the model.
"$qeval" run "$chat" "${args[@]}" > "$work/plain.out" 2>&1
check 0 $? "plain run exit code"
"$qeval" run "$chat" --chat-template auto "${args[@]}" --json > "$work/chat.json" 2> "$work/chat.err"
check 0 $? "auto run exit code ($(cat "$work/chat.err"))"
check "complete" "$(q "SELECT status FROM runs WHERE id=2")" "auto run status"
check "auto|chatml" "$(q "SELECT json_extract(options_json, '$.chat_template'),
                                 json_extract(options_json, '$.chat_template_family') FROM runs WHERE id=2")" \
      "options_json names the template"
check "chatml,chatml" "$(q "SELECT group_concat(json_extract(value, '$.chat_template_family'))
                           FROM runs, json_each(runs.tasks_json) WHERE runs.id=2")" "tasks_json entries name the family"
check "|" "$(q "SELECT json_extract(options_json, '$.chat_template'), json_extract(tasks_json, '\$[0].chat_template')
               FROM runs WHERE id=1")" "a plain run stores no template"
check "auto (chatml)" "$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['chat_template'])" \
                         "$work/chat.json")" "the JSON summary names the template"
check 1 "$("$qeval" runs --db "$db" | grep -c "chat template: auto (chatml)")" "qeval runs shows the template once"
check 4 "$(q "SELECT count(*) FROM samples WHERE run_id=2")" "auto run samples"

# 2. Its samples come from the templated requests: the stored prompt hash is that of the context
# `qeval requests --chat-template chatml` prints (this template has no default system turn).
for task in truthfulqa_mc1 gsm8k; do
  "$qeval" requests --task "$task" --limit 2 --data-dir "$shared/datasets" --chat-template chatml > "$work/$task.jsonl"
  check 0 $? "qeval requests --chat-template chatml --task $task"
  want=$(python3 - "$work/$task.jsonl" <<'PY'
import hashlib, json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    assert r["context"].endswith("<|im_end|>\n<|im_start|>assistant\n"), r["context"][-60:]
    print(hashlib.sha256(b"prompt\0" + r["context"].encode() + b"\0").hexdigest())
PY
)
  check "$want" "$(q "SELECT prompt_hash FROM samples WHERE run_id=2 AND task='$task' ORDER BY doc_id")" \
        "$task samples made from the templated contexts"
done
check "Nauru is" "$(python3 -c "import json,sys; print(json.loads(open(sys.argv[1]).readline())['continuations'][0][:8])" \
                    "$work/truthfulqa_mc1.jsonl")" "a templated continuation has no target delimiter"

# 3. The cache keys on the request text: the templated run computed its own answers (none of its
# prompts or responses is the plain run's), and a second templated run is answered from the cache.
check 0 "$(q "SELECT count(*) FROM samples a JOIN samples b USING (task, doc_id)
              WHERE a.run_id=1 AND b.run_id=2 AND (a.prompt_hash = b.prompt_hash OR a.response_json = b.response_json)")" \
      "no templated sample equals a plain one"
n_plain=$(q "SELECT sum(n_requests) FROM perf WHERE run_id=1")
n_chat=$(q "SELECT sum(n_requests) FROM perf WHERE run_id=2")
[ -n "$n_chat" ] && [ "$n_chat" -gt 0 ] && [ "$n_chat" = "$n_plain" ] && ok ||
  bad "the templated run computed $n_chat requests, the plain one $n_plain: none may come from the other's cache"
"$qeval" run "$chat" --chat-template auto "${args[@]}" > /dev/null 2>&1
check 0 $? "repeated auto run exit code"
check 0 "$(q "SELECT count(*) FROM perf WHERE run_id=3")" "the repeated templated run computed nothing"
check 0 "$(q "SELECT count(*) FROM samples a JOIN samples b USING (task, doc_id)
              WHERE a.run_id=2 AND b.run_id=3 AND a.response_json <> b.response_json")" \
      "the repeated templated run has the first one's answers"

# 4. Failures, before anything is stored.
out=$("$qeval" run "$model" --chat-template auto "${args[@]}" 2>&1)
check 1 $? "auto on a model without a template: exit code"
grep -q "$model: the model has no chat template" <<<"$out" && ok || bad "auto without a template: [$out]"
out=$("$qeval" run "$chat" --chat-template chatm "${args[@]}" 2>&1)
check 2 $? "unknown template name: exit code"
grep -q "unknown chat template 'chatm' (known: none, auto, chatml, llama3, gemma, llama2, mistral)" <<<"$out" && ok ||
  bad "unknown template name: [$out]"
out=$("$qeval" requests --task gsm8k --limit 1 --data-dir "$shared/datasets" --chat-template auto 2>&1)
check 2 $? "qeval requests --chat-template auto: exit code"
check 3 "$(q "SELECT count(*) FROM runs")" "failed invocations stored no run"

finish
