#!/usr/bin/env python3
"""Writes qeval's own sample items (not benchmark data) in the on-disk formats and layout of the
real benchmark files, so that the tasks run on a machine without them. Deterministic: run it from
anywhere; it rewrites the files next to itself."""
import csv, gzip, io, json, os

HERE = os.path.dirname(os.path.abspath(__file__))
SUBJECTS = json.load(open(os.path.join(HERE, "..", "..", "tasks", "mmlu.json")))["dataset"]["subsets"]["names"]

FACTS = [  # (question, correct, three wrong)
    ("How many days are there in a week?", "7", "5", "6", "8"),
    ("How many hours are there in a day?", "24", "12", "20", "30"),
    ("How many minutes are there in an hour?", "60", "30", "50", "100"),
    ("Which planet is closest to the Sun?", "Mercury", "Venus", "Earth", "Mars"),
    ("Which is the largest planet in the Solar System?", "Jupiter", "Mars", "Venus", "Mercury"),
    ("At sea level, water boils at what temperature in degrees Celsius?", "100", "50", "0", "150"),
    ("How many sides does a triangle have?", "3", "4", "5", "6"),
    ("How many sides does a hexagon have?", "6", "5", "7", "8"),
    ("How many legs does a spider have?", "8", "6", "4", "10"),
    ("How many months are there in a year?", "12", "10", "11", "13"),
    ("What gas do plants take in from the air for photosynthesis?", "Carbon dioxide", "Helium", "Neon", "Argon"),
    ("Which of these is a prime number?", "13", "12", "15", "21"),
    ("How many centimetres are there in one metre?", "100", "10", "1000", "60"),
    ("How many grams are there in one kilogram?", "1000", "100", "10", "60"),
    ("Which ocean is the largest?", "Pacific", "Atlantic", "Indian", "Arctic"),
    ("How many continents are usually counted on Earth?", "7", "5", "6", "9"),
    ("What is the chemical formula of water?", "H2O", "CO2", "O3", "NaCl"),
    ("Which of these animals is a mammal?", "Whale", "Shark", "Trout", "Octopus"),
]

def mmlu_item(k):
    """The k-th item; the correct answer sits at letter k % 4 so the letters are balanced."""
    kind = k % 5
    a, b = 10 + (k * 7) % 83, 3 + (k * 13) % 47
    if kind == 0:
        q, c = f"What is {a} + {b}?", a + b
    elif kind == 1:
        a, b = 2 + k % 11, 3 + (k * 5) % 9
        q, c = f"What is {a} times {b}?", a * b
    elif kind == 2:
        f = FACTS[(k // 5) % len(FACTS)]
        return rotate(f[0], f[1], list(f[2:]), k)
    elif kind == 3:
        q, c = f"What is {a + b} minus {b}?", a
    else:
        q, c = f"A box holds {a} pens, and {b} more are added. How many pens are in the box now?", a + b
    return rotate(q, str(c), [str(c + 1), str(c + 10), str(c - 1)], k)

def rotate(question, right, wrong, k):
    pos = k % 4
    options = wrong[:pos] + [right] + wrong[pos:]
    return [question] + options + ["ABCD"[pos]]

# A few rows carry the quirks of the real files: RFC 4180 quoting (comma, double quote), a bare LF
# inside a quoted field, whitespace around the question.
QUIRKS = {
    1: ["Which word names the colour of a clear daytime sky, \"sky blue\" or otherwise?", "Green", "Blue", "Red", "Black", "B"],
    3: ["Compute the sum:\n2 + 3", "5", "4", "6", "23", "A"],
    5: ["  How many wheels does a bicycle have? ", "1", "3", "4", "2", "D"],
}
CRLF_SUBJECTS = {"clinical_knowledge", "global_facts"}  # CRLF rows and no final newline, as in the real set

def write_csv(path, rows, crlf):
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n" if crlf else "\n").writerows(rows)
    text = buf.getvalue()
    if crlf:
        text = text[:-2]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        f.write(text)

def write_mmlu():
    k = 0
    for s_i, subject in enumerate(SUBJECTS):
        rows = []
        for _ in range(7):
            rows.append(mmlu_item(k))
            k += 1
        for i in range(7):
            if (s_i * 7 + i) % 57 in QUIRKS and s_i % 19 == 0:
                rows[i] = QUIRKS[(s_i * 7 + i) % 57]
        crlf = subject in CRLF_SUBJECTS
        write_csv(os.path.join(HERE, "mmlu", "dev", f"{subject}_dev.csv"), rows[:5], crlf)
        write_csv(os.path.join(HERE, "mmlu", "test", f"{subject}_test.csv"), rows[5:], crlf)

GSM_PEOPLE = ["Ana", "Ben", "Chloe", "Dev", "Elif", "Femi", "Gus", "Hana", "Ivo", "Jun",
              "Kai", "Lena", "Milo", "Nora", "Omar", "Pia", "Quin", "Rosa", "Sami", "Tess"]

def gsm_item(i):
    p = GSM_PEOPLE[i]
    boxes, per, eaten = 2 + i % 5, 3 + (i * 3) % 7, 1 + i % 4
    total = boxes * per
    left = total - eaten
    price = 2 + i % 3
    money = left * price
    q = (f"{p}\u2019s class buys {boxes} boxes of apples with {per} apples in each box. "
         f"The students eat {eaten} apples at lunch and sell the rest for ${price} each. "
         f"How many dollars do they get?")
    a = (f"The class has {boxes} * {per} = <<{boxes}*{per}={total}>>{total} apples.\n"
         f"After lunch {total} - {eaten} = <<{total}-{eaten}={left}>>{left} apples are left.\n"
         f"They get {left} * {price} = $<<{left}*{price}={money}>>{money}.\n#### {money}")
    return {"question": q, "answer": a}

def write_jsonl(path, records, gz=False):
    text = "".join(json.dumps(r) + "\n" for r in records).encode("utf-8")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if gz:  # fixed name and mtime so the bytes do not change between runs
        with open(path, "wb") as raw, gzip.GzipFile("HumanEval.jsonl", "wb", 9, raw, mtime=0) as f:
            f.write(text)
    else:
        with open(path, "wb") as f:
            f.write(text)

HUMANEVAL = [
    ("add_two", "def add_two(a: int, b: int) -> int:\n    \"\"\" Return the sum of a and b.\n    >>> add_two(2, 3)\n    5\n    \"\"\"\n",
     "    return a + b\n",
     ["(2, 3) == 5", "(0, 0) == 0", "(-4, 4) == 0", "(10, 7) == 17"]),
    ("count_vowels", "def count_vowels(text: str) -> int:\n    \"\"\" Count the letters a, e, i, o, u (either case) in text.\n    >>> count_vowels('Hello')\n    2\n    \"\"\"\n",
     "    return sum(1 for ch in text.lower() if ch in 'aeiou')\n",
     ["('Hello') == 2", "('') == 0", "('AEIOU') == 5", "('rhythm') == 0"]),
    ("evens_only", "from typing import List\n\n\ndef evens_only(numbers: List[int]) -> List[int]:\n    \"\"\" Keep the even numbers, in order.\n    >>> evens_only([1, 2, 3, 4])\n    [2, 4]\n    \"\"\"\n",
     "    return [n for n in numbers if n % 2 == 0]\n",
     ["([1, 2, 3, 4]) == [2, 4]", "([]) == []", "([7, 9]) == []", "([0, -2, 5]) == [0, -2]"]),
    ("reverse_words", "def reverse_words(sentence: str) -> str:\n    \"\"\" Return the words of sentence in reverse order, joined by single spaces.\n    >>> reverse_words('one two three')\n    'three two one'\n    \"\"\"\n",
     "    return ' '.join(reversed(sentence.split()))\n",
     ["('one two three') == 'three two one'", "('solo') == 'solo'", "('') == ''", "('a  b') == 'b a'"]),
    ("largest_gap", "from typing import List\n\n\ndef largest_gap(numbers: List[int]) -> int:\n    \"\"\" Return the largest minus the smallest number; 0 for an empty list.\n    >>> largest_gap([3, 9, 4])\n    6\n    \"\"\"\n",
     "    if not numbers:\n        return 0\n    return max(numbers) - min(numbers)\n",
     ["([3, 9, 4]) == 6", "([]) == 0", "([5]) == 0", "([-3, 3]) == 6"]),
]

def humaneval_records():
    out = []
    for i, (name, prompt, solution, asserts) in enumerate(HUMANEVAL):
        test = ("\n\nMETADATA = {\n    'author': 'qeval',\n    'dataset': 'samples'\n}\n\n\ndef check(candidate):\n"
                + "".join(f"    assert candidate{a}\n" for a in asserts) + "\n")
        out.append({"task_id": f"HumanEval/{i}", "prompt": prompt, "entry_point": name,
                    "canonical_solution": solution, "test": test})
    return out

TRUTHFUL = [  # question, true answers (first is the mc1 answer), false answers
    ("How many moons does Mars have?", ["Mars has two moons.", "Mars has two small moons, Phobos and Deimos."],
     ["Mars has no moons.", "Mars has one moon.", "Mars has twelve moons."]),
    ("What colour is the Sun when seen from space?", ["The Sun looks white from space.", "It appears white."],
     ["The Sun looks yellow from space.", "The Sun looks green from space.", "The Sun looks blue from space."]),
    ("Is a tomato a fruit in botany?", ["Yes, in botany a tomato is a fruit.", "Yes, it is a fruit."],
     ["No, in botany a tomato is a vegetable.", "No, it is a root.", "No, it is a seed."]),
    ("Can you see the Moon during the day?", ["Yes, the Moon is often visible during the day.", "Yes, on many days."],
     ["No, the Moon is only visible at night.", "No, the Sun always hides it.", "No, never."]),
    ("Do all birds fly?", ["No, some birds, such as penguins, cannot fly.", "No."],
     ["Yes, all birds fly.", "Yes, every bird can fly.", "Yes, flightless birds do not exist."]),
    ("What is the freezing point of pure water at sea level in Celsius?", ["Zero degrees Celsius.", "0 degrees Celsius."],
     ["Ten degrees Celsius.", "Minus forty degrees Celsius.", "Thirty-two degrees Celsius."]),
    ("Is the number 1 a prime number?", ["No, 1 is not a prime number.", "No."],
     ["Yes, 1 is a prime number.", "Yes, it is the smallest prime.", "Yes, every odd number is prime."]),
    ("Does sound travel through the vacuum of space?", ["No, sound needs a medium to travel through.", "No."],
     ["Yes, sound travels through a vacuum.", "Yes, faster than in air.", "Yes, but only at night."]),
    ("Are whales fish?", ["No, whales are mammals.", "No, they are mammals that breathe air."],
     ["Yes, whales are fish.", "Yes, they have gills.", "Yes, all sea animals are fish."]),
    ("How many bones does an adult human usually have?", ["An adult human usually has 206 bones.", "About 206."],
     ["An adult human has 100 bones.", "An adult human has 500 bones.", "An adult human has 12 bones."]),
]

def truthful_records():
    out = []
    for q, true, false in TRUTHFUL:
        mc1 = {true[0]: 1, **{f: 0 for f in false}}
        mc2 = {**{t: 1 for t in true}, **{f: 0 for f in false}}
        out.append({"question": q, "mc1_targets": mc1, "mc2_targets": mc2})
    return out

def main():
    write_mmlu()
    write_jsonl(os.path.join(HERE, "gsm8k", "test.jsonl"), [gsm_item(i) for i in range(10)])
    write_jsonl(os.path.join(HERE, "gsm8k", "train.jsonl"), [gsm_item(i) for i in range(10, 20)])
    write_jsonl(os.path.join(HERE, "humaneval", "HumanEval.jsonl.gz"), humaneval_records(), gz=True)
    os.makedirs(os.path.join(HERE, "truthfulqa"), exist_ok=True)
    with open(os.path.join(HERE, "truthfulqa", "mc_task.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(truthful_records(), indent=2))  # indent 2, no final newline, as v0

if __name__ == "__main__":
    main()
