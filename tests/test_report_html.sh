#!/bin/bash
# The HTML report is one self-contained file (no script, no external style, font, image or link)
# and renders in headless chromium without console messages, no wider than a 1280-px window; a
# run's long generations come collapsed (<details>). Skipped (77) without chromium, failed without
# it under QEVAL_REQUIRE_SHARED=1 (CI, where tests/install_deps.sh installs it).
# Fixture: the results file test_report writes (tests/test_report.c, --write-fixture): run 1 the
# full report, run 5 a cached GGUF's run with long HumanEval generations.
set -u
qeval=${QEVAL_BIN:?QEVAL_BIN not set}
fixture_writer="$(dirname "$qeval")/test_report"
. "$QEVAL_SOURCE_DIR/tests/check.sh"
tmp="$work"
fail() { echo "FAIL: $*" >&2; exit 1; }

"$fixture_writer" --write-fixture "$tmp/fixture.db" || fail "could not write the fixture with $fixture_writer"
"$qeval" report --db "$tmp/fixture.db" --run 1 --format html -o "$tmp/report.html" || fail "qeval report --format html"
"$qeval" report --db "$tmp/fixture.db" --run 5 --format html -o "$tmp/generations.html" || fail "qeval report --run 5"
html="$tmp/report.html"

# Self-contained: nothing fetched, nothing run.
grep -qi '<script' "$html" && fail "the report has a <script>"
grep -qiE '<link|@import|url\(' "$html" && fail "the report links a stylesheet or url()"
grep -qiE '(src|href|xlink:href)=' "$html" && fail "the report references another file"
grep -qiE '(https?|ftp)://|//[a-z0-9.-]+\.[a-z]{2,}/' "$html" && fail "the report holds an external address"
# What the reader needs: the scatter plots (one per headline benchmark), the bars and the tables.
[ "$(grep -o 'vs footprint</title>' "$html" | wc -l)" -eq 3 ] || fail "expected 3 scatter plots"
grep -q '<title>Speed</title>' "$html" || fail "no speed chart"
grep -q '<title>Memory</title>' "$html" || fail "no memory chart"
grep -q '<h2>What changed</h2>' "$html" || fail "no what-changed section"
# Run 5: the title names the model, not its path; the prompt and both generations collapsed.
grep -q '<h1>SmolLM2-135M-Instruct.Q4_1 — qeval report, run 5</h1>' "$tmp/generations.html" || fail "title of run 5"
[ "$(grep -o '<td class="x"><details><summary>' "$tmp/generations.html" | wc -l)" -eq 3 ] \
    || fail "expected the HumanEval prompt and its 2 generations collapsed"
grep -qiE '<script|(src|href)=' "$tmp/generations.html" && fail "run 5's report is not self-contained"
# Well-formed enough for an XML parser (every tag closed) when python3 is around.
if command -v python3 >/dev/null; then
    for page in "$html" "$tmp/generations.html"; do
    python3 - "$page" <<'PY' || fail "$page does not nest properly"
import sys, html.parser
VOID = {"meta", "br", "img", "input", "hr", "link", "path", "circle", "rect", "line"}
class P(html.parser.HTMLParser):
    stack = []
    def handle_starttag(self, tag, attrs):
        if tag not in VOID: self.stack.append(tag)
    def handle_startendtag(self, tag, attrs): pass
    def handle_endtag(self, tag):
        if tag in VOID: return
        if not self.stack or self.stack[-1] != tag: raise SystemExit(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
        self.stack.pop()
p = P(); p.feed(open(sys.argv[1], encoding="utf-8").read())
if p.stack: raise SystemExit(f"unclosed: {p.stack}")
PY
    done
fi

# The trend chart is a standalone SVG file an XML parser accepts.
"$qeval" trend --db "$tmp/fixture.db" --task mmlu -o "$tmp/trend.svg" >/dev/null || fail "qeval trend"
if command -v python3 >/dev/null; then
    python3 -c "import sys, xml.dom.minidom as m; d = m.parse(sys.argv[1]); assert d.documentElement.tagName == 'svg'" \
        "$tmp/trend.svg" || fail "trend.svg is not well-formed SVG"
fi

browser=""
for b in chromium chromium-browser google-chrome; do
    command -v "$b" >/dev/null && { browser=$b; break; }
done
[ -n "$browser" ] || skip_test "no chromium to render the report (tests/install_deps.sh installs Debian's chromium)"
for page in "$html" "$tmp/generations.html"; do
    HOME="$tmp" timeout 120 "$browser" --headless --no-sandbox --disable-gpu --enable-logging=stderr --v=0 \
        --screenshot="$tmp/report.png" --window-size=1280,2000 "file://$page" >"$tmp/log" 2>&1 \
        || { cat "$tmp/log" >&2; fail "$browser exited with an error on $page"; }
    grep -E 'CONSOLE|Uncaught' "$tmp/log" && fail "console messages while rendering $page"
    [ -s "$tmp/report.png" ] && [ "$(stat -c %s "$tmp/report.png")" -gt 20000 ] || fail "no (or an empty) screenshot of $page"
    # Fits the window: a copy that measures itself (the report holds no script) prints the page's
    # scroll width against the window's, which differ when something sticks out to the right.
    sed 's#</body>#<script>document.title = "width " + document.documentElement.scrollWidth + " of " + document.documentElement.clientWidth</script></body>#' \
        "$page" >"$tmp/measure.html"
    width=$(HOME="$tmp" timeout 120 "$browser" --headless --no-sandbox --disable-gpu --window-size=1280,2000 \
        --dump-dom "file://$tmp/measure.html" 2>/dev/null | grep -o '<title>width [0-9]* of [0-9]*</title>')
    [ -n "$width" ] || fail "could not measure $page"
    read -r scroll client <<<"$(echo "$width" | grep -o '[0-9][0-9]*' | tr '\n' ' ')"
    [ "$scroll" -le "$client" ] || fail "$page is wider than a 1280-px window: $width"
done
echo "ok: self-contained, renders without console messages in a 1280-px window without sticking out ($width)"
