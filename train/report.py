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
print("\n**Completions of %d held-out functions** at Dream's defaults with DiffuCoder's algorithm (alg "
      "entropy, temperature 0, steps = length = %d; chat prompt, user turn = signature + docstring): "
      "**%.1f%%** parse (`ast.parse(prompt + completion)`), **%.1f%%** have the original's first line; "
      "mean AR-ness local@1 %.3f, global@1 %.3f. (`%s`)\n" % (
          g["n_prompts"], g["max_new_tokens"], 100 * de["parse_rate"], 100 * de["first_line_match"], de["local1"],
          de["global1"], de["command"]))
print("**AR-ness against temperature** (alg entropy, steps = length = %d, top-p off, seed 1; mean over the "
      "%d prompts; figure `docs/toy_model_arness.png`):\n" % (g["max_new_tokens"], g["n_prompts"]))
print("| temperature | local AR-ness@1 | global AR-ness@1 | parse rate | first line equal |")
print("|---|---|---|---|---|")
for r in g["arness"]:
    print("| %.1f | %.3f | %.3f | %.1f%% | %.1f%% |" % (r["temperature"], r["local1"], r["global1"],
                                                       100 * r["parse_rate"], 100 * r["first_line_match"]))
print("\n**Confidence-threshold decoding** (Fast-dLLM `--threshold tau`, temperature 0, %d tokens; "
      "tau = 1.0 commits one token per step under the same confidence and is the reference):\n"
      % g["max_new_tokens"])
print("| tau | forwards per generated token | parse rate | first line equal | completions identical to tau = 1.0 |")
print("|---|---|---|---|---|")
for r in g["threshold"]:
    print("| %.2f | %.3f | %.1f%% | %.1f%% | %.1f%% |" % (r["tau"], r["forwards_per_token"], 100 * r["parse_rate"],
                                                      100 * r["first_line_match"], 100 * r["identical_to_tau1"]))
print("\nWall time of each diffu run (32 prompts in one process): default %.0f s, temperatures %s s, "
      "thresholds %s s." % (de["wall_s"], "/".join("%.0f" % r["wall_s"] for r in g["arness"]),
                            "/".join("%.0f" % r["wall_s"] for r in g["threshold"])))
