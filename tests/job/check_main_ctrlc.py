#!/usr/bin/env python3
"""Ctrl-C on the README's main job (deploy/main_job.sh) stops it gracefully.

  check_main_ctrlc.py DIFFU_BIN WORKDIR REPO_ROOT

The script runs `mpirun -np 2 diffu generate --pp 2` on the bundled sample tasks, here with the tiny model
(real tokenizer) and DIFFU_DEBUG_STALL=1:6@4: rank 1 stalls 6 s at its 4th microbatch, so the drain after
the signal takes seconds, as one microbatch of a 7B model does. Once rank 1 reports its stall, SIGINT goes
to the script's whole process group, as a terminal's Ctrl-C does. Asserted: the job exits 1 with the resume
hint, the samples in flight are in OUT.inflight (Open MPI 4.1's mpirun, given the SIGINT itself, passes the
ranks SIGTERM 1 s later and SIGKILL 1 s after that: no hint, no checkpoint), and the rerun continues them
and ends with every sample once. Nothing here depends on the machine's speed: the signal follows the stall
line, and the drain has no deadline but the communication timeout (300 s).
"""
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time

diffu, W, root = sys.argv[1], sys.argv[2], sys.argv[3]
shutil.rmtree(W, ignore_errors=True)
os.makedirs(W)
model = os.path.join(W, "tiny")
subprocess.run([diffu, "mkmodel", "--preset", "tiny", "--out", model], check=True, capture_output=True)
out = os.path.join(W, "out.jsonl.gz")
inp = os.path.join(root, "deploy", "prompts", "sample_tasks_chat.jsonl")
n_in = sum(1 for l in open(inp) if l.strip())
env = dict(os.environ, DIFFU_BIN=diffu, DIFFU_MODEL=model, DIFFU_OUTPUT=out, DIFFU_MAX_NEW_TOKENS="32",
           DIFFU_STEPS="32", DIFFU_CACHE=os.path.join(W, "cache"))


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


err1 = os.path.join(W, "run1.err")
with open(err1, "w") as ef:
    p = subprocess.Popen(["bash", os.path.join(root, "deploy", "main_job.sh")], stdout=subprocess.DEVNULL, stderr=ef,
                         env=dict(env, DIFFU_DEBUG_STALL="1:6@4"), start_new_session=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    t0 = time.time()
    while p.poll() is None and "debug: rank 1 (pid" not in open(err1).read():
        if time.time() - t0 > 240:
            os.killpg(p.pid, signal.SIGKILL)
            fail("rank 1 never reported its stall")
        time.sleep(0.05)
    if p.poll() is not None:
        fail(f"the job ended (exit {p.returncode}) before rank 1's stall: {open(err1).read()[-2000:]}")
    t_sig = time.time()
    os.killpg(p.pid, signal.SIGINT)  # a terminal's Ctrl-C: SIGINT to the foreground process group
    rc = p.wait()
text = open(err1).read()
print(f"Ctrl-C during rank 1's stall: exit {rc}, {time.time() - t_sig:.1f} s after the signal")
if rc != 1 or "rerun the same command to resume" not in text:
    fail(f"exit {rc} without the resume hint: {text[-2000:]}")
if "[main] stopping" not in text:
    fail("main_job.sh did not report the stop")
if not os.path.exists(out + ".inflight") or "sample(s) in flight saved" not in text:
    fail(f"the samples in flight were not saved: {text[-2000:]}")
p = subprocess.run(["bash", os.path.join(root, "deploy", "main_job.sh")], capture_output=True, text=True, env=env)
if p.returncode:
    fail(f"rerun: exit {p.returncode}: {p.stderr[-2000:]}")
if "continued from the in-flight checkpoint" not in p.stderr:
    fail(f"the rerun did not continue the saved samples: {p.stderr[-2000:]}")
with gzip.open(out, "rt") as f:
    keys = [(r["id"], r["sample"]) for r in map(json.loads, f.read().splitlines())]
if len(keys) != n_in or len(set(keys)) != n_in:
    fail(f"{len(keys)} records ({len(set(keys))} distinct), expected {n_in}")
if os.path.exists(out + ".inflight"):
    fail("the finished job left its in-flight checkpoint behind")
print(f"rerun: the saved samples continued, {n_in} records, each once")
print("PASS")
