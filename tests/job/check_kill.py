#!/usr/bin/python3
"""check_kill.py — a killed job leaves a readable output, and rerunning it resumes.

usage: check_kill.py DIFFU_BIN JOB_FAKE_RUN WORK_DIR [--seed S] [--cuts N]

job_fake_run (tests/job/job_fake_run.c) is the I/O path of `diffu generate
--input/--output` with a deterministic stand-in for the model: the completion
of (id, sample) is fake_completion() below, so every record is known here.

1. Torn gzip at random offsets. A complete OUT.jsonl.gz (60 records, each its
   own gzip member) is cut at 200 random byte offsets plus every member
   boundary, boundary +- 1, 0 and the full size (the sanitizer build: 60
   random cuts and 12 of the boundaries). For each cut:
   - before repair, Python's gzip module streams every record of the complete
     members, in order, before it stops at the torn one (what a reader sees
     right after a kill);
   - `diffu jobcheck --repair` exits 0 and reports records == the number of
     complete record members, good_bytes == the end of the last complete
     member (the file starts with an empty member; a file cut inside that one
     is left with a fresh empty member), and the dropped bytes are saved byte
     for byte in OUT.torn;
   - afterwards `zcat` exits 0 and every line it prints parses with Python's
     json, Python's gzip + json read the same records, and they are exactly the
     first `records` records of the uncut file (a prefix: nothing reordered,
     nothing invented).
   The member boundaries are found independently with zlib (decompressobj +
   unused_data), not with diffu's reader.
2. The same for plain JSONL (a partial last line is the torn tail).
3. Real kills, gzip and plain, diffu and humaneval formats: job_fake_run is
   SIGKILLed at random moments (from outside) and between records
   (--kill-after), several times in a row, then run to the end; between some
   runs part of a record is appended (what a kill inside write() leaves: a
   half gzip member / a partial line; outside kills rarely land inside the
   one write() of a record). The final run must skip what was done; the final
   file must hold every (id, sample) of the input exactly once, each record
   equal to the expected one, be readable by zcat / Python, and every injected
   torn tail must have been saved to a .torn file and never be a complete record.
Last line "N passed, M failed"; exit 1 on any failure.
"""
import gzip
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import zlib

SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error", "BUG:")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from checks import check, report  # noqa: E402  (tests/common/checks.py)


def fake_completion(rid, sample, big):
    """the text job_fake_run writes for (id, sample): same arithmetic, mod 2^32"""
    b = rid.encode()
    parts = ["    return %d  # %s sample %d\n" % (len(b) * 7 + sample, rid, sample)]
    n = len(parts[0].encode())
    x = 2166136261 ^ sample
    for c in b:
        x = ((x ^ c) * 16777619) & 0xFFFFFFFF
    while n < big:
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
        parts.append("    # %08x\n" % x)
        n += 15
    return "".join(parts)


def write_input(path, n_req):
    with open(path, "w") as f:
        for i in range(n_req):
            rid = i if i % 7 == 3 else "task/%d" % i  # some integer ids (MBPP style)
            f.write(json.dumps({"id": rid, "prompt": "def f%d(x):\n" % i, "n": 1 + i % 3}) + "\n")


def expected_set(n_req):
    return {(str(i if i % 7 == 3 else "task/%d" % i), s) for i in range(n_req) for s in range(1 + i % 3)}


def run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, timeout=300, **kw)
    err = p.stderr.decode("utf-8", "replace")
    check(not any(m in err for m in SANITIZER_MARKS), "%s: sanitizer report:\n%s" % (cmd, err))
    return p.returncode, p.stdout.decode("utf-8", "replace"), err


def members(data):
    """(end offset, holds data) of each complete gzip member of data, with zlib"""
    out, off = [], 0
    while off < len(data):
        d = zlib.decompressobj(16 + 15)
        try:
            text = d.decompress(data[off:])
        except zlib.error:
            break
        if not d.eof:
            break
        off = len(data) - len(d.unused_data)
        out.append((off, len(text) > 0))
    return out


def read_gz_records(path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(l) for l in f]


def stream_until_error(path, gz):
    """records a reader gets from a file that may end torn (stops at the first error)"""
    recs = []
    opener = gzip.open if gz else open
    try:
        with opener(path, "rb") as f:
            for line in f:
                if not line.endswith(b"\n"):
                    break
                recs.append(json.loads(line))
    except (EOFError, OSError, zlib.error):
        pass
    return recs


def truncation(diffu, fake, work, rng, gz, n_cuts):
    tag = "gz" if gz else "plain"
    d = os.path.join(work, "trunc_" + tag)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    inp = os.path.join(d, "in.jsonl")
    write_input(inp, 30)
    out = os.path.join(d, "full.jsonl" + (".gz" if gz else ""))
    rc, _, err = run([fake, inp, out, "--big", "300", "--emit-ids"])
    check(rc == 0, "%s: full run: %s" % (tag, err))
    data = open(out, "rb").read()
    if gz:
        full = read_gz_records(out)
        mem = members(data)
        check(mem[0] == (20, False) and len(mem) == len(full) + 1 == 61 and all(m[1] for m in mem[1:])
              and mem[-1][0] == len(data), "%s: an empty member, then one member per record (%d members, %d records)"
              % (tag, len(mem), len(full)))
    else:
        full = [json.loads(l) for l in data.decode().splitlines()]
        mem = [(i + 1, True) for i, c in enumerate(data) if c == 0x0A]
    ends = [e for e, _ in mem]
    rec_ends = [e for e, nonempty in mem if nonempty]
    cuts = set(rng.sample(range(len(data) + 1), n_cuts)) | {0, 1, 9, 10, 19, 20, 21, len(data) - 1, len(data)}
    for e in (ends if n_cuts >= 200 else rng.sample(ends, 12)):  # the sanitizer build: some boundaries
        cuts |= {e - 9, e - 8, e - 1, e, e + 1}
    cuts = sorted(c for c in cuts if 0 <= c <= len(data))
    cut_path = os.path.join(d, "cut.jsonl" + (".gz" if gz else ""))
    for cut in cuts:
        for f in os.listdir(d):
            if f.startswith("cut."):
                os.unlink(os.path.join(d, f))
        with open(cut_path, "wb") as f:
            f.write(data[:cut])
        k = sum(1 for e in rec_ends if e <= cut)  # complete records before the cut
        good = max([e for e in ends if e <= cut], default=0)
        size_after = good if (good or not gz) else 20  # gzip cut to nothing: one empty member
        what = "%s cut at %d (%d complete)" % (tag, cut, k)
        before = stream_until_error(cut_path, gz)
        # right after a kill a streaming reader gets the complete records; when only the end of the
        # next member is missing (its trailer, its last deflate bytes), it may also get that record
        check(before == full[:k] or (gz and before == full[:k + 1]),
              "%s: before repair a reader gets %d records" % (what, len(before)))
        rc, so, err = run([diffu, "jobcheck", "--repair", cut_path])
        check(rc == 0, "%s: repair exit %d: %s" % (what, rc, err))
        if rc:
            continue
        rep = json.loads(so)
        check(rep["records"] == k and rep["good_bytes"] == size_after and rep["dropped_bytes"] == cut - good,
              "%s: report %s (want records %d, good %d)" % (what, rep, k, size_after))
        check(os.path.getsize(cut_path) == size_after, "%s: size after repair %d" % (what, os.path.getsize(cut_path)))
        if cut > good:
            check(rep["saved_to"] == cut_path + ".torn" and open(cut_path + ".torn", "rb").read() == data[good:cut],
                  "%s: torn tail saved" % what)
            check("warning: %s: dropped a torn tail: %d bytes" % (cut_path, cut - good) in err or
                  "warning: %s: dropped a torn tail: a partial last line of %d bytes" % (cut_path, cut - good) in err,
                  "%s: the drop is logged: %s" % (what, err))
        else:
            check(rep["saved_to"] == "" and not os.path.exists(cut_path + ".torn"), "%s: nothing to save" % what)
        if gz:
            z = subprocess.run(["zcat", cut_path], capture_output=True)
            lines = z.stdout.decode().splitlines()
            check(z.returncode == 0 and [json.loads(l) for l in lines] == full[:k],
                  "%s: zcat exit %d, %d lines: %s" % (what, z.returncode, len(lines), z.stderr.decode()))
            check(read_gz_records(cut_path) == full[:k], "%s: python gzip + json" % what)
        else:
            with open(cut_path) as f:
                check([json.loads(l) for l in f] == full[:k], "%s: python json" % what)
        # a second repair finds nothing to do
        rc, so, err = run([diffu, "jobcheck", "--repair", cut_path])
        check(rc == 0 and json.loads(so)["dropped_bytes"] == 0 and json.loads(so)["records"] == k,
              "%s: second repair: %s" % (what, so))
    print("%s: %d cuts checked" % (tag, len(cuts)))


def kills(fake, work, rng, gz, fmt, trials, big=2000, n_req=40, window=0.05):
    tag = "kill %s %s big %d" % ("gz" if gz else "plain", fmt, big)
    d = os.path.join(work, "kill_%s_%s_%d" % ("gz" if gz else "plain", fmt, big))
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    inp = os.path.join(d, "in.jsonl")
    write_input(inp, n_req)
    out = os.path.join(d, "out.jsonl" + (".gz" if gz else ""))
    base = [fake, inp, out, "--format", fmt, "--big", str(big)]
    killed = injected = 0
    for t in range(trials):
        if t % 3 == 1 and os.path.exists(out):  # what a kill inside write() leaves: part of a record
            rec = json.dumps({"id": "task/0", "sample": 99, "completion": "x" * 500}).encode() + b"\n"
            part = gzip.compress(rec, mtime=0) if gz else rec
            with open(out, "ab") as f:
                f.write(part[: rng.randint(1, len(part) - 1)])
            injected += 1
        if t % 3 == 2:  # a kill between two records
            rc, _, err = run(base + ["--kill-after", str(rng.randint(1, 5))])
            check(rc == -signal.SIGKILL or rc == 0, "%s: --kill-after run: %d %s" % (tag, rc, err))
            killed += rc == -signal.SIGKILL
        else:  # a kill from outside at a random moment, often inside a write
            p = subprocess.Popen(base + ["--sleep-us", "3000"], stderr=subprocess.PIPE)
            time.sleep(rng.uniform(0.005, window))
            p.send_signal(signal.SIGKILL)
            _, e = p.communicate()
            e = e.decode("utf-8", "replace")
            check(not any(m in e for m in SANITIZER_MARKS), "%s: sanitizer report:\n%s" % (tag, e))
            check(p.returncode in (-signal.SIGKILL, 0), "%s: killed run ended %d: %s" % (tag, p.returncode, e))
            killed += p.returncode == -signal.SIGKILL
    rc, _, err = run(base)
    check(rc == 0, "%s: final run: %s" % (tag, err))
    m = re.search(r"skipped (\d+), wrote (\d+)", err)
    check(killed >= trials // 2 and m and int(m.group(1)) > 0,
          "%s: %d runs killed; final run: %s (the job must have been interrupted and resumed)" % (tag, killed, err))
    if gz:
        z = subprocess.run(["zcat", out], capture_output=True)
        check(z.returncode == 0, "%s: zcat: %s" % (tag, z.stderr.decode()))
        recs = read_gz_records(out)
        check([json.loads(l) for l in z.stdout.decode().splitlines()] == recs, "%s: zcat == python gzip" % tag)
    else:
        with open(out) as f:
            recs = [json.loads(l) for l in f]
    key = "id" if fmt == "diffu" else "task_id"
    got = [(str(r[key]), r["sample"]) for r in recs]
    check(len(got) == len(set(got)), "%s: %d records, %d distinct (duplicates)" % (tag, len(got), len(set(got))))
    check(set(got) == expected_set(n_req), "%s: missing %s extra %s" % (tag, sorted(expected_set(n_req) - set(got))[:5],
                                                                      sorted(set(got) - expected_set(n_req))[:5]))
    bad = [r for r in recs if r["completion"] != fake_completion(str(r[key]), r["sample"], big)]
    check(not bad, "%s: %d records with a wrong completion" % (tag, len(bad)))
    if fmt == "diffu":
        ints = [r for r in recs if isinstance(r["id"], int)]
        check(len(ints) == sum(1 + i % 3 for i in range(n_req) if i % 7 == 3), "%s: integer ids kept" % tag)
    torn = sorted(f for f in os.listdir(d) if ".torn" in f)
    for f in torn:  # each saved tail is a record cut short: never a complete record
        t = open(os.path.join(d, f), "rb").read()
        if gz:
            m = members(t)
            check(all(not nonempty for _, nonempty in m) and (not m or m[-1][0] < len(t)),
                  "%s: %s holds a complete record" % (tag, f))
        else:
            check(b"\n" not in t, "%s: %s holds a complete line" % (tag, f))
    # every injected tail must have been repaired; a kill from outside that lands inside a
    # write() (likely on a slow build, e.g. under AddressSanitizer) leaves a real one too
    check(len(torn) >= injected, "%s: %d torn tails saved for %d injected" % (tag, len(torn), injected))
    print("%s: %d runs killed, %d records, %d torn tails repaired on the way" % (tag, killed, len(recs), len(torn)))
    return len(torn)


def main():
    diffu, fake, work = sys.argv[1], sys.argv[2], sys.argv[3]
    seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 20260627
    n_cuts = int(sys.argv[sys.argv.index("--cuts") + 1]) if "--cuts" in sys.argv else 200
    rng = random.Random(seed)
    os.makedirs(work, exist_ok=True)
    truncation(diffu, fake, work, rng, True, n_cuts)
    truncation(diffu, fake, work, rng, False, n_cuts)
    for gz in (True, False):
        for fmt in ("diffu", "humaneval"):
            kills(fake, work, rng, gz, fmt, trials=9)
    return report()


if __name__ == "__main__":
    sys.exit(main())
