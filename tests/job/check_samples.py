#!/usr/bin/python3
"""check_samples.py — the bundled deploy/prompts/sample_tasks.jsonl is a valid job input
and every task in it is right.

usage: check_samples.py DIFFU_BIN SAMPLE_TASKS.jsonl WORK_DIR

Asserted:
  - about 20 tasks, ids diffu/0..diffu/N-1, each with prompt, entry_point, test and
    canonical_solution; the prompt defines entry_point and its docstring has a >>> example;
  - in a separate Python process per task (10 s limit): prompt + canonical_solution passes
    the task's check(candidate) and the docstring examples (doctest); prompt + "    pass"
    (a stub returning None) FAILS check(), so no test is vacuous;
  - `diffu jobcheck --strict` accepts the file, plain and gzipped, with every id and the
    HumanEval fields kept as metadata.
Last line "N passed, M failed"; exit 1 on any failure.
"""
import gzip
import json
import os
import subprocess
import sys

RUNNER = r'''
import doctest, json, sys
t = json.loads(sys.stdin.read())
body = t["canonical_solution"] if sys.argv[1] == "canonical" else "    pass\n"
g = {}
exec(t["prompt"] + body + "\n" + t["test"], g)
g["check"](g[t["entry_point"]])
if sys.argv[1] == "canonical":
    f = doctest.DocTestFinder().find(g[t["entry_point"]], globs=g)
    runner = doctest.DocTestRunner()
    for test in f:
        runner.run(test)
    assert runner.failures == 0 and runner.tries > 0, "doctest: %d of %d failed" % (runner.failures, runner.tries)
'''

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from checks import check, report  # noqa: E402  (tests/common/checks.py)


def main():
    diffu, path, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    tasks = [json.loads(l) for l in open(path, encoding="utf-8")]
    check(18 <= len(tasks) <= 25, "%d tasks" % len(tasks))
    check([t["task_id"] for t in tasks] == ["diffu/%d" % i for i in range(len(tasks))], "task ids")
    for t in tasks:
        tid = t.get("task_id")
        check(set(t) == {"task_id", "prompt", "entry_point", "canonical_solution", "test"}, "%s: fields %s" % (tid, set(t)))
        check(t["prompt"].startswith("def %s(" % t["entry_point"]) and ">>> " in t["prompt"], "%s: prompt" % tid)
        check(t["test"].startswith("def check(candidate):"), "%s: test" % tid)
        p = subprocess.run([sys.executable, "-c", RUNNER, "canonical"], input=json.dumps(t), capture_output=True,
                           text=True, timeout=10)
        check(p.returncode == 0, "%s: canonical solution fails: %s" % (tid, p.stderr[-500:]))
        p = subprocess.run([sys.executable, "-c", RUNNER, "stub"], input=json.dumps(t), capture_output=True, text=True,
                           timeout=10)
        check(p.returncode != 0 and "AssertionError" in p.stderr, "%s: a stub passes the test" % tid)
    gz = os.path.join(work, "sample_tasks.jsonl.gz")
    with open(path, "rb") as f, open(gz, "wb") as g:
        g.write(gzip.compress(f.read()))
    for inp in (path, gz):
        p = subprocess.run([diffu, "jobcheck", "--input", inp, "--strict", "--n", "5", "--temperature", "0.2",
                            "--max-context", "4096"], capture_output=True, text=True, timeout=60)
        out = [json.loads(l) for l in p.stdout.splitlines()]
        check(p.returncode == 0 and [r["id"] for r in out] == [t["task_id"] for t in tasks],
              "jobcheck %s: exit %d %s" % (inp, p.returncode, p.stderr))
        check(all(r["n"] == 5 and r["mode"] == "prompt" and r["params"]["temperature"] == 0.2 and
                  r["meta_fields"] == ["entry_point", "canonical_solution", "test"] for r in out),
              "jobcheck %s: requests %s" % (inp, out[:1]))
        check(all(r["prompt_tokens"] == len(t["prompt"].encode()) for r, t in zip(out, tasks)), "byte counts")
    return report()


if __name__ == "__main__":
    sys.exit(main())
