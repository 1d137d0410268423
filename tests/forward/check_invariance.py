#!/usr/bin/python3
"""Batch invariance of the forward: a sequence's logits are bit for bit the
same alone, after other sequences in a ragged batch, and on 1 or 2 threads.

The denoising loop relies on this: a request must decode the same tokens
whatever else shares its microbatch (pipelining, continuous admission,
resume after a crash). Reference: the sequence run alone on 2 threads;
tolerance: exact equality (0 ulp).

usage: check_invariance.py DIFFU_BIN [--precision P] [mkmodel options...]
  --precision fp32|bf16|int8 runs every `diffu logits` in that GEMM path (model/gemm.h);
  a path the CPU lacks is skipped with a message (exit 0). One case puts the sequence
  after 140 tokens, in the second M tile of the oneDNN paths (M tile 128).
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

BIN = sys.argv[1]
MK = sys.argv[2:]
PREC = []
if MK[:1] == ["--precision"]:
    PREC, MK = MK[:2], MK[2:]
fails = passes = 0


def run(model, ids, lengths, threads):
    with tempfile.TemporaryDirectory() as d:
        np.asarray(ids, dtype="<i4").tofile(f"{d}/ids.bin")
        subprocess.run([BIN, "logits", "--model", model, "--ids", f"{d}/ids.bin", "--out", f"{d}/out.bin",
                        "--lengths", ",".join(map(str, lengths)), "--threads", str(threads)] + PREC,
                       check=True, stderr=subprocess.DEVNULL)
        return np.fromfile(f"{d}/out.bin", dtype="<f4").reshape(len(ids), -1)


with tempfile.TemporaryDirectory() as tmp:
    model = f"{tmp}/m"
    subprocess.run([BIN, "mkmodel", "--preset", "tiny", "--out", model] + MK, check=True, stderr=subprocess.DEVNULL)
    import json
    vocab = json.load(open(f"{model}/config.json"))["vocab_size"]
    rng = np.random.default_rng(11)
    a = rng.integers(0, vocab, 9).tolist()
    others = [rng.integers(0, vocab, n).tolist() for n in (13, 1, 30, 16, 140)]
    if PREC:
        np.asarray([1], dtype="<i4").tofile(f"{tmp}/one.bin")
        r = subprocess.run([BIN, "logits", "--model", model, "--ids", f"{tmp}/one.bin", "--out", f"{tmp}/one.out"]
                           + PREC, stderr=subprocess.PIPE, text=True)
        if "which this CPU lacks" in r.stderr:
            print("SKIP: " + r.stderr.strip().splitlines()[-1])
            sys.exit(0)
    alone = run(model, a, [9], 2)
    cases = [("alone, 1 thread", a, [9], 1, 0)]
    cases.append(("after 13 tokens", others[0] + a, [13, 9], 2, 13))
    cases.append(("after 13 tokens, 1 thread", others[0] + a, [13, 9], 1, 13))
    cases.append(("between 1 and 30 tokens", others[1] + a + others[2], [1, 9, 30], 2, 1))
    cases.append(("after 16 + 30 tokens", others[3] + others[2] + a, [16, 30, 9], 2, 46))
    cases.append(("first of 3", a + others[2] + others[0], [9, 30, 13], 1, 0))
    cases.append(("after 140 tokens (second M tile)", others[4] + a, [140, 9], 2, 140))
    cases.append(("after 140 + 13 tokens, 1 thread", others[4] + others[0] + a, [140, 13, 9], 1, 153))
    for name, ids, lengths, threads, off in cases:
        got = run(model, ids, lengths, threads)[off:off + 9]
        if np.array_equal(got.view(np.uint32), alone.view(np.uint32)):
            passes += 1
            print(f"ok   {name}")
        else:
            fails += 1
            d = np.abs(got - alone).max()
            print(f"FAIL {name}: max |diff| {d:.3g}")
print(f"{passes} passed, {fails} failed")
sys.exit(1 if fails else 0)
