#!/usr/bin/python3
"""run_corpus.py — the loader against the corrupt-checkpoint corpus (make_corpus.py).

usage: run_corpus.py DIFFU_BIN WORK_DIR

Builds the corpus in WORK_DIR/corpus, then for every case runs `diffu inspect DIR`
(and, for the cases in LOGITS_CASES, `diffu logits --model DIR ...`) and asserts:
  refused cases (REFUSED): exit status exactly 1 (not 0, not a signal; more than 20 s
    counts as a hang), nothing on stdout, stderr exactly ONE line, "diffu <cmd>: error: ..."
    containing every phrase of the table row ({d} = the case directory, so the row pins
    the offending file and the tensor/field);
  loading cases (LOADS): exit status 0, the report on stdout, and stderr holding only
    the warning lines the row names (empty row: stderr empty); their `diffu logits`
    exits 0 and matches the untouched model's within 1e-5 x max |logit|;
  every run: no "AddressSanitizer" / "LeakSanitizer" / "runtime error" (UBSan) / "BUG:"
    on stderr.
The corpus and the table must list the same cases. Last line: "N passed, M failed";
exit status 1 on any failure.
"""
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import make_corpus  # noqa: E402

Q0 = "tensor 'model.layers.0.self_attn.q_proj.weight'"
ST = "{d}/model.safetensors"
CFG = "{d}/config.json"
IDX = "{d}/model.safetensors.index.json"

# case -> phrases the single error line must contain. This table is the documentation
# of what the loader says for each kind of corrupt checkpoint.
REFUSED = {
    # --- the file itself
    "empty_file": [ST, "file is 0 bytes, too short for a safetensors header"],
    "file_shorter_than_8_bytes": [ST, "file is 5 bytes, too short for a safetensors header"],
    "truncated_shard": [ST, "tensor 'lm_head.weight'", "run past the end of the data section", "file truncated?"],
    "truncated_shard_sharded": ["{d}/model-00003-of-00006.safetensors", "tensor 'model.layers.0.mlp.down_proj.weight'",
                                "run past the end of the data section", "file truncated?"],
    "truncated_in_header": [ST, "header length 2768 runs past the end of the file (100 bytes; truncated?)"],
    "header_len_past_eof": [ST, "header length 407384 runs past the end of the file (407384 bytes"],
    "header_len_absurd": [ST, "header length 18446744073709551615 runs past the end of the file"],
    "header_len_over_limit": [ST, "header length 104857608 exceeds the 104857600-byte limit"],
    "header_len_short": [ST, "header is not valid JSON: line 1 col 2745: unexpected end of input"],
    "git_lfs_pointer": [ST, "header length 2336927755350992246 runs past the end of the file (136 bytes"],
    "shard_is_directory": [ST, "not a regular file"],
    "dangling_symlink_shard": [ST, "cannot open: No such file or directory"],
    "shard_is_fifo": [ST, "not a regular file"],
    # --- the header JSON
    "header_bad_json": [ST, "header is not valid JSON: line 1 col 95: expected ',' or '}'"],
    "header_not_object": [ST, "header is not a JSON object"],
    "header_non_utf8": [ST, "header is not valid JSON: line 1 col 2606: invalid UTF-8 in string"],
    "header_control_char": [ST, "header is not valid JSON: line 1 col 2607: control character in string"],
    "header_deep_nesting": [ST, "header is not valid JSON: line 1 col 528: nesting deeper than 512"],
    "header_duplicate_name": [ST, "tensor 'model.norm.weight' appears twice in the header"],
    "tensor_name_with_nul": [ST, "tensor 'model.norm\\u0000...': NUL byte in the tensor name"],
    "tensor_name_with_newline": [ST, "tensor 'extra newline (2 lines)': dtype I64 is not supported"],
    "entry_not_object": [ST, "tensor 'model.norm.weight': header entry is not an object"],
    "entry_missing_dtype": [ST, Q0 + ": missing 'dtype'"],
    "entry_missing_shape": [ST, Q0 + ": missing or non-array 'shape'"],
    "entry_missing_data_offsets": [ST, Q0 + ": 'data_offsets' must be [begin, end]"],
    "dtype_not_a_string": [ST, Q0 + ": field 'dtype': expected a string, got number"],
    "wrong_dtype_i64": [ST, "tensor 'model.layers.0.self_attn.q_proj.bias': dtype I64 is not supported (F32, F16, BF16)"],
    "wrong_dtype_f64": [ST, Q0 + ": dtype F64 is not supported (F32, F16, BF16)"],
    "shape_negative_dim": [ST, Q0 + ": shape[0] is not a valid dimension"],
    "shape_fractional_dim": [ST, Q0 + ": shape[1] is not a valid dimension"],
    "shape_too_many_dims": [ST, Q0 + ": 5 dimensions (at most 4 supported)"],
    "shape_numel_overflow": [ST, "tensor 'extra.overflow': shape too large"],
    "offsets_out_of_range": [ST, "tensor 'lm_head.weight': data_offsets [280704, 408704) run past the end of the data "
                                 "section (404608 bytes"],
    "offsets_end_before_begin": [ST, Q0 + ": data_offsets end 128128 < begin 136320"],
    "offsets_not_integers": [ST, Q0 + ": data_offsets[0] is not a non-negative integer"],
    "offsets_beyond_int64": [ST, Q0 + ": data_offsets[0] is not a non-negative integer"],
    "offsets_wrong_count": [ST, Q0 + ": 'data_offsets' must be [begin, end]"],
    "span_shape_mismatch": [ST, Q0 + ": data_offsets span 8190 bytes but BF16 shape needs 8192"],
    "overlapping_tensors": [ST, "tensors 'model.layers.0.self_attn.k_proj.weight' and "
                                "'model.layers.0.self_attn.v_proj.weight' overlap"],
    # --- the tensors against config.json
    "wrong_shape": [ST, Q0 + " has shape [32, 128], config.json implies [64, 64]"],
    "wrong_rank": [ST, "tensor 'model.layers.0.self_attn.q_proj.bias' has shape [8, 8], config.json implies [64]"],
    "missing_lm_head": ["{d}: tensor 'lm_head.weight' is missing from the checkpoint"],
    "missing_tensor": ["{d}: tensor 'model.layers.1.mlp.down_proj.weight' is missing from the checkpoint"],
    "vocab_mismatch_config": [ST, "tensor 'model.embed_tokens.weight' has 1000 vocabulary rows but config.json "
                                  "vocab_size is 1024"],
    "vocab_mismatch_lm_head": [ST, "tensor 'lm_head.weight' has 999 vocabulary rows but config.json vocab_size is 1000"],
    # --- config.json
    "missing_model_dir": ["{d}: model directory does not exist"],
    "missing_config": ["{d}: missing config.json"],
    "config_dangling_symlink": [CFG, "cannot open: No such file or directory"],
    "config_is_directory": [CFG, "read error: Is a directory"],
    "config_not_json": [CFG, "invalid JSON: line 9 col 3: expected ',' or '}'"],
    "config_empty": [CFG, "invalid JSON: line 1 col 1: unexpected end of input"],
    "config_not_object": [CFG, "expected a JSON object at the top level"],
    "config_missing_field": [CFG, "missing required field 'hidden_size'"],
    "config_wrong_type": [CFG, "field 'num_hidden_layers': expected an integer, got string"],
    "config_out_of_range": [CFG, "field 'num_attention_heads': 0 is out of range [1, 4096]"],
    "config_heads_not_dividing": [CFG, "field 'num_attention_heads': 5 does not divide hidden_size 64"],
    "config_hidden_act_gelu": [CFG, "field 'hidden_act': 'gelu' is not supported (only silu)"],
    "config_rope_scaling": [CFG, "field 'rope_scaling': only null is supported"],
    "config_rope_theta_overflow": [CFG, "invalid JSON: line 21 col 17: number out of range"],
    "config_mask_id_outside_vocab": [CFG, "field 'mask_token_id': 1000 is not below vocab_size 1000"],
    # --- the sharded layout
    "missing_weights": ["{d}: no model.safetensors or model.safetensors.index.json"],
    "index_missing_shard": ["{d}/model-00003-of-00006.safetensors: cannot open: No such file or directory"],
    "index_tensor_not_in_shard": ["{d}/model-00003-of-00006.safetensors", Q0, "is listed in " + IDX,
                                  "but missing from that file"],
    "index_path_traversal": [IDX, "weight_map['model.layers.0.self_attn.q_proj.weight']",
                             "shard name '../model-00002-of-00006.safetensors' must be a plain file name"],
    "index_empty_file_name": [IDX, "weight_map['model.layers.0.self_attn.q_proj.weight']",
                              "shard name '' must be a plain file name"],
    "index_value_not_string": [IDX, "weight_map['model.layers.0.self_attn.q_proj.weight'] is not a file name"],
    "index_no_weight_map": [IDX, "missing object 'weight_map'"],
    "index_not_json": [IDX, "invalid JSON: line 16 col 78: expected ',' or '}'"],
    "index_missing_tensor": ["{d}: tensor 'model.layers.1.mlp.down_proj.weight' is missing from the checkpoint"],
    "duplicate_tensor_two_shards": [Q0 + " appears in both {d}/model-00002-of-00006.safetensors and "
                                         "{d}/model-00003-of-00006.safetensors"],
}

# case -> phrases of the warning line it must print (empty: stderr must be empty)
LOADS = {
    "valid_single": [],
    "valid_sharded": [],
    "valid_unaligned_header": [],
    "unknown_extra_tensor": ["warning: {d}: 1 tensor(s) not used by the model are ignored: "
                             "model.layers.0.self_attn.rotary_emb.inv_freq"],
}

# refused cases also run through `diffu logits` (the serving path, diffu_model_load)
LOGITS_CASES = ["truncated_shard", "overlapping_tensors", "wrong_dtype_i64", "wrong_shape", "missing_tensor",
                "vocab_mismatch_config", "config_hidden_act_gelu", "index_missing_shard", "shape_numel_overflow"]

TIMEOUT = 20
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error", "BUG:")

n_pass = 0
n_fail = 0


def report(ok, what, detail=""):
    global n_pass, n_fail
    if ok:
        n_pass += 1
        print("ok    %s%s" % (what, (": " + detail) if detail else ""))
    else:
        n_fail += 1
        print("FAIL  %s: %s" % (what, detail))


def run(argv, cwd):
    """-> (returncode or None on timeout, stdout, stderr)."""
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT, cwd=cwd)
    except subprocess.TimeoutExpired as e:
        return None, (e.stdout or b"").decode("utf-8", "replace"), (e.stderr or b"").decode("utf-8", "replace")
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def status_problem(rc, want):
    if rc is None:
        return "no exit within %d s (hang)" % TIMEOUT
    if rc < 0:
        return "killed by signal %d" % -rc
    if rc != want:
        return "exit status %d, want %d" % (rc, want)
    return None


def sanitizer_problem(err):
    for m in SANITIZER_MARKS:
        if m in err:
            return "sanitizer/assertion report on stderr (%s)" % m
    return None


def lines_of(text):
    # only '\n' ends a line here: a stray '\r' inside a message must not hide a second line
    return [l for l in text.split("\n") if l != ""]


def check_refused(what, cmd, d, phrases, rc, out, err):
    problems = []
    p = status_problem(rc, 1) or sanitizer_problem(err)
    if p:
        problems.append(p)
    if out.strip():
        problems.append("stdout not empty: %r" % out[:200])
    ls = lines_of(err)
    if len(ls) != 1:
        problems.append("stderr has %d lines, want 1" % len(ls))
    line = ls[0] if ls else ""
    if not line.startswith("diffu %s: error: " % cmd):
        problems.append("line does not start with 'diffu %s: error: '" % cmd)
    for ph in phrases:
        ph = ph.replace("{d}", d)
        if ph not in line:
            problems.append("missing phrase %r" % ph)
    if "\r" in err or "\x1b" in err:
        problems.append("control characters in the message")
    report(not problems, what,
           line if not problems else "; ".join(problems) + " | stderr: " + err[:3000 if sanitizer_problem(err) else 600].strip())


def load_problems(rc, out, err, want_stdout):
    problems = []
    p = status_problem(rc, 0) or sanitizer_problem(err)
    if p:
        problems.append(p)
    if want_stdout and want_stdout not in out:
        problems.append("stdout lacks %r" % want_stdout)
    return problems


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: run_corpus.py DIFFU_BIN WORK_DIR")
    bin_path, work = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    corpus = os.path.join(work, "corpus")
    names = make_corpus.build(bin_path, corpus)

    table = set(REFUSED) | set(LOADS)
    for n in sorted(set(names) - table):
        report(False, n, "corpus case without an expectation in the table")
    for n in sorted(table - set(names)):
        report(False, n, "table row without a corpus case")
    assert not set(REFUSED) & set(LOADS)

    ids = os.path.join(work, "ids.bin")
    np.random.default_rng(11).integers(0, 1000, 12).astype("<i4").tofile(ids)

    def logits(d, out_name):
        outp = os.path.join(work, out_name)
        if os.path.exists(outp):
            os.remove(outp)
        rc, out, err = run([bin_path, "logits", "--model", d, "--ids", ids, "--out", outp, "--threads", "1"], corpus)
        return rc, out, err, outp

    # loading cases: report on stdout, only the named warnings, logits equal to the untouched model's
    ref = None
    for name in sorted(LOADS, key=lambda n: n != "valid_single"):
        d = name  # relative to the corpus (the cwd): messages do not depend on where the build is
        rc, out, err = run([bin_path, "inspect", d], corpus)
        problems = load_problems(rc, out, err, "parameters: 202304 ")
        warn = lines_of(err)
        want = [w.replace("{d}", d) for w in LOADS[name]]
        if len(warn) != len(want) or any(w not in l for w, l in zip(want, warn)):
            problems.append("stderr %r, want lines containing %r" % (err[:600], want))
        report(not problems, "inspect " + name, "; ".join(problems) or (warn[0] if warn else "loads, stderr empty"))

        rc, out, err, outp = logits(d, "logits_%s.bin" % name)
        problems = load_problems(rc, out, err, None)
        bad_lines = [l for l in lines_of(err) if "error" in l]
        if bad_lines:
            problems.append("error lines on stderr: %r" % bad_lines)
        if not problems:
            got = np.fromfile(outp, dtype="<f4")
            if got.size != 12 * 1000 or not np.all(np.isfinite(got)):
                problems.append("logits: %d values (want 12000), finite: %s" % (got.size, np.all(np.isfinite(got))))
            elif ref is None:
                ref = got
            else:
                diff = float(np.max(np.abs(got - ref)))
                if diff > 1e-5 * float(np.max(np.abs(ref))):
                    problems.append("logits differ from valid_single by %g" % diff)
        report(not problems, "logits  " + name, "; ".join(problems) or "logits match valid_single")

    # refused cases
    for name in names:
        if name not in REFUSED:
            continue
        d = name  # relative to the corpus (the cwd): messages do not depend on where the build is
        rc, out, err = run([bin_path, "inspect", d], corpus)
        check_refused("inspect " + name, "inspect", d, REFUSED[name], rc, out, err)
        if name in LOGITS_CASES:
            rc, out, err, outp = logits(d, "logits_refused.bin")
            check_refused("logits  " + name, "logits", d, REFUSED[name], rc, out, err)

    print("%d passed, %d failed" % (n_pass, n_fail))
    sys.exit(1 if n_fail else 0)


if __name__ == "__main__":
    main()
