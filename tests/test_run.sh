#!/usr/bin/env bash
# qeval run end to end on stories260K: stored rows recompute to the printed metrics; the report
# compares MMLU's subjects and categories paired, as its headline; a run killed with SIGKILL at
# several points resumes to exactly the uninterrupted result with no duplicate and no lost row;
# two runs write one database at once; three shards merged equal the unsharded run; a corrupt or
# foreign results file is refused without damage.
set -uo pipefail
. "$QEVAL_SOURCE_DIR/tests/check.sh"
needs_shared models/stories260K datasets
needs_sqlite3
model="$shared/models/stories260K"

args=(--variants fp32,bf16,int8,nf4 --tasks mmlu,gsm8k,truthfulqa_mc1,truthfulqa_mc2
      --subjects abstract_algebra,anatomy --limit 3 --data-dir "$shared/datasets" --threads 1 --quiet)
results() { sqlite3 "$1" "SELECT variant, task, metric, printf('%.12g', value), n FROM task_results ORDER BY 1,2,3"; }

# 1. A whole run; the stored per-sample outcomes average to the stored metrics.
"$qeval" run "$model" "${args[@]}" --db "$work/full.db" --json > "$work/full.json" 2> "$work/full.err"
check 0 $? "full run exit code"
check "complete" "$(sqlite3 "$work/full.db" "SELECT status FROM runs")" "run status"
for variant in fp32 bf16 int8 nf4; do
  mean=$(sqlite3 "$work/full.db" "SELECT printf('%.10f', avg(json_extract(outcome_json, '$.acc'))) FROM samples
                                  WHERE variant='$variant' AND task='truthfulqa_mc1'")
  stored=$(sqlite3 "$work/full.db" "SELECT printf('%.10f', value) FROM task_results
                                    WHERE variant='$variant' AND task='truthfulqa_mc1' AND metric='acc'")
  check "$mean" "$stored" "$variant truthfulqa_mc1 acc recomputed from samples"
  printed=$(python3 -c "import json,sys; d=json.load(open('$work/full.json')); print('%.10f' % d['variants']['$variant']['results']['truthfulqa_mc1/acc']['value'])")
  check "$stored" "$printed" "$variant printed truthfulqa_mc1 acc equals stored"
done
check 4 "$(sqlite3 "$work/full.db" "SELECT count(*) FROM run_variants")" "variant rows"
check 3 "$(sqlite3 "$work/full.db" "SELECT count(*) FROM fidelity WHERE task='mmlu'")" "fidelity rows vs fp32"
# 2 subjects x 3 docs + 3 + 3 + 3, for each of 4 variants
check 60 "$(sqlite3 "$work/full.db" "SELECT count(*) FROM samples")" "sample rows"
check 0 "$(sqlite3 "$work/full.db" "SELECT count(*) FROM samples WHERE question IS NULL OR question LIKE '%Q: %Q: %'")" "every sample keeps its own question, without few-shot examples"
check 1 "$(sqlite3 "$work/full.db" "SELECT question LIKE '%' || char(10) || 'Answer:' FROM samples WHERE task='mmlu_anatomy' LIMIT 1")" "an MMLU question ends with Answer:"
# an MMLU sample is stored under its subject, doc_id its index in the subject's test file
check "mmlu_abstract_algebra|0 1 2
mmlu_anatomy|0 1 2" "$(sqlite3 "$work/full.db" "SELECT task, group_concat(doc_id, ' ') FROM (SELECT task, doc_id FROM samples
                                                 WHERE variant='fp32' AND task LIKE 'mmlu%' ORDER BY task, doc_id) GROUP BY task")" \
      "MMLU samples keyed by subject and index in its split"
results "$work/full.db" > "$work/full.results"

# 1b. The report pairs each MMLU subject and category over its own documents, as the headline:
# n_pairs is the row's n and p the exact McNemar p of the discordant pairs counted here from the
# stored outcomes (both subjects are STEM).
check '["mmlu_stem","mmlu"]' \
      "$(sqlite3 "$work/full.db" "SELECT json_extract(outcome_json, '$.subtasks') FROM samples
                                  WHERE run_id=1 AND variant='fp32' AND task='mmlu_anatomy' AND doc_id=0")" \
      "an MMLU sample names its category and group"
"$qeval" report --db "$work/full.db" --run 1 --format csv -o "$work/report.csv" > /dev/null 2>&1
check 0 $? "report exit code"
# each headline says its shots, as stored with the score
"$qeval" report --db "$work/full.db" --run 1 --format md -o "$work/report.md" > /dev/null 2>&1
for label in "MMLU accuracy (5-shot)" "GSM8K exact match (strict, 5-shot)" "TruthfulQA MC2 (0-shot)"; do
  grep -qF "$label" "$work/report.md" && ok || bad "the md report names \"$label\""
done
outcomes() { echo "SELECT task, doc_id, json_extract(outcome_json, '$.acc') AS acc FROM samples
                   WHERE run_id=1 AND variant='$1' AND task LIKE 'mmlu_%'"; }
for variant in bf16 int8 nf4; do
  for row in "mmlu_abstract_algebra mmlu_abstract_algebra 3" "mmlu_anatomy mmlu_anatomy 3" "mmlu_stem mmlu_% 6"; do
    read -r task pattern n_docs <<< "$row"
    bc=$(sqlite3 "$work/full.db" "SELECT sum(r.acc = 1 AND v.acc = 0), sum(r.acc = 0 AND v.acc = 1)
                                  FROM ($(outcomes fp32)) r JOIN ($(outcomes "$variant")) v USING (task, doc_id)
                                  WHERE task LIKE '$pattern'")
    expected=$(python3 -c "
from math import comb
b, c = map(int, '$bc'.split('|')); n = b + c
print('mcnemar-exact %d %d %.10f' % ($n_docs, $n_docs,
      min(1.0, sum(comb(n, i) for i in range(min(b, c) + 1)) / 2 ** (n - 1)) if n else 1.0))")
    got=$(python3 - "$work/report.csv" "$variant" "$task" <<'PY'
import csv, sys
for r in csv.DictReader(open(sys.argv[1])):
    if (r["variant"], r["task"], r["metric"]) == (sys.argv[2], sys.argv[3], "acc"):
        print(r["test"], r["n"], r["n_pairs"], "%.10f" % float(r["p_value"]))
PY
)
    check "$expected" "$got" "$variant $task: test, n, n_pairs, p"
  done
done

# 1c. Another selection numbers the same documents the same way, so runs join on (task, doc_id):
# anatomy alone, 2 documents, gives anatomy's docs 0 and 1 with the same prompts and answers.
"$qeval" run "$model" --variants fp32 --tasks mmlu --subjects anatomy --limit 2 --data-dir "$shared/datasets" \
  --threads 1 --quiet --no-cache --db "$work/anatomy.db" > /dev/null 2>&1
check 0 $? "anatomy-only run exit code"
sqlite3 "$work/anatomy.db" "ATTACH '$work/full.db' AS full" \
  "SELECT count(*) FROM samples a JOIN full.samples f USING (variant, task, doc_id)
   WHERE f.run_id = 1 AND a.prompt_hash = f.prompt_hash AND a.filtered = f.filtered" > "$work/joined" 2>&1
check "2" "$(cat "$work/joined")" "runs with other --subjects/--limit join on doc_id: same prompts, same answers"

# 1d. --batch-size changes how many documents go to the engine at once, not what they score: 1
# and 5 store the samples the default block stored (every field, packed passes or not).
for size in 1 5; do
  "$qeval" run "$model" "${args[@]}" --batch-size "$size" --no-cache --db "$work/batch$size.db" > /dev/null 2>&1
  check 0 $? "--batch-size $size exit code"
  sqlite3 "$work/batch$size.db" "ATTACH '$work/full.db' AS full" \
    "SELECT count(*) FROM samples b JOIN full.samples f USING (variant, task, doc_id)
     WHERE f.run_id = 1 AND b.prompt_hash = f.prompt_hash AND b.response_json = f.response_json
       AND b.outcome_json = f.outcome_json" > "$work/same" 2>&1
  check "$(sqlite3 "$work/full.db" "SELECT count(*) FROM samples WHERE run_id = 1")" "$(cat "$work/same")" \
    "--batch-size $size: every sample as the default block stores it"
done

# 2. The same command again is answered from the request cache and gives the same numbers.
"$qeval" run "$model" "${args[@]}" --db "$work/full.db" > /dev/null 2>&1
check 0 $? "cached rerun exit code"
check "$(cat "$work/full.results" | sort | md5sum)" \
      "$(sqlite3 "$work/full.db" "SELECT variant, task, metric, printf('%.12g', value), n FROM task_results WHERE run_id=2 ORDER BY 1,2,3" | sort | md5sum)" \
      "cached run equals the first"

# 3. SIGKILL at several points, then resume with the same command line.
for delay in 0.05 0.3 0.8; do
  db="$work/kill-$delay.db"
  "$qeval" run "$model" "${args[@]}" --no-cache --db "$db" > /dev/null 2>&1 &
  pid=$!
  sleep "$delay"
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  "$qeval" run "$model" "${args[@]}" --no-cache --db "$db" > /dev/null 2>&1
  check 0 $? "resume after kill at ${delay}s"
  check "ok" "$(sqlite3 "$db" "PRAGMA integrity_check")" "integrity after kill at ${delay}s"
  check 60 "$(sqlite3 "$db" "SELECT count(*) FROM samples")" "samples after kill at ${delay}s"
  check 0 "$(sqlite3 "$db" "SELECT count(*) FROM (SELECT 1 FROM samples GROUP BY run_id, variant, task, doc_id HAVING count(*) > 1)")" "no duplicates after kill at ${delay}s"
  check "$(md5sum < "$work/full.results")" "$(results "$db" | md5sum)" "resumed run equals uninterrupted (kill at ${delay}s)"
done

# 4. Two runs writing one database at once.
"$qeval" run "$model" --variants fp32,bf16 --tasks truthfulqa_mc1 --limit 4 --data-dir "$shared/datasets" --threads 1 --quiet --db "$work/both.db" > /dev/null 2>&1 &
p1=$!
"$qeval" run "$model" --variants int8,nf4 --tasks truthfulqa_mc1 --limit 4 --data-dir "$shared/datasets" --threads 1 --quiet --db "$work/both.db" > /dev/null 2>&1 &
p2=$!
wait $p1; r1=$?
wait $p2; r2=$?
check "0 0" "$r1 $r2" "two concurrent runs"
check "2" "$(sqlite3 "$work/both.db" "SELECT count(*) FROM runs WHERE status='complete'")" "both runs complete"
check "16" "$(sqlite3 "$work/both.db" "SELECT count(*) FROM samples")" "both runs' samples"

# 5. Three shards merged equal the unsharded run.
for i in 0 1 2; do
  "$qeval" run "$model" "${args[@]}" --shard "$i/3" --db "$work/shard$i.db" > /dev/null 2>&1
  check 0 $? "shard $i"
done
"$qeval" merge "$work/shard0.db" "$work/shard1.db" "$work/shard2.db" -o "$work/merged.db" > /dev/null 2>&1
check 0 $? "merge exit code"
check "$(md5sum < "$work/full.results")" "$(results "$work/merged.db" | md5sum)" "merged shards equal the unsharded run"

# 6. Bad results files: a text file, another program's database; neither is changed.
echo "not a database" > "$work/text.db"
"$qeval" run "$model" "${args[@]}" --db "$work/text.db" > /dev/null 2> "$work/text.err"
check 1 $? "text file as results db exit code"
grep -q "text.db" "$work/text.err" && ok || bad "error names the file: $(cat "$work/text.err")"
check "not a database" "$(cat "$work/text.db")" "text file unchanged"

# 7. Usage errors.
"$qeval" run "$model" --variants fp8 > /dev/null 2> "$work/usage.err"
check 2 $? "unknown variant exit code"
grep -q "fp32" "$work/usage.err" && ok || bad "unknown variant lists the valid ones: $(cat "$work/usage.err")"

finish
