#!/usr/bin/python3
"""Float64 NumPy reference of the Dream / DiffuCoder forward pass.

Follows modeling_dream.py of the Dream model (HKUNLP/Dream, the file shipped as remote code
in the Hugging Face repos Dream-org/Dream-v0-*-7B and apple/DiffuCoder-7B-*; read from
public copies, e.g. github megumi-ben/dlm-infra-rag dream/model/modeling_dream.py, a
"Modified from HKUNLP/Dream" copy whose unmodified parts are the ones used here), written
independently in NumPy (no code copied):

  DreamRMSNorm.forward          -> rms_norm():  x * 1/sqrt(mean(x^2) + eps) * weight
  DreamRotaryEmbedding.forward  -> rope_cos_sin(): inv_freq[j] = theta^(-2j/head_dim)
        (transformers ROPE_INIT_FUNCTIONS["default"], rope_scaling null), emb = cat(f, f)
  rotate_half / apply_rotary_pos_emb -> apply_rope(): x*cos + rotate_half(x)*sin
        (NeoX layout: dim j pairs with j + head_dim/2)
  repeat_kv                     -> query head h uses KV head h // (n_heads / n_kv_heads)
  DreamSdpaAttention.forward    -> attention(): q/k/v WITH bias, RoPE, GQA,
        scaled_dot_product_attention(is_causal=False) with the boolean mask, scale
        1/sqrt(head_dim), o_proj without bias.  NOT causal.
  DreamMLP.forward              -> down(silu(gate(x)) * up(x))
  DreamDecoderLayer.forward     -> pre-norm residual blocks
  DreamBaseModel / DreamModel   -> embed, layers, final norm, lm_head
        (lm_head = embed_tokens when tie_word_embeddings).
Batching follows DreamGenerationMixin._sample in generation_utils.py: sequences are
LEFT-padded; when any padding is present, position_ids = cumsum(attention_mask) - 1 with
pad slots set to 1 (tok_idx.masked_fill_(attention_mask == 0, 1)), and the attention mask
is [B,1,N,N] = valid(query) AND valid(key); without padding position_ids = arange(N) and
no mask ("full").  Pad query rows are fully masked; torch >= 2.5 SDPA returns 0 for such
rows, which is what we do (their outputs are never used).

Everything is computed in float64 (the original runs in bf16; compare with tolerances).

CLI:
  dream_forward_ref.py --model DIR --ids IDS.bin [--lengths 5,9,3] [--pad-to N] --out LOGITS.bin
      [--dump DIR]
  IDS.bin: little-endian int32, the sequences concatenated (ragged, no padding); without
  --lengths the whole file is one sequence.  The script builds the left-padded batch,
  runs the forward and writes the RAW (unshifted: row p = lm_head(hidden state at p),
  which Dream uses to predict position p+1) logits of every real position, in the same
  concatenated order, as little-endian float32 [sum(lengths) x vocab].
  --pad-to N pads every sequence on the left to N (>= the longest) to exercise the mask.
  --dump DIR also writes float32 [sum(lengths) x hidden] files: embed.bin,
  layer{i}.bin (residual stream after layer i), norm.bin (after the final norm).

Regenerating a golden file, e.g.:
  /usr/bin/python3 tests/ref/make_checkpoint.py --seed 1 --dtype bf16 --out /tmp/m
  /usr/bin/python3 -c "import numpy as np; np.arange(1,35,dtype='<i4').tofile('/tmp/ids.bin')"
  /usr/bin/python3 tests/ref/dream_forward_ref.py --model /tmp/m --ids /tmp/ids.bin \
      --lengths 5,20,9 --out /tmp/ref_logits.bin
"""
import argparse
import json
import os
import sys

import numpy as np

sys.dont_write_bytecode = True  # keep tests/ref free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np as st  # noqa: E402


# ------------------------------------------------------------------ building blocks
def rms_norm(x, w, eps):
    """DreamRMSNorm: x * rsqrt(mean(x^2, -1) + eps) * weight."""
    var = np.mean(x * x, axis=-1, keepdims=True)
    return x / np.sqrt(var + eps) * w


def silu(x):
    return x / (1.0 + np.exp(-x))


def softmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(x - m)
    s = np.sum(e, axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = e / s
    return np.where(s > 0, out, 0.0)  # fully masked row -> zeros (torch >= 2.5 SDPA)


def rope_inv_freq(head_dim, theta):
    """inv_freq[j] = 1 / theta^(2j/head_dim), j < head_dim/2 (rope_type 'default')."""
    return 1.0 / (float(theta) ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))


def rope_cos_sin(pos, head_dim, theta):
    """pos [...]: positions -> cos, sin [..., head_dim]; the angle table is duplicated over
    both halves (emb = cat(freqs, freqs))."""
    freqs = np.asarray(pos, dtype=np.float64)[..., None] * rope_inv_freq(head_dim, theta)
    emb = np.concatenate([freqs, freqs], axis=-1)
    return np.cos(emb), np.sin(emb)


def rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def apply_rope(x, cos, sin):
    """x [B, heads, N, D]; cos/sin [B, N, D]."""
    return x * cos[:, None] + rotate_half(x) * sin[:, None]


def attention(q, k, v, allowed):
    """q [B,H,N,D], k/v [B,KV,N,D] (after RoPE), allowed [B,N,N] bool or None.
    GQA as repeat_kv: head h reads KV head h // n_rep."""
    B, H, N, D = q.shape
    KV = k.shape[1]
    rep = H // KV
    kk = np.repeat(k, rep, axis=1)  # == repeat_kv(expand + reshape): kv j -> heads j*rep..j*rep+rep-1
    vv = np.repeat(v, rep, axis=1)
    s = np.einsum("bhqd,bhkd->bhqk", q, kk) / np.sqrt(D)
    if allowed is not None:
        s = np.where(allowed[:, None], s, -np.inf)
    p = softmax(s, axis=-1)
    return np.einsum("bhqk,bhkd->bhqd", p, vv)


# ------------------------------------------------------------------ model
class DreamRef:
    """Weights held as float64, loaded lazily (cached unless the model is big)."""

    def __init__(self, model_dir, cache_limit_bytes=4 << 30):
        with open(os.path.join(model_dir, "config.json")) as f:
            self.cfg = json.load(f)
        c = self.cfg
        self.ck = st.Checkpoint(model_dir)
        self.H = c["hidden_size"]
        self.nh = c["num_attention_heads"]
        self.nkv = c.get("num_key_value_heads") or self.nh
        self.hd = self.H // self.nh
        self.L = c["num_hidden_layers"]
        self.V = c["vocab_size"]
        self.eps = c.get("rms_norm_eps", 1e-6)
        self.theta = c.get("rope_theta", 10000.0)
        if c.get("rope_scaling") not in (None, {}):
            raise NotImplementedError("rope_scaling %r not supported" % (c["rope_scaling"],))
        if c.get("hidden_act", "silu") != "silu":
            raise NotImplementedError("hidden_act %r" % c["hidden_act"])
        self.tie = bool(c.get("tie_word_embeddings", False))
        if not self.tie and "lm_head.weight" not in self.ck:
            raise ValueError("lm_head.weight missing and tie_word_embeddings is false")
        total = sum(int(np.prod(self.ck.info(n)[1])) * 8 for n in self.ck.names())
        self.cache = {} if total <= cache_limit_bytes else None

    def w(self, name):
        if self.cache is not None and name in self.cache:
            return self.cache[name]
        a = self.ck.get(name, np.float64)
        if self.cache is not None:
            self.cache[name] = a
        return a

    def lm_head_name(self):
        return "model.embed_tokens.weight" if self.tie else "lm_head.weight"

    def lm_head_weight(self):
        return self.w(self.lm_head_name())

    def embed(self, ids):
        ids = np.asarray(ids)
        if ids.min() < 0 or ids.max() >= self.V:
            raise ValueError("token id out of range [0, %d)" % self.V)
        if self.cache is None:  # big model: gather only the needed rows
            return self.ck.get_rows("model.embed_tokens.weight", ids, np.float64)
        return self.w("model.embed_tokens.weight")[ids]

    def layer(self, i, x, cos, sin, allowed):
        p = "model.layers.%d." % i
        B, N, _ = x.shape
        h = rms_norm(x, self.w(p + "input_layernorm.weight"), self.eps)
        q = h @ self.w(p + "self_attn.q_proj.weight").T + self.w(p + "self_attn.q_proj.bias")
        k = h @ self.w(p + "self_attn.k_proj.weight").T + self.w(p + "self_attn.k_proj.bias")
        v = h @ self.w(p + "self_attn.v_proj.weight").T + self.w(p + "self_attn.v_proj.bias")
        q = q.reshape(B, N, self.nh, self.hd).transpose(0, 2, 1, 3)
        k = k.reshape(B, N, self.nkv, self.hd).transpose(0, 2, 1, 3)
        v = v.reshape(B, N, self.nkv, self.hd).transpose(0, 2, 1, 3)
        q = apply_rope(q, cos, sin)
        k = apply_rope(k, cos, sin)
        a = attention(q, k, v, allowed)
        a = a.transpose(0, 2, 1, 3).reshape(B, N, self.nh * self.hd)
        x = x + a @ self.w(p + "self_attn.o_proj.weight").T
        h = rms_norm(x, self.w(p + "post_attention_layernorm.weight"), self.eps)
        g = h @ self.w(p + "mlp.gate_proj.weight").T
        u = h @ self.w(p + "mlp.up_proj.weight").T
        x = x + (silu(g) * u) @ self.w(p + "mlp.down_proj.weight").T
        return x

    def hidden(self, ids, attention_mask=None, position_ids=None, dump=None):
        """ids [B,N] int; attention_mask [B,N] (1 real / 0 pad) or None.
        Returns final-normed hidden states [B,N,H] (float64)."""
        ids = np.atleast_2d(np.asarray(ids, dtype=np.int64))
        B, N = ids.shape
        allowed = None
        if attention_mask is not None and np.any(np.asarray(attention_mask) == 0):
            am = np.asarray(attention_mask).astype(bool)
            if position_ids is None:
                position_ids = np.cumsum(am, axis=-1) - 1
                position_ids[~am] = 1  # as generation_utils: tok_idx.masked_fill_(mask == 0, 1)
            allowed = am[:, None, :] & am[:, :, None]  # [B, Nq, Nk]
        if position_ids is None:
            position_ids = np.broadcast_to(np.arange(N), (B, N))
        cos, sin = rope_cos_sin(position_ids, self.hd, self.theta)
        x = self.embed(ids)
        if dump is not None:
            dump("embed", x)
        for i in range(self.L):
            x = self.layer(i, x, cos, sin, allowed)
            if dump is not None:
                dump("layer%d" % i, x)
        x = rms_norm(x, self.w("model.norm.weight"), self.eps)
        if dump is not None:
            dump("norm", x)
        return x

    def logits_of(self, hidden):
        if self.cache is not None:
            return hidden @ self.lm_head_weight().T
        out = np.empty(hidden.shape[:-1] + (self.V,))
        for a in range(0, self.V, 16384):  # big model: convert the head in row blocks
            b = min(self.V, a + 16384)
            out[..., a:b] = hidden @ self.ck.get_rows(self.lm_head_name(), slice(a, b), np.float64).T
        return out

    def forward(self, ids, attention_mask=None, position_ids=None):
        """Raw (unshifted) logits [B,N,V]."""
        return self.logits_of(self.hidden(ids, attention_mask, position_ids))


def left_pad(seqs, pad_id, pad_to=None):
    """List of 1-D id sequences -> (ids [B,N], attention_mask [B,N]) left-padded."""
    n = max(len(s) for s in seqs)
    if pad_to is not None:
        if pad_to < n:
            raise ValueError("--pad-to %d < longest sequence %d" % (pad_to, n))
        n = pad_to
    ids = np.full((len(seqs), n), pad_id, dtype=np.int64)
    am = np.zeros((len(seqs), n), dtype=np.int64)
    for b, s in enumerate(seqs):
        if len(s):
            ids[b, n - len(s):] = s
            am[b, n - len(s):] = 1
    return ids, am


def pad_token(cfg):
    p = cfg.get("pad_token_id")
    if p is None or not (0 <= p < cfg["vocab_size"]):
        p = 0
    return p


def forward_ragged(model, seqs, pad_to=None, dump_dir=None):
    """Runs the left-padded batch; returns float64 logits of real positions, concatenated."""
    ids, am = left_pad(seqs, pad_token(model.cfg), pad_to)
    real = am.astype(bool)
    dump = None
    if dump_dir is not None:
        os.makedirs(dump_dir, exist_ok=True)

        def dump(name, x):
            x[real].astype("<f4").tofile(os.path.join(dump_dir, name + ".bin"))
    h = model.hidden(ids, am, dump=dump)
    return model.logits_of(h[real])


def main(argv=None):
    ap = argparse.ArgumentParser(description="Dream forward reference (float64 NumPy)")
    ap.add_argument("--model", required=True)
    ap.add_argument("--ids", required=True, help="little-endian int32 ids, sequences concatenated")
    ap.add_argument("--lengths", default=None, help="comma-separated lengths (default: one sequence)")
    ap.add_argument("--pad-to", type=int, default=None)
    ap.add_argument("--out", required=True, help="float32 LE logits [sum(lengths) x vocab]")
    ap.add_argument("--dump", default=None, help="directory for per-layer hidden states")
    a = ap.parse_args(argv)
    flat = np.fromfile(a.ids, dtype="<i4").astype(np.int64)
    lengths = [len(flat)] if not a.lengths else [int(t) for t in a.lengths.split(",")]
    if sum(lengths) != len(flat) or min(lengths) < 1:
        sys.exit("lengths %r do not match %d ids" % (lengths, len(flat)))
    seqs, o = [], 0
    for n in lengths:
        seqs.append(flat[o:o + n])
        o += n
    model = DreamRef(a.model)
    logits = forward_ragged(model, seqs, a.pad_to, a.dump)
    logits.astype("<f4").tofile(a.out)


if __name__ == "__main__":
    main()
