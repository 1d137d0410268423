#!/usr/bin/env python3
"""check_flags.py DIFFU_BIN WORK_DIR — added-token flags that Dream's own
tokens do not use, against Hugging Face's Rust tokenizers library
(tokenizers@0.23.2; the JavaScript port handles these flags differently):
lstrip / rstrip (whitespace eaten around the token), single_word (only between
non-word characters), normalized (matched after NFC, decoded in NFC form),
a token that is a prefix of another (leftmost-longest), and a token with a
space in it (decoded as itself, not through the byte-level map). The variant
is WORK/dream with those flags set; ids and decodes must be identical.
Long runs of one kind of character check the regex stack, BPE of very long
words and canonical ordering of many marks.
Also a tiny tokenizer whose merges make the pre-tokenizer's case-insensitive
contractions visible in the ids: Oniguruma folds 'ſ (U+017F) to 's, so does
diffu (PCRE2 caseless); the JavaScript port does not."""
import json
import os
import random
import shutil
import subprocess
import sys

diffu, work = sys.argv[1], sys.argv[2]
HERE = os.path.dirname(os.path.abspath(__file__))
var = os.path.join(work, "flags")
shutil.rmtree(var, ignore_errors=True)
os.makedirs(var)
tj = json.load(open(os.path.join(work, "dream", "tokenizer.json"), encoding="utf-8"))
by = {t["content"]: t for t in tj["added_tokens"]}
by["<|im_end|>"].update(lstrip=True, rstrip=True)
by["<|im_start|>"].update(rstrip=True)
by["<|endoftext|>"].update(lstrip=True)
by["<tool_call>"].update(single_word=True)
by["<|fim_prefix|>"].update(normalized=True)
extra = [("<|im", False, False), ("e\u0301tude", True, False), ("hello world", False, False),
         ("Ωmega", True, True)]
nid = 151668
for content, normalized, special in extra:
    tj["added_tokens"].append({"id": nid, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
                               "normalized": normalized, "special": special})
    nid += 1
json.dump(tj, open(os.path.join(var, "tokenizer.json"), "w", encoding="utf-8"), ensure_ascii=False)
shutil.copy(os.path.join(work, "dream", "tokenizer_config.json"), var)
tj = json.load(open(os.path.join(work, "dream", "tokenizer.json"), encoding="utf-8"))

rng = random.Random(7)
pieces = ["<|im_end|>", "<|im_start|>", "<|endoftext|>", "<tool_call>", "<|fim_prefix|>", "<|im", "étude",
          "e\u0301tude", "hello world", "hello  world", "Ωmega", "\u2126mega", "x", "é", "中", "_", "1", "'s", " ", "  ",
          "\t", "\n", "\r\n", "\u00a0", "\u3000", "\u2028", "\u0085", "\ufeff", "\u180e", "\u200b", "-", ".", "ab"]
texts = ["<|im_end|>", "  <|im_end|>  x", "a <tool_call> b", "a<tool_call>b", "_<tool_call>", "1<tool_call>2",
         "é<tool_call>", "<tool_call>中", "-<tool_call>-", "<|im<|im_end|>", "<|imx", "e\u0301tude", "étude",
         "hello world", "xhello worldy", "\u2126mega Ωmega", "\u3000<|endoftext|>\u3000", "\u0085<|endoftext|>",
         "\ufeff <|im_end|>\ufeff", "<|im_start|>\n\n user", "<|fim_prefix|>", "<|im_end|><|im_end|>  <|im_end|>"]
for _ in range(1500):
    texts.append("".join(rng.choice(pieces) for _ in range(rng.randint(1, 14))))
passed = failed = 0


def compare(model_dir, texts):
    """ids and decodes of `diffu tokenize` vs the Rust library on texts."""
    global passed, failed
    inp = "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts).encode()
    ref = subprocess.run(["node", os.path.join(HERE, "oracle.js"), model_dir, "--rust-jsonl"], input=inp,
                         capture_output=True)
    if ref.returncode:
        print(ref.stderr.decode())
        sys.exit(1)
    ref = [json.loads(x) for x in ref.stdout.decode().split("\n") if x]
    got = subprocess.run([diffu, "tokenize", "--model", model_dir, "--jsonl"], input=inp, capture_output=True)
    got = [json.loads(x)["ids"] for x in got.stdout.decode().split("\n") if x]
    for t, r, g in zip(texts, ref, got):
        if r["ids"] == g:
            passed += 1
        else:
            failed += 1
            if failed <= 10:
                print(f"FAIL ids {t!r}\n  ours {g}\n  rust {r['ids']}")
    dec_in = "".join(json.dumps({"ids": r["ids"]}) + "\n" for r in ref).encode()
    dec = subprocess.run([diffu, "tokenize", "--model", model_dir, "--jsonl", "--decode"], input=dec_in,
                         capture_output=True)
    dec = [json.loads(x)["text"] for x in dec.stdout.decode().split("\n") if x]
    for t, r, d in zip(texts, ref, dec):
        if r["decoded"] == d:
            passed += 1
        else:
            failed += 1
            if failed <= 10:
                print(f"FAIL decode {t!r}\n  ours {d!r}\n  rust {r['decoded']!r}")
    if len(got) != len(texts) or len(dec) != len(texts):
        failed += 1
        print("FAIL: output line count")


compare(var, texts)

# contractions under case folding: pre-token "'ſt" gives ' + ſt, the contraction "'ſ" + "t" gives 'ſ + t
tiny = os.path.join(work, "flags_fold")
shutil.rmtree(tiny, ignore_errors=True)
os.makedirs(tiny)
bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
cs, k = bs[:], 0
for b in range(256):
    if b not in bs:
        bs.append(b)
        cs.append(256 + k)
        k += 1
vocab = {chr(c): b for b, c in zip(bs, cs)}
merges = [["Å", "¿"], ["Å¿", "t"], ["'", "Å¿"], ["'", "S"], ["'", "s"]]
for a_, b_ in merges:
    vocab[a_ + b_] = len(vocab)
t2 = dict(tj, added_tokens=[], model=dict(tj["model"], vocab=vocab, merges=merges))
json.dump(t2, open(os.path.join(tiny, "tokenizer.json"), "w", encoding="utf-8"), ensure_ascii=False)
compare(tiny, ["x'\u017ft", "'\u017ft", "it'St", "a'st", "\u017ft'\u017f", "'\u017f'\u017ft x'St"])
# long runs (the regex JIT stack, BPE on very long words, canonical ordering of
# 10^5 combining marks) on the plain Dream tokenizer
compare(os.path.join(work, "dream"), [
    " " * 200000, "a" * 200000, "e" + "\u0301\u0323" * 50000 + " x", "\r\n" * 100000 + "x",
    "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(50000)), "!?" * 100000, "\t \n" * 50000,
    "1" * 100000, "'s" * 100000, "<|mask|>" * 20000])
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
