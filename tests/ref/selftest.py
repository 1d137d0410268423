#!/usr/bin/python3
"""Self-test of the NumPy Dream reference (tests/ref/).

  /usr/bin/python3 tests/ref/selftest.py [-v]

Checks the building blocks against closed forms (bf16 rounding, safetensors layout,
RoPE rotation/norm/relative-position properties, softmax, attention averaging, GQA head
mapping, zero-block model = lm_head(norm(embed)), padding invariance, bidirectionality,
top-p/top-k/margin/entropy, the step schedule, generation closed forms), then runs
make_checkpoint.py + dream_forward_ref.py + compare_logits.py + dream_generate_ref.py end to
end on a tiny config.  Exits 1 on any failure; the last line is "N passed, M failed".
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # keep tests/ref free of __pycache__
sys.path.insert(0, HERE)
import compare_logits as cl  # noqa: E402
import dream_forward_ref as fr  # noqa: E402
import dream_generate_ref as gr  # noqa: E402
import make_checkpoint as mc  # noqa: E402
import safetensors_np as st  # noqa: E402

PY = "/usr/bin/python3"
TMP = tempfile.mkdtemp(prefix="dream_ref_selftest_")
TESTS = []
VERBOSE = "-v" in sys.argv


def test(fn):
    TESTS.append(fn)
    return fn


def close(a, b, tol, what=""):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, "%s: shape %s vs %s" % (what, a.shape, b.shape)
    d = float(np.max(np.abs(a - b))) if a.size else 0.0
    assert d <= tol, "%s: max diff %.3g > %.3g" % (what, d, tol)
    return d


def run(args, expect=0):
    p = subprocess.run([PY] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if expect is not None and p.returncode != expect:
        raise AssertionError("%s exited %d (expected %d)\nstdout:\n%s\nstderr:\n%s"
                             % (" ".join(args), p.returncode, expect, p.stdout, p.stderr))
    return p


def tiny(name, **kw):
    d = os.path.join(TMP, name)
    args = dict(hidden=64, layers=2, heads=4, kv_heads=2, inter=128, vocab=1000,
                rope_theta=10000.0, dtype="f32", shard_bytes=0, seed=1)
    args.update(kw)
    mc.make_checkpoint(d, **args)
    return d


def rng_seqs(seed, lengths, vocab=998):
    r = np.random.default_rng(seed)
    return [r.integers(0, vocab, n) for n in lengths]


# ====================================================================== safetensors
@test
def bf16_rounding_closed_forms():
    vals = np.array([1.0, 1 + 2 ** -8, 1 + 3 * 2 ** -8, -2.5, np.inf, -np.inf, 0.0, -0.0,
                     1 + 2 ** -8 + 2 ** -20, 3.140625], dtype=np.float32)
    bits = st.f32_to_bf16_bits(vals)
    exp = [0x3F80, 0x3F80, 0x3F82, 0xC020, 0x7F80, 0xFF80, 0x0000, 0x8000, 0x3F81, 0x4049]
    assert bits.tolist() == exp, [hex(b) for b in bits]
    nb = st.f32_to_bf16_bits(np.array([np.nan], dtype=np.float32))
    assert np.isnan(st.bf16_bits_to_f32(nb))[0]
    # every finite bf16 pattern survives the round trip
    allb = np.arange(0, 1 << 16, dtype=np.uint32).astype(np.uint16)
    f = st.bf16_bits_to_f32(allb)
    fin = np.isfinite(f)
    assert np.array_equal(st.f32_to_bf16_bits(f[fin]), allb[fin])
    # rounding error bound: half an ulp = relative 2^-8 (8 significant bits)
    x = np.random.default_rng(0).standard_normal(10000).astype(np.float32)
    r = st.round_to_bf16(x)
    assert np.all(np.abs(r - x) <= np.abs(x) * 2 ** -8)
    assert np.max(np.abs(r - x) / np.abs(x)) > 2 ** -10


@test
def safetensors_single_file_layout():
    d = os.path.join(TMP, "st1")
    rng = np.random.default_rng(2)
    ts = {"b": rng.standard_normal((3, 5)).astype(np.float32),
          "a": rng.standard_normal(7).astype(np.float32),
          "c.weight": rng.standard_normal((2, 2, 2)).astype(np.float32)}
    files = st.write_checkpoint(d, {"x": 1}, ts, "f32", 0)
    assert files == ["model.safetensors"]
    assert not os.path.exists(os.path.join(d, "model.safetensors.index.json"))
    raw = open(os.path.join(d, "model.safetensors"), "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    assert (8 + n) % 8 == 0, "header not padded to 8"
    hdr = json.loads(raw[8:8 + n].decode())
    assert hdr["__metadata__"] == {"format": "pt"}
    # independent decoding straight from the spec
    offs = sorted((v["data_offsets"][0], v["data_offsets"][1], k) for k, v in hdr.items()
                  if k != "__metadata__")
    assert offs[0][0] == 0 and all(offs[i][1] == offs[i + 1][0] for i in range(len(offs) - 1))
    assert offs[-1][1] == len(raw) - 8 - n
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32" and v["shape"] == list(ts[k].shape)
        b, e = v["data_offsets"]
        a = np.frombuffer(raw[8 + n + b:8 + n + e], dtype="<f4").reshape(v["shape"])
        assert np.array_equal(a, ts[k])
    back = st.read_safetensors_file(os.path.join(d, "model.safetensors"))
    for k in ts:
        assert np.array_equal(back[k], ts[k])
    assert json.load(open(os.path.join(d, "config.json"))) == {"x": 1}


@test
def safetensors_f16_bf16_roundtrip():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    for dt, conv in (("f16", lambda a: a.astype(np.float16).astype(np.float32)),
                     ("bf16", lambda a: st.round_to_bf16(a).astype(np.float32))):
        d = os.path.join(TMP, "st_" + dt)
        st.write_checkpoint(d, None, {"w": x}, dt, 0)
        ck = st.Checkpoint(d)
        assert ck.info("w") == (st.norm_dtype(dt), (4, 6))
        assert np.array_equal(ck.get("w", np.float32), conv(x)), dt
        # values already representable are exact
        y = conv(x)
        st.write_checkpoint(d, None, {"w": y}, dt, 0)
        assert np.array_equal(st.Checkpoint(d).get("w"), y)


@test
def safetensors_sharding():
    d = os.path.join(TMP, "st_shard")
    rng = np.random.default_rng(4)
    items = [("t%d" % i, rng.standard_normal(n).astype(np.float32))
             for i, n in enumerate([10, 20, 300, 5, 5, 40, 1])]
    # bf16 -> sizes 20,40,600,10,10,80,2 bytes; limit 64.  huggingface_hub rule: an
    # oversized tensor is appended as its own shard at once, the open shard stays open:
    # [t2] [t0,t1] [t5] [t3,t4,t6]
    files = st.write_checkpoint(d, {"k": 2}, items, "bf16", 64)
    assert files == ["model-%05d-of-00004.safetensors" % i for i in range(1, 5)], files
    idx = json.load(open(os.path.join(d, "model.safetensors.index.json")))
    assert idx["metadata"]["total_size"] == 2 * sum(a.size for _, a in items)
    wm = idx["weight_map"]
    expect = {"t2": 1, "t0": 2, "t1": 2, "t5": 3, "t3": 4, "t4": 4, "t6": 4}
    for k, i in expect.items():
        assert wm[k] == "model-%05d-of-00004.safetensors" % i, (k, wm[k])
    ck = st.Checkpoint(d)
    assert sorted(ck.names()) == sorted(k for k, _ in items)
    for k, a in items:
        assert np.array_equal(ck.get(k), st.round_to_bf16(a).astype(np.float32))
    # a single-shard plan gives the unsharded layout and removes the stale index
    files = st.write_checkpoint(d, {"k": 2}, items, "bf16", 10 ** 9)
    assert files == ["model.safetensors"]
    assert not os.path.exists(os.path.join(d, "model.safetensors.index.json"))
    assert sorted(os.listdir(d)) == ["config.json", "model.safetensors"]


@test
def make_checkpoint_layout_and_config():
    d = os.path.join(TMP, "mc")
    p = run([os.path.join(HERE, "make_checkpoint.py"), "--hidden", "64", "--layers", "2",
             "--heads", "4", "--kv-heads", "2", "--inter", "128", "--vocab", "1000",
             "--rope-theta", "1e6", "--dtype", "f16", "--shard-bytes", "100000", "--seed", "5",
             "--out", d])
    cfg = json.load(open(os.path.join(d, "config.json")))
    for k, v in {"architectures": ["DreamModel"], "model_type": "Dream", "hidden_size": 64,
                 "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                 "num_key_value_heads": 2, "vocab_size": 1000, "rope_theta": 1e6,
                 "rope_scaling": None, "rms_norm_eps": 1e-6, "tie_word_embeddings": False,
                 "hidden_act": "silu", "torch_dtype": "float16", "mask_token_id": 999,
                 "pad_token_id": 998, "bos_token_id": 998, "eos_token_id": 998}.items():
        assert cfg[k] == v, (k, cfg[k], v)
    assert "max_position_embeddings" in cfg
    ck = st.Checkpoint(d)
    assert os.path.exists(os.path.join(d, "model.safetensors.index.json"))
    names = set(ck.names())
    assert names == set(mc.tensor_order(2, False))
    shapes = {"model.embed_tokens.weight": (1000, 64), "lm_head.weight": (1000, 64),
              "model.layers.1.self_attn.q_proj.weight": (64, 64),
              "model.layers.1.self_attn.q_proj.bias": (64,),
              "model.layers.1.self_attn.k_proj.weight": (32, 64),
              "model.layers.1.self_attn.v_proj.bias": (32,),
              "model.layers.1.self_attn.o_proj.weight": (64, 64),
              "model.layers.0.mlp.gate_proj.weight": (128, 64),
              "model.layers.0.mlp.down_proj.weight": (64, 128), "model.norm.weight": (64,)}
    for k, s in shapes.items():
        assert ck.info(k) == ("F16", s), (k, ck.info(k))
    assert np.all(ck.get("lm_head.weight")[999] == 0)
    # same seed, f32: f16 file holds the f16-rounded f32 weights
    d32 = tiny("mc32", dtype="f32", seed=5, rope_theta=1e6)
    c32 = st.Checkpoint(d32)
    for k in names:
        assert np.array_equal(ck.get(k), c32.get(k).astype(np.float16).astype(np.float32)), k
    # real special ids for a real-size vocab
    big = mc.make_config(64, 1, 4, 2, 128, 152064, 1e6, "bf16")
    assert (big["mask_token_id"], big["pad_token_id"], big["bos_token_id"]) == (151666, 151643, 151643)


# ====================================================================== blocks
@test
def rope_properties():
    hd, theta = 128, 1e6
    inv = fr.rope_inv_freq(hd, theta)
    close(inv, [theta ** (-2.0 * j / hd) for j in range(hd // 2)], 1e-15, "inv_freq")
    rng = np.random.default_rng(6)
    q = rng.standard_normal((1, 3, 7, hd))
    k = rng.standard_normal((1, 3, 7, hd))
    pos = np.array([[0, 1, 2, 5, 100, 4000, 123456]])
    cos, sin = fr.rope_cos_sin(pos, hd, theta)
    qr = fr.apply_rope(q, cos, sin)
    close(np.linalg.norm(qr, axis=-1), np.linalg.norm(q, axis=-1), 1e-10, "norm")
    close(qr[:, :, 0], q[:, :, 0], 0, "position 0 is identity")
    # explicit NeoX pairing: dim j rotates with dim j + hd/2 by angle pos*inv[j]
    h = hd // 2
    ang = pos[0, 4] * inv
    x = q[0, 0, 4]
    expect = np.concatenate([x[:h] * np.cos(ang) - x[h:] * np.sin(ang),
                             x[h:] * np.cos(ang) + x[:h] * np.sin(ang)])
    close(qr[0, 0, 4], expect, 1e-12, "pairing")
    # relative position: <R(m)q, R(n)k> depends only on m - n
    a = rng.standard_normal(hd)
    b = rng.standard_normal(hd)

    def rot(v, p):
        c, s = fr.rope_cos_sin(np.array([[p]]), hd, theta)
        return fr.apply_rope(v[None, None, None, :], c, s)[0, 0, 0]
    d1 = rot(a, 10) @ rot(b, 3)
    d2 = rot(a, 1007) @ rot(b, 1000)
    assert abs(d1 - d2) < 1e-9, (d1, d2)


@test
def softmax_and_masked_rows():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 11)) * 30
    p = fr.softmax(x)
    close(p.sum(-1), np.ones(5), 1e-12, "sum")
    assert np.all(p >= 0)
    y = np.full((2, 4), -np.inf)
    y[1, 2] = 3.0
    q = fr.softmax(y)
    assert np.array_equal(q[0], np.zeros(4)) and np.array_equal(q[1], [0, 0, 1, 0])
    close(fr.silu(np.array([0.0, 1.0, -1.0])), [0, 1 / (1 + np.exp(-1)), -1 / (1 + np.e)], 1e-15)
    w = rng.standard_normal(11)
    n = fr.rms_norm(x, w, 1e-6)
    close(n, x / np.sqrt((x ** 2).mean(-1, keepdims=True) + 1e-6) * w, 1e-12, "rms")


@test
def attention_identical_keys_average_values():
    rng = np.random.default_rng(8)
    B, H, KV, N, D = 2, 4, 2, 6, 8
    q = rng.standard_normal((B, H, N, D))
    k = np.broadcast_to(rng.standard_normal((B, KV, 1, D)), (B, KV, N, D)).copy()
    v = rng.standard_normal((B, KV, N, D))
    out = fr.attention(q, k, v, None)
    for h in range(H):
        close(out[:, h], np.broadcast_to(v[:, h // 2].mean(1, keepdims=True), (B, N, D)),
              1e-12, "mean head %d" % h)
    # with a key mask only the allowed keys are averaged
    allowed = np.ones((B, N, N), dtype=bool)
    allowed[:, :, :2] = False
    out = fr.attention(q, k, v, allowed)
    close(out[:, 1], np.broadcast_to(v[:, 0, 2:].mean(1, keepdims=True), (B, N, D)), 1e-12)


@test
def attention_gqa_mapping_matches_explicit_loop():
    rng = np.random.default_rng(9)
    B, H, KV, N, D = 1, 6, 2, 5, 4
    q, k, v = (rng.standard_normal((B, n, N, D)) for n in (H, KV, KV))
    out = fr.attention(q, k, v, None)
    for h in range(H):
        j = h // (H // KV)   # repeat_kv: KV head j serves query heads j*rep .. j*rep+rep-1
        s = q[0, h] @ k[0, j].T / np.sqrt(D)
        p = np.exp(s - s.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        close(out[0, h], p @ v[0, j], 1e-12, "head %d" % h)


# ====================================================================== model
def zero_blocks(d_src, d_dst):
    ck = st.Checkpoint(d_src)
    cfg = json.load(open(os.path.join(d_src, "config.json")))
    ts = {}
    for n in ck.names():
        a = ck.get(n)
        if n.endswith(("o_proj.weight", "down_proj.weight")):
            a = np.zeros_like(a)
        ts[n] = a
    st.write_checkpoint(d_dst, cfg, ts, "f32", 0)
    return ts


@test
def zero_attention_and_mlp_gives_lm_head_of_norm_embed():
    d = tiny("z_src", layers=1, seed=11)
    ts = zero_blocks(d, os.path.join(TMP, "z"))
    m = fr.DreamRef(os.path.join(TMP, "z"))
    ids = np.array([[3, 17, 400, 999, 5]])
    got = m.forward(ids)
    E = ts["model.embed_tokens.weight"].astype(np.float64)[ids[0]]
    n = E / np.sqrt((E ** 2).mean(-1, keepdims=True) + 1e-6) * ts["model.norm.weight"]
    close(got[0], n @ ts["lm_head.weight"].astype(np.float64).T, 1e-10, "closed form")


@test
def tied_embeddings():
    d = tiny("tied", tie=True, seed=12)
    ck = st.Checkpoint(d)
    assert "lm_head.weight" not in ck
    assert json.load(open(os.path.join(d, "config.json")))["tie_word_embeddings"] is True
    m = fr.DreamRef(d)
    ids = np.array([[1, 2, 3, 4]])
    h = m.hidden(ids)
    close(m.forward(ids), h @ ck.get("model.embed_tokens.weight", np.float64).T, 1e-12)


@test
def bidirectional_not_causal():
    m = fr.DreamRef(tiny("bidi", seed=13))
    ids = np.array([[5, 6, 7, 8, 9, 10]])
    a = m.forward(ids)
    ids2 = ids.copy()
    ids2[0, -1] = 500
    b = m.forward(ids2)
    assert np.max(np.abs(a[0, 0] - b[0, 0])) > 1e-3, "position 0 did not see the last token"


@test
def padding_invariance_and_positions():
    m = fr.DreamRef(tiny("pad", seed=14))
    seqs = rng_seqs(15, [5, 20, 9, 1])
    alone = [m.forward(s[None])[0] for s in seqs]
    cat = np.concatenate(alone)
    close(fr.forward_ragged(m, seqs), cat, 1e-11, "batch")
    close(fr.forward_ragged(m, seqs, pad_to=33), cat, 1e-11, "pad_to")
    # position ids are what _sample builds: cumsum - 1, pads -> 1
    ids, am = fr.left_pad(seqs[:2], 998)
    pos = np.cumsum(am, -1) - 1
    pos[am == 0] = 1
    assert pos[0].tolist() == [1] * 15 + [0, 1, 2, 3, 4]
    # bidirectional + RoPE: a common shift of all positions changes nothing (only relative
    # positions enter the scores), while stretching them does (RoPE is really applied)
    shifted = m.forward(seqs[1][None], position_ids=np.arange(20)[None] + 7)[0]
    close(shifted, alone[1], 1e-9, "shift invariance")
    stretched = m.forward(seqs[1][None], position_ids=2 * np.arange(20)[None])[0]
    assert np.max(np.abs(stretched - alone[1])) > 1e-3


@test
def gqa_equals_expanded_mha():
    d = tiny("gqa", seed=16, heads=4, kv_heads=2)
    cfg = json.load(open(os.path.join(d, "config.json")))
    ck = st.Checkpoint(d)
    ts = {n: ck.get(n) for n in ck.names()}
    hd = 64 // 4
    for i in range(cfg["num_hidden_layers"]):
        for w in ("k_proj", "v_proj"):
            for suf in ("weight", "bias"):
                n = "model.layers.%d.self_attn.%s.%s" % (i, w, suf)
                a = ts[n].reshape((2, hd) + ts[n].shape[1:])
                ts[n] = np.repeat(a, 2, axis=0).reshape((4 * hd,) + ts[n].shape[1:])
    cfg2 = dict(cfg, num_key_value_heads=4)
    d2 = os.path.join(TMP, "mha")
    st.write_checkpoint(d2, cfg2, ts, "f32", 0)
    seqs = rng_seqs(17, [7, 12])
    close(fr.forward_ragged(fr.DreamRef(d2), seqs), fr.forward_ragged(fr.DreamRef(d), seqs),
          1e-11, "gqa vs mha")


# ====================================================================== CLIs
@test
def forward_cli_compare_cli_and_speed():
    d = os.path.join(TMP, "cli_bf16")
    run([os.path.join(HERE, "make_checkpoint.py"), "--hidden", "64", "--layers", "2", "--heads",
         "4", "--kv-heads", "2", "--inter", "128", "--vocab", "1000", "--rope-theta", "10000",
         "--dtype", "bf16", "--shard-bytes", "150000", "--seed", "18", "--out", d])
    assert len([f for f in os.listdir(d) if f.endswith(".safetensors")]) == 3
    seqs = rng_seqs(19, [18, 22, 20])
    ids = os.path.join(TMP, "ids.bin")
    np.concatenate(seqs).astype("<i4").tofile(ids)
    out = os.path.join(TMP, "logits.bin")
    out2 = os.path.join(TMP, "logits_pad.bin")
    t0 = time.time()
    run([os.path.join(HERE, "dream_forward_ref.py"), "--model", d, "--ids", ids,
         "--lengths", "18,22,20", "--out", out])
    t_cli = time.time() - t0
    run([os.path.join(HERE, "dream_forward_ref.py"), "--model", d, "--ids", ids,
         "--lengths", "18,22,20", "--pad-to", "40", "--out", out2])
    L = np.fromfile(out, dtype="<f4")
    assert L.size == 60 * 1000
    m = fr.DreamRef(d)
    t0 = time.time()
    ref = np.concatenate([m.forward(s[None])[0] for s in seqs])
    t_fwd = time.time() - t0
    close(L.reshape(60, 1000), ref, 1e-5 * np.abs(ref).max(), "cli vs in-process")
    p = run([os.path.join(HERE, "compare_logits.py"), out, out2, "--vocab", "1000"])
    assert "PASS" in p.stdout and "argmax agreement 60/60" in p.stdout, p.stdout
    bad = L.copy()
    bad[1234] += 0.01 * np.abs(L).max()
    badf = os.path.join(TMP, "logits_bad.bin")
    bad.astype("<f4").tofile(badf)
    p = run([os.path.join(HERE, "compare_logits.py"), out, badf, "--vocab", "1000"], expect=1)
    assert "FAIL" in p.stdout
    # one sequence, no --lengths; --dump
    dump = os.path.join(TMP, "dump")
    np.asarray(seqs[0]).astype("<i4").tofile(ids)
    run([os.path.join(HERE, "dream_forward_ref.py"), "--model", d, "--ids", ids, "--out", out,
         "--dump", dump])
    close(np.fromfile(out, "<f4").reshape(18, 1000), ref[:18], 1e-5 * np.abs(ref).max())
    nrm = np.fromfile(os.path.join(dump, "norm.bin"), "<f4").reshape(18, 64)
    close(nrm @ m.lm_head_weight().T, ref[:18], 1e-4 * np.abs(ref).max(), "dump norm")
    assert os.path.exists(os.path.join(dump, "layer1.bin"))
    if VERBOSE:
        print("   forward 3x~20 tokens: in-process %.3fs, CLI %.3fs" % (t_fwd, t_cli))
    assert t_fwd < 1.0, "forward too slow: %.2fs" % t_fwd


@test
def compare_logits_near_tie_rules():
    import io
    A = np.array([[1.0, 0.99999, -3.0], [2.0, 0.0, 1.0], [0.5, 0.4, 0.1]])
    B = A.copy()
    B[0] = [0.99999, 1.0, -3.0]          # flip a near-tie: tolerated
    buf = io.StringIO()
    assert cl.compare(A, B, tol=1e-4, out=buf), buf.getvalue()
    assert "near-tie" in buf.getvalue() and "tolerated" in buf.getvalue()
    B = A.copy()
    B[2] = [0.4, 0.5, 0.1]               # real mismatch (and a large error)
    assert not cl.compare(A, B, tol=1e-4, out=io.StringIO())
    B = A.copy()
    B[1, 1] += 1e-3                      # error above tol*scale, argmax unchanged
    assert not cl.compare(A, B, tol=1e-4, out=io.StringIO())
    B = A.copy()
    B[1, 1] += 1e-4                      # within tol*scale (scale 3)
    assert cl.compare(A, B, tol=1e-4, out=io.StringIO())


# ====================================================================== generation
@test
def sample_tokens_closed_forms():
    lg = np.log(np.array([[0.5, 0.3, 0.2], [0.2, 0.3, 0.5]]))
    # top_p: keep tokens up to and including the first one whose cumsum exceeds top_p
    for tp, keep in ((0.6, [0.5, 0.3]), (0.5, [0.5, 0.3]), (0.4, [0.5]), (0.85, [0.5, 0.3, 0.2])):
        c, x = gr.sample_tokens(lg, 0.0, top_p=tp)
        expect = max(keep) / sum(keep)
        close(c, [expect, expect], 1e-12, "top_p %g" % tp)
        assert x.tolist() == [0, 2]
    # top_p >= 1 disables the filter
    c, _ = gr.sample_tokens(lg, 0.0, top_p=1.0)
    close(c, [0.5, 0.5], 1e-12)
    # top_k keeps ties with the k-th value
    c, x = gr.sample_tokens(np.array([[1.0, 2.0, 2.0, 0.0]]), 0.0, top_k=1)
    close(c, [0.5], 1e-12)
    assert x.tolist() == [1]   # argmax tie -> lowest id
    # margin = top1 - top2 (on the filtered distribution)
    c, _ = gr.sample_tokens(lg, 0.0, margin_confidence=True)
    close(c, [0.2, 0.2], 1e-12)
    c, _ = gr.sample_tokens(lg, 0.0, top_p=0.4, margin_confidence=True)
    close(c, [1.0, 1.0], 1e-12)
    # entropy confidence = sum p log(p + 1e-10)
    c, _ = gr.sample_tokens(np.zeros((1, 8)), 0.0, neg_entropy=True)
    close(c, [np.log(1 / 8 + 1e-10)], 1e-12)
    p = np.array([0.5, 0.3, 0.2])
    c, _ = gr.sample_tokens(lg[:1], 0.0, neg_entropy=True)
    close(c, [np.sum(p * np.log(p + 1e-10))], 1e-12)
    # temperature: logits / T before the filters; argmax unaffected at T = 0
    c, _ = gr.sample_tokens(lg[:1], 0.5)
    close(c, [0.25 / 0.38], 1e-9)  # (0.5^2)/(0.25+0.09+0.04)
    # sampling at T > 0 only returns kept tokens
    rng = np.random.default_rng(0)
    big = np.log(np.array([[0.5, 0.3, 0.2]] * 2000))
    _, xs = gr.sample_tokens(big, 1.0, top_p=0.6, rng=rng)
    assert set(xs.tolist()) == {0, 1} and abs((xs == 0).mean() - 0.625) < 0.05


@test
def schedule_closed_forms():
    for n in (2, 3, 17, 257, 513):
        a = gr.linspace_f32(1.0, 1e-3, n)
        assert a.dtype == np.float32 and a[0] == 1.0 and a[-1] == np.float32(1e-3)
        close(a, np.linspace(1, 1e-3, n), 2e-7)
        b = gr.timesteps(1e-3, n - 1, "f32fma")
        close(a, b, 1.2e-7)
    # 16 tokens / 16 steps: 0 at the first step, then 1, 2 at the last
    ts = gr.timesteps(1e-3, 16)
    m, seq = 16, []
    for i in range(16):
        k = gr.transfer_count(m, 1, ts[i], ts[i + 1], i == 15)
        seq.append(k)
        m -= k
    assert seq == [0] + [1] * 14 + [2], seq
    # batch: the mean mask count is used
    assert gr.transfer_count(30, 3, ts[0], ts[1], True) == 10


class StubModel:
    """Fake model: the logits row of source position q predicts token tok[q] with strength
    w[q] (other tokens 0), independent of the canvas; lets generation be checked exactly."""

    def __init__(self, V, w, tok, mask_id):
        self.V, self.w, self.tok = V, np.asarray(w, float), np.asarray(tok)
        self.cfg = {"vocab_size": V, "mask_token_id": mask_id, "pad_token_id": 0}

    def hidden(self, x, am=None):
        B, N = x.shape
        return np.broadcast_to(np.arange(N)[None, :, None], (B, N, 1)).astype(float)

    def logits_of(self, h):
        q = h[..., 0].astype(int)
        out = np.zeros(q.shape + (self.V,))
        np.put_along_axis(out, self.tok[q][..., None], self.w[q][..., None], axis=-1)
        return out


@test
def generation_commit_order_and_ties_with_stub():
    V, mask = 50, 49
    # prompt of 2, 6 new tokens -> positions 2..7 predicted from rows 1..6
    w = np.array([0, 1.0, 5.0, 3.0, 3.0, 9.0, 2.0, 0])
    tok = np.array([0, 11, 12, 13, 14, 15, 16, 0])
    stub = StubModel(V, w, tok, mask)
    hist = []
    out = gr.generate(stub, [[1, 2]], 6, 6, alg="maskgit_plus", history=hist)
    assert out == [[1, 2, 11, 12, 13, 14, 15, 16]], out
    order = [h["committed"][0] for h in hist]
    # confidences by position: 2:w1=1, 3:w2=5, 4:w3=3, 5:w4=3 (tie), 6:w5=9, 7:w6=2
    # schedule 6 tokens / 6 steps: [0,1,1,1,1,2]; tie 4/5 -> lower position first
    assert order == [[], [6], [3], [4], [5], [2, 7]], order
    # entropy and margin rank the same way for this one-hot family
    for alg in ("entropy", "topk_margin"):
        hist = []
        gr.generate(stub, [[1, 2]], 6, 6, alg=alg, history=hist)
        assert [h["committed"][0] for h in hist] == order, alg
    # bf16 confidence rounding creates ties that go to the lower position
    w2 = np.array([0, 1.0, 6.0, 6.001, 0, 0, 0, 0])  # probs 0.89170 < 0.89179, both bf16 0.890625
    stub2 = StubModel(V, w2, tok, mask)
    hist = []
    gr.generate(stub2, [[1, 2]], 3, 3, alg="maskgit_plus", history=hist)
    assert hist[1]["committed"][0] == [4]
    hist = []
    gr.generate(stub2, [[1, 2]], 3, 3, alg="maskgit_plus", history=hist, confidence_dtype="bf16")
    assert hist[1]["committed"][0] == [3], hist


@test
def generation_mask_token_prediction_quirk():
    # a position whose prediction is the mask token stays masked and is retried
    V, mask = 50, 49
    w = np.array([0, 9.0, 1.0, 0])
    tok = np.array([0, 49, 12, 0])
    stub = StubModel(V, w, tok, mask)
    hist = []
    import io
    out = gr.generate(stub, [[1, 2]], 2, 2, alg="maskgit_plus", history=hist, warn=io.StringIO())
    assert out == [[1, 2, 49, 12]], out


@test
def generation_uneven_mask_counts_quirk():
    # prompt masks are filled too (infilling); with uneven mask counts per row the original
    # uses the batch mean n, so a row with fewer masks gets n > its masks and unmasked
    # positions (-inf confidence) are overwritten with the mask token: here the lowest one,
    # position 0 (torch.topk's choice among the -inf ties is unspecified); "last step
    # commits all remaining" is only true per row when the rows' mask counts are equal
    import io
    m = fr.DreamRef(tiny("quirk", seed=24))
    buf = io.StringIO()
    out = gr.generate(m, [[1, 999, 999, 4], [5, 6, 7, 8]], 4, 1, alg="entropy", warn=buf)
    assert out[0].count(999) == 1, out   # row 0 had 6 masks, only n = 5 are committed
    assert out[1][0] == 999 and out[1][1:4] == [6, 7, 8] and 999 not in out[1][4:], out
    assert "n=5 > 4 masked" in buf.getvalue(), buf.getvalue()


@test
def big_model_code_path_matches():
    d = tiny("bigpath", seed=25, dtype="bf16")
    seqs = rng_seqs(26, [6, 11])
    a = fr.forward_ragged(fr.DreamRef(d), seqs)
    m = fr.DreamRef(d, cache_limit_bytes=0)
    assert m.cache is None
    close(fr.forward_ragged(m, seqs), a, 1e-12, "uncached path")
    ck = st.Checkpoint(d)
    E = ck.get("model.embed_tokens.weight")
    assert np.array_equal(ck.get_rows("model.embed_tokens.weight", np.array([[3, 1], [2, 2]])),
                          E[np.array([[3, 1], [2, 2]])])
    assert np.array_equal(ck.get_rows("model.embed_tokens.weight", slice(5, 9)), E[5:9])
    assert np.array_equal(ck.get_rows("model.embed_tokens.weight", 7), E[7])


def argmax_one_shot(m, prompt, n_new, mask_id):
    x = np.array([list(prompt) + [mask_id] * n_new])
    lg = m.forward(x)[0]
    return list(prompt) + [int(np.argmax(lg[p - 1])) for p in range(len(prompt), len(prompt) + n_new)]


@test
def generation_closed_forms_on_tiny_model():
    d = tiny("gen", seed=20)
    m = fr.DreamRef(d)
    prompts = [list(map(int, s)) for s in rng_seqs(21, [5, 9, 3])]
    shot = [argmax_one_shot(m, p, 8, 999) for p in prompts]
    for alg in ("maskgit_plus", "topk_margin", "entropy"):
        assert gr.generate(m, prompts, 8, 1, alg=alg) == shot, alg
    # origin: zero uniforms -> everything committed at step 0;
    # uniforms just below 1 -> nothing until the last step; both = one-shot argmax
    M = 3 * 8
    for u in (0.0, np.float32(0.99999994)):
        uf = os.path.join(TMP, "u.bin")
        np.full(M * 8, u, dtype="<f4").tofile(uf)
        got = gr.generate(m, prompts, 8, 8, alg="origin", uniforms=gr.Uniforms(uf))
        assert got == shot, (u, got, shot)
    # origin with uniforms consumed exactly once per masked position per step
    uni = gr.Uniforms(uf)
    gr.generate(m, prompts, 8, 8, alg="origin", uniforms=uni)
    assert uni.pos == M * 8
    # top_p / top_k at temperature 0 do not change the argmax
    assert gr.generate(m, prompts, 8, 1, alg="entropy", top_p=0.9, top_k=5) == shot


@test
def generation_batch_equals_independent_and_cli():
    d = tiny("gen2", seed=22, dtype="bf16")
    m = fr.DreamRef(d)
    prompts = [list(map(int, s)) for s in rng_seqs(23, [5, 20, 9])]
    for alg in ("entropy", "maskgit_plus", "topk_margin"):
        hist = []
        t0 = time.time()
        batch = gr.generate(m, prompts, 16, 16, alg=alg, history=hist)
        dt = time.time() - t0
        assert dt < 5, "generation too slow: %.1fs" % dt
        for p, o in zip(prompts, batch):
            assert o[:len(p)] == p and len(o) == len(p) + 16 and 999 not in o
        indep = [gr.generate(m, [p], 16, 16, alg=alg)[0] for p in prompts]
        assert batch == indep, alg
        counts = [len(h["committed"][0]) for h in hist]
        assert counts == [0] + [1] * 14 + [2], counts
    pj = os.path.join(TMP, "p.json")
    oj = os.path.join(TMP, "o.json")
    hj = os.path.join(TMP, "h.json")
    json.dump(prompts, open(pj, "w"))
    t0 = time.time()
    run([os.path.join(HERE, "dream_generate_ref.py"), "--model", d, "--prompts", pj,
         "--max-new-tokens", "16", "--steps", "16", "--alg", "entropy", "--out", oj,
         "--history", hj])
    if VERBOSE:
        print("   generate CLI 3 prompts, 16 tokens / 16 steps: %.2fs" % (time.time() - t0))
    assert json.load(open(oj)) == gr.generate(m, prompts, 16, 16, alg="entropy")
    assert len(json.load(open(hj))) == 16
    run([os.path.join(HERE, "dream_generate_ref.py"), "--model", d, "--prompts", pj,
         "--max-new-tokens", "16", "--steps", "8", "--alg", "topk_margin", "--independent",
         "--out", oj])
    assert json.load(open(oj)) == gr.generate(m, prompts, 16, 8, alg="topk_margin")
    uf = os.path.join(TMP, "u0.bin")
    np.zeros(3 * 16, dtype="<f4").tofile(uf)
    run([os.path.join(HERE, "dream_generate_ref.py"), "--model", d, "--prompts", pj,
         "--max-new-tokens", "16", "--steps", "4", "--alg", "origin", "--origin-uniforms", uf,
         "--out", oj])
    assert json.load(open(oj)) == [argmax_one_shot(m, p, 16, 999) for p in prompts]


def main():
    passed = failed = 0
    t00 = time.time()
    for fn in TESTS:
        t0 = time.time()
        try:
            fn()
            passed += 1
            print("ok   %-55s %.2fs" % (fn.__name__, time.time() - t0))
        except Exception:
            failed += 1
            print("FAIL %s" % fn.__name__)
            traceback.print_exc(file=sys.stdout)
    shutil.rmtree(TMP, ignore_errors=True)
    print("total %.1fs" % (time.time() - t00))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
