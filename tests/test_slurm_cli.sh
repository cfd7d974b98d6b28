#!/usr/bin/env bash
# qeval slurm without a cluster: --dry-run prints the array and merge scripts (the run options
# passed through, each task's --shard and --db, the compare gate) and writes nothing; without
# --submit the scripts are written; --submit calls sbatch (a stand-in that records its arguments)
# for the array, then for the merge with --dependency=afterok on the array's id; usage errors.
# And `qeval run --skip-complete`, which makes a resubmitted array task with a finished shard
# exit at once. (tests/test_slurm.sh runs all of it on a real Slurm.)
set -uo pipefail
. "$QEVAL_SOURCE_DIR/tests/check.sh"
cd "$work"

"$qeval" slurm my-model --variants fp32,nf4 --limit 5 --quiet --shards 4 --partition gpu --gpus-per-task 1 \
  --time 02:00:00 --sbatch --account=lab --db-dir out --baseline last-good.db --max-drop 1 --dry-run > dry.txt 2> dry.err
check 0 $? "dry-run exit code"
[ ! -e out ] && ok || bad "--dry-run wrote $work/out"
for line in "#SBATCH --array=0-3" "#SBATCH --partition=gpu" "#SBATCH --gpus-per-task=1" "#SBATCH --time=02:00:00" \
            "#SBATCH --account=lab" "#SBATCH --output=$work/out/shard-%a.log" "#SBATCH --chdir=$work" \
            "#SBATCH --requeue" "#SBATCH --job-name=qeval-merge" \
            " run 'my-model' '--variants' 'fp32,nf4' '--limit' '5' '--quiet' --shard \"\$i/4\" --db '$work/out'/shard-\"\$i\".db --skip-complete" \
            " merge '$work/out'/shard-0.db '$work/out'/shard-1.db '$work/out'/shard-2.db '$work/out'/shard-3.db -o \"\$out.partial\" || exit 1" \
            " compare --baseline '$work/last-good.db' --candidate \"\$out\" --max-drop '1' --format md -o '$work/out'/compare.md" \
            "out='$work/out/results.db'" \
            "# ---- submit: a=\$(sbatch --parsable $work/out/array.sbatch) && sbatch --dependency=afterok:\$a --kill-on-invalid-dep=yes $work/out/merge.sbatch"; do
  grep -qF -- "$line" dry.txt && ok || bad "dry run lacks: $line"
done
grep -q "SBATCH --gpus" <(sed -n '/merge.sbatch/,$p' dry.txt) && bad "the merge job asks for a GPU" || ok

# written, not submitted; --cpus-per-task also sets the run's threads
"$qeval" slurm my-model --shards 2 --cpus-per-task 3 --db-dir written -o merged.db > written.txt 2>&1
check 0 $? "write exit code"
[ -x written/array.sbatch ] && [ -x written/merge.sbatch ] && ok || bad "scripts not written: $(cat written.txt)"
grep -qF -- "'my-model' --threads 3 --shard \"\$i/2\"" written/array.sbatch && ok || bad "--threads from --cpus-per-task: $(cat written/array.sbatch)"
grep -qF "out='$work/merged.db'" written/merge.sbatch && ok || bad "-o names the merged file"
grep -q "compare" written/merge.sbatch && bad "no --baseline, yet the merge job compares" || ok
bash -n written/array.sbatch && bash -n written/merge.sbatch && ok || bad "the scripts are not valid bash"

# --submit through a stand-in sbatch
cat > fake-sbatch <<'EOF'
#!/bin/sh
echo "$*" >> "$(dirname "$0")/sbatch.calls"
n=$(wc -l < "$(dirname "$0")/sbatch.calls")
echo "$((100 + n));cluster"
EOF
chmod +x fake-sbatch
QEVAL_SBATCH="$work/fake-sbatch" "$qeval" slurm my-model --shards 3 --db-dir sub --submit > submit.txt 2>&1
check 0 $? "submit exit code"
check "--parsable $work/sub/array.sbatch
--parsable --dependency=afterok:101 --kill-on-invalid-dep=yes $work/sub/merge.sbatch" "$(cat sbatch.calls)" "sbatch calls"
grep -q "submitted array job 101 (3 tasks.*merge job 102" submit.txt && ok || bad "submit output: $(cat submit.txt)"
printf '#!/bin/sh\necho "sbatch: error: invalid partition" >&2\nexit 1\n' > failing-sbatch
chmod +x failing-sbatch
QEVAL_SBATCH="$work/failing-sbatch" "$qeval" slurm my-model --shards 3 --db-dir sub --submit > failed.txt 2>&1
check 1 $? "a failing sbatch exit code"
grep -q "invalid partition" failed.txt && grep -q "qeval: .*failing-sbatch --parsable failed" failed.txt && ok ||
  bad "sbatch's failure is reported: $(cat failed.txt)"

# usage errors
for args in "my-model --db-dir x" "--shards 2" "my-model --shards 0" "my-model --shards 2 --shard 0/2" \
            "my-model --shards 2 --db x.db" "my-model --shards 2 --dry-run --submit" "my-model --shards 2 --max-drop 1" \
            "my-model other --shards 2" "my-model --shards 2 --partition 'a b'" \
            "my-model --shards 2 --dry-run --sbatch \$'--account=lab\\ntouch x'" \
            "my-model --shards 2 --dry-run --cpus-per-task '4;id'" "my-model --shards 2 --dry-run --cpus-per-task ''" \
            "my-model --shards 2 --dry-run --db-dir 'res%j'" "my-model --shards 10001 --dry-run"; do
  eval "\"\$qeval\" slurm $args" > usage.txt 2>&1
  check 2 $? "usage error: $args"
done
"$qeval" slurm --help | grep -q -- "--shards N" && ok || bad "slurm --help"
"$qeval" --help 2>&1 | grep -q "slurm" && ok || bad "qeval --help lists slurm"

# qeval run --skip-complete: nothing to do once the same command line completed
args=(--variants fp32 --tasks truthfulqa_mc1 --limit 2 --data-dir "$QEVAL_SOURCE_DIR/datasets/samples" --threads 1
      --shard 0/2 --db "$work/skip.db" --skip-complete)
"$qeval" run "$fixtures/models/tiny-llama3" "${args[@]}" > /dev/null 2> skip1.err
check 0 $? "first run with --skip-complete: $(tail -n 2 skip1.err)"
"$qeval" run "$fixtures/models/tiny-llama3" "${args[@]}" > skip.out 2> skip.err
check 0 $? "second run with --skip-complete"
grep -q "run 1 in .* is complete; nothing to do" skip.err && ok || bad "skip message: $(cat skip.err)"
check "" "$(cat skip.out)" "nothing run, nothing printed"
if command -v sqlite3 > /dev/null; then
  check 1 "$(sqlite3 "$work/skip.db" "SELECT count(*) FROM runs")" "no second run"
fi
finish
