#!/usr/bin/env bash
# The whole test suite: configure, build, run every ctest. The README's test command. Ends with
# the tests skipped for missing third-party test data ($QEVAL_SHARED, else ../shared) and the
# files they asked for, from the tests' own "skipped: needs FILE" lines.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
status=0
ctest --test-dir build --output-on-failure -j"$(nproc)" || status=$?
awk '/^[0-9]+\/[0-9]+ Testing: / { name = $3 }
     /^skipped: needs / {
         if (!seen[name]++) tests = tests " " name
         if (match($3, /(models|datasets|tokenizers)(\/[^\/,]+)?/)) {
             root = substr($3, 1, RSTART - 2); what = substr($3, RSTART, RLENGTH)
             if (!listed[what]++) missing = missing " " what
         }
     }
     END { if (tests == "") exit
           print "\nSkipped for missing test data:" tests
           print "Missing under " root ":" missing
           print "Point QEVAL_SHARED at the test data to run them (README, \"Tests and their data\")." }' \
    build/Testing/Temporary/LastTest.log
exit "$status"
