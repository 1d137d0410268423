#!/usr/bin/python3
"""Generation throughput: one process vs the pipeline vs tensor parallelism.

usage: bench_generate.py --bin build/bin/diffu --model DIR [--requests 16] [--prompt-len 16]
                         [--new 256] [--steps 64] [--reps 1] [--configs 1x1,1x2,pp2,tp2]
                         [--extra "--alg entropy"] [--log DIR]

Runs the configurations side by side, ALTERNATING rep by rep (so that other load on the
machine hits all of them alike), each on the same REQUESTS prompts of PROMPT_LEN random
token ids (fixed seed) with NEW generated tokens in STEPS denoising steps:
  1x1  diffu generate --threads 1                       (one rank, one thread)
  1x2  diffu generate --threads 2                       (one rank, two threads)
  pp2  mpirun -np 2 diffu generate --pp 2 --threads 1   (two pipeline stages, one thread each)
  tp2  mpirun -np 2 diffu generate --tp 2 --threads 1   (two tensor-parallel ranks, one thread each)
Throughput = generated tokens / the generate phase's wall time (model loading excluded),
as each run reports it on its "[timing]" line (generate seconds). Prints every run, then per configuration the
median (and min-max) tokens/s and the ratios the issue asks for, the pipeline's per-stage
busy / idle (bubble) and bytes per microbatch from the run's summary, and the load average
(1 min) before each run (it includes the previous run of this script: a 2-thread run leaves
about 2). Also checks that every configuration generated the same tokens as
1x1 (temperature 0: identical for pipelines, expected for TP). Needs only the standard
library; run as root it sets OMPI_ALLOW_RUN_AS_ROOT*.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

CONFIGS = {
    "1x1": ("1 rank x 1 thread", [], ["--threads", "1"]),
    "1x2": ("1 rank x 2 threads", [], ["--threads", "2"]),
    "pp2": ("PP=2 (2 ranks x 1 thread)", ["mpirun", "-np", "2"], ["--pp", "2", "--threads", "1"]),
    "tp2": ("TP=2 (2 ranks x 1 thread)", ["mpirun", "-np", "2"], ["--tp", "2", "--threads", "1"]),
    "pp2tp1x2": ("PP=2 x 2 threads (2 ranks, unbound)", ["mpirun", "-np", "2", "--bind-to", "none"],
                 ["--pp", "2", "--threads", "2"]),
}


def prompts(n, length, seed=20250611, vocab=151643):
    x = seed
    out = []
    for _ in range(n):
        ids = []
        for _ in range(length):
            x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
            ids.append((x >> 33) % vocab)
        out.append(ids)
    return out


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def run(cfg, args, log_dir, rep):
    label, launcher, opts = CONFIGS[cfg]
    cmd = launcher + [args.bin, "generate", "--model", args.model, "--max-new-tokens", str(args.new),
                      "--steps", str(args.steps), "--emit-ids"] + opts + args.extra.split()
    for p in prompts(args.requests, args.prompt_len):
        cmd += ["--prompt-ids", ",".join(map(str, p))]
    la = loadavg()
    t0 = time.time()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.time() - t0
    if log_dir:
        with open(os.path.join(log_dir, "%s.rep%d.log" % (cfg, rep)), "w") as f:
            f.write("$ " + " ".join(cmd[:12]) + " ...\n" + r.stderr)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        sys.exit("%s failed with exit status %d" % (cfg, r.returncode))
    m = re.search(r"\[timing\].*generate ([0-9.]+) s.*; ([0-9.]+) generated tokens/s", r.stderr)
    if not m:
        sys.exit("%s: no [timing] line in its output" % cfg)
    summary = [l for l in r.stderr.splitlines() if re.search(r"summary:|  stage \d|point-to-point|coordinator \(", l)]
    gen_s = float(m.group(1))
    tps = args.requests * args.new / gen_s if gen_s > 0 else float(m.group(2)) # the [timing] field has 1 decimal
    return {"cfg": cfg, "gen_s": gen_s, "tps": tps, "load": la, "wall": wall,
            "out": r.stdout, "summary": summary}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--prompt-len", type=int, default=16)
    ap.add_argument("--new", type=int, default=256)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--configs", default="1x1,1x2,pp2,tp2")
    ap.add_argument("--extra", default="", help="more generate options for every configuration")
    ap.add_argument("--log", default="", help="directory for each run's stderr")
    args = ap.parse_args()
    if os.geteuid() == 0:
        os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    if args.log:
        os.makedirs(args.log, exist_ok=True)
    cfgs = args.configs.split(",")
    for c in cfgs:
        if c not in CONFIGS:
            sys.exit("unknown configuration %s (one of %s)" % (c, ", ".join(CONFIGS)))
    print("bench generate: %s, %d requests x (%d prompt + %d new tokens), %d steps; configurations %s; %d rep(s),"
          " alternating" % (args.model, args.requests, args.prompt_len, args.new, args.steps, ", ".join(cfgs),
                            args.reps), flush=True)
    res = {c: [] for c in cfgs}
    for rep in range(args.reps):
        order = cfgs if rep % 2 == 0 else cfgs[::-1]
        for c in order:
            r = run(c, args, args.log, rep)
            res[c].append(r)
            print("rep %d %-4s %-36s generate %8.1f s  %7.2f tokens/s  (load average before: %.2f)" %
                  (rep + 1, c, CONFIGS[c][0], r["gen_s"], r["tps"], r["load"]), flush=True)
    med = {c: statistics.median(r["tps"] for r in res[c]) for c in cfgs}
    print("\n%-4s %-36s %14s %18s %10s" % ("", "configuration", "median tok/s", "min - max", "load avg"))
    for c in cfgs:
        t = [r["tps"] for r in res[c]]
        print("%-4s %-36s %14.2f %8.2f - %7.2f %10s" % (c, CONFIGS[c][0], med[c], min(t), max(t),
                                                         ",".join("%.2f" % r["load"] for r in res[c])))
    print()
    ratios = [("pp2", "1x1", 1.7), ("pp2", "1x2", 0.95), ("tp2", "1x1", 1.5), ("1x2", "1x1", None),
              ("tp2", "1x2", None)]
    for a, b, bar in ratios:
        if a in med and b in med:
            print("ratio %s / %s = %.3f%s" % (a, b, med[a] / med[b], "   (target >= %.2f: %s)" % (
                bar, "met" if med[a] / med[b] >= bar else "NOT met") if bar else ""))
    ref = res.get("1x1") or res[cfgs[0]]
    for c in cfgs:
        same = all(r["out"] == ref[0]["out"] for r in res[c])
        print("tokens of %s: %s the 1x1 run's" % (c, "identical to" if same else "DIFFERENT from"))
    for c in cfgs:
        if res[c][0]["summary"]:
            print("\n%s (rep 1) summary:" % c)
            for l in res[c][0]["summary"]:
                print("  " + l)


if __name__ == "__main__":
    main()
