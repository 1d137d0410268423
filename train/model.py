"""train/model.py — a Dream-architecture model in PyTorch and Dream's masked-diffusion loss.

Written from the Dream / DiffuCoder papers and the public description of the HF Dream code
(Qwen2 blocks): token embedding; per layer x += o_proj(attn(rmsnorm(x))), x += down(silu(gate(n)) *
up(n)) with n = rmsnorm(x); final rmsnorm; lm_head (tied to the embedding or not). Attention is
bidirectional (no causal mask), q/k/v have biases, o_proj none; RoPE in the rotate_half ("NeoX")
layout with inv_freq[j] = theta^(-2j/head_dim); grouped-query attention (n_kv_heads <= n_heads);
RMSNorm in fp32. Tensor names follow the HF checkpoint (model.layers.{i}.self_attn.q_proj...).

Loss (Dream): t ~ U(eps, 1) per sequence; every response position is replaced by <|mask|> with
probability t; cross-entropy on the masked positions, each weighted by 1/t, summed and divided by
the number of response positions. The logits for position p come from the hidden state at row
p-1 (Dream's shift: logits = cat([logits[:, :1], logits[:, :-1]], 1)).
"""
import math
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class DreamConfig:
    vocab_size: int = 8192
    hidden_size: int = 256
    intermediate_size: int = 768
    num_hidden_layers: int = 6
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-6
    max_position_embeddings: int = 2048
    tie_word_embeddings: bool = True
    mask_token_id: int = 8190
    eos_token_id: int = 8186
    bos_token_id: int = 8189
    pad_token_id: int = 8186

    @property
    def head_dim(self):
        return self.hidden_size // self.num_attention_heads

    def to_dict(self):
        return asdict(self)


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        dt = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dt)


def rope_cos_sin(n, head_dim, theta, device=None):
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    pos = torch.arange(n, dtype=torch.float64)
    f = torch.outer(pos, inv)
    emb = torch.cat([f, f], -1)
    return emb.cos().float().to(device), emb.sin().float().to(device)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], -1)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.nh, self.nkv, self.hd = c.num_attention_heads, c.num_key_value_heads, c.head_dim
        self.q_proj = nn.Linear(c.hidden_size, self.nh * self.hd, bias=True)
        self.k_proj = nn.Linear(c.hidden_size, self.nkv * self.hd, bias=True)
        self.v_proj = nn.Linear(c.hidden_size, self.nkv * self.hd, bias=True)
        self.o_proj = nn.Linear(self.nh * self.hd, c.hidden_size, bias=False)

    def forward(self, x, cos, sin):
        B, L, _ = x.shape
        q = self.q_proj(x).view(B, L, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(B, L, self.nkv, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(B, L, self.nkv, self.hd).transpose(1, 2)
        cos, sin = cos.to(q.dtype), sin.to(q.dtype)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        g = self.nh // self.nkv
        if g > 1:
            k = k.repeat_interleave(g, dim=1)
            v = v.repeat_interleave(g, dim=1)
        s = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.hd))  # bidirectional: no mask
        p = torch.softmax(s.float(), -1).to(v.dtype)
        o = torch.matmul(p, v).transpose(1, 2).reshape(B, L, self.nh * self.hd)
        return self.o_proj(o)


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.mlp = MLP(c)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class Backbone(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        self.layers = nn.ModuleList([Layer(c) for _ in range(c.num_hidden_layers)])
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)


class DreamModel(nn.Module):
    def __init__(self, c: DreamConfig):
        super().__init__()
        self.config = c
        self.model = Backbone(c)
        self.lm_head = nn.Linear(c.hidden_size, c.vocab_size, bias=False)
        if c.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        self._rope = {}

    def init_weights(self, seed):
        g = torch.Generator().manual_seed(seed)
        std = 0.02
        for name, p in self.named_parameters():
            if name.endswith("layernorm.weight") or name == "model.norm.weight":
                nn.init.ones_(p)
            elif name.endswith(".bias"):
                nn.init.zeros_(p)
            else:
                s = std / math.sqrt(2 * self.config.num_hidden_layers) if name.endswith(("o_proj.weight", "down_proj.weight")) else std
                with torch.no_grad():
                    p.copy_(torch.randn(p.shape, generator=g) * s)

    def rope(self, n):
        if n not in self._rope:
            self._rope[n] = rope_cos_sin(n, self.config.head_dim, self.config.rope_theta)
        return self._rope[n]

    def hidden(self, ids):
        cos, sin = self.rope(ids.shape[1])
        x = self.model.embed_tokens(ids)
        for layer in self.model.layers:
            x = layer(x, cos, sin)
        return self.model.norm(x)

    def forward(self, ids):
        """Unshifted logits [B, L, V] (row p predicts position p+1), as the HF model returns them."""
        return self.lm_head(self.hidden(ids))


def shift_rows(h):
    """Dream's shift: the output for position p is row p-1 (position 0 keeps row 0)."""
    return torch.cat([h[:, :1], h[:, :-1]], 1)


def mask_batch(ids, resp, mask_id, eps, gen):
    """Dream's forward process: t ~ U(eps, 1) per row, each response position masked w.p. t."""
    B, L = ids.shape
    t = (1 - eps) * torch.rand(B, generator=gen) + eps
    m = (torch.rand(B, L, generator=gen) < t[:, None]) & resp
    return torch.where(m, torch.full_like(ids, mask_id), ids), m, t


def diffusion_loss(model, ids, resp, m, t, x):
    """Loss on a masked batch x (ids with positions m masked, response mask resp, times t).
    Returns (weighted loss, mean CE over masked positions, number masked)."""
    h = shift_rows(model.hidden(x))
    hm = h[m]
    logits = model.lm_head(hm).float()
    ce = F.cross_entropy(logits, ids[m], reduction="none")
    w = (1.0 / t)[:, None].expand_as(m)[m]
    n_resp = resp.sum().clamp(min=1)
    return (ce * w).sum() / n_resp, ce.mean() if ce.numel() else ce.sum(), int(m.sum())
