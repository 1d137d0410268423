#!/usr/bin/env python3
"""train/eval_masked.py — held-out masked-token loss and accuracy at fixed mask ratios, beside a
unigram baseline.

    python3 train/eval_masked.py MODEL_DIR ENC_DIR [--rows 64] [--ratios 0.1,0.5,0.9] [--json OUT]

MODEL_DIR: the exported HF directory (BF16 weights, computed in fp32 by train/model.py).
ENC_DIR: train/encode.js output; held-out = val_code.bin / val_pairs.jsonl (files never trained on).
Two sets: code (--rows windows of 256 tokens evenly spaced over the held-out files; every position
but the first eligible) and pairs (the first --rows held-out instruction pairs with a prompt of at
most 160 tokens: chat prompt + reply + <|dlm_pad|> to 256; reply and padding eligible, as in
training; scored on the reply tokens only, i.e. the function body and its <|im_end|>).
For ratio r, each eligible position is masked independently with probability r (seeded).
Model: CE and argmax accuracy of the prediction for each masked scored position (Dream's shift).
Unigram baseline: token frequencies of the training data's scored kind (train code tokens for
code, train reply tokens for pairs), add-one smoothed; its accuracy predicts the most frequent
token everywhere. Both on the same masked positions.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_model  # noqa: E402
from model import shift_rows  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("enc")
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--ratios", default="0.1,0.5,0.9")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(2)
    m = hf_model.load(a.model)
    c = m.config
    V = c.vocab_size
    pad = json.load(open(os.path.join(a.model, "tokenizer_config.json")))
    tokid = {v["content"]: int(k) for k, v in pad["added_tokens_decoder"].items()}
    PAD, MASK = tokid["<|dlm_pad|>"], c.mask_token_id
    # unigram tables from the TRAIN split
    tr_code = np.fromfile(os.path.join(a.enc, "train_code.bin"), dtype=np.uint16)
    uni_code = np.bincount(tr_code, minlength=V).astype(np.float64) + 1
    uni_pair = np.ones(V)
    for line in open(os.path.join(a.enc, "train_pairs.jsonl")):
        r = json.loads(line)["r"]
        np.add.at(uni_pair, r, 1)
    # held-out rows
    vcode = np.fromfile(os.path.join(a.enc, "val_code.bin"), dtype=np.uint16)
    starts = np.linspace(0, len(vcode) - a.seq - 1, a.rows).astype(int)
    code_ids = torch.from_numpy(np.stack([vcode[s:s + a.seq].astype(np.int64) for s in starts]))
    code_elig = torch.ones_like(code_ids, dtype=torch.bool)
    code_elig[:, 0] = False
    pairs = []
    for line in open(os.path.join(a.enc, "val_pairs.jsonl")):
        r = json.loads(line)
        if len(r["p"]) <= 160:
            pairs.append(r)
        if len(pairs) == a.rows:
            break
    pair_ids = torch.full((len(pairs), a.seq), PAD, dtype=torch.long)
    pair_elig = torch.zeros_like(pair_ids, dtype=torch.bool)
    pair_score = torch.zeros_like(pair_ids, dtype=torch.bool)
    for b, r in enumerate(pairs):
        row = (r["p"] + r["r"])[:a.seq]
        pair_ids[b, :len(row)] = torch.tensor(row)
        pair_elig[b, len(r["p"]):] = True
        pair_score[b, len(r["p"]):len(row)] = True
    sets = {"code": (code_ids, code_elig, code_elig, uni_code), "pairs": (pair_ids, pair_elig, pair_score, uni_pair)}
    out = {"model": os.path.abspath(a.model), "rows": a.rows, "seq": a.seq, "results": []}
    for name, (ids, elig, score, uni) in sets.items():
        logp_uni = np.log(uni / uni.sum())
        top_uni = int(np.argmax(uni))
        for ratio in [float(x) for x in a.ratios.split(",")]:
            g = torch.Generator().manual_seed(a.seed)
            msk = (torch.rand(ids.shape, generator=g) < ratio) & elig
            x = torch.where(msk, torch.full_like(ids, MASK), ids)
            ce_sum, acc, n = 0.0, 0, 0
            with torch.no_grad():
                for i in range(0, ids.shape[0], 8):
                    h = shift_rows(m.hidden(x[i:i + 8]))
                    sel = msk[i:i + 8] & score[i:i + 8]
                    lg = m.lm_head(h[sel]).float()
                    tgt = ids[i:i + 8][sel]
                    ce_sum += float(F.cross_entropy(lg, tgt, reduction="sum"))
                    acc += int((lg.argmax(-1) == tgt).sum())
                    n += int(sel.sum())
            tg = ids[msk & score].numpy()
            res = {"set": name, "mask_ratio": ratio, "scored_tokens": n, "loss": ce_sum / n, "accuracy": acc / n,
                   "unigram_loss": float(-logp_uni[tg].mean()), "unigram_accuracy": float((tg == top_uni).mean())}
            out["results"].append(res)
            print("%-5s r=%.1f  n=%5d  model loss %.3f acc %.3f | unigram loss %.3f acc %.3f" % (
                name, ratio, n, res["loss"], res["accuracy"], res["unigram_loss"], res["unigram_accuracy"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
