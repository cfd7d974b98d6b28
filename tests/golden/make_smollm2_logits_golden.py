#!/usr/bin/env python3
"""Reference logits of SmolLM2-135M-Instruct Q4_1 (the `qeval model fetch smollm2-135m` GGUF)
for tests/test_gguf_model.c: writes tests/golden/gguf/smollm2_logits.json.

An independent float64 numpy forward pass the way llama.cpp runs a GGUF llama: gguf-py
dequantizes the tensors as stored (q/k rows still in llama.cpp's permuted order) and rope
rotates adjacent pairs (2i, 2i+1) (llama.cpp's "norm" rope), so qeval's un-permutation to
transformers' rotate_half layout is checked from outside. Per position it keeps the argmax
and the logits of a fixed set of token ids.
Usage: python3 tests/golden/make_smollm2_logits_golden.py PATH/TO/SmolLM2.gguf (pip install gguf numpy)"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gguf_golden import read_gguf, write_logits_golden  # noqa: E402

# "<|im_start|>system ... <|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
# with SmolLM2's default system prompt, as its chat template renders it.
IDS = [1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411, 407, 19712, 8182,
       2, 198, 1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520, 9531, 198]
PROBE_IDS = [0, 1, 2, 29, 198, 260, 314, 504, 7042, 12345, 30000, 49151]


def forward(path, ids):
    scalar, w = read_gguf(path)
    hidden, n_layers = int(scalar("llama.embedding_length")), int(scalar("llama.block_count"))
    n_heads, n_kv = int(scalar("llama.attention.head_count")), int(scalar("llama.attention.head_count_kv"))
    base, eps = float(scalar("llama.rope.freq_base")), float(scalar("llama.attention.layer_norm_rms_epsilon"))
    hd = hidden // n_heads

    def rms(x, weight):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * weight

    n = len(ids)
    angles = np.arange(n)[:, None] * base ** (-np.arange(0, hd, 2) / hd)
    cos, sin = np.cos(angles)[:, None, :], np.sin(angles)[:, None, :]

    def rope_adjacent_pairs(x):
        y = np.empty_like(x)
        y[..., 0::2] = x[..., 0::2] * cos - x[..., 1::2] * sin
        y[..., 1::2] = x[..., 0::2] * sin + x[..., 1::2] * cos
        return y

    x = w["token_embd.weight"][ids]
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for layer in range(n_layers):
        p = f"blk.{layer}."
        h = rms(x, w[p + "attn_norm.weight"])
        q = rope_adjacent_pairs((h @ w[p + "attn_q.weight"].T).reshape(n, n_heads, hd))
        k = rope_adjacent_pairs((h @ w[p + "attn_k.weight"].T).reshape(n, n_kv, hd))
        v = (h @ w[p + "attn_v.weight"].T).reshape(n, n_kv, hd)
        k, v = np.repeat(k, n_heads // n_kv, axis=1), np.repeat(v, n_heads // n_kv, axis=1)
        s = np.einsum("thd,shd->hts", q, k) / np.sqrt(hd) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        x = x + np.einsum("hts,shd->thd", s, v).reshape(n, hidden) @ w[p + "attn_output.weight"].T
        h = rms(x, w[p + "ffn_norm.weight"])
        gate, up = h @ w[p + "ffn_gate.weight"].T, h @ w[p + "ffn_up.weight"].T
        x = x + (gate / (1 + np.exp(-gate)) * up) @ w[p + "ffn_down.weight"].T
    x = rms(x, w["output_norm.weight"])
    return x @ w.get("output.weight", w["token_embd.weight"]).T


def main():
    write_logits_golden(forward(sys.argv[1], IDS), IDS, PROBE_IDS, "smollm2_logits.json")


if __name__ == "__main__":
    main()
