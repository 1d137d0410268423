#!/usr/bin/python3
"""KV-cached block decoding: the C engine (test_kvcache, model/kvcache.h + the policy in
coordinator/denoise.c) against the NumPy reference tests/ref/dream_cache_ref.py (a port of
Fast-dLLM's prefix / dual cache and dKV-Cache-Decode, float64 forward).

usage: check_kvcache.py TEST_KVCACHE DIFFU_BIN WORKDIR CASE

For every mode (none, prefix, dual, delayed with refresh 4 and 2, prefix with a refresh
every 3 forwards) at temperature 0:
  * the token sequences are IDENTICAL to the reference's;
  * the forwards and the rows computed per request are identical to the reference's
    (the same rows are computed at the same steps);
  * refresh every forward (prefix/dual/delayed --refresh 1) equals `none` token for token,
    in C and in the reference;
  * cached modes compute fewer rows than none (prefix < none, dual < prefix).
The same requests through `diffu generate --cache MODE --cache-refresh N` (the engine's local
backend: coordinator/local.h) give the reference's tokens too, and so do they under
`mpirun ... --pp P --tp T` (the stages hold the cache: node/worker.h) for none, prefix, dual,
delayed refresh 2 and prefix refresh 3, in every layout of --pp 2, --tp 2 and --pp 2 --tp 2
(tp only where the KV heads split: not gqa7's single KV head; cases blocks steps 32, threshold
0.9 and gqa7).
The C runs admit request i at step i (--stagger), so full passes share microbatches with
few-row steps; test_kvcache itself asserts full-pass logits == the no-cache forward,
alone == in the microbatch (0 ulp, 1 and 2 threads), a two-stage pipeline of the same
model == one process (0 ulp) and tensor parallelism 2 (own KV heads and caches per rank)
within 1e-4 of one process, and must pass.
Cases:
  blocks     NumPy-written model (bf16, hidden 64, 2 layers, GQA 2:1), prompts of 5, 11, 3
             tokens, 32 new tokens in blocks of 8: steps 32 (entropy) and steps 16
             (maskgit_plus, two tokens per step).
  threshold  peaked NumPy-written model (lm_head x6): Fast-dLLM threshold 0.9 and 0.7, blocks
             of 8 (several tokens per step; asserted: fewer forwards than tokens).
  gqa7       `diffu mkmodel` model (f32, hidden 112, 7 heads : 1 KV head, 3 layers), blocks of
             16, steps 32, topk_margin.
Prints one line per comparison and "N passed, M failed"; exit 1 on a failure.
"""
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "common"))
import checks  # noqa: E402

REF = os.path.join(HERE, "..", "ref")
PY = "/usr/bin/python3"
TK, BIN, WORK, CASE = sys.argv[1:5]
os.makedirs(WORK, exist_ok=True)
# Open MPI on one machine, as tests/dist/lib.sh: as root; no single-copy transfers in containers; under the
# AddressSanitizer build, Open MPI's own leaks suppressed
if os.getuid() == 0:
    os.environ.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
os.environ["OMPI_MCA_btl_vader_single_copy_mechanism"] = "none"
os.environ["ASAN_OPTIONS"] = ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"), "fast_unwind_on_malloc=0"]))
os.environ["LSAN_OPTIONS"] = ":".join(filter(None, [os.environ.get("LSAN_OPTIONS"), "suppressions=" + os.path.join(
    HERE, "..", "dist", "lsan-openmpi.supp"), "print_suppressions=0"]))


class _Ck:
    def check(self, cond, what, detail=""):
        if cond:
            print("ok   " + what)
        checks.check(cond, what)  # prints "FAIL what"
        if not cond and detail:
            print(detail)

    def report(self):
        return checks.report()


ck = _Ck()
G = 32


def sh(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.stderr.write("command failed (%d): %s\n%s%s" % (r.returncode, " ".join(cmd), r.stdout, r.stderr))
        sys.exit(1)
    return r


def numpy_model(name, *extra):
    d = os.path.join(WORK, name)
    if not os.path.exists(os.path.join(d, "config.json")):
        sh([PY, os.path.join(REF, "make_checkpoint.py"), "--out", d] + list(extra))
    return d


def diffu_model(name, *extra):
    d = os.path.join(WORK, name)
    if not os.path.exists(os.path.join(d, "config.json")):
        sh([BIN, "mkmodel", "--preset", "tiny", "--out", d] + list(extra))
    return d


def prompts_of(lengths, vocab, seed):
    import numpy as np
    r = np.random.default_rng(seed)
    return [r.integers(0, vocab - 2, n).tolist() for n in lengths]


def run_json(cmd, out, what):
    """Run cmd (checked: exit 0, `what` names it) and load the JSON it wrote to out; None on a failure."""
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    ck.check(r.returncode == 0, what % last, r.stderr[-2000:] if r.returncode else "")
    if r.returncode:
        return None
    with open(out) as f:
        return json.load(f)


def ours(model, prompts, B, policy, mode, refresh, tag):
    out = os.path.join(WORK, "c_%s.json" % tag)
    cmd = [TK, "--model", model, "--prompts", ";".join(",".join(map(str, p)) for p in prompts), "--gen", str(G),
           "--block", str(B), "--cache", mode, "--refresh", str(refresh), "--stagger", "--out", out] + policy
    return run_json(cmd, out, "test_kvcache " + tag + ": internal checks (%s)")


def engine(model, prompts, B, policy, mode, refresh, tag, pp=0, tp=0):
    """The same requests through `diffu generate --cache` (the engine's local backend, one microbatch), or with
    pp, tp under `mpirun -np pp*tp diffu generate --pp pp --tp tp`: every stage holds the KV cache of its layers
    and KV heads, the coordinator names each step's rows."""
    out = os.path.join(WORK, ("d_%s_pp%d_tp%d.json" % (tag, pp, tp)) if pp else "e_%s.json" % tag)
    launch = ["mpirun", "-np", str(pp * tp), "--oversubscribe", "--bind-to", "none"] if pp else []
    layout = ["--pp", str(pp), "--tp", str(tp), "--threads", "1"] if pp else []
    cmd = launch + [BIN, "generate"] + layout + ["--model", model, "--max-new-tokens", str(G), "--block-length", str(B),
                                                 "--cache", mode, "--cache-refresh", str(refresh), "--out", out] + policy
    for p in prompts:
        cmd += ["--prompt-ids", ",".join(map(str, p))]
    where = "mpirun --pp %d --tp %d diffu generate" % (pp, tp) if pp else "diffu generate"
    return run_json(cmd, out, where + " --cache %s --cache-refresh %d runs" % (mode, refresh) + "%.0s")


LAYOUTS = [(2, 1), (1, 2), (2, 2)]  # (pp, tp) under mpirun


def kv_heads(model):
    with open(os.path.join(model, "config.json")) as f:
        return json.load(f)["num_key_value_heads"]


def reference(model, prompts, B, policy, mode, refresh, tag):
    pj = os.path.join(WORK, "prompts.json")
    with open(pj, "w") as f:
        json.dump(prompts, f)
    out, st = os.path.join(WORK, "r_%s.json" % tag), os.path.join(WORK, "rs_%s.json" % tag)
    sh([PY, os.path.join(REF, "dream_cache_ref.py"), "--model", model, "--prompts", pj, "--max-new-tokens", str(G),
        "--block-length", str(B), "--cache", mode, "--refresh", str(refresh), "--out", out, "--stats", st] + policy)
    with open(out) as f, open(st) as g:
        seqs, stats = json.load(f), json.load(g)
    return {"seqs": seqs, "forwards": [s["forwards"] for s in stats], "rows": [s["rows"] for s in stats]}


def agree(a, b):
    return sum(x == y for p, q in zip(a, b) for x, y in zip(p, q)), sum(len(p) for p in a)


DIST_MODES = [("none", 0), ("prefix", 0), ("dual", 0), ("delayed", 2), ("prefix", 3)]


def run_case(model, prompts, B, policy, label, vocab, layouts=False):
    """layouts: also every mpirun layout of LAYOUTS (tp only where the KV heads split) for DIST_MODES."""
    modes = [("none", 0), ("prefix", 0), ("dual", 0), ("delayed", 4), ("delayed", 2), ("prefix", 3),
             ("prefix", 1), ("dual", 1), ("delayed", 1)]
    res = {}
    for mode, refresh in modes:
        tag = "%s_%s_r%d" % (label, mode, refresh)
        c = ours(model, prompts, B, policy, mode, refresh, tag)
        r = reference(model, prompts, B, policy, mode, refresh, tag)
        if c is None:
            continue
        res[(mode, refresh)] = c
        e = engine(model, prompts, B, policy, mode, refresh, tag)
        ck.check(e == r["seqs"], "%s %s refresh %d: diffu generate's tokens == NumPy reference" % (label, mode, refresh),
                 "generate %s\nref %s" % (e, r["seqs"]))
        if layouts and (mode, refresh) in DIST_MODES:
            if not shutil.which("mpirun"):
                print("skip %s %s: no mpirun" % (label, mode))
            for pp, tp in LAYOUTS if shutil.which("mpirun") else []:
                if kv_heads(model) % tp:
                    print("skip %s %s --tp %d: %d KV head(s) do not split over %d ranks" % (label, mode, tp,
                                                                                          kv_heads(model), tp))
                    continue
                d = engine(model, prompts, B, policy, mode, refresh, tag, pp, tp)
                ck.check(d == r["seqs"], "%s %s refresh %d, mpirun --pp %d --tp %d: tokens == NumPy reference" %
                         (label, mode, refresh, pp, tp), "mpirun %s\nref %s" % (d, r["seqs"]))
        ck.check(c["seqs"] == r["seqs"], "%s %s refresh %d: tokens == NumPy reference" % (label, mode, refresh),
                 "C %s\nref %s" % (c["seqs"], r["seqs"]))
        ck.check(c["forwards"] == r["forwards"] and c["rows"] == r["rows"],
                 "%s %s refresh %d: forwards %s, rows computed %s == reference" % (label, mode, refresh, c["forwards"],
                                                                                  c["rows"]),
                 "reference forwards %s rows %s" % (r["forwards"], r["rows"]))
        for i, p in enumerate(c["seqs"]):
            ck.check(vocab - 1 not in p[len(prompts[i]):], "%s %s: request %d fully decoded" % (label, mode, i))
        if (mode, refresh) == ("none", 0):
            ref_none = r
        if refresh == 1:
            ck.check(c["seqs"] == res[("none", 0)]["seqs"] and r["seqs"] == ref_none["seqs"],
                     "%s %s refreshed every forward == none (C and reference)" % (label, mode))
    if all(k in res for k in [("none", 0), ("prefix", 0), ("dual", 0)]):
        n, p, d = (sum(res[(k, 0)]["rows"]) for k in ("none", "prefix", "dual"))
        ck.check(d < p < n, "%s rows computed: dual %d < prefix %d < none %d" % (label, d, p, n))
        for k in [("prefix", 0), ("dual", 0), ("delayed", 4), ("delayed", 2)]:
            a, t = agree(res[k]["seqs"], res[("none", 0)]["seqs"])
            print("info %s %s refresh %d: %d of %d tokens as none" % (label, k[0], k[1], a, t))
    return res


if CASE == "blocks":
    m = numpy_model("np_bf16", "--hidden", "64", "--layers", "2", "--heads", "4", "--kv-heads", "2", "--inter", "128",
                    "--vocab", "1000", "--dtype", "bf16", "--seed", "5")
    pr = prompts_of([5, 11, 3], 1000, 1)
    run_case(m, pr, 8, ["--steps", "32", "--alg", "entropy"], "blocks8_steps32_entropy", 1000, layouts=True)
    run_case(m, pr, 8, ["--steps", "16", "--alg", "maskgit_plus"], "blocks8_steps16_maskgit", 1000)
elif CASE == "threshold":
    m = numpy_model("np_peaked", "--hidden", "64", "--layers", "2", "--heads", "4", "--kv-heads", "2", "--inter",
                    "128", "--vocab", "1000", "--dtype", "bf16", "--seed", "2", "--lm-head-scale", "6")
    pr = prompts_of([5, 9, 4], 1000, 2)
    for tau in ("0.9", "0.7"):
        res = run_case(m, pr, 8, ["--threshold", tau], "threshold%s" % tau, 1000, layouts=tau == "0.9")
        fw = res[("none", 0)]["forwards"]
        ck.check(sum(fw) < G * len(pr), "threshold %s: %s forwards for %d tokens each (parallel commits)" % (tau, fw, G))
elif CASE == "gqa7":
    m = diffu_model("gqa7_f32", "--hidden", "112", "--heads", "7", "--kv-heads", "1", "--inter", "96", "--layers", "3",
                    "--dtype", "f32", "--vocab", "1000")
    pr = prompts_of([6, 2, 13], 1000, 3)
    run_case(m, pr, 16, ["--steps", "32", "--alg", "topk_margin"], "gqa7_blocks16", 1000, layouts=True)
else:
    sys.exit("unknown case " + CASE)
sys.exit(ck.report())
