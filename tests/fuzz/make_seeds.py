#!/usr/bin/python3
"""make_seeds.py — the seed inputs of the fuzz corpora (tests/fuzz/corpus/TARGET/seed_*).

usage: make_seeds.py BUILD_DIR [--jobin-cases DIR] [--tokenizer-cases DIR]

Seeds are small well-formed inputs (and a few known-bad ones) from the project's
own writers and test corpora, so the fuzzer starts deep inside each parser:
  json, config, safetensors, ckpt: `diffu mkmodel` of a tiny model (hidden 8,
      1 layer, vocab 32; one file, and sharded into 3 with an index) and its files;
  tokenizer_load: the small tokenizer of tests/tokenizer/check_malformed.py
      (tests/fuzz/data/small_tokenizer) as tokenizer.json, as vocab.json +
      merges.txt, with a tokenizer_config.json; plus every case directory of
      check_malformed.py when --tokenizer-cases WORK/malformed is given;
  tokenizer_codec: code, Unicode, chat markup and special tokens; id arrays;
  jobin: the case files of tests/job/run_corpus.py (--jobin-cases WORK, those
      under 16 KiB) or a few hand-written lines; gzip in one and two members;
  jobresume: records as job_output writes them, torn tails, gzip members,
      a truncated and a corrupt member, a foreign line;
  proto: this build's own handshakes, reply, Control of every role, StepResult
      and Shutdown (written by fuzz_replay_proto with DIFFU_FUZZ_WRITE_SEEDS);
  args: option values and generate command lines;
  manifest: this build's own run manifests (fresh, another run, with a history
      entry, after another diffu build; written by fuzz_replay_manifest with
      DIFFU_FUZZ_WRITE_SEEDS), each once with allow_change off, one also with it on;
  inflight: this build's own in-flight checkpoints (empty, 3 canvases at steps
      0 / 5 / 17, block decoding; fuzz_replay_inflight with DIFFU_FUZZ_WRITE_SEEDS).
Existing seed_* files are replaced; other corpus files (fuzzer finds, crash
regressions) are kept. Regenerate: python3 tests/fuzz/make_seeds.py build
"""
import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed_" + name), "wb") as f:
        f.write(data)


def container(files):
    """The "@@FILE name" container of fuzz_common.h."""
    out = b""
    for i, (name, data) in enumerate(files):
        if isinstance(data, str):
            data = data.encode()
        out += (b"\n" if i else b"") + b"@@FILE " + name.encode() + b"\n" + data
    return out


def main():
    build = sys.argv[1]
    args = sys.argv[2:]
    opt = {args[i]: args[i + 1] for i in range(0, len(args) - 1, 2)}
    diffu = os.path.join(build, "bin", "diffu")
    for t in os.listdir(CORPUS) if os.path.isdir(CORPUS) else []:
        for f in os.listdir(os.path.join(CORPUS, t)):
            if f.startswith("seed_"):
                os.remove(os.path.join(CORPUS, t, f))
    tmp = tempfile.mkdtemp(prefix="diffu-seeds-")
    try:
        one, sh = os.path.join(tmp, "one"), os.path.join(tmp, "sh")
        common = ["--preset", "tiny", "--hidden", "8", "--layers", "1", "--heads", "2", "--kv-heads", "1", "--inter",
                  "16", "--vocab", "32", "--tokenizer", "none"]
        subprocess.run([diffu, "mkmodel", "--out", one] + common, check=True, stderr=subprocess.DEVNULL)
        subprocess.run([diffu, "mkmodel", "--out", sh, "--shard-size", "1K"] + common, check=True,
                       stderr=subprocess.DEVNULL)
        rd = lambda *p: open(os.path.join(*p), "rb").read()
        cfg, st = rd(one, "config.json"), rd(one, "model.safetensors")
        idx = rd(sh, "model.safetensors.index.json")
        shards = sorted(f for f in os.listdir(sh) if f.startswith("model-"))
        # config
        put("config", "tiny", cfg)
        c = json.loads(cfg)
        c2 = dict(c, model_type="qwen2", head_dim=c["hidden_size"] // c["num_attention_heads"])
        put("config", "qwen2_head_dim", json.dumps(c2, indent=1))
        c3 = dict(c, rope_scaling=None, tie_word_embeddings=True, bos_token_id=None)
        put("config", "nulls_tied", json.dumps(c3))
        # safetensors
        put("safetensors", "tiny", st)
        (n,) = struct.unpack("<Q", st[:8])
        put("safetensors", "header_only", st[:8 + n])
        h = json.loads(st[8:8 + n])
        h["__metadata__"] = {"format": "pt"}
        hb = json.dumps(h).encode()
        hb += b" " * (-(8 + len(hb)) % 8)
        put("safetensors", "metadata", struct.pack("<Q", len(hb)) + hb + st[8 + n:])
        put("safetensors", "empty_header", struct.pack("<Q", 2) + b"{}")
        # ckpt
        put("ckpt", "single", container([("config.json", cfg), ("model.safetensors", st)]))
        put("ckpt", "sharded", container([("config.json", cfg), ("model.safetensors.index.json", idx)] +
                                         [(f, rd(sh, f)) for f in shards]))
        put("ckpt", "index_only", container([("config.json", cfg), ("model.safetensors.index.json", idx)]))
        # json
        put("json", "config", cfg)
        put("json", "index", idx)
        put("json", "st_header", st[8:8 + n])
        put("json", "strings", r'["a\"b\\c\/d\b\f\n\r\t", "\u00e9\ud83d\ude00", "\u0000x", "h\u00e9 — ✓"]')
        put("json", "numbers", "[0, -0, 1e308, -1.5e-7, 123456789012345678901234567890, 9007199254740993, 1E+2, 0.5]")
        put("json", "nested", '{"a": {"b": [[[{"c": null}]]], "d": true, "e": false}, "a": 1}')
        put("json", "jsonl_line", '{"id": "x1", "prompt": "def f():\\n", "max_new_tokens": 32, "temperature": 0.2}')
        # tokenizer_load
        tj = rd(HERE, "data", "small_tokenizer", "tokenizer.json")
        tcfg = json.dumps({"bos_token": None, "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                           "mask_token": "<|mask|>", "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
                           "added_tokens_decoder": {}})
        put("tokenizer_load", "tokenizer_json", tj)
        put("tokenizer_load", "with_config", container([("tokenizer.json", tj), ("tokenizer_config.json", tcfg)]))
        t = json.loads(tj)
        vocab = t["model"]["vocab"]
        merges = "#version: 0.2\n" + "".join((m if isinstance(m, str) else " ".join(m)) + "\n" for m in t["model"]["merges"])
        added = {a["content"]: a["id"] for a in t.get("added_tokens", [])}
        put("tokenizer_load", "legacy", container([("vocab.json", json.dumps(vocab, ensure_ascii=False)),
                                                   ("merges.txt", merges), ("added_tokens.json", json.dumps(added)),
                                                   ("tokenizer_config.json", tcfg)]))
        tc = opt.get("--tokenizer-cases")
        if tc and os.path.isdir(tc):
            for case in sorted(os.listdir(tc)):
                d = os.path.join(tc, case)
                if not os.path.isdir(d) or case == "valid":
                    continue
                files = [(f, rd(d, f)) for f in sorted(os.listdir(d)) if os.path.isfile(os.path.join(d, f))]
                if files and sum(len(b) for _, b in files) < 16384:
                    put("tokenizer_load", "case_" + case, container(files))
        # tokenizer_codec: byte 0 even = encode text, odd = decode int32 ids
        texts = {
            "code": "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
            "chat": "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
                    "<|im_start|>assistant\n<|mask|><|mask|><|endoftext|>",
            "unicode": "héllo wörld — 日本語 🙂 e\u0301 \u212b ﬁ",
            "spaces": "  \t\n\n   x  \r\n'll 've 123456 !!!",
            "invalid_utf8": b"ok \xff\xfe \xc3 \xe2\x82 \xf0\x9f\x98 \xed\xa0\x80 end",
        }
        for k, v in texts.items():
            put("tokenizer_codec", "enc_" + k, b"\x00" + (v.encode() if isinstance(v, str) else v))
        ids = [0, 1, 2, 100, 151643, 151644, 151645, 151665, 151666, 151667, 999999, -1, 33, 220, 198]
        put("tokenizer_codec", "dec_ids", b"\x01" + struct.pack("<%di" % len(ids), *ids))
        split = [20, 150, 226, 32, 98, 99]  # UTF-8 split across ids in the small and the Qwen vocabularies
        put("tokenizer_codec", "dec_split", b"\x01" + struct.pack("<%di" % len(split), *split))
        # jobin
        jc = opt.get("--jobin-cases")
        n_job = 0
        if jc and os.path.isdir(jc):
            for f in sorted(os.listdir(jc)):
                p = os.path.join(jc, f)
                if ".rejects" in f or not os.path.isfile(p) or os.path.getsize(p) > 16384:
                    continue
                put("jobin", "case_" + f.replace(".", "_"), rd(p))
                n_job += 1
        lines = ('{"id": "a", "prompt": "def f():\\n"}\n'
                 '{"task_id": 7, "prompt": "x", "n": 2, "temperature": 0.5, "top_p": 0.9, "alg": "entropy"}\n'
                 '{"id": "c", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},'
                 ' {"role": "assistant", "content": "p"}], "steps": 8, "max_new_tokens": 16, "block_length": 8}\n'
                 '{"id": "d", "prompt": "y", "entry_point": "f", "test": "assert 1", "metadata": {"k": [1]}}\n')
        put("jobin", "mixed", lines)
        put("jobin", "crlf_bom_blank", "\ufeff" + lines.replace("\n", "\r\n") + "\r\n  \r\n")
        put("jobin", "gz_one", gzip.compress(lines.encode(), mtime=0))
        put("jobin", "gz_two", gzip.compress(lines.encode()[:40], mtime=0) + gzip.compress(lines.encode()[40:], mtime=0))
        put("jobin", "gz_truncated", gzip.compress(lines.encode(), mtime=0)[:-12])
        # jobresume
        recs = [json.dumps({"id": "a", "sample": 0, "completion": "x", "params": {"steps": 8}}),
                json.dumps({"id": 7, "sample": 1, "completion": "y\n"}),
                json.dumps({"id": "a", "sample": 0, "completion": "dup"})]
        plain = "".join(r + "\n" for r in recs)
        put("jobresume", "plain", plain)
        put("jobresume", "torn_tail", plain + recs[0][:17])
        put("jobresume", "task_id", json.dumps({"task_id": "HumanEval/0", "sample": 0, "completion": "c"}) + "\n")
        put("jobresume", "foreign_line", plain + "not json\n" + recs[1] + "\n")
        members = b"".join(gzip.compress((r + "\n").encode(), mtime=0) for r in recs)
        empty = gzip.compress(b"", mtime=0)
        put("jobresume", "gz_members", empty + members)
        put("jobresume", "gz_torn", empty + members + gzip.compress((recs[0] + "\n").encode(), mtime=0)[:-9])
        bad = bytearray(gzip.compress((recs[1] + "\n").encode(), mtime=0))
        bad[-6] ^= 0xFF  # CRC
        put("jobresume", "gz_bad_crc_tail", empty + members + bytes(bad))
        put("jobresume", "gz_no_newline", empty + gzip.compress(recs[0].encode(), mtime=0))
        # proto (the harness writes this build's own messages)
        pdir = os.path.join(tmp, "proto")
        os.makedirs(pdir)
        trig = os.path.join(tmp, "trigger")
        open(trig, "wb").write(b"\x03\x00")
        subprocess.run([os.path.join(build, "tests", "fuzz", "fuzz_replay_proto"), trig], check=True,
                       env=dict(os.environ, DIFFU_FUZZ_WRITE_SEEDS=pdir), stdout=subprocess.DEVNULL)
        for f in sorted(os.listdir(pdir)):
            put("proto", f, rd(pdir, f))
        # manifest (the harness writes this build's own manifests: byte 0 = allow_change, then the file)
        mdir = os.path.join(tmp, "manifest")
        os.makedirs(mdir)
        subprocess.run([os.path.join(build, "tests", "fuzz", "fuzz_replay_manifest"), trig], check=True,
                       env=dict(os.environ, DIFFU_FUZZ_WRITE_SEEDS=mdir), stdout=subprocess.DEVNULL)
        for f in sorted(os.listdir(mdir)):
            put("manifest", f, rd(mdir, f))
        # inflight (the harness writes this build's own in-flight checkpoints)
        idir = os.path.join(tmp, "inflight")
        os.makedirs(idir)
        subprocess.run([os.path.join(build, "tests", "fuzz", "fuzz_replay_inflight"), trig], check=True,
                       env=dict(os.environ, DIFFU_FUZZ_WRITE_SEEDS=idir), stdout=subprocess.DEVNULL)
        for f in sorted(os.listdir(idir)):
            put("inflight", f.replace(".inflight", ""), rd(idir, f))
        # args: byte 0 = 0 int, 1 double, 2 size, 3 list, 4 generate command line (words split at '\n')
        for k, (mode, s) in enumerate([(0, "42"), (0, "-0x10"), (1, "1e-3"), (1, "inf"), (2, "512M"), (2, "1.5kB"),
                                       (3, "1,2,30"), (3, "4,,5")]):
            put("args", "%d_%d" % (mode, k), bytes([mode]) + s.encode())
        gens = ["--model\nm\n--prompt\nhello\n--max-new-tokens\n64\n--steps\n32\n--temperature\n0.4\n--top-p\n0.95"
                "\n--alg\nentropy\n--seed\n7\n--n\n2",
                "--model\nm\n--prompt-ids\n1, 2,3\n--block-length\n8\n--threshold\n0.9\n--early-stop\n--end-id\n5",
                "--model\nm\n--input\nin.jsonl\n--output\nout.jsonl.gz\n--pp\n2\n--tp\n1\n--microbatches\n4\n"
                "--max-active\n16\n--spread\n2\n--comm-timeout\n30\n--head-rows\n0.5\n--strict\n--format\nevalplus",
                "--chat\n--system\nS\n--prefill\nP\n--eval-prefill\n--threads\n2\n--alg-temp\n0.1\n--eps\n1e-3\n"
                "--factor\n1.0\n--top-k\n5"]
        for k, g in enumerate(gens):
            put("args", "gen_%d" % k, b"\x04" + g.encode())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for t in sorted(os.listdir(CORPUS)):
        fs = os.listdir(os.path.join(CORPUS, t))
        print("%-16s %3d seeds, %3d files, %7d bytes" % (
            t, sum(f.startswith("seed_") for f in fs), len(fs),
            sum(os.path.getsize(os.path.join(CORPUS, t, f)) for f in fs)))


if __name__ == "__main__":
    main()
