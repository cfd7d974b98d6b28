#!/usr/bin/env bash
# qeval tokenize on tokenizers alone, through the binary: llama.cpp's vocab-only GGUFs
# (general.architecture gpt2 / llama) reproduce all 46 of llama.cpp's vectors each; the Qwen2
# tokenizer.json, as a file and as a directory with no weights, reproduces llama.cpp's qwen2
# vectors and Hugging Face's golden.jsonl (ids and decoded text); SmolLM2's whole-model GGUF
# (when cached) still gives Hugging Face's ids by its short name. Then hostile paths: each one
# clear line, exit 1.
set -u
shared="${QEVAL_SHARED:-$QEVAL_DEFAULT_SHARED}/tokenizers"
needed=(llamacpp/ggml-vocab-gpt-2.gguf llamacpp/ggml-vocab-llama-spm.gguf llamacpp/ggml-vocab-qwen2.gguf.inp
        qwen2/tokenizer.json qwen2/golden.jsonl)
missing=()
for f in "${needed[@]}"; do [ -f "$shared/$f" ] || missing+=("$shared/$f"); done
[ ${#missing[@]} -eq 0 ] || { echo "skipped: missing ${missing[*]} (the shared data: set QEVAL_SHARED)"; exit 77; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
n_passed=0 n_failed=0
pass() { n_passed=$((n_passed + 1)); }
fail() { n_failed=$((n_failed + 1)); echo "FAIL: $*"; }

# vectors TOKENIZER INP OUT: every text of INP (each followed by a line __ggml_vocab_test__)
# through `qeval tokenize TOKENIZER --jsonl`, compared with line k of OUT (ids, no BOS).
vectors() {
    local name; name=$(basename "$2")
    python3 - "$2" "$work/in.jsonl" <<'PY'
import json, sys
texts = open(sys.argv[1], encoding="utf-8").read().split("\n__ggml_vocab_test__\n")[:-1]
with open(sys.argv[2], "w", encoding="utf-8") as f:
    for t in texts:
        f.write(json.dumps({"text": t}) + "\n")
PY
    if ! "$QEVAL_BIN" tokenize "$1" --jsonl "$work/in.jsonl" > "$work/got.jsonl" 2> "$work/err"; then
        fail "$name: qeval tokenize exited non-zero: $(head -3 "$work/err")"; return
    fi
    local summary
    summary=$(python3 - "$3" "$work/got.jsonl" "$work/in.jsonl" <<'PY'
import json, sys
want = [line.split() for line in open(sys.argv[1], encoding="utf-8").read().split("\n")[:-1]]
got = [[str(i) for i in json.loads(line)["ids"]] for line in open(sys.argv[2], encoding="utf-8")]
texts = [json.loads(line)["text"] for line in open(sys.argv[3], encoding="utf-8")]
exact = sum(w == g for w, g in zip(want, got))
for k, (w, g) in enumerate(zip(want, got)):
    if w != g:
        print(f"  text {k} {texts[k]!r}: expected {' '.join(w)} got {' '.join(g)}", file=sys.stderr)
print(f"{exact}/{len(want)} exact, {len(got)} lines out")
PY
    )
    echo "$name: $summary"
    [ "$summary" = "46/46 exact, 46 lines out" ] && pass || fail "$name: $summary"
}
v="$shared/llamacpp"
vectors "$v/ggml-vocab-gpt-2.gguf" "$v/ggml-vocab-gpt-2.gguf.inp" "$v/ggml-vocab-gpt-2.gguf.out"
vectors "$v/ggml-vocab-llama-spm.gguf" "$v/ggml-vocab-llama-spm.gguf.inp" "$v/ggml-vocab-llama-spm.gguf.out"
vectors "$shared/qwen2/tokenizer.json" "$v/ggml-vocab-qwen2.gguf.inp" "$v/ggml-vocab-qwen2.gguf.out"

# golden.jsonl (Hugging Face tokenizers: ids without special tokens, and their decoding)
# from the qwen2 directory, which holds no config.json and no weights.
# golden ROWS_JSONL TOKENIZER: every row's ids (and decoded, when the row has it) reproduced.
golden() {
    local name=$1 rows=$2 tokenizer=$3
    if ! "$QEVAL_BIN" tokenize "$tokenizer" --jsonl "$rows" --decode > "$work/got.jsonl" 2> "$work/err"; then
        fail "$name: qeval tokenize exited non-zero: $(head -3 "$work/err")"; return
    fi
    local summary
    summary=$(python3 - "$rows" "$work/got.jsonl" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8") if line.strip()]
got = [json.loads(line) for line in open(sys.argv[2], encoding="utf-8")]
exact = 0
for row, g in zip(rows, got):
    same = row["ids"] == g["ids"] and row.get("decoded", g["decoded"]) == g["decoded"]
    exact += same
    if not same:
        print(f"  {row['text'][:60]!r}: expected {row['ids']} {row.get('decoded')!r} got {g}", file=sys.stderr)
print(f"{exact}/{len(rows)} exact, {len(got)} lines out")
PY
    )
    echo "$name: $summary"
    local n_rows; n_rows=$(grep -c . "$rows")
    [ "$summary" = "$n_rows/$n_rows exact, $n_rows lines out" ] && [ "$n_rows" -gt 0 ] && pass || fail "$name: $summary"
}
golden qwen2-golden "$shared/qwen2/golden.jsonl" "$shared/qwen2"

# --special adds BOS as llama.cpp's defaults say: on for SPM (id 1), off for gpt2.
out=$("$QEVAL_BIN" tokenize "$v/ggml-vocab-llama-spm.gguf" --text "Hello world" --special --decode)
[ "$out" = '{"ids":[1,15043,3186],"decoded":"<s> Hello world"}' ] && pass || fail "llama-spm --special: $out"
out=$("$QEVAL_BIN" tokenize "$v/ggml-vocab-gpt-2.gguf" --text "Hello world" --special)
[ "$out" = '{"ids":[15496,995]}' ] && pass || fail "gpt-2 --special: $out"

# A whole model by its short name still works (only when already cached: no download here).
cached="${QEVAL_CACHE:-$HOME/.cache/qeval}/models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ -f "$cached" ]; then
    golden smollm2-135m "$QEVAL_SOURCE_DIR/tests/golden/gguf/smollm2_tokens.jsonl" smollm2-135m
else
    echo "smollm2-135m: not in the model cache ($cached), that case skipped"
fi

# Hostile paths: exit 1 and exactly one line naming the path and the problem.
# refuse NAME PATH PATTERN
refuse() {
    "$QEVAL_BIN" tokenize "$2" --text x > "$work/out" 2>&1; local rc=$?
    if [ $rc -eq 1 ] && [ "$(wc -l < "$work/out")" -eq 1 ] && grep -Eq -- "^qeval: $2: $3" "$work/out"; then
        pass; echo "$1: $(cat "$work/out")"
    else
        fail "$1: exit $rc (wanted 1), output: $(head -3 "$work/out")"
    fi
}
mkdir "$work/no-tokenizer" && echo '{}' > "$work/no-tokenizer/config.json"
refuse no_tokenizer_json "$work/no-tokenizer" "no tokenizer.json, so text cannot be tokenized"
head -c 100000 "$v/ggml-vocab-gpt-2.gguf" > "$work/truncated.gguf"
refuse truncated_gguf "$work/truncated.gguf" ".*runs past the end of the file"
head -c 10 "$v/ggml-vocab-gpt-2.gguf" > "$work/header-only.gguf"
refuse cut_header_gguf "$work/header-only.gguf" "."
# GGUF v3: magic, version, 0 tensors, 1 key: general.architecture = "gpt2" (a string, type 8)
python3 - "$work/no-model.gguf" <<'PY'
import struct, sys
def s(t): b = t.encode(); return struct.pack("<Q", len(b)) + b
open(sys.argv[1], "wb").write(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + s("general.architecture")
                              + struct.pack("<I", 8) + s("gpt2"))
PY
refuse gguf_without_tokenizer "$work/no-model.gguf" "no tokenizer.ggml.model key, so this GGUF holds no tokenizer"
printf '{"model": {"type": "BPE", "vocab": ' > "$work/cut.json"
refuse truncated_json "$work/cut.json" "malformed or truncated JSON"

echo "$n_passed passed, $n_failed failed"
[ "$n_failed" -eq 0 ]
