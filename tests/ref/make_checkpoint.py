#!/usr/bin/python3
"""Write a random small Dream / DiffuCoder checkpoint in the exact Hugging Face layout.

Independent of the C code: gives the C loader a checkpoint written by someone else,
in BF16, F16 or F32, sharded or not.

  /usr/bin/python3 tests/ref/make_checkpoint.py --hidden 64 --layers 2 --heads 4 \
      --kv-heads 2 --inter 128 --vocab 1000 --rope-theta 10000 --dtype bf16 \
      --shard-bytes 200000 --seed 1 --out /tmp/tiny_dream

Tensor names / shapes follow modeling_dream.py (HKUNLP Dream, as shipped in the Hugging
Face repos Dream-org/Dream-v0-*-7B and apple/DiffuCoder-7B-*): DreamModel -> DreamBaseModel
(model.*) + lm_head; q/k/v_proj have biases, o_proj / MLP have none; weights are
[out_features, in_features] row-major (torch nn.Linear).  Tensor order in the shards is
the torch state_dict order (embed, then per layer self_attn q,k,v,o, mlp gate,up,down,
input_layernorm, post_attention_layernorm, then model.norm, lm_head); inside each file
tensors are sorted by name (like the safetensors library).

Initialisation (not the model's own init; chosen to give well-scaled activations):
  embed_tokens ~ N(0,1); every Linear weight ~ N(0,1)/sqrt(fan_in) (lm_head times
  --lm-head-scale); q/k/v biases ~ 0.02*N(0,1); RMSNorm weights 1 + 0.1*N(0,1).
  By default the lm_head row of mask_token_id is zeroed (--mask-row keep to disable), so
  the random model (like the trained one) essentially never predicts <|mask|>: Dream's
  generation code behaves oddly when it does (see dream_generate_ref.py).  With
  --tie the checkpoint has no lm_head.weight and tie_word_embeddings=true (the row is then
  not zeroed, since it is the embedding).

Special token ids (config.json): if vocab > 151667 the real DiffuCoder ids are used
(bos = eos = pad = 151643, mask_token_id = 151666).  For a smaller vocab they would be
out of range, so they are put inside the vocabulary instead: bos = eos = pad = vocab-2,
mask_token_id = vocab-1.  --mask-id / --pad-id override.
"""
import argparse
import os
import sys

import numpy as np

sys.dont_write_bytecode = True  # keep tests/ref free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np as st  # noqa: E402

REAL_PAD = 151643
REAL_MASK = 151666


def tensor_order(n_layers, tie):
    names = ["model.embed_tokens.weight"]
    for i in range(n_layers):
        p = "model.layers.%d." % i
        names += [p + "self_attn.q_proj.weight", p + "self_attn.q_proj.bias",
                  p + "self_attn.k_proj.weight", p + "self_attn.k_proj.bias",
                  p + "self_attn.v_proj.weight", p + "self_attn.v_proj.bias",
                  p + "self_attn.o_proj.weight",
                  p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight", p + "mlp.down_proj.weight",
                  p + "input_layernorm.weight", p + "post_attention_layernorm.weight"]
    names.append("model.norm.weight")
    if not tie:
        names.append("lm_head.weight")
    return names


def make_config(hidden, layers, heads, kv_heads, inter, vocab, rope_theta, dtype,
                rms_eps=1e-6, max_pos=131072, tie=False, mask_id=None, pad_id=None):
    if vocab > REAL_MASK + 1:
        d_pad, d_mask = REAL_PAD, REAL_MASK
    else:
        d_pad, d_mask = vocab - 2, vocab - 1
    pad = d_pad if pad_id is None else pad_id
    mask = d_mask if mask_id is None else mask_id
    return {
        "architectures": ["DreamModel"],
        "attention_dropout": 0.0,
        "auto_map": {"AutoConfig": "configuration_dream.DreamConfig",
                     "AutoModel": "modeling_dream.DreamModel"},
        "bos_token_id": pad,
        "eos_token_id": pad,
        "hidden_act": "silu",
        "hidden_size": hidden,
        "initializer_range": 0.02,
        "intermediate_size": inter,
        "mask_token_id": mask,
        "max_position_embeddings": max_pos,
        "max_window_layers": layers,
        "model_type": "Dream",
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "num_key_value_heads": kv_heads,
        "pad_token_id": pad,
        "rms_norm_eps": rms_eps,
        "rope_scaling": None,
        "rope_theta": float(rope_theta),
        "sliding_window": None,
        "tie_word_embeddings": bool(tie),
        "torch_dtype": st.TORCH_DTYPE_NAME[st.norm_dtype(dtype)],
        "transformers_version": "4.46.2",
        "use_cache": False,
        "use_sliding_window": False,
        "vocab_size": vocab,
    }


def random_weights(cfg, seed, lm_head_scale=1.0, zero_mask_row=True):
    """Returns list of (name, float32 array) in state_dict order."""
    rng = np.random.default_rng(seed)
    H = cfg["hidden_size"]
    nh = cfg["num_attention_heads"]
    nkv = cfg["num_key_value_heads"]
    hd = H // nh
    I = cfg["intermediate_size"]
    V = cfg["vocab_size"]
    tie = cfg["tie_word_embeddings"]

    def lin(out, inp, scale=1.0):
        return (rng.standard_normal((out, inp)) * (scale / np.sqrt(inp))).astype(np.float32)

    def bias(n):
        return (0.02 * rng.standard_normal(n)).astype(np.float32)

    def normw(n):
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    out = {"model.embed_tokens.weight": rng.standard_normal((V, H)).astype(np.float32)}
    for i in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % i
        out[p + "self_attn.q_proj.weight"] = lin(nh * hd, H)
        out[p + "self_attn.q_proj.bias"] = bias(nh * hd)
        out[p + "self_attn.k_proj.weight"] = lin(nkv * hd, H)
        out[p + "self_attn.k_proj.bias"] = bias(nkv * hd)
        out[p + "self_attn.v_proj.weight"] = lin(nkv * hd, H)
        out[p + "self_attn.v_proj.bias"] = bias(nkv * hd)
        out[p + "self_attn.o_proj.weight"] = lin(H, nh * hd)
        out[p + "mlp.gate_proj.weight"] = lin(I, H)
        out[p + "mlp.up_proj.weight"] = lin(I, H)
        out[p + "mlp.down_proj.weight"] = lin(H, I)
        out[p + "input_layernorm.weight"] = normw(H)
        out[p + "post_attention_layernorm.weight"] = normw(H)
    out["model.norm.weight"] = normw(H)
    if not tie:
        w = lin(V, H, lm_head_scale)
        m = cfg.get("mask_token_id")
        if zero_mask_row and m is not None and 0 <= m < V:
            w[m, :] = 0.0
        out["lm_head.weight"] = w
    order = tensor_order(cfg["num_hidden_layers"], tie)
    return [(n, out[n]) for n in order]


def generation_config(cfg):
    return {"_from_model_config": True, "bos_token_id": cfg["bos_token_id"],
            "eos_token_id": cfg["eos_token_id"], "pad_token_id": cfg["pad_token_id"],
            "mask_token_id": cfg["mask_token_id"], "transformers_version": "4.46.2"}


def make_checkpoint(out, hidden=64, layers=2, heads=4, kv_heads=2, inter=128, vocab=1000,
                    rope_theta=10000.0, dtype="bf16", shard_bytes=0, seed=0, rms_eps=1e-6,
                    max_pos=131072, tie=False, mask_id=None, pad_id=None, lm_head_scale=1.0,
                    zero_mask_row=True):
    if hidden % heads or heads % kv_heads or (hidden // heads) % 2:
        raise ValueError("need hidden %% heads == 0, heads %% kv_heads == 0, even head_dim")
    cfg = make_config(hidden, layers, heads, kv_heads, inter, vocab, rope_theta, dtype,
                      rms_eps, max_pos, tie, mask_id, pad_id)
    items = random_weights(cfg, seed, lm_head_scale, zero_mask_row)
    files = st.write_checkpoint(out, cfg, items, dtype, shard_bytes,
                                extra_files={"generation_config.json": generation_config(cfg)})
    return cfg, files


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--inter", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=1000)
    ap.add_argument("--rope-theta", type=float, default=10000.0)
    ap.add_argument("--rms-eps", type=float, default=1e-6)
    ap.add_argument("--max-pos", type=int, default=131072)
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "f16", "f32"])
    ap.add_argument("--shard-bytes", type=int, default=0,
                    help="max bytes per shard (0 = single model.safetensors)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tie", action="store_true", help="tie_word_embeddings=true, no lm_head.weight")
    ap.add_argument("--mask-id", type=int, default=None)
    ap.add_argument("--pad-id", type=int, default=None, help="also used as bos/eos")
    ap.add_argument("--lm-head-scale", type=float, default=1.0,
                    help="multiply lm_head init (larger = more peaked distributions)")
    ap.add_argument("--mask-row", choices=["zero", "keep"], default="zero",
                    help="zero the lm_head row of mask_token_id (default) or keep it random")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    cfg, files = make_checkpoint(a.out, a.hidden, a.layers, a.heads, a.kv_heads, a.inter, a.vocab,
                                 a.rope_theta, a.dtype, a.shard_bytes, a.seed, a.rms_eps, a.max_pos,
                                 a.tie, a.mask_id, a.pad_id, a.lm_head_scale, a.mask_row == "zero")
    print("wrote %s: %s (mask_token_id %d, pad/bos/eos %d)"
          % (a.out, ", ".join(files), cfg["mask_token_id"], cfg["pad_token_id"]))


if __name__ == "__main__":
    main()
