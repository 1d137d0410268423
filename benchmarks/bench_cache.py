#!/usr/bin/python3
"""KV-cache modes side by side: none / prefix / dual / delayed, each without and with a
confidence threshold, on the same requests (issue 13).

usage: bench_cache.py --bin build/bin/diffu --model LABEL=DIR [--model LABEL=DIR ...]
                      [--workloads 8x256,4x512] [--prompt-len 16] [--block 32]
                      [--steps-per-token 1] [--thresholds 0,0.9] [--delayed-refresh 8]
                      [--threads 2] [--reps 1] [--extra "..."] [--pp 1,2]

Every configuration is one `diffu generate` run (one process, or with --pp P under
`mpirun -np P ... --pp P`, the stages holding the cache, THREADS / P threads per rank) of R requests of PROMPT_LEN random token ids (fixed seed, ids below the
model's special tokens) with N new tokens in blocks of BLOCK, alg entropy, temperature 0;
steps = N x steps-per-token when no threshold is set (1: Dream's one token per step).
The configurations of one workload alternate rep by rep (other load hits them alike).
Reported per run, from diffu's own lines: forwards (microbatches; one microbatch holds
every request's step), rows through the forward and GFLOP per generated token ("[timing]
work:"), generated tokens / the generate phase's seconds ("[timing]"), the KV cache's
memory ("memory plan: kv cache"), and the share of generated tokens equal to `none`'s
(same workload, same threshold). Prints a markdown table (medians over reps) with the
speed-up of each mode over none at the same threshold. Needs only the standard library.
"""
import argparse
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_generate import prompts  # noqa: E402  (the same fixed-seed random prompts)


def plain_vocab(model):
    """Ids below every special token: the config's bos/eos/pad/mask ids and vocab_size."""
    with open(os.path.join(model, "config.json")) as f:
        c = json.load(f)
    ids = [c.get(k) for k in ("bos_token_id", "eos_token_id", "pad_token_id", "mask_token_id")]
    ids = [i for i in ids if isinstance(i, int)]
    return min(ids + [c["vocab_size"]]) if ids else c["vocab_size"]


def one(a, model, R, N, mode, tau, pp=1):
    """One run; pp > 1: under `mpirun -np pp ... --pp pp` (the stages hold the cache), threads per rank
    a.threads // pp (the same cores)."""
    ids = prompts(R, a.prompt_len, seed=20251206, vocab=plain_vocab(model))
    th = max(1, a.threads // pp)
    launch = ["mpirun", "-np", str(pp), "--oversubscribe", "--bind-to", "none"] if pp > 1 else []
    cmd = launch + [a.bin, "generate", "--model", model, "--threads", str(th), "--max-new-tokens", str(N),
           "--block-length", str(a.block), "--alg", "entropy", "--temperature", "0", "--cache", mode, "--emit-ids"]
    if mode == "delayed":
        cmd += ["--cache-refresh", str(a.delayed_refresh)]
    cmd += ["--threshold", str(tau)] if tau > 0 else ["--steps", str(max(1, int(N * a.steps_per_token)))]
    cmd += a.extra.split()
    if pp > 1:
        cmd += ["--pp", str(pp), "--verbose"]  # (--verbose: the stages print their cache's plan line)
    for p in ids:
        cmd += ["--prompt-ids", ",".join(map(str, p))]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr[-3000:])
        sys.exit("bench_cache.py: %s %dx%d %s tau %g failed (%d)" % (model, R, N, mode, tau, r.returncode))
    t = re.search(r"\[timing\].*generate ([0-9.]+) s: (\d+) microbatches", r.stderr)
    w = re.search(r"\[timing\] work: (\d+) rows through the forward, ([0-9.]+) per generated token(?:; ([0-9.]+) GFLOP)?",
                  r.stderr)
    # the cache's memory: the one process's plan line, or the largest stage's (every rank prints its own)
    mem = [float(x) for x in re.findall(r"memory plan: kv cache .* = ([0-9.]+) MiB", r.stderr)]
    if not t or not w:
        sys.exit("bench_cache.py: no [timing] lines in the output of " + " ".join(cmd[:14]))
    gen_s = float(t.group(1))
    return {"s": gen_s, "tps": R * N / gen_s if gen_s > 0 else 0.0, "forwards": int(t.group(2)),
            "rows_tok": float(w.group(2)), "gflop_tok": float(w.group(3)) if w.group(3) else None,
            "mem": max(mem) if mem else 0.0,
            "ids": [l for l in r.stdout.split("\n") if l.strip()], "cmd": " ".join(cmd[:cmd.index("--prompt-ids")]) + " --prompt-ids ..."}


def agree(a, b):
    same = tot = 0
    for x, y in zip(a, b):
        u, v = x.split(","), y.split(",")
        same += sum(p == q for p, q in zip(u, v))
        tot += len(v)
    return same / tot if tot else 0.0


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for l in f:
                if l.startswith("model name"):
                    return l.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--model", action="append", required=True, help="LABEL=DIR")
    ap.add_argument("--workloads", default="8x256,4x512")
    ap.add_argument("--prompt-len", type=int, default=16)
    ap.add_argument("--block", type=int, default=32)
    ap.add_argument("--steps-per-token", type=float, default=1.0)
    ap.add_argument("--thresholds", default="0,0.9")
    ap.add_argument("--modes", default="none,prefix,dual,delayed")
    ap.add_argument("--delayed-refresh", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--extra", default="")
    ap.add_argument("--pp", default="1", help="comma list of layouts: 1 = one process, P = mpirun -np P --pp P")
    a = ap.parse_args()
    pps = [int(x) for x in a.pp.split(",")]
    modes = a.modes.split(",")
    taus = [float(x) for x in a.thresholds.split(",")]
    print("CPU: %s, %d threads in all; layouts: %s; %s" % (
        cpu_name(), a.threads, ", ".join("one process" if p == 1 else "mpirun --pp %d" % p for p in pps),
        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())))
    print("Command: `%s`\n" % " ".join(shlex.quote(x) for x in ["benchmarks/bench_cache.py"] + sys.argv[1:]))
    for spec in a.model:
        label, model = spec.split("=", 1)
        for wl in a.workloads.split(","):
            R, N = map(int, wl.split("x"))
            res = {}
            for rep in range(a.reps):
                for tau in taus:
                    for mode in modes:
                        for pp in pps:  # side by side: the layouts of a mode one after the other
                            x = one(a, model, R, N, mode, tau, pp)
                            res.setdefault((mode, tau, pp), []).append(x)
                            print("  %s %s rep %d pp %d %s tau %g: %.2f s, %.1f tokens/s" % (
                                label, wl, rep, pp, mode, tau, x["s"], x["tps"]), file=sys.stderr)
            print("#### %s, %d requests x %d new tokens (prompts of %d), block %d\n" % (label, R, N, a.prompt_len,
                                                                                      a.block))
            print("example: `%s`\n" % res[(modes[-1], taus[-1], pps[-1])][0]["cmd"])
            print("| layout | mode | threshold | forwards | rows / token | GFLOP / token | tokens/s | vs none |"
                  " KV cache MiB | tokens as none |")
            print("|---|---|---|---|---|---|---|---|---|---|")
            for pp in pps:
                for tau in taus:
                    key0 = ("none", tau, pp)
                    base = statistics.median(x["tps"] for x in res[key0]) if key0 in res else None
                    for mode in modes:
                        xs = res[(mode, tau, pp)]
                        tps = statistics.median(x["tps"] for x in xs)
                        ag = agree(xs[0]["ids"], res[key0][0]["ids"]) if key0 in res else float("nan")
                        g = xs[0]["gflop_tok"]
                        print("| %s | %s | %s | %d | %.1f | %s | %.1f | %s | %.1f | %.3f |" % (
                            "one process, %d threads" % a.threads if pp == 1 else
                            "mpirun --pp %d, %d thread(s) per rank" % (pp, max(1, a.threads // pp)),
                            mode, ("%g" % tau) if tau > 0 else "off (steps %d)" % max(1, int(N * a.steps_per_token)),
                            xs[0]["forwards"], xs[0]["rows_tok"], "%.3f" % g if g is not None else "-", tps,
                            ("%.2fx" % (tps / base)) if base else "-", xs[0]["mem"], ag))
            print()


if __name__ == "__main__":
    main()
