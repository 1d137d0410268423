"""train/hf_model.py — load an exported Hugging Face Dream directory (config.json +
model.safetensors) into train/model.py's DreamModel, fp32 compute on the stored (BF16) values.
Reads the safetensors file with tests/ref/safetensors_np.py (NumPy), not with the exporter."""
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "ref"))
from model import DreamConfig, DreamModel  # noqa: E402
import safetensors_np  # noqa: E402


def load(model_dir):
    cj = json.load(open(os.path.join(model_dir, "config.json")))
    c = DreamConfig(vocab_size=cj["vocab_size"], hidden_size=cj["hidden_size"],
                    intermediate_size=cj["intermediate_size"], num_hidden_layers=cj["num_hidden_layers"],
                    num_attention_heads=cj["num_attention_heads"], num_key_value_heads=cj["num_key_value_heads"],
                    rope_theta=cj["rope_theta"], rms_norm_eps=cj["rms_norm_eps"],
                    max_position_embeddings=cj["max_position_embeddings"],
                    tie_word_embeddings=cj.get("tie_word_embeddings", False), mask_token_id=cj["mask_token_id"],
                    eos_token_id=cj["eos_token_id"], bos_token_id=cj["bos_token_id"], pad_token_id=cj["pad_token_id"])
    m = DreamModel(c)
    t = safetensors_np.read_safetensors_file(os.path.join(model_dir, "model.safetensors"))
    sd = {k: torch.from_numpy(v.copy()) for k, v in t.items()}
    if c.tie_word_embeddings:
        sd["lm_head.weight"] = sd["model.embed_tokens.weight"]
    m.load_state_dict(sd)
    return m.eval()
