#!/usr/bin/env python3
"""train/test_model.py — unit tests of the training pieces against closed forms / naive code.

    python3 train/test_model.py        (exit 77 = skipped when torch is not installed)
"""
import math
import os
import sys
import unittest

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("test_model.py: SKIP: python3-torch is not installed (bash train/setup.sh installs it)")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import DreamConfig, DreamModel, diffusion_loss, mask_batch, rope_cos_sin, shift_rows  # noqa: E402
import bpe  # noqa: E402


def tiny(nh=4, nkv=2, tie=True):
    c = DreamConfig(vocab_size=50, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                    num_attention_heads=nh, num_key_value_heads=nkv, tie_word_embeddings=tie, mask_token_id=49)
    m = DreamModel(c)
    m.init_weights(1)
    with torch.no_grad():
        g = torch.Generator().manual_seed(2)
        for n, p in m.named_parameters():
            if n.endswith("bias"):
                p.add_(0.1 * torch.randn(p.shape, generator=g))
    return m.eval()


def naive_forward(m, ids):
    """Per-head, per-position loops written independently of model.py's batched code."""
    c = m.config
    H, nh, nkv, hd = c.hidden_size, c.num_attention_heads, c.num_key_value_heads, c.head_dim
    L = ids.shape[0]
    x = m.model.embed_tokens.weight[ids].double()

    def rms(v, w):
        return w.double() * v / torch.sqrt((v * v).mean(-1, keepdim=True) + c.rms_norm_eps)

    def lin(layer, v):
        y = v @ layer.weight.double().T
        return y + layer.bias.double() if layer.bias is not None else y

    def rope(v, pos):  # v [hd]; pair j with j + hd/2
        out = v.clone()
        for j in range(hd // 2):
            a = pos * c.rope_theta ** (-2.0 * j / hd)
            out[j] = v[j] * math.cos(a) - v[j + hd // 2] * math.sin(a)
            out[j + hd // 2] = v[j + hd // 2] * math.cos(a) + v[j] * math.sin(a)
        return out

    for lay in m.model.layers:
        n = rms(x, lay.input_layernorm.weight)
        q = lin(lay.self_attn.q_proj, n).view(L, nh, hd)
        k = lin(lay.self_attn.k_proj, n).view(L, nkv, hd)
        v = lin(lay.self_attn.v_proj, n).view(L, nkv, hd)
        o = torch.zeros(L, nh, hd, dtype=torch.float64)
        for h in range(nh):
            kv = h // (nh // nkv)
            qs = torch.stack([rope(q[i, h], i) for i in range(L)])
            ks = torch.stack([rope(k[i, kv], i) for i in range(L)])
            p = torch.softmax(qs @ ks.T / math.sqrt(hd), -1)  # every query sees every key
            o[:, h] = p @ v[:, kv]
        x = x + lin(lay.self_attn.o_proj, o.reshape(L, nh * hd))
        n = rms(x, lay.post_attention_layernorm.weight)
        g = lin(lay.mlp.gate_proj, n)
        x = x + lin(lay.mlp.down_proj, g * torch.sigmoid(g) * lin(lay.mlp.up_proj, n))
    x = rms(x, m.model.norm.weight)
    return x @ m.lm_head.weight.double().T


class T(unittest.TestCase):
    def test_forward_vs_naive_gqa_and_mha(self):
        for nh, nkv, tie in ((4, 2, True), (4, 4, False), (4, 1, True)):
            m = tiny(nh, nkv, tie)
            ids = torch.randint(0, 50, (9,), generator=torch.Generator().manual_seed(3))
            with torch.no_grad():
                got = m(ids[None])[0].double()
            ref = naive_forward(m, ids)
            self.assertLess(float((got - ref).abs().max()), 1e-4 * float(ref.abs().max()), (nh, nkv, tie))

    def test_bidirectional(self):
        m = tiny()
        a = torch.tensor([[1, 2, 3, 4, 5]])
        b = torch.tensor([[1, 2, 3, 4, 6]])
        with torch.no_grad():
            self.assertGreater(float((m(a)[0, 0] - m(b)[0, 0]).abs().max()), 1e-6)

    def test_rope_relative(self):
        cos, sin = rope_cos_sin(16, 8, 10000.0)
        from model import rotate_half
        g = torch.Generator().manual_seed(4)
        q, k = torch.randn(8, generator=g), torch.randn(8, generator=g)
        r = lambda v, p: v * cos[p] + rotate_half(v) * sin[p]  # noqa: E731
        self.assertAlmostEqual(float(r(q, 3) @ r(k, 1)), float(r(q, 10) @ r(k, 8)), places=4)
        self.assertAlmostEqual(float(r(q, 5).norm()), float(q.norm()), places=5)

    def test_tied(self):
        m = tiny(tie=True)
        self.assertIs(m.lm_head.weight, m.model.embed_tokens.weight)

    def test_mask_only_response_and_rate(self):
        g = torch.Generator().manual_seed(5)
        ids = torch.randint(0, 40, (4000, 20), generator=g)
        resp = torch.zeros_like(ids, dtype=torch.bool)
        resp[:, 8:] = True
        x, m, t = mask_batch(ids, resp, 49, 1e-3, g)
        self.assertFalse(bool(m[:, :8].any()))
        self.assertTrue(bool((x[m] == 49).all()) and bool((x[~m] == ids[~m]).all()))
        self.assertTrue(float(t.min()) >= 1e-3 and float(t.max()) <= 1.0)
        # E[masked fraction of the response | t] = t: compare the per-row rates with t (12 draws/row)
        rate = m[:, 8:].float().mean(1)
        self.assertLess(abs(float((rate - t).mean())), 0.01)
        # t ~ U(eps, 1): mean (1 + eps) / 2, within 4 standard errors
        self.assertLess(abs(float(t.mean()) - (1 + 1e-3) / 2), 4 * math.sqrt(1 / 12 / 4000))

    def test_loss_shift_and_weight(self):
        m = tiny()
        g = torch.Generator().manual_seed(6)
        ids = torch.randint(0, 40, (3, 12), generator=g)
        resp = torch.ones_like(ids, dtype=torch.bool)
        resp[:, :3] = False
        x, mm, t = mask_batch(ids, resp, 49, 1e-3, g)
        with torch.no_grad():
            loss, ce, n = diffusion_loss(m, ids, resp, mm, t, x)
            lg = m(x)
            lg = torch.cat([lg[:, :1], lg[:, :-1]], 1)  # Dream's generation-code shift
            ref = 0.0
            for b in range(3):
                for p in range(12):
                    if mm[b, p]:
                        ref += float(F.cross_entropy(lg[b, p][None], ids[b, p][None])) / float(t[b])
            ref /= float(resp.sum())
        self.assertAlmostEqual(float(loss), ref, places=4)
        self.assertEqual(n, int(mm.sum()))
        h = torch.arange(10.0).view(1, 5, 2)
        self.assertEqual(shift_rows(h)[0, :, 0].tolist(), [0.0, 0.0, 2.0, 4.0, 6.0])

    def test_bpe_trainer(self):
        counts = bpe.word_counts(["def foo(x):\n    return foo(x) + foo(x)\n" * 3])
        merges = bpe.train_bpe(counts, 256 + 5, log_every=0)
        self.assertEqual(len({a + b for a, b in merges}), 5)
        # the most frequent pair of byte symbols is merged first
        pc = {}
        for w, f in counts.items():
            s = [bpe.B2U[b] for b in w.encode()]
            for p in zip(s, s[1:]):
                pc[p] = pc.get(p, 0) + f
        best = max(pc.values())
        self.assertEqual(pc[merges[0]], best)


if __name__ == "__main__":
    torch.set_num_threads(1)
    unittest.main()
