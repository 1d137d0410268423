#!/usr/bin/env python3
"""The KV cache in the batch job (coordinator/local.h, the job field "cache"): on the
embedded toy model, one `diffu generate --input` run mixes requests with cache none,
prefix, dual, delayed and prefix refreshed every forward, and asserts against the exact
run of the same requests without any cache field (itself the golden-tested no-cache path):
  * the none requests of the mixed run (they go through the cached forward as full passes)
    have the exact run's completions, token for token;
  * prefix with --cache-refresh 1 (every forward a full pass) has them too;
  * every cached record says its mode (params.cache, params.cache_refresh), the exact ones
    have no cache key (records of exact runs are unchanged);
  * a cached run computes fewer rows than the exact one ([timing] work line);
  * a line asking for dual without blocks is rejected naming the field;
  * under `mpirun -np 2 ... --pp 2` (every stage holds the cache of its layers) the mixed run
    gives the one process's records and computes the same rows.

  check_cache_job.py DIFFU_BIN WORKDIR MODEL
"""
import json
import os
import re
import shutil
import subprocess
import sys

diffu, W, model = sys.argv[1:4]
shutil.rmtree(W, ignore_errors=True)
os.makedirs(W)
fails = []
PROMPTS = ["def add(a, b):", "def is_even(n):", "class Stack:"]
BASE = {"max_new_tokens": 32, "block_length": 8, "steps": 32}
MODES = [("none", {}), ("prefix", {"cache": "prefix"}), ("dual", {"cache": "dual"}),
         ("delayed", {"cache": "delayed", "cache_refresh": 4}), ("prefix1", {"cache": "prefix", "cache_refresh": 1})]


def run(lines, tag, launcher=()):
    inp, out = os.path.join(W, tag + ".jsonl"), os.path.join(W, tag + ".out.jsonl")
    with open(inp, "w") as f:
        f.write("".join(json.dumps(l) + "\n" for l in lines))
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_btl_vader_single_copy_mechanism="none")
    r = subprocess.run(list(launcher) + [diffu, "generate", "--model", model, "--input", inp, "--output", out]
                       + (["--pp", "2"] if launcher else []), capture_output=True, text=True, env=env, timeout=600)
    recs = {}
    if os.path.exists(out):
        for l in open(out):
            x = json.loads(l)
            recs[x["id"]] = x
    return r, recs


exact_lines = [dict({"id": "p%d" % i, "prompt": p}, **BASE) for i, p in enumerate(PROMPTS)]
r, exact = run(exact_lines, "exact")
if r.returncode != 0 or len(exact) != len(PROMPTS):
    sys.exit("the exact run failed (%d): %s" % (r.returncode, r.stderr[-2000:]))
mixed_lines = [dict({"id": "p%d.%s" % (i, m), "prompt": p}, **BASE, **extra)
               for i, p in enumerate(PROMPTS) for m, extra in MODES]
mixed_lines.append({"id": "bad", "prompt": "x", "cache": "dual"})  # no blocks: rejected
r, mixed = run(mixed_lines, "mixed")
mixed_run = r
if r.returncode != 0 or len(mixed) != len(PROMPTS) * len(MODES):
    sys.exit("the mixed run failed (%d, %d records): %s" % (r.returncode, len(mixed), r.stderr[-2000:]))
for i in range(len(PROMPTS)):
    want = exact["p%d" % i]["completion"]
    for m, extra in MODES:
        rec = mixed["p%d.%s" % (i, m)]
        pc = rec["params"].get("cache"), rec["params"].get("cache_refresh")
        if pc != (extra.get("cache"), extra.get("cache_refresh")):
            fails.append("p%d.%s: params say cache %r refresh %r" % (i, m, pc[0], pc[1]))
        if m in ("none", "prefix1") and rec["completion"] != want:
            fails.append("p%d.%s: %r != the exact run's %r" % (i, m, rec["completion"], want))
        if m not in ("none", "prefix1"):
            print("info p%d %s: %s" % (i, m, "as exact" if rec["completion"] == want else "differs from exact"))
rej = os.path.join(W, "mixed.out.jsonl.rejects.jsonl")
rj = [json.loads(l) for l in open(rej)] if os.path.exists(rej) else []
if len(rj) != 1 or rj[0].get("field") != "cache":
    fails.append("the dual line without blocks: rejects %r" % rj)

# the work: an all-dual run computes fewer rows than the exact one
def rows_of(res):
    m = re.search(r"\[timing\] work: (\d+) rows", res.stderr)
    return int(m.group(1)) if m else None


n_dual = rows_of(run([dict(l, cache="dual") for l in exact_lines], "dual")[0])
n_exact = rows_of(run(exact_lines, "exact2")[0])
if n_exact is None or n_dual is None or not n_dual < n_exact:
    fails.append("rows through the forward: dual %r, exact %r (expected fewer)" % (n_dual, n_exact))
else:
    print("info rows through the forward: dual %d, exact %d" % (n_dual, n_exact))

if shutil.which("mpirun"):
    # the stages hold the cache (node/worker.h): the same records as the one process, mode by mode
    r, recs = run(mixed_lines, "mpi", ["mpirun", "-np", "2", "--oversubscribe", "--bind-to", "none"])
    if r.returncode != 0 or len(recs) != len(mixed):
        fails.append("mpirun --pp 2, mixed cache modes: exit %d, %d records: %s" % (r.returncode, len(recs),
                                                                                 r.stderr[-1500:]))
    else:
        diff = [k for k in mixed if recs[k]["completion"] != mixed[k]["completion"] or
                recs[k]["params"] != mixed[k]["params"]]
        if diff:
            fails.append("mpirun --pp 2: records %s differ from the one process's" % diff)
        else:
            print("info mpirun --pp 2: all %d records (5 cache modes) == the one process's" % len(recs))
        n_mpi, n_one = rows_of(r), rows_of(mixed_run)
        if n_mpi is None or n_mpi != n_one:
            fails.append("mpirun --pp 2: rows through the forward %r, one process %r (expected equal)" % (n_mpi, n_one))
else:
    print("skip mpirun: no mpirun")

for f in fails:
    print("FAIL:", f)
print("PASS" if not fails else "FAILED")
sys.exit(1 if fails else 0)
