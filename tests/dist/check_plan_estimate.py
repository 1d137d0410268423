#!/usr/bin/python3
"""`diffu plan --dataset N --new-tokens L --steps S --rates FILE` against the closed form,
written here from the architecture (not from diffu's code): per forward of a canvas of
n = prompt + L tokens, 28 layers x (n x 2 x (q + k + v + o + gate + up + down weights) +
4 n^2 x heads x head_dim) + lm_head 2 x hidden x vocab on L/2 rows; the busiest job runs
ceil(N / jobs) samples of S forwards at rate x its cores x stage balance. Tolerance:
0.5% (diffu prints the wall time rounded to the second). Also the refusals: a missing
rate, a malformed rates line.
usage: check_plan_estimate.py DIFFU_BIN"""
import json
import math
import re
import subprocess
import sys
import tempfile

BIN = sys.argv[1]
fails = 0
with tempfile.TemporaryDirectory() as d:
    subprocess.run([BIN, "mkmodel", "--preset", "7b", "--config-only", "--out", f"{d}/m"], check=True,
                   stderr=subprocess.DEVNULL)
    c = json.load(open(f"{d}/m/config.json"))
    open(f"{d}/rates", "w").write("# test\ncpu test\nisa avx2\nthreads 2\ntokens 256\nmodel x\n"
                                  "forward_gflops_per_core.fp32 10\nforward_gflops_per_core.bf16 25\n")
    args = [BIN, "plan", "--model", f"{d}/m", "--config-only", "--nodes", "16", "--cores-per-node", "64",
            "--mem-per-node", "256", "--dataset", "164", "--new-tokens", "512", "--steps", "512",
            "--prompt-tokens", "150", "--rates", f"{d}/rates"]
    out = subprocess.run(args, check=True, stdout=subprocess.PIPE, text=True).stdout
    rec = re.search(r"recommended: --pp (\d+) --tp (\d+): (\d+) job\(s\) of (\d+) node", out)
    pp, tp, jobs, nodes = map(int, rec.groups())
    bal = 1.0
    m = re.search(r"stage balance ([0-9.]+)%", out)
    if pp > 1 and m:
        bal = float(m.group(1)) / 100
    H, nh, nkv, F, V, L = (c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"],
                           c["intermediate_size"], c["vocab_size"], c["num_hidden_layers"])
    hd = H // nh
    n = 150 + 512
    weights = H * nh * hd + 2 * H * nkv * hd + nh * hd * H + 3 * H * F
    fwd = L * (n * 2 * weights + 4 * n * n * nh * hd) + 2 * H * V * 256
    per_job = math.ceil(164 / jobs)
    want = per_job * 512 * fwd / (25e9 * nodes * 64 * bal)
    got = float(re.search(r"wall time: (\d+) s", out).group(1))
    ok = abs(got - want) <= 0.005 * want
    fails += not ok
    print(f"{'ok  ' if ok else 'FAIL'} bf16 (default: the file has it): wall {got:.0f} s, closed form {want:.0f} s"
          f" (pp {pp} tp {tp}, {jobs} jobs of {nodes} node(s), balance {bal})")
    out = subprocess.run(args + ["--precision", "fp32"], check=True, stdout=subprocess.PIPE, text=True).stdout
    got = float(re.search(r"wall time: (\d+) s", out).group(1))
    ok = abs(got - want * 2.5) <= 0.005 * want * 2.5
    fails += not ok
    print(f"{'ok  ' if ok else 'FAIL'} fp32: wall {got:.0f} s, closed form {want * 2.5:.0f} s")
    r = subprocess.run(args + ["--precision", "int8"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ok = r.returncode != 0 and "has no forward rate for int8" in r.stderr
    fails += not ok
    print(f"{'ok  ' if ok else 'FAIL'} int8 missing from the file is refused: {r.stderr.strip()}")
    open(f"{d}/rates", "a").write("bogus 1\n")
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ok = r.returncode != 0 and "rates:9: unknown line 'bogus 1'" in r.stderr
    fails += not ok
    print(f"{'ok  ' if ok else 'FAIL'} a malformed line is refused: {r.stderr.strip()}")
print(f"{4 - fails} passed, {fails} failed")
sys.exit(1 if fails else 0)
