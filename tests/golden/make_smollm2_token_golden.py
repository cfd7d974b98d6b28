#!/usr/bin/env python3
"""Token ids of SmolLM2-135M-Instruct (the `qeval model fetch smollm2-135m` GGUF) from Hugging
Face `tokenizers`, for tests/test_gguf_tokenizer.c: writes tests/golden/gguf/smollm2_tokens.jsonl.

The tokenizer is rebuilt from the GGUF's own vocabulary and merges with SmolLM2's
tokenizer.json pipeline: BPE, pre-tokenizer Sequence[Digits(individual_digits=True),
ByteLevel(add_prefix_space=False, use_regex=True)], control tokens (token_type 3) added as
special tokens. Usage: python3 tests/golden/make_smollm2_token_golden.py PATH/TO/SmolLM2.gguf
(pip install gguf tokenizers)"""
import json
import os
import sys

import gguf
from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers

TEXTS = [
    "Hello world",
    " Hello world",
    "The year 2024 had 366 days; 3.14159 is pi.",
    "  leading and trailing spaces  ",
    "tabs\tand\nnewlines\n\n\nand   runs of spaces",
    "Ünïcödé, 日本語, emoji 🦙 and math ∑x²",
    "def add(a, b):\n    return a + b\n",
    "I'm sure you've heard they'll say it's done",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "Question: Janet has 16 eggs and eats 3. How many are left?\nAnswer:",
    "",
    " ",
]


def main():
    reader = gguf.GGUFReader(sys.argv[1])

    def strings(key):
        field = reader.fields[key]
        return [bytes(field.parts[i]).decode("utf-8") for i in field.data]

    tokens, merges = strings("tokenizer.ggml.tokens"), strings("tokenizer.ggml.merges")
    types = reader.fields["tokenizer.ggml.token_type"]
    types = [int(types.parts[i][0]) for i in types.data]
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)},
                               merges=[tuple(m.split(" ", 1)) for m in merges]))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.add_special_tokens([AddedToken(t, special=True) for t, ty in zip(tokens, types) if ty == 3])
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gguf", "smollm2_tokens.jsonl")
    with open(out, "w") as f:
        for text in TEXTS:
            f.write(json.dumps({"text": text, "ids": tok.encode(text).ids}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
