#!/usr/bin/python3
"""check_tokens.py — prompt lengths with the real tokenizer (`diffu jobcheck --model`).

usage: check_tokens.py DIFFU_BIN SAMPLE_TASKS.jsonl WORK_DIR

Makes a throwaway model directory with Dream's tokenizer (`diffu mkmodel` with a
vocabulary of 151668 and tiny layers; the tokenizer comes from the cache filled by
deploy/fetch_vocab.sh — without it the test is skipped, exit 77), then checks that
the prompt_tokens jobcheck reports equal the number of ids `diffu tokenize` gives for
the same text (raw prompts), and for chat requests the ids of `diffu tokenize --chat
--eval-prefill` (the chat template and the paper's prefill). The context limit then
rejects exactly the requests whose prompt + max_new_tokens exceeds it.
Last line "N passed, M failed"; exit 1 on any failure.
"""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from checks import check, report  # noqa: E402  (tests/common/checks.py)


def main():
    diffu, samples, work = sys.argv[1:4]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    model = os.path.join(work, "m")
    p = subprocess.run([diffu, "mkmodel", "--preset", "tiny", "--vocab", "151668", "--hidden", "8", "--heads", "1",
                        "--kv-heads", "1", "--inter", "8", "--layers", "1", "--out", model], capture_output=True, text=True)
    if p.returncode != 0 or not os.path.exists(os.path.join(model, "tokenizer.json")):
        print("check_tokens: SKIP: no Dream tokenizer (run deploy/fetch_vocab.sh): %s" % p.stderr.strip()[-300:])
        return 77
    tasks = [json.loads(l) for l in open(samples, encoding="utf-8")]
    chat_in = os.path.join(work, "chat.jsonl")
    with open(chat_in, "w") as f:
        for t in tasks:
            f.write(json.dumps({"id": t["task_id"], "messages": [{"role": "user", "content": t["prompt"]}]}) + "\n")

    def tokenize(texts, *flags):
        inp = "".join(json.dumps({"text": x}) + "\n" for x in texts)
        p = subprocess.run([diffu, "tokenize", "--model", model, "--jsonl", *flags], input=inp, capture_output=True,
                           text=True, timeout=120)
        check(p.returncode == 0, "tokenize %s: %s" % (flags, p.stderr))
        return [len(json.loads(l)["ids"]) for l in p.stdout.splitlines()]

    # the third: --prefill with C escapes, expanded by jobcheck exactly as by generate and tokenize (cli/args.h)
    for inp, flags in ((samples, ()), (chat_in, ("--chat", "--eval-prefill")),
                       (chat_in, ("--chat", "--prefill", "Here it is:\\n```python\\n"))):
        want = tokenize([t["prompt"] for t in tasks], *flags)
        p = subprocess.run([diffu, "jobcheck", "--model", model, "--input", inp, "--strict", "--max-new-tokens", "64",
                            *flags[1:]], capture_output=True, text=True, timeout=120)
        got = [json.loads(l)["prompt_tokens"] for l in p.stdout.splitlines()]
        check(p.returncode == 0 and got == want and all(g > 0 for g in got),
              "%s: jobcheck exit %d, tokens %s, tokenize %s\n%s" % (inp, p.returncode, got, want, p.stderr))
        # a context that the longest prompt (+64) just misses
        limit = max(want) + 64 - 1
        rej = os.path.join(work, "rej.jsonl")
        p = subprocess.run([diffu, "jobcheck", "--model", model, "--input", inp, "--max-new-tokens", "64",
                            "--max-context", str(limit), "--rejects", rej,
                            *flags[1:]], capture_output=True, text=True, timeout=120)
        longest = [t["task_id"] for t, w in zip(tasks, want) if w == max(want)]
        recs = [json.loads(l) for l in open(rej)] if os.path.exists(rej) else []
        field = "messages" if flags else "prompt"
        check(p.returncode == 0 and sorted(r["id"] for r in recs) == sorted(longest) and all(
            r["field"] == field and ("%d prompt tokens + max_new_tokens 64 = %d > %d" % (max(want), max(want) + 64, limit))
            in r["reason"] for r in recs), "%s: context limit rejects %s" % (inp, recs))
        print("%s %s: %d prompts, %d..%d tokens" % (os.path.basename(inp), " ".join(flags), len(got), min(want), max(want)))
    return report()


if __name__ == "__main__":
    sys.exit(main())
