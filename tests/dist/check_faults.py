#!/usr/bin/env python3
"""Faults one rank at a time (issue 14), under `mpirun -np 2 diffu generate --pp 2` on the tiny model.

  check_faults.py DIFFU_BIN WORKDIR

Every fault is injected at a moment that does not depend on the machine's speed
(once the output holds a record, or at a named point of the code), and every
bound is generous and stated:
  kill1   rank 1 (the last stage) SIGKILLed mid-job: the job ends within 10 s,
          a line names rank 1 and the host, every record written is intact
          (complete JSON lines), and the rerun resumes to records equal to an
          uninterrupted run's (completion, generated ids).
  kill0   the same for rank 0 (the coordinator).
  stop1   rank 1 SIGSTOPped (a hang, not a death): with --comm-timeout 30 the
          job ends within 30 + 10 s with one line naming rank 1 and the host
          and the deadline; records intact (no rerun: kill1/kill0 show it).
  load1   rank 1 dies while loading its shard (DIFFU_FAULT=load:1, the hook
          in node/stage.h): ends within 10 s naming rank 1 and the host; no
          record, the output holds nothing torn.
  slow1   rank 1 slow but alive: sleeps 10 s at its microbatches 8, 16, 24
          and 32 (DIFFU_DEBUG_STALL), with --comm-timeout 30 (each stall under the deadline; a deadline
          much shorter than 30 s can fire on a heavily loaded machine during
          the start-up alone, seen at 8 s with load 14): the job is not
          declared dead and ends with the uninterrupted run's records.
  mem     a layout that does not fit the node (DIFFU_MEM_AVAILABLE_MIB=16:
          the node's memory as seen by the check; the plan's numbers are
          the real ones): refused before loading, one line with the numbers.
  rofs    the output on a read-only filesystem (a read-only bind mount in a
          private mount namespace; skipped without one): one error line.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import checks as ck  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("diffu")
ap.add_argument("work")
a = ap.parse_args()
if not shutil.which("mpirun"):
    print("SKIP: no mpirun")
    sys.exit(77)
W = a.work
shutil.rmtree(W, ignore_errors=True)
os.makedirs(W)
model = os.path.join(W, "tiny")
subprocess.run([a.diffu, "mkmodel", "--preset", "tiny", "--seed", "3", "--out", model], check=True, capture_output=True)
if not os.path.exists(os.path.join(model, "tokenizer.json")):
    print("SKIP: the tiny model has no tokenizer.json (deploy/fetch_vocab.sh)")
    sys.exit(77)
inp = os.path.join(W, "in.jsonl")
with open(inp, "w") as f:
    for i in range(12):
        f.write(json.dumps({"id": f"r{i}", "prompt": f"def f{i}(x):\n    "}) + "\n")
HOST = os.uname().nodename.split(".")[0]
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_btl_vader_single_copy_mechanism="none")


def cmd(out, *extra):
    return ["mpirun", "-np", "2", "--oversubscribe", a.diffu, "generate", "--model", model, "--input", inp,
            "--output", out, "--max-new-tokens", "12", "--temperature", "0.7", "--emit-ids", "--max-active", "2",
            "--pp", "2", "--threads", "1"] + list(extra)


def records(out):
    """(id, sample) -> record; every line must be complete JSON"""
    recs, bad = {}, 0
    if os.path.exists(out):
        with open(out, "rb") as f:
            data = f.read()
        for line in data.split(b"\n")[:-1]:
            try:
                r = json.loads(line)
                recs[(r["id"], r["sample"])] = r
            except Exception:
                bad += 1
        if data and not data.endswith(b"\n"):
            bad += 1
    return recs, bad


def rank_pid(mpirun_pid, rank, timeout=120):
    t = time.time()
    while time.time() - t < timeout:
        try:
            kids = []
            for tid in os.listdir(f"/proc/{mpirun_pid}/task"):
                with open(f"/proc/{mpirun_pid}/task/{tid}/children") as f:
                    kids += f.read().split()
            for k in kids:
                with open(f"/proc/{k}/environ", "rb") as f:
                    if f"OMPI_COMM_WORLD_RANK={rank}".encode() in f.read().split(b"\0"):
                        return int(k)
        except OSError:
            pass
        time.sleep(0.05)
    return None


def wait_records(pr, out, n, timeout=300):
    t = time.time()
    while pr.poll() is None and time.time() - t < timeout:
        if records(out)[0].__len__() >= n:
            return True
        time.sleep(0.05)
    return False


def names_rank_host(err, rank):
    return any((f"rank {rank}" in l) and HOST in l for l in err.splitlines())


# the uninterrupted reference
ref_out = os.path.join(W, "ref.jsonl")
p = subprocess.run(cmd(ref_out), capture_output=True, text=True, env=ENV, timeout=900)
ck.check(p.returncode == 0, f"reference run exit {p.returncode}: {p.stderr[-400:]}")
ref, _ = records(ref_out)
ck.check(len(ref) == 12, f"reference: 12 records ({len(ref)})")


def same_as_ref(out, what):
    got, bad = records(out)
    ok = bad == 0 and set(got) == set(ref) and all(
        got[k]["completion"] == ref[k]["completion"] and got[k]["generated_ids"] == ref[k]["generated_ids"] for k in ref)
    ck.check(ok, f"{what}: records equal to the uninterrupted run's ({len(got)} records, {bad} bad)")
    return ok


table = []


def fault(name, rank, sig, extra=(), deadline=10.0, want=None, resume=True):
    out = os.path.join(W, f"{name}.jsonl")
    pr = subprocess.Popen(cmd(out, *extra), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
    if not wait_records(pr, out, 1):
        pr.kill()
        ck.check(False, f"{name}: a record within 300 s: {pr.communicate()[1][-800:]}")
        return
    pid = rank_pid(pr.pid, rank)
    ck.check(pid is not None, f"{name}: rank {rank}'s pid")
    if pid is None:
        return
    n0 = len(records(out)[0])
    t0 = time.time()
    os.kill(pid, sig)
    try:
        _, err = pr.communicate(timeout=deadline + 60)
    except subprocess.TimeoutExpired:
        pr.kill()
        _, err = pr.communicate()
    dt = time.time() - t0
    if sig == signal.SIGSTOP:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    recs, bad = records(out)
    ck.check(pr.returncode != 0, f"{name}: the job failed (exit {pr.returncode})")
    ck.check(dt <= deadline, f"{name}: ended {dt:.1f} s after the fault (bound {deadline:.0f} s)")
    ck.check(names_rank_host(err, rank), f"{name}: a line names rank {rank} and host {HOST}: {err[-600:]}")
    if want:
        ck.check(want in err, f"{name}: '{want}' in the messages")
    ck.check(bad == 0 and len(recs) >= n0, f"{name}: every record intact ({len(recs)} >= {n0}, {bad} bad)")
    line = next((l for l in err.splitlines() if f"rank {rank}" in l and HOST in l), "")
    if resume:
        p = subprocess.run(cmd(out), capture_output=True, text=True, env=ENV, timeout=900)
        ck.check(p.returncode == 0 and "resuming:" in p.stderr, f"{name}: the rerun resumes ({p.returncode})")
        same_as_ref(out, name)
    table.append((name, f"{dt:.1f} s", len(recs), line.strip()[:150]))
    print(f"ok {name}: ended {dt:.1f} s after the fault, {len(recs)} records intact: {line.strip()[:160]}")


fault("kill1", 1, signal.SIGKILL)
fault("kill0", 0, signal.SIGKILL)
fault("stop1", 1, signal.SIGSTOP, extra=("--comm-timeout", "30"), deadline=40.0, resume=False,
      want="s (the communication timeout, --comm-timeout")

# a rank dies while loading
out = os.path.join(W, "load1.jsonl")
t0 = time.time()
p = subprocess.run(cmd(out), capture_output=True, text=True, env=dict(ENV, DIFFU_FAULT="load:1"), timeout=300)
dt = time.time() - t0
recs, bad = records(out)
ck.check(p.returncode != 0 and names_rank_host(p.stderr, 1), f"load1: failed naming rank 1 and {HOST}: {p.stderr[-500:]}")
ck.check("rank 1 kills itself at 'load'" in p.stderr, "load1: the fault fired while loading")
ck.check(len(recs) == 0 and bad == 0, "load1: no record, nothing torn")
ck.check(dt <= 60, f"load1: the whole run (start, load, fault) ended in {dt:.1f} s (bound 60 s)")
print(f"ok load1: rank 1 died while loading; ended {dt:.1f} s after the start")
table.append(("load1", f"{dt:.1f} s (whole run)", 0, next((l for l in p.stderr.splitlines() if "rank 1" in l and HOST in l), "")[:150]))

# slow but alive: rank 1 sleeps 10 s at its microbatches 8, 16, 24 and 32
# (DIFFU_DEBUG_STALL: points of the code, so every stall lands mid-job
# whatever the machine's speed; the job has >= 72 microbatches on rank 1)
out = os.path.join(W, "slow1.jsonl")
t0 = time.time()
p = subprocess.run(cmd(out, "--comm-timeout", "30"), capture_output=True, text=True, timeout=900,
                   env=dict(ENV, DIFFU_DEBUG_STALL="1:10@8+8x4"))
dt = time.time() - t0
stalls = sum(1 for l in p.stderr.splitlines() if "debug: rank 1" in l and "stalls 10 s" in l)
ck.check(p.returncode == 0, f"slow1: not declared dead after {stalls} stalls of 10 s with a 30 s deadline (exit"
                            f" {p.returncode}: {p.stderr[-400:]})")
ck.check(stalls == 4, f"slow1: 4 stalls landed mid-job ({stalls})")
ck.check(dt >= 40, f"slow1: the run took at least the 4 x 10 s of stalls ({dt:.1f} s)")
same_as_ref(out, "slow1")
print(f"ok slow1: {stalls} stalls of 10 s on rank 1, deadline 30 s: completed in {dt:.1f} s with the reference records")
table.append(("slow1", f"completed in {dt:.1f} s", 12, f"{stalls} stalls x 10 s"))

# a layout that does not fit
out = os.path.join(W, "mem.jsonl")
p = subprocess.run(cmd(out), capture_output=True, text=True, env=dict(ENV, DIFFU_MEM_AVAILABLE_MIB="16"), timeout=300)
errs = [l for l in p.stderr.splitlines() if "error" in l]
ck.check(p.returncode == 1 and len(errs) == 1 and "the layout does not fit" in errs[0] and "GiB" in errs[0],
         f"mem: refused with one line and the numbers: {errs}")
ck.check("shard:" not in p.stderr, "mem: refused before any rank loaded its shard")
print(f"ok mem: {errs[0] if errs else ''}")
table.append(("mem", "refused", 0, errs[0][:150] if errs else ""))

# read-only filesystem
ro = os.path.join(W, "ro")
os.makedirs(ro)
sh = (f"mount --bind {ro} {ro} && mount -o remount,bind,ro {ro} && "
      f"exec {a.diffu} generate --model {model} --input {inp} --output {ro}/out.jsonl --max-new-tokens 4")
p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", sh], capture_output=True, text=True,
                   timeout=120)
if "mount" in p.stderr and "error:" not in p.stderr:
    print(f"skip rofs: no private read-only mount here ({p.stderr.strip()[:100]})")
else:
    errs = [l for l in p.stderr.splitlines() if "error" in l]
    ck.check(p.returncode == 1 and len(errs) == 1 and "Read-only file system" in errs[0] and "stale" not in errs[0],
             f"rofs: one error line naming the cause: {errs}")
    print(f"ok rofs: {errs[0] if errs else ''}")
    table.append(("rofs", "refused", 0, errs[0][:150] if errs else ""))

print("\nfault | ended | records intact | the line")
for r in table:
    print(" | ".join(str(x) for x in r))
sys.exit(ck.report())
