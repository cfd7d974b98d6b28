#!/usr/bin/env python3
"""Makes the tiny random-weight models under tests/fixtures/models/, the ones the project owns so
that a fresh clone tests its forward pass without ../shared:

- tiny-llama3: Llama, GQA 4:2, explicit head_dim, untied lm_head, llama3 rope scaling (its
  original context of 32 puts the rope frequencies in all three bands), F32.
- tiny-llama: Llama as llama.cpp's GGUF converter takes it (plain rope, legacy config form),
  GQA 4:2, tied embeddings, F32.
- tiny-qwen2: Qwen2, q/k/v biases, GQA 4:2, tied embeddings, legacy config form, BF16.
- tiny-gemma3: Gemma-3 text, two sliding-window layers (window 8) and one global layer with
  per-layer-type rope (linear x8 on the global one), q/k norms, query_pre_attn_scalar 24 !=
  head_dim 32, gelu-tanh, scaled embeddings, tied, BF16.

Each holds config.json, model.safetensors and a tiny byte-level BPE tokenizer (tokenizer.json +
tokenizer_config.json: 256 byte tokens, merges learnt here from TEXT, <|pad|> <|bos|> <|eos|>),
and golden.safetensors + golden.json in the layout of ../shared/models (see its README):
seq{i}.input_ids (I32 [T]) and seq{i}.logits (F32 [T, vocab]) of one forward pass;
golden.json sequences[i] = {name, input_ids, argmax, text?} and greedy[j] = {prompt_ids,
output_ids, prompt_text, output_text} (the greedy continuation; qeval decodes it through its
KV cache, the reference by re-running the whole sequence).

The weights are drawn with numpy (seeded; O(1) scale so that logits are far from uniform and a
small mistake shows). The goldens come from outside qeval: forward() below, a numpy float64
transcription of transformers 5.17's eager Llama / Qwen2 / Gemma-3 text models as ../shared's
goldens ran them (loaded in the checkpoint's dtype, then widened to float64; transformers keeps
RMSNorm, the rope angles and the attention softmax in float32, and so does forward()), and
Hugging Face tokenizers for the texts. No
PyTorch ran here (it does not install on this machine, and the GPU machine that has it could not
be started); instead --check-shared runs forward() over ../shared's tiny-llama3, tiny-qwen2 and
tiny-gemma3, whose goldens PyTorch made: it agrees within 5e-6, 2.5e-5 and 3.4e-5 (qeval's
fp32 engine: 6.9e-6, 4.7e-5, 4.6e-5).

Usage, from the repository root (pip install numpy tokenizers; made with numpy 2.4.6,
tokenizers 0.23.3):
    python3 tests/golden/make_fixture_models.py                   # weights, tokenizer, goldens
    python3 tests/golden/make_fixture_models.py --weights         # weights and tokenizer only
    python3 tests/golden/make_fixture_models.py --golden [MODEL...]  # goldens from the stored files
    python3 tests/golden/make_fixture_models.py --check-shared ../shared  # forward() vs PyTorch"""
import json
import os
import re
import struct
import sys
from collections import Counter

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "models")

TEXT = ("Once upon a time there was a little cat. The cat sat on the mat and looked at the sun. "
        "The answer is the one that the question asks for: the sum of two and three is five. "
        "def add(a, b):\n    return a + b\n")
SEQ_TEXTS = ["The cat sat.", "Question: what is the sum of two and three?\nAnswer: five, the cat said."]
GREEDY_PROMPTS = ["Once upon a time"]
N_GREEDY_NEW = 24
N_RANDOM_IDS = 48  # seq with random ids, longer than gemma3's window

N_BYTES, N_MERGES = 256, 61
PAD, BOS, EOS = N_BYTES + N_MERGES, N_BYTES + N_MERGES + 1, N_BYTES + N_MERGES + 2
VOCAB = N_BYTES + N_MERGES + 3  # 320
SPLIT_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
            r"\s*[\r\n]+|\s+(?!\S)|\s+")


def bytes_to_unicode():
    """GPT-2's byte -> printable character map that byte-level BPE vocabularies are written in."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def learn_merges(text, n_merges):
    """Plain BPE training over TEXT's words (ties broken by the pair's characters): the merges
    only need to be valid and used, not good."""
    b2u = bytes_to_unicode()
    words = Counter(tuple(b2u[b] for b in w.encode()) for w in re.findall(r" ?[A-Za-z]+| ?[^A-Za-z\s]+|\s+", text))
    merges = []
    for _ in range(n_merges):
        pairs = Counter()
        for w, n in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += n
        best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        merges.append(best)
        merged = {}
        for w, n in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + n
        words = merged
    return merges


def tokenizer_files():
    b2u = bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    merges = learn_merges(TEXT, N_MERGES)
    for a, b in merges:
        vocab[a + b] = len(vocab)
    assert len(vocab) == PAD
    specials = [(PAD, "<|pad|>"), (BOS, "<|bos|>"), (EOS, "<|eos|>")]
    added = [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
              "special": True} for i, s in specials]
    tok = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": SPLIT_RE}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<|bos|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": "<|bos|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                    {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<|bos|>": {"id": "<|bos|>", "ids": [BOS], "tokens": ["<|bos|>"]}}},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": [[a, b] for a, b in merges]},
    }
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|bos|>", "eos_token": "<|eos|>",
              "pad_token": "<|pad|>", "add_bos_token": True, "add_eos_token": False, "model_max_length": 4096,
              "clean_up_tokenization_spaces": False}
    return tok, config


COMMON = {"vocab_size": VOCAB, "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
          "bos_token_id": BOS, "eos_token_id": EOS, "pad_token_id": PAD}
MODELS = {
    "tiny-llama3": ("F32", dict(COMMON, architectures=["LlamaForCausalLM"], model_type="llama", head_dim=16,
                                intermediate_size=96, num_hidden_layers=2, hidden_act="silu", attention_bias=False,
                                mlp_bias=False, max_position_embeddings=4096, rms_norm_eps=1e-5,
                                tie_word_embeddings=False, dtype="float32",
                                rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
                                                 "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                 "original_max_position_embeddings": 32})),
    "tiny-llama": ("F32", dict(COMMON, architectures=["LlamaForCausalLM"], model_type="llama",
                               intermediate_size=96, num_hidden_layers=2, hidden_act="silu",
                               max_position_embeddings=2048, rms_norm_eps=1e-5, tie_word_embeddings=True,
                               torch_dtype="float32", rope_theta=10000.0)),
    "tiny-qwen2": ("BF16", dict(COMMON, architectures=["Qwen2ForCausalLM"], model_type="qwen2",
                                intermediate_size=96, num_hidden_layers=2, hidden_act="silu",
                                max_position_embeddings=2048, rms_norm_eps=1e-6, tie_word_embeddings=True,
                                torch_dtype="bfloat16", rope_theta=1000000.0)),
    "tiny-gemma3": ("BF16", dict(COMMON, architectures=["Gemma3ForCausalLM"], model_type="gemma3_text",
                                 num_attention_heads=2, num_key_value_heads=1, head_dim=32, intermediate_size=128,
                                 num_hidden_layers=3, hidden_activation="gelu_pytorch_tanh",
                                 layer_types=["sliding_attention", "sliding_attention", "full_attention"],
                                 sliding_window=8, query_pre_attn_scalar=24, max_position_embeddings=4096,
                                 rms_norm_eps=1e-6, tie_word_embeddings=True, attention_bias=False,
                                 attn_logit_softcapping=None, final_logit_softcapping=None, dtype="bfloat16",
                                 rope_parameters={"full_attention": {"rope_type": "linear", "factor": 8.0,
                                                                     "rope_theta": 1000000.0},
                                                  "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}})),
}


def draw_weights(name, cfg, rng):
    """name -> float32 array; linear weights ~ N(0, 1/fan_in) so activations stay O(1); norm
    weights near their identity (1, or 0 for Gemma's 1 + w) but the final one."""
    h, nl = cfg["hidden_size"], cfg["num_hidden_layers"]
    hd = cfg.get("head_dim", h // cfg["num_attention_heads"])
    nq, nkv, ff = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd, cfg["intermediate_size"]
    gemma = cfg["model_type"] == "gemma3_text"
    norm0 = 0.0 if gemma else 1.0

    def lin(o, i):
        return rng.standard_normal((o, i)) / np.sqrt(i)

    def norm(n):
        return norm0 + 0.1 * rng.standard_normal(n)

    w = {"model.embed_tokens.weight": rng.standard_normal((VOCAB, h)) * (0.25 if gemma else 1.0)}
    for l in range(nl):
        p = f"model.layers.{l}."
        w[p + "input_layernorm.weight"] = norm(h)
        w[p + "post_attention_layernorm.weight"] = norm(h)
        w[p + "self_attn.q_proj.weight"] = lin(nq, h)
        w[p + "self_attn.k_proj.weight"] = lin(nkv, h)
        w[p + "self_attn.v_proj.weight"] = lin(nkv, h)
        w[p + "self_attn.o_proj.weight"] = lin(h, nq)
        if cfg["model_type"] == "qwen2":
            for proj, n in (("q", nq), ("k", nkv), ("v", nkv)):
                w[p + f"self_attn.{proj}_proj.bias"] = 0.5 * rng.standard_normal(n)
        if gemma:
            w[p + "pre_feedforward_layernorm.weight"] = norm(h)
            w[p + "post_feedforward_layernorm.weight"] = norm(h)
            w[p + "self_attn.q_norm.weight"] = norm(hd)
            w[p + "self_attn.k_norm.weight"] = norm(hd)
        w[p + "mlp.gate_proj.weight"] = lin(ff, h)
        w[p + "mlp.up_proj.weight"] = lin(ff, h)
        w[p + "mlp.down_proj.weight"] = lin(h, ff)
    # the final norm's scales of either sign: with tied embeddings a token's own row would
    # otherwise win the logits at its position, and greedy decoding would repeat it forever
    w["model.norm.weight"] = norm0 - 1.0 + rng.standard_normal(h)
    if not cfg["tie_word_embeddings"]:
        w["lm_head.weight"] = 2.0 * lin(VOCAB, h)
    return {k: v.astype(np.float32) for k, v in w.items()}


def to_bf16_bits(x):
    """float32 -> bfloat16 bits (uint16), round to nearest even."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def write_safetensors(path, tensors):
    """tensors: name -> (dtype name, numpy array already in that dtype's bytes)."""
    header, offset = {}, 0
    for name in sorted(tensors):
        dtype, arr = tensors[name]
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for name in sorted(tensors):
            f.write(np.ascontiguousarray(tensors[name][1]).tobytes())


def write_json(path, obj, indent=2):
    with open(path, "w") as f:
        json.dump(obj, f, indent=indent, ensure_ascii=False)
        f.write("\n")


def make_weights():
    tok, tok_config = tokenizer_files()
    for seed, (name, (dtype, cfg)) in enumerate(MODELS.items()):
        d = os.path.join(OUT, name)
        os.makedirs(d, exist_ok=True)
        weights = draw_weights(name, cfg, np.random.default_rng(20261205 + seed))
        stored = {k: ("F32", v) if dtype == "F32" else ("BF16", to_bf16_bits(v)) for k, v in weights.items()}
        write_safetensors(os.path.join(d, "model.safetensors"), stored)
        write_json(os.path.join(d, "config.json"), cfg)
        write_json(os.path.join(d, "tokenizer.json"), tok, indent=None)
        write_json(os.path.join(d, "tokenizer_config.json"), tok_config)


def read_safetensors(path):
    """name -> float64 array (F32/BF16 widened exactly) or int array (I32)."""
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        data = raw[8 + n + t["data_offsets"][0]:8 + n + t["data_offsets"][1]]
        if t["dtype"] == "BF16":
            a = (np.frombuffer(data, np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(data, {"F32": np.float32, "I32": np.int32}[t["dtype"]])
        out[name] = a.reshape(t["shape"]).astype(np.float64 if t["dtype"] != "I32" else np.int64)
    return out


def f32(x):
    return np.asarray(x, np.float32)


def bf16_round(x):
    return (to_bf16_bits(x).astype(np.uint32) << 16).view(np.float32)


def rope_inv_freq(rope, head_dim, stored_bf16):
    """transformers' inv_freq: computed in float32 (default, linear, llama3 rules), then cast with
    the weights to the checkpoint's dtype when loaded."""
    inv = f32(1.0) / (f32(rope["rope_theta"]) ** (np.arange(0, head_dim, 2).astype(np.float32) / f32(head_dim)))
    kind = rope.get("rope_type", "default")
    if kind == "linear":
        inv = inv / f32(rope["factor"])
    elif kind == "llama3":
        factor, low, high = f32(rope["factor"]), f32(rope["low_freq_factor"]), f32(rope["high_freq_factor"])
        old = f32(rope["original_max_position_embeddings"])
        wavelen = f32(2 * np.pi) / inv
        scaled = np.where(wavelen > old / low, inv / factor, inv)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (f32(1) - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < old / high) & ~(wavelen > old / low)
        inv = np.where(medium, smoothed, scaled).astype(np.float32)
    return bf16_round(inv) if stored_bf16 else inv


def rms_norm(x, w, eps, gemma):
    """transformers' RMSNorm: normalised in float32 (Gemma also scales by 1 + w there)."""
    h = f32(x)
    h = h / np.sqrt(np.mean(h * h, axis=-1, keepdims=True) + f32(eps))
    if gemma:
        return (h * (f32(1) + f32(w))).astype(np.float64)
    return w * h.astype(np.float64)


def rotate(x, cos, sin):
    half = x.shape[-1] // 2
    return x * cos + np.concatenate([-x[..., half:], x[..., :half]], axis=-1) * sin


def forward(cfg, w, ids):
    """Logits [T, vocab] of one pass over ids, as transformers' eager float64 model computes them
    (RMSNorm, rope angles and the attention softmax in float32, the rest in float64)."""
    gemma = cfg["model_type"] == "gemma3_text"
    stored_bf16 = cfg.get("torch_dtype", cfg.get("dtype")) == "bfloat16"
    h_dim, n_heads, n_kv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim", h_dim // n_heads)
    eps = cfg["rms_norm_eps"]
    T = len(ids)
    pos = np.arange(T, dtype=np.float32)
    if gemma:
        ropes = {t: cfg["rope_parameters"][t] for t in ("sliding_attention", "full_attention")}
        layer_types = cfg["layer_types"]
        scaling = cfg["query_pre_attn_scalar"] ** -0.5
    else:
        ropes = {"full_attention": cfg.get("rope_parameters", {"rope_type": "default", "rope_theta": cfg.get("rope_theta")})}
        layer_types = ["full_attention"] * cfg["num_hidden_layers"]
        scaling = hd ** -0.5
    cos_sin = {}
    for t, rope in ropes.items():
        angles = f32(pos[:, None] * rope_inv_freq(rope, hd, stored_bf16)[None, :])
        emb = np.concatenate([angles, angles], axis=-1)
        cos_sin[t] = np.cos(emb).astype(np.float64), np.sin(emb).astype(np.float64)
    x = w["model.embed_tokens.weight"][ids]
    if gemma:
        scale = np.float32(np.sqrt(h_dim))
        x = x * (bf16_round(scale) if stored_bf16 else scale).astype(np.float64)
    i, j = np.arange(T)[:, None], np.arange(T)[None, :]
    for l, kind in enumerate(layer_types):
        p = f"model.layers.{l}."
        allowed = j <= i
        if kind == "sliding_attention":
            allowed &= j > i - cfg["sliding_window"]
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps, gemma)
        qkv = []
        for proj, n in (("q", n_heads), ("k", n_kv), ("v", n_kv)):
            y = h @ w[p + f"self_attn.{proj}_proj.weight"].T
            if p + f"self_attn.{proj}_proj.bias" in w:
                y = y + w[p + f"self_attn.{proj}_proj.bias"]
            y = y.reshape(T, n, hd).transpose(1, 0, 2)
            if gemma and proj != "v":
                y = rms_norm(y, w[p + f"self_attn.{proj}_norm.weight"], eps, True)
            if proj != "v":
                y = rotate(y, *cos_sin[kind])
            qkv.append(y)
        q, k, v = qkv
        k, v = np.repeat(k, n_heads // n_kv, axis=0), np.repeat(v, n_heads // n_kv, axis=0)
        scores = f32(np.where(allowed, q @ k.transpose(0, 2, 1) * scaling, -np.inf))
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs = (probs / probs.sum(-1, keepdims=True)).astype(np.float64)
        attn = (probs @ v).transpose(1, 0, 2).reshape(T, n_heads * hd) @ w[p + "self_attn.o_proj.weight"].T
        if gemma:
            attn = rms_norm(attn, w[p + "post_attention_layernorm.weight"], eps, True)
            x = x + attn
            h = rms_norm(x, w[p + "pre_feedforward_layernorm.weight"], eps, True)
        else:
            x = x + attn
            h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps, False)
        gate = h @ w[p + "mlp.gate_proj.weight"].T
        if gemma:
            act = 0.5 * gate * (1 + np.tanh(np.sqrt(2 / np.pi) * (gate + 0.044715 * gate ** 3)))
        else:
            act = gate / (1 + np.exp(-gate))
        mlp = (act * (h @ w[p + "mlp.up_proj.weight"].T)) @ w[p + "mlp.down_proj.weight"].T
        if gemma:
            mlp = rms_norm(mlp, w[p + "post_feedforward_layernorm.weight"], eps, True)
        x = x + mlp
    x = rms_norm(x, w["model.norm.weight"], eps, gemma)
    return x @ w.get("lm_head.weight", w["model.embed_tokens.weight"]).T


def load(d):
    with open(os.path.join(d, "config.json")) as f:
        return json.load(f), read_safetensors(os.path.join(d, "model.safetensors"))


def check_shared(shared):
    """The reference against PyTorch's goldens of ../shared's random-weight models (the same
    architectures): prints the largest logit difference per model."""
    for name in ("tiny-llama3", "tiny-qwen2", "tiny-gemma3"):
        d = os.path.join(shared, "models", name)
        cfg, w = load(d)
        golden = read_safetensors(os.path.join(d, "golden.safetensors"))
        worst, i = 0.0, 0
        while f"seq{i}.input_ids" in golden:
            got = forward(cfg, w, golden[f"seq{i}.input_ids"])
            worst = max(worst, float(np.abs(got - golden[f"seq{i}.logits"]).max()))
            i += 1
        print(f"{name}: max |numpy - PyTorch| over {i} sequences {worst:.2e}")


def make_golden(name):
    from tokenizers import Tokenizer

    d = os.path.join(OUT, name)
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    cfg, w = load(d)
    rng = np.random.default_rng(7)
    seqs = [{"name": "seq0", "input_ids": [BOS]}]
    for text in SEQ_TEXTS:
        seqs.append({"name": f"seq{len(seqs)}", "text": text, "input_ids": tok.encode(text).ids})
    seqs.append({"name": f"seq{len(seqs)}", "input_ids": rng.integers(0, VOCAB, N_RANDOM_IDS).tolist()})
    tensors = {}
    for s in seqs:
        logits = forward(cfg, w, np.array(s["input_ids"]))
        s["argmax"] = logits.argmax(-1).tolist()
        tensors[s["name"] + ".input_ids"] = ("I32", np.array(s["input_ids"], dtype=np.int32))
        tensors[s["name"] + ".logits"] = ("F32", logits.astype(np.float32))
    greedy = []
    for text in GREEDY_PROMPTS:
        prompt = tok.encode(text).ids
        ids = list(prompt)
        for _ in range(N_GREEDY_NEW):
            ids.append(int(forward(cfg, w, np.array(ids))[-1].argmax()))
        greedy.append({"prompt_text": text, "prompt_ids": prompt, "output_ids": ids,
                       "output_text": tok.decode(ids[len(prompt):], skip_special_tokens=False)})
    write_safetensors(os.path.join(d, "golden.safetensors"), tensors)
    write_json(os.path.join(d, "golden.json"), {"sequences": seqs, "greedy": greedy}, indent=None)
    print(name, [len(s["input_ids"]) for s in seqs], "greedy", [len(g["output_ids"]) for g in greedy])


if __name__ == "__main__":
    flags = [a for a in sys.argv[1:] if a.startswith("--")]
    names = [a for a in sys.argv[1:] if not a.startswith("--")] or list(MODELS)
    if "--check-shared" in flags:
        check_shared(names[0])
        sys.exit(0)
    if "--golden" not in flags:
        make_weights()
    if "--weights" not in flags:
        for model_name in names:
            make_golden(model_name)
