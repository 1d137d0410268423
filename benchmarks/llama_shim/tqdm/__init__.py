"""Stub progress bar for gguf-py's writer (Debian's python3-tqdm need not be installed for the benchmark)."""


class tqdm:
    def __init__(self, *a, **kw):
        self.n = 0

    def update(self, n=1):
        self.n += n

    def set_description(self, *a, **kw):
        pass

    def reset(self, *a, **kw):
        self.n = 0

    def close(self):
        pass
