# check_includes.sh [ROOT] — the layering rules, read from the #include lines of the C sources
# under ROOT (default $QEVAL_SOURCE_DIR, else the directory above this script):
#   1. outside engine/, the only engine headers included are qeval_engine.h and qe_error.h
#      (engine/include/, the engine library's one public include directory);
#   2. no two modules include each other, directly or through others (a module is a top-level
#      directory: engine, tasks, datasets, reports, harness; and harness/store, the results file,
#      which sits below reports while the rest of harness sits above it).
# tests/ is exempt from both: the tests of engine internals include internal headers on purpose
# (CMake gives them the engine's private include directory). An include is resolved as the
# compiler would find it: beside the including file, else in its own module, else anywhere.
# Prints one line per violation naming file:line and exits 1; exits 0 when the tree is clean.
root="${1:-${QEVAL_SOURCE_DIR:-$(dirname "$0")/..}}"
cd "$root" || exit 2

# Only the module directories: build trees, tests/ and copies of the tree (.device, .gpu) are not
# sources, and a header in one of them must not stand in for the real one.
sources=$(find engine tasks datasets reports harness -type f \
               \( -name '*.c' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' \) -print 2>/dev/null | sort)
[ -n "$sources" ] || { echo "check_includes: no C sources under $root" >&2; exit 2; }

# "file<TAB>line<TAB>included" for every #include "..." or <...>
includes=$(for f in $sources; do
  grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*["<][^">]+[">]' "$f" |
    sed -E "s|^([0-9]+):[[:space:]]*#[[:space:]]*include[[:space:]]*[\"<]([^\">]+)[\">].*|$f\t\1\t\2|"
done)

printf '%s\n' "$includes" | awk -F'\t' -v sources="$sources" '
function module(path) {
  if (substr(path, 1, 14) == "harness/store/") return "harness/store"
  return substr(path, 1, index(path, "/") - 1)
}
function dir(path) { sub(/\/[^\/]*$/, "", path); return path }
# The project file that "#include inc" in file means, or "" for a system header.
function resolve(file, inc,    d, m, best, p) {
  d = dir(file); m = module(file)
  if ((d "/" inc) in is_source) return d "/" inc
  best = ""
  for (p in is_source)
    if (p == inc || substr(p, length(p) - length(inc)) == "/" inc) {
      if (module(p) == m) return p
      if (best == "") best = p
    }
  return best
}
BEGIN { n = split(sources, list, "\n"); for (i = 1; i <= n; i++) is_source[list[i]] = 1 }
NF == 3 {
  file = $1; line = $2; target = resolve(file, $3)
  if (target == "") next
  from = module(file); to = module(target)
  if (from != "engine" && to == "engine" && target !~ /\/(qeval_engine|qe_error)\.h$/) {
    printf "%s:%s: includes %s, an engine-internal header (outside engine/ only qeval_engine.h and qe_error.h)\n", file, line, target
    bad = 1
  }
  if (from != to && !((from, to) in edge)) { edge[from, to] = file ":" line; modules[from]; modules[to] }
}
END {
  for (a in modules) for (b in modules) reach[a, b] = ((a, b) in edge)
  for (k in modules) for (a in modules) for (b in modules)
    if (!reach[a, b] && reach[a, k] && reach[k, b]) { reach[a, b] = 1; via[a, b] = k }
  for (a in modules) for (b in modules)
    if (a < b && reach[a, b] && reach[b, a]) {
      printf "modules %s and %s include each other: %s -> %s at %s; %s -> %s at %s\n", a, b,
             a, first_hop(a, b), edge[a, first_hop(a, b)], b, first_hop(b, a), edge[b, first_hop(b, a)]
      bad = 1
    }
  exit bad
}
# The module after a on a path of includes from a to b.
function first_hop(a, b) { while ((a, b) in via) b = via[a, b]; return b }
'
