#!/usr/bin/python3
"""make_corpus.py — corrupt-checkpoint corpus for the loader tests.

usage: make_corpus.py DIFFU_BIN OUT_DIR [--list]

Starts from two valid checkpoints written by `diffu mkmodel --preset tiny --vocab 1000`
(one model.safetensors, and one sharded into 6 files with model.safetensors.index.json;
bf16, hidden 64, 2 layers, 4/2 heads, inter 128) and writes every case below into
OUT_DIR/<case>/ by byte-level surgery on the files: a header is read with struct + json
here, edited, and written back (or the raw bytes are patched) — nothing goes through a
special mode of our C code. The expected outcome of each case is the table in
run_corpus.py; this file only knows how to make them. `--list` prints the case names.

Safetensors layout (public spec): u64 LE header length N | N bytes JSON | data section;
data_offsets are relative to the data section.
"""
import json
import os
import shutil
import struct
import subprocess
import sys

Q0 = "model.layers.0.self_attn.q_proj.weight"    # BF16 [64, 64]
QB0 = "model.layers.0.self_attn.q_proj.bias"     # BF16 [64]
K0 = "model.layers.0.self_attn.k_proj.weight"    # BF16 [32, 64]
V0 = "model.layers.0.self_attn.v_proj.weight"    # BF16 [32, 64]
DOWN1 = "model.layers.1.mlp.down_proj.weight"    # BF16 [64, 128]
EMBED = "model.embed_tokens.weight"              # BF16 [1000, 64]
LM_HEAD = "lm_head.weight"                       # BF16 [1000, 64], last in the file
NORM = "model.norm.weight"                       # BF16 [64]
ST = "model.safetensors"
IDX = "model.safetensors.index.json"
SHARD = "model-%05d-of-00006.safetensors"


# ------------------------------------------------------------ safetensors surgery
def st_read(path):
    """-> (header dict in file order, data section bytes)."""
    b = open(path, "rb").read()
    (n,) = struct.unpack("<Q", b[:8])
    return json.loads(b[8:8 + n].decode("utf-8")), b[8 + n:]


def st_write(path, header, data, pad=True, header_text=None):
    """Write header (dict, or header_text: raw bytes) + data; pad the header with
    spaces to a multiple of 8 like the reference writer unless pad is False."""
    h = header_text if header_text is not None else json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-(8 + len(h)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)


def st_edit(path, fn):
    """fn(header, data) edits the header in place; it may return new data bytes."""
    h, d = st_read(path)
    d2 = fn(h, d)
    st_write(path, h, d2 if isinstance(d2, bytes) else d)


def raw_header(path):
    b = open(path, "rb").read()
    (n,) = struct.unpack("<Q", b[:8])
    return b[:8], b[8:8 + n], b[8 + n:]


def patch_header_same_len(path, old, new):
    """Replace the first `old` in the raw header bytes by `new` (same length)."""
    assert len(old) == len(new)
    pre, h, d = raw_header(path)
    i = h.index(old)
    open(path, "wb").write(pre + h[:i] + new + h[i + len(old):] + d)


def set_u64(path, value):
    b = bytearray(open(path, "rb").read())
    b[:8] = struct.pack("<Q", value)
    open(path, "wb").write(bytes(b))


def edit_json(path, fn):
    obj = json.load(open(path))
    fn(obj)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def spans(h):
    return {k: v["data_offsets"] for k, v in h.items() if k != "__metadata__"}


# ------------------------------------------------------------------ the cases
CASES = []  # (name, base, fn)


def case(name, base="single"):
    def reg(fn):
        CASES.append((name, base, fn))
        return fn
    return reg


# --- sanity: the untouched bases and valid-but-unusual files must load
@case("valid_single")
def _(d):
    pass


@case("valid_sharded", "sharded")
def _(d):
    pass


@case("valid_unaligned_header")
def _(d):
    # Header NOT padded to 8 and an odd length, so every tensor starts at an odd
    # file offset: legal per the spec; the loader must copy, not misread.
    p = os.path.join(d, ST)
    h, data = st_read(p)
    txt = json.dumps(h, separators=(",", ":")).encode()
    if (8 + len(txt)) % 2 == 0:
        txt += b" "
    st_write(p, None, data, pad=False, header_text=txt)


@case("unknown_extra_tensor")
def _(d):
    # An extra tensor the model does not use (old checkpoints carry rotary inv_freq):
    # loads, with a warning naming it.
    p = os.path.join(d, ST)

    def fn(h, data):
        n = len(data)
        h["model.layers.0.self_attn.rotary_emb.inv_freq"] = {"dtype": "F32", "shape": [8], "data_offsets": [n, n + 32]}
        return data + struct.pack("<8f", *[1.0 / (2 ** i) for i in range(8)])
    st_edit(p, fn)


# --- the file itself
@case("empty_file")
def _(d):
    open(os.path.join(d, ST), "wb").close()


@case("file_shorter_than_8_bytes")
def _(d):
    p = os.path.join(d, ST)
    b = open(p, "rb").read()
    open(p, "wb").write(b[:5])


@case("truncated_shard")
def _(d):
    # cut in the middle of the last tensor's bytes (lm_head), as an interrupted download
    p = os.path.join(d, ST)
    h, data = st_read(p)
    b, e = h[LM_HEAD]["data_offsets"]
    assert e == len(data)
    os.truncate(p, os.path.getsize(p) - (e - b) // 2)


@case("truncated_shard_sharded", "sharded")
def _(d):
    p = os.path.join(d, SHARD % 3)
    h, data = st_read(p)
    os.truncate(p, os.path.getsize(p) - len(data) // 3)


@case("truncated_in_header")
def _(d):
    # cut inside the JSON header: the length prefix now runs past the end
    p = os.path.join(d, ST)
    os.truncate(p, 100)


@case("header_len_past_eof")
def _(d):
    p = os.path.join(d, ST)
    set_u64(p, os.path.getsize(p))  # 8 + N > size


@case("header_len_absurd")
def _(d):
    set_u64(os.path.join(d, ST), 0xFFFFFFFFFFFFFFFF)


@case("header_len_over_limit")
def _(d):
    # 100 MiB + 8: over the reference implementation's header limit. The file is
    # made sparse (truncate) so the length alone is what is wrong.
    p = os.path.join(d, ST)
    n = (100 << 20) + 8
    set_u64(p, n)
    os.truncate(p, 8 + n + 64)


@case("header_len_short")
def _(d):
    # length prefix 16 bytes short of the JSON: the header text is cut mid-value
    p = os.path.join(d, ST)
    (n,) = struct.unpack("<Q", open(p, "rb").read(8))
    set_u64(p, n - 24)


@case("git_lfs_pointer")
def _(d):
    # a clone without `git lfs pull`: the shard is a small text pointer file
    open(os.path.join(d, ST), "w").write(
        "version https://git-lfs.github.com/spec/v1\n"
        "oid sha256:4d7a2143f1b8e3f0d5a9c6b7e8f90123456789abcdef0123456789abcdef0123\n"
        "size 15231233024\n")


@case("shard_is_directory")
def _(d):
    p = os.path.join(d, ST)
    os.remove(p)
    os.mkdir(p)


@case("dangling_symlink_shard")
def _(d):
    # a Hugging Face cache snapshot copied without its blobs
    p = os.path.join(d, ST)
    os.remove(p)
    os.symlink("../../blobs/5f1c0ffee", p)


@case("shard_is_fifo")
def _(d):
    # a named pipe with no writer: opening it must not block
    p = os.path.join(d, ST)
    os.remove(p)
    os.mkfifo(p)


# --- the header JSON
@case("header_bad_json")
def _(d):
    # a missing comma between two members of the first tensor entry
    patch_header_same_len(os.path.join(d, ST), b'],"data_offsets"', b'] "data_offsets"')


@case("header_not_object")
def _(d):
    p = os.path.join(d, ST)
    pre, h, data = raw_header(p)
    txt = b'[1, 2, 3]'
    open(p, "wb").write(pre + txt + b" " * (len(h) - len(txt)) + data)


@case("header_non_utf8")
def _(d):
    # one byte of a tensor name replaced by 0xFF
    patch_header_same_len(os.path.join(d, ST), b'"model.norm.weight"', b'"model.n\xffrm.weight"')


@case("header_control_char")
def _(d):
    patch_header_same_len(os.path.join(d, ST), b'"model.norm.weight"', b'"model.no\x01m.weight"')


@case("header_deep_nesting")
def _(d):
    # 100000 nested arrays in __metadata__: must be refused, not overflow the stack
    p = os.path.join(d, ST)
    _, h, data = raw_header(p)
    txt = h.rstrip().replace(b'"__metadata__":{"format":"pt"}', b'"__metadata__":' + b"[" * 100000 + b"]" * 100000, 1)
    st_write(p, None, data, header_text=txt)


@case("header_duplicate_name")
def _(d):
    # the same tensor name twice in one header (a JSON object with a repeated key)
    p = os.path.join(d, ST)
    _, h, data = raw_header(p)
    hd = json.loads(h)
    extra = json.dumps({NORM: hd[NORM]}, separators=(",", ":"))[1:-1].encode()
    txt = h.rstrip()[:-1] + b"," + extra + b"}"
    st_write(p, None, data, header_text=txt)


@case("tensor_name_with_nul")
def _(d):
    p = os.path.join(d, ST)
    _, h, data = raw_header(p)
    txt = h.rstrip().replace(b'"model.norm.weight"', b'"model.norm\\u0000.weight"', 1)
    st_write(p, None, data, header_text=txt)


@case("tensor_name_with_newline")
def _(d):
    # a name with an escaped newline (and an unsupported dtype, so the loader names it):
    # the error must stay on one line
    def fn(h, data):
        n = len(data)
        h["extra newline\n(2 lines)"] = {"dtype": "I64", "shape": [2], "data_offsets": [n, n + 16]}
        return data + bytes(16)
    st_edit(os.path.join(d, ST), fn)


@case("entry_not_object")
def _(d):
    st_edit(os.path.join(d, ST), lambda h, data: h.__setitem__(NORM, [64]))


@case("entry_missing_dtype")
def _(d):
    st_edit(os.path.join(d, ST), lambda h, data: h[Q0].pop("dtype"))


@case("entry_missing_shape")
def _(d):
    st_edit(os.path.join(d, ST), lambda h, data: h[Q0].pop("shape"))


@case("entry_missing_data_offsets")
def _(d):
    st_edit(os.path.join(d, ST), lambda h, data: h[Q0].pop("data_offsets"))


@case("dtype_not_a_string")
def _(d):
    st_edit(os.path.join(d, ST), lambda h, data: h[Q0].__setitem__("dtype", 16))


@case("wrong_dtype_i64")
def _(d):
    # I64 with a span that matches I64 (so only the dtype is wrong)
    def fn(h, data):
        h[QB0]["dtype"] = "I64"
        h[QB0]["shape"] = [16]
    st_edit(os.path.join(d, ST), fn)


@case("wrong_dtype_f64")
def _(d):
    def fn(h, data):
        h[Q0]["dtype"] = "F64"
        h[Q0]["shape"] = [64, 16]   # 64*16*8 == 64*64*2 bytes
    st_edit(os.path.join(d, ST), fn)


@case("shape_negative_dim")
def _(d):
    st_edit(os.path.join(d, ST), lambda h, data: h[Q0].__setitem__("shape", [-64, -64]))


@case("shape_fractional_dim")
def _(d):
    st_edit(os.path.join(d, ST), lambda h, data: h[Q0].__setitem__("shape", [64, 64.5]))


@case("shape_too_many_dims")
def _(d):
    st_edit(os.path.join(d, ST), lambda h, data: h[Q0].__setitem__("shape", [4, 4, 4, 4, 16]))


@case("shape_numel_overflow")
def _(d):
    # 2^21 x 2^21 x 2^22 elements = 2^64, which wraps to 0 in 64-bit arithmetic;
    # with data_offsets [0, 0] a careless check sees a consistent empty tensor.
    def fn(h, data):
        h["extra.overflow"] = {"dtype": "BF16", "shape": [1 << 21, 1 << 21, 1 << 22], "data_offsets": [0, 0]}
    st_edit(os.path.join(d, ST), fn)


@case("offsets_out_of_range")
def _(d):
    # lm_head moved past the end of the data section (span still right)
    def fn(h, data):
        b, e = h[LM_HEAD]["data_offsets"]
        h[LM_HEAD]["data_offsets"] = [b + 4096, e + 4096]
    st_edit(os.path.join(d, ST), fn)


@case("offsets_end_before_begin")
def _(d):
    def fn(h, data):
        b, e = h[Q0]["data_offsets"]
        h[Q0]["data_offsets"] = [e, b]
    st_edit(os.path.join(d, ST), fn)


@case("offsets_not_integers")
def _(d):
    def fn(h, data):
        b, e = h[Q0]["data_offsets"]
        h[Q0]["data_offsets"] = [str(b), e]
    st_edit(os.path.join(d, ST), fn)


@case("offsets_beyond_int64")
def _(d):
    # 2^64 - 1 as a JSON integer (does not fit int64)
    p = os.path.join(d, ST)
    _, h, data = raw_header(p)
    hd = json.loads(h)
    b, e = hd[Q0]["data_offsets"]
    old = b'"data_offsets":[%d,%d]' % (b, e)
    assert h.count(old) == 1
    txt = h.rstrip().replace(old, b'"data_offsets":[18446744073709551615,%d]' % e)
    st_write(p, None, data, header_text=txt)


@case("offsets_wrong_count")
def _(d):
    st_edit(os.path.join(d, ST), lambda h, data: h[Q0].__setitem__("data_offsets", h[Q0]["data_offsets"] + [0]))


@case("span_shape_mismatch")
def _(d):
    # span two bytes short of 64 x 64 x BF16
    def fn(h, data):
        b, e = h[Q0]["data_offsets"]
        h[Q0]["data_offsets"] = [b, e - 2]
    st_edit(os.path.join(d, ST), fn)


@case("overlapping_tensors")
def _(d):
    # v_proj (same size as k_proj) made to start half-way into k_proj
    def fn(h, data):
        kb, ke = h[K0]["data_offsets"]
        n = ke - kb
        h[V0]["data_offsets"] = [kb + n // 2, kb + n // 2 + n]
    st_edit(os.path.join(d, ST), fn)


# --- the tensors against config.json
@case("wrong_shape")
def _(d):
    # q_proj [64, 64] stored as [32, 128] (same bytes; e.g. a transposed export)
    st_edit(os.path.join(d, ST), lambda h, data: h[Q0].__setitem__("shape", [32, 128]))


@case("wrong_rank")
def _(d):
    st_edit(os.path.join(d, ST), lambda h, data: h[QB0].__setitem__("shape", [8, 8]))


@case("missing_tensor")
def _(d):
    st_edit(os.path.join(d, ST), lambda h, data: h.pop(DOWN1))


@case("missing_lm_head")
def _(d):
    # a tied-embedding export (no lm_head) with tie_word_embeddings false in config.json
    def fn(h, data):
        b, e = h.pop(LM_HEAD)["data_offsets"]
        return data[:b]
    st_edit(os.path.join(d, ST), fn)


@case("vocab_mismatch_config")
def _(d):
    # config says 1024 tokens, the tensors hold 1000 (another model's config.json)
    edit_json(os.path.join(d, "config.json"), lambda c: c.__setitem__("vocab_size", 1024))


@case("vocab_mismatch_lm_head")
def _(d):
    # lm_head with 999 rows while the embedding and the config have 1000
    def fn(h, data):
        b, e = h[LM_HEAD]["data_offsets"]
        h[LM_HEAD]["shape"] = [999, 64]
        h[LM_HEAD]["data_offsets"] = [b, e - 128]
        return data[:-128]
    st_edit(os.path.join(d, ST), fn)


# --- config.json
@case("missing_model_dir")
def _(d):
    shutil.rmtree(d)


@case("missing_config")
def _(d):
    os.remove(os.path.join(d, "config.json"))


@case("config_dangling_symlink")
def _(d):
    p = os.path.join(d, "config.json")
    os.remove(p)
    os.symlink("../../blobs/c0nf1g", p)


@case("config_is_directory")
def _(d):
    p = os.path.join(d, "config.json")
    os.remove(p)
    os.mkdir(p)


@case("config_not_json")
def _(d):
    p = os.path.join(d, "config.json")
    t = open(p).read()
    open(p, "w").write(t.replace('"hidden_size": 64,', '"hidden_size": 64\n  oops,'))


@case("config_empty")
def _(d):
    open(os.path.join(d, "config.json"), "w").close()


@case("config_not_object")
def _(d):
    open(os.path.join(d, "config.json"), "w").write('["hidden_size", 64]\n')


@case("config_missing_field")
def _(d):
    edit_json(os.path.join(d, "config.json"), lambda c: c.pop("hidden_size"))


@case("config_wrong_type")
def _(d):
    edit_json(os.path.join(d, "config.json"), lambda c: c.__setitem__("num_hidden_layers", "2"))


@case("config_out_of_range")
def _(d):
    edit_json(os.path.join(d, "config.json"), lambda c: c.__setitem__("num_attention_heads", 0))


@case("config_heads_not_dividing")
def _(d):
    edit_json(os.path.join(d, "config.json"), lambda c: c.__setitem__("num_attention_heads", 5))


@case("config_hidden_act_gelu")
def _(d):
    edit_json(os.path.join(d, "config.json"), lambda c: c.__setitem__("hidden_act", "gelu"))


@case("config_rope_scaling")
def _(d):
    edit_json(os.path.join(d, "config.json"),
              lambda c: c.__setitem__("rope_scaling", {"type": "linear", "factor": 2.0}))


@case("config_rope_theta_overflow")
def _(d):
    # 1e400 is not a double: must not become +inf and pass "rope_theta > 1"
    p = os.path.join(d, "config.json")
    t = open(p).read()
    assert '"rope_theta": 1000000,' in t
    open(p, "w").write(t.replace('"rope_theta": 1000000,', '"rope_theta": 1e400,'))


@case("config_mask_id_outside_vocab")
def _(d):
    edit_json(os.path.join(d, "config.json"), lambda c: c.__setitem__("mask_token_id", 1000))


# --- the sharded layout
@case("missing_weights")
def _(d):
    os.remove(os.path.join(d, ST))


@case("index_missing_shard", "sharded")
def _(d):
    os.remove(os.path.join(d, SHARD % 3))


@case("index_tensor_not_in_shard", "sharded")
def _(d):
    # the index sends q_proj of layer 0 to shard 3; it lives in shard 2
    edit_json(os.path.join(d, IDX), lambda j: j["weight_map"].__setitem__(Q0, SHARD % 3))


@case("index_path_traversal", "sharded")
def _(d):
    edit_json(os.path.join(d, IDX), lambda j: j["weight_map"].__setitem__(Q0, "../" + SHARD % 2))


@case("index_empty_file_name", "sharded")
def _(d):
    edit_json(os.path.join(d, IDX), lambda j: j["weight_map"].__setitem__(Q0, ""))


@case("index_value_not_string", "sharded")
def _(d):
    edit_json(os.path.join(d, IDX), lambda j: j["weight_map"].__setitem__(Q0, 2))


@case("index_no_weight_map", "sharded")
def _(d):
    edit_json(os.path.join(d, IDX), lambda j: j.pop("weight_map"))


@case("index_not_json", "sharded")
def _(d):
    p = os.path.join(d, IDX)
    t = open(p).read()
    open(p, "w").write(t[: len(t) // 2])


@case("index_missing_tensor", "sharded")
def _(d):
    # a tensor dropped from both the index and its shard
    edit_json(os.path.join(d, IDX), lambda j: j["weight_map"].pop(DOWN1))
    for i in range(1, 7):
        p = os.path.join(d, SHARD % i)
        h, _ = st_read(p)
        if DOWN1 in h:
            st_edit(p, lambda h, data: h.pop(DOWN1))


@case("duplicate_tensor_two_shards", "sharded")
def _(d):
    # shard 3 also carries a copy of layer 0's q_proj (which the index maps to shard 2)
    h2, d2 = st_read(os.path.join(d, SHARD % 2))
    b, e = h2[Q0]["data_offsets"]

    def fn(h, data):
        n = len(data)
        h[Q0] = {"dtype": "BF16", "shape": [64, 64], "data_offsets": [n, n + (e - b)]}
        return data + d2[b:e]
    st_edit(os.path.join(d, SHARD % 3), fn)


def build(bin_path, out):
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    bases = {}
    for name, extra in (("single", []), ("sharded", ["--shard-size", "48K"])):
        p = os.path.join(out, "_base_" + name)
        subprocess.run([bin_path, "mkmodel", "--preset", "tiny", "--vocab", "1000", "--threads", "1", "--out", p] + extra,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        bases[name] = p
    assert os.path.exists(os.path.join(bases["sharded"], SHARD % 6)), "the sharded base no longer has 6 shards"
    for name, base, fn in CASES:
        d = os.path.join(out, name)
        shutil.copytree(bases[base], d)
        fn(d)
    return [c[0] for c in CASES]


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "--list":
        print("\n".join(c[0] for c in CASES))
        return
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[2])
    names = build(sys.argv[1], sys.argv[2])
    print("%d cases in %s" % (len(names), sys.argv[2]))


if __name__ == "__main__":
    main()
