#!/usr/bin/env bash
# check_full.sh — an output that cannot be written: a full disk, /dev/full, a
# directory, a missing directory, a read-only file system.
#   check_full.sh JOB_FAKE_RUN PYTHON WORK_DIR
# The disk is a 64 KiB tmpfs mounted in a private user + mount namespace
# (unshare -rm: no root needed; exit 77 = skipped where namespaces are off).
# Asserted, for plain and gzip output:
#   - the job fails with exit 1 and one error naming the file, the record, the
#     bytes written and "No space left on device", and saying the file was cut
#     back to its last complete record;
#   - what is left is only complete records (every line parses with Python's
#     json; gzip: Python's gzip reads every member, no torn one), at least one;
#   - after the tmpfs is grown (mount -o remount), the same command resumes and
#     the output holds every (id, sample) exactly once;
#   - /dev/full, a directory, a missing directory and a read-only mount are
#     refused before any work with a clear one-line reason.
set -u
FAKE="$1"; PY="$2"; WORK="$3"
mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
if [[ -z "${CHECK_FULL_INSIDE:-}" ]]; then
    if ! unshare -rm sh -c "mkdir -p '$WORK/probe' && mount -t tmpfs -o size=64k tmpfs '$WORK/probe'" 2>/dev/null; then
        echo "check_full: SKIP: cannot mount a tmpfs in a user namespace here (unshare -rm)"
        exit 77
    fi
    CHECK_FULL_INSIDE=1 exec unshare -rm bash "$0" "$FAKE" "$PY" "$WORK"
fi

pass=0; fail=0
ok()   { pass=$((pass + 1)); }
bad()  { fail=$((fail + 1)); echo "FAIL $*"; }
expect() { if eval "$1"; then ok; else bad "$2"; fi; }
clean() { # no sanitizer report in a run's stderr
    case "$1" in *AddressSanitizer*|*LeakSanitizer*|*"runtime error"*|*BUG:*) bad "sanitizer report: $1";; *) ok;; esac
}

IN="$WORK/in.jsonl"
"$PY" -c "
import json
with open('$IN', 'w') as f:
    for i in range(30):
        f.write(json.dumps({'id': 'task/%d' % i, 'prompt': 'def f%d():\n' % i}) + '\n')
"
MNT="$WORK/mnt"
mkdir -p "$MNT"
umount "$MNT" 2>/dev/null
mount -t tmpfs -o size=64k tmpfs "$MNT" || { echo "check_full: mount failed"; exit 1; }

verify() { # FILE GZ WANT(-1: any >0) -> prints the record count, fails on a torn/invalid record
    "$PY" - "$1" "$2" "$3" <<'EOF'
import gzip, json, sys, zlib
path, gz, want = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])
data = open(path, "rb").read()
if gz:
    off = 0
    while off < len(data):  # every member complete
        d = zlib.decompressobj(31)
        d.decompress(data[off:])
        assert d.eof, "torn gzip member at %d" % off
        off = len(data) - len(d.unused_data)
    text = gzip.decompress(data).decode()
else:
    text = data.decode()
assert text == "" or text.endswith("\n"), "partial last line"
recs = [json.loads(l) for l in text.splitlines()]
keys = [(r["id"], r["sample"]) for r in recs]
assert len(keys) == len(set(keys)), "duplicates"
if want >= 0:
    assert set(keys) == {("task/%d" % i, 0) for i in range(want)}, "not the full set"
else:
    assert len(keys) > 0, "no record survived"
print(len(keys))
EOF
}

for gz in 0 1; do
    ext=jsonl; big=4000
    if [[ $gz == 1 ]]; then ext=jsonl.gz; big=9000; fi
    OUT="$MNT/out.$ext"
    rm -f "$MNT"/out.*
    mount -o remount,size=64k "$MNT"
    err="$("$FAKE" "$IN" "$OUT" --big $big 2>&1 >/dev/null)"; rc=$?
    clean "$err"
    expect "[[ $rc == 1 ]]" "gz=$gz: full disk: exit $rc: $err"
    expect "[[ \"\$err\" == *\"$OUT: writing the record of id 'task/\"*\"No space left on device; the file was cut back to its last complete record\"* ]]" \
           "gz=$gz: message: $err"
    n="$(verify "$OUT" $gz -1 2>&1)"
    expect "[[ \"$n\" =~ ^[0-9]+$ ]]" "gz=$gz: after ENOSPC the file is not clean: $n"
    echo "gz=$gz: disk full after $n complete records: $(echo "$err" | grep -o 'No space.*' | head -c 120)"
    mount -o remount,size=1m "$MNT"
    err="$("$FAKE" "$IN" "$OUT" --big $big 2>&1 >/dev/null)"; rc=$?
    clean "$err"
    expect "[[ $rc == 0 && \"\$err\" == *\"skipped $n, wrote $((30 - n))\"* ]]" "gz=$gz: resume after space freed: exit $rc: $err"
    m="$(verify "$OUT" $gz 30 2>&1)"
    expect "[[ \"$m\" == 30 ]]" "gz=$gz: final file: $m"
done

# refused before any work
err="$("$FAKE" "$IN" /dev/full 2>&1)"; rc=$?
expect "[[ $rc == 1 && \"\$err\" == *\"/dev/full: not a regular file (a character device)\"* ]]" "/dev/full: $rc $err"
err="$("$FAKE" "$IN" "$MNT" 2>&1)"; rc=$?
expect "[[ $rc == 1 && \"\$err\" == *\"$MNT: not a regular file (a directory)\"* ]]" "directory: $rc $err"
err="$("$FAKE" "$IN" "$WORK/no/such/dir/out.jsonl" 2>&1)"; rc=$?
expect "[[ $rc == 1 && \"\$err\" == *\"cannot create or open for writing: No such file or directory\"* ]]" "missing dir: $rc $err"
mount -o remount,ro "$MNT"
err="$("$FAKE" "$IN" "$MNT/new.jsonl" 2>&1)"; rc=$?
expect "[[ $rc == 1 && \"\$err\" == *\"cannot create or open for writing: Read-only file system\"* ]]" "read-only: $rc $err"
umount "$MNT"

echo "$pass passed, $fail failed"
[[ $fail == 0 ]]
