"""What the float64 GGUF reference scripts (make_smollm2_logits_golden.py,
make_gemma3_logits_golden.py) share: reading a GGUF file's metadata and dequantized tensors with
gguf-py, and writing the golden JSON the C tests read (tests/golden/gguf/NAME)."""
import json
import os

import gguf
import numpy as np


def read_gguf(path):
    """(scalar, tensors): scalar(key) gives a metadata value; tensors maps each tensor name to
    its values dequantized as stored, float64, in row-major [rows, cols] order."""
    r = gguf.GGUFReader(path)

    def scalar(key):
        field = r.fields[key]
        return field.parts[field.data[0]][0]

    tensors = {t.name: gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64)
               .reshape([int(x) for x in reversed(t.shape)]) for t in r.tensors}
    return scalar, tensors


def write_logits_golden(logits, ids, probe_ids, name):
    """tests/golden/gguf/NAME: the ids, each row's argmax and the logits of probe_ids."""
    out = {"ids": ids, "probe_ids": probe_ids, "argmax": logits.argmax(-1).tolist(),
           "probe_logits": [[round(float(row[i]), 6) for i in probe_ids] for row in logits]}
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gguf", name)
    with open(path, "w") as f:
        json.dump(out, f)
        f.write("\n")
