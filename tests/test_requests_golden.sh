#!/usr/bin/env bash
# `qeval requests` must equal, character for character, the lines tests/golden/make_requests_golden.py
# built from lm-evaluation-harness's templates with Python's csv/json/random.
set -u
. "$QEVAL_SOURCE_DIR/tests/check.sh"
needs_shared datasets
golden="$QEVAL_SOURCE_DIR/tests/golden/requests"
tmp="$work"
n_failed=0; n_passed=0
for args_file in "$golden"/*.args; do
    name=$(basename "$args_file" .args)
    args=$(sed -n 1p "$args_file"); keep=$(sed -n 2p "$args_file")
    # shellcheck disable=SC2086
    if ! "$QEVAL_BIN" requests $args --data-dir "$shared/datasets" --tasks-dir "$QEVAL_SOURCE_DIR/tasks" > "$tmp/all" 2> "$tmp/err"; then
        echo "FAIL $name: qeval requests $args failed: $(cat "$tmp/err")"; n_failed=$((n_failed + 1)); continue
    fi
    sed -n "${keep}p" "$tmp/all" > "$tmp/got"
    if cmp -s "$tmp/got" "$golden/$name.expected"; then
        n_passed=$((n_passed + 1))
    else
        echo "FAIL $name: output line $keep differs from $name.expected"
        diff <(tr ',' '\n' < "$golden/$name.expected") <(tr ',' '\n' < "$tmp/got") | head -20
        n_failed=$((n_failed + 1))
    fi
done
echo "$n_passed passed, $n_failed failed"
[ "$n_failed" -eq 0 ]
