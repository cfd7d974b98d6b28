#!/usr/bin/env python3
"""Makes the tokenizer golden data in this folder with Hugging Face `tokenizers` (pip install
tokenizers; made with 0.23.3). Run from the repository root:
    python3 tests/data/tokenizers/make_golden.py /work/shared
- qwen2_stress.jsonl: hard strings (whitespace kinds, NFC, contractions in capitals, added tokens,
  emoji, CJK) through shared/tokenizers/qwen2/tokenizer.json.
- llama3_style/, spm_style/, spm_metaspace/: small BPE tokenizers trained here on MMLU dev
  questions, in the three tokenizer.json shapes qeval reads (Llama-3: Split + ByteLevel with
  ignore_merges and a BOS template; Llama-2: Prepend/Replace normalizer with byte fallback;
  Metaspace pre-tokenizer), each with golden.jsonl rows {text, ids, ids_special, decoded,
  decoded_skip}: ids without and with special tokens, decode of ids_special without and with
  skip_special_tokens."""
import csv, glob, json, os, random, sys

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers, Regex

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "../../../../shared")
META = "\u2581"
LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
             r"\s*[\r\n]+|\s+(?!\S)|\s+")

PIECES = ["a", "Z", "the", " the", "é", "e\u0301", "中文", "😀", "🏳️‍🌈", " ", "  ", "   ", "\n", "\n\n", "\r\n", "\t",
          "'s", "'S", "'LL", "'ve", "123", "4567", "3.14", ".", "!!", "?", "<|im_end|>", "<|endoftext|>", "<think>",
          "<s>", "</s>", "<mask>", " <mask> ", "<sep>", "cat", "concat", "cat's", "\u00a0", "\u2028", "\u0085", "ſ",
          "İ", "ﬁ", "Ａ", "１", "_", "-", "\\", "ñ", "ß", "Ω", "—", "x^2", "def f(x):\n    return x", "Answer:", "İstanbul"]

FIXED = ["", " ", "  ", "\n", "Hello world", " Hello", "Hello ", "HE'S HERE'LL", "don't you're I'M", "1234567890",
         "a  b   c    d", "tab\tsep\t\tend", "line\r\nbreak\r\n\r\n", "e\u0301t\u00e9", "中文字符 テスト 한국어",
         "emoji 😀😀 🏳️‍🌈 flag", "<|im_start|>user\nHi<|im_end|>\n", "x<|endoftext|>y", "<think>\n</think>",
         "  leading and trailing  ", "ſ'S long s", "\u00a0nbsp\u00a0", "A. 0\nB. 4\nAnswer: B", "<mask>", " <mask> x",
         "a <mask>b", "x<sep>  y", "cat concat cat's _cat cat_", "<s>Zoo</s> a", "   \n   \n", "ab\u0085cd\u2028ef"]


def stress_texts(n, seed):
    rng = random.Random(seed)
    return FIXED + ["".join(rng.choice(PIECES) for _ in range(rng.randint(1, 12))) for _ in range(n)]


def write_golden(tok, texts, path):
    with open(path, "w", encoding="utf-8") as f:
        for text in texts:
            ids = tok.encode(text, add_special_tokens=False).ids
            ids_special = tok.encode(text, add_special_tokens=True).ids
            row = {"text": text, "ids": ids, "ids_special": ids_special,
                   "decoded": tok.decode(ids_special, skip_special_tokens=False),
                   "decoded_skip": tok.decode(ids_special, skip_special_tokens=True)}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def mmlu_lines():
    lines = []
    for path in sorted(glob.glob(os.path.join(SHARED, "datasets/mmlu/dev/*_dev.csv"))):
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.reader(f):
                lines.append(row[0] + "\n" + "\n".join(f"{c}. {a}" for c, a in zip("ABCD", row[1:5])) + "\nAnswer:")
    return lines


def save(tok, name, texts):
    out = os.path.join(HERE, name)
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "tokenizer.json")
    tok.save(path)
    write_golden(Tokenizer.from_file(path), texts, os.path.join(out, "golden.jsonl"))


def llama3_style(lines, texts):
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_RE), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=700, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|begin_of_text|>", "<|end_of_text|>"], show_progress=False)
    tok.train_from_iterator(lines, trainer)
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, normalized=False, special=True),
                            AddedToken("<sep>", rstrip=True, normalized=False, special=True)])
    tok.add_tokens([AddedToken("cat", single_word=True, normalized=False, special=False)])
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A $B:1",
                                      special_tokens=[("<|begin_of_text|>", bos)])])
    save(tok, "llama3_style", texts)


def spm_style(lines, texts, metaspace):
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    if metaspace:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=META, prepend_scheme="first", split=False)
        tok.decoder = decoders.Metaspace(replacement=META, prepend_scheme="first", split=False)
    else:
        tok.normalizer = normalizers.Sequence([normalizers.Prepend(META), normalizers.Replace(" ", META)])
        tok.decoder = decoders.Sequence([decoders.Replace(META, " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(" ", 1, 0)])
    specials = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    trainer = trainers.BpeTrainer(vocab_size=900, special_tokens=specials, show_progress=False)
    # SentencePiece-style training sees spaces as "▁" already
    train_tok = Tokenizer(models.BPE(unk_token="<unk>"))
    train_tok.normalizer = normalizers.Sequence([normalizers.Prepend(META), normalizers.Replace(" ", META)])
    train_tok.train_from_iterator(lines, trainer)
    data = json.loads(train_tok.to_str())
    # byte tokens belong to the model's vocab (as in Llama-2), not to added_tokens
    data["added_tokens"] = [t for t in data["added_tokens"] if not t["content"].startswith("<0x")]
    tok = Tokenizer.from_str(json.dumps(dict(json.loads(tok.to_str()), model=dict(
        data["model"], byte_fallback=True, fuse_unk=True, unk_token="<unk>"), added_tokens=data["added_tokens"])))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", tok.token_to_id("<s>"))])
    save(tok, "spm_metaspace" if metaspace else "spm_style", texts)


def main():
    qwen = Tokenizer.from_file(os.path.join(SHARED, "tokenizers/qwen2/tokenizer.json"))
    texts = stress_texts(150, seed=1)
    write_golden(qwen, texts, os.path.join(HERE, "qwen2_stress.jsonl"))
    lines = mmlu_lines()
    texts = stress_texts(60, seed=2) + lines[:20]
    llama3_style(lines, texts)
    spm_style(lines, texts, metaspace=False)
    spm_style(lines, texts, metaspace=True)


if __name__ == "__main__":
    main()
