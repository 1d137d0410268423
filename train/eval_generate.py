#!/usr/bin/env python3
"""train/eval_generate.py — completions of held-out functions with `diffu generate`.

    python3 train/eval_generate.py MODEL_DIR DATA_DIR ENC_DIR --diffu build/bin/diffu --out RESULTS.json
        [--n 32] [--max-new 48] [--modes default,arness,threshold] [--figure docs/arness_temperature.png]

Prompts: --n held-out instruction pairs evenly spaced over those (DATA/val_pairs.jsonl, from files
never trained on) whose chat prompt is at most 160 tokens and whose reply (body + <|im_end|>) fits the canvas of
--max-new tokens. Each is given to `diffu generate --chat` (DiffuCoder's chat template; the user
turn is the function's signature + docstring) and the reply is the completion (diffu's
post-processing, then cut at the first <|im_end|>).

Modes (all with steps = --max-new, i.e. one token per step, unless a threshold is set):
  default    Dream's defaults with DiffuCoder's algorithm: --alg entropy, temperature 0.
             Share that parses (ast.parse(prompt + completion)) and share whose first non-empty
             line equals the original's.
  arness     temperature 0.2, 0.4, ..., 1.2 (alg entropy, top-p off, --seed 1): mean local@1
             and global@1 AR-ness over the prompts (diffu's per-sample report) and parse rate;
             the figure (matplotlib) goes to --figure.
  blocks8    as default, in semi-autoregressive blocks of 8 (--block-length 8).
  threshold_blocks8  the threshold series inside blocks of 8 (as Fast-dLLM runs it).
  precision  default decoding with --precision fp32 / bf16 / int8 (the GEMM paths of model/gemm.h):
             share of completions identical to fp32's, token agreement position by position,
             parse rate (a precision the CPU lacks is recorded as unsupported).
  cache      the KV-cache modes none / prefix / dual / delayed (refresh 4) in blocks of 8, without and
             with threshold 0.9: agreement with none (identical completions, tokens), parse rate,
             forwards and rows through the forward per generated token.
  threshold  Fast-dLLM confidence threshold tau 0.7/0.8/0.9/0.95 and 1.0 (= one token per
             step under the same confidence), temperature 0: forwards per generated token,
             parse rate, and agreement with tau = 1.0 (share of identical completions, and share
             of identical tokens position by position over the canvas).
"""
import argparse
import ast
import json
import os
import re
import subprocess
import sys
import time

STAT_RE = re.compile(r"^\[prompt (\d+) sample (\d+)\] (\d+) tokens, (\d+) steps, (\d+) forwards \(([\d.]+) per token\);"
                     r" AR-ness over (\d+): local@1-4 ([\d.]+) [\d.]+ [\d.]+ [\d.]+  global@1-4 ([\d.]+)")


def load_prompts(data, enc, n, max_new):
    out = []
    with open(os.path.join(data, "val_pairs.jsonl")) as ft, open(os.path.join(enc, "val_pairs.jsonl")) as fi:
        for lt, li in zip(ft, fi):
            t, i = json.loads(lt), json.loads(li)
            if len(i["p"]) <= 160 and len(i["r"]) <= max_new:
                out.append(t)
    if len(out) <= n:
        return out
    return [out[round(k * (len(out) - 1) / (n - 1))] for k in range(n)] if n > 1 else out[:1]


def run(diffu, model, prompts, args, threads=2):
    cmd = [diffu, "generate", "--model", model, "--chat", "--threads", str(threads)] + args
    for p in prompts:
        cmd += ["--prompt", p["prompt"]]
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.time() - t0
    if r.returncode != 0:
        sys.exit("eval_generate.py: diffu failed (%d): %s" % (r.returncode, r.stderr[-2000:]))
    texts = {}
    cur = None
    for line in r.stdout.split("\n"):
        mm = re.match(r"^=== prompt (\d+) sample (\d+) ===$", line)
        if mm:
            cur = int(mm.group(1))
            texts[cur] = []
            continue
        if cur is not None:
            texts[cur].append(line)
    comps = []
    for i in range(len(prompts)):
        s = "\n".join(texts.get(i, []))
        if s.endswith("\n"):
            s = s[:-1]
        comps.append(s.split("<|im_end|>")[0])
    stats = {}
    for line in r.stderr.split("\n"):
        mm = STAT_RE.match(line)
        if mm:
            stats[int(mm.group(1))] = {"tokens": int(mm.group(3)), "forwards": int(mm.group(5)),
                                       "fpt": float(mm.group(6)), "local1": float(mm.group(8)),
                                       "global1": float(mm.group(9))}
    if len(stats) != len(prompts):
        sys.exit("eval_generate.py: parsed %d stat lines for %d prompts:\n%s" % (len(stats), len(prompts),
                                                                                r.stderr[-3000:]))
    return comps, [stats[i] for i in range(len(prompts))], wall, " ".join(cmd[:7] + args) + " --prompt ..."


def run_ids(diffu, model, prompts, args, threads=2):
    """As run(), with --emit-ids in args: the generated ids of each prompt; None if diffu refuses
    the arguments (a precision this CPU lacks)."""
    cmd = [diffu, "generate", "--model", model, "--chat", "--threads", str(threads)] + args
    for p in prompts:
        cmd += ["--prompt", p["prompt"]]
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.time() - t0
    if r.returncode != 0:
        return None
    # --emit-ids: one line of comma-separated ids per prompt (one sample each), in prompt order
    lines = [l for l in r.stdout.split("\n") if l.strip()]
    ids = {i: [int(x) for x in l.replace(",", " ").split()] for i, l in enumerate(lines)}
    if len(ids) != len(prompts):
        sys.exit("eval_generate.py: parsed ids of %d of %d prompts" % (len(ids), len(prompts)))
    return [ids[i] for i in range(len(prompts))], wall, " ".join(cmd[:7] + args) + " --prompt ...", r.stderr


def decode_replies(diffu, model, ids):
    """The reply text of each id list (diffu tokenize --decode --reply: cut at the end tokens)."""
    inp = "".join(json.dumps({"ids": x}) + "\n" for x in ids)
    r = subprocess.run([diffu, "tokenize", "--model", model, "--jsonl", "--decode", "--reply"], input=inp,
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("eval_generate.py: diffu tokenize --decode failed: %s" % r.stderr[-1000:])
    return [json.loads(l)["text"] for l in r.stdout.strip().split("\n")]


def parses(prompt, comp):
    try:
        ast.parse(prompt + comp)
        return True
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False


def first_line(s):
    for l in s.split("\n"):
        if l.strip():
            return l.rstrip()
    return ""


def quality(prompts, comps):
    ok = [parses(p["prompt"], c) for p, c in zip(prompts, comps)]
    fl = [first_line(c) == first_line(p["reply"]) for p, c in zip(prompts, comps)]
    return sum(ok) / len(ok), sum(fl) / len(fl)


def nonempty(prompts, comps):
    """Share of completions with a non-blank character, and the parse rate among those (an empty
    completion after a docstring parses trivially)."""
    ne = [(p, c) for p, c in zip(prompts, comps) if c.strip()]
    return len(ne) / len(comps), (sum(parses(p["prompt"], c) for p, c in ne) / len(ne) if ne else 0.0)


def eval_cache(a, prompts, L):
    """The KV-cache modes (--cache, coordinator/kvpolicy.h) in blocks of 8, without and with threshold 0.9:
    agreement with none at the same threshold (identical completions, tokens position by position), parse
    rate, forwards and rows through the forward per generated token."""
    rows = []
    for tau in (0.0, 0.9):
        ref = None
        for mode in ("none", "prefix", "dual", "delayed"):
            args = ["--max-new-tokens", L, "--block-length", "8", "--alg", "entropy", "--temperature", "0",
                    "--cache", mode, "--emit-ids"]
            args += ["--cache-refresh", "4"] if mode == "delayed" else []
            args += ["--threshold", str(tau)] if tau > 0 else ["--steps", L]
            got = run_ids(a.diffu, a.model, prompts, args, a.threads)
            if got is None:
                sys.exit("eval_generate.py: diffu refused --cache %s" % mode)
            ids, wall, cmd, err = got
            comps = decode_replies(a.diffu, a.model, ids)
            pr, fl = quality(prompts, comps)
            ne, pne = nonempty(prompts, comps)
            ref = ref or ids
            same = sum(x == y for x, y in zip(ids, ref)) / len(ids)
            pos = sum(sum(u == v for u, v in zip(x, y)) for x, y in zip(ids, ref)) / sum(len(y) for y in ref)
            st = [STAT_RE.match(l) for l in err.splitlines()]
            fw = sum(int(m.group(5)) for m in st if m)
            tk = sum(int(m.group(3)) for m in st if m)
            w = re.search(r"\[timing\] work: (\d+) rows through the forward, ([0-9.]+) per generated token", err)
            rows.append({"cache": mode, "threshold": tau, "identical_to_none": same, "token_agreement_none": pos,
                         "parse_rate": pr, "first_line_match": fl, "nonempty": ne, "parse_rate_nonempty": pne,
                         "forwards_per_token": fw / tk if tk else None,
                         "rows_per_token": float(w.group(2)) if w else None, "command": cmd,
                         "wall_s": round(wall, 1), "completions": comps})
            print("cache %s tau %.1f: identical-to-none %.3f token agreement %.3f parse %.3f non-empty %.3f "
                  "rows/token %s (%.0f s)" % (mode, tau, same, pos, pr, ne, w.group(2) if w else "?", wall))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("enc")
    ap.add_argument("--diffu", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--max-new", type=int, default=48)
    ap.add_argument("--modes", default="default,blocks8,arness,threshold,threshold_blocks8")
    ap.add_argument("--figure")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--merge", action="store_true", help="keep the other modes' results already in --out")
    a = ap.parse_args()
    prompts = load_prompts(a.data, a.enc, a.n, a.max_new)
    L = str(a.max_new)
    res = {"model": a.model, "n_prompts": len(prompts), "max_new_tokens": a.max_new}
    if a.merge and os.path.exists(a.out):
        res.update({k: v for k, v in json.load(open(a.out)).items() if k not in res})
    modes = a.modes.split(",")
    for mode, extra in (("default", []), ("blocks8", ["--block-length", "8"])):
        if mode not in modes:
            continue
        args = ["--max-new-tokens", L, "--steps", L, "--alg", "entropy", "--temperature", "0"] + extra
        comps, st, wall, cmd = run(a.diffu, a.model, prompts, args, a.threads)
        pr, fl = quality(prompts, comps)
        ne, pne = nonempty(prompts, comps)
        res[mode] = {"command": cmd, "parse_rate": pr, "first_line_match": fl, "wall_s": round(wall, 1),
                          "nonempty": ne, "parse_rate_nonempty": pne,
                          "local1": sum(s["local1"] for s in st) / len(st),
                          "global1": sum(s["global1"] for s in st) / len(st),
                          "samples": [{"prompt": p["prompt"], "original": p["reply"], "completion": c,
                                       "parses": parses(p["prompt"], c)} for p, c in zip(prompts, comps)]}
        print("%s: parse %.3f first-line %.3f non-empty %.3f parse-of-non-empty %.3f (%d prompts, %.0f s)" % (
            mode, pr, fl, ne, pne, len(prompts), wall))
    if "arness" in modes:
        rows = []
        for T in (0.2, 0.4, 0.6, 0.8, 1.0, 1.2):
            args = ["--max-new-tokens", L, "--steps", L, "--alg", "entropy", "--temperature", str(T), "--seed", "1"]
            comps, st, wall, cmd = run(a.diffu, a.model, prompts, args, a.threads)
            pr, fl = quality(prompts, comps)
            ne, pne = nonempty(prompts, comps)
            rows.append({"temperature": T, "local1": sum(s["local1"] for s in st) / len(st),
                         "global1": sum(s["global1"] for s in st) / len(st), "parse_rate": pr,
                         "nonempty": ne, "parse_rate_nonempty": pne, "completions": comps,
                         "first_line_match": fl, "command": cmd, "wall_s": round(wall, 1)})
            print("T=%.1f local@1 %.3f global@1 %.3f parse %.3f (%.0f s)" % (T, rows[-1]["local1"],
                                                                           rows[-1]["global1"], pr, wall))
        res["arness"] = rows
        if a.figure:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            fig, ax = plt.subplots(figsize=(5.5, 3.6))
            Ts = [r["temperature"] for r in rows]
            ax.plot(Ts, [r["local1"] for r in rows], "o-", label="local AR-ness@1")
            ax.plot(Ts, [r["global1"] for r in rows], "s-", label="global AR-ness@1")
            ax.set_xlabel("temperature")
            ax.set_ylabel("AR-ness")
            ax.set_ylim(0, 1.02)
            ax.set_title("diffu-toy-code: %d held-out functions, %s tokens, steps = length, entropy"
                         % (len(prompts), L), fontsize=8)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
            fig.tight_layout()
            fig.savefig(a.figure, dpi=120)
    for tmode, extra in (("threshold", []), ("threshold_blocks8", ["--block-length", "8"])):
        if tmode not in modes:
            continue
        rows = []
        base = None
        for tau in (1.0, 0.95, 0.9, 0.8, 0.7):
            args = ["--max-new-tokens", L, "--alg", "entropy", "--temperature", "0", "--threshold", str(tau)] + extra
            comps, st, wall, cmd = run(a.diffu, a.model, prompts, args, a.threads)
            pr, fl = quality(prompts, comps)
            if base is None:
                base = comps
            same = sum(c == b for c, b in zip(comps, base)) / len(comps)
            ne, pne = nonempty(prompts, comps)
            fw = sum(s["forwards"] for s in st)
            tk = sum(s["tokens"] for s in st)
            rows.append({"tau": tau, "forwards_per_token": fw / tk, "parse_rate": pr, "first_line_match": fl,
                         "nonempty": ne, "parse_rate_nonempty": pne, "completions": comps,
                         "identical_to_tau1": same, "command": cmd, "wall_s": round(wall, 1)})
            print("%s tau=%.2f forwards/token %.3f parse %.3f non-empty %.3f identical-to-1.0 %.3f (%.0f s)" % (
                tmode, tau, fw / tk, pr, ne, same, wall))
        res[tmode] = rows
    if "precision" in modes:
        rows = []
        ref = None
        for prec in ("fp32", "bf16", "int8"):
            args = ["--max-new-tokens", L, "--steps", L, "--alg", "entropy", "--temperature", "0",
                    "--precision", prec, "--emit-ids"]
            got = run_ids(a.diffu, a.model, prompts, args, a.threads)
            if got is None:
                rows.append({"precision": prec, "supported": False})
                print("precision %s: not supported by this CPU (diffu refused it)" % prec)
                continue
            ids, wall, cmd, _ = got
            comps = decode_replies(a.diffu, a.model, ids)
            pr, fl = quality(prompts, comps)
            ne, pne = nonempty(prompts, comps)
            if ref is None:
                ref = ids
            same = sum(x == y for x, y in zip(ids, ref)) / len(ids)
            pos = sum(sum(u == v for u, v in zip(x, y)) for x, y in zip(ids, ref))
            tot = sum(len(y) for y in ref)
            rows.append({"precision": prec, "supported": True, "identical_to_fp32": same,
                         "token_agreement_fp32": pos / tot, "parse_rate": pr, "first_line_match": fl,
                         "nonempty": ne, "parse_rate_nonempty": pne, "command": cmd, "wall_s": round(wall, 1),
                         "completions": comps})
            print("precision %s: identical-to-fp32 %.3f token agreement %.3f parse %.3f (%.0f s)" % (
                prec, same, pos / tot, pr, wall))
        res["precision"] = rows
    if "cache" in modes:
        res["cache"] = eval_cache(a, prompts, L)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
