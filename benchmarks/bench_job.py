#!/usr/bin/python3
"""Batch-job throughput: `diffu generate --input --output` at 1 and 2 ranks.

usage: bench_job.py --bin build/bin/diffu --model DIR [--input deploy/prompts/sample_tasks.jsonl]
                    [--tasks 10] [--new 64] [--steps 32] [--reps 1] [--configs 1x2,pp2] [--work DIR]

The job of the README's main job (the bundled HumanEval-style tasks, alg entropy, temperature 0.3,
top-p 0.95, seed 1), on the first TASKS tasks, in these configurations, ALTERNATING rep by rep:
  1x1  diffu generate --threads 1                        (1 rank, 1 thread)
  1x2  diffu generate --threads 2                        (1 rank, 2 threads)
  pp2  mpirun -np 2 --bind-to core diffu generate --pp 2 --threads 1   (2 ranks: 2 pipeline stages)
  tp2  mpirun -np 2 --bind-to core diffu generate --tp 2 --threads 1   (2 ranks: tensor parallel)
Each run starts from an empty output. Reported per run: the job's own final progress line
(generated tokens/s over its generate phase, forwards/s) and the wall time of the whole command
(model loading, tokenizer, MPI start-up included) -> records/min. Then medians per configuration
and the ratios to the first configuration. Also checks that every configuration wrote the same
completions (temperature 0.3 with keyed draws: the job is deterministic across layouts).
Standard library only; as root it sets OMPI_ALLOW_RUN_AS_ROOT*.
"""
import argparse
import gzip
import json
import os
import re
import statistics
import subprocess
import sys
import time

CONFIGS = {
    "1x1": ("1 rank x 1 thread", [], ["--threads", "1"]),
    "1x2": ("1 rank x 2 threads", [], ["--threads", "2"]),
    "pp2": ("2 ranks: PP=2 x 1 thread", ["mpirun", "-np", "2", "--bind-to", "core"], ["--pp", "2", "--threads", "1"]),
    "tp2": ("2 ranks: TP=2 x 1 thread", ["mpirun", "-np", "2", "--bind-to", "core"], ["--tp", "2", "--threads", "1"]),
}
FINAL = re.compile(r"samples (\d+)/(\d+), ([0-9.]+) tokens/s, ([0-9.]+) forwards/s.*elapsed (\d+) s")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--input", default=os.path.join(here, "..", "deploy", "prompts", "sample_tasks.jsonl"))
    ap.add_argument("--tasks", type=int, default=10)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--configs", default="1x2,pp2")
    ap.add_argument("--work", default="/tmp/diffu-bench-job")
    a = ap.parse_args()
    cfgs = a.configs.split(",")
    for c in cfgs:
        if c not in CONFIGS:
            sys.exit("unknown configuration %s (known: %s)" % (c, ", ".join(CONFIGS)))
    os.makedirs(a.work, exist_ok=True)
    inp = os.path.join(a.work, "in.jsonl")
    with open(a.input) as f, open(inp, "w") as g:
        lines = [l for l in f if l.strip()][: a.tasks]
        g.writelines(lines)
    if os.getuid() == 0:
        os.environ.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    print("bench job: %s, %d tasks of %s, %d new tokens in %d steps; configurations %s; %d rep(s), alternating"
          % (a.model, len(lines), a.input, a.new, a.steps, ", ".join(cfgs), a.reps), flush=True)
    res = {c: [] for c in cfgs}
    outs = {}
    for rep in range(a.reps):
        for c in cfgs:
            label, launcher, opts = CONFIGS[c]
            out = os.path.join(a.work, "%s.rep%d.jsonl.gz" % (c, rep))
            for p in (out, out + ".rejects.jsonl"):
                if os.path.exists(p):
                    os.unlink(p)
            cmd = launcher + [a.bin, "generate", "--model", a.model, "--input", inp, "--output", out,
                              "--max-new-tokens", str(a.new), "--steps", str(a.steps), "--alg", "entropy",
                              "--temperature", "0.3", "--top-p", "0.95", "--seed", "1"] + opts
            load = os.getloadavg()[0]
            t0 = time.time()
            r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            wall = time.time() - t0
            if r.returncode:
                sys.stderr.write(r.stderr[-3000:])
                sys.exit("%s failed with exit status %d: %s" % (c, r.returncode, " ".join(cmd)))
            m = [FINAL.search(l) for l in r.stderr.splitlines()]
            m = [x for x in m if x]
            if not m:
                sys.exit("%s: no final progress line in its output" % c)
            done, total, tps, fps, el = m[-1].groups()
            with gzip.open(out, "rt") as f:
                recs = [json.loads(l) for l in f]
            if len(recs) != int(total):
                sys.exit("%s: %d records, expected %s" % (c, len(recs), total))
            outs.setdefault(c, {(str(x["id"]), x["sample"]): x["completion"] for x in recs})
            res[c].append((float(tps), float(fps), wall, len(recs) / wall * 60))
            print("  %-26s rep %d: %7.2f generated tokens/s, %6.2f forwards/s, job %s s, command %.1f s"
                  " (%.2f records/min); load before %.2f" % (label, rep, float(tps), float(fps), el, wall,
                                                             len(recs) / wall * 60, load), flush=True)
    print("medians:")
    base = statistics.median(x[0] for x in res[cfgs[0]])
    for c in cfgs:
        tps = statistics.median(x[0] for x in res[c])
        wall = statistics.median(x[2] for x in res[c])
        rpm = statistics.median(x[3] for x in res[c])
        print("  %-26s %7.2f tokens/s (%.3fx of %s), command %.1f s, %.2f records/min"
              % (CONFIGS[c][0], tps, tps / base, cfgs[0], wall, rpm))
    ref = outs[cfgs[0]]
    for c in cfgs[1:]:
        same = sum(outs[c].get(k) == v for k, v in ref.items())
        print("  %s: %d of %d completions identical to %s" % (c, same, len(ref), cfgs[0]))


if __name__ == "__main__":
    main()
