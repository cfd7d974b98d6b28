#!/usr/bin/env bash
# bench/base_patches.sh COMMIT... — for a GPU job that builds other commits beside this tree
# (bench/gpu_session.sh BASE=...) on a machine whose copy of the tree has no git history (the
# device tool's): writes .device/base/COMMIT.patch, the change from this working tree (with its
# uncommitted edits) to COMMIT, which gpu_session.sh applies to a copy of the tree there. Files
# git does not track are not in the patch: the copy keeps them.
set -eu
cd "$(dirname "$0")/.."
mkdir -p .device/base
for commit in "$@"; do
    git rev-parse -q --verify "$commit^{commit}" >/dev/null || { echo "$commit: not a commit here" >&2; exit 1; }
    git diff -R --binary "$commit" >".device/base/$commit.patch"
    echo ".device/base/$commit.patch: $(wc -c <".device/base/$commit.patch") bytes"
done
