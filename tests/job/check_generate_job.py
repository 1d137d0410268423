#!/usr/bin/env python3
"""`diffu generate --input --output` end to end on the tiny model (real tokenizer).

  check_generate_job.py DIFFU_BIN WORKDIR [--kills K] [--mpi NP --pp P] [--prompts N] [--n S]

--prompts: requests in the input (default 16, of four kinds); --n S gives every
request S samples (default: mixed, 1 or 2), so the job must end with exactly
N x S records (tests/job/crash_resume_long.sh: 50 x 2 under mpirun, 5 kills).

1. an uninterrupted run: one record per (id, sample), read by zcat and by
   Python's gzip; the bad line goes to OUT.rejects.jsonl; --strict refuses
   the file (exit 1, no output); a rerun finds everything done (exit 0).
2. crash and resume: the job killed with SIGKILL at random moments K times,
   rerun each time, then run to the end: every (id, sample) exactly once and
   every completion / generated id / finish reason equal to run 1's (the
   denoiser's draws are keyed by the request id and the forward is
   batch-invariant; the crash runs use other window sizes on purpose).
3. SIGTERM (under --mpi to the ranks themselves): exit non-zero with the resume hint; the rerun
   completes (with in-flight checkpoints: the sample in flight is saved and continued).
With --mpi, every run is `mpirun -np NP diffu generate --pp P ...`.
With --cache MODE:REFRESH, every run decodes in blocks of 4 through the KV cache (under --mpi the
stages hold it); a sample continued from a checkpoint starts with a full pass (a fresh policy).
With --checkpoint-every S (coordinator/job_inflight.h), the crash runs write
their samples in flight to OUT.inflight every S seconds (S tiny: every step, so a
kill loses at most the step in flight of each sample); after each kill the
checkpoint is read (an independent parser of its documented format: header,
CRC-32, entries, the canvas states' step counters) and printed; a checkpoint
holding a sample part-way (step > 0) must be continued by the next run (its
stderr says so, and the final records are still identical to run 1's); at least
one kill must have left one (asserted: the kills land at random moments after the
run's first checkpoint, and if none has left one by the last kill, that kill waits
for a durable checkpoint holding a sample part-way, so the assertion does not depend
on the machine's speed); the finished job leaves no OUT.inflight behind.
The work a kill costs is measured from the crash runs' trace ($DIFFU_TRACE=inflight into
$DIFFU_TRACE_FILE, job_inflight.c: every checkpoint's samples and steps as it starts, and the moment it
is durable): per kill, the full forwards the next run redoes (a sample's forwards at
the last write begun minus those of its state in the checkpoint left behind; steps
that need no logits cost nothing; asserted <= 1 per sample in flight: at most the
write the kill interrupted) and the seconds of work lost (kill time minus the last
durable checkpoint) over the run's median step time; the summary prints both.
"""
import argparse
import gzip
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("diffu")
ap.add_argument("work")
ap.add_argument("--kills", type=int, default=4)
ap.add_argument("--mpi", type=int, default=0)
ap.add_argument("--pp", type=int, default=0)
ap.add_argument("--seed", type=int, default=int(time.time()))
ap.add_argument("--prompts", type=int, default=16)
ap.add_argument("--n", type=int, default=0)
ap.add_argument("--checkpoint-every", type=float, default=None)
ap.add_argument("--cache", default=None, help="MODE:REFRESH: every run with --cache MODE --cache-refresh REFRESH"
                " and blocks of 4 (the KV cache; prefix:1 is exact, so resumed records still equal run 1's)")
a = ap.parse_args()
rng = random.Random(a.seed)
print(f"seed {a.seed}")

shutil.rmtree(a.work, ignore_errors=True)
os.makedirs(a.work)
W = a.work
model = os.path.join(W, "tiny")
subprocess.run([a.diffu, "mkmodel", "--preset", "tiny", "--out", model], check=True, capture_output=True)

inp = os.path.join(W, "in.jsonl.gz")
expected = set()
with gzip.open(inp, "wt") as f:
    for i in range(a.prompts):
        if i % 4 == 0:
            r = {"id": f"chat-{i}", "messages": [{"role": "user", "content": f"Write a function that returns {i}."}]}
        elif i % 4 == 1:
            r = {"task_id": i, "prompt": f"def f{i}(x):\n    \"\"\"Return x + {i}.\"\"\"\n", "n": 2}
        elif i % 4 == 2:
            r = {"id": f"p{i}", "prompt": f"# task {i}\n", "max_new_tokens": 8, "temperature": 0.9}
        else:
            # (origin commits at random: never with blocks, so not in the cached runs)
            r = {"id": f"q{i}", "prompt": "print(", "seed": i, "alg": "maskgit_plus" if a.cache else "origin"}
        if a.n:
            r["n"] = a.n
        f.write(json.dumps(r) + "\n")
        for s in range(r.get("n", 1)):
            expected.add((str(r.get("id", r.get("task_id"))), s))
    f.write('{"id": "bad", "temprature": 1}\n')

common = ["--model", model, "--input", inp, "--max-new-tokens", "12", "--temperature", "0.6", "--emit-ids",
          "--threads", "1"]
if a.cache:
    mode, refresh = a.cache.split(":")
    common += ["--block-length", "4", "--cache", mode, "--cache-refresh", refresh]


def cmd(out, extra=()):
    c = [a.diffu, "generate"] + common + ["--output", out] + list(extra)
    if a.mpi:
        c = ["mpirun", "-np", str(a.mpi), "--oversubscribe"] + c + ["--pp", str(a.pp)]
    return c


def env():
    e = dict(os.environ)
    e.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    return e


def read(path):
    z = subprocess.run(["zcat", path], check=True, capture_output=True).stdout.decode()
    with gzip.open(path, "rt") as f:
        py = f.read()
    assert z == py, "zcat and Python's gzip disagree"
    recs = [json.loads(l) for l in py.splitlines()]
    keys = [(str(r["id"]), r["sample"]) for r in recs]
    assert len(keys) == len(set(keys)), f"duplicate (id, sample) records: {len(keys) - len(set(keys))}"
    return {k: r for k, r in zip(keys, recs)}


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


# 1. uninterrupted
ref_out = os.path.join(W, "ref.jsonl.gz")
t0 = time.time()
p = subprocess.run(cmd(ref_out), capture_output=True, text=True, env=env())
T = time.time() - t0
if p.returncode:
    fail(f"reference run exit {p.returncode}: {p.stderr}")
ref = read(ref_out)
if set(ref) != expected:
    fail(f"records {sorted(set(ref) ^ expected)} missing or extra")
if a.n and len(ref) != a.prompts * a.n:
    fail(f"{len(ref)} records, expected {a.prompts} x {a.n}")
for k, r in ref.items():
    for f in ("completion", "finish_reason", "prompt_tokens", "generated_tokens", "steps", "forwards", "seconds",
              "arness", "params", "prompt_ids", "generated_ids"):
        if f not in r:
            fail(f"{k}: no {f}")
rej = [json.loads(l) for l in open(ref_out + ".rejects.jsonl")]
if len(rej) != 1 or rej[0]["id"] != "bad" or rej[0]["field"] != "temprature":
    fail(f"rejects: {rej}")
print(f"uninterrupted: {len(ref)} records in {T:.2f} s")
p = subprocess.run(cmd(ref_out), capture_output=True, text=True, env=env())
if p.returncode or read(ref_out) != ref:
    fail(f"rerun of a finished job: exit {p.returncode}: {p.stderr}")
strict_out = os.path.join(W, "strict.jsonl")
p = subprocess.run(cmd(strict_out, ["--strict"]), capture_output=True, text=True, env=env())
if p.returncode != 1 or "strict" not in p.stderr or (os.path.exists(strict_out) and os.path.getsize(strict_out)):
    fail(f"--strict: exit {p.returncode}: {p.stderr}")


def same(got, what):
    if set(got) != expected:
        fail(f"{what}: records {sorted(set(got) ^ expected)} missing or extra")
    for k in expected:
        for f in ("completion", "finish_reason", "generated_ids", "prompt_ids", "steps", "forwards", "generated_tokens"):
            if got[k][f] != ref[k][f]:
                fail(f"{what}: {k} {f}: {got[k][f]!r} != {ref[k][f]!r}")


def descendants(pid):
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                st = open(f"/proc/{d}/stat").read()
            except OSError:
                continue
            ppid = int(st[st.rindex(")") + 2:].split()[1])
            kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def send(procs, sig):
    for p in procs:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


def kill_all(pr):
    """SIGKILL the job: the process and everything under it (mpirun's ranks run in their own process groups)."""
    procs = descendants(pr.pid)
    send(procs, signal.SIGKILL)
    pr.wait()
    def gone(p):
        try:
            return open(f"/proc/{p}/stat").read().split(") ")[1][0] == "Z"
        except OSError:
            return True

    for p in procs[1:]:  # wait until the ranks are gone (they hold the output's lock)
        t0 = time.time()
        while not gone(p):
            if time.time() - t0 > 120:
                fail(f"process {p} of the killed job still alive 120 s after SIGKILL (the next run would find the"
                     " output locked)")
            time.sleep(0.01)


def read_inflight(path):
    """OUT.inflight by its documented format (job_inflight.h, denoise.h): [((id, sample), step, forwards)]; the key is
    the id's bytes, a 0 byte and the sample index as 4 bytes (job_util.h, little-endian here)."""
    import struct
    import zlib
    b = open(path, "rb").read()
    assert b[:8] == b"DIFFUINF", "no magic"
    assert struct.unpack("<I", b[-4:])[0] == zlib.crc32(b[:-4]), "CRC-32 mismatch"
    ver, n = struct.unpack("<II", b[8:16])
    assert ver == 1
    off, out = 40, []
    for _ in range(n):
        (kl,) = struct.unpack("<I", b[off:off + 4])
        key = b[off + 4:off + 4 + kl]
        off += 4 + kl
        _ph, sl = struct.unpack("<II", b[off:off + 8])
        st = b[off + 8:off + 8 + sl]
        off += 8 + sl
        assert st[:4] == b"DNS1", "state magic"
        step, fwd = struct.unpack("<ii", st[8:16])
        out.append(((key[:-5].decode(), struct.unpack("<I", key[-4:])[0]), step, fwd))
    assert off == len(b) - 4, "trailing bytes"
    return out


# 2. kill -9 at random moments, resume each time
out = os.path.join(W, "crash.jsonl.gz")
ckpt = ["--checkpoint-every", str(a.checkpoint_every)] if a.checkpoint_every is not None else []
mid_sample, continued = 0, 0
pending_mid = False
redo = []  # per kill with samples in flight: (samples, full forwards redone, seconds lost, median step seconds)


def trace(text):
    """The crash run's $DIFFU_TRACE=inflight lines: [(time, {(id, sample): (steps, forwards)})] of the writes
    begun, and the times they became durable."""
    begun, written = [], []
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 5 and f[1:4] == ["trace", "inflight", "begin"]:
            st = {}
            for tok in f[5:]:
                key, sf = tok.rsplit("@", 1)
                rid, si = key.rsplit("#", 1)
                steps, fwd = sf.split("/")
                st[(rid, int(si))] = (int(steps), int(fwd))
            begun.append((float(f[4]), st))
        elif len(f) == 5 and f[1:4] == ["trace", "inflight", "written"]:
            written.append(float(f[4]))
    return begun, written


def step_seconds(begun):
    """Median time between two writes begun one forward apart for the same sample."""
    last, d = {}, []
    for t, st in begun:
        for k, (_, n) in st.items():
            if k in last and n == last[k][1] + 1:
                d.append(t - last[k][0])
            last[k] = (t, n)
    d.sort()
    return d[len(d) // 2] if d else None


def wait_trace(pr, path, what, limit=240.0):
    """Poll the crash run's trace (read by trace() above) until it shows its first checkpoint begun ("begun") or
    a durable checkpoint holding a sample part-way with half its steps still to go, so that it cannot end before
    the kill ("midway"); or until the run ends or `limit` seconds pass."""
    def part_way(st):
        return any(0 < steps <= max(1, ref.get(k, {}).get("steps", 2) // 2) for k, (steps, _) in st.items())

    t0 = time.time()
    while pr.poll() is None and time.time() - t0 < limit:
        if os.path.exists(path):
            with open(path) as tf:
                text = tf.read()
            begun, written = trace(text[:text.rfind("\n") + 1])  # whole lines only: the run is still writing
            if what == "begun" and begun:
                return
            if what == "midway":
                for w in written:  # a write made durable: the last one begun before it is the checkpoint on disk
                    on_disk = [st for t, st in begun if t <= w]
                    if on_disk and part_way(on_disk[-1]):
                        return
        time.sleep(0.005)


for i in range(a.kills):
    errf = open(os.path.join(W, f"crash{i}.err"), "w+")
    e_run = env()
    trace_path = os.path.join(W, f"crash{i}.trace")
    if os.path.exists(trace_path):
        os.unlink(trace_path)
    if ckpt:
        # its own file, one write() per line: under mpirun stderr goes through the launcher's forwarding,
        # which a SIGKILL can cut before the last lines arrive
        e_run["DIFFU_TRACE"] = "inflight"
        e_run["DIFFU_TRACE_FILE"] = trace_path
    # (read while no run writes the output)
    left = len(expected) - (len(read(out)) if os.path.exists(out) else 0)
    pr = subprocess.Popen(cmd(out, ["--max-active", "1"] + ckpt), stdout=subprocess.DEVNULL, stderr=errf,
                          env=e_run)
    # a random moment within (about) half the time the work left would take, so that later kills
    # still land mid-job
    delay = rng.uniform(0.2, max(0.4, 0.5 * T * left / len(expected)))
    if ckpt:
        # counted from the run's first checkpoint, not from the launch: the start-up (mpirun, the model, the
        # output's scan) can take most of T on a slow or loaded machine, and a kill during it shows nothing;
        # if no kill has left a sample part-way by the last one, it waits for a durable checkpoint that holds
        # one (the assertion below then tests the product, not the machine's timing)
        last = i == a.kills - 1 and mid_sample == 0
        wait_trace(pr, trace_path, "midway" if last else "begun")
        if not last:
            time.sleep(rng.uniform(0.0, delay))
    else:
        time.sleep(delay)
    t_kill = time.time()
    if pr.poll() is None:
        kill_all(pr)
    pr.wait()
    n = len(read(out)) if os.path.exists(out) else 0
    errf.seek(0)
    err_text = errf.read()
    errf.close()
    if pending_mid:  # the previous kill left a sample part-way: this run must have picked it up
        if "in-flight checkpoint of" in err_text:
            continued += 1
            pending_mid = False
        # the input's rejected lines are listed before the output and its checkpoint are opened
        # (coordinator/job.c: read_input, then open_output): a kill in between leaves only them
        elif any(l.startswith("[diffu") and "rejected line" not in l for l in err_text.splitlines()):
            fail(f"run {i + 1} did not continue the sample(s) in the checkpoint: {err_text[-1500:]}")
        # else: killed before it opened the output (it printed nothing); the next run must
    note = ""
    if ckpt and os.path.exists(out + ".inflight"):
        st = read_inflight(out + ".inflight")
        note = "; in-flight checkpoint: " + ", ".join(f"{k[0]}#{k[1]} at step {s}" for k, s, _ in st)
        done = set(read(out)) if os.path.exists(out) else set()
        # an entry whose sample has its record (it finished after the last checkpoint) is not continued
        if any(s > 0 and k not in done for k, s, _ in st):
            mid_sample += 1
            pending_mid = True
        else:
            pending_mid = False
        with open(trace_path) if os.path.exists(trace_path) else open(os.devnull) as tf:
            begun, written = trace(tf.read())
        if begun:
            ck = {k: (s, f) for k, s, f in st}
            reached = begun[-1][1]  # (steps, forwards) at the last write begun (durable or cut by the kill)
            live = [k for k in reached if k not in done]
            full = sum(max(0, reached[k][1] - ck.get(k, (0, 0))[1]) for k in live)
            if len(live) and full > len(live):
                fail(f"kill {i + 1}: {full} full forwards redone for {len(live)} sample(s) in flight (bound: the"
                     f" write the kill cut, 1 per sample): reached {reached}, checkpoint {ck}")
            if written and begun[-1][0] <= written[-1]:  # the last write completed: the checkpoint is it
                for k in live:
                    if ck.get(k, (0, 0)) != reached[k]:
                        fail(f"kill {i + 1}: the durable checkpoint has {k} at (steps, forwards) {ck.get(k)}, the"
                             f" trace {reached[k]}")
            sec = step_seconds(begun)
            # (t_kill is read just before the signal: a write can end in between, hence max(0, .))
            lost = max(0.0, t_kill - (written[-1] if written else begun[0][0]))
            if live:
                redo.append((len(live), full, lost, sec))
                note += (f"; redone: {full} full forward(s) for {len(live)} sample(s), {lost:.3f} s of work since"
                         f" the last durable checkpoint" + (f" (a step: {sec:.3f} s)" if sec else ""))
    print(f"kill {i + 1}: {n} records{note}")
p = subprocess.run(cmd(out, ["--max-active", "2"] + ckpt), capture_output=True, text=True, env=env())
if p.returncode:
    fail(f"final resume exit {p.returncode}: {p.stderr}")
final = read(out)
same(final, "crash/resume")
if pending_mid:
    if "continued from the in-flight checkpoint" not in p.stderr:
        fail(f"the final run did not continue the checkpointed sample(s): {p.stderr}")
    continued += 1
if ckpt:
    if mid_sample == 0:
        fail(f"none of the {a.kills} kills left a sample part-way in the checkpoint (nothing shown)")
    if os.path.exists(out + ".inflight"):
        fail("the finished job left its in-flight checkpoint behind")
    print(f"in-flight checkpoints: {mid_sample} of {a.kills} kills left a sample part-way, each continued by the"
          f" next run ({continued}); the finished job removed the checkpoint")
    if redo:
        ns, nf = sum(r[0] for r in redo), sum(r[1] for r in redo)
        ratios = [r[2] / r[3] for r in redo if r[3]]
        print(f"work redone: {nf} full forward(s) over {len(redo)} kills with {ns} sample-kills in flight"
              f" ({nf / ns:.2f} per sample); seconds lost per kill / step time: "
              + ", ".join(f"{x:.2f}" for x in ratios))
print(f"crash/resume: {len(final)} records after {a.kills} kills, every (id, sample) once, identical to the"
      " uninterrupted run")

# 3. SIGTERM: drain, exit non-zero with the hint, resume
out = os.path.join(W, "term.jsonl")
pr = subprocess.Popen(cmd(out, ["--max-active", "1", "--format", "diffu"]), stdout=subprocess.DEVNULL,
                      stderr=subprocess.PIPE, text=True, env=env())
# the signal once a record is written (the job is in its loop, its handlers installed, every rank past its
# setup), not after a fixed delay: on a loaded machine the setup alone can take longer than any fixed delay
t_wait = time.time()
while pr.poll() is None and time.time() - t_wait < 240:
    if os.path.exists(out) and os.path.getsize(out) > 0 and b"\n" in open(out, "rb").read():
        break
    time.sleep(0.05)
if a.mpi:
    # to the ranks themselves (the product's SIGTERM path under mpirun): SIGTERM to mpirun itself (Open MPI 4.1) reaches
    # the ranks odls_base_sigkill_timeout s (default 1) late and is followed by SIGKILL as long after, too soon
    # for the drain on a loaded machine (docs/jobs.md: under mpirun, stop a job with SIGUSR1)
    send(descendants(pr.pid)[1:], signal.SIGTERM)
else:
    pr.send_signal(signal.SIGTERM)
_, err = pr.communicate()
if pr.returncode == 0:
    print("note: the job finished before SIGTERM")
elif "rerun the same command to resume" not in err:
    fail(f"SIGTERM: exit {pr.returncode} without the hint: {err}")
p = subprocess.run(cmd(out, ["--max-active", "1"]), capture_output=True, text=True, env=env())
if p.returncode:
    fail(f"resume after SIGTERM: exit {p.returncode}: {p.stderr}")
subprocess.run(["gzip", "-kf", out], check=True)
same(read(out + ".gz"), "SIGTERM/resume")
print("SIGTERM: hint printed, resumed to the same records")
print("PASS")
