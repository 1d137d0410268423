"""Stub for llama.cpp's converter: it imports SentencePieceProcessor before it finds that a
Dream checkpoint has no tokenizer.model (FileNotFoundError), then takes the BPE path."""


class SentencePieceProcessor:
    def __init__(self, *a, **kw):
        raise FileNotFoundError("no SentencePiece model (Dream uses BPE tokenizer.json)")
