#!/usr/bin/python3
"""train/report.py — the metric tables of the toy model's card and of docs/BENCHMARKS.md, in
Markdown, from the JSON results of train/run_evals.sh (no number is typed by hand).
    python3 train/report.py models/diffu-toy-code/eval
"""
import json
import os
import sys

d = sys.argv[1]
m = json.load(open(os.path.join(d, "masked.json")))
g = json.load(open(os.path.join(d, "generate.json")))

print("**Held-out masked-token loss and accuracy** (`python3 train/eval_masked.py MODEL ENC --rows 64`): "
      "%d windows of %d held-out code tokens and %d held-out instruction pairs (reply tokens scored); each "
      "eligible position masked with probability r; cross-entropy in nats per masked token.\n" % (
          m["rows"], m["seq"], m["rows"]))
print("| set | mask ratio | scored tokens | model loss | model accuracy | unigram loss | unigram accuracy |")
print("|---|---|---|---|---|---|---|")
for r in m["results"]:
    print("| %s | %.1f | %d | %.3f | %.3f | %.3f | %.3f |" % (
        "code" if r["set"] == "code" else "instruction replies", r["mask_ratio"], r["scored_tokens"], r["loss"],
        r["accuracy"], r["unigram_loss"], r["unigram_accuracy"]))
de = g["default"]
print("\n**Completions of %d held-out functions** (chat prompt, user turn = signature + docstring; "
      "alg entropy, temperature 0, steps = length = %d; an empty completion after a docstring parses, so "
      "the non-empty share and the parse rate among non-empty completions are given too):\n" % (
          g["n_prompts"], g["max_new_tokens"]))
print("| decoding | parses | first line = original's | non-empty | parses, of non-empty | local@1 | global@1 | command |")
print("|---|---|---|---|---|---|---|---|")
for k, lab in (("default", "Dream's defaults (one token per step)"), ("blocks8", "same, blocks of 8")):
    if k in g:
        r = g[k]
        print("| %s | %.1f%% | %.1f%% | %.1f%% | %.1f%% | %.3f | %.3f | `%s` |" % (
            lab, 100 * r["parse_rate"], 100 * r["first_line_match"], 100 * r["nonempty"],
            100 * r["parse_rate_nonempty"], r["local1"], r["global1"], r["command"]))
print("\n**AR-ness against temperature** (alg entropy, steps = length = %d, top-p off, seed 1; mean over the "
      "%d prompts; figure `docs/toy_model_arness.png`):\n" % (g["max_new_tokens"], g["n_prompts"]))
print("| temperature | local AR-ness@1 | global AR-ness@1 | parses | non-empty | first line equal |")
print("|---|---|---|---|---|---|")
for r in g["arness"]:
    print("| %.1f | %.3f | %.3f | %.1f%% | %.1f%% | %.1f%% |" % (r["temperature"], r["local1"], r["global1"],
          100 * r["parse_rate"], 100 * r["nonempty"], 100 * r["first_line_match"]))
print("\n**Confidence-threshold decoding** (Fast-dLLM `--threshold tau`, temperature 0, %d tokens; "
      "tau = 1.0 commits one token per step under the same confidence and is the reference):\n"
      % g["max_new_tokens"])
print("| decoding | tau | forwards per generated token | parses | non-empty | completions identical to tau = 1.0 |")
print("|---|---|---|---|---|---|")
for k, lab in (("threshold", "whole canvas"), ("threshold_blocks8", "blocks of 8")):
    for r in g.get(k, []):
        print("| %s | %.2f | %.3f | %.1f%% | %.1f%% | %.1f%% |" % (lab, r["tau"], r["forwards_per_token"],
              100 * r["parse_rate"], 100 * r["nonempty"], 100 * r["identical_to_tau1"]))
print("\nWall time of each diffu run (%d prompts in one process, shared machine): default %.0f s, "
      "temperatures %s s, thresholds %s s." % (g["n_prompts"], de["wall_s"],
                                               "/".join("%.0f" % r["wall_s"] for r in g["arness"]),
                                               "/".join("%.0f" % r["wall_s"] for r in g["threshold"])))
if "precision" in g:
    print("\n**GEMM precision** (model/gemm.h `--precision`; Dream's defaults as above, temperature 0, %d tokens; "
          "fp32 is the exact mode and the reference):\n" % g["max_new_tokens"])
    print("| precision | completions identical to fp32 | tokens equal to fp32's (by position) | parses | non-empty |")
    print("|---|---|---|---|---|")
    for r in g["precision"]:
        if not r["supported"]:
            print("| %s | (this CPU lacks it) | | | |" % r["precision"])
            continue
        print("| %s | %.1f%% | %.1f%% | %.1f%% | %.1f%% |" % (r["precision"], 100 * r["identical_to_fp32"],
              100 * r["token_agreement_fp32"], 100 * r["parse_rate"], 100 * r["nonempty"]))
