#!/usr/bin/env python3
"""train/bpe.py — a byte-level BPE trainer written for this project, and the Dream tokenizer files.

    python3 train/bpe.py DATA_DIR OUT_DIR [--vocab 8192] [--sample-mb 24]

Trains on the train split only (a deterministic sample of DATA_DIR/train_code.jsonl, every
k-th file, plus the train pairs). Pre-tokenization during training approximates the Qwen2 regex
with Python's `re` (\\p{L} ~ [^\\W\\d_], \\p{N} ~ \\d: identical on ASCII, which code is); the files
written use the exact Qwen2 pre-tokenizer, so diffu and Hugging Face read them the same way.
BPE: GPT-2 byte-to-unicode alphabet (256 base symbols), then repeatedly merge the most frequent
adjacent pair (ties: the lexicographically smallest pair) within words, until
vocab - len(SPECIALS) entries. Dream's special tokens follow the base vocabulary.

Writes OUT/tokenizer.json, OUT/tokenizer_config.json (with DiffuCoder's chat template) and
OUT/special_tokens_map.json.
"""
import argparse
import collections
import heapq
import json
import os
import re
import sys

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|beginoftext|>", "<|mask|>", "<|dlm_pad|>"]
QWEN2_REGEX = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
               "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
PY_REGEX = re.compile(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|(?:[^\r\n\w]|_)?[^\W\d_]+|\d| ?(?:[^\s\w]|_)+[\r\n]*|"
                      r"\s*[\r\n]+|\s+(?!\S)|\s+")
# DiffuCoder-Instruct's chat template (system default, user content stripped, newline before <|im_end|>)
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '<|im_start|>user\\n' + message['content'] | trim + '\\n<|im_end|>\\n' }}"
    "{% else %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


B2U = bytes_to_unicode()


def word_counts(texts):
    c = collections.Counter()
    for t in texts:
        for s in SPECIALS:
            t = t.replace(s, " ")
        c.update(PY_REGEX.findall(t))
    return c


def train_bpe(counts, n_tokens, log_every=1000):
    words = []
    freqs = []
    for w, f in counts.items():
        words.append([B2U[b] for b in w.encode("utf-8")])
        freqs.append(f)
    pair_count = collections.Counter()
    where = collections.defaultdict(set)
    for i, w in enumerate(words):
        f = freqs[i]
        for a, b in zip(w, w[1:]):
            pair_count[(a, b)] += f
            where[(a, b)].add(i)
    heap = [(-c, p) for p, c in pair_count.items()]
    heapq.heapify(heap)
    merges = []
    tokset = set(B2U.values())
    while len(tokset) < n_tokens and heap:
        negc, pair = heapq.heappop(heap)
        c = pair_count.get(pair, 0)
        if c <= 0:
            continue
        if -negc != c:
            heapq.heappush(heap, (-c, pair))
            continue
        merges.append(pair)
        a, b = pair
        new = a + b
        tokset.add(new)
        changed = set()
        for i in list(where[pair]):
            w = words[i]
            f = freqs[i]
            if len(w) < 2:
                continue
            j = 0
            out = []
            # remove old pair counts of this word, re-add after merge
            for x, y in zip(w, w[1:]):
                pair_count[(x, y)] -= f
                changed.add((x, y))
            while j < len(w):
                if j + 1 < len(w) and w[j] == a and w[j + 1] == b:
                    out.append(new)
                    j += 2
                else:
                    out.append(w[j])
                    j += 1
            words[i] = out
            for x, y in zip(out, out[1:]):
                pair_count[(x, y)] += f
                where[(x, y)].add(i)
                changed.add((x, y))
        del pair_count[pair]
        where.pop(pair, None)
        for p in changed:
            c2 = pair_count.get(p, 0)
            if c2 > 0:
                heapq.heappush(heap, (-c2, p))
            elif p in pair_count:
                del pair_count[p]
        if log_every and len(merges) % log_every == 0:
            print("[bpe] %d merges (last %r count %d)" % (len(merges), new, c), file=sys.stderr)
    return merges


def write_files(out, merges, vocab_size):
    os.makedirs(out, exist_ok=True)
    vocab = {}
    for b in range(256):
        vocab[B2U[b]] = len(vocab)
    for a, b in merges:
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
    base = len(vocab)
    assert base + len(SPECIALS) == vocab_size, (base, vocab_size)
    added = [{"id": base + i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, s in enumerate(SPECIALS)]
    tok = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN2_REGEX}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": [[a, b] for a, b in merges]},
    }
    with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False)
    dec = {str(t["id"]): {k: t[k] for k in t if k != "id"} for t in added}
    cfg = {"add_bos_token": False, "add_prefix_space": False, "added_tokens_decoder": dec,
           "additional_special_tokens": ["<|im_start|>", "<|im_end|>", "<|dlm_pad|>"],
           "bos_token": "<|beginoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
           "mask_token": "<|mask|>", "unk_token": None, "chat_template": CHAT_TEMPLATE,
           "clean_up_tokenization_spaces": False, "errors": "replace", "model_max_length": 4096,
           "split_special_tokens": False, "tokenizer_class": "Qwen2Tokenizer"}
    with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=1, ensure_ascii=False)
    with open(os.path.join(out, "special_tokens_map.json"), "w") as f:
        json.dump({"bos_token": "<|beginoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                   "mask_token": "<|mask|>", "additional_special_tokens": ["<|im_start|>", "<|im_end|>",
                                                                           "<|dlm_pad|>"]}, f, indent=1)
    return {s: base + i for i, s in enumerate(SPECIALS)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("out")
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--sample-mb", type=float, default=24)
    a = ap.parse_args()
    rows = [json.loads(l) for l in open(os.path.join(a.data, "train_code.jsonl"))]
    total = sum(len(r["text"]) for r in rows)
    k = max(1, int(total / (a.sample_mb * 1e6)))
    texts = [r["text"] for r in rows[::k]]
    texts += [r["prompt"] + r["reply"] for r in map(json.loads, open(os.path.join(a.data, "train_pairs.jsonl")))][::k]
    print("[bpe] %d texts, %.1f MB" % (len(texts), sum(map(len, texts)) / 1e6), file=sys.stderr)
    counts = word_counts(texts)
    print("[bpe] %d distinct words" % len(counts), file=sys.stderr)
    merges = train_bpe(counts, a.vocab - len(SPECIALS))
    ids = write_files(a.out, merges, a.vocab)
    print(json.dumps(ids))


if __name__ == "__main__":
    main()
