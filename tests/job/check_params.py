#!/usr/bin/env python3
"""One set of rules for the generation parameters (coordinator/genparam.h):
every parameter is accepted or refused alike as a command-line flag (`diffu
jobcheck --FLAG V`, the same parser as `diffu generate`'s) and as a request's
JSON key, at and beyond each end of its range, and the value lands in the
request's "params" the same way from both. The expected ranges below are the
documented ones (genparam.h, docs/jobs.md), written here independently of the
table; `diffu generate --help` and `diffu jobcheck --help` must list every flag.

  check_params.py DIFFU_BIN WORKDIR
"""
import json
import os
import shutil
import subprocess
import sys

diffu, W = sys.argv[1], sys.argv[2]
shutil.rmtree(W, ignore_errors=True)
os.makedirs(W)

# (json key, flag, kind, lo, hi, lo_open)
I63 = 2**63 - 1
SPEC = [
    ("max_new_tokens", "max-new-tokens", "int", 1, 2**20, False),
    ("steps", "steps", "int", 1, 2**24, False),
    ("temperature", "temperature", "num", 0, 1e6, False),
    ("top_p", "top-p", "num", 0, 1, True),
    ("top_k", "top-k", "int", 0, 2**30, False),
    ("alg_temp", "alg-temp", "num", 0, 1e6, False),
    ("seed", "seed", "int", 0, I63, False),
    ("eps", "eps", "num", 0, 0.999999, False),
    ("block_length", "block-length", "int", 0, 2**20, False),
    ("threshold", "threshold", "num", 0, 1, False),
    ("factor", "factor", "num", 0, 1e6, False),
    ("cache_refresh", "cache-refresh", "int", 0, 2**20, False),
    ("n", "n", "int", 1, 65536, False),
]
fails = []
# parameters whose whole range needs another one set (block_length must divide max_new_tokens)
CTX = {"block_length": {"max_new_tokens": 2**20},
       "cache": {"max_new_tokens": 32, "block_length": 8, "cache_refresh": 2}}  # (prefix/dual: blocks; delayed: refresh)


def jobcheck(lines, args):
    path = os.path.join(W, "in.jsonl")
    with open(path, "w") as f:
        f.write("".join(json.dumps(l) + "\n" for l in lines))
    p = subprocess.run([diffu, "jobcheck", "--input", path] + args, capture_output=True, text=True)
    out = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    return p.returncode, out, p.stderr


def params_of(rec, key):
    if key == "n":
        return rec["n"]
    # the KV-cache rows are recorded only when not their default (records of exact runs unchanged)
    return rec["params"].get(key, {"cache": "none", "cache_refresh": 0}.get(key))


def case(key, flag, value, want):
    """value: a JSON value; the flag gets its text."""
    text = value if isinstance(value, str) else (repr(value) if isinstance(value, float) else str(value))
    ctx = CTX.get(key, {})
    ctx_args = [a for k, v in ctx.items() for a in (f"--{k.replace('_', '-')}", str(v))]
    rc, out, err = jobcheck([{"id": "x", "prompt": "a"}], ctx_args + [f"--{flag}", text])
    cli_ok = rc == 0 and len(out) == 1
    if rc not in (0, 2):
        fails.append(f"--{flag} {text}: exit {rc}: {err.strip()}")
    if not cli_ok and (len(err.strip().splitlines()) != 1 or f"--{flag}" not in err):
        fails.append(f"--{flag} {text}: refusal is not one line naming the flag: {err!r}")
    rc, out2, err2 = jobcheck([dict({"id": "x", "prompt": "a", key: value}, **ctx), {"id": "y", "prompt": "b"}], [])
    json_ok = any(r["id"] == "x" for r in out2)
    if not json_ok and f"field '{key}'" not in err2:
        fails.append(f"{key}={value!r}: refusal does not name the field: {err2!r}")
    if cli_ok != want or json_ok != want:
        fails.append(f"{key}={value!r}: expected {'accept' if want else 'refuse'}; flag "
                     f"{'accepted' if cli_ok else 'refused'}, JSON {'accepted' if json_ok else 'refused'}")
        return
    if want:
        a = params_of(out[0], key)
        b = params_of([r for r in out2 if r["id"] == "x"][0], key)
        if a != b or (not isinstance(value, str) and abs(a - value) > 1e-12 * max(1, abs(value))):
            fails.append(f"{key}={value!r}: params say {a!r} (flag) and {b!r} (JSON)")


n_cases = 0
for key, flag, kind, lo, hi, lo_open in SPEC:
    vals = [(hi, True), (lo, not lo_open)]
    if kind == "int":
        vals += [(lo - 1, False), (hi + 1, False), ((lo + hi) // 2, True), (1.5, False)]
    else:
        vals += [(lo - 1e-3, False), (hi * 1.5 + 1e-3, False), ((lo + hi) / 2, True), ("abc", False)]
    for v, want in vals:
        case(key, flag, v, want)
        n_cases += 1
for v, want in [("origin", True), ("maskgit_plus", True), ("topk_margin", True), ("entropy", True),
                ("foo", False), (3, False)]:
    case("alg", "alg", v, want)
    n_cases += 1
for v, want in [("none", True), ("prefix", True), ("dual", True), ("delayed", True), ("full", False), (1, False)]:
    case("cache", "cache", v, want)
    n_cases += 1
# the modes' own rules, refused alike both ways: prefix/dual need block decoding, delayed a refresh
for args, line in [(["--cache", "dual"], {"cache": "dual"}),
                   (["--cache", "delayed", "--block-length", "8", "--max-new-tokens", "32"],
                    {"cache": "delayed", "block_length": 8, "max_new_tokens": 32})]:
    rc, out, err = jobcheck([{"id": "x", "prompt": "a"}], args)
    rc2, out2, err2 = jobcheck([dict({"id": "x", "prompt": "a"}, **line), {"id": "y", "prompt": "b"}], [])
    if rc == 0 or len(err.strip().splitlines()) != 1 or "cache" not in err:
        fails.append(f"{' '.join(args)}: expected a one-line refusal naming the cache, got exit {rc}: {err!r}")
    if any(r["id"] == "x" for r in out2) or "cache" not in err2:
        fails.append(f"{line}: expected the line refused naming the cache, got {err2!r}")
    n_cases += 1

# every flag in both commands' help
for cmd in ("generate", "jobcheck"):
    h = subprocess.run([diffu, cmd, "--help"], capture_output=True, text=True).stdout
    for key, flag, *_ in SPEC + [("alg", "alg"), ("early_stop", "early-stop"), ("cache", "cache")]:
        if f"--{flag}" not in h:
            fails.append(f"diffu {cmd} --help does not list --{flag}")

# a record's params name every parameter, in one order
rc, out, _ = jobcheck([{"id": "x", "prompt": "a"}], [])
order = list(out[0]["params"].keys())
want_order = ["max_new_tokens", "steps", "alg", "temperature", "top_p", "top_k", "alg_temp", "seed", "eps",
              "block_length", "threshold", "factor", "early_stop", "n"]
if order != want_order:
    fails.append(f"params keys {order} != {want_order}")
rc, out, _ = jobcheck([{"id": "x", "prompt": "a", "cache": "prefix", "cache_refresh": 3, "max_new_tokens": 32,
                        "block_length": 8}], [])
order = list(out[0]["params"].keys())
want_order = want_order[:-1] + ["cache", "cache_refresh", "n"]
if order != want_order or out[0]["params"]["cache"] != "prefix" or out[0]["params"]["cache_refresh"] != 3:
    fails.append(f"a cached request's params {out[0]['params']} (keys {order} != {want_order})")

for f in fails:
    print("FAIL:", f)
print(f"{n_cases} cases over {len(SPEC) + 2} parameters, flag vs JSON key")
print("PASS" if not fails else "FAILED")
sys.exit(1 if fails else 0)
