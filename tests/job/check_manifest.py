#!/usr/bin/env python3
"""Run identity (coordinator/job_manifest.h, issue 14) end to end on two tiny models.

  check_manifest.py DIFFU_BIN WORKDIR [--mpi]

Models A and B: `diffu mkmodel --preset tiny` with seeds 3 and 4 (one shape,
different weights: their header fingerprints are equal, so only the sampled
content tells them apart).
 1. the issue's case: A at temperature 0.5 writes the first of 3 records
    (the output cut to its first record, as a stop after one record leaves
    it); rerunning the same input and output with B at temperature 1.5 is
    refused: exit 1, ONE line on stderr naming the model (A -> B) and the
    temperature (0.5 -> 1.5); output and manifest unchanged byte for byte.
 2. each difference alone is named: --steps, --seed, --n, --alg, the input
    (a line added); --format (refused by the output's own format check); a difference of --max-active (no effect on records) and
    of the input's compression (same requests, gzip'ed) is not one.
 3. the same command resumes: every record carries "run" with the manifest's
    run id, model name A and its fingerprint, and the diffu build.
 4. --allow-run-change continues with B deliberately: the manifest's identity
    becomes B's, its history holds A's with what changed; the records name
    their own run.
 5. `diffu merge` refuses that output (records of two runs), naming both;
    --allow-mixed-runs merges it; two shards of one run (split input, same
    settings) merge.
 6. records without a manifest, and an unreadable manifest: refused with
    one line naming the file; --allow-run-change adopts.
With --mpi, case 1 runs under `mpirun -np 2 ... --pp 2` as well.
"""
import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import checks  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("diffu")
ap.add_argument("work")
ap.add_argument("--mpi", action="store_true")
a = ap.parse_args()
ck = checks
W = a.work
shutil.rmtree(W, ignore_errors=True)
os.makedirs(W)
A, B = os.path.join(W, "A"), os.path.join(W, "B")
for path, seed in ((A, 3), (B, 4)):
    subprocess.run([a.diffu, "mkmodel", "--preset", "tiny", "--seed", str(seed), "--out", path], check=True,
                   capture_output=True)
if not os.path.exists(os.path.join(A, "tokenizer.json")):
    print("SKIP: the tiny model has no tokenizer.json (the vocabulary is not cached: deploy/fetch_vocab.sh)")
    sys.exit(77)

inp = os.path.join(W, "in.jsonl")
with open(inp, "w") as f:
    for i in range(3):
        f.write(json.dumps({"id": f"r{i}", "prompt": f"def f{i}(x):\n    "}) + "\n")
GEN = ["--max-new-tokens", "8"]


def gen(model, out, *extra, mpi=False, inp_=inp):
    cmd = [a.diffu, "generate", "--model", model, "--input", inp_, "--output", out] + GEN + list(extra)
    if mpi:
        cmd = ["mpirun", "-np", "2", "--oversubscribe"] + cmd + ["--pp", "2"]
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_btl_vader_single_copy_mechanism="none")
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def records(out):
    op = gzip.open if out.endswith(".gz") else open
    with op(out, "rt") as f:
        return [json.loads(l) for l in f if l.strip()]


def read(path):
    with open(path, "rb") as f:
        return f.read()


def errors(p):
    return [l for l in p.stderr.splitlines() if "error" in l]


def first_record_only(out):
    with open(out) as f:
        first = f.readline()
    with open(out, "w") as f:
        f.write(first)


# ---- 1. the case --------------------------------------------------------------------
def case1(mpi):
    tag = " (mpirun --pp 2)" if mpi else ""
    out = os.path.join(W, "mix%s.jsonl" % ("-mpi" if mpi else ""))
    p = gen(A, out, "--temperature", "0.5", mpi=mpi)
    ck.check(p.returncode == 0, f"1{tag}: the first run exits 0 ({p.returncode}: {p.stderr[-300:]})")
    man = out + ".manifest.json"
    ck.check(os.path.exists(man), f"1{tag}: the first run wrote {man}")
    first_record_only(out)
    before, mbefore = read(out), read(man)
    p = gen(B, out, "--temperature", "1.5", mpi=mpi)
    errs = errors(p)
    ck.check(p.returncode == 1, f"1{tag}: model B at temperature 1.5 refused (exit {p.returncode})")
    ck.check(len(errs) == 1, f"1{tag}: one error line, got {len(errs)}: {errs}")
    e = errs[0] if errs else ""
    ck.check("model A (fingerprint" in e and "-> B (fingerprint" in e, f"1{tag}: the line names the model A -> B: {e}")
    ck.check("temperature 0.5 -> 1.5" in e, f"1{tag}: the line names temperature 0.5 -> 1.5: {e}")
    ck.check("input" not in e.split("of another run:")[-1].split("(see")[0], f"1{tag}: the input is not named: {e}")
    ck.check("--allow-run-change" in e, f"1{tag}: the line says how to continue deliberately")
    ck.check(read(out) == before and read(man) == mbefore, f"1{tag}: output and manifest unchanged")
    ck.check("resuming" not in p.stderr, f"1{tag}: nothing resumed")
    print(f"ok 1{tag}: {e}")
    return out


out = case1(False)
if a.mpi:
    if shutil.which("mpirun"):
        case1(True)
    else:
        print("skip 1 under mpirun: no mpirun")

# ---- 2. each difference alone -----------------------------------------------------------------
base = os.path.join(W, "base.jsonl")
p = gen(A, base, "--temperature", "0.5", "--max-active", "2")
ck.check(p.returncode == 0, "2: base run")
first_record_only(base)
inp2 = os.path.join(W, "in2.jsonl")
shutil.copy(inp, inp2)
with open(inp2, "a") as f:
    f.write(json.dumps({"id": "r3", "prompt": "def g():\n    "}) + "\n")
inp_gz = os.path.join(W, "in.jsonl.gz")
with open(inp, "rb") as f, gzip.open(inp_gz, "wb") as g:
    g.write(f.read())
for extra, kw, want in (
    (["--steps", "4"], {}, "steps 0 -> 4"),
    (["--seed", "7"], {}, "seed 0 -> 7"),
    (["--n", "2"], {}, "n 1 -> 2"),
    (["--alg", "origin"], {}, 'alg "entropy" -> "origin"'),
    (["--format", "humaneval"], {}, "another --format than humaneval"),  # (the output's own check, before)
    ([], {"inp_": inp2}, "input " + inp),
):
    bb = read(base)
    p = gen(A, base, "--temperature", "0.5", *extra, **kw)
    errs = errors(p)
    ck.check(p.returncode == 1 and len(errs) == 1 and want in errs[0],
             f"2: {' '.join(extra) or 'input + 1 line'} refused naming '{want}': {errs}")
    ck.check(read(base) == bb, "2: output unchanged")
    print(f"ok 2: {' '.join(extra) or 'another input'}: ...{errs[0].split('another run:')[-1][:90] if errs else ''}")
# not differences: the window size, the input gzip'ed
p = gen(A, base, "--temperature", "0.5", "--max-active", "3", inp_=inp_gz)
ck.check(p.returncode == 0 and "resuming: 1 of 3" in p.stderr,
         f"2: --max-active 3 and the same requests gzip'ed resume ({p.returncode}: {errors(p)})")
print("ok 2: --max-active and the input's compression are not differences")

# ---- 3. the same command resumes; the records carry the run ------------------------------------
p = gen(A, out, "--temperature", "0.5")
ck.check(p.returncode == 0 and "resuming: 1 of 3" in p.stderr, f"3: the same command resumes ({p.stderr[-200:]})")
man = json.load(open(out + ".manifest.json"))
recs = records(out)
ck.check(len(recs) == 3, f"3: 3 records ({len(recs)})")
ck.check(all(r["run"]["id"] == man["run"] for r in recs), "3: every record's run id is the manifest's")
ck.check(all(r["run"]["model"] == "A" and r["run"]["model_fingerprint"] == man["model"]["fingerprint"] for r in recs),
         "3: every record names model A and its fingerprint")
ck.check(all(r["run"]["diffu"] == man["diffu"] and r["run"]["diffu"].startswith("diffu ") for r in recs),
         "3: every record names the diffu build")
ck.check(all(r["params"]["temperature"] == 0.5 for r in recs), "3: every record's params say temperature 0.5")
ck.check(man["generation"]["temperature"] == 0.5 and man["input"]["requests"] == 3 and man["history"] == [],
         "3: the manifest: temperature 0.5, 3 requests, no history")
print(f"ok 3: resumed; 3 records of run {man['run']} (model A, fingerprint {man['model']['fingerprint']})")

# ---- 4. a deliberate continuation ----------------------------------------------------------------
first_record_only(out)
p = gen(B, out, "--temperature", "1.5", "--allow-run-change")
ck.check(p.returncode == 0, f"4: --allow-run-change continues ({p.returncode}: {errors(p)})")
ck.check("continuing 1 record(s) of another run deliberately" in p.stderr, "4: the continuation is announced")
man2 = json.load(open(out + ".manifest.json"))
ck.check(man2["model"]["name"] == "B" and man2["generation"]["temperature"] == 1.5, "4: the manifest is B's now")
ck.check(len(man2["history"]) == 1 and man2["history"][0]["run"] == man["run"]
         and "temperature 0.5 -> 1.5" in man2["history"][0]["changed"]
         and man2["history"][0]["records"] == 1, f"4: the history holds A's identity and what changed: {man2['history']}")
ck.check(man2["created"] == man["created"], "4: created is kept")
recs = records(out)
runs = [r["run"]["id"] for r in recs]
ck.check(runs == [man["run"], man2["run"], man2["run"]] and man["run"] != man2["run"],
         f"4: the records name their runs: {runs}")
# rerunning the continuation's command: the same run now
p = gen(B, out, "--temperature", "1.5")
ck.check(p.returncode == 0 and "all 3 samples" in p.stderr, f"4: the continuation's command is the run now ({errors(p)})")
print(f"ok 4: continued with B: runs {runs}")

# ---- 5. merge --------------------------------------------------------------------------------------
p = subprocess.run([a.diffu, "merge", "--input", inp, out], capture_output=True, text=True)
last = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
ck.check(p.returncode == 1 and "records of different runs" in last and man["run"] in last and man2["run"] in last,
         f"5: merge refuses two runs, naming both: {last}")
p = subprocess.run([a.diffu, "merge", "--allow-mixed-runs", "--input", inp, out, "--output", os.path.join(W, "m.jsonl")],
                   capture_output=True, text=True)
ck.check(p.returncode == 0 and len(records(os.path.join(W, "m.jsonl"))) == 3, "5: --allow-mixed-runs merges")
# two shards of one run
sh = []
for k in range(2):
    si = os.path.join(W, f"shard{k}.jsonl")
    with open(inp) as f, open(si, "w") as g:
        g.writelines(l for i, l in enumerate(f) if i % 2 == k)
    so = os.path.join(W, f"shard{k}.out.jsonl")
    p = gen(A, so, "--temperature", "0.5", inp_=si)
    ck.check(p.returncode == 0, f"5: shard {k}")
    sh.append(so)
p = subprocess.run([a.diffu, "merge", "--input", inp] + sh, capture_output=True, text=True)
ck.check(p.returncode == 0, f"5: two shards of one run merge ({p.stderr.strip()[-200:]})")
ck.check(records(sh[0])[0]["run"]["id"] == records(sh[1])[0]["run"]["id"] == man["run"],
         "5: shards of one run (other inputs) share its run id")
print(f"ok 5: merge: mixed runs refused ({last[:100]}...), --allow-mixed-runs merges, shards of one run merge")

# ---- 6. no manifest / unreadable manifest ---------------------------------------------------------
o6 = os.path.join(W, "old.jsonl")
shutil.copy(sh[0], o6)
p = gen(A, o6, "--temperature", "0.5")
errs = errors(p)
ck.check(p.returncode == 1 and len(errs) == 1 and "has no run manifest" in errs[0], f"6: records without a manifest refused: {errs}")
with open(o6 + ".manifest.json", "w") as f:
    f.write("{\"diffu_manifest\": 1, \"run\": ")
p = gen(A, o6, "--temperature", "0.5")
errs = errors(p)
ck.check(p.returncode == 1 and len(errs) == 1 and o6 + ".manifest.json" in errs[0] and "not a diffu run manifest" in errs[0],
         f"6: an unreadable manifest refused naming it: {errs}")
p = gen(A, o6, "--temperature", "0.5", "--allow-run-change")
ck.check(p.returncode == 0 and json.load(open(o6 + ".manifest.json"))["run"] == man["run"],
         f"6: --allow-run-change adopts them ({errors(p)})")
print("ok 6: no manifest / unreadable manifest refused with one line; --allow-run-change adopts")
sys.exit(ck.report())
