#!/usr/bin/env python3
"""make_legacy.py DREAM_DIR OUT_DIR — the same tokenizer in the slow-tokenizer
layout a checkpoint may ship instead of tokenizer.json: vocab.json,
merges.txt ("#version: 0.2" then "left right" per line), added_tokens.json
(content -> id) and the same tokenizer_config.json. diffu's fallback loader
must give identical ids from it."""
import json
import os
import shutil
import sys

src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
with open(os.path.join(src, "tokenizer.json"), encoding="utf-8") as f:
    tj = json.load(f)
model = tj["model"]
with open(os.path.join(out, "vocab.json"), "w", encoding="utf-8") as f:
    json.dump(model["vocab"], f, ensure_ascii=False)
with open(os.path.join(out, "merges.txt"), "w", encoding="utf-8") as f:
    f.write("#version: 0.2\n")
    for m in model["merges"]:
        a, b = m if isinstance(m, list) else m.split(" ")
        assert " " not in a and " " not in b, "a merge token with a space cannot go to merges.txt"
        f.write(f"{a} {b}\n")
with open(os.path.join(out, "added_tokens.json"), "w", encoding="utf-8") as f:
    json.dump({t["content"]: t["id"] for t in tj["added_tokens"]}, f, ensure_ascii=False, indent=2)
shutil.copy(os.path.join(src, "tokenizer_config.json"), os.path.join(out, "tokenizer_config.json"))
