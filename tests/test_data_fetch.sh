#!/usr/bin/env bash
# qeval data fetch through a real HTTP server: a copy of the benchmark files in their upstream
# layout (one directory per host, MMLU as data.tar) served on 127.0.0.1 by python3's
# http.server, fetched with --mirror / $QEVAL_DATA_MIRROR by the code users run. All of it
# arrives and verifies; then the server's copies are corrupted, cut short or removed, and each
# download must be refused by its sha256 (or curl's error) while the file in place stays as it
# was. The server listens on loopback only, lives at most 300 s and is stopped on exit.
set -u
shared="${QEVAL_SHARED:-$QEVAL_DEFAULT_SHARED}/datasets"
[ -d "$shared/mmlu" ] && [ -f "$shared/gsm8k/test.jsonl" ] ||
    { echo "skipped: no shared datasets at $shared (the shared data: set QEVAL_SHARED)"; exit 77; }
command -v curl >/dev/null || { echo "skipped: curl missing"; exit 77; }
manifest="$QEVAL_SOURCE_DIR/datasets/manifest.tsv"
tmp=$(mktemp -d)
server_pid=
stop_server() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null; server_pid=; }
trap 'stop_server; rm -rf "$tmp"' EXIT
n_failed=0 n_passed=0
pass() { n_passed=$((n_passed + 1)); }
fail() { n_failed=$((n_failed + 1)); echo "FAIL $*"; }
# expect NAME WANT_RC PATTERN CMD...: runs CMD, checks its exit code and that stdout+stderr match PATTERN.
expect() {
    local name=$1 want=$2 pattern=$3; shift 3
    "$@" > "$tmp/out" 2>&1; local rc=$?
    if [ "$rc" -eq "$want" ] && grep -Eq -- "$pattern" "$tmp/out"; then
        pass
    else
        fail "$name: exit $rc (wanted $want), output:"; head -5 "$tmp/out"
    fi
}
q() { timeout 180 "$QEVAL_BIN" "$@"; }
same_file() { cmp -s "$1" "$2" && pass || fail "$3: $2 changed"; }
absent() { [ ! -e "$1" ] && pass || fail "$2: $1 exists"; }
no_parts() { [ -z "$(find "$1" -name '*.part')" ] && pass || fail "$2: .part files left in $1"; }

# The mirror: https://HOST/PATH of each manifest URL at www/HOST/PATH, MMLU's archive as a tar
# of data/{test,dev}/*.csv as the upstream one holds them.
www="$tmp/www"
python3 - "$manifest" "$shared" "$www" <<'PY' || { echo "FAIL building the mirror"; exit 1; }
import csv, os, shutil, sys, tarfile
manifest, shared, www = sys.argv[1:]
archives = {}
rows = [r for r in csv.reader((l for l in open(manifest) if not l.startswith("#")), delimiter="\t")][1:]
for bench, path, fmt, records, sha, url in rows:
    if not url.startswith("https://"):
        continue
    url, _, member = url.partition("!")
    local = os.path.join(www, url[len("https://"):])
    os.makedirs(os.path.dirname(local), exist_ok=True)
    if member:
        archives.setdefault(local, []).append((os.path.join(shared, path), member))
    else:
        shutil.copyfile(os.path.join(shared, path), local)
for local, members in archives.items():
    with tarfile.open(local, "w") as tar:
        for src, member in members:
            tar.add(src, arcname=member)
PY

# A free port chosen by the kernel (port 0); the server prints the one it got.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export no_proxy=127.0.0.1 NO_PROXY=127.0.0.1
timeout 300 python3 -u -m http.server --bind 127.0.0.1 --directory "$www" 0 > "$tmp/server.log" 2>&1 &
server_pid=$!
port=
for _ in $(seq 100); do
    port=$(sed -n 's/.*Serving HTTP on 127\.0\.0\.1 port \([0-9]*\).*/\1/p' "$tmp/server.log")
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { echo "FAIL: the HTTP server did not start: $(cat "$tmp/server.log")"; exit 1; }
base="http://127.0.0.1:$port"
echo "serving the mirror at $base"

# Everything fetched from the mirror, then verified as a whole.
d="$tmp/full"
expect fetch_all 0 "fetched  humaneval/HumanEval.jsonl.gz" q data fetch --data-dir "$d" --mirror "$base"
n=$(grep -c '^fetched  ' "$tmp/out")
[ "$n" -eq 119 ] && pass || fail "fetch_all: $n files fetched, wanted 119 (120 less the derived qa_primer.txt)"
grep -q "^skipped  truthfulqa/qa_primer.txt (not a download" "$tmp/out" && pass || fail "fetch_all: qa_primer.txt not skipped"
grep -q '"GET /people.eecs.berkeley.edu/~hendrycks/data.tar HTTP/1.1" 200' "$tmp/server.log" &&
grep -q '"GET /raw.githubusercontent.com/openai/grade-school-math/[0-9a-f]*/grade_school_math/data/test.jsonl HTTP/1.1" 200' "$tmp/server.log" &&
    pass || fail "fetch_all: the server log lacks the upstream paths"
cp "$shared/truthfulqa/qa_primer.txt" "$d/truthfulqa/"
expect verify_all 0 "120 files checked in .*, 0 failed" q data verify --data-dir "$d"
no_parts "$d" fetch_all
expect fetch_again 0 "ok       gsm8k/test.jsonl" q data fetch gsm8k --data-dir "$d" --mirror "$base/"
QEVAL_DATA_MIRROR="$base" expect mirror_env 0 "fetched  truthfulqa/mc_task.json" q data fetch truthfulqa --data-dir "$tmp/env"

# The mirror goes bad: GSM8K test cut in half, train with one byte changed, HumanEval cut short.
gsm="$www/raw.githubusercontent.com/openai/grade-school-math/3101c7d5072418e28b9008a6636bde82a006892c/grade_school_math/data"
flip() { python3 -c 'import sys; p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[len(b) // 2] ^= 1; open(p, "wb").write(b)' "$1"; }
head -c $(($(stat -c %s "$gsm/test.jsonl") / 2)) "$shared/gsm8k/test.jsonl" > "$gsm/test.jsonl"
flip "$gsm/train.jsonl"
sha_train=$(sha256sum "$shared/gsm8k/train.jsonl" | cut -c1-64)
sha_test=$(sha256sum "$shared/gsm8k/test.jsonl" | cut -c1-64)

# A good file in place is kept (not downloaded again); the corrupt train.jsonl is refused.
d="$tmp/good"; mkdir -p "$d/gsm8k"; cp "$shared/gsm8k/test.jsonl" "$d/gsm8k/"
expect corrupt_refused 1 "fetch gsm8k: refused a download that does not match the manifest, nothing written to $d/gsm8k/train.jsonl: $base/raw.githubusercontent.com/.*/train.jsonl: sha256 [0-9a-f]{64}, expected $sha_train" \
    q data fetch gsm8k --data-dir "$d" --mirror "$base"
grep -q "^ok       gsm8k/test.jsonl" "$tmp/out" && pass || fail "corrupt_refused: the good test.jsonl was not kept"
same_file "$shared/gsm8k/test.jsonl" "$d/gsm8k/test.jsonl" corrupt_refused
absent "$d/gsm8k/train.jsonl" corrupt_refused
no_parts "$d" corrupt_refused

# An old file in place that no longer matches stays as it was when the download is cut short.
d="$tmp/stale"; mkdir -p "$d/gsm8k"; printf '{"question": "an older copy", "answer": "#### 1"}\n' > "$d/gsm8k/test.jsonl"
cp "$d/gsm8k/test.jsonl" "$tmp/stale_before"
expect truncated_refused 1 "nothing written to $d/gsm8k/test.jsonl: .*/test.jsonl: sha256 [0-9a-f]{64}, expected $sha_test" \
    q data fetch gsm8k --data-dir "$d" --mirror "$base"
same_file "$tmp/stale_before" "$d/gsm8k/test.jsonl" truncated_refused
no_parts "$d" truncated_refused

he="$www/raw.githubusercontent.com/openai/human-eval/6d43fb980f9fee3c892a914eda09951f772ad10d/data/HumanEval.jsonl.gz"
head -c 20000 "$shared/humaneval/HumanEval.jsonl.gz" > "$he"
expect truncated_gzip_refused 1 "fetch humaneval: refused .*HumanEval.jsonl.gz: sha256 [0-9a-f]{64}, expected" \
    q data fetch humaneval --data-dir "$tmp/he" --mirror "$base"
absent "$tmp/he/humaneval/HumanEval.jsonl.gz" truncated_gzip_refused

# MMLU's archive: one member changed by a byte, then the archive itself cut short.
tar_path="$www/people.eecs.berkeley.edu/~hendrycks/data.tar"
mkdir -p "$tmp/members" && tar -xf "$tar_path" -C "$tmp/members"
flip "$tmp/members/data/test/abstract_algebra_test.csv"
tar -cf "$tar_path" -C "$tmp/members" data
expect member_refused 1 "nothing written to .*/mmlu/test/abstract_algebra_test.csv: .*data.tar!data/test/abstract_algebra_test.csv: sha256 [0-9a-f]{64}, expected 4be89c0f" \
    q data fetch mmlu --data-dir "$tmp/mmlu" --mirror "$base"
absent "$tmp/mmlu/mmlu/test/abstract_algebra_test.csv" member_refused
head -c 300000 "$tar_path" > "$tmp/cut.tar" && mv "$tmp/cut.tar" "$tar_path"
expect archive_cut 1 "fetch mmlu: tar could not unpack" q data fetch mmlu --data-dir "$tmp/mmlu2" --mirror "$base"

# A file the mirror lacks: curl's 404, nothing written.
rm "$www/raw.githubusercontent.com/sylinrl/TruthfulQA/013686a06be7a7bde5bf8223943e106c7250123c/TruthfulQA.csv"
expect not_found 1 "fetch truthfulqa: curl could not download $base/raw.githubusercontent.com/sylinrl/TruthfulQA/.*/TruthfulQA.csv \(exit 22" \
    q data fetch truthfulqa --data-dir "$tmp/tqa" --mirror "$base"
absent "$tmp/tqa/truthfulqa/TruthfulQA.csv" not_found
expect mirror_not_url 2 "mirror \"127.0.0.1\" is not a URL" q data fetch gsm8k --data-dir "$tmp/x" --mirror 127.0.0.1

stop_server
echo "$n_passed passed, $n_failed failed"
[ "$n_failed" -eq 0 ]
