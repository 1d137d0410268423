#!/usr/bin/env python3
"""train/data.py — the training data of the toy code model, from Python sources on this machine.

    python3 train/data.py OUT_DIR [--seed 0] [--val-pct 2] [--max-mb 80]

Sources: every *.py under /usr/lib/python3.11 (the standard library, Debian's libpython3.11-*
packages) and /usr/lib/python3/dist-packages (Debian's python3-* packages), each mapped to its
Debian package through dpkg's file lists (/var/lib/dpkg/info/*.list) and each package's license
read from /usr/share/doc/<package>/copyright.

Filtering and deduplication: UTF-8 only, 200 B .. 256 KB, no line longer than 400 characters,
must parse with ast (Python 3); exact duplicates (after stripping trailing whitespace per line)
are dropped, keeping the first path in sorted order.

Held-out split BY FILE: a file is held out when sha256(normalized content) mod 100 < val_pct,
so the split does not depend on the machine's file order.

Two parts, as DiffuCoder was trained:
  code   — the raw files (completion / pre-training style; every token may be masked);
  pairs  — instruction pairs from real functions: user = the function's signature and docstring
           (the source lines from `def` to the end of the docstring, dedented), reply = the rest
           of the function body (as it follows the prompt, so prompt + reply parses). Only functions
           with a docstring and a body of 1..40 lines after it. Pairs are deduplicated by
           (prompt, reply); a pair whose reply also occurs in a held-out file is dropped from train.

Writes OUT/{train,val}_code.jsonl ({"path","pkg","text"}), OUT/{train,val}_pairs.jsonl
({"path","pkg","name","prompt","reply"}) and OUT/manifest.json (packages, licenses, file and byte
counts). Deterministic: the same machine gives the same files.
"""
import argparse
import ast
import glob
import hashlib
import json
import os
import re
import sys
import textwrap

ROOTS = ["/usr/lib/python3.11", "/usr/lib/python3/dist-packages"]


def dpkg_owner_map():
    owner = {}
    for lst in sorted(glob.glob("/var/lib/dpkg/info/*.list")):
        pkg = os.path.basename(lst)[:-5].split(":")[0]
        try:
            with open(lst, encoding="utf-8", errors="replace") as f:
                for line in f:
                    p = line.rstrip("\n")
                    if p.endswith(".py"):
                        owner.setdefault(p, pkg)
        except OSError:
            pass
    return owner


LIC_RE = re.compile(r"^License:[ \t]*(\S[^\n]*)$", re.M)


def package_license(pkg):
    path = "/usr/share/doc/%s/copyright" % pkg
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            txt = f.read()
    except OSError:
        return {"copyright_file": None, "licenses": []}
    names = []
    for m in LIC_RE.finditer(txt):
        v = m.group(1).strip()
        if len(v) <= 60 and v not in names:
            names.append(v)
    if not names:
        if "PYTHON SOFTWARE FOUNDATION LICENSE" in txt.upper():
            names.append("PSF-2.0")
    return {"copyright_file": path, "licenses": names[:8]}


def normalize(text):
    return "\n".join(l.rstrip() for l in text.splitlines()).strip("\n") + "\n"


def function_pairs(src, tree):
    """(name, prompt, reply) for each function with a docstring and a short body."""
    lines = src.splitlines(keepends=True)
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        body = node.body
        if len(body) < 2 or not isinstance(body[0], ast.Expr):
            continue
        doc = body[0].value
        if not (isinstance(doc, ast.Constant) and isinstance(doc.value, str)):
            continue
        start = node.lineno - 1
        if node.decorator_list:
            start = node.decorator_list[0].lineno - 1
        doc_end = body[0].end_lineno  # 1-based inclusive
        end = node.end_lineno
        if end - doc_end < 1 or end - doc_end > 40 or doc_end - start > 40:
            continue
        head = "".join(lines[start:doc_end])
        rest = "".join(lines[doc_end:end])
        indent = len(lines[node.lineno - 1]) - len(lines[node.lineno - 1].lstrip())
        if indent:
            pre = lines[node.lineno - 1][:indent]
            if not all(l.startswith(pre) or not l.strip() for l in lines[start:end]):
                continue
            rest = "".join(l[indent:] if l.startswith(pre) else l for l in lines[doc_end:end])
            head = "".join(l[indent:] if l.startswith(pre) else l for l in lines[start:doc_end])
        if not rest.strip():
            continue
        try:
            ast.parse(head + rest)
        except SyntaxError:
            continue
        out.append((node.name, head, rest))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--val-pct", type=int, default=2)
    ap.add_argument("--max-mb", type=float, default=0, help="stop adding train code after this many MB (0: all)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    owner = dpkg_owner_map()
    files = []
    for r in ROOTS:
        for dp, dn, fn in os.walk(r):
            dn.sort()
            if "__pycache__" in dp:
                continue
            for n in sorted(fn):
                if n.endswith(".py"):
                    files.append(os.path.join(dp, n))
    files.sort()
    seen = set()
    stats = {"files_seen": len(files), "not_utf8": 0, "size": 0, "long_lines": 0, "no_parse": 0, "dup": 0,
             "no_package": 0}
    kept = {"train": [], "val": []}
    for p in files:
        real = os.path.realpath(p)
        try:
            with open(real, "rb") as f:
                raw = f.read()
        except OSError:
            continue
        if not (200 <= len(raw) <= 256 * 1024):
            stats["size"] += 1
            continue
        try:
            src = raw.decode("utf-8")
        except UnicodeDecodeError:
            stats["not_utf8"] += 1
            continue
        src = src.replace("\r\n", "\n").replace("\t", "    ")
        if max(len(l) for l in src.splitlines() or [""]) > 400:
            stats["long_lines"] += 1
            continue
        norm = normalize(src)
        h = hashlib.sha256(norm.encode()).hexdigest()
        if h in seen:
            stats["dup"] += 1
            continue
        seen.add(h)
        try:
            tree = ast.parse(norm)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            stats["no_parse"] += 1
            continue
        pkg = owner.get(p) or owner.get(real)
        if pkg is None:
            stats["no_package"] += 1
            continue
        split = "val" if int(h, 16) % 100 < a.val_pct else "train"
        kept[split].append((p, pkg, norm, tree))
    # pairs
    val_replies = set()
    pairs = {"train": [], "val": []}
    for split in ("val", "train"):
        seenp = set()
        for p, pkg, src, tree in kept[split]:
            for name, head, rest in function_pairs(src, tree):
                key = hashlib.sha256((head + "\0" + rest).encode()).hexdigest()
                rk = hashlib.sha256(rest.encode()).hexdigest()
                if key in seenp:
                    continue
                if split == "train" and rk in val_replies:
                    continue
                seenp.add(key)
                if split == "val":
                    val_replies.add(rk)
                pairs[split].append({"path": p, "pkg": pkg, "name": name, "prompt": head, "reply": rest})
    pkgs = {}
    counts = {}
    for split in ("train", "val"):
        nbytes = 0
        with open(os.path.join(a.out, split + "_code.jsonl"), "w") as f:
            for p, pkg, src, _ in kept[split]:
                if split == "train" and a.max_mb and nbytes > a.max_mb * 1e6:
                    break
                f.write(json.dumps({"path": p, "pkg": pkg, "text": src}) + "\n")
                nbytes += len(src.encode())
                d = pkgs.setdefault(pkg, {"files": 0, "bytes": 0})
                d["files"] += 1
                d["bytes"] += len(src.encode())
        with open(os.path.join(a.out, split + "_pairs.jsonl"), "w") as f:
            for r in pairs[split]:
                f.write(json.dumps(r) + "\n")
        counts[split] = {"code_files": len(kept[split]), "code_bytes": nbytes, "pairs": len(pairs[split]),
                         "pair_bytes": sum(len((r["prompt"] + r["reply"]).encode()) for r in pairs[split])}
    for pkg in pkgs:
        pkgs[pkg].update(package_license(pkg))
    man = {"roots": ROOTS, "val_pct": a.val_pct, "filter": stats, "counts": counts,
           "packages": dict(sorted(pkgs.items())), "val_files": [p for p, _, _, _ in kept["val"]]}
    with open(os.path.join(a.out, "manifest.json"), "w") as f:
        json.dump(man, f, indent=1)
    print(json.dumps({"filter": stats, "counts": counts, "packages": len(pkgs)}), file=sys.stderr)


if __name__ == "__main__":
    main()
