#!/usr/bin/python3
"""NumPy port of Dream's masked-diffusion generation (diffusion_generate / _sample).

Follows generation_utils.py of the Dream model (HKUNLP/Dream; the remote-code file of the
Hugging Face repos Dream-org/Dream-v0-*-7B and apple/DiffuCoder-7B-*; read from public
copies: functions top_p_logits, top_k_logits, sample_tokens, DreamGenerationMixin._sample),
re-written independently in NumPy; the forward is dream_forward_ref.DreamRef (float64).

What is reproduced (names as in the original):
  * canvas x = prompt (left-padded batch) followed by max_new_tokens copies of mask_token_id;
    with padding, position_ids = cumsum(mask)-1 (pads -> 1) and a valid(q) AND valid(k) mask.
  * timesteps = torch.linspace(1, eps, steps + 1) -- emulated in FLOAT32 with torch's CUDA
    kernel formula (start + step*i for i < (steps+1)//2, else end - step*(steps-i)),
    and t, s, 1 - s/t, num_mask_token * (1 - s/t) are float32 like the torch tensors
    (--timesteps f64 switches to float64; --timesteps f32fma contracts start + step*i into
    one fused multiply-add, which nvcc's default --fmad=true may do; which of f32/f32fma the
    GPU run used is not known).  This only matters when num_mask * (1 - s/t) is within
    ~1e-7 of an integer.  Measured with one row (tests: steps 1..399, max_new_tokens
    steps..4*steps, capped at 1100): f32 and f32fma give identical per-step counts for all
    max_new_tokens < 677 and differ in 950 of 204k tested configurations (smallest: 677
    tokens / 333 steps); f32 vs f64 agree for all max_new_tokens < 300 and differ in ~2% of
    configurations with 300..1100 tokens (e.g. 887 / 512).  The usual configurations
    (128/256/512/1024/2048 tokens with steps = tokens, tokens/2, tokens/4) agree in all three.
  * per step: mask_index = (x == mask_id); logits = forward(x); logit shift
    logits = cat([logits[:, :1], logits[:, :-1]], 1)  (the prediction for position p comes
    from row p-1); mask_logits = logits[mask_index] (row-major: batch, then position).
  * sample_tokens(logits, temperature, top_p, top_k, margin_confidence, neg_entropy):
      logits / temperature (only if temperature > 0); top-p filter if top_p < 1 (sort
      descending, cumsum of softmax, remove where cumsum > top_p, shifted right by one so the
      first token past the threshold is kept, set removed to the dtype's min); top-k filter
      (remove logits < k-th largest, ties kept); probs = softmax;
      token: multinomial if temperature > 0 else argmax (first maximal index);
      confidence: prob of the token (maskgit_plus, origin), top1 - top2 prob (topk_margin),
      sum p*log(p + 1e-10) (entropy).
  * origin: p_transfer = 1 - s/t (1 on the last step); each masked position is committed iff
    a uniform u < p_transfer; the committed ones get sample_tokens' token.
  * others: num_mask_token = (#masked in the whole batch) / B (float32);
    n = int(num_mask_token * (1 - s/t)), on the last step int(num_mask_token);
    full_confidence = -inf except at masked positions; if n > 0: top-n per row
    (alg_temp None/0) or n samples without replacement from softmax(full_confidence /
    alg_temp); the chosen positions get x0 (positions not masked get mask_token_id, exactly
    like the original's x_ buffer).  When the rows' mask counts differ (prompts containing
    <|mask|>, or the model predicting <|mask|>, which then stays masked), the batch-mean n
    is used for every row: a row with more masks can keep masks after the last step, a
    row with fewer gets n > its masks and has unmasked positions (prompt or committed
    tokens) overwritten with <|mask|>; a warning is printed.  With equal counts (the
    normal case: same max_new_tokens, no mask predicted) per-row n equals the batch n.

Deterministic path (the one a C engine must match exactly): temperature 0 and alg_temp
0/None, with alg maskgit_plus / topk_margin / entropy.
  * Tie-breaking: top-n picks the highest confidence; equal confidences are broken towards
    the LOWER position (stable sort).  torch.topk does not specify its tie order (CUDA radix
    select), so the original is itself unspecified on ties.  In float64 ties practically only
    happen among the -inf (non-masked) entries.  NOTE: the original stores confidences in the
    logits dtype (bf16 for the real model: full_confidence = full_like(x, -inf,
    dtype=logits.dtype)), which makes ties far more frequent there; --confidence-dtype bf16
    emulates that rounding (ties then still go to the lower position).
  * Token argmax ties -> lowest token id (torch max(dim) on CPU does the same; unspecified
    in general).
  * origin uses torch.rand, which cannot be reproduced.  Its deterministic equivalent is to
    feed the uniforms explicitly: --origin-uniforms FILE (little-endian float32; each step
    consumes one uniform per masked position, batch-major/position order, exactly the
    shape of torch.rand(*x0.shape)).  Without the file, origin draws from a NumPy RNG
    (--seed) and is NOT comparable to any other implementation.  (Closed forms: all-zero
    uniforms commit everything at step 0; uniforms >= 1 - s/t for all but the last step
    commit everything at the last step; both equal the one-shot argmax of the first forward
    at temperature 0.)
  * temperature > 0 or alg_temp > 0 use a NumPy RNG: statistically the same procedure, not
    the same numbers as torch.

Batch: prompts of different lengths are left-padded with pad_token_id (the original returns
the padded rows; this script strips the left padding in its output).  --independent runs
each prompt as its own batch of 1 instead (what a per-request engine computes; equal to
the batched result unless rows end up with different mask counts, which needs the model to
predict <|mask|> itself).

CLI:
  dream_generate_ref.py --model DIR --prompts P.json --max-new-tokens N --steps S \
      --alg entropy --out OUT.json [--temperature 0] [--top-p P] [--top-k K] [--alg-temp T]
      [--eps 1e-3] [--mask-id ID] [--pad-id ID] [--origin-uniforms U.bin] [--seed 0]
      [--confidence-dtype f64|f32|bf16] [--timesteps f32|f32fma|f64] [--independent]
      [--history H.json]
  P.json: list of lists of token ids.  OUT.json: list of full sequences (prompt + generated
  ids, no padding).  --history writes, per step, the canvases after the step and the
  positions (index in the unpadded sequence) committed in that step.

Regenerating a golden output, e.g.:
  /usr/bin/python3 tests/ref/make_checkpoint.py --seed 3 --dtype bf16 --out /tmp/m
  echo '[[1,2,3,4,5],[7,8,9]]' > /tmp/p.json
  /usr/bin/python3 tests/ref/dream_generate_ref.py --model /tmp/m --prompts /tmp/p.json \
      --max-new-tokens 16 --steps 16 --alg entropy --out /tmp/gen.json
"""
import argparse
import json
import os
import sys
from fractions import Fraction

import numpy as np

sys.dont_write_bytecode = True  # keep tests/ref free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dream_forward_ref as fr  # noqa: E402
import safetensors_np as st  # noqa: E402

ALGS = ("origin", "maskgit_plus", "topk_margin", "entropy")
F32 = np.float32


# ------------------------------------------------------------------ schedule
def linspace_f32(start, end, n):
    """torch.linspace(start, end, n) in float32, CUDA kernel formula."""
    start, end = F32(start), F32(end)
    if n == 1:
        return np.array([start], dtype=F32)
    step = F32((end - start) / F32(n - 1))
    half = n // 2
    out = np.empty(n, dtype=F32)
    for i in range(n):
        out[i] = start + step * F32(i) if i < half else end - step * F32(n - i - 1)
    return out


def _round_fraction_f32(fr):
    """Correctly round an exact Fraction to float32 (normal range)."""
    if fr == 0:
        return F32(0)
    sign = -1 if fr < 0 else 1
    a = abs(fr)
    e = a.numerator.bit_length() - a.denominator.bit_length()
    if Fraction(2) ** e > a:
        e -= 1
    sc = a * Fraction(2) ** (23 - e)          # in [2^23, 2^24)
    q, r = divmod(sc.numerator, sc.denominator)
    if 2 * r > sc.denominator or (2 * r == sc.denominator and q & 1):
        q += 1
    return F32(sign * float(Fraction(q) * Fraction(2) ** (e - 23)))


def linspace_f32_fma(start, end, n):
    """Same as linspace_f32 but with start + step*i contracted to one fused multiply-add
    (what nvcc's default --fmad=true may generate for the CUDA kernel)."""
    start, end = F32(start), F32(end)
    if n == 1:
        return np.array([start], dtype=F32)
    step = F32((end - start) / F32(n - 1))
    half = n // 2
    out = np.empty(n, dtype=F32)
    for i in range(n):
        if i < half:
            out[i] = _round_fraction_f32(Fraction(float(start)) + Fraction(float(step)) * i)
        else:
            out[i] = _round_fraction_f32(Fraction(float(end)) - Fraction(float(step)) * (n - i - 1))
    return out


def timesteps(eps, steps, mode="f32"):
    """mode: 'f32' (torch float32, no FMA), 'f32fma', 'f64' (float64 numpy.linspace)."""
    if mode == "f32":
        return linspace_f32(1.0, eps, steps + 1)
    if mode == "f32fma":
        return linspace_f32_fma(1.0, eps, steps + 1)
    if mode == "f64":
        return np.linspace(1.0, eps, steps + 1)
    raise ValueError(mode)


def transfer_count(num_masked_total, batch, t, s, last, f32=True):
    """number_transfer_tokens of _sample (non-origin algorithms)."""
    if f32:
        num = F32(num_masked_total) / F32(batch)
        return int(num) if last else int(num * (F32(1) - F32(s) / F32(t)))
    num = float(num_masked_total) / batch
    return int(num) if last else int(num * (1.0 - float(s) / float(t)))


# ------------------------------------------------------------------ sampling
NEG_MIN = -np.finfo(np.float64).max  # torch.finfo(dtype).min


def top_p_logits(logits, top_p):
    order = np.argsort(-logits, axis=-1, kind="stable")
    srt = np.take_along_axis(logits, order, axis=-1)
    cum = np.cumsum(fr.softmax(srt, axis=-1), axis=-1)
    remove = cum > top_p
    remove[..., 1:] = remove[..., :-1].copy()   # keep the first token past the threshold
    remove[..., 0] = False
    mask = np.zeros_like(remove)
    np.put_along_axis(mask, order, remove, axis=-1)
    return np.where(mask, NEG_MIN, logits)


def top_k_logits(logits, top_k):
    k = min(int(top_k), logits.shape[-1])
    kth = -np.partition(-logits, k - 1, axis=-1)[..., k - 1:k]
    return np.where(logits < kth, NEG_MIN, logits)


def sample_tokens(logits, temperature=0.0, top_p=None, top_k=None, margin_confidence=False,
                  neg_entropy=False, rng=None):
    """logits [M, V] -> (confidence [M], token [M])."""
    logits = np.asarray(logits, dtype=np.float64)
    if temperature > 0:
        logits = logits / temperature
    if top_p is not None and top_p < 1:
        logits = top_p_logits(logits, top_p)
    if top_k is not None:
        logits = top_k_logits(logits, top_k)
    probs = fr.softmax(logits, axis=-1)
    if temperature > 0:
        rng = rng if rng is not None else np.random.default_rng(0)
        u = rng.random(probs.shape[0])[:, None]
        cdf = np.cumsum(probs, axis=-1)
        x0 = np.minimum((cdf < u * cdf[:, -1:]).sum(axis=-1), probs.shape[-1] - 1)
        confidence = probs[np.arange(len(x0)), x0]
    else:
        x0 = np.argmax(probs, axis=-1)
        confidence = probs[np.arange(len(x0)), x0]
    if margin_confidence:
        top2 = -np.partition(-probs, 1, axis=-1)[:, :2]
        confidence = top2[:, 0] - top2[:, 1]
    if neg_entropy:
        confidence = np.sum(probs * np.log(probs + 1e-10), axis=-1)
    return confidence, x0


def round_conf(c, how):
    if how == "bf16":
        return st.round_to_bf16(c)
    if how == "f32":
        return np.asarray(c, dtype=np.float32).astype(np.float64)
    return c


def topn_lower_first(row, n):
    """Indices of the n largest entries, ties -> lower index first."""
    return np.argsort(-row, kind="stable")[:n]


class Uniforms:
    def __init__(self, path=None, rng=None):
        self.data = None if path is None else np.fromfile(path, dtype="<f4")
        self.pos = 0
        self.rng = rng

    def take(self, m):
        if self.data is None:
            return self.rng.random(m).astype(F32)
        if self.pos + m > len(self.data):
            raise RuntimeError("--origin-uniforms exhausted: need %d more, have %d"
                               % (m, len(self.data) - self.pos))
        u = self.data[self.pos:self.pos + m].astype(F32)
        self.pos += m
        return u


# ------------------------------------------------------------------ generation
def generate(model, prompts, max_new_tokens, steps, alg="entropy", temperature=0.0,
             top_p=None, top_k=None, alg_temp=None, eps=1e-3, mask_id=None, pad_id=None,
             uniforms=None, rng=None, confidence_dtype="f64", timesteps_mode="f32",
             history=None, warn=sys.stderr):
    """Batched generation as DreamGenerationMixin._sample. Returns list of sequences
    (prompt + generated, left padding removed)."""
    if alg not in ALGS:
        raise ValueError("unknown alg %r" % alg)
    cfg = model.cfg
    rng = rng if rng is not None else np.random.default_rng(0)
    if mask_id is None:
        mask_id = cfg.get("mask_token_id")
    if mask_id is None:
        raise ValueError("no mask_token_id in config; pass --mask-id")
    if pad_id is None:
        pad_id = fr.pad_token(cfg)
    if uniforms is None:
        uniforms = Uniforms(None, rng)
    B = len(prompts)
    ids, am = fr.left_pad([np.asarray(p, dtype=np.int64) for p in prompts], pad_id)
    Lp = ids.shape[1]
    N = Lp + max_new_tokens
    x = np.concatenate([ids, np.full((B, max_new_tokens), mask_id, dtype=np.int64)], axis=1)
    if np.any(am == 0):
        am_full = np.concatenate([am, np.ones((B, max_new_tokens), dtype=np.int64)], axis=1)
    else:
        am_full = None  # attention_mask = "full", tok_idx = None
    offs = [Lp - len(p) for p in prompts]

    ts = timesteps(eps, steps, timesteps_mode)
    timesteps_f32 = timesteps_mode != "f64"

    for i in range(steps):
        mask_index = x == mask_id
        bi, pi = np.nonzero(mask_index)               # row-major == torch boolean indexing
        M = len(bi)
        before = x.copy()
        if M:
            h = model.hidden(x, am_full)
            src = np.maximum(pi - 1, 0)               # logit shift: row p-1 predicts p
            mask_logits = model.logits_of(h[bi, src])
        else:
            mask_logits = np.zeros((0, model.V))
        t, s = ts[i], ts[i + 1]
        last = i == steps - 1
        if alg == "origin":
            if last:
                p_transfer = 1
            else:
                p_transfer = (F32(1) - F32(s) / F32(t)) if timesteps_f32 else 1.0 - s / t
            u = uniforms.take(M)
            sel = u < p_transfer
            x0 = np.full(M, mask_id, dtype=np.int64)
            if sel.any():
                _, tok = sample_tokens(mask_logits[sel], temperature, top_p, top_k, rng=rng)
                x0[sel] = tok
            x[bi, pi] = x0
        else:
            confidence, x0 = sample_tokens(mask_logits, temperature, top_p, top_k,
                                           margin_confidence=(alg == "topk_margin"),
                                           neg_entropy=(alg == "entropy"), rng=rng)
            n = transfer_count(M, B, t, s, last, timesteps_f32)
            full_conf = np.full((B, N), -np.inf)
            full_conf[bi, pi] = round_conf(confidence, confidence_dtype)
            if n > 0:
                x_ = np.full((B, N), mask_id, dtype=np.int64)
                x_[bi, pi] = x0
                for b in range(B):
                    if n > N:
                        raise RuntimeError("torch.topk would fail: k=%d > %d" % (n, N))
                    if alg_temp is None or alg_temp == 0:
                        idx = topn_lower_first(full_conf[b], n)
                    else:
                        w = fr.softmax(full_conf[b] / alg_temp)
                        if np.count_nonzero(w) < n:
                            raise RuntimeError("torch.multinomial would fail: too few nonzero weights")
                        idx = rng.choice(N, size=n, replace=False, p=w)
                    nm = int(mask_index[b].sum())
                    if n > nm and warn is not None:
                        print("warning: step %d row %d: n=%d > %d masked positions; like the "
                              "original, %d unmasked positions are overwritten with the mask "
                              "token (which ones depends on torch.topk tie order)"
                              % (i, b, n, nm, n - nm), file=warn)
                    x[b, idx] = x_[b, idx]
        if history is not None:
            committed = []
            for b in range(B):
                ch = np.nonzero((before[b] == mask_id) & (x[b] != mask_id))[0]
                committed.append([int(c - offs[b]) for c in ch])
            history.append({"step": i, "committed": committed,
                            "x": [x[b, offs[b]:].tolist() for b in range(B)]})
    return [x[b, offs[b]:].tolist() for b in range(B)]


def main(argv=None):
    ap = argparse.ArgumentParser(description="Dream diffusion_generate reference (NumPy)")
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompts", required=True, help="JSON list of lists of token ids")
    ap.add_argument("--max-new-tokens", type=int, required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--alg", default="entropy", choices=ALGS)
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--top-p", type=float, default=None)
    ap.add_argument("--top-k", type=int, default=None)
    ap.add_argument("--alg-temp", type=float, default=None)
    ap.add_argument("--eps", type=float, default=1e-3)
    ap.add_argument("--mask-id", type=int, default=None)
    ap.add_argument("--pad-id", type=int, default=None)
    ap.add_argument("--origin-uniforms", default=None, help="float32 LE uniforms for alg origin")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--confidence-dtype", choices=["f64", "f32", "bf16"], default="f64")
    ap.add_argument("--timesteps", choices=["f32", "f32fma", "f64"], default="f32")
    ap.add_argument("--independent", action="store_true", help="each prompt as its own batch")
    ap.add_argument("--history", default=None)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    with open(a.prompts) as f:
        prompts = json.load(f)
    if not prompts or not all(isinstance(p, list) and p for p in prompts):
        sys.exit("prompts must be a non-empty list of non-empty lists of ids")
    model = fr.DreamRef(a.model)
    rng = np.random.default_rng(a.seed)
    uni = Uniforms(a.origin_uniforms, rng)
    hist = [] if a.history else None
    kw = dict(alg=a.alg, temperature=a.temperature, top_p=a.top_p, top_k=a.top_k,
              alg_temp=a.alg_temp, eps=a.eps, mask_id=a.mask_id, pad_id=a.pad_id,
              uniforms=uni, rng=rng, confidence_dtype=a.confidence_dtype,
              timesteps_mode=a.timesteps)
    if a.independent:
        out = []
        for p in prompts:
            h = [] if hist is not None else None
            out += generate(model, [p], a.max_new_tokens, a.steps, history=h, **kw)
            if hist is not None:
                hist.append(h)
    else:
        out = generate(model, prompts, a.max_new_tokens, a.steps, history=hist, **kw)
    with open(a.out, "w") as f:
        json.dump(out, f)
        f.write("\n")
    if a.history:
        with open(a.history, "w") as f:
            json.dump(hist, f)
            f.write("\n")


if __name__ == "__main__":
    main()
