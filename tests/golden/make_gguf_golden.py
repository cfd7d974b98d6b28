#!/usr/bin/env python3
"""Makes the GGUF golden files under tests/golden/gguf/ with gguf-py (pip install gguf numpy),
the reference reader/writer and numpy dequantizer published with llama.cpp.

dequant.gguf: for each type T, tensor "q.T" holds raw T blocks and "expect.T" (F32, same shape)
holds gguf.quants.dequantize of them. Types gguf-py can quantize are made from random floats;
the K-quants (which it only dequantizes) from random bytes with finite f16 scales.

meta.gguf: metadata of every value type (nested arrays, UTF-8 strings), general.alignment 64
and three small tensors; test_gguf.c asserts the values written here.

Usage: python3 tests/golden/make_gguf_golden.py  (from the repository root)"""
import os

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gguf")
rng = np.random.default_rng(20261128)


def random_f16_scale(shape, lo=1e-3, hi=0.2):
    return rng.uniform(lo, hi, size=shape).astype(np.float16).view(np.uint8)


def random_blocks(qtype, n_blocks):
    """Random bytes for every block, then overwrite the f16 scale fields with finite values."""
    block_elems, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
    b = rng.integers(0, 256, size=(n_blocks, block_bytes), dtype=np.uint8)
    if qtype in (T.Q4_K, T.Q5_K):          # d, dmin at bytes 0..3
        b[:, 0:2] = random_f16_scale((n_blocks, 1)).reshape(n_blocks, 2)
        b[:, 2:4] = random_f16_scale((n_blocks, 1)).reshape(n_blocks, 2)
    elif qtype == T.Q6_K:                  # d at the end
        b[:, 208:210] = random_f16_scale((n_blocks, 1)).reshape(n_blocks, 2)
    return b


def make_dequant():
    w = gguf.GGUFWriter(os.path.join(OUT, "dequant.gguf"), "qeval-golden")
    cases = [  # (type, rows, cols)
        (T.F32, 2, 5), (T.F16, 3, 7), (T.BF16, 2, 9),
        (T.Q8_0, 2, 64), (T.Q4_0, 3, 64), (T.Q4_1, 2, 96), (T.Q5_0, 2, 64), (T.Q5_1, 3, 32),
        (T.Q4_K, 2, 256), (T.Q5_K, 2, 256), (T.Q6_K, 2, 512),
    ]
    for qtype, rows, cols in cases:
        name = qtype.name
        if qtype in (T.Q4_K, T.Q5_K, T.Q6_K):
            block_elems, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
            raw = random_blocks(qtype, rows * cols // block_elems).reshape(rows, -1)
        elif qtype == T.F32:
            raw = rng.normal(0, 2, size=(rows, cols)).astype(np.float32).view(np.uint8).reshape(rows, -1)
        elif qtype == T.F16:
            x = rng.normal(0, 2, size=(rows, cols)).astype(np.float16)
            # the edges of half: subnormals, zero, -zero, largest, infinities
            x.flat[:7] = np.array([6e-8, -3e-5, 0.0, -0.0, 65504.0, np.inf, -np.inf], dtype=np.float16)
            raw = x.view(np.uint8).reshape(rows, -1)
        else:
            x = rng.normal(0, 1, size=(rows, cols)).astype(np.float32)
            raw = quantize(x, qtype)
        expect = dequantize(raw, qtype).astype(np.float32)
        assert expect.shape == (rows, cols), (name, expect.shape)
        w.add_tensor("q." + name, raw, raw_shape=None, raw_dtype=qtype)
        w.add_tensor("expect." + name, expect)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def make_meta():
    w = gguf.GGUFWriter(os.path.join(OUT, "meta.gguf"), "llama")
    w.add_custom_alignment(64)
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 65000)
    w.add_int16("t.i16", -32000)
    w.add_uint32("t.u32", 4000000000)
    w.add_int32("t.i32", -2000000000)
    w.add_float32("t.f32", 0.15625)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "héllo ▁wörld")
    w.add_uint64("t.u64", 18000000000000000000)
    w.add_int64("t.i64", -9000000000000000000)
    w.add_float64("t.f64", -2.5e-300)
    w.add_array("t.arr_str", ["a", "", "<0x0A>", "Ġthe"])
    w.add_array("t.arr_i32", [1, -2, 3])
    w.add_array("t.arr_f32", [0.5, -1.25])
    w.add_array("t.nested", [[1, 2], [3]])
    w.add_tensor("a", np.arange(6, dtype=np.float32).reshape(2, 3))
    w.add_tensor("b", np.array([1.5, -2.0], dtype=np.float16))
    w.add_tensor("c", np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    make_dequant()
    make_meta()
