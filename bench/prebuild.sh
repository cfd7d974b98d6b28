#!/usr/bin/env bash
# bench/prebuild.sh [COMMIT...] — what `PREBUILT=DIR bash bench/gpu_ab.sh` runs, built on this
# machine for CUDA_ARCH (default 90), so that a device call spends none of its minutes building:
# the tree's qeval and GPU tests (DIR/tree) and each base commit's qeval (DIR/base-COMMIT; the
# commit recorded through QEVAL_GIT_COMMIT), stripped, packed into build-pack/bc.tar.xz (an
# ignored path: carry it, then `tar -xJf build-pack/bc.tar.xz -C DIR` on the device). Builds
# stay in PREBUILD_DIR (default /tmp/qeval-prebuild): a second run rebuilds what changed.
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
work=${PREBUILD_DIR:-/tmp/qeval-prebuild}
. "$src/bench/bases.sh" # gpu_tests
build() { # SOURCE BUILD_DIR COMMIT TARGET...: COMMIT "" for the tree's own (git records it)
    local source=$1 dir=$2 commit=$3
    shift 3
    export QEVAL_GIT_COMMIT=$commit
    cmake -S "$source" -B "$dir" -DQEVAL_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90}" \
        -DCMAKE_BUILD_TYPE=Release >"$dir.log" 2>&1 &&
        cmake --build "$dir" -j"$(nproc)" --target "$@" >>"$dir.log" 2>&1 ||
        { echo "build of ${commit:-the tree} failed:"; tail -20 "$dir.log"; exit 1; }
    unset QEVAL_GIT_COMMIT
}
rm -rf "$work/pack"
mkdir -p "$work/pack/tree" "$src/build-pack"
for commit in "$@"; do
    base=$work/base-$commit
    [ -d "$base/src" ] || { mkdir -p "$base/src" && git -C "$src" archive "$commit" | tar -x -C "$base/src"; }
    # commits before f90106d record no QEVAL_GIT_COMMIT: the tree's script does (no measured code)
    cp "$src/harness/store/git_commit.cmake" "$base/src/harness/store/git_commit.cmake"
    build "$base/src" "$base/build" "$commit" qeval
    mkdir -p "$work/pack/base-$commit" && cp "$base/build/qeval" "$work/pack/base-$commit/"
done
build "$src" "$work/tree" "" qeval $gpu_tests
for t in qeval $gpu_tests; do cp "$work/tree/$t" "$work/pack/tree/"; done
strip "$work"/pack/*/*
tar -C "$work/pack" -cf - . | xz -T0 -6 >"$src/build-pack/bc.tar.xz"
echo "build-pack/bc.tar.xz: $(du -h "$src/build-pack/bc.tar.xz" | cut -f1) (tree and ${*:-no bases})"
