#!/usr/bin/python3
"""End-to-end checks of `diffu generate` (coordinator/ + the forward).

usage: check_generate.py DIFFU_BIN WORKDIR CASE

Greedy equivalence (cases greedy_<alg>): at temperature 0 and alg_temp 0 the token
sequences must be IDENTICAL to tests/ref/dream_generate_ref.py (a NumPy port of Dream's
_sample, float64 forward) for steps = gen, gen/2, gen/4 (gen = 32):
  * one prompt of 7 tokens on a model written by `diffu mkmodel --preset tiny`
    (bf16, vocab 1000);
  * a batch of three prompts of 3, 11 and 6 tokens on a model written by the
    independent NumPy writer tests/ref/make_checkpoint.py (bf16, vocab 1000): ours runs
    them ragged (no padding), the reference left-padded with position_ids =
    cumsum(mask) - 1, exactly like Dream's generation code.
  alg origin draws uniforms; the engine writes the float32 uniforms it used
  (--dump-origin-uniforms, in the order torch.rand(*x0.shape) would supply them) and the
  reference consumes them (--origin-uniforms), which makes origin deterministic too.
greedy_filtered: top-p / top-k at temperature 0 (they change the confidences, not the
  argmax), eps 0.05, steps that do not divide gen, steps > gen; f32 weights.
threshold_tau1: Fast-dLLM threshold decoding with tau = 1.0 commits exactly the most
  confident position per step, i.e. the plain one-token-per-step schedule (one block,
  steps = gen, LLaDA's count); tokens identical, with and without blocks of 8, at
  temperature 0 and 0.7 (same Philox addresses: step k commits one token in both).
order: at temperature 0.8 with top-p and alg_temp, a prompt's samples do not depend on
  what else is in the batch, on --n, or on --threads. (The fp32 forward is not bitwise
  batch-invariant, so this relies on no sampled value falling within ~1e-6 of a
  decision boundary; with the fixed seeds here it does not.)
early_stop: decoding left to right (blocks of 1), the end token chosen as the token the
  plain run commits at generated position k (first occurrence): with --early-stop the run
  ends after k + 1 forwards, positions 0..k equal the plain run and the rest is that token.
watch: --watch under a pseudo-terminal (util-linux `script`) redraws the canvas every
  step (clear-screen sequences, one header per step, masks as shaded boxes, highlighted new
  tokens) and still prints the ids on stdout; without a terminal it warns and does not draw.
  Skipped (exit 77) when `script` is missing.
cli_errors: bad option combinations are one-line errors with exit status 1 or 2.
Prints one line per comparison; exits 1 on the first mismatch (after printing a diff).
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REF = os.path.join(HERE, "..", "ref")
PY = "/usr/bin/python3"
GEN = 32
STEPS = (32, 16, 8)


def sh(cmd, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    if r.returncode != 0:
        sys.stderr.write("command failed (%d): %s\n%s%s" % (r.returncode, " ".join(cmd), r.stdout, r.stderr))
        sys.exit(1)
    return r


def model_diffu(work, name, *extra):
    d = os.path.join(work, name)
    if not os.path.exists(os.path.join(d, "config.json")):
        sh([BIN, "mkmodel", "--preset", "tiny", "--vocab", "1000", "--out", d] + list(extra))
    return d


def model_numpy(work, name, *extra):
    d = os.path.join(work, name)
    if not os.path.exists(os.path.join(d, "config.json")):
        sh([PY, os.path.join(REF, "make_checkpoint.py"), "--out", d] + list(extra))
    return d


def ours(model, prompts, out, opts, dump=None):
    cmd = [BIN, "generate", "--model", model, "--out", out, "--emit-ids"] + opts
    for p in prompts:
        cmd += ["--prompt-ids", ",".join(str(t) for t in p)]
    if dump:
        cmd += ["--dump-origin-uniforms", dump]
    r = sh(cmd)
    with open(out) as f:
        return json.load(f), r.stderr


def reference(model, prompts, out, gen, steps, alg, extra=()):
    pj = out + ".prompts.json"
    with open(pj, "w") as f:
        json.dump(prompts, f)
    sh([PY, os.path.join(REF, "dream_generate_ref.py"), "--model", model, "--prompts", pj,
        "--max-new-tokens", str(gen), "--steps", str(steps), "--alg", alg, "--out", out] + list(extra))
    with open(out) as f:
        return json.load(f)


def same(label, a, b):
    if a == b:
        print("ok   %s" % label)
        return
    print("FAIL %s" % label)
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            diff = [j for j in range(min(len(x), len(y))) if x[j] != y[j]]
            print("  sequence %d: lengths %d/%d, first difference at %s\n    ours %s\n    ref  %s"
                  % (i, len(x), len(y), diff[:8], x, y))
    sys.exit(1)


def prompts_of(lengths, seed):
    out, x = [], seed
    for n in lengths:
        p = []
        for _ in range(n):
            x = (x * 1103515245 + 12345) % (1 << 31)
            p.append(x % 700)
        out.append(p)
    return out


def greedy_case(work, alg):
    single = model_diffu(work, "m_diffu", "--seed", "1")
    batch_m = model_numpy(work, "m_numpy", "--seed", "5", "--dtype", "bf16", "--vocab", "1000")
    for model, prompts, what in ((single, prompts_of([7], 11), "1 prompt"),
                                 (batch_m, prompts_of([3, 11, 6], 23), "batch 3/11/6")):
        for steps in STEPS:
            tag = "%s-%s-%d-%d" % (alg, what.replace(" ", "").replace("/", "_"), steps, len(prompts))
            o = os.path.join(work, tag)
            dump = o + ".u.bin" if alg == "origin" else None
            got, _ = ours(model, prompts, o + ".ours.json",
                          ["--max-new-tokens", str(GEN), "--steps", str(steps), "--alg", alg], dump)
            extra = ["--origin-uniforms", dump] if dump else []
            want = reference(model, prompts, o + ".ref.json", GEN, steps, alg, extra)
            same("greedy %s, %s, gen %d, steps %d" % (alg, what, GEN, steps), got, want)


def filtered_case(work):
    m = model_numpy(work, "m_numpy_f32", "--seed", "9", "--dtype", "f32", "--vocab", "777",
                    "--lm-head-scale", "3")
    cases = [
        ("entropy", 24, 24, ["--top-p", "0.9"], prompts_of([5], 3), "top-p 0.9"),
        ("topk_margin", 24, 12, ["--top-k", "3"], prompts_of([4, 9], 4), "top-k 3, batch"),
        ("maskgit_plus", 24, 8, ["--top-p", "0.7", "--top-k", "20"], prompts_of([6], 5), "top-p 0.7 + top-k 20"),
        ("entropy", 24, 10, ["--eps", "0.05"], prompts_of([8, 2], 6), "eps 0.05, 10 steps for 24, batch"),
        ("maskgit_plus", 12, 20, [], prompts_of([5], 7), "steps 20 > gen 12"),
        ("origin", 24, 6, ["--top-k", "5"], prompts_of([3, 7], 8), "origin + top-k 5, batch"),
    ]
    for alg, gen, steps, opts, prompts, what in cases:
        tag = "filt-%s-%d-%d-%s" % (alg, gen, steps, "_".join(o.strip("-") for o in opts))
        o = os.path.join(work, tag)
        dump = o + ".u.bin" if alg == "origin" else None
        got, _ = ours(m, prompts, o + ".ours.json",
                      ["--max-new-tokens", str(gen), "--steps", str(steps), "--alg", alg] + opts, dump)
        extra = list(opts) + (["--origin-uniforms", dump] if dump else [])
        want = reference(m, prompts, o + ".ref.json", gen, steps, alg, extra)
        same("greedy %s, %s" % (alg, what), got, want)


def forwards_of(stderr):
    n = []
    for line in stderr.splitlines():
        if line.startswith("[prompt"):
            n.append(int(line.split(" forwards")[0].split()[-1]))
    return n


def threshold_case(work):
    m = model_numpy(work, "m_numpy_f32", "--seed", "9", "--dtype", "f32", "--vocab", "777",
                    "--lm-head-scale", "3")
    prompts = prompts_of([5, 12], 31)
    G = 32
    for temp in ("0", "0.7"):
        for block in (G, 8):
            base = ["--max-new-tokens", str(G), "--temperature", temp, "--seed", "3", "--alg", "maskgit_plus"]
            o = os.path.join(work, "tau1-%s-%d" % (temp, block))
            plain, _ = ours(m, prompts, o + ".plain.json", base + ["--steps", str(G), "--block-length", str(block)])
            topt = ["--threshold", "1.0"] + (["--block-length", str(block)] if block != G else [])
            thr, err = ours(m, prompts, o + ".thr.json", base + topt)
            same("threshold 1.0 == one token per step, temperature %s, block %d" % (temp, block), thr, plain)
            fw = forwards_of(err)
            if fw != [G] * len(prompts):
                print("FAIL threshold 1.0 used %s forwards, expected %d each" % (fw, G))
                sys.exit(1)
    # tau 0.9 on a model with peaked distributions (lm_head x 10) must save forwards,
    # and every step commits at least one token
    pk = model_numpy(work, "m_peaked", "--seed", "9", "--dtype", "f32", "--vocab", "777", "--lm-head-scale", "10")
    o = os.path.join(work, "tau09")
    out, err = ours(pk, prompts, o + ".json", ["--max-new-tokens", str(G), "--threshold", "0.9", "--block-length", "8"])
    fw = forwards_of(err)
    if not all(f < G for f in fw) or any(776 in seq for seq in out):
        print("FAIL threshold 0.9 on a peaked model: forwards %s for %d tokens (or a mask left)" % (fw, G))
        sys.exit(1)
    print("ok   threshold 0.9, block 8, peaked model: forwards %s for %d tokens each" % (fw, G))


def order_case(work):
    m = model_diffu(work, "m_diffu", "--seed", "1")
    a, b, c = prompts_of([6, 13, 2], 41)
    opts = ["--max-new-tokens", "24", "--steps", "12", "--temperature", "0.8", "--top-p", "0.95",
            "--alg-temp", "0.3", "--alg", "entropy", "--seed", "12345"]
    o = os.path.join(work, "order")
    alone, _ = ours(m, [a], o + ".alone.json", opts)
    batch, _ = ours(m, [a, b, c], o + ".batch.json", opts)
    same("prompt alone == first prompt of a batch of three", alone[0:1], batch[0:1])
    n3, _ = ours(m, [a], o + ".n3.json", opts + ["--n", "3"])
    same("--n 1 == sample 0 of --n 3", alone[0:1], n3[0:1])
    if n3[0] == n3[1] or n3[1] == n3[2]:
        print("FAIL the samples of --n 3 are not different")
        sys.exit(1)
    t1, _ = ours(m, [a], o + ".t1.json", opts + ["--threads", "1"])
    t2, _ = ours(m, [a], o + ".t2.json", opts + ["--threads", "2"])
    same("--threads 1 == --threads 2", t1, t2)
    other, _ = ours(m, [a], o + ".seed.json", opts[:-1] + ["54321"])
    if other == alone:
        print("FAIL another seed gives the same sample")
        sys.exit(1)
    print("ok   another seed gives another sample")


def early_stop_case(work):
    m = model_diffu(work, "m_diffu", "--seed", "1")
    p = prompts_of([9], 77)
    G = 24
    opts = ["--max-new-tokens", str(G), "--steps", str(G), "--block-length", "1", "--alg", "maskgit_plus"]
    o = os.path.join(work, "es")
    plain, _ = ours(m, p, o + ".plain.json", opts)
    gen = plain[0][len(p[0]):]
    k = next(i for i in range(5, G) if gen[i] not in gen[:i])
    end = gen[k]
    got, err = ours(m, p, o + ".es.json", opts + ["--early-stop", "--end-id", str(end)])
    want = [p[0] + gen[:k + 1] + [end] * (G - k - 1)]
    same("early stop at generated position %d (end id %d)" % (k, end), got, want)
    fw = forwards_of(err)
    if fw != [k + 1] or "early stop" not in err:
        print("FAIL early stop used %s forwards, expected %d (%s)" % (fw, k + 1, err.strip()))
        sys.exit(1)
    print("ok   early stop used %d forwards for %d positions" % (k + 1, G))


def watch_case(work):
    import shutil
    m = model_diffu(work, "m_diffu", "--seed", "1")
    if not shutil.which("script"):
        print("skip: no `script` command to provide a terminal")
        sys.exit(77)
    cmd = "%s generate --model %s --prompt-ids 1,2,3 --max-new-tokens 12 --steps 6 --emit-ids --watch" % (BIN, m)
    r = subprocess.run(["script", "-qec", cmd, "/dev/null"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = r.stdout.decode("utf-8", "replace")
    clears = out.count("\x1b[H\x1b[2J")
    ok = (r.returncode == 0 and clears == 6 and "\u2591" in out and "\x1b[1;30;42m" in out
          and "0 masked \u00b7 done" in out)
    if not ok:
        print("FAIL --watch on a terminal: exit %d, %d redraws, output %r" % (r.returncode, clears, out[-400:]))
        sys.exit(1)
    print("ok   --watch on a terminal: %d redraws" % clears)
    r = subprocess.run(cmd.split(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0 or "\x1b[2J" in r.stderr or "not a terminal" not in r.stderr or not r.stdout.strip():
        print("FAIL --watch without a terminal: %r" % r.stderr)
        sys.exit(1)
    print("ok   --watch without a terminal: warns, draws nothing")


def cli_errors(work):
    m = model_diffu(work, "m_diffu", "--seed", "1")
    bad = [
        (["--prompt-ids", "1,2", "--alg", "origin", "--threshold", "0.9"], 1, "origin"),
        (["--prompt-ids", "1,2", "--max-new-tokens", "10", "--block-length", "4"], 1, "block_length"),
        (["--prompt-ids", "1,x"], 2, "--prompt-ids"),
        (["--prompt-ids", "1,2000"], 1, "outside the vocabulary"),
        (["--prompt", "hello"], 1, "tokenizer"),
        (["--prompt-ids", "1", "--alg", "nope"], 2, "--alg"),
        (["--prompt-ids", "1", "--threshold", "0.5", "--factor", "1"], 1, "exclusive"),
    ]
    for args, code, word in bad:
        r = subprocess.run([BIN, "generate", "--model", m] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
        first = r.stderr.strip().splitlines()[0] if r.stderr.strip() else ""
        if r.returncode != code or word not in first:
            print("FAIL %s: exit %d (want %d), stderr %r" % (args, r.returncode, code, r.stderr))
            sys.exit(1)
        print("ok   error: %s -> %s" % (" ".join(args), first))


if __name__ == "__main__":
    BIN, WORK, CASE = sys.argv[1], sys.argv[2], sys.argv[3]
    os.makedirs(WORK, exist_ok=True)
    if CASE.startswith("greedy_") and CASE != "greedy_filtered":
        greedy_case(WORK, CASE[len("greedy_"):])
    elif CASE == "greedy_filtered":
        filtered_case(WORK)
    elif CASE == "threshold_tau1":
        threshold_case(WORK)
    elif CASE == "order":
        order_case(WORK)
    elif CASE == "early_stop":
        early_stop_case(WORK)
    elif CASE == "watch":
        watch_case(WORK)
    elif CASE == "cli_errors":
        cli_errors(WORK)
    else:
        sys.exit("unknown case " + CASE)
