#!/usr/bin/env bash
# The layering of the #include lines (tests/check_includes.sh): the source tree passes, and a copy
# of it with planted violations fails naming each one's file:line — an engine-internal header
# included by the harness, and the store including a report header (store and reports then
# include each other).
set -u
src="${QEVAL_SOURCE_DIR:-$(dirname "$0")/..}"
checker="$src/tests/check_includes.sh"
n_failed=0 n_passed=0
check() { if [ "$1" = "$2" ]; then n_passed=$((n_passed + 1)); else echo "FAIL $3: expected [$1] got [$2]"; n_failed=$((n_failed + 1)); fi; }

out=$(bash "$checker" "$src" 2>&1); rc=$?
check 0 "$rc" "the tree: exit status"
check "" "$out" "the tree: violations"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tar -C "$src" --exclude='./build*' --exclude=./.git --exclude=./.device --exclude=./.gpu -cf - . | tar -C "$tmp" -xf -
# Each plant goes after the file's first line, so it sits on line 2.
sed -i '1a #include "safetensors.h"' "$tmp/harness/cmd_run.c"
sed -i '1a #include "report.h"' "$tmp/harness/store/stats.c"
out=$(bash "$checker" "$tmp" 2>&1); rc=$?
check 1 "$rc" "planted: exit status"
check 2 "$(printf '%s\n' "$out" | wc -l)" "planted: number of violations [$out]"
check 1 "$(printf '%s\n' "$out" | grep -c '^harness/cmd_run\.c:2: includes engine/safetensors\.h, an engine-internal header')" \
      "planted: the internal header, named with file:line [$out]"
check 1 "$(printf '%s\n' "$out" | grep -c '^modules harness/store and reports include each other: harness/store -> reports at harness/store/stats\.c:2; reports -> harness/store at reports/[a-z_]*\.h:[0-9]*$')" \
      "planted: the include cycle, named with file:line [$out]"

echo "$n_passed passed, $n_failed failed"
[ "$n_failed" = 0 ]
