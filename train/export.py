#!/usr/bin/env python3
"""train/export.py — a checkpoint of train/train.py as a Hugging Face Dream directory.

    python3 train/export.py CKPT.pt OUT_DIR --tokenizer TOK_DIR [--golden GOLDEN_DIR]
    python3 train/export.py --random-tiny OUT_DIR --tokenizer TOK_DIR --golden GOLDEN_DIR   (untrained)

OUT_DIR gets config.json (architectures DreamModel, model_type Dream and the fields diffu's
model/config.c requires), model.safetensors (BF16; lm_head.weight omitted when tied, as HF
does), generation_config.json (Dream's generation defaults), tokenizer.json,
tokenizer_config.json, special_tokens_map.json.

--golden writes GOLDEN/ids.bin (int32 LE, sequences back to back), GOLDEN/lengths.txt and
GOLDEN/logits.bin (float32 [rows x vocab], unshifted): the torch model's fp32 forward on the
exported (BF16-rounded) weights, the reference `diffu logits` is compared with
(tests/toy_model/). The sequences: held-out-style Python text through the tokenizer, a chat
prompt, and a canvas with <|mask|> tokens.
"""
import argparse
import json
import os
import shutil
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import DreamConfig, DreamModel  # noqa: E402


def write_safetensors(path, tensors):
    """tensors: list of (name, torch tensor) written as BF16."""
    header, blobs, off = {}, [], 0
    for name, t in tensors:
        b = t.detach().to(torch.bfloat16).contiguous().view(torch.int16).numpy().tobytes()
        header[name] = {"dtype": "BF16", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(path + ".tmp", path)


def hf_config(c: DreamConfig):
    return {
        "architectures": ["DreamModel"],
        "attention_dropout": 0.0,
        "auto_map": {"AutoConfig": "configuration_dream.DreamConfig", "AutoModel": "modeling_dream.DreamModel"},
        "bos_token_id": c.bos_token_id,
        "eos_token_id": c.eos_token_id,
        "hidden_act": "silu",
        "hidden_size": c.hidden_size,
        "initializer_range": 0.02,
        "intermediate_size": c.intermediate_size,
        "mask_token_id": c.mask_token_id,
        "max_position_embeddings": c.max_position_embeddings,
        "max_window_layers": c.num_hidden_layers,
        "model_type": "Dream",
        "num_attention_heads": c.num_attention_heads,
        "num_hidden_layers": c.num_hidden_layers,
        "num_key_value_heads": c.num_key_value_heads,
        "pad_token_id": c.pad_token_id,
        "rms_norm_eps": c.rms_norm_eps,
        "rope_scaling": None,
        "rope_theta": c.rope_theta,
        "sliding_window": None,
        "tie_word_embeddings": c.tie_word_embeddings,
        "torch_dtype": "bfloat16",
        "use_cache": False,
        "use_sliding_window": False,
        "vocab_size": c.vocab_size,
    }


def export(model, out, tok_dir):
    os.makedirs(out, exist_ok=True)
    c = model.config
    sd = model.state_dict()
    names = [n for n in sd if not (c.tie_word_embeddings and n == "lm_head.weight")]
    write_safetensors(os.path.join(out, "model.safetensors"), [(n, sd[n]) for n in names])
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(hf_config(c), f, indent=2)
        f.write("\n")
    gen = {"_from_model_config": True, "bos_token_id": c.bos_token_id, "eos_token_id": c.eos_token_id,
           "pad_token_id": c.pad_token_id, "mask_token_id": c.mask_token_id, "alg": "entropy", "alg_temp": 0.0,
           "steps": 256, "max_new_tokens": 256, "temperature": 0.2, "top_p": 0.95, "eps": 1e-3}
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        json.dump(gen, f, indent=2)
        f.write("\n")
    for n in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(os.path.join(tok_dir, n), os.path.join(out, n))


def bf16_rounded(model):
    """A copy of the model whose fp32 weights are the exported BF16 values."""
    m = DreamModel(model.config)
    sd = {k: v.to(torch.bfloat16).float() for k, v in model.state_dict().items()}
    m.load_state_dict(sd)
    return m.eval()


def golden_sequences(tok_dir, c):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    texts = [
        "import os\n\n\ndef join_all(parts, sep=','):\n    \"\"\"Join the parts.\"\"\"\n    return sep.join(str(p) for p in parts)\n",
        "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, x):\n        self.items.append(x)\n",
    ]
    ids = [encode_rust(tok_dir, t) for t in texts]
    mask = c.mask_token_id
    ids.append(ids[0][:12] + [mask] * 20)
    return ids


def encode_rust(tok_dir, text):
    """Encode with the tokenizer.json through HF's Rust library (node) if present, else a
    byte-level fallback (any ids are a valid forward input; the golden file stores the ids)."""
    import subprocess
    js = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "tokenizer", "oracle.js")
    try:
        r = subprocess.run(["node", js, tok_dir, "--encode", text], capture_output=True, text=True, timeout=120)
        if r.returncode == 0:
            return [int(x) for x in r.stdout.replace(",", " ").split()]
    except (OSError, subprocess.TimeoutExpired):
        pass
    raise SystemExit("export.py: cannot run node tests/tokenizer/oracle.js to encode the golden text")


def write_golden(model, gdir, tok_dir):
    os.makedirs(gdir, exist_ok=True)
    m = bf16_rounded(model)
    seqs = golden_sequences(tok_dir, model.config)
    logits = []
    with torch.no_grad():
        for s in seqs:
            logits.append(m(torch.tensor([s]))[0].float())
    import numpy as np
    np.array([x for s in seqs for x in s], dtype="<i4").tofile(os.path.join(gdir, "ids.bin"))
    torch.cat(logits).numpy().astype("<f4").tofile(os.path.join(gdir, "logits.bin"))
    with open(os.path.join(gdir, "lengths.txt"), "w") as f:
        f.write(",".join(str(len(s)) for s in seqs) + "\n")
    with open(os.path.join(gdir, "README.md"), "w") as f:
        f.write("Golden logits of the exported model, made by `train/export.py ... --golden` (PyTorch %s, fp32\n"
                "forward of train/model.py on the BF16-rounded exported weights; unshifted, float32 [rows x %d]).\n"
                "ids.bin: int32 LE token ids of %d sequences back to back, lengths in lengths.txt.\n"
                % (torch.__version__, model.config.vocab_size, len(seqs)))
    print("[export] golden: %d sequences, %d rows" % (len(seqs), sum(map(len, seqs))), file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ckpt", nargs="?")
    ap.add_argument("out", nargs="?")
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--golden")
    ap.add_argument("--random-tiny", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(2)
    if a.random_tiny:
        a.out, a.ckpt = a.out or a.ckpt, None
        c = DreamConfig(hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
                        num_key_value_heads=2, rope_theta=10000.0)
        model = DreamModel(c)
        model.init_weights(7)
        with torch.no_grad():  # non-trivial norms and biases so every piece is exercised
            g = torch.Generator().manual_seed(8)
            for n, p in model.named_parameters():
                if n.endswith("bias") or "norm" in n:
                    p.add_(0.1 * torch.randn(p.shape, generator=g))
    else:
        ck = torch.load(a.ckpt)
        c = DreamConfig(**ck["config"])
        model = DreamModel(c)
        model.load_state_dict(ck["model"])
    model.eval()
    out = a.out
    export(model, out, a.tokenizer)
    print("[export] wrote %s (%d parameters)" % (out, sum(p.numel() for p in model.parameters())), file=sys.stderr)
    if a.golden:
        write_golden(model, a.golden, a.tokenizer)


if __name__ == "__main__":
    main()
