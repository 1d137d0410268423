"""PyTorch forward of Dream / DiffuCoder in reduced precision: the error PyTorch's own
BF16 inference makes, as the accuracy bar for diffu's bf16 GEMMs.

Written from the public Hugging Face Dream code (modeling_dream.py of HKUNLP/Dream: the
same pieces as dream_forward_ref.py: RMSNorm, RoPE rotate_half with theta, GQA by
repeat_kv, bidirectional SDPA, q/k/v with bias, SwiGLU MLP, final norm, lm_head tied or
not), in torch (Debian's python3-torch 1.13; CPU only; no code copied). Each sequence
runs alone with positions 0..len-1 (as `diffu logits --lengths` does).

Modes (--mode):
  autocast   fp32 weights and activations, every Linear under
             torch.autocast("cpu", dtype=torch.bfloat16): BF16 matmul inputs, what
             mixed-precision inference does (and what diffu's bf16 path does:
             activations rounded to BF16 at each GEMM, the rest fp32).
  bf16       the model cast to BF16 as Dream is published and run
             (torch_dtype=torch.bfloat16): weights, activations, residual stream in
             BF16; RMSNorm computes in fp32 and casts back (as DreamRMSNorm).
  fp32       everything fp32 (a sanity check: must match the NumPy reference ~1e-6).

CLI: dream_forward_torch.py --model DIR --ids IDS.bin [--lengths 5,9,3] --mode M --out LOGITS.bin
  writes float32 [sum(lengths) x vocab], raw (unshifted) logits, like dream_forward_ref.py.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np as st  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--ids", required=True)
    ap.add_argument("--lengths")
    ap.add_argument("--mode", choices=["autocast", "bf16", "fp32"], default="autocast")
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    c = json.load(open(os.path.join(a.model, "config.json")))
    ck = st.Checkpoint(a.model)
    H, nh = c["hidden_size"], c["num_attention_heads"]
    nkv = c.get("num_key_value_heads") or nh
    hd, L, V = H // nh, c["num_hidden_layers"], c["vocab_size"]
    eps, theta = c.get("rms_norm_eps", 1e-6), float(c.get("rope_theta", 10000.0))
    tie = bool(c.get("tie_word_embeddings", False))
    wdt = torch.bfloat16 if a.mode == "bf16" else torch.float32

    def W(name):
        return torch.from_numpy(np.ascontiguousarray(ck.get(name, np.float32))).to(wdt)

    def rms(x, w):
        x32 = x.float()
        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
        return w * y.to(x.dtype)

    def lin(x, w, b=None):
        if a.mode == "autocast":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                y = torch.nn.functional.linear(x, w, b)
            return y.float()
        return torch.nn.functional.linear(x, w, b)

    def rot_half(x):
        h = x.shape[-1] // 2
        return torch.cat([-x[..., h:], x[..., :h]], dim=-1)

    ids = np.fromfile(a.ids, dtype="<i4")
    lens = [int(x) for x in a.lengths.split(",")] if a.lengths else [len(ids)]
    assert sum(lens) == len(ids), "lengths do not add up to the ids"
    emb = W("model.embed_tokens.weight")
    head = emb if tie else W("lm_head.weight")
    layers = []
    for i in range(L):
        p = "model.layers.%d." % i
        layers.append({k: W(p + n) for k, n in [
            ("an", "input_layernorm.weight"), ("q", "self_attn.q_proj.weight"), ("qb", "self_attn.q_proj.bias"),
            ("k", "self_attn.k_proj.weight"), ("kb", "self_attn.k_proj.bias"), ("v", "self_attn.v_proj.weight"),
            ("vb", "self_attn.v_proj.bias"), ("o", "self_attn.o_proj.weight"), ("fn", "post_attention_layernorm.weight"),
            ("g", "mlp.gate_proj.weight"), ("u", "mlp.up_proj.weight"), ("d", "mlp.down_proj.weight")]})
    norm = W("model.norm.weight")
    inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    out = []
    start = 0
    with torch.no_grad():
        for n in lens:
            tok = torch.from_numpy(ids[start:start + n].astype(np.int64))
            start += n
            x = emb[tok]  # [n, H]
            f = torch.arange(n, dtype=torch.float32)[:, None] * inv[None]
            e = torch.cat([f, f], -1)
            cos, sin = e.cos().to(wdt), e.sin().to(wdt)
            for lw in layers:
                h = rms(x, lw["an"])
                q = lin(h, lw["q"], lw["qb"]).view(n, nh, hd).transpose(0, 1)
                k = lin(h, lw["k"], lw["kb"]).view(n, nkv, hd).transpose(0, 1)
                v = lin(h, lw["v"], lw["vb"]).view(n, nkv, hd).transpose(0, 1)
                q = q * cos + rot_half(q) * sin
                k = k * cos + rot_half(k) * sin
                rep = nh // nkv
                k = k.repeat_interleave(rep, 0)
                v = v.repeat_interleave(rep, 0)
                s = (q @ k.transpose(1, 2)) / (hd ** 0.5)
                p_ = torch.softmax(s.float(), -1).to(q.dtype)
                att = (p_ @ v).transpose(0, 1).reshape(n, nh * hd)
                x = x + lin(att, lw["o"])
                h = rms(x, lw["fn"])
                g = lin(h, lw["g"])
                x = x + lin(torch.nn.functional.silu(g) * lin(h, lw["u"]), lw["d"])
            x = rms(x, norm)
            out.append(lin(x, head).float().numpy())
    np.concatenate(out, 0).astype("<f4").tofile(a.out)


if __name__ == "__main__":
    main()
