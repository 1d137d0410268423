#!/usr/bin/python3
"""Minimal reader/writer of Hugging Face safetensors checkpoints, pure Python + NumPy.

Independent reference for the C loader (tests/ref/, run with /usr/bin/python3 only).

Format followed (public spec: huggingface/safetensors README "Format" section, and the
sharding layout produced by transformers `save_pretrained` / huggingface_hub
`split_torch_state_dict_into_shards`):

  file  = u64 little-endian N | N bytes of UTF-8 JSON header | data section
  header = {"__metadata__": {str: str} (optional),
            "<tensor name>": {"dtype": "BF16"|"F16"|"F32"|..., "shape": [..],
                              "data_offsets": [begin, end]}, ...}
  data_offsets are byte offsets RELATIVE TO THE START OF THE DATA SECTION (i.e. to 8 + N),
  tensors are row-major (C order), little-endian.  The header is padded with ASCII spaces
  so that 8 + N is a multiple of 8 (what the Rust writer does).

  Sharded checkpoints: model-00001-of-0000K.safetensors ... plus
  model.safetensors.index.json = {"metadata": {"total_size": <sum of tensor bytes>},
                                  "weight_map": {"<tensor name>": "<shard file name>"}}
  Unsharded: a single model.safetensors and no index.

Conversions:
  BF16 -> float32: (uint16 as uint32) << 16  (exact).
  float -> BF16: round-to-nearest-even on the float32 bit pattern (what torch's
  .to(torch.bfloat16) does); NaN stays NaN.
  F16 <-> float: numpy float16 (IEEE binary16, round-to-nearest-even).

API:
  ck = Checkpoint(dir_or_file)      ck.names(), ck.info(name) -> (dtype, shape),
                                    ck.get(name, np.float64) -> ndarray (converted copy),
                                    ck.raw(name) -> uint8 view (memory-mapped)
  read_safetensors_file(path) -> dict name -> float32 array   (convenience)
  write_checkpoint(out_dir, config_dict, tensors, dtype="bf16", shard_bytes=0,
                   order=None, extra_files=None)
"""
import json
import os
import struct

import numpy as np

# dtype tag -> (numpy storage dtype, bytes per element)
_DT = {
    "BF16": (np.uint16, 2),
    "F16": (np.float16, 2),
    "F32": (np.float32, 4),
    "F64": (np.float64, 8),
    "I8": (np.int8, 1),
    "U8": (np.uint8, 1),
    "I16": (np.int16, 2),
    "I32": (np.int32, 4),
    "I64": (np.int64, 8),
    "BOOL": (np.bool_, 1),
}

_ALIASES = {"bf16": "BF16", "bfloat16": "BF16", "f16": "F16", "fp16": "F16", "float16": "F16",
            "f32": "F32", "fp32": "F32", "float32": "F32", "f64": "F64", "float64": "F64"}

TORCH_DTYPE_NAME = {"BF16": "bfloat16", "F16": "float16", "F32": "float32", "F64": "float64"}


def norm_dtype(d):
    """'bf16' / 'BF16' / 'bfloat16' -> 'BF16' etc."""
    if d in _DT:
        return d
    k = str(d).lower()
    if k in _ALIASES:
        return _ALIASES[k]
    raise ValueError("unsupported dtype %r" % (d,))


# ---------------------------------------------------------------- conversions
def bf16_bits_to_f32(u16):
    """uint16 array of bf16 bit patterns -> float32 array (exact)."""
    u16 = np.asarray(u16, dtype=np.uint16)
    return (u16.astype(np.uint32) << np.uint32(16)).view(np.float32)


def f32_to_bf16_bits(x):
    """float array -> uint16 bf16 bit patterns, round to nearest even (torch semantics)."""
    f = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    u = f.view(np.uint32).astype(np.uint64)
    lsb = (u >> np.uint64(16)) & np.uint64(1)
    r = ((u + np.uint64(0x7FFF) + lsb) >> np.uint64(16)).astype(np.uint32)
    nan = np.isnan(f)
    if nan.any():
        r = np.where(nan, (f.view(np.uint32) >> np.uint32(16)) | np.uint32(0x0040), r)
    return (r & np.uint32(0xFFFF)).astype(np.uint16)


def round_to_bf16(x):
    """Round float array to the nearest bf16 value, returned as float64."""
    return bf16_bits_to_f32(f32_to_bf16_bits(x)).astype(np.float64)


def encode(arr, dtype):
    """float array -> bytes in safetensors dtype `dtype`."""
    dtype = norm_dtype(dtype)
    a = np.asarray(arr)
    if dtype == "BF16":
        out = f32_to_bf16_bits(a)
    else:
        out = a.astype(_DT[dtype][0])
    return np.ascontiguousarray(out).astype(out.dtype.newbyteorder("<"), copy=False).tobytes()


# ---------------------------------------------------------------- reading
def read_header(path):
    """Return (header dict without __metadata__, metadata dict, data section start offset)."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError("%s: file too short" % path)
        (n,) = struct.unpack("<Q", head)
        size = os.path.getsize(path)
        if n > size - 8:
            raise ValueError("%s: header length %d exceeds file size" % (path, n))
        hdr = json.loads(f.read(n).decode("utf-8"))
    meta = hdr.pop("__metadata__", {}) or {}
    data_start = 8 + n
    data_len = size - data_start
    for name, t in hdr.items():
        dt = t["dtype"]
        if dt not in _DT:
            raise ValueError("%s: tensor %s has unsupported dtype %s" % (path, name, dt))
        b, e = t["data_offsets"]
        cnt = int(np.prod(t["shape"], dtype=np.int64)) if t["shape"] else 1
        if not (0 <= b <= e <= data_len) or e - b != cnt * _DT[dt][1]:
            raise ValueError("%s: tensor %s has bad data_offsets %r for shape %r dtype %s"
                             % (path, name, t["data_offsets"], t["shape"], dt))
    return hdr, meta, data_start


class Checkpoint:
    """A Hugging Face checkpoint directory (sharded or not) or a single .safetensors file."""

    def __init__(self, path):
        self.files = {}      # file name -> (full path, header, data_start, memmap or None)
        self.where = {}      # tensor name -> file name
        self.config = None
        if os.path.isdir(path):
            cfg = os.path.join(path, "config.json")
            if os.path.exists(cfg):
                with open(cfg) as f:
                    self.config = json.load(f)
            idx = os.path.join(path, "model.safetensors.index.json")
            single = os.path.join(path, "model.safetensors")
            if os.path.exists(idx):
                with open(idx) as f:
                    index = json.load(f)
                for tname, fname in index["weight_map"].items():
                    self.where[tname] = fname
                for fname in sorted(set(index["weight_map"].values())):
                    self._open(os.path.join(path, fname), fname)
                for tname, fname in self.where.items():
                    if tname not in self.files[fname][1]:
                        raise ValueError("index says %s is in %s but it is not" % (tname, fname))
            elif os.path.exists(single):
                self._open(single, "model.safetensors")
                for tname in self.files["model.safetensors"][1]:
                    self.where[tname] = "model.safetensors"
            else:
                raise FileNotFoundError("%s: no model.safetensors or model.safetensors.index.json" % path)
        else:
            fname = os.path.basename(path)
            self._open(path, fname)
            for tname in self.files[fname][1]:
                self.where[tname] = fname

    def _open(self, full, fname):
        hdr, meta, start = read_header(full)
        self.files[fname] = [full, hdr, start, None]

    def names(self):
        return list(self.where.keys())

    def __contains__(self, name):
        return name in self.where

    def info(self, name):
        fname = self.where[name]
        t = self.files[fname][1][name]
        return t["dtype"], tuple(t["shape"])

    def raw(self, name):
        """uint8 memory-mapped bytes of a tensor."""
        fname = self.where[name]
        ent = self.files[fname]
        if ent[3] is None:
            ent[3] = np.memmap(ent[0], dtype=np.uint8, mode="r")
        t = ent[1][name]
        b, e = t["data_offsets"]
        return ent[3][ent[2] + b: ent[2] + e]

    def get(self, name, dtype=np.float32):
        """Tensor converted to `dtype` (a new array)."""
        dt, shape = self.info(name)
        st, _ = _DT[dt]
        a = np.frombuffer(self.raw(name), dtype=np.dtype(st).newbyteorder("<"))
        if dt == "BF16":
            a = bf16_bits_to_f32(a)
        return a.astype(dtype).reshape(shape)


    def get_rows(self, name, rows, dtype=np.float32):
        """Rows of a 2-D (or higher) tensor along axis 0, converted to `dtype`, without
        converting the whole tensor (rows: int array or slice)."""
        dt, shape = self.info(name)
        st_, esz = _DT[dt]
        rowb = int(np.prod(shape[1:], dtype=np.int64)) * esz
        raw = np.asarray(self.raw(name)).reshape(shape[0], rowb)[rows]
        lead = raw.shape[:-1]
        a = np.ascontiguousarray(raw).view(np.dtype(st_).newbyteorder("<"))
        if dt == "BF16":
            a = bf16_bits_to_f32(a)
        return a.astype(dtype).reshape(lead + tuple(shape[1:]))


def read_safetensors_file(path, dtype=np.float32):
    ck = Checkpoint(path)
    return {n: ck.get(n, dtype) for n in ck.names()}


# ---------------------------------------------------------------- writing
def _write_file(path, items, dtype, metadata):
    """items: list of (name, array). Tensors are laid out in sorted name order."""
    dtype = norm_dtype(dtype)
    header = {"__metadata__": dict(metadata)}
    blobs = []
    off = 0
    for name, arr in sorted(items, key=lambda kv: kv[0]):
        data = encode(arr, dtype)
        header[name] = {"dtype": dtype, "shape": [int(s) for s in np.shape(arr)],
                        "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)
    return off


def plan_shards(items, dtype, shard_bytes):
    """Greedy split in the given order (huggingface_hub split_state_dict_into_shards rule):
    a tensor larger than shard_bytes gets a shard of its own; otherwise a new shard starts
    when adding the tensor would exceed shard_bytes."""
    esz = _DT[norm_dtype(dtype)][1]
    shards, cur, cur_size = [], [], 0
    for name, arr in items:
        sz = int(np.prod(np.shape(arr), dtype=np.int64)) * esz
        if sz > shard_bytes:
            shards.append([(name, arr)])
            continue
        if cur and cur_size + sz > shard_bytes:
            shards.append(cur)
            cur, cur_size = [], 0
        cur.append((name, arr))
        cur_size += sz
    if cur:
        shards.append(cur)
    return shards


def write_checkpoint(out_dir, config_dict, tensors, dtype="bf16", shard_bytes=0,
                     order=None, extra_files=None):
    """Write a Hugging Face checkpoint directory.

    tensors: dict name -> float array (or list of (name, array) pairs; order kept).
    dtype: 'bf16' | 'f16' | 'f32'.  shard_bytes: 0/None -> single model.safetensors,
    else sharded files model-0000i-of-0000K.safetensors + model.safetensors.index.json
    (if the plan yields a single shard, the unsharded layout is written, like HF does).
    config_dict is written as config.json (if not None); extra_files: dict name -> obj (json).
    Returns the list of written safetensors file names.
    """
    dtype = norm_dtype(dtype)
    os.makedirs(out_dir, exist_ok=True)
    items = list(tensors.items()) if isinstance(tensors, dict) else list(tensors)
    if order is not None:
        pos = {n: i for i, n in enumerate(order)}
        items.sort(key=lambda kv: pos.get(kv[0], len(pos)))
    meta = {"format": "pt"}
    # remove stale files from an earlier write into the same directory
    for fn in os.listdir(out_dir):
        if fn.endswith(".safetensors") or fn == "model.safetensors.index.json":
            os.remove(os.path.join(out_dir, fn))
    shards = plan_shards(items, dtype, shard_bytes) if shard_bytes else [items]
    written = []
    if len(shards) == 1:
        _write_file(os.path.join(out_dir, "model.safetensors"), shards[0], dtype, meta)
        written.append("model.safetensors")
    else:
        k = len(shards)
        weight_map, total = {}, 0
        for i, sh in enumerate(shards):
            fn = "model-%05d-of-%05d.safetensors" % (i + 1, k)
            total += _write_file(os.path.join(out_dir, fn), sh, dtype, meta)
            for name, _ in sh:
                weight_map[name] = fn
            written.append(fn)
        index = {"metadata": {"total_size": total},
                 "weight_map": dict(sorted(weight_map.items()))}
        with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
            json.dump(index, f, indent=2)
            f.write("\n")
    if config_dict is not None:
        with open(os.path.join(out_dir, "config.json"), "w") as f:
            json.dump(config_dict, f, indent=2)
            f.write("\n")
    for fn, obj in (extra_files or {}).items():
        with open(os.path.join(out_dir, fn), "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
    return written


if __name__ == "__main__":
    import sys
    if len(sys.argv) != 2:
        print("usage: safetensors_np.py CHECKPOINT_DIR_OR_FILE   (lists tensors)")
        sys.exit(2)
    ck = Checkpoint(sys.argv[1])
    for n in ck.names():
        dt, sh = ck.info(n)
        print("%-60s %-5s %s  %s" % (n, dt, list(sh), ck.where[n]))
