#!/usr/bin/env python3
"""Reference logits of Gemma-3-270M Q4_K_M (the `qeval model fetch gemma3-270m` GGUF) for
tests/test_gguf_model.c: writes tests/golden/gguf/gemma3_logits.json.

An independent float64 numpy forward pass the way llama.cpp's llm_build_gemma3 runs a gemma3
GGUF: gguf-py dequantizes the tensors as stored (norm weights already holding gemma's 1 + w),
embeddings times sqrt(hidden), RMSNorm'd q and k, NEOX rope (rotate_half) with base 10000 on
sliding layers and gemma3.rope.freq_base on every 6th (global) layer, scores times head_dim^-0.5,
sandwich norms, gelu-tanh MLP, tied output. The sequence is the Gemma chat prompt for "What is
the capital of France?" (ids as google/gemma-3's tokenizer gives them, BOS first).
Usage: python3 tests/golden/make_gemma3_logits_golden.py PATH/TO/gemma-3-270m-q4_k_m.gguf (pip install gguf numpy)"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gguf_golden import read_gguf, write_logits_golden  # noqa: E402

# <bos><start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n
IDS = [2, 105, 2364, 107, 3689, 563, 506, 5279, 529, 7001, 236881, 106, 107, 105, 4368, 107]
PROBE_IDS = [0, 1, 2, 106, 107, 236743, 818, 5279, 7001, 9079, 100000, 262143]


def forward(path, ids):
    scalar, w = read_gguf(path)
    hidden, n_layers = int(scalar("gemma3.embedding_length")), int(scalar("gemma3.block_count"))
    n_heads, n_kv = int(scalar("gemma3.attention.head_count")), int(scalar("gemma3.attention.head_count_kv"))
    hd, window = int(scalar("gemma3.attention.key_length")), int(scalar("gemma3.attention.sliding_window"))
    base, eps = float(scalar("gemma3.rope.freq_base")), float(scalar("gemma3.attention.layer_norm_rms_epsilon"))

    def rms(x, weight):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * weight

    n = len(ids)
    pos = np.arange(n)

    def rope_neox(x, theta):
        angles = pos[:, None] * theta ** (-np.arange(0, hd, 2) / hd)
        cos, sin = np.cos(angles)[:, None, :], np.sin(angles)[:, None, :]
        a, b = x[..., : hd // 2], x[..., hd // 2:]
        return np.concatenate([a * cos - b * sin, a * sin + b * cos], -1)

    def gelu_tanh(v):
        return 0.5 * v * (1 + np.tanh(np.sqrt(2 / np.pi) * (v + 0.044715 * v ** 3)))

    x = w["token_embd.weight"][ids] * np.sqrt(hidden)
    for layer in range(n_layers):
        p = f"blk.{layer}."
        is_global = (layer + 1) % 6 == 0
        h = rms(x, w[p + "attn_norm.weight"])
        q = rms((h @ w[p + "attn_q.weight"].T).reshape(n, n_heads, hd), w[p + "attn_q_norm.weight"])
        k = rms((h @ w[p + "attn_k.weight"].T).reshape(n, n_kv, hd), w[p + "attn_k_norm.weight"])
        v = (h @ w[p + "attn_v.weight"].T).reshape(n, n_kv, hd)
        q, k = rope_neox(q, base if is_global else 10000.0), rope_neox(k, base if is_global else 10000.0)
        k, v = np.repeat(k, n_heads // n_kv, axis=1), np.repeat(v, n_heads // n_kv, axis=1)
        allowed = (pos[None, :] <= pos[:, None]) & (is_global | (pos[:, None] - pos[None, :] < window))
        s = np.einsum("thd,shd->hts", q, k) / np.sqrt(hd) + np.where(allowed, 0, -np.inf)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        att = np.einsum("hts,shd->thd", s, v).reshape(n, n_heads * hd) @ w[p + "attn_output.weight"].T
        x = x + rms(att, w[p + "post_attention_norm.weight"])
        h = rms(x, w[p + "ffn_norm.weight"])
        ffn = (gelu_tanh(h @ w[p + "ffn_gate.weight"].T) * (h @ w[p + "ffn_up.weight"].T)) @ w[p + "ffn_down.weight"].T
        x = x + rms(ffn, w[p + "post_ffw_norm.weight"])
    x = rms(x, w["output_norm.weight"])
    return x @ w.get("output.weight", w["token_embd.weight"]).T


def main():
    write_logits_golden(forward(sys.argv[1], IDS), IDS, PROBE_IDS, "gemma3_logits.json")


if __name__ == "__main__":
    main()
