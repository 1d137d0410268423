#!/usr/bin/python3
"""tests/slurm/standin_job.py — a STAND-IN for the batch job
`diffu generate --input IN --output OUT`, for testing the Slurm harness
(deploy/slurm/) before the real job lands. It is NOT diffu: no model, no MPI.
The harness runs it in place of `diffu generate` through DIFFU_JOB_CMD; the
lead swaps in the real job by unsetting DIFFU_JOB_CMD.

What it imitates (the contract the harness relies on):
  - launched once per rank (mpirun / srun); rank 0 does the work, the other
    ranks exit 0 at once (they are not MPI processes);
  - reads IN (JSONL, plain or gzip by content; blank lines skipped), one
    request per line with "id" (or "task_id"), string or integer, and an
    optional "n" (samples; default --n, 1); a later line repeating an id, or
    a line without a readable id, is rejected (reported on stderr);
  - appends one record per (id, sample) to OUT: {"id", "sample",
    "completion", "stand_in": true, "restart", "job", "host"}, one line each,
    flushed and fsync'ed; OUT.gz: each record its own gzip member;
  - resumable: on start it takes an exclusive flock on OUT, drops a torn last
    record (a partial line, or an incomplete gzip member), and skips every
    (id, sample) already there;
  - SIGUSR1 / SIGTERM / SIGINT: finishes nothing more, prints a resume hint
    and exits 128 + signal (as diffu's ranks do); a full run exits 0.
  - --dry-run: reads IN, prints what it would do, exits 0.
Pace: DIFFU_STANDIN_DELAY seconds per record (default 0.2), so a test can
make it last longer than a time limit. Every other option is accepted and
ignored (the harness passes diffu generate's).
"""
import argparse
import fcntl
import gzip
import json
import os
import signal
import socket
import sys
import time
import zlib


def rank():
    for v in ("OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"):
        if os.environ.get(v, "").isdigit():
            return int(os.environ[v])
    return 0


def id_key(v):
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str) and v:
        return v
    return None


def read_requests(path, default_n):
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    reqs, seen = [], set()
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        if not raw.strip():
            continue
        try:
            o = json.loads(raw)
            v = o.get("id", o.get("task_id")) if isinstance(o, dict) else None
            k = id_key(v)
            n = o.get("n") if isinstance(o, dict) else None
            n = default_n if n is None else n
            if k is None or not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise ValueError("no readable id / n")
        except ValueError as e:
            print(f"stand-in: {path}:{lineno}: rejected ({e})", file=sys.stderr)
            continue
        if k in seen:
            print(f"stand-in: {path}:{lineno}: rejected (id {k!r} repeats an earlier line)", file=sys.stderr)
            continue
        seen.add(k)
        reqs.append((v, k, n))
    return reqs


def scan_output(fd, gz):
    """(done set, good length): complete records, and where the torn tail starts."""
    os.lseek(fd, 0, os.SEEK_SET)
    data = b""
    while True:
        b = os.read(fd, 1 << 20)
        if not b:
            break
        data += b
    done, good = set(), 0
    if gz:
        text, pos = b"", 0
        while pos < len(data):
            d = zlib.decompressobj(31)
            try:
                out = d.decompress(data[pos:])
            except zlib.error:
                break
            if not d.eof:
                break  # incomplete member: torn
            used = len(data) - pos - len(d.unused_data)
            if not out.endswith(b"\n"):
                break
            text += out
            pos += used
            good = pos
        lines = text.split(b"\n")[:-1]
    else:
        end = data.rfind(b"\n")
        good = end + 1
        lines = data[:good].split(b"\n")[:-1]
    for ln in lines:
        o = json.loads(ln)
        done.add((id_key(o.get("id", o.get("task_id"))), o["sample"]))
    return done, good, len(data)


stop_sig = None


def on_signal(sig, frame):
    global stop_sig
    stop_sig = sig


def main():
    ap = argparse.ArgumentParser(description="stand-in for diffu generate --input/--output (tests only)")
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--n", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--dry-run", action="store_true")
    args, _ignored = ap.parse_known_args()
    r = rank()
    aff = sorted(os.sched_getaffinity(0))
    host = socket.gethostname()
    print(f"stand-in rank {r} on {host} pid {os.getpid()}: cpus {aff}, --threads {args.threads}", file=sys.stderr, flush=True)
    if r != 0:
        return 0
    for s in (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT):
        signal.signal(s, on_signal)
    reqs = read_requests(args.input, args.n)
    if args.dry_run:
        print(f"stand-in dry run: {len(reqs)} request(s), {sum(n for _, _, n in reqs)} sample(s) -> {args.output}")
        return 0
    gz = args.output.endswith(".gz")
    fd = os.open(args.output, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        print(f"stand-in: error: {args.output} is being written by another job", file=sys.stderr)
        return 1
    done, good, size = scan_output(fd, gz)
    if good < size:
        print(f"stand-in: {args.output}: dropped a torn last record ({size - good} bytes)", file=sys.stderr)
        os.ftruncate(fd, good)
    todo = [(v, k, s) for v, k, n in reqs for s in range(n) if (k, s) not in done]
    print(f"stand-in: {len(reqs)} request(s); {len(done)} record(s) already in {args.output}; {len(todo)} to do",
          file=sys.stderr, flush=True)
    delay = float(os.environ.get("DIFFU_STANDIN_DELAY", "0.2"))
    restart = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
    job = os.environ.get("SLURM_JOB_ID", "")
    wrote = 0
    for v, k, s in todo:
        t_end = time.monotonic() + delay
        while stop_sig is None and time.monotonic() < t_end:
            time.sleep(min(0.05, max(0.0, t_end - time.monotonic())))
        if stop_sig is not None:
            break
        rec = {"id": v, "sample": s, "completion": f"    return None  # stand-in {k} sample {s}\n",
               "stand_in": True, "restart": restart, "job": job, "host": host}
        line = (json.dumps(rec, ensure_ascii=False) + "\n").encode()
        os.write(fd, gzip.compress(line) if gz else line)
        os.fsync(fd)
        wrote += 1
    os.close(fd)
    if stop_sig is not None:
        name = signal.Signals(stop_sig).name
        left = len(todo) - wrote
        print(f"stand-in: {name}: stopped after {wrote} record(s) this run, {left} left; "
              f"rerun the same command to resume", file=sys.stderr, flush=True)
        return 128 + stop_sig
    print(f"stand-in: done: wrote {wrote} record(s) this run", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
