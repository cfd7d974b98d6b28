#!/usr/bin/env bash
# --device: hostile values are usage errors (exit 2) naming the value; a GPU that is not there
# (cuda:7; any cuda on a machine or build without one) is one clear error, exit 1, in every
# command that loads a model.
source "$(dirname "$0")/check.sh"
model="$fixtures/models/tiny-llama3"  # the project's own: runs on a clone with nothing beside it
golden="$model/golden.safetensors"
for value in tpu cuda: cuda:x cuda:-1 cuda:1x "cuda:99999" CPU ""; do
    out=$("$qeval" verify "$model" --golden "$golden" --device "$value" 2>&1)
    check 2 $? "verify --device '$value' exit"
    grep -q "^qeval verify: --device must be cpu, cuda or cuda:N, not '$value'$" <<<"$out" || bad "verify --device '$value': $out"
done
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
if [ "${gpus:-0}" -lt 8 ]; then
    for cmd in "verify $model --golden $golden" "generate $model --prompt Once --max-new-tokens 2" \
               "bench $model --variants fp32 --prompt-tokens 4 --gen-tokens 2"; do
        out=$("$qeval" $cmd --device cuda:7 2>&1 >/dev/null)  # the error line, on stderr
        check 1 $? "${cmd%% *} --device cuda:7 exit"
        [ "$(wc -l <<<"$out")" = 1 ] && grep -Eq "cuda:7|device 7" <<<"$out" && grep -Eiq "no CUDA GPU|without CUDA|has [0-9]+ GPU" <<<"$out" ||
            bad "${cmd%% *} --device cuda:7: $out"
    done
fi
out=$("$qeval" verify "$model" --golden "$golden" --device cpu 2>&1)
check 0 $? "verify --device cpu exit"
finish
