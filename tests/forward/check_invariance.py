#!/usr/bin/python3
"""Batch invariance of the forward: a sequence's logits are bit for bit the
same alone, after other sequences in a ragged batch, and on 1 or 2 threads.

The denoising loop relies on this: a request must decode the same tokens
whatever else shares its microbatch (pipelining, continuous admission,
resume after a crash). Reference: the sequence run alone on 2 threads;
tolerance: exact equality (0 ulp).

usage: check_invariance.py DIFFU_BIN [mkmodel options...]
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

BIN = sys.argv[1]
MK = sys.argv[2:]
fails = passes = 0


def run(model, ids, lengths, threads):
    with tempfile.TemporaryDirectory() as d:
        np.asarray(ids, dtype="<i4").tofile(f"{d}/ids.bin")
        subprocess.run([BIN, "logits", "--model", model, "--ids", f"{d}/ids.bin", "--out", f"{d}/out.bin",
                        "--lengths", ",".join(map(str, lengths)), "--threads", str(threads)],
                       check=True, stderr=subprocess.DEVNULL)
        return np.fromfile(f"{d}/out.bin", dtype="<f4").reshape(len(ids), -1)


with tempfile.TemporaryDirectory() as tmp:
    model = f"{tmp}/m"
    subprocess.run([BIN, "mkmodel", "--preset", "tiny", "--out", model] + MK, check=True, stderr=subprocess.DEVNULL)
    import json
    vocab = json.load(open(f"{model}/config.json"))["vocab_size"]
    rng = np.random.default_rng(11)
    a = rng.integers(0, vocab, 9).tolist()
    others = [rng.integers(0, vocab, n).tolist() for n in (13, 1, 30, 16)]
    alone = run(model, a, [9], 2)
    cases = [("alone, 1 thread", a, [9], 1, 0)]
    cases.append(("after 13 tokens", others[0] + a, [13, 9], 2, 13))
    cases.append(("after 13 tokens, 1 thread", others[0] + a, [13, 9], 1, 13))
    cases.append(("between 1 and 30 tokens", others[1] + a + others[2], [1, 9, 30], 2, 1))
    cases.append(("after 16 + 30 tokens", others[3] + others[2] + a, [16, 30, 9], 2, 46))
    cases.append(("first of 3", a + others[2] + others[0], [9, 30, 13], 1, 0))
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
