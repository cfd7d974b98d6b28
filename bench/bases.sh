# bench/bases.sh — sourced by the GPU bench scripts (gpu_session.sh, gpu_ab.sh, prebuild.sh):
# start_bases SRC LOG_DIR starts, in the background, a build of qeval for each commit of $BASE
# beside the tree SRC (git archive; where the tree has no history, as the device tool's copy has
# none, a copy of this tree with the patch bench/base_patches.sh wrote for the commit) and sets
# the array `bases` to "COMMIT QEVAL" for each; the caller `wait`s before running them.
# CUDA_ARCH: the build's architectures (default native). Exits the caller when a commit can be
# neither archived nor patched. gpu_tests: the GPU tests a job runs on the tree.

gpu_tests="test_cuda_backend test_cuda_models test_backends test_linear_emu test_attention_emu"

start_bases() {
    local src=$1 logs=$2 commit base_src patch
    bases=()
    for commit in ${BASE:-}; do
        base_src=$(mktemp -d)
        if git -C "$src" rev-parse -q --verify "$commit^{commit}" >/dev/null 2>&1; then
            git -C "$src" archive "$commit" | tar -x -C "$base_src" || exit 1
        else
            patch=$src/.device/base/$commit.patch
            [ -f "$patch" ] || { echo "BASE $commit: neither a commit here nor $patch"; exit 1; }
            (cd "$src" && tar --exclude=./.device --exclude=./.git --exclude='./build*' -cf - .) | tar -x -C "$base_src" &&
                (cd "$base_src" && git apply --binary "$patch") || { echo "BASE $commit: $patch does not apply"; exit 1; }
        fi
        bases+=("$commit $base_src/b/qeval")
        (export QEVAL_GIT_COMMIT=$commit
        cmake -S "$base_src" -B "$base_src/b" -DQEVAL_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-native}" \
            -DCMAKE_BUILD_TYPE=Release >/dev/null 2>&1 && cmake --build "$base_src/b" -j8 --target qeval \
            >"$logs/base_build_$commit.log" 2>&1
        echo "BASE $commit built: exit $?") &
    done
}
