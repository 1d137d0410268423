#!/usr/bin/python3
"""NumPy reference of approximate KV caching for Dream block decoding.

Ported (read, then written independently in NumPy; no code copied) from:
  * NVlabs/Fast-dLLM  dream/model/generation_utils_block.py (_sample: the per-block loop,
    PrefixCache / DualCache) and dream/model/modeling_dream.py (DreamAttention.forward:
    `torch.cat([past_key, key_states])` for the prefix cache, `past_key[:, replace_indices] =
    key_states` for the dual cache; apply_rotary_pos_emb over the whole key set);
  * horseee/dKV-Cache  generation_utils/dream_generation_utils.py (_sample with
    cache_type "decoded", shift_type "un", cache_steps N: dKV-Cache-Decode),
    generation_utils/cache_utils.py (DynamicCache.update / refresh_cache) and
    models/modeling_dream.py (keys cat(fresh, cached) before RoPE, k_cos/k_sin gathered in
    the same order).
The forward is dream_forward_ref.py's float64 DreamRef (its blocks reused).

What a cache step computes (all modes share ONE forward, forward_rows()):
  Each step computes a set R of canvas rows ("query rows"). Their fresh K and V are
  written into the request's cache at their positions, then every computed row attends
  to the cache over the whole canvas [0, N). Rows not in R are neither embedded nor run
  through any layer: their K/V are whatever the cache holds from the step that last
  computed them. A full pass (R = everything) refreshes the whole cache, and its logits
  are the no-cache forward's.
  This one rule reproduces the three references: Fast-dLLM prefix = cat(cache[:s], fresh
  [s:]); Fast-dLLM dual = the full-length cache with the block's rows replaced in place;
  dKV-Decode = cat(fresh(uncached), cached) (attention is a set operation over the keys, so
  the order does not matter). Writing rows the references do not store is harmless: a
  row's cached K/V is only ever read after the step that last computed it (see docs).
RoPE: both references cache keys BEFORE RoPE and rotate every key with its absolute
  position at every step. Rotation is a fixed function of (key, position) and neither
  changes while cached, so we store rotated keys (identical values, no re-rotation).
Rows per mode (s, e = the current block's canvas range, N = canvas length):
  none      R = [0, N) every forward.
  prefix    first forward of a block (and every `refresh`-th forward inside it, if set):
            a full pass; otherwise R = [s-1, N) (Fast-dLLM: x[:, s:]).
  dual      the same full passes; otherwise R = [s-1, e) (Fast-dLLM: x[:, s:e]).
  delayed   forward k (0-based, per request) is a full pass when k % refresh == 0;
            otherwise R = rows NOT in S_k, S_k = C(canvas before forward k-1), where
            C(x)[p] = decoded(x[p+1]) for p < N-1 (dKV's shift_type "un": row p is cached
            once position p+1, which it predicts, is decoded), and C(x)[N-1] = decoded(x[0])
            (the roll), except decoded(x[N-1]) when x is the initial canvas (dKV's
            initial cache_position).  So a row is cached one forward after the position it
            predicts is decoded, and is recomputed in that forward.
The logit shift: position p is predicted by row p-1. Fast-dLLM runs the rows from s on
  and shifts inside them (`cat([logits[:, :1], logits[:, :-1]])`), so position s is only
  predicted at the block-start full pass, where its loop always commits it. Our policies
  (LLaDA counts, threshold) may leave position s masked after that pass, so the cached
  steps also compute row s-1, the row that predicts s: R starts at s-1 (one row more than
  Fast-dLLM's). dKV's C() keeps every row whose next position is masked, so its logit
  rows are always computed. Cache modes need a prompt of >= 1 token (row s-1 exists).

Policies (the commit rules, independent of the cache): "blocks" = LLaDA's per-block
counts (steps/num_blocks steps per block, masked // spb per step, one more in the first
masked % spb steps; top-n by confidence, ties to the lower position, alg confidence),
"threshold" = Fast-dLLM's threshold (every masked position of the block sampled, the top-1
and every other with p >= tau committed, <|mask|> banned; the block advances when it has
no masks). Both as coordinator/denoise.h documents them. Temperature 0 only.

CLI:
  dream_cache_ref.py --model DIR --prompts P.json --max-new-tokens G --block-length B
      (--steps S | --threshold TAU) [--alg entropy] --cache none|prefix|dual|delayed
      [--refresh N] --out OUT.json [--stats STATS.json]
  OUT.json: list of full sequences (prompt + generated). STATS: per prompt, forwards and
  rows computed.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dream_forward_ref as fr  # noqa: E402
import dream_generate_ref as gr  # noqa: E402

MODES = ("none", "prefix", "dual", "delayed")


class KVCache:
    """One request's cache: per layer K (rotated) and V, [N, n_kv, head_dim] float64."""

    def __init__(self, model, n):
        self.k = np.zeros((model.L, n, model.nkv, model.hd))
        self.v = np.zeros((model.L, n, model.nkv, model.hd))
        self.valid = np.zeros(n, dtype=bool)


def forward_rows(model, canvas, rows, cache):
    """Compute canvas rows `rows` (ascending positions) attending to the cache over the
    whole canvas; fresh K/V of those rows are written first. Returns the final-normed
    hidden states [len(rows), H]."""
    rows = np.asarray(rows, dtype=np.int64)
    N = len(canvas)
    cache.valid[rows] = True
    assert cache.valid[:N].all(), "a cached row was never computed"
    cos, sin = fr.rope_cos_sin(rows[None], model.hd, model.theta)  # [1, R, D]
    x = model.embed(np.asarray(canvas)[rows])[None]  # [1, R, H]
    R = len(rows)
    for i in range(model.L):
        p = "model.layers.%d." % i
        h = fr.rms_norm(x, model.w(p + "input_layernorm.weight"), model.eps)
        q = h @ model.w(p + "self_attn.q_proj.weight").T + model.w(p + "self_attn.q_proj.bias")
        k = h @ model.w(p + "self_attn.k_proj.weight").T + model.w(p + "self_attn.k_proj.bias")
        v = h @ model.w(p + "self_attn.v_proj.weight").T + model.w(p + "self_attn.v_proj.bias")
        q = fr.apply_rope(q.reshape(1, R, model.nh, model.hd).transpose(0, 2, 1, 3), cos, sin)
        k = fr.apply_rope(k.reshape(1, R, model.nkv, model.hd).transpose(0, 2, 1, 3), cos, sin)
        v = v.reshape(1, R, model.nkv, model.hd).transpose(0, 2, 1, 3)
        cache.k[i, rows] = k[0].transpose(1, 0, 2)
        cache.v[i, rows] = v[0].transpose(1, 0, 2)
        K = cache.k[i, :N].transpose(1, 0, 2)[None]  # [1, KV, N, D]
        V = cache.v[i, :N].transpose(1, 0, 2)[None]
        a = fr.attention(q, K, V, None).transpose(0, 2, 1, 3).reshape(1, R, model.nh * model.hd)
        x = x + a @ model.w(p + "self_attn.o_proj.weight").T
        h = fr.rms_norm(x, model.w(p + "post_attention_layernorm.weight"), model.eps)
        g = h @ model.w(p + "mlp.gate_proj.weight").T
        u = h @ model.w(p + "mlp.up_proj.weight").T
        x = x + (fr.silu(g) * u) @ model.w(p + "mlp.down_proj.weight").T
    return fr.rms_norm(x[0], model.w("model.norm.weight"), model.eps)


def dkv_cached_rows(canvas_before_prev, mask_id, initial):
    """S = C(x) of dKV-Cache-Decode (shift_type 'un'), as a boolean row mask."""
    dec = np.asarray(canvas_before_prev) != mask_id
    c = np.empty_like(dec)
    c[:-1] = dec[1:]
    c[-1] = dec[-1] if initial else dec[0]
    return c


class Request:
    """One canvas under one policy and one cache mode."""

    def __init__(self, model, prompt, G, B, steps, tau, alg, mode, refresh, mask_id):
        if mode != "none" and len(prompt) < 1:
            raise ValueError("cache modes need a prompt of at least one token")
        self.m, self.L, self.G, self.B = model, len(prompt), G, B
        self.N = self.L + G
        self.x = np.array(list(prompt) + [mask_id] * G, dtype=np.int64)
        self.mask_id, self.alg, self.tau, self.mode, self.refresh = mask_id, alg, tau, mode, refresh
        self.nb = G // B
        self.spb = None if tau else steps // self.nb
        self.block, self.bstep, self.counts = 0, 0, None
        self.cache = KVCache(model, self.N)
        self.forwards, self.rows_computed, self.last_block, self.block_fw = 0, 0, -1, 0
        self.before_prev, self.before_prev_initial = None, True
        self.done = False

    def masked_in_block(self):
        s, e = self.L + self.block * self.B, self.L + (self.block + 1) * self.B
        return [p for p in range(s, e) if self.x[p] == self.mask_id]

    def rows_for(self):
        N, s = self.N, self.L + self.block * self.B
        e = s + self.B
        k = self.forwards
        if self.block != self.last_block:
            self.last_block, self.block_fw = self.block, 0
        full = list(range(N))
        if self.mode == "none":
            return full
        if self.mode in ("prefix", "dual"):
            if self.block_fw == 0 or (self.refresh and self.block_fw % self.refresh == 0):
                return full
            return list(range(s - 1, N if self.mode == "prefix" else e))
        # delayed
        if k % self.refresh == 0 or self.before_prev is None:
            return full
        S = dkv_cached_rows(self.before_prev, self.mask_id, self.before_prev_initial)
        return [p for p in range(N) if not S[p]]

    def step(self):
        """One policy step. Returns True if it ran a forward."""
        want = self.masked_in_block()
        if self.tau:
            while not want:
                self.block += 1
                want = self.masked_in_block()
            take = None
        else:
            if self.bstep == 0:
                mb = len(want)
                self.counts = [mb // self.spb + (k < mb % self.spb) for k in range(self.spb)]
            take = min(self.counts[self.bstep], len(want))
            if take == 0:
                want = []
        if want:
            rows = self.rows_for()
            h = forward_rows(self.m, self.x, rows, self.cache)
            where = {r: i for i, r in enumerate(rows)}
            src = [where[p - 1 if p > 0 else 0] for p in want]  # the logit shift
            logits = self.m.logits_of(h[src])
            if self.tau:
                logits[:, self.mask_id] = -np.inf
                conf, tok = gr.sample_tokens(logits)
            else:
                conf, tok = gr.sample_tokens(logits, margin_confidence=self.alg == "topk_margin",
                                             neg_entropy=self.alg == "entropy")
            order = np.argsort(-conf, kind="stable")  # ties -> lower position
            if self.tau:
                n = 1
                while n < len(order) and conf[order[n]] >= self.tau:
                    n += 1
            else:
                n = take
            self.before_prev, self.before_prev_initial = self.x.copy(), self.forwards == 0
            for i in sorted(order[:n]):
                if tok[i] != self.mask_id:
                    self.x[want[i]] = tok[i]
            self.forwards += 1
            self.block_fw += 1
            self.rows_computed += len(rows)
        if not self.tau:
            self.bstep += 1
            if self.bstep == self.spb:
                self.bstep, self.block = 0, self.block + 1
        if not (self.x == self.mask_id).any() or (not self.tau and self.block >= self.nb):
            self.done = True
        return bool(want)


def generate(model, prompts, G, B, steps=None, tau=None, alg="entropy", mode="none", refresh=0,
             mask_id=None):
    if mode not in MODES:
        raise ValueError(mode)
    if mode == "delayed" and refresh < 1:
        raise ValueError("delayed needs refresh >= 1")
    if mask_id is None:
        mask_id = model.cfg["mask_token_id"]
    out, stats = [], []
    for p in prompts:
        r = Request(model, p, G, B, steps, tau, alg, mode, refresh, mask_id)
        while not r.done:
            r.step()
        out.append(r.x.tolist())
        stats.append({"forwards": r.forwards, "rows": r.rows_computed})
    return out, stats


def fastdllm_generate(model, prompt, G, B, steps=None, tau=None, dual=False, refresh_every_step=False, eps=1e-3,
                      mask_id=None):
    """Faithful port of Fast-dLLM's Dream block loop (generation_utils_block.py _sample, one
    sequence, temperature 0), for the self-test: at each block start one full forward,
    whose shifted logits commit position s unconditionally (x[:, s] = x0[:, s]); then the
    cached steps run rows [s, N) (prefix) or [s, e) (dual) and shift INSIDE those rows
    (cat([l[:1], l[:-1]]): row s predicts itself, which is never needed since s is
    committed). Steps: Dream's timesteps over steps/num_blocks + 1 points, step i = 1.. of
    the block commits int(masked * (1 - s/t)) by negative entropy (all on the last);
    threshold: the top-1 and every other masked block position with p >= tau.
    refresh_every_step: every cached step is a full pass instead (the self-check: the
    result must equal the cached run where the cache is exact and be what none gives)."""
    if mask_id is None:
        mask_id = model.cfg["mask_token_id"]
    Lp, N = len(prompt), len(prompt) + G
    x = np.array(list(prompt) + [mask_id] * G, dtype=np.int64)
    nb = G // B
    spb = steps // nb if steps else None
    ts = gr.timesteps(eps, spb) if steps else None
    cache = KVCache(model, N)
    forwards = 0
    for b in range(nb):
        s, e = Lp + b * B, Lp + (b + 1) * B
        h = forward_rows(model, x, np.arange(N), cache)
        forwards += 1
        lg = model.logits_of(h[[max(s - 1, 0)]])
        _, x0 = gr.sample_tokens(lg)
        x[s] = x0[0]
        i = 1
        while True:
            rows = np.arange(s, N if not dual else e)
            if refresh_every_step:
                hf = forward_rows(model, x, np.arange(N), cache)
                h = np.concatenate([hf[[s]], hf[rows[:-1]]])  # the same predicting rows as below
            else:
                hr = forward_rows(model, x, rows, cache)
                h = np.concatenate([hr[:1], hr[:-1]])  # the shift inside the computed rows
            forwards += 1
            blk = [k for k in range(e - s) if x[s + k] == mask_id]
            if tau is not None:
                conf, tok = gr.sample_tokens(model.logits_of(h[blk]))
                order = np.argsort(-conf, kind="stable")
                n = 1
                while n < len(order) and conf[order[n]] >= tau:
                    n += 1
                for j in order[:n]:
                    x[s + blk[j]] = tok[j]
            else:
                if i == spb:
                    break
                conf, tok = gr.sample_tokens(model.logits_of(h[blk]), neg_entropy=True)
                n = gr.transfer_count(len(blk), 1, ts[i], ts[i + 1], i == spb - 1)
                for j in np.argsort(-conf, kind="stable")[:n]:
                    x[s + blk[j]] = tok[j]
                i += 1
            if not (x[s:e] == mask_id).any():
                break
    return x.tolist(), forwards


def main(argv=None):
    ap = argparse.ArgumentParser(description="KV-cached Dream block decoding reference (NumPy)")
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompts", required=True)
    ap.add_argument("--max-new-tokens", type=int, required=True)
    ap.add_argument("--block-length", type=int, required=True)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--threshold", type=float, default=None)
    ap.add_argument("--alg", default="entropy", choices=("maskgit_plus", "topk_margin", "entropy"))
    ap.add_argument("--cache", default="none", choices=MODES)
    ap.add_argument("--refresh", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--stats", default=None)
    a = ap.parse_args(argv)
    if (a.steps is None) == (a.threshold is None):
        sys.exit("give exactly one of --steps and --threshold")
    with open(a.prompts) as f:
        prompts = json.load(f)
    model = fr.DreamRef(a.model)
    out, stats = generate(model, prompts, a.max_new_tokens, a.block_length, a.steps, a.threshold,
                          a.alg, a.cache, a.refresh)
    with open(a.out, "w") as f:
        json.dump(out, f)
        f.write("\n")
    if a.stats:
        with open(a.stats, "w") as f:
            json.dump(stats, f)
            f.write("\n")


if __name__ == "__main__":
    main()
