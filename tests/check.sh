# Sourced by the shell tests. Sets shared (the third-party test data: $QEVAL_SHARED, else
# ../shared), fixtures (the project's own tiny models), qeval (the binary) and work (a scratch
# directory removed on exit). needs_shared REL... ends the test when a file of the shared data
# is missing: skipped (77) with one line saying which and how to get it, or failed under
# QEVAL_REQUIRE_SHARED=1 (CI); needs_sqlite3 likewise for the sqlite3 CLI. check/ok/bad count
# outcomes; `finish` prints the tally and fails on any failure.
shared="${QEVAL_SHARED:-${QEVAL_DEFAULT_SHARED:-}}"
fixtures="$QEVAL_SOURCE_DIR/tests/fixtures"
# skip_test WHY: exit 77 after one line, or 1 where CI requires everything to run.
skip_test() {
  if [ -n "${QEVAL_REQUIRE_SHARED:-}" ] && [ "$QEVAL_REQUIRE_SHARED" != 0 ]; then
    echo "FAILED: $* (QEVAL_REQUIRE_SHARED is set, so this test may not skip)"; exit 1
  fi
  echo "skipped: $*"; exit 77
}
needs_shared() {
  local rel
  for rel; do
    [ -e "$shared/$rel" ] || skip_test "needs $shared/$rel, third-party test data: point QEVAL_SHARED at it or put it at ../shared (README, \"Tests and their data\")"
  done
}
needs_sqlite3() { command -v sqlite3 >/dev/null || skip_test "needs the sqlite3 CLI (tests/install_deps.sh installs it)"; }
qeval="$QEVAL_BIN"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }
check() { if [ "$1" = "$2" ]; then ok; else bad "$3: expected [$1] got [$2]"; fi; }
finish() { echo "$passed passed, $failed failed"; [ "$failed" = 0 ]; }

# chatml_model SRC DST: DST becomes SRC's model (symlinks) with a ChatML chat template (no
# default system turn) in a copy of its tokenizer_config.json.
chatml_model() {
  mkdir -p "$2"
  for f in config.json model.safetensors tokenizer.json; do ln -s "$1/$f" "$2/$f"; done
  python3 - "$1/tokenizer_config.json" "$2/tokenizer_config.json" <<'PY'
import json, sys
cfg = json.load(open(sys.argv[1]))
cfg["chat_template"] = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
                        " + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
json.dump(cfg, open(sys.argv[2], "w"))
PY
}
