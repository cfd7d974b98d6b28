# Sourced by the shell tests that run qeval on the shared models. Sets shared (the data), qeval
# (the binary) and work (a scratch directory removed on exit); skips the test (exit 77) when
# the shared data is missing, and needs_sqlite3 when the sqlite3 CLI is. check/ok/bad count
# outcomes; `finish` prints the tally and fails on any failure.
shared="${QEVAL_SHARED:-$QEVAL_DEFAULT_SHARED}"
[ -d "$shared/models/stories260K" ] || { echo "no shared data at $shared"; exit 77; }
needs_sqlite3() { command -v sqlite3 >/dev/null || { echo "sqlite3 CLI missing"; exit 77; }; }
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
