#!/usr/bin/env bash
# tests/slurm/check_split_merge.sh DIFFU_BIN — `diffu split` and `diffu merge`
# without Slurm. References: awk / zcat / cmp on the same files (what the
# shards must hold, line for line), and hand-written expectations.
#   split: round-robin = line i to shard i mod K, byte for byte (CRLF kept, a
#     BOM kept on the first line, a last line without '\n' gets one, lines the
#     job would reject kept); --contiguous = consecutive blocks differing by
#     at most one; whitespace-only lines dropped; a repeated id follows its
#     first line's shard; gzip in -> gzip out (readable by zcat), plain in ->
#     plain out; the union of the shards is the input (sorted multiset);
#     deterministic (twice = identical bytes); refuses to overwrite without
#     --force, K > lines, a truncated gzip, a missing file.
#   merge: concatenation in argument order, byte for byte; every (id, sample)
#     exactly once; 7 and "7" the same id; "task_id" records; duplicates,
#     missing, unexpected, torn last record, non-record line, truncated gzip
#     each refused with a one-line reason on the last stderr line and no
#     output file; --dedupe, --missing-ok, --n; gzip output by name.
set -uo pipefail
BIN=$(readlink -f "${1:?usage: $0 path/to/diffu}")
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
n_ok=0
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { n_ok=$((n_ok + 1)); }
# expect_fail "what" "reason regex" cmd...: exit 1, reason on the last stderr line
expect_fail() {
    local what=$1 re=$2
    shift 2
    "$@" >/dev/null 2>err.txt
    local rc=$?
    [[ $rc == 1 ]] || { cat err.txt >&2; fail "$what: exit $rc, expected 1"; }
    tail -n 1 err.txt | grep -Eq "$re" || fail "$what: last stderr line '$(tail -n 1 err.txt)' lacks /$re/"
    ok
}

# ---- an input with the awkward cases --------------------------------------------
{
    printf '\xef\xbb\xbf{"id": "bom", "prompt": "p0"}\n'
    printf '{"id": "crlf", "prompt": "p1"}\r\n'
    printf '   \n'
    printf '{"id": 7, "prompt": "int id", "n": 3}\n'
    printf '{"task_id": "HumanEval/0", "prompt": "task id"}\n'
    printf 'this line is not JSON and the job will reject it\n'
    printf '\t\r\n'
    printf '{"id": "bom", "prompt": "a repeated id"}\n'
    printf '{"id": "u", "prompt": "caf\xc3\xa9 \\u00e9 \xf0\x9f\x98\x80"}\n'
    for i in $(seq 1 20); do printf '{"id": "r%02d", "prompt": "x"}\n' "$i"; done
    printf '{"id": "last", "prompt": "no newline at the end"}'
} >in.jsonl
nonblank=$(awk '!/^[[:space:]]*$/' in.jsonl | wc -l)
[[ $nonblank == 28 ]] || fail "test input: $nonblank non-blank lines, expected 28"

# ---- split: round-robin, plain -----------------------------------------------------
"$BIN" split --input in.jsonl --shards 3 --out-prefix rr >paths.txt 2>split.err || { cat split.err; fail "split rr"; }
[[ "$(cat paths.txt)" == "$(printf 'rr-00000-of-00003.jsonl\nrr-00001-of-00003.jsonl\nrr-00002-of-00003.jsonl')" ]] ||
    fail "split printed '$(cat paths.txt)'"
ok
# reference: non-blank lines (the last one given its '\n'), the repeated id moved after its first line's shard
awk 'BEGIN { ORS = "" } !/^[[:space:]\r]*$/ { print $0 "\n" }' in.jsonl >nb.txt
grep -n '' nb.txt | grep -v '"a repeated id"' | cut -d: -f2- >uniq.txt
for k in 0 1 2; do
    awk -v k="$k" '(NR - 1) % 3 == k' uniq.txt >want.$k
done
# "bom" is line 1 of uniq -> shard 0; the repeat goes right after shard 0's lines before it in file order
/usr/bin/python3 - <<'EOF' || fail "reference for the repeated id"
lines = open("nb.txt", "rb").read().split(b"\n")[:-1]
shards, first, i = [[], [], []], {}, 0
import json
for ln in lines:
    try:
        o = json.loads(ln.decode("utf-8-sig"))
        key = str(o.get("id", o.get("task_id")))
    except Exception:
        key = None
    if key is not None and key in first:
        shards[first[key]].append(ln)
        continue
    s = i % 3
    i += 1
    if key is not None:
        first[key] = s
    shards[s].append(ln)
for k in range(3):
    open(f"want.{k}", "wb").write(b"".join(l + b"\n" for l in shards[k]))
EOF
for k in 0 1 2; do cmp -s "rr-0000$k-of-00003.jsonl" "want.$k" || fail "round-robin shard $k differs from the reference"; done
ok
head -c 3 rr-00000-of-00003.jsonl | od -An -tx1 | grep -q 'ef bb bf' || fail "BOM not kept on the first line"
grep -q $'"crlf", "prompt": "p1"}\r$' rr-0000*-of-00003.jsonl || fail "CRLF not kept"
grep -q 'not JSON' rr-0000*-of-00003.jsonl || fail "a line the job rejects was dropped"
grep -q '"a repeated id"' rr-00000-of-00003.jsonl || fail "the repeated id did not follow its first line (shard 0)"
for k in 0 1 2; do [[ "$(tail -c 1 "rr-0000$k-of-00003.jsonl" | od -An -tx1 | tr -d ' ')" == 0a ]] || fail "shard $k does not end in a newline"; done
[[ "$(cat rr-*.jsonl | sort | md5sum)" == "$(sort nb.txt | md5sum)" ]] || fail "the shards together are not the input's lines"
grep -q '2 whitespace-only line(s) dropped' split.err || fail "blank lines not reported: $(cat split.err)"
ok
# deterministic, and no overwrite without --force
mkdir again && (cd again && "$BIN" split --input ../in.jsonl --shards 3 --out-prefix rr >/dev/null 2>&1) || fail "split again"
for k in 0 1 2; do cmp -s "rr-0000$k-of-00003.jsonl" "again/rr-0000$k-of-00003.jsonl" || fail "split is not deterministic"; done
ok
expect_fail "overwrite" 'rr-00000-of-00003.jsonl exists \(--force replaces it\)' "$BIN" split --input in.jsonl --shards 3 --out-prefix rr
"$BIN" split --input in.jsonl --shards 3 --out-prefix rr --force >/dev/null 2>&1 || fail "--force"
ok

# ---- split: contiguous, gzip ----------------------------------------------------------
gzip -c in.jsonl >in.jsonl.gz
"$BIN" split --input in.jsonl.gz --shards 4 --out-prefix ct --contiguous >paths.txt 2>/dev/null || fail "split contiguous gz"
for k in 0 1 2 3; do
    f=ct-0000$k-of-00004.jsonl.gz
    [[ "$(head -c 2 "$f" | od -An -tx1 | tr -d ' ')" == 1f8b ]] || fail "$f is not gzip"
    zcat "$f" >c.$k || fail "zcat $f"
done
# 27 distinct-id lines in 4 blocks: 7 7 7 6 (+ the repeated id with its first line, block 0)
[[ "$(wc -l <c.0) $(wc -l <c.1) $(wc -l <c.2) $(wc -l <c.3)" == "8 7 7 6" ]] ||
    fail "contiguous sizes $(wc -l <c.0) $(wc -l <c.1) $(wc -l <c.2) $(wc -l <c.3)"
[[ "$(cat c.0 c.1 c.2 c.3 | grep -v 'a repeated id')" == "$(grep -v 'a repeated id' nb.txt)" ]] || fail "contiguous blocks are not the input in order"
ok
# a plain file named .gz is read by content (plain shards); a truncated gzip is refused
cp in.jsonl plain.jsonl.gz
"$BIN" split --input plain.jsonl.gz --shards 2 --out-prefix pl 2>/dev/null | grep -q 'pl-00000-of-00002.jsonl$' || fail "plain content named .gz"
ok
head -c 200 in.jsonl.gz >trunc.jsonl.gz
expect_fail "truncated gzip" 'trunc.jsonl.gz: truncated or corrupt gzip' "$BIN" split --input trunc.jsonl.gz --shards 2 --out-prefix tr
ls tr-* >/dev/null 2>&1 && fail "split left shards of a damaged input"
expect_fail "too many shards" 'fewer than --shards 40' "$BIN" split --input in.jsonl --shards 40 --out-prefix many
expect_fail "missing input" 'nope.jsonl: No such file' "$BIN" split --input nope.jsonl --shards 2 --out-prefix x
"$BIN" split --input in.jsonl --shards 0 --out-prefix x >/dev/null 2>&1
[[ $? == 2 ]] || fail "--shards 0 is a usage error"
ok

# ---- merge --------------------------------------------------------------------------------
# outputs of the requests of in.jsonl (the job would reject the non-JSON line; "bom" asked once)
rec() { printf '{"id": %s, "sample": %d, "completion": "c %s %d"}\n' "$1" "$2" "${1//\"/}" "$2"; }
{ rec '"bom"' 0; rec '"crlf"' 0; rec 7 0; rec '"7"' 1; } >o1.jsonl
{ rec 7 2; printf '{"task_id": "HumanEval/0", "sample": 0, "completion": "t"}\n'; rec '"u"' 0; } | gzip >o2.jsonl.gz
: >o3.jsonl
for i in $(seq 1 20); do rec "\"r$(printf '%02d' "$i")\"" 0; done >>o3.jsonl
rec '"last"' 0 | gzip >o4.jsonl.gz
"$BIN" merge --input in.jsonl --output all.jsonl o1.jsonl o2.jsonl.gz o3.jsonl o4.jsonl.gz 2>merge.err || { cat merge.err; fail "merge"; }
[[ "$(cat all.jsonl)" == "$(cat o1.jsonl; zcat o2.jsonl.gz; cat o3.jsonl; zcat o4.jsonl.gz)" ]] || fail "merge is not the concatenation"
grep -q '28 (id, sample) expected; 1 line(s) without a readable id, 1 repeated id(s)' merge.err || fail "merge summary: $(cat merge.err)"
grep -q ': 28 record(s), 0 duplicate(s), 0 unexpected, 0 missing' merge.err || fail "merge counts: $(cat merge.err)"
ok
"$BIN" merge --input in.jsonl.gz --output all.jsonl.gz o1.jsonl o2.jsonl.gz o3.jsonl o4.jsonl.gz 2>/dev/null || fail "merge to .gz"
[[ "$(zcat all.jsonl.gz)" == "$(cat all.jsonl)" ]] || fail "gzip output differs"
"$BIN" merge o1.jsonl o2.jsonl.gz o3.jsonl o4.jsonl.gz 2>/dev/null || fail "merge without --input (check only)"
ok
rm -f out.jsonl
expect_fail "duplicate" '^diffu merge: error: 1 duplicate \(id, sample\) record\(s\)' \
    "$BIN" merge --input in.jsonl --output out.jsonl o1.jsonl o2.jsonl.gz o3.jsonl o4.jsonl.gz o4.jsonl.gz
[[ -e out.jsonl ]] && fail "merge wrote an output despite duplicates"
grep -q 'duplicate: id "last" sample 0' err.txt || fail "the duplicate is not named"
"$BIN" merge --dedupe --input in.jsonl --output out.jsonl o1.jsonl o2.jsonl.gz o3.jsonl o4.jsonl.gz o4.jsonl.gz 2>/dev/null || fail "--dedupe"
cmp -s out.jsonl all.jsonl || fail "--dedupe output differs"
ok
expect_fail "missing" '^diffu merge: error: 20 of 28 \(id, sample\) pair\(s\) missing' "$BIN" merge --input in.jsonl o1.jsonl o2.jsonl.gz o4.jsonl.gz
grep -q 'missing: id "r01" sample 0 (in.jsonl:' err.txt || fail "a missing pair is not named"
"$BIN" merge --missing-ok --input in.jsonl --output part.jsonl o1.jsonl o2.jsonl.gz o4.jsonl.gz 2>/dev/null || fail "--missing-ok"
[[ $(wc -l <part.jsonl) == 8 ]] || fail "--missing-ok output"
ok
rec '"nobody"' 0 >extra.jsonl
expect_fail "unexpected id" 'record\(s\) not asked for by in.jsonl' "$BIN" merge --input in.jsonl o1.jsonl o2.jsonl.gz o3.jsonl o4.jsonl.gz extra.jsonl
rec '"crlf"' 1 >extra.jsonl
expect_fail "sample >= n" 'not asked for' "$BIN" merge --input in.jsonl o1.jsonl o2.jsonl.gz o3.jsonl o4.jsonl.gz extra.jsonl
"$BIN" merge --n 2 --input in.jsonl o1.jsonl o2.jsonl.gz o3.jsonl o4.jsonl.gz extra.jsonl 2>err.txt
[[ $? == 1 ]] && tail -n 1 err.txt | grep -q 'missing' || fail "--n 2: the other second samples should be missing"
ok
printf '{"id": "a", "sample": 0}\n{"id": "b", "sam' >torn.jsonl
expect_fail "torn" 'torn.jsonl:2: torn last record \(16 bytes without a line end\)' "$BIN" merge torn.jsonl
printf '{"id": "a", "sample": 0}\n[1, 2]\n' >notrec.jsonl
expect_fail "not a record" 'notrec.jsonl:2: not a job record \(not a JSON object\)' "$BIN" merge notrec.jsonl
printf '{"id": "a"}\n' >nosample.jsonl
expect_fail "no sample" 'nosample.jsonl:1: not a job record \(no "sample"\)' "$BIN" merge nosample.jsonl
printf '{"id": 1.5, "sample": 0}\n' >badid.jsonl
expect_fail "bad id" 'badid.jsonl:1: not a job record' "$BIN" merge badid.jsonl
gzip -c o3.jsonl | head -c 100 >trunc.jsonl.gz
expect_fail "truncated gzip output" 'trunc.jsonl.gz: truncated or corrupt gzip' "$BIN" merge trunc.jsonl.gz
"$BIN" merge >/dev/null 2>&1
[[ $? == 2 ]] || fail "merge without files is a usage error"
ok
echo "PASS ($n_ok checks)"
