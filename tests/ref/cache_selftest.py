#!/usr/bin/python3
"""Self-test of the KV-cache reference (tests/ref/dream_cache_ref.py).

  /usr/bin/python3 tests/ref/cache_selftest.py

Checks (tolerances in float64):
  * a full pass of forward_rows == DreamRef.forward (the no-cache forward), <= 1e-12;
  * with the cache fresh (computed from the same canvas), computing ANY subset of rows
    gives the full forward's rows, <= 1e-12: the cached attention is exact when nothing
    changed (GQA 2:1 and 4:1);
  * storing rotated keys == storing raw keys and rotating at use (the references' way),
    <= 1e-15: RoPE of a cached key depends on the key and its position only;
  * after one token changes, the rows computed without refreshing the others differ from
    the full forward (the cache really is stale: the approximation is exercised);
  * dKV's cached-row rule C() on hand-made canvases (closed forms);
  * row counts of one forward per mode (closed forms): prefix N - s + 1, dual B + 1;
  * refresh every forward: prefix / dual / delayed == none token for token, for the
    blocks and threshold policies;
  * on a STALE cache (K/V from a pass over an older canvas), forward_rows with the rows
    of prefix / dual / delayed == the references' literal key sets (Fast-dLLM's
    cat(past[:s], fresh) and past[s:e] = fresh, dKV's cat(fresh, cached) with the keys
    kept raw and rotated at use), <= 1e-12;
  * the faithful port of Fast-dLLM's own loop (fastdllm_generate) finishes every block,
    the block's first position committed at its block-start pass (prefix and dual, steps
    and threshold); its agreement with a refresh every step is printed.
Last line: "N passed, M failed"; exit 1 on a failure.
"""
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "common"))
import checks  # noqa: E402
import dream_cache_ref as cr  # noqa: E402
import dream_forward_ref as fr  # noqa: E402
import make_checkpoint as mc  # noqa: E402

TMP = tempfile.mkdtemp(prefix="cache_selftest_")


def model(name, **kw):
    d = os.path.join(TMP, name)
    a = dict(hidden=64, layers=2, heads=4, kv_heads=2, inter=128, vocab=500, rope_theta=10000.0, dtype="f32",
             shard_bytes=0, seed=3)
    a.update(kw)
    mc.make_checkpoint(d, **a)
    return fr.DreamRef(d)


def close(what, a, b, tol):
    d = float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
    checks.check(d <= tol, "%s: max diff %.3g > %.3g" % (what, d, tol))
    print("ok   " if d <= tol else "     ", "%s (max diff %.3g)" % (what, d))


for kvh in (2, 1):
    m = model("m%d" % kvh, kv_heads=kvh)
    r = np.random.default_rng(kvh)
    x = r.integers(0, 498, 23)
    full = m.forward(x[None])[0]
    c = cr.KVCache(m, len(x))
    h = cr.forward_rows(m, x, np.arange(len(x)), c)
    close("GQA %d:1 full pass == no-cache forward" % (4 // kvh), m.logits_of(h), full, 1e-12)
    for rows in ([0], [5, 6, 7], [22], sorted(r.choice(23, 9, replace=False))):
        h = cr.forward_rows(m, x, rows, c)
        close("GQA %d:1 fresh cache, rows %s == full forward" % (4 // kvh, list(rows)), m.logits_of(h), full[rows],
              1e-12)
    # stale: change token 10, compute rows 8..12 only
    y = x.copy()
    y[10] = (y[10] + 7) % 498
    h = cr.forward_rows(m, y, [8, 9, 10, 11, 12], c)
    d = float(np.max(np.abs(m.logits_of(h) - m.forward(y[None])[0][8:13])))
    checks.check(d > 1e-6, "stale cache not exercised (diff %g)" % d)
    print("ok   GQA %d:1 stale rows differ from the full forward by %.3g" % (4 // kvh, d))

# RoPE: rotate at store vs rotate at use
r = np.random.default_rng(9)
k = r.standard_normal((1, 2, 17, 16))
pos = np.arange(17)[None]
cos, sin = fr.rope_cos_sin(pos, 16, 1e6)
stored = fr.apply_rope(k, cos, sin)
idx = [3, 4, 11]
c2, s2 = fr.rope_cos_sin(np.array(idx)[None], 16, 1e6)
close("RoPE at store == RoPE at use (keys at positions 3, 4, 11)", stored[:, :, idx], fr.apply_rope(k[:, :, idx], c2, s2),
      1e-15)

# dKV C(): row p cached iff position p+1 decoded; last row: decoded(x[N-1]) initially, decoded(x[0]) later
M = 9
x = np.array([1, 2, M, 3, M, M])
got = cr.dkv_cached_rows(x, M, initial=True).tolist()
checks.check(got == [True, False, True, False, False, False], "C initial %s" % got)
got = cr.dkv_cached_rows(x, M, initial=False).tolist()
checks.check(got == [True, False, True, False, False, True], "C later %s" % got)
print("ok   dKV cached-row rule C() closed forms")

# rows per mode, closed forms
m = model("mrows")
req = cr.Request(m, [1, 2, 3], 16, 8, 16, None, "entropy", "prefix", 0, m.cfg["mask_token_id"])
req.step()
checks.check(len(req.rows_for()) == 19 - 3 + 1, "prefix rows %d" % len(req.rows_for()))
req = cr.Request(m, [1, 2, 3], 16, 8, 16, None, "entropy", "dual", 0, m.cfg["mask_token_id"])
req.step()
checks.check(len(req.rows_for()) == 8 + 1, "dual rows %d" % len(req.rows_for()))
print("ok   rows per cached step: prefix N - s + 1, dual B + 1")

# refresh every forward == none
mp = model("mpeak", dtype="bf16", lm_head_scale=6.0, seed=4)
prompts = [[5, 6, 7, 8], [9, 10]]
for pol in (dict(steps=16), dict(tau=0.7)):
    none, _ = cr.generate(mp, prompts, 16, 8, mode="none", **pol)
    for mode in ("prefix", "dual", "delayed"):
        got, st = cr.generate(mp, prompts, 16, 8, mode=mode, refresh=1, **pol)
        checks.check(got == none, "%s refresh 1 != none (%s)" % (mode, pol))
        print("ok   %s refresh every forward == none (%s)" % (mode, pol))

# the faithful Fast-dLLM loop
for dual in (False, True):
    for pol in (dict(steps=16), dict(tau=0.7)):
        a, fa = cr.fastdllm_generate(mp, prompts[0], 16, 8, dual=dual, **pol)
        b, fb = cr.fastdllm_generate(mp, prompts[0], 16, 8, dual=dual, refresh_every_step=True, **pol)
        print("info Fast-dLLM %s %s: %d forwards, %d of 16 tokens as with a refresh every step"
              % ("dual" if dual else "prefix", pol, fa, sum(int(u == v) for u, v in zip(a[4:], b[4:]))))
        checks.check(mp.cfg["mask_token_id"] not in a and mp.cfg["mask_token_id"] not in b,
                     "Fast-dLLM loop did not finish")
        # the first position of each block is what the block-start pass predicted from row s-1
        checks.check(all(t != mp.cfg["mask_token_id"] for t in a[4::8]), "block first positions not committed")


# forward_rows == the references' literal key sets on a STALE cache: K/V (before RoPE, as the
# references keep them) from a full pass over an old canvas, then a step on a new canvas.
def literal(m, x, q_rows, key_rows, fresh_first, past):
    """Fast-dLLM / dKV attention built literally: the keys are the fresh rows' raw K/V and
    the past pass's raw K/V for key_rows, concatenated (fresh first for dKV, in position
    order for Fast-dLLM), each rotated with its own position at use."""
    q_rows = np.asarray(q_rows)
    xq = m.embed(x[q_rows])[None]
    R = len(q_rows)
    for i in range(m.L):
        p = "model.layers.%d." % i
        h = fr.rms_norm(xq, m.w(p + "input_layernorm.weight"), m.eps)
        q = (h @ m.w(p + "self_attn.q_proj.weight").T + m.w(p + "self_attn.q_proj.bias")).reshape(1, R, m.nh, m.hd)
        k = (h @ m.w(p + "self_attn.k_proj.weight").T + m.w(p + "self_attn.k_proj.bias")).reshape(1, R, m.nkv, m.hd)
        v = (h @ m.w(p + "self_attn.v_proj.weight").T + m.w(p + "self_attn.v_proj.bias")).reshape(1, R, m.nkv, m.hd)
        pk, pv = past[i]
        if fresh_first:   # dKV: cat(fresh, cached)
            K = np.concatenate([k[0], pk[key_rows]])
            V = np.concatenate([v[0], pv[key_rows]])
            kpos = np.concatenate([q_rows, key_rows])
        else:             # Fast-dLLM: the full-length key set in position order
            K, V = pk.copy(), pv.copy()
            K[q_rows], V[q_rows] = k[0], v[0]
            kpos = np.arange(len(pk))
        cq, sq = fr.rope_cos_sin(q_rows[None], m.hd, m.theta)
        ckk, skk = fr.rope_cos_sin(kpos[None], m.hd, m.theta)
        qq = fr.apply_rope(q.transpose(0, 2, 1, 3), cq, sq)
        kk = fr.apply_rope(K[None].transpose(0, 2, 1, 3), ckk, skk)
        a = fr.attention(qq, kk, V[None].transpose(0, 2, 1, 3), None).transpose(0, 2, 1, 3).reshape(1, R, -1)
        xq = xq + a @ m.w(p + "self_attn.o_proj.weight").T
        h = fr.rms_norm(xq, m.w(p + "post_attention_layernorm.weight"), m.eps)
        xq = xq + (fr.silu(h @ m.w(p + "mlp.gate_proj.weight").T) * (h @ m.w(p + "mlp.up_proj.weight").T)) \
            @ m.w(p + "mlp.down_proj.weight").T
    return m.logits_of(fr.rms_norm(xq[0], m.w("model.norm.weight"), m.eps))


def raw_kv(m, x):
    """Per layer the raw (pre-RoPE) K/V of a full no-cache pass over x."""
    out, N = [], len(x)
    xx = m.embed(x)[None]
    cos, sin = fr.rope_cos_sin(np.arange(N)[None], m.hd, m.theta)
    for i in range(m.L):
        p = "model.layers.%d." % i
        h = fr.rms_norm(xx, m.w(p + "input_layernorm.weight"), m.eps)
        k = (h @ m.w(p + "self_attn.k_proj.weight").T + m.w(p + "self_attn.k_proj.bias")).reshape(N, m.nkv, m.hd)
        v = (h @ m.w(p + "self_attn.v_proj.weight").T + m.w(p + "self_attn.v_proj.bias")).reshape(N, m.nkv, m.hd)
        out.append((k, v))
        xx = m.layer(i, xx, cos, sin, None)
    return out


m = model("mlit", kv_heads=1, seed=7)
MASK = m.cfg["mask_token_id"]
old = np.array([11, 12, 13, 14, 15] + [MASK] * 12)
new = old.copy()
new[5], new[8], new[9] = 101, 102, 103   # tokens committed since the cache's pass
past = raw_kv(m, old)
s0, e0, N0 = 5, 13, 17
for name, rows, key_rows, ff in (
        ("prefix (Fast-dLLM cat(past[:s], fresh[s:]))", np.arange(s0, N0), None, False),
        ("dual (Fast-dLLM past[s:e] = fresh)", np.arange(s0, e0), None, False),
        ("delayed (dKV cat(fresh, cached))", np.array([3, 4, 6, 9, 10, 11, 12, 13, 14, 15, 16]),
         np.array([0, 1, 2, 5, 7, 8]), True)):
    c = cr.KVCache(m, N0)
    cr.forward_rows(m, old, np.arange(N0), c)
    got = m.logits_of(cr.forward_rows(m, new, rows, c))
    want = literal(m, new, rows, key_rows, ff, past)
    close("stale cache: forward_rows == literal %s" % name, got, want, 1e-12)

sys.exit(checks.report())
