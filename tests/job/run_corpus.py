#!/usr/bin/python3
"""run_corpus.py — the batch-job request reader against a corpus of bad input.

usage: run_corpus.py DIFFU_BIN WORK_DIR [--list]

Every case is written to WORK_DIR/<case>.<ext> and checked with
`diffu jobcheck --input FILE --rejects FILE.rejects.jsonl --max-new-tokens 16
--max-context 64` (a byte-per-token stand-in tokenizer, so "prompt too long" is
exact), then again with --strict. The tables below are the documentation of
what the reader says for each kind of bad input:

  BAD_LINES   case -> (line 2 bytes, field, message). The file is
              good line / BAD LINE / good line. Asserted: exit 0; stdout holds
              exactly the two good requests (the rest of the job runs);
              stderr holds "FILE:2: <message>"; the rejects file has exactly one
              record {"line": 2, "field", "reason" containing the message, "raw"
              (or "raw_base64") equal to the bad line's bytes}. With --strict:
              exit 1, nothing on stdout, the same problem line on stderr.
  BAD_FILES   case -> (file bytes, ext, message). Asserted: exit 1, nothing on
              stdout, exactly one stderr line "diffu jobcheck: error: FILE: ..."
              containing the message.
  DAMAGED_GZ  case -> (file bytes, accepted ids, line, message): a gzip file
              damaged part way: the lines before the damage are accepted, the
              damage is one reject at the first lost line.
  ACCEPTED    case -> (file bytes, ext, accepted ids, summary phrase): files
              that look odd but are fine (blank lines, CRLF, BOM, gzip, ...).
Then one MIXED file holds every bad line of BAD_LINES between good lines: each
reject must carry its own line number and every good line must be accepted;
--strict lists the first 20 problems and "... and N more".
Every run: no sanitizer report on stderr, no signal. Last line "N passed, M
failed"; exit 1 on any failure.
"""
import base64
import gzip
import json
import os
import re
import subprocess
import sys
import zlib

GOOD1 = b'{"id": "good1", "prompt": "def f():\\n"}'
GOOD3 = b'{"id": "good3", "prompt": "x"}'
MAX_LINE = 64 << 20  # the reader's default line limit (DIFFU_JOBIN_MAX_LINE)


# the DiffuCoder chat prompt of "q" (docs: dream-diffucoder.md), counted in bytes as the stand-in does
CHAT_Q = (b"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nq\n<|im_end|>\n"
          b"<|im_start|>assistant\n")


def chat(*msgs, extra=""):
    m = ", ".join('{"role": "%s", "content": "%s"}' % r for r in msgs)
    return ('{"id": "x", "messages": [%s]%s}' % (m, extra)).encode()


# ------------------------------------------------------------ the tables
# line 2 of good1 / BAD / good3 -> (bytes, field (None: not one field), message the reject must contain)
BAD_LINES = {
    # --- not a JSON object
    "invalid_json_trailing_comma": (b'{"id": "x", "prompt": "a",}', None,
                                    "invalid JSON at column 27: expected a string key"),
    "invalid_json_unquoted_key": (b'{id: "x", "prompt": "a"}', None, "invalid JSON at column 2: expected a string key"),
    "invalid_json_truncated": (b'{"id": "x", "prompt": "a', None, "invalid JSON at column 23: unterminated string"),
    "invalid_json_trailing_garbage": (b'{"id": "x", "prompt": "a"} extra', None,
                                      "invalid JSON at column 28: trailing characters after the JSON value"),
    "invalid_json_nan": (b'{"id": "x", "prompt": "a", "temperature": NaN}', None,
                         "invalid JSON at column 43: unexpected character"),
    "invalid_json_number_out_of_range": (b'{"id": "x", "prompt": "a", "temperature": 1e400}', None,
                                         "invalid JSON at column 43: number out of range"),
    "invalid_json_control_char": (b'{"id": "x", "prompt": "a\tb"}', None,
                                  "invalid JSON at column 25: control character in string"),
    "invalid_json_lone_surrogate": (b'{"id": "x", "prompt": "\\ud800"}', None,
                                    "invalid JSON at column 30: lone UTF-16 surrogate in \\u escape"),
    "invalid_json_too_deep": (b'{"id": "x", "prompt": "a", "metadata": ' + b"[" * 600 + b"]" * 600 + b"}", None,
                              "invalid JSON at column 551: nesting deeper than 512"),
    "not_an_object_array": (b'["x", "def f():"]', None, 'expected a JSON object {"id": ..., "prompt": ...}, got an array'),
    "not_an_object_string": (b'"def f():"', None, "expected a JSON object {\"id\": ..., \"prompt\": ...}, got a string"),
    "invalid_utf8": (b'{"id": "x", "prompt": "caf\xe9"}', None, "not valid UTF-8: byte 0xe9 at column 27"),
    "invalid_utf8_overlong": (b'{"id": "x", "prompt": "\xc0\xaf"}', None, "not valid UTF-8: byte 0xc0 at column 24"),
    "bom_not_at_start": (b'\xef\xbb\xbf{"id": "x", "prompt": "a"}', None,
                         "a byte order mark (U+FEFF) starts this line; only the first line of a file may have one"),
    # --- the id
    "missing_id": (b'{"prompt": "a"}', "id", "missing 'id' (or 'task_id')"),
    "id_fractional": (b'{"id": 1.5, "prompt": "a"}', "id", "field 'id': expected a string or an integer, got a fractional number"),
    "id_array": (b'{"id": ["x"], "prompt": "a"}', "id", "field 'id': expected a string or an integer, got an array"),
    "id_null": (b'{"id": null, "prompt": "a"}', "id", "field 'id': expected a string or an integer, got null"),
    "task_id_bool": (b'{"task_id": true, "prompt": "a"}', "task_id",
                     "field 'task_id': expected a string or an integer, got a boolean"),
    "empty_id": (b'{"id": "", "prompt": "a"}', "id", "field 'id': empty string"),
    "id_control_char": (b'{"id": "a\\nb", "prompt": "a"}', "id", "field 'id': contains a control character (byte 0x0a)"),
    "id_too_long": (b'{"id": "' + b"i" * 1025 + b'", "prompt": "a"}', "id", "field 'id': 1025 bytes, longer than 1024"),
    "id_and_task_id": (b'{"id": "x", "task_id": "y", "prompt": "a"}', "id", "both 'id' and 'task_id': give one"),
    "duplicate_id": (b'{"id": "good1", "prompt": "a"}', "id", "duplicate id 'good1' (first on line 1)"),
    "duplicate_key": (b'{"id": "x", "prompt": "a", "prompt": "b"}', "prompt", "field 'prompt' appears twice"),
    # --- the prompt
    "missing_prompt_and_messages": (b'{"id": "x"}', "prompt", "missing 'prompt' (raw completion) or 'messages' (chat)"),
    "prompt_and_messages": (b'{"id": "x", "prompt": "a", "messages": []}', "prompt",
                            "both 'prompt' and 'messages': give one"),
    "prompt_not_string": (b'{"id": "x", "prompt": 42}', "prompt", "field 'prompt': expected a string, got an integer"),
    "prompt_empty": (b'{"id": "x", "prompt": ""}', "prompt", "field 'prompt': empty string"),
    "prompt_with_nul": (b'{"id": "x", "prompt": "a\\u0000b"}', "prompt",
                        "field 'prompt': contains a NUL character (\\u0000)"),
    "prompt_too_long": (b'{"id": "x", "prompt": "' + b"p" * 49 + b'"}', "prompt",
                        "prompt: too long for the model's context: 49 prompt tokens + max_new_tokens 16 = 65 > 64"),
    "chat_prompt_too_long": (chat(("user", "q")), "messages",
                             "messages: too long for the model's context: %d prompt tokens + max_new_tokens 16 = %d > 64"
                             % (len(CHAT_Q), len(CHAT_Q) + 16)),
    # --- messages
    "messages_not_a_list": (b'{"id": "x", "messages": "hello"}', "messages",
                            "field 'messages': expected an array of {\"role\", \"content\"} objects, got a string"),
    "messages_empty": (b'{"id": "x", "messages": []}', "messages", "field 'messages': empty array (needs a user message)"),
    "message_not_object": (b'{"id": "x", "messages": ["hello"]}', "messages[0]",
                           "messages[0]: expected an object {\"role\", \"content\"}, got a string"),
    "message_bad_role": (chat(("robot", "q")), "messages[0].role", "messages[0].role: 'robot' is not system, user or assistant"),
    "message_missing_role": (b'{"id": "x", "messages": [{"content": "q"}]}', "messages[0].role", "messages[0].role: missing"),
    "message_content_not_string": (b'{"id": "x", "messages": [{"role": "user", "content": [{"type": "text"}]}]}',
                                   "messages[0].content", "messages[0].content: expected a string, got an array"),
    "message_unknown_field": (b'{"id": "x", "messages": [{"role": "user", "content": "q", "name": "bob"}]}',
                              "messages[0]", "messages[0]: unknown field 'name' (a message has only role and content)"),
    "messages_multi_turn": (chat(("user", "a"), ("assistant", "b"), ("user", "c")), "messages",
                            "field 'messages': roles [user, assistant, user]; one turn is supported"),
    "messages_no_user": (chat(("system", "s")), "messages", "field 'messages': roles [system]; no user message"),
    # --- fields
    "unknown_field_typo": (b'{"id": "x", "prompt": "a", "temprature": 0.2}', "temprature",
                           "unknown field 'temprature' (did you mean 'temperature'?)"),
    "unknown_field": (b'{"id": "x", "prompt": "a", "colour": "red"}', "colour", "unknown field 'colour'"),
    # --- overrides: types
    "temperature_string": (b'{"id": "x", "prompt": "a", "temperature": "hot"}', "temperature",
                           "field 'temperature': expected a number, got a string"),
    "max_new_tokens_string": (b'{"id": "x", "prompt": "a", "max_new_tokens": "16"}', "max_new_tokens",
                              "field 'max_new_tokens': expected an integer, got a string"),
    "n_fractional": (b'{"id": "x", "prompt": "a", "n": 2.5}', "n", "field 'n': expected an integer, got a fractional number"),
    "top_k_bool": (b'{"id": "x", "prompt": "a", "top_k": true}', "top_k", "field 'top_k': expected an integer, got a boolean"),
    "alg_not_string": (b'{"id": "x", "prompt": "a", "alg": 3}', "alg", "field 'alg': expected a string, got an integer"),
    "prefill_number": (chat(("user", "q"), extra=', "prefill": 1'), "prefill",
                       "field 'prefill': expected a string or a boolean, got an integer"),
    # --- overrides: ranges
    "temperature_negative": (b'{"id": "x", "prompt": "a", "temperature": -1}', "temperature",
                             "field 'temperature': -1 is out of range [0, 1e+06]"),
    "top_p_over_1": (b'{"id": "x", "prompt": "a", "top_p": 1.5}', "top_p", "field 'top_p': 1.5 is out of range (0, 1]"),
    "top_p_zero": (b'{"id": "x", "prompt": "a", "top_p": 0}', "top_p", "field 'top_p': 0 is out of range (0, 1]"),
    "n_zero": (b'{"id": "x", "prompt": "a", "n": 0}', "n", "field 'n': 0 is out of range [1, 65536]"),
    "n_negative": (b'{"id": "x", "prompt": "a", "n": -3}', "n", "field 'n': -3 is out of range [1, 65536]"),
    "n_too_large": (b'{"id": "x", "prompt": "a", "n": 100000}', "n", "field 'n': 100000 is out of range [1, 65536]"),
    "steps_zero": (b'{"id": "x", "prompt": "a", "steps": 0}', "steps", "field 'steps': 0 is out of range [1, 16777216]"),
    "max_new_tokens_zero": (b'{"id": "x", "prompt": "a", "max_new_tokens": 0}', "max_new_tokens",
                            "field 'max_new_tokens': 0 is out of range [1, 1048576]"),
    "seed_negative": (b'{"id": "x", "prompt": "a", "seed": -1}', "seed",
                      "field 'seed': -1 is out of range [0, 9223372036854775807]"),
    "threshold_over_1": (b'{"id": "x", "prompt": "a", "threshold": 2}', "threshold", "field 'threshold': 2 is out of range [0, 1]"),
    "unknown_alg": (b'{"id": "x", "prompt": "a", "alg": "greedy"}', "alg",
                    "field 'alg': 'greedy' is not origin, maskgit_plus, topk_margin or entropy"),
    # --- combinations (diffu_denoise_params_check)
    "block_length_not_dividing": (b'{"id": "x", "prompt": "a", "block_length": 5}', "block_length",
                                  "block_length: 5 does not divide max_new_tokens 16"),
    "origin_with_alg_temp": (b'{"id": "x", "prompt": "a", "alg": "origin", "alg_temp": 0.5}', "alg_temp",
                             "alg_temp: 0.5 has no effect with alg origin"),
    "prefill_with_raw_prompt": (b'{"id": "x", "prompt": "a", "prefill": "```python\\n"}', "prefill",
                                "field 'prefill': only for chat requests ('messages'); append it to 'prompt'"),
    "prefill_and_assistant": (chat(("user", "q"), ("assistant", "A"), extra=', "prefill": "B"'), "prefill",
                              "both 'prefill' and a final assistant message: give one"),
    # --- size
    "line_too_long": (None, None, "line is 67108880 bytes, longer than the limit of 67108864 bytes"),
}


def long_line():
    head = b'{"id": "x", "prompt": "'
    tail = b'"}'
    return head + b"a" * (MAX_LINE + 16 - len(head) - len(tail)) + tail


def gz(b):
    return gzip.compress(b, mtime=0)


GOOD_LINES = b"".join(b'{"id": "g%d", "prompt": "def f%d():\\n"}\n' % (i, i) for i in range(40))


def truncated_gz():
    z = gz(GOOD_LINES)
    return z[: len(z) * 2 // 3]


FIRST10 = b"".join(GOOD_LINES.splitlines(True)[:10])


def corrupt_crc_gz():
    """a good member (lines 1-10), then a member (lines 11-40) whose CRC32 is wrong"""
    z = bytearray(gz(GOOD_LINES[len(FIRST10):]))
    z[-8] ^= 0xFF
    return gz(FIRST10) + bytes(z)


def lines_before_truncation():
    """ids of the complete lines zlib can inflate from the truncated member (an independent count)"""
    d = zlib.decompressobj(16 + 15)
    text = d.decompress(truncated_gz())
    return ["g%d" % i for i in range(text.count(b"\n"))], text.count(b"\n") + 1


BAD_FILES = {
    "empty_file": (b"", "jsonl", "empty file: no requests"),
    "only_blank_lines": (b"\n   \n\t\n", "jsonl", "no requests: 3 blank lines only"),
    "empty_gzip": (gz(b""), "jsonl.gz", "empty file: no requests"),
    "named_gz_not_gzip": (GOOD1 + b"\n", "jsonl.gz",
                          "named .gz but not gzip data (it starts with \"{\"id\": \"good...\", not the gzip magic 1f 8b)"),
    "missing_file": (None, "jsonl", "cannot open: No such file or directory"),
    "directory": ("dir", "jsonl", "is a directory"),
}

DAMAGED_GZ = {
    # (bytes, ids accepted, reject line, message)
    "truncated_gzip": (truncated_gz, None, None,
                       "gzip data truncated: the file ends inside the gzip member that starts at byte 0"),
    "corrupt_gzip_crc": (corrupt_crc_gz, ["g%d" % i for i in range(10)], 11,
                         "gzip data corrupt in the member that starts at byte %d: incorrect data check; nothing from "
                         "there on is used (lines from 11)" % len(gz(FIRST10))),
    "gzip_then_garbage": (lambda: gz(GOOD_LINES[:200]) + b"this is not gzip\n", None, None,
                          "is not the start of a gzip member"),
}

ACCEPTED = {
    # (bytes, ext, accepted ids, phrase in the stderr summary)
    "blank_lines_skipped": (GOOD1 + b"\n\n   \n\t\n" + GOOD3 + b"\n\n", "jsonl", ["good1", "good3"], "4 blank lines skipped"),
    "crlf_line_endings": (GOOD1 + b"\r\n" + GOOD3 + b"\r\n", "jsonl", ["good1", "good3"], "CRLF line endings"),
    "bom_at_start": (b"\xef\xbb\xbf" + GOOD1 + b"\n" + GOOD3 + b"\n", "jsonl", ["good1", "good3"], "UTF-8 BOM skipped"),
    "no_final_newline": (GOOD1 + b"\n" + GOOD3, "jsonl", ["good1", "good3"], "2 requests accepted"),
    "gzip_input": (gz(GOOD1 + b"\n" + GOOD3 + b"\n"), "jsonl.gz", ["good1", "good3"], "gzip"),
    "gzip_two_members": (gz(GOOD1 + b"\n") + gz(GOOD3 + b"\n"), "jsonl.gz", ["good1", "good3"], "gzip"),
    "gzip_not_named_gz": (gz(GOOD1 + b"\n"), "jsonl", ["good1"], "gzip"),
    "humaneval_record": (b'{"task_id": "HumanEval/0", "prompt": "def f():\\n", "entry_point": "f", '
                         b'"canonical_solution": "    pass\\n", "test": "def check(candidate): pass"}\n',
                         "jsonl", ["HumanEval/0"], "1 request accepted"),
    "mbpp_record_integer_id": (b'{"task_id": 11, "prompt": "def g():\\n", "text": "Write g.", "code": "def g(): pass", '
                               b'"test_list": ["assert g() is None"], "test_setup_code": "", "challenge_test_list": []}\n',
                               "jsonl", [11], "1 request accepted"),
    "null_overrides_use_defaults": (b'{"id": "x", "prompt": "a", "temperature": null, "n": null}\n', "jsonl", ["x"],
                                    "1 request accepted"),
    "unicode_prompt": ('{"id": "ü", "prompt": "def naïve(): return \\"日本\\" # \U0001F600"}\n'.encode(), "jsonl", ["ü"],
                       "1 request accepted"),
}

SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error", "BUG:")


class Runner:
    def __init__(self, diffu, work):
        self.diffu, self.work = diffu, work
        self.passed = self.failed = 0

    def check(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL", what)

    def run(self, path, *extra):
        rej = path + ".rejects.jsonl"
        if os.path.exists(rej):
            os.unlink(rej)
        cmd = [self.diffu, "jobcheck", "--input", path, "--rejects", rej, "--max-new-tokens", "16",
               "--max-context", "64", *extra]
        p = subprocess.run(cmd, capture_output=True, timeout=120)
        err = p.stderr.decode("utf-8", "replace")
        self.check(p.returncode >= 0, "%s: killed by signal %d" % (path, -p.returncode))
        self.check(not any(m in err for m in SANITIZER_MARKS), "%s: sanitizer report:\n%s" % (path, err))
        recs = []
        if os.path.exists(rej):
            with open(rej, "rb") as f:
                recs = [json.loads(l) for l in f]
        out = [json.loads(l) for l in p.stdout.decode().splitlines()]
        return p.returncode, out, err, recs

    def write(self, name, data, ext):
        path = os.path.join(self.work, "%s.%s" % (name, ext))
        if isinstance(data, str) and data == "dir":
            os.makedirs(path, exist_ok=True)
        elif data is None:
            if os.path.exists(path):
                os.unlink(path)
        else:
            with open(path, "wb") as f:
                f.write(data)
        return path

    # ---- the four tables
    def bad_line(self, name, line, field, msg):
        path = self.write(name, GOOD1 + b"\n" + line + b"\n" + GOOD3 + b"\n", "jsonl")
        rc, out, err, recs = self.run(path)
        tag = "bad line %s" % name
        self.check(rc == 0, "%s: exit %d\n%s" % (tag, rc, err))
        self.check([r["id"] for r in out] == ["good1", "good3"], "%s: accepted %s" % (tag, [r["id"] for r in out]))
        want = "%s:2: %s" % (path, msg)
        self.check(want in err, "%s: stderr lacks %r:\n%s" % (tag, want, err[:2000]))
        self.check(len(recs) == 1, "%s: %d reject records" % (tag, len(recs)))
        if recs:
            r = recs[0]
            raw = r["raw"].encode() if "raw" in r else base64.b64decode(r["raw_base64"])
            if r.get("raw_truncated"):
                self.check(r["raw_bytes"] == len(line) and line.startswith(raw) and len(raw) == 4096,
                           "%s: truncated raw (%d of %d bytes)" % (tag, len(raw), r["raw_bytes"]))
            else:
                self.check(raw == line, "%s: raw %r != %r" % (tag, raw[:80], line[:80]))
            self.check(r["line"] == 2 and r["field"] == field and msg in r["reason"] and r["file"] == path,
                       "%s: record %s" % (tag, {k: v for k, v in r.items() if k not in ("raw", "raw_base64")}))
        rc, out, err, _ = self.run(path, "--strict")
        self.check(rc == 1 and out == [] and want in err and "--strict refuses the whole file" in err,
                   "%s --strict: exit %d, %d on stdout\n%s" % (tag, rc, len(out), err[:2000]))

    def bad_file(self, name, data, ext, msg):
        path = self.write(name, data, ext)
        rc, out, err, recs = self.run(path)
        lines = [l for l in err.splitlines() if l]
        want = "diffu jobcheck: error: %s: %s" % (path, msg)
        self.check(rc == 1 and out == [] and len(lines) == 1 and lines[0].startswith(want),
                   "bad file %s: exit %d, stderr %r, want %r" % (name, rc, err, want))

    def damaged(self, name, make, ids, line, msg):
        if ids is None and name == "truncated_gzip":
            ids, line = lines_before_truncation()
        if name == "gzip_then_garbage":
            ids, line = ["g%d" % i for i in range(GOOD_LINES[:200].count(b"\n"))], GOOD_LINES[:200].count(b"\n") + 1
        path = self.write(name, make(), "jsonl.gz")
        rc, out, err, recs = self.run(path)
        tag = "damaged %s" % name
        self.check(rc == 0 and [r["id"] for r in out] == ids, "%s: exit %d accepted %s (want %s)" % (tag, rc, [r["id"] for r in out], ids))
        self.check(len(recs) == 1 and recs[0]["line"] == line and msg in recs[0]["reason"],
                   "%s: rejects %s (want line %s, %r)" % (tag, recs, line, msg))
        self.check(("%s:%d: " % (path, line)) in err, "%s: stderr %s" % (tag, err))
        rc, out, err, _ = self.run(path, "--strict")
        self.check(rc == 1 and out == [], "%s --strict: exit %d" % (tag, rc))

    def accepted(self, name, data, ext, ids, phrase):
        path = self.write(name, data, ext)
        rc, out, err, recs = self.run(path, "--strict")
        self.check(rc == 0 and [r["id"] for r in out] == ids and recs == [] and phrase in err,
                   "accepted %s: exit %d, ids %s, rejects %s, stderr %s" % (name, rc, [r["id"] for r in out], recs, err))

    def mixed(self):
        """every bad line in one file, between good lines"""
        lines, expect = [], {}
        for name, (line, field, msg) in sorted(BAD_LINES.items()):
            if line is None:
                line = long_line()
            if name == "duplicate_id":
                line = b'{"id": "m0", "prompt": "a"}'
                msg = "duplicate id 'm0' (first on line 1)"
            line = line.replace(b'"id": "x"', b'"id": "x%d"' % len(lines), 1)  # ids stay distinct
            lines.append(b'{"id": "m%d", "prompt": "x"}' % len(lines))
            lines.append(line)
            expect[len(lines)] = (name, field, msg)
        lines.append(b'{"id": "last", "prompt": "x"}')
        path = self.write("mixed", b"\n".join(lines) + b"\n", "jsonl")
        rc, out, err, recs = self.run(path, "--max-problems", "1000")
        good = [json.loads(l)["id"] for i, l in enumerate(lines) if i + 1 not in expect]
        self.check(rc == 0 and [r["id"] for r in out] == good, "mixed: exit %d, %d accepted of %d" % (rc, len(out), len(good)))
        got = {r["line"]: r for r in recs}
        self.check(sorted(got) == sorted(expect), "mixed: reject lines %s" % sorted(set(got) ^ set(expect)))
        def norm(m):  # the ids were made distinct, so columns and lengths moved
            return re.sub(r"(column|line is) \d+", r"\1 #", m)
        for ln, (name, field, msg) in expect.items():
            r = got.get(ln)
            self.check(r is not None and r["field"] == field and norm(msg) in norm(r["reason"]),
                       "mixed: line %d (%s): %s" % (ln, name, r and r["reason"]))
        rc, out, err, _ = self.run(path, "--strict")
        n = len(expect)
        self.check(rc == 1 and out == [] and ("... and %d more in %s.rejects.jsonl" % (n - 20, path)) in err
                   and len([l for l in err.splitlines() if l.startswith(path + ":")]) == 20,
                   "mixed --strict: exit %d\n%s" % (rc, err[-500:]))


def main():
    if "--list" in sys.argv:
        for t in (BAD_LINES, BAD_FILES, DAMAGED_GZ, ACCEPTED):
            for k in t:
                print(k)
        return 0
    diffu, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    R = Runner(diffu, work)
    for name, (line, field, msg) in BAD_LINES.items():
        R.bad_line(name, long_line() if line is None else line, field, msg)
    for name, (data, ext, msg) in BAD_FILES.items():
        R.bad_file(name, data, ext, msg)
    for name, (make, ids, line, msg) in DAMAGED_GZ.items():
        R.damaged(name, make, ids, line, msg)
    for name, (data, ext, ids, phrase) in ACCEPTED.items():
        R.accepted(name, data, ext, ids, phrase)
    R.mixed()
    print("%d kinds of bad input (%d bad lines, %d bad files, %d damaged gzip), %d odd-but-valid files"
          % (len(BAD_LINES) + len(BAD_FILES) + len(DAMAGED_GZ), len(BAD_LINES), len(BAD_FILES), len(DAMAGED_GZ),
             len(ACCEPTED)))
    print("%d passed, %d failed" % (R.passed, R.failed))
    return 1 if R.failed else 0


if __name__ == "__main__":
    sys.exit(main())
