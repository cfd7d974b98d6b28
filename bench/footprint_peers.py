#!/usr/bin/env python3
"""What transformers (+ bitsandbytes for int8 / nf4) holds on the GPU for a model, per variant:
get_memory_footprint() (parameters + buffers, as users read it) and the CUDA caching
allocator's count after loading (torch.cuda.memory_allocated, which also holds the int8 row
scales and nf4 absmax that are not parameters). One JSON line per variant, to set beside
`qeval inspect MODEL --variant V --device cuda --json` on the same machine.

  footprint_peers.py MODEL_DIR [--variants fp32,bf16,int8,nf4]"""
import argparse
import gc
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hf_variants import variant_kwargs  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("--variants", default="fp32,bf16,int8,nf4")
    a = ap.parse_args()
    from transformers import AutoModelForCausalLM
    import transformers
    versions = {"transformers": transformers.__version__, "torch": torch.__version__}
    try:
        import bitsandbytes
        versions["bitsandbytes"] = bitsandbytes.__version__
    except ImportError:
        pass
    for v in a.variants.split(","):
        gc.collect()
        torch.cuda.empty_cache()
        before = torch.cuda.memory_allocated()
        model = AutoModelForCausalLM.from_pretrained(a.model_dir, device_map="cuda:0", **variant_kwargs(v))
        torch.cuda.synchronize()
        print(json.dumps({"model": os.path.basename(a.model_dir.rstrip("/")), "variant": v,
                          "footprint_bytes": model.get_memory_footprint(),
                          "footprint_no_buffers_bytes": model.get_memory_footprint(return_buffers=False),
                          "allocated_bytes": torch.cuda.memory_allocated() - before,
                          "device": torch.cuda.get_device_name(0), **versions}), flush=True)
        del model


if __name__ == "__main__":
    main()
