#!/usr/bin/python3
"""train/plot_loss.py — the loss curve of a run (RUN/log.jsonl) as a PNG (matplotlib, Agg).
    python3 train/plot_loss.py RUN/log.jsonl docs/toy_model_loss.png
Training loss (Dream's 1/t-weighted masked CE, per batch; code and instruction batches
separately, smoothed over 25 batches) and the held-out loss on the fixed evaluation set."""
import json
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

rows = [json.loads(l) for l in open(sys.argv[1])]
st = [r for r in rows if "step" in r and "loss" in r]


def smooth(xs, k=25):
    out, acc = [], []
    for x in xs:
        acc.append(x)
        acc = acc[-k:]
        out.append(sum(acc) / len(acc))
    return out


fig, ax = plt.subplots(figsize=(6.4, 3.8))
for kind, col in (("code", "tab:blue"), ("pair", "tab:orange")):
    s = [r for r in st if r.get("kind") == kind]
    ax.plot([r["step"] for r in s], smooth([r["loss"] for r in s]), color=col, alpha=0.6, lw=1,
            label="train, %s batches (smoothed)" % ("code" if kind == "code" else "instruction"))
ev = [r for r in st if "val_loss" in r]
for key, col, lab in (("val_code_loss", "tab:blue", "held-out code"), ("val_pair_loss", "tab:orange",
                                                                       "held-out instruction")):
    ax.plot([r["step"] for r in ev], [r[key] for r in ev], "o-", color=col, ms=3, lw=1.5, label=lab)
ax.set_xlabel("step (8 x 256 tokens)")
ax.set_ylabel("masked-diffusion loss (1/t weighted)")
ax.set_ylim(0, 10)
ax.grid(alpha=0.3)
ax.legend(fontsize=7)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=120)
