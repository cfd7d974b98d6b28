"""qeval's variants as transformers + bitsandbytes spell them: the from_pretrained() keyword
arguments that load a model the way a user asking for that variant would (LLM.int8 in fp16 as
its docs load it; NF4 with bf16 compute, double quantization unless -nodq; "-auto" keeps the
config's dtype). Shared by bench/footprint_peers.py and tests/golden/make_bnb_golden.py."""
import torch


def variant_kwargs(v):
    from transformers import BitsAndBytesConfig
    if v == "fp32":
        return {"dtype": torch.float32}
    if v == "bf16":
        return {"dtype": torch.bfloat16}
    if v == "int8":
        return {"dtype": torch.float16, "quantization_config": BitsAndBytesConfig(load_in_8bit=True)}
    if v == "int8-auto":
        return {"quantization_config": BitsAndBytesConfig(load_in_8bit=True)}
    cfg = lambda dq: BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                        bnb_4bit_use_double_quant=dq,
                                        bnb_4bit_compute_dtype=torch.bfloat16)
    if v == "nf4":
        return {"dtype": torch.bfloat16, "quantization_config": cfg(True)}
    if v == "nf4-nodq":
        return {"dtype": torch.bfloat16, "quantization_config": cfg(False)}
    if v == "nf4-auto":
        return {"quantization_config": cfg(True)}
    raise ValueError(v)
