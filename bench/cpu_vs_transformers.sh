#!/usr/bin/env bash
# qeval bench against PyTorch + transformers on the CPU, same machine, same model (random
# weights of SmolLM2-135M's shape), same prompt, same thread counts.
#   bench/cpu_vs_transformers.sh QEVAL_BIN [THREADS...]   (default threads: 1 and all cores)
set -euo pipefail
qeval=${1:?usage: $0 QEVAL_BIN [THREADS...]}
shift
threads=("$@")
[ ${#threads[@]} -gt 0 ] || threads=(1 "$(nproc)")
here=$(cd "$(dirname "$0")" && pwd)
model=$(mktemp -d)
trap 'rm -rf "$model"' EXIT
python3 "$here/peer_transformers.py" make "$model"
for t in "${threads[@]}"; do
  echo "== threads $t"
  "$qeval" bench "$model" --variants fp32,bf16,int8,nf4 --prompt-tokens 128 --gen-tokens 64 --threads "$t"
  python3 "$here/peer_transformers.py" time "$model" --threads "$t" --prompt-tokens 128 --gen-tokens 64
done
