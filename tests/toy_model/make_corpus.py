#!/usr/bin/python3
"""tests/toy_model/make_corpus.py — the tokenizer oracle corpus for the toy model, from HELD-OUT data.

    make_corpus.py MODEL_DIR OUT.bin

Text records (corpus format of tests/tokenizer/oracle.js): every held-out source file listed in
MODEL_DIR/data_manifest.json ("val_files") that exists on this machine (Debian's python3.11
standard library and python3-* packages; files of other versions are skipped and counted),
each also wrapped in DiffuCoder's chat prompt; the bundled sample tasks' prompts and solutions;
a few strings around the special tokens. Id records: seeded random ids over the whole vocabulary
(decode tests). Prints how many held-out files were found; fails if none.
"""
import json
import os
import random
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    mdir, out = sys.argv[1], sys.argv[2]
    man = json.load(open(os.path.join(mdir, "data_manifest.json")))
    cfg = json.load(open(os.path.join(mdir, "config.json")))
    texts, found, missing = [], 0, 0
    for p in man["val_files"]:
        try:
            with open(p, "rb") as f:
                b = f.read()
            found += 1
        except OSError:
            missing += 1
            continue
        texts.append(b)
        chat = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                + b[:2000].decode("utf-8", "replace").strip() + "\n<|im_end|>\n<|im_start|>assistant\n")
        texts.append(chat.encode())
    for line in open(os.path.join(ROOT, "deploy", "prompts", "sample_tasks.jsonl")):
        r = json.loads(line)
        texts.append((r["prompt"] + r["canonical_solution"]).encode())
    for s in ["<|mask|><|mask|>x", "a<|endoftext|>b", "<|dlm_pad|>\n<|im_end|>", "<|beginoftext|>def",
              "<|mask", "|>", "\t\tx = 1\r\n", "éé\u0301 naïve – “quotes”"]:
        texts.append(s.encode())
    if not found:
        print("make_corpus.py: none of the %d held-out files exists on this machine" % missing, file=sys.stderr)
        return 1
    rng = random.Random(15)
    ids = [[rng.randrange(cfg["vocab_size"]) for _ in range(rng.randrange(1, 200))] for _ in range(200)]
    with open(out, "wb") as fh:
        fh.write(b"DTKC\x01")
        for t in texts:
            fh.write(struct.pack("<BBI", 1, 0, len(t)))
            fh.write(t)
        for s in ids:
            b = struct.pack("<%dI" % len(s), *s)
            fh.write(struct.pack("<BBI", 2, 0, len(b)))
            fh.write(b)
    print("make_corpus.py: %d held-out files found (%d absent on this machine), %d text records, %.1f MB"
          % (found, missing, len(texts), sum(map(len, texts)) / 1e6), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
