#!/usr/bin/env python3
"""Makes qeval's bitsandbytes golden data (tests/golden/bnb/) on a CUDA machine.

Needs torch, transformers and bitsandbytes (0.50.2 was used) and the model folders
stories260K, tiny-llama3, tiny-qwen2 (config.json + model.safetensors; stories260K also
golden.json) under --models. Writes into --out:
  nf4.safetensors       quantize_4bit / dequantize_4bit of model and synthetic tensors
  int8.safetensors      int8_vectorwise_quant of the same tensors, an outlier matmul, fp16/bf16 casts
  hf_states.safetensors the quantized layer-0 q_proj of models loaded through transformers
  hf_logits.safetensors stories260K logits of each transformers variant on its golden sequences
  footprint.json        get_memory_footprint() of each model x variant (with and without buffers)
  log.txt               everything printed

Synthetic tensors come from synth(): integers from splitmix64 divided by a power of two, so a
C test can rebuild the exact same float32 values instead of storing millions of them.
"""
import argparse
import json
import os
import sys
import traceback
import zlib

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
from hf_variants import variant_kwargs  # noqa: E402

LOG = []


def log(*a):
    s = " ".join(str(x) for x in a)
    LOG.append(s)
    print(s, flush=True)


M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def synth(n, seed, outlier_every=997):
    """float32 [n]: x_i = (sum of the four 16-bit parts of splitmix64(seed<<32 | i) - 131070) / 2^21,
    times 64 where i % outlier_every == 0. Every value is exact in float32."""
    i = np.arange(n, dtype=np.uint64)
    z = (np.uint64(seed) << np.uint64(32)) | i
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    s = np.zeros(n, dtype=np.int64)
    for k in range(4):
        s += ((z >> np.uint64(16 * k)) & np.uint64(0xFFFF)).astype(np.int64)
    s -= 131070
    x = s.astype(np.float64) / float(1 << 21)
    if outlier_every:
        x[::outlier_every] *= 64.0
    return torch.from_numpy(x.astype(np.float32))


def crc(t):
    t = t.detach().cpu().contiguous()
    return zlib.crc32(t.reshape(-1).view(torch.uint8).numpy().tobytes())


def load_st(path):
    from safetensors.torch import load_file
    return load_file(path)


def nf4_cases(models_dir):
    """(name, tensor on cpu, store_everything)"""
    cases = []
    st = load_st(os.path.join(models_dir, "stories260K", "model.safetensors"))
    cases.append(("stories_q", st["model.layers.0.self_attn.q_proj.weight"], True))
    cases.append(("stories_gate", st["model.layers.0.mlp.gate_proj.weight"], True))
    st = load_st(os.path.join(models_dir, "tiny-llama3", "model.safetensors"))
    cases.append(("llama3_q", st["model.layers.0.self_attn.q_proj.weight"], True))
    st = load_st(os.path.join(models_dir, "tiny-qwen2", "model.safetensors"))
    cases.append(("qwen2_k_bf16", st["model.layers.0.self_attn.k_proj.weight"], True))
    cases.append(("r_single", synth(64, 1), True))
    cases.append(("r_odd", synth(1001, 2), True))
    z = synth(192, 3)
    z[64:128] = 0.0
    cases.append(("r_zeroblock", z, True))
    cases.append(("r_bf16", synth(4096, 4).to(torch.bfloat16), True))
    cases.append(("r_big", synth(2500001, 5), False))
    return cases


def make_nf4(models_dir, out):
    import bitsandbytes.functional as F
    from safetensors.torch import save_file
    res, meta = {}, {}
    for name, t, full in nf4_cases(models_dir):
        variants = [("dq64", 64, True), ("nodq64", 64, False)]
        if name in ("r_odd", "stories_q"):
            variants += [("dq128", 128, True), ("nodq256", 256, False), ("dq32", 32, True)]
        if full:
            res[f"{name}.input"] = t.contiguous()
        for tag, bs, dq in variants:
            p = f"{name}.{tag}"
            a = t.cuda()
            packed, qs = F.quantize_4bit(a, blocksize=bs, compress_statistics=dq, quant_type="nf4")
            deq = F.dequantize_4bit(packed, qs)
            items = {"packed": packed.reshape(-1), "deq": deq.reshape(-1), "code": qs.code}
            if dq:
                absmax_f = F.dequantize_blockwise(qs.absmax, qs.state2) + qs.offset
                items.update({"qabsmax": qs.absmax, "absmax2": qs.state2.absmax,
                              "code2": qs.state2.code, "offset": qs.offset.reshape(1).float(),
                              "absmax_deq": absmax_f.float()})
            else:
                items["absmax"] = qs.absmax
            for k, v in items.items():
                v = v.detach().cpu().contiguous()
                meta[f"{p}.{k}.crc32"] = str(crc(v))
                meta[f"{p}.{k}.numel"] = str(v.numel())
                if full or k not in ("packed", "deq"):
                    res[f"{p}.{k}"] = v
            log("nf4", p, "n", t.numel(), "dtype", t.dtype, "packed", packed.numel(),
                "absmax", qs.absmax.numel(), "state dtype", qs.dtype,
                "offset", float(qs.offset) if dq else None)
    save_file(res, os.path.join(out, "nf4.safetensors"), metadata=meta)


def make_int8(models_dir, out):
    import bitsandbytes as bnb
    import bitsandbytes.functional as F
    from safetensors.torch import save_file
    res, meta = {}, {}
    cases = [(n, t) for n, t, full in nf4_cases(models_dir) if full]
    zr = synth(8 * 100, 6).reshape(8, 100)
    zr[3] = 0.0
    cases.append(("r_zerorow", zr))
    cases.append(("r_wide", synth(4 * 3000, 7).reshape(4, 3000)))
    for name, t in cases:
        a = t.reshape(t.shape[0], -1) if t.dim() == 2 else t.reshape(-1, 64 if t.numel() % 64 == 0 else t.numel())
        a16 = a.to(torch.float16)
        CB, SCB, _ = F.int8_vectorwise_quant(a16.cuda())
        res[f"{name}.w16"] = a16.contiguous()
        res[f"{name}.CB"] = CB.cpu().contiguous()
        res[f"{name}.SCB"] = SCB.cpu().contiguous()
        log("int8", name, tuple(a.shape), "SCB[:3]", SCB[:3].tolist())

    # activations with outlier columns, quantized with threshold 6
    x = synth(5 * 256, 8, outlier_every=0).reshape(5, 256) * 40.0
    x[1, 3] = 8.0
    x[4, 3] = -6.0
    x[2, 100] = -7.5
    x[0, 200] = 5.999
    x16 = x.to(torch.float16)
    CA, SCA, cols = F.int8_vectorwise_quant(x16.cuda(), threshold=6.0)
    res["act.x16"] = x16.contiguous()
    res["act.CA"] = CA.cpu().contiguous()
    res["act.SCA"] = SCA.cpu().contiguous()
    res["act.outlier_cols"] = cols.cpu().to(torch.int32).contiguous()
    log("act outlier cols", cols.tolist(), "SCA", SCA.tolist())
    # edge rows: all outliers, all zeros, a value exactly at the threshold
    e16 = torch.tensor([[7.0, -8.0, 9.0, 10.0], [0.0, 0.0, 0.0, 0.0], [1.0, 2.0, -3.0, 6.0],
                        [0.5, -0.25, 0.125, 5.99]], dtype=torch.float16)
    CE, SCE, ecols = F.int8_vectorwise_quant(e16.cuda(), threshold=6.0)
    res["edge.x16"] = e16
    res["edge.CA"] = CE.cpu().contiguous()
    res["edge.SCA"] = SCE.cpu().contiguous()
    res["edge.outlier_cols"] = ecols.cpu().to(torch.int32).contiguous()
    log("edge", CE.tolist(), SCE.tolist(), ecols.tolist())

    # LLM.int8() linear with threshold 6 (the transformers default path)
    W16 = (synth(96 * 256, 9).reshape(96, 256)).to(torch.float16)
    b16 = (synth(96, 10, outlier_every=0) * 10).to(torch.float16)
    lin = bnb.nn.Linear8bitLt(256, 96, bias=True, has_fp16_weights=False, threshold=6.0)
    lin.weight = bnb.nn.Int8Params(W16.clone(), requires_grad=False, has_fp16_weights=False)
    lin.bias = torch.nn.Parameter(b16.clone(), requires_grad=False)
    lin = lin.cuda()
    with torch.no_grad():
        y = lin(x16.cuda())
        lin0 = bnb.nn.Linear8bitLt(256, 96, bias=True, has_fp16_weights=False, threshold=0.0)
        lin0.weight = bnb.nn.Int8Params(W16.clone(), requires_grad=False, has_fp16_weights=False)
        lin0.bias = torch.nn.Parameter(b16.clone(), requires_grad=False)
        lin0 = lin0.cuda()
        y0 = lin0(x16.cuda())
        yref = (x16.cuda().float() @ W16.cuda().float().t() + b16.cuda().float())
    res["mm.W16"] = W16.contiguous()
    res["mm.b16"] = b16.contiguous()
    # the first forward moves CB/SCB from the weight into lin.state
    res["mm.CB"] = lin.state.CB.cpu().contiguous()
    res["mm.SCB"] = lin.state.SCB.cpu().contiguous()
    res["mm.y_t6"] = y.cpu().contiguous()
    res["mm.y_t0"] = y0.cpu().contiguous()
    res["mm.y_fp32"] = yref.cpu().contiguous()
    log("mm y dtype", y.dtype, "max |y_t6 - fp32|", (y.float() - yref).abs().max().item(),
        "max |y_t0 - fp32|", (y0.float() - yref).abs().max().item())

    # rounding of float32 -> bf16 / fp16 as torch does it
    c = torch.tensor([1.0, 1.00390625, 1.005859375, 1.0078125 + 2**-9, -3.3e-39, 1e-45, 3.4e38,
                      float("inf"), -float("inf"), 65504.0, 65520.0, 70000.0, 2.9802322e-08, 6e-8, 0.1],
                     dtype=torch.float32)
    c = torch.cat([c, synth(4000, 11) * 1000.0, synth(4000, 12) / 1000.0])
    res["cast.f32"] = c
    res["cast.bf16"] = c.to(torch.bfloat16)
    res["cast.f16"] = c.to(torch.float16)
    save_file(res, os.path.join(out, "int8.safetensors"), metadata=meta)


def make_hf(models_dir, out):
    from transformers import AutoModelForCausalLM
    from safetensors.torch import save_file
    foot, states, logits = {}, {}, {}
    gold = json.load(open(os.path.join(models_dir, "stories260K", "golden.json")))
    for model in ("stories260K", "tiny-llama3", "tiny-qwen2"):
        for v in ("fp32", "bf16", "int8", "nf4", "nf4-nodq", "int8-auto", "nf4-auto"):
            key = f"{model}/{v}"
            try:
                m = AutoModelForCausalLM.from_pretrained(os.path.join(models_dir, model),
                                                         device_map="cuda:0", **variant_kwargs(v))
                m.eval()
                params = [{"name": n, "class": type(p).__name__, "dtype": str(p.dtype),
                           "shape": list(p.shape), "element_size": p.element_size()}
                          for n, p in m.named_parameters()]
                bufs = [{"name": n, "dtype": str(b.dtype), "shape": list(b.shape),
                         "element_size": b.element_size()} for n, b in m.named_buffers()]
                q = m.model.layers[0].self_attn.q_proj
                extra = {"q_proj_class": type(q).__name__, "q_proj_weight_attrs":
                         sorted(k for k in vars(q.weight).keys()) if hasattr(q.weight, "__dict__") else []}
                foot[key] = {"footprint": m.get_memory_footprint(),
                             "footprint_no_buffers": m.get_memory_footprint(return_buffers=False),
                             "config_dtype": str(getattr(m.config, "dtype", None)),
                             "params": params, "buffers": bufs, **extra}
                log(key, "footprint", foot[key]["footprint"], "no buffers", foot[key]["footprint_no_buffers"])
                w = q.weight
                if v.startswith("nf4"):
                    qs = w.quant_state
                    states[f"{key}.packed"] = w.data.reshape(-1).cpu().contiguous()
                    states[f"{key}.absmax"] = qs.absmax.cpu().contiguous()
                    if qs.nested:
                        states[f"{key}.absmax2"] = qs.state2.absmax.cpu().contiguous()
                        states[f"{key}.code2"] = qs.state2.code.cpu().contiguous()
                        states[f"{key}.offset"] = qs.offset.reshape(1).float().cpu().contiguous()
                    log(key, "quant_state dtype", qs.dtype, "blocksize", qs.blocksize, "shape", qs.shape)
                elif v.startswith("int8"):
                    states[f"{key}.CB"] = w.data.cpu().contiguous()
                    scb = getattr(w, "SCB", None)
                    if scb is None:
                        scb = getattr(q.state, "SCB", None)
                    if scb is not None:
                        states[f"{key}.SCB"] = scb.cpu().contiguous()
                    log(key, "weight dtype", w.dtype, "threshold", q.state.threshold)
                if model == "stories260K" and not v.endswith("auto"):
                    with torch.no_grad():
                        for i, s in enumerate(gold["sequences"]):
                            ids = torch.tensor([s["input_ids"]], device="cuda:0")
                            lg = m(ids).logits[0].float().cpu().contiguous()
                            logits[f"{v}.seq{i}"] = lg
                del m
                torch.cuda.empty_cache()
            except Exception:
                log(key, "FAILED", traceback.format_exc())
    # the parameter/buffer lists were read once to learn what get_memory_footprint() counts
    # (docs/quantization.md); the committed file keeps the totals
    totals = {k: {f: v[f] for f in ("footprint", "footprint_no_buffers", "config_dtype")} for k, v in foot.items()}
    json.dump(totals, open(os.path.join(out, "footprint.json"), "w"), indent=1)
    log("parameter classes of layer 0 q_proj:", {k: (v["q_proj_class"], v["q_proj_weight_attrs"]) for k, v in foot.items()})
    save_file(states, os.path.join(out, "hf_states.safetensors"))
    save_file(logits, os.path.join(out, "hf_logits.safetensors"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "models"))
    ap.add_argument("--steps", default="nf4,int8,hf", help="comma-separated subset of nf4,int8,hf")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    import bitsandbytes
    import transformers
    log("torch", torch.__version__, "bitsandbytes", bitsandbytes.__version__,
        "transformers", transformers.__version__, "gpu", torch.cuda.get_device_name(0))
    steps = {"nf4": make_nf4, "int8": make_int8, "hf": make_hf}
    for step in (steps[s] for s in args.steps.split(",")):
        try:
            step(args.models, args.out)
        except Exception:
            log(step.__name__, "FAILED", traceback.format_exc())
    open(os.path.join(args.out, "log.txt"), "w").write("\n".join(LOG) + "\n")


if __name__ == "__main__":
    sys.exit(main())
