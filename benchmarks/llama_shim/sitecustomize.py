# For llama.cpp's converter on Debian's torch 1.13: it names torch.uint16/32/64 (torch >= 2.3) in a
# (and float8_*, torch >= 2.1) dtype table only; alias them so the table builds (the Dream checkpoint holds no unsigned tensors).
try:
    import torch
    for _n, _s in (("uint16", "int16"), ("uint32", "int32"), ("uint64", "int64"), ("float8_e4m3fn", "uint8"),
                   ("float8_e5m2", "uint8")):
        if not hasattr(torch, _n):
            setattr(torch, _n, getattr(torch, _s))
except ImportError:
    pass
