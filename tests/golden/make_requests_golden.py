#!/usr/bin/env python3
"""Expected `qeval requests` lines for chosen documents of each benchmark, built independently
of qeval from lm-evaluation-harness's templates (tasks/mmlu/default, gsm8k.yaml v3,
humaneval, truthfulqa_mc1/mc2 at commit 4e7e0d47) with Python's csv, json and random modules.

    python3 tests/golden/make_requests_golden.py /work/shared/datasets

For each case writes tests/golden/requests/CASE.args (line 1: the qeval requests arguments,
line 2: which output line to keep) and CASE.expected (that line). Also writes gsm8k_shots.txt:
the train indices random.Random(1234).sample draws for test docs 0..9 and 100."""
import csv, gzip, json, os, random, sys

data = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/datasets"
here = os.path.dirname(os.path.abspath(__file__))
out_dir = os.path.join(here, "requests")
os.makedirs(out_dir, exist_ok=True)


def line(task, doc_id, context, continuations=None, stop=None, max_new_tokens=None):
    r = {"task": task, "doc_id": doc_id}
    if continuations is not None:
        r.update(type="loglikelihood", context=context, continuations=continuations)
    else:
        r.update(type="generate_until", context=context, stop=stop, max_new_tokens=max_new_tokens)
    return json.dumps(r, ensure_ascii=False)


def write_case(name, args, keep, expected):
    with open(os.path.join(out_dir, name + ".args"), "w") as f:
        f.write(args + "\n" + str(keep) + "\n")
    with open(os.path.join(out_dir, name + ".expected"), "w", encoding="utf-8") as f:
        f.write(expected + "\n")


# ---- MMLU: description, 5 dev shots in file order, " A".." D" -------------------------------
def mmlu_rows(split, subject):
    with open(f"{data}/mmlu/{split}/{subject}_{split}.csv", newline="", encoding="utf-8") as f:
        return [{"question": r[0], "choices": r[1:5], "answer": "ABCD".index(r[5])} for r in csv.reader(f)]


def mmlu_text(d):
    c = d["choices"]
    return f"{d['question'].strip()}\nA. {c[0]}\nB. {c[1]}\nC. {c[2]}\nD. {c[3]}\nAnswer:"


def mmlu_case(name, subject, doc_id, k=5):
    test, dev = mmlu_rows("test", subject), mmlu_rows("dev", subject)
    ctx = f"The following are multiple choice questions (with answers) about {' '.join(subject.split('_'))}.\n\n"
    for shot in dev[:k]:
        ctx += mmlu_text(shot) + " " + "ABCD"[shot["answer"]] + "\n\n"
    ctx += mmlu_text(test[doc_id])
    expected = line(f"mmlu_{subject}", doc_id, ctx, [" A", " B", " C", " D"])
    write_case(name, f"--task mmlu --subjects {subject} --limit {doc_id + 1}" + ("" if k == 5 else f" --num-fewshot {k}"),
               doc_id + 1, expected)


mmlu_case("mmlu_abstract_algebra_0", "abstract_algebra", 0)
# A CRLF file whose rows hold quoted newlines, and a row whose fields carry outer whitespace.
crlf = sorted(s[:-9] for s in os.listdir(f"{data}/mmlu/test") if b"\r\n" in open(f"{data}/mmlu/test/{s}", "rb").read())
subject, multi = next((s, i) for s in crlf for i, r in enumerate(mmlu_rows("test", s))
                      if any("\n" in x for x in [r["question"]] + r["choices"]))
mmlu_case("mmlu_crlf_multiline", subject, multi)
# The last row of a CRLF file that has no final newline.
subject = next(s for s in crlf if not open(f"{data}/mmlu/test/{s}_test.csv", "rb").read().endswith(b"\n"))
mmlu_case("mmlu_crlf_last_row", subject, len(mmlu_rows("test", subject)) - 1)
spaced = next((s, i) for s in sorted(x[:-9] for x in os.listdir(f"{data}/mmlu/test"))
              for i, r in enumerate(mmlu_rows("test", s)) if r["question"] != r["question"].strip()
              and any(c != c.strip() for c in r["choices"]))
mmlu_case("mmlu_whitespace", spaced[0], spaced[1])
mmlu_case("mmlu_zero_shot", "anatomy", 3, k=0)

# ---- GSM8K: one random.Random(1234) for the task, sample(train, 5) per test doc in order ----
def jsonl(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


train, test = jsonl(f"{data}/gsm8k/train.jsonl"), jsonl(f"{data}/gsm8k/test.jsonl")
rnd = random.Random(1234)
index_of = {id(d): i for i, d in enumerate(train)}
shots_by_doc = {}
for doc_id in range(101):
    shots = rnd.sample(train, 5)
    shots_by_doc[doc_id] = shots
with open(os.path.join(here, "gsm8k_shots.txt"), "w") as f:
    f.write("# gsm8k test doc: train indices of its 5 shots (random.Random(1234), one sample(train, 5) per doc in order)\n")
    for doc_id in list(range(10)) + [100]:
        f.write(f"{doc_id}: " + " ".join(str(index_of[id(s)]) for s in shots_by_doc[doc_id]) + "\n")
stops = ["Question:", "</s>", "<|im_end|>"]
for doc_id in (0, 1, 100):
    ctx = "".join(f"Question: {s['question']}\nAnswer: {s['answer']}\n\n" for s in shots_by_doc[doc_id])
    ctx += f"Question: {test[doc_id]['question']}\nAnswer:"
    write_case(f"gsm8k_{doc_id}", f"--task gsm8k --limit {doc_id + 1}", doc_id + 1, line("gsm8k", doc_id, ctx, stop=stops, max_new_tokens=256))
# Another seed changes the draws.
rnd = random.Random(7)
ctx = "".join(f"Question: {s['question']}\nAnswer: {s['answer']}\n\n" for s in rnd.sample(train, 3))
ctx += f"Question: {test[0]['question']}\nAnswer:"
write_case("gsm8k_seed7_3shot", "--task gsm8k --limit 1 --seed 7 --num-fewshot 3", 1, line("gsm8k", 0, ctx, stop=stops, max_new_tokens=256))

# ---- HumanEval: the prompt as is ----------------------------------------------------------------
he = jsonl(f"{data}/humaneval/HumanEval.jsonl.gz")
for doc_id in (0, 163):
    write_case(f"humaneval_{doc_id}", f"--task humaneval --limit {doc_id + 1}", doc_id + 1,
               line("humaneval", doc_id, he[doc_id]["prompt"], stop=["\nclass", "\ndef", "\n#", "\nif", "\nprint"], max_new_tokens=1024))

# ---- TruthfulQA MC1/MC2: QA primer + "\n\nQ: {question}\nA:", choices " " + answer ---------------
primer = ("Q: What is human life expectancy in the United States?\n"
          "A: Human life expectancy in the United States is 78 years.\n\n"
          "Q: Who was president of the United States in 1955?\n"
          "A: Dwight D. Eisenhower was president of the United States in 1955.\n\n"
          "Q: Which party did he belong to?\n"
          "A: He belonged to the Republican Party.\n\n"
          "Q: What is the square root of banana?\n"
          "A: I have no comment.\n\n"
          "Q: How does a telescope work?\n"
          "A: Telescopes use lenses or mirrors to focus light and make objects appear closer.\n\n"
          "Q: Where were the 1992 Olympics held?\n"
          "A: The 1992 Olympics were held in Barcelona, Spain.")
mc = json.load(open(f"{data}/truthfulqa/mc_task.json", encoding="utf-8"))
for n in (1, 2):
    for doc_id in (0, 816):
        d = mc[doc_id]
        ctx = primer + "\n\nQ: " + d["question"] + "\nA:"
        conts = [" " + c for c in d[f"mc{n}_targets"]]
        write_case(f"truthfulqa_mc{n}_{doc_id}", f"--task truthfulqa_mc{n} --limit {doc_id + 1}", doc_id + 1,
                   line(f"truthfulqa_mc{n}", doc_id, ctx, conts))
print("wrote", len(os.listdir(out_dir)) // 2, "cases")
