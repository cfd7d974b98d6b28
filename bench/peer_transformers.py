#!/usr/bin/env python3
"""The peer for `qeval bench`: the same prefill + greedy decode measured with PyTorch +
transformers on the CPU, on the same model and the same synthetic prompt.

  peer_transformers.py make DIR            write a random-weight Llama of SmolLM2-135M's shape
  peer_transformers.py time DIR [options]  print {"dtype", "prefill_tok_s", "decode_tok_s"} lines

The prompt is qeval bench's: token i = (7919 i + 3) mod n_vocab. Both sides warm up first and
time one prefill of --prompt-tokens tokens and --gen-tokens - 1 KV-cached decode steps (the
first new token comes from the prefill)."""
import argparse
import json
import time

import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM


def make(out_dir):
    # SmolLM2-135M's shape (config.json of HuggingFaceTB/SmolLM2-135M-Instruct)
    cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                      num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                      rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=True,
                      bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(out_dir, safe_serialization=True)


@torch.inference_mode()
def measure(model, n_vocab, n_prompt, n_gen):
    ids = torch.tensor([[(7919 * i + 3) % n_vocab for i in range(n_prompt)]])
    model(ids[:, :2], use_cache=True)  # warm-up
    t0 = time.perf_counter()
    out = model(ids, use_cache=True)
    t1 = time.perf_counter()
    past, token = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
    for _ in range(n_gen - 1):
        out = model(token, past_key_values=past, use_cache=True)
        past, token = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
    t2 = time.perf_counter()
    return n_prompt / (t1 - t0), (n_gen - 1) / (t2 - t1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["make", "time"])
    ap.add_argument("dir")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--gen-tokens", type=int, default=32)
    ap.add_argument("--dtypes", default="float32,bfloat16")
    a = ap.parse_args()
    if a.cmd == "make":
        return make(a.dir)
    torch.set_num_threads(a.threads)
    for name in a.dtypes.split(","):
        model = AutoModelForCausalLM.from_pretrained(a.dir, dtype=getattr(torch, name)).eval()
        prefill, decode = measure(model, model.config.vocab_size, a.prompt_tokens, a.gen_tokens)
        print(json.dumps({"peer": "transformers " + __import__("transformers").__version__ + " torch " + torch.__version__,
                          "dtype": name, "threads": a.threads, "prefill_tok_s": round(prefill, 1),
                          "decode_tok_s": round(decode, 1)}), flush=True)


if __name__ == "__main__":
    main()
