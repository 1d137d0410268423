#!/usr/bin/env python3
"""train/train.py — train the toy Dream-architecture code model with Dream's masked-diffusion loss.

    nice -n 5 nohup python3 train/train.py --enc ENC_DIR --out RUN_DIR [--budget-min 60] [--steps auto] ...

Data (from train/encode.js): ENC/train_code.bin (uint16 ids of whole files separated by
<|endoftext|>) and ENC/train_pairs.jsonl (chat-prompt ids + reply ids). Every step alternates:
even steps a batch of --batch random windows of --seq code tokens (every position but the
first may be masked), odd steps a batch of --batch instruction pairs, each row = chat prompt +
reply + <|dlm_pad|> to --seq (only reply and padding may be masked, as Dream's SFT does).
Batch i is drawn from a generator seeded by (seed, i), so a resumed run sees the same batches.

Schedule: AdamW (betas 0.9/0.95, weight decay 0.1 on matrices), linear warm-up then cosine
to 10% over --steps. --steps auto measures the seconds per step over the first 20 steps and
fixes steps = 0.97 * budget / (s/step); the value is stored in the checkpoint (rerun with
--steps N to reproduce). The run stops at --budget-min of wall clock in any case.
Every --eval-every steps: held-out loss on a fixed set (ENC/val_*, masks from a fixed seed, t on
a fixed grid); the best is saved as RUN/best.pt, the latest as RUN/last.pt (resume: same command).
Logs: RUN/log.jsonl.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import DreamConfig, DreamModel, diffusion_loss, mask_batch  # noqa: E402

SPECIAL = {"<|endoftext|>": 8186, "<|im_start|>": 8187, "<|im_end|>": 8188, "<|beginoftext|>": 8189,
           "<|mask|>": 8190, "<|dlm_pad|>": 8191}


def load_pairs(path, seq, max_prompt):
    out = []
    for line in open(path):
        r = json.loads(line)
        if len(r["p"]) <= max_prompt:
            out.append((r["p"], r["r"]))
    return out


def pair_rows(pairs, idx, seq, pad):
    ids = torch.full((len(idx), seq), pad, dtype=torch.long)
    resp = torch.zeros((len(idx), seq), dtype=torch.bool)
    for b, i in enumerate(idx):
        p, r = pairs[i]
        row = (p + r)[:seq]
        ids[b, :len(row)] = torch.tensor(row)
        resp[b, len(p):] = True
    return ids, resp


def code_rows(code, starts, seq):
    ids = torch.from_numpy(np.stack([code[s:s + seq].astype(np.int64) for s in starts]))
    resp = torch.ones_like(ids, dtype=torch.bool)
    resp[:, 0] = False
    return ids, resp


def make_batch(step, a, code, pairs):
    g = torch.Generator().manual_seed(a.seed * 1000003 + step)
    if step % 2 == 0:
        starts = torch.randint(0, len(code) - a.seq - 1, (a.batch,), generator=g).tolist()
        ids, resp = code_rows(code, starts, a.seq)
    else:
        idx = torch.randint(0, len(pairs), (a.batch,), generator=g).tolist()
        ids, resp = pair_rows(pairs, idx, a.seq, SPECIAL["<|dlm_pad|>"])
    return ids, resp, g


def fixed_eval_set(a, vcode, vpairs, n=32):
    """Fixed held-out batches: n code windows evenly spaced, n pairs evenly spaced; t on a grid."""
    sets = []
    starts = np.linspace(0, len(vcode) - a.seq - 1, n).astype(int).tolist()
    sets.append(code_rows(vcode, starts, a.seq))
    idx = np.linspace(0, len(vpairs) - 1, n).astype(int).tolist()
    sets.append(pair_rows(vpairs, idx, a.seq, SPECIAL["<|dlm_pad|>"]))
    out = []
    g = torch.Generator().manual_seed(12345)
    for ids, resp in sets:
        t = torch.linspace(0.05, 0.95, n)[torch.randperm(n, generator=g)]
        m = (torch.rand(ids.shape, generator=g) < t[:, None]) & resp
        x = torch.where(m, torch.full_like(ids, SPECIAL["<|mask|>"]), ids)
        out.append((ids, resp, m, t, x))
    return out


@torch.no_grad()
def evaluate(model, evset, bf16):
    model.eval()
    res = []
    for ids, resp, m, t, x in evset:
        tot, ce_sum, nm = 0.0, 0.0, 0
        for i in range(0, ids.shape[0], 8):
            sl = slice(i, i + 8)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss, ce, k = diffusion_loss(model, ids[sl], resp[sl], m[sl], t[sl], x[sl])
            tot += float(loss) * int(resp[sl].sum())
            ce_sum += float(ce) * k
            nm += k
        res.append((tot / int(resp.sum()), ce_sum / max(nm, 1)))
    model.train()
    return {"val_code_loss": res[0][0], "val_code_ce": res[0][1], "val_pair_loss": res[1][0],
            "val_pair_ce": res[1][1], "val_loss": (res[0][0] + res[1][0]) / 2}


def lr_at(step, a, total):
    if step < a.warmup:
        return a.lr * (step + 1) / a.warmup
    p = min(1.0, (step - a.warmup) / max(1, total - a.warmup))
    return a.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--enc", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--inter", type=int, default=768)
    ap.add_argument("--layers", type=int, default=5)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--untied", action="store_true")
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--max-prompt", type=int, default=160)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=40)
    ap.add_argument("--steps", default="auto")
    ap.add_argument("--budget-min", type=float, default=60)
    ap.add_argument("--set-total", type=int, default=0,
                    help="on resume: replace the stored total step count (the change is logged)")
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fp32", action="store_true")
    ap.add_argument("--eps", type=float, default=1e-3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    bf16 = not a.fp32
    os.makedirs(a.out, exist_ok=True)
    code = np.fromfile(os.path.join(a.enc, "train_code.bin"), dtype=np.uint16)
    vcode = np.fromfile(os.path.join(a.enc, "val_code.bin"), dtype=np.uint16)
    pairs = load_pairs(os.path.join(a.enc, "train_pairs.jsonl"), a.seq, a.max_prompt)
    vpairs = load_pairs(os.path.join(a.enc, "val_pairs.jsonl"), a.seq, a.max_prompt)
    evset = fixed_eval_set(a, vcode, vpairs)
    cfg = DreamConfig(vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=a.inter,
                      num_hidden_layers=a.layers, num_attention_heads=a.heads, num_key_value_heads=a.kv_heads,
                      tie_word_embeddings=not a.untied, mask_token_id=SPECIAL["<|mask|>"],
                      eos_token_id=SPECIAL["<|endoftext|>"], pad_token_id=SPECIAL["<|endoftext|>"],
                      bos_token_id=SPECIAL["<|beginoftext|>"])
    model = DreamModel(cfg)
    model.init_weights(a.seed)
    nparam = sum(p.numel() for p in model.parameters())
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    nodecay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": nodecay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95))
    logf = open(os.path.join(a.out, "log.jsonl"), "a")
    step, total, best, elapsed0 = 0, None, float("inf"), 0.0
    last = os.path.join(a.out, "last.pt")
    if os.path.exists(last):
        ck = torch.load(last)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, total, best, elapsed0 = ck["step"], ck["total"], ck["best"], ck["elapsed"]
        print("[train] resumed at step %d (total %s, best %.4f, %.0f s done)" % (step, total, best, elapsed0),
              file=sys.stderr)
    if a.set_total and os.path.exists(last):
        logf.write(json.dumps({"set_total": a.set_total, "was": total, "at_step": step}) + "\n")
        print("[train] total steps %s -> %d at step %d" % (total, a.set_total, step), file=sys.stderr)
        total = a.set_total
    if total is None and a.steps != "auto":
        total = int(a.steps)
    meta = {"args": vars(a), "config": cfg.to_dict(), "params": nparam, "code_tokens": int(len(code)),
            "pairs": len(pairs), "val_code_tokens": int(len(vcode)), "val_pairs": len(vpairs)}
    logf.write(json.dumps({"meta": meta}) + "\n")
    logf.flush()
    print("[train] %d parameters, %d train code tokens, %d pairs" % (nparam, len(code), len(pairs)), file=sys.stderr)
    budget = a.budget_min * 60
    t_start = time.time() - elapsed0
    t_probe = None

    def save(path, extra=None):
        ck = {"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "total": total, "best": best,
              "elapsed": time.time() - t_start, "config": cfg.to_dict(), "args": vars(a)}
        if extra:
            ck.update(extra)
        torch.save(ck, path + ".tmp")
        os.replace(path + ".tmp", path)

    while True:
        el = time.time() - t_start
        if total is None and step == 20:
            sps = (time.time() - t_probe) / 15
            total = int(0.97 * budget / sps)
            print("[train] %.2f s/step -> %d steps in the budget" % (sps, total), file=sys.stderr)
            logf.write(json.dumps({"auto_steps": total, "s_per_step": sps}) + "\n")
        if step == 5 and t_probe is None:
            t_probe = time.time()
        if (total is not None and step >= total) or el >= budget:
            break
        lr = lr_at(step, a, total if total is not None else 10 ** 9)
        for gr in opt.param_groups:
            gr["lr"] = lr
        ids, resp, g = make_batch(step, a, code, pairs)
        x, m, t = mask_batch(ids, resp, cfg.mask_token_id, a.eps, g)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, ce, nm = diffusion_loss(model, ids, resp, m, t, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        rec = {"step": step, "loss": float(loss), "ce": float(ce), "lr": lr, "gnorm": float(gn),
               "kind": "code" if (step - 1) % 2 == 0 else "pair", "elapsed": round(time.time() - t_start, 1)}
        if step % a.eval_every == 0 or step == total:
            ev = evaluate(model, evset, bf16)
            rec.update(ev)
            if ev["val_loss"] < best:
                best = ev["val_loss"]
                save(os.path.join(a.out, "best.pt"))
            save(last)
            print("[train] step %d/%s loss %.3f val %.3f (code %.3f pair %.3f) best %.3f lr %.2e %.0fs" % (
                step, total, float(loss), ev["val_loss"], ev["val_code_loss"], ev["val_pair_loss"], best, lr,
                rec["elapsed"]), file=sys.stderr)
        logf.write(json.dumps(rec) + "\n")
        logf.flush()
    ev = evaluate(model, evset, bf16)
    if ev["val_loss"] < best:
        best = ev["val_loss"]
        save(os.path.join(a.out, "best.pt"))
    save(last)
    logf.write(json.dumps({"end": True, "step": step, "elapsed": time.time() - t_start, "best": best, **ev}) + "\n")
    print("[train] done: step %d, %.0f s, best val %.4f" % (step, time.time() - t_start, best), file=sys.stderr)


if __name__ == "__main__":
    main()
