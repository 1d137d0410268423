"""A stand-in for the two `transformers` calls llama.cpp's convert_hf_to_gguf.py makes on a
Dream checkpoint (Debian has no python3-transformers; this machine reaches no other registry):
AutoConfig (config.json as a dict) and AutoTokenizer (the vocabulary and added tokens of
tokenizer.json, and encode() through `diffu tokenize`, diffu's HF-exact BPE port, so the
converter's pre-tokenizer hash check sees the real ids). Used only by
benchmarks/bench_gemm.sh's conversion step: PYTHONPATH=benchmarks/llama_shim.
Set DIFFU_BIN to the diffu binary."""
import json
import os
import subprocess


class _Config:
    def __init__(self, d):
        self._d = d

    def to_dict(self):
        return dict(self._d)


class AutoConfig:
    @staticmethod
    def from_pretrained(path, **kw):
        with open(os.path.join(path, "config.json")) as f:
            return _Config(json.load(f))


class _Added:
    def __init__(self, content, special):
        self.content, self.special = content, special


class _Tokenizer:
    def __init__(self, path):
        self.path = str(path)
        with open(os.path.join(self.path, "tokenizer.json"), encoding="utf-8") as f:
            tj = json.load(f)
        self._vocab = dict(tj["model"]["vocab"])
        self.added_tokens_decoder = {}
        for a in tj.get("added_tokens", []):
            self._vocab[a["content"]] = a["id"]
            self.added_tokens_decoder[a["id"]] = _Added(a["content"], bool(a.get("special")))

    def get_vocab(self):
        return dict(self._vocab)

    def get_added_vocab(self):
        return {a.content: i for i, a in self.added_tokens_decoder.items()}

    def encode(self, text, **kw):
        b = os.environ.get("DIFFU_BIN", "diffu")
        out = subprocess.run([b, "tokenize", "--model", self.path], input=text.encode("utf-8"),
                             stdout=subprocess.PIPE, check=True).stdout.decode()
        return [int(x) for x in out.split()]


class AutoTokenizer:
    @staticmethod
    def from_pretrained(path, **kw):
        return _Tokenizer(path)
