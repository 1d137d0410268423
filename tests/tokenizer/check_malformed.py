#!/usr/bin/env python3
"""check_malformed.py DIFFU_BIN WORK_DIR — broken tokenizer files give ONE
line on stderr naming the file and what is wrong, exit status 1, no crash.
Each case mutates a small valid tokenizer (the 256 byte-level tokens, a few
merges, added tokens) written here; the valid one must load and encode."""
import json
import os
import shutil
import subprocess
import sys

diffu, work = sys.argv[1], os.path.join(sys.argv[2], "malformed")
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from checks import check, report  # noqa: E402  (tests/common/checks.py)


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


B2U = bytes_to_unicode()
vocab = {B2U[b]: b for b in range(256)}
merges = [["Ġ", "t"], ["h", "e"], ["Ġt", "he"], ["i", "n"]]
for a, b in merges:
    vocab[a + b] = len(vocab)
QWEN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
VALID = {
    "version": "1.0", "truncation": None, "padding": None,
    "added_tokens": [{"id": 260, "content": "<|endoftext|>", "single_word": False, "lstrip": False, "rstrip": False,
                      "normalized": False, "special": True},
                     {"id": 261, "content": "<|mask|>", "single_word": False, "lstrip": False, "rstrip": False,
                      "normalized": False, "special": True}],
    "normalizer": {"type": "NFC"},
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": QWEN}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]},
    "post_processor": None,
    "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
    "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
              "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
              "vocab": vocab, "merges": merges},
}


def case(name, mutate=None, raw=None, files=None):
    d = os.path.join(work, name)
    os.makedirs(d)
    if files is not None:
        for fn, content in files.items():
            with open(os.path.join(d, fn), "wb") as f:
                f.write(content)
        return d
    if raw is None:
        t = json.loads(json.dumps(VALID))
        if mutate:
            mutate(t)
        raw = json.dumps(t, ensure_ascii=False).encode()
    with open(os.path.join(d, "tokenizer.json"), "wb") as f:
        f.write(raw)
    return d


def expect_error(name, want, **kw):
    d = case(name, **kw)
    p = subprocess.run([diffu, "tokenize", "--model", d], input=b"hello the world", capture_output=True)
    err = p.stderr.decode(errors="replace")
    lines = err.splitlines()
    ok = (p.returncode == 1 and len(lines) == 1 and lines[0].startswith("diffu tokenize: error: ")
          and want in lines[0] and name in lines[0])
    check(ok, f"{name}: want exit 1 and one line containing {want!r}; got exit {p.returncode}: {err!r}")
    if ok:
        print(f"ok   {name}: {lines[0]}")


# the valid base loads and encodes (" the" is merged by rank: Ġt + he)
d = case("valid")
p = subprocess.run([diffu, "tokenize", "--model", d], input=b"hello the <|mask|>", capture_output=True)
check(p.returncode == 0 and p.stdout.split()[-1] == b"261", f"valid tiny tokenizer: {p.stdout!r} {p.stderr!r}")
ids = p.stdout.split()
check(str(vocab["Ġthe"]).encode() in ids, "merges applied by rank")

expect_error("missing_model", "field 'model' is missing", mutate=lambda t: t.pop("model"))
expect_error("unknown_merge_token", "field 'model.merges[2]': merge names 'zz', which is not in the vocabulary",
             mutate=lambda t: t["model"]["merges"].insert(2, ["zz", "t"]))
expect_error("merged_token_not_in_vocab", "merge names 'ab', which is not in the vocabulary",
             mutate=lambda t: t["model"]["merges"].append(["a", "b"]))
expect_error("duplicate_ids", "field 'model.vocab': id 5 is given to both",
             mutate=lambda t: t["model"]["vocab"].__setitem__("Ġzz", 5))
nonutf8 = json.dumps(VALID, ensure_ascii=False).encode().replace(b'"in":', b'"i\xffn":', 1)
expect_error("non_utf8_vocab_entry", "invalid UTF-8", raw=nonutf8)
surrogate = json.dumps(VALID, ensure_ascii=False).encode().replace(b'"in":', b'"i\\udc80n":', 1)
expect_error("lone_surrogate_vocab_entry", "surrogate", raw=surrogate)
expect_error("duplicate_added_ids", "field 'added_tokens': id 260 is given to both",
             mutate=lambda t: t["added_tokens"].append(dict(t["added_tokens"][0], content="<|other|>")))
expect_error("added_without_id", "added_tokens[0]: field 'id' is missing",
             mutate=lambda t: t["added_tokens"][0].pop("id"))
expect_error("vocab_id_not_int", "field 'model.vocab': entry 'in' needs an id",
             mutate=lambda t: t["model"]["vocab"].__setitem__("in", "7"))
expect_error("vocab_not_object", "field 'model.vocab': expected an object",
             mutate=lambda t: t["model"].__setitem__("vocab", []))
expect_error("missing_merges", "field 'model.merges' is missing", mutate=lambda t: t["model"].pop("merges"))
expect_error("bad_merge_string", "field 'model.merges[1]': expected \"left right\"",
             mutate=lambda t: t["model"]["merges"].__setitem__(1, "he"))
expect_error("model_unigram", "field 'model.type': 'Unigram' is not supported",
             mutate=lambda t: t["model"].__setitem__("type", "Unigram"))
expect_error("normalizer_nfkc", "field 'normalizer': type 'NFKC' is not supported",
             mutate=lambda t: t.__setitem__("normalizer", {"type": "NFKC"}))
expect_error("no_decoder", "field 'decoder'", mutate=lambda t: t.__setitem__("decoder", None))
expect_error("bad_regex", "field 'pre_tokenizer.pattern': regex does not compile",
             mutate=lambda t: t["pre_tokenizer"]["pretokenizers"][0]["pattern"].__setitem__("Regex", "(a|"))
expect_error("truncated_json", "invalid JSON", raw=json.dumps(VALID).encode()[:2000])
expect_error("not_an_object", "expected a JSON object", raw=b"[1, 2, 3]")
expect_error("empty_dir", "no tokenizer.json (nor vocab.json + merges.txt)", files={})
bad_merges = "#version: 0.2\nĠ t\nh e\nq zz\n".encode()
expect_error("legacy_unknown_merge", "merges.txt: field 'merges[2]': merge names 'zz'",
             files={"vocab.json": json.dumps(vocab, ensure_ascii=False).encode(), "merges.txt": bad_merges})
expect_error("legacy_bad_line", "merges.txt: line 3: expected \"left right\"",
             files={"vocab.json": json.dumps(vocab, ensure_ascii=False).encode(),
                    "merges.txt": "#version: 0.2\nĠ t\nh e x\n".encode()})
sys.exit(report())
