#!/usr/bin/python3
"""deploy/prompts/make_chat_tasks.py — sample_tasks_chat.jsonl from sample_tasks.jsonl: the same
20 tasks as chat requests (one user message = the task's prompt, i.e. signature + docstring, the
form the toy model's instruction pairs have), metadata fields kept.
    python3 deploy/prompts/make_chat_tasks.py > deploy/prompts/sample_tasks_chat.jsonl"""
import json
import os

here = os.path.dirname(os.path.abspath(__file__))
for line in open(os.path.join(here, "sample_tasks.jsonl")):
    r = json.loads(line)
    r["messages"] = [{"role": "user", "content": r.pop("prompt")}]
    print(json.dumps(r))
