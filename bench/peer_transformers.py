#!/usr/bin/env python3
"""The peer for `qeval bench`: the same prefill + greedy decode measured with PyTorch +
transformers (+ bitsandbytes for int8 / nf4, loaded as bench/hf_variants.py spells them), on the
CPU or a GPU, on the same model and the same synthetic prompt.

  peer_transformers.py make DIR            write a random-weight Llama of SmolLM2-135M's shape
  peer_transformers.py time DIR [options]  print {"variant", "prefill_tok_s", "decode_tok_s"} lines

The prompt is qeval bench's: token i = (7919 i + 3) mod n_vocab. Both sides warm up first and
time one prefill of --batch sequences of --prompt-tokens tokens (all logits, as scoring needs
them) and --gen-tokens - 1 KV-cached decode steps of one sequence (the first new token comes
from the prefill). On a GPU the timer waits for the device (torch.cuda.synchronize)."""
import argparse
import json
import time

import os
import sys

import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hf_variants import variant_kwargs  # noqa: E402


def make(out_dir):
    # SmolLM2-135M's shape (config.json of HuggingFaceTB/SmolLM2-135M-Instruct)
    cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                      num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                      rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=True,
                      bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(out_dir, safe_serialization=True)


def wait(device):
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


@torch.inference_mode()
def measure(model, n_vocab, n_prompt, n_gen, batch, device):
    ids = torch.tensor([[(7919 * i + 3) % n_vocab for i in range(n_prompt)]], device=device)
    # warm-up: the same shapes once (the first batched call pays cuBLAS's and the caching
    # allocator's set-up), and a decode step
    out = model(ids.expand(batch, -1), use_cache=True)
    model(out.logits[:1, -1].argmax(-1, keepdim=True), past_key_values=model(ids, use_cache=True).past_key_values)
    del out
    t0 = wait(device)
    model(ids.expand(batch, -1), use_cache=True)
    t1 = wait(device)
    out = model(ids, use_cache=True)
    past, token = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
    t2 = wait(device)
    for _ in range(n_gen - 1):
        out = model(token, past_key_values=past, use_cache=True)
        past, token = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
    t3 = wait(device)
    return batch * n_prompt / (t1 - t0), (n_gen - 1) / (t3 - t2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["make", "time"])
    ap.add_argument("dir")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--batch", type=int, default=1, help="sequences in the timed prefill")
    ap.add_argument("--gen-tokens", type=int, default=32)
    ap.add_argument("--variants", default="fp32,bf16", help="fp32, bf16, int8, nf4 (int8 / nf4 need a GPU)")
    a = ap.parse_args()
    if a.cmd == "make":
        return make(a.dir)
    torch.set_num_threads(a.threads)
    peer = "transformers " + __import__("transformers").__version__ + " torch " + torch.__version__
    for variant in a.variants.split(","):
        kwargs = variant_kwargs(variant)
        if a.device == "cuda":
            kwargs["device_map"] = "cuda"
        model = AutoModelForCausalLM.from_pretrained(a.dir, **kwargs).eval()
        prefill, decode = measure(model, model.config.vocab_size, a.prompt_tokens, a.gen_tokens, a.batch, a.device)
        print(json.dumps({"peer": peer, "variant": variant, "device": a.device, "threads": a.threads,
                          "batch": a.batch, "prompt_tokens": a.prompt_tokens, "prefill_tok_s": round(prefill, 1),
                          "decode_tok_s": round(decode, 1)}), flush=True)
        del model
        if a.device == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
