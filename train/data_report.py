#!/usr/bin/python3
"""train/data_report.py — models/diffu-toy-code/DATA.md from its data_manifest.json: the Debian
packages the training data came from, their files/bytes and the license names read from each
package's /usr/share/doc/<pkg>/copyright (DEP-5 "License:" fields; the CPython standard library's
file is not DEP-5, its license is the PSF License Agreement).
    python3 train/data_report.py models/diffu-toy-code/data_manifest.json > models/diffu-toy-code/DATA.md"""
import json
import sys

m = json.load(open(sys.argv[1]))
c = m["counts"]
tk = m.get("tokenized", {})
print("# Training data of diffu-toy-code\n")
print("Made by `python3 train/data.py DATA` on Debian 12 (sources: %s), tokenized by "
      "`node train/encode.js TOK DATA ENC 5`.\n" % ", ".join("`%s`" % r for r in m["roots"]))
print("| | files | MB | instruction pairs | tokens |")
print("|---|---|---|---|---|")
for s in ("train", "val"):
    t = tk.get(s, {})
    print("| %s | %d | %.1f | %d | code %s, pairs %s |" % (
        "train (all)" if s == "train" else "held-out (by file)", c[s]["code_files"], c[s]["code_bytes"] / 1e6,
        c[s]["pairs"], t.get("code_tokens", "?"), t.get("pair_tokens", "?")))
if tk:
    print("\nTokenized for training: %s (%d train files, %.1f MB, %d tokens, %.2f bytes/token); held-out: "
          "%d files, %d tokens." % (tk.get("note", ""), tk["train"]["code_files"], tk["train"]["code_bytes"] / 1e6,
                                    tk["train"]["code_tokens"], tk["train"]["bytes_per_token"],
                                    tk["val"]["code_files"], tk["val"]["code_tokens"]))
f = m["filter"]
print("\nFiltering: %d .py files seen; dropped %d outside 200 B..256 KB, %d with a line over 400 "
      "characters, %d exact duplicates (after stripping trailing whitespace), %d not UTF-8, %d not "
      "parsing, %d without a Debian package. Held-out: %d%% of files by sha256 of the content.\n"
      % (f["files_seen"], f["size"], f["long_lines"], f["dup"], f["not_utf8"], f["no_parse"], f["no_package"],
         m["val_pct"]))
print("| Debian package | files | KB | licenses (copyright file) |")
print("|---|---|---|---|")
for p, v in m["packages"].items():
    lic = [l for l in v["licenses"] if len(l.split()) <= 8 and not l.endswith(("its", "implied", ":"))]
    if p.startswith(("libpython3.11", "python3.11")):
        lic = ["PSF-2.0 (Python Software Foundation License)"]
    print("| %s | %d | %d | %s |" % (p, v["files"], v["bytes"] // 1000,
                                     ", ".join(lic) if lic else "see %s" % v["copyright_file"]))
