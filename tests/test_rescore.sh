#!/usr/bin/env bash
# qeval rescore on a stories260K run: a changed scoring rule (GSM8K's strict regex) changes the
# stored answers and scores without the model; rescoring with the original rule gives back the
# original numbers exactly and keeps the measured KL; different data, a missing run and a
# corrupt response are refused without changing anything.
set -uo pipefail
. "$QEVAL_SOURCE_DIR/tests/check.sh"
needs_shared models/stories260K datasets
needs_sqlite3
model="$shared/models/stories260K"
tasks="$QEVAL_SOURCE_DIR/tasks"
db="$work/r.db"
state() { sqlite3 "$db" "SELECT variant, task, metric, printf('%.12g', value), n FROM task_results ORDER BY 1,2,3;
                        SELECT variant, task, doc_id, filtered, outcome_json FROM samples ORDER BY 1,2,3;
                        SELECT variant, task, printf('%.12g|%.12g|%.12g', kl_mean, kl_p99, top1_agreement) FROM fidelity ORDER BY 1,2" | md5sum; }

"$qeval" run "$model" --variants fp32,nf4 --tasks gsm8k,truthfulqa_mc1 --limit 3 --data-dir "$shared/datasets" \
  --threads 2 --quiet --db "$db" > /dev/null 2> "$work/run.err"
check 0 $? "run exit code: $(cat "$work/run.err")"
before=$(state)
kl_before=$(sqlite3 "$db" "SELECT printf('%.12g', kl_mean) FROM fidelity WHERE task='truthfulqa_mc1'")

# 1. Same definitions: nothing changes.
"$qeval" rescore --db "$db" --data-dir "$shared/datasets" > /dev/null 2> "$work/same.err"
check 0 $? "rescore exit code: $(cat "$work/same.err")"
check "$before" "$(state)" "rescore with the same definitions changes nothing"

# 2. A scoring fix: GSM8K's strict filter now takes the first word, and TruthfulQA MC1's gold
#    answer is the second choice. Answers and scores follow, computed from the stored responses.
mkdir "$work/tasks"
cp "$tasks"/*.json "$work/tasks/"
python3 - "$work/tasks" <<'PY'
import json, sys
path = sys.argv[1] + "/gsm8k.json"
t = json.load(open(path))
for f in t["filters"]:
    if f["name"] == "strict-match":
        f["regex"] = "(\\S+)"
json.dump(t, open(path, "w"), indent=2)
path = sys.argv[1] + "/truthfulqa_mc1.json"
t = json.load(open(path))
t["gold"]["index"] = 1
json.dump(t, open(path, "w"), indent=2)
PY
"$qeval" rescore --db "$db" --tasks-dir "$work/tasks" --data-dir "$shared/datasets" > /dev/null 2> "$work/fix.err"
check 0 $? "rescore after a fix exit code: $(cat "$work/fix.err")"
grep -q "gsm8k: the task definition changed" "$work/fix.err" && ok || bad "says the definition changed: $(cat "$work/fix.err")"
check "6" "$(sqlite3 "$db" "SELECT count(*) FROM samples WHERE task='gsm8k' AND filtered <> '' AND filtered = substr(ltrim(json_extract(response_json, '$.text')), 1, length(filtered)) AND instr(filtered, ' ') = 0")" "strict answers are the first word after the fix"
for variant in fp32 nf4; do
  want=$(sqlite3 "$db" "SELECT response_json FROM samples WHERE variant='$variant' AND task='truthfulqa_mc1' ORDER BY doc_id" |
         python3 -c 'import json, sys; r = [json.loads(l)["ll"] for l in sys.stdin]; print("%.10f" % (sum(max(range(len(x)), key=x.__getitem__) == 1 for x in r) / len(r)))')
  check "$want" "$(sqlite3 "$db" "SELECT printf('%.10f', value) FROM task_results WHERE variant='$variant' AND task='truthfulqa_mc1' AND metric='acc'")" "$variant mc1 acc with gold = choice 2"
done
check "$kl_before" "$(sqlite3 "$db" "SELECT printf('%.12g', kl_mean) FROM fidelity WHERE task='truthfulqa_mc1'")" "KL kept"

# 3. Back to the original definitions: exactly the original numbers.
"$qeval" rescore --db "$db" --data-dir "$shared/datasets" > /dev/null 2>&1
check 0 $? "rescore back exit code"
check "$before" "$(state)" "rescoring with the original definitions restores everything"

# 4. A run stored before schema v4: MMLU's samples under "mmlu" numbered over the selected
#    documents, scores without version or shots, mc2 by the old rule (here a made-up value). The
#    rescore moves the samples to (subject, index in its file), scores mc2 as lm-eval 0.4.13
#    (mass of every answer labelled 1) and records each rule's version: exactly a fresh run's rows.
old="$work/old.db"
"$qeval" run "$model" --variants fp32,nf4 --tasks mmlu,truthfulqa_mc2 --subjects anatomy,world_religions --limit 2 \
  --data-dir "$shared/datasets" --threads 2 --quiet --db "$old" > /dev/null 2> "$work/old-run.err"
check 0 $? "run for the pre-v4 case: $(cat "$work/old-run.err")"
# (outcomes to 12 digits: a run scores the log-likelihoods it holds, a rescore those read back from JSON)
fresh() { sqlite3 "$old" "SELECT variant, task, doc_id, prompt_hash, filtered, printf('%.12g', json_extract(outcome_json, '$.acc')),
                                 json_extract(outcome_json, '$.subtasks') FROM samples ORDER BY 1,2,3;
                          SELECT variant, task, metric, printf('%.12g', value), task_version, num_fewshot FROM task_results ORDER BY 1,2,3"; }
fresh > "$work/fresh.rows"
check "mmlu|2|5
mmlu_anatomy|1.0|5
truthfulqa_mc2|3.0|0" "$(sqlite3 "$old" "SELECT DISTINCT task, task_version, num_fewshot FROM task_results
                                         WHERE task IN ('mmlu', 'mmlu_anatomy', 'truthfulqa_mc2') ORDER BY 1")" \
      "each score names its rule's version (lm-eval 0.4.13) and its shots"
sqlite3 "$old" "UPDATE samples SET task = 'mmlu', doc_id = doc_id + (CASE task WHEN 'mmlu_world_religions' THEN 2 ELSE 0 END),
                                   outcome_json = json_remove(outcome_json, '$.subtasks') WHERE task LIKE 'mmlu_%';
                UPDATE task_results SET task_version = NULL, num_fewshot = NULL;
                UPDATE task_results SET value = 0.123 WHERE task = 'truthfulqa_mc2'"
"$qeval" run "$model" --variants fp32,nf4 --tasks mmlu,truthfulqa_mc2 --subjects anatomy,world_religions --limit 2 \
  --data-dir "$shared/datasets" --threads 2 --quiet --db "$old" --resume 1 > /dev/null 2> "$work/old-resume.err"
check 1 $? "resuming a pre-v4 run is refused"
grep -q "keyed as before schema v4; run \`qeval rescore --run 1\` first" "$work/old-resume.err" && ok ||
  bad "says to rescore first: $(cat "$work/old-resume.err")"
"$qeval" rescore --db "$old" --run 1 --data-dir "$shared/datasets" > /dev/null 2> "$work/old.err"
check 0 $? "rescore of a pre-v4 run: $(cat "$work/old.err")"
grep -q "fp32/mmlu: 4 samples stored before schema v4" "$work/old.err" && ok || bad "says it re-keyed: $(cat "$work/old.err")"
check "$(md5sum < "$work/fresh.rows")" "$(fresh | md5sum)" "rescored pre-v4 run equals a fresh run"
for variant in fp32 nf4; do
  want=$(sqlite3 "$old" "SELECT doc_id, response_json FROM samples WHERE variant='$variant' AND task='truthfulqa_mc2' ORDER BY doc_id" |
         python3 -c '
import json, math, sys
labels = json.load(open(sys.argv[1]))
values = []
for line in sys.stdin:
    doc, response = line.split("|", 1)
    ll = json.loads(response)["ll"]
    true = list(labels[int(doc)]["mc2_targets"].values())
    p = [math.exp(x) for x in ll]
    values.append(sum(pi for pi, t in zip(p, true) if t == 1) / sum(p))
print("%.10f" % (sum(values) / len(values)))' "$shared/datasets/truthfulqa/mc_task.json")
  check "$want" "$(sqlite3 "$old" "SELECT printf('%.10f', value) FROM task_results WHERE variant='$variant' AND task='truthfulqa_mc2'")" \
        "$variant mc2 = mass of every answer labelled 1"
done

# 5. Refusals that change nothing.
mkdir -p "$work/data/gsm8k"
cp -r "$shared/datasets/truthfulqa" "$work/data/"
head -n 50 "$shared/datasets/gsm8k/test.jsonl" > "$work/data/gsm8k/test.jsonl"
tail -n 20 "$shared/datasets/gsm8k/train.jsonl" > "$work/data/gsm8k/train.jsonl"
"$qeval" rescore --db "$db" --data-dir "$work/data" > /dev/null 2> "$work/data.err"
check 1 $? "different data exit code"
grep -q "gsm8k: the data files differ" "$work/data.err" && ok || bad "names the changed data: $(cat "$work/data.err")"
"$qeval" rescore --db "$db" --run 99 --data-dir "$shared/datasets" > /dev/null 2> "$work/norun.err"
check 2 $? "missing run exit code"
grep -q "99" "$work/norun.err" && ok || bad "names the missing run: $(cat "$work/norun.err")"
sqlite3 "$db" "UPDATE samples SET response_json='{\"ll\":' WHERE variant='nf4' AND task='truthfulqa_mc1' AND doc_id=2"
corrupted=$(state)
"$qeval" rescore --db "$db" --tasks-dir "$work/tasks" --data-dir "$shared/datasets" > /dev/null 2> "$work/corrupt.err"
check 1 $? "corrupt response exit code"
grep -q "nf4/truthfulqa_mc1 doc 2" "$work/corrupt.err" && ok || bad "names the corrupt sample: $(cat "$work/corrupt.err")"
check "$corrupted" "$(state)" "a failed rescore wrote nothing"
"$qeval" rescore --db "$db" --bogus > /dev/null 2>&1
check 2 $? "usage error exit code"

finish
