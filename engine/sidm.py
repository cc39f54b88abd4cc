"""The .sidm model file: writer and reader, numpy only (no torch), so the engine can import it.

Layout (little-endian; see docs/sidm-format.md):
  header   "<4sHHQII32s": magic b"SIDM", u16 version (2), u16 flags (0), u64 file_size,
           u32 json_len, u32 n_tensors, 32-byte SHA-256 digest of every other byte of the
           file (bytes 0-23 and 56 to the end)                               (56 bytes)
  json     json_len bytes of UTF-8 JSON {"format", "config", "meta"}; zero-padded to 16
  tensors  n_tensors records, each:
             "<HBB" u16 name_len, u8 dtype, u8 ndim; name (UTF-8); ndim x u32 dims;
             zero pad to 16;
             dtype 0 (float32): rows*cols float32; dtype 1 (int8, per-row scale):
             rows float32 scales, pad to 16, rows*cols int8;  then pad to 16.
  rows = dims[0], cols = product of the other dims (1 for a vector).
Dequantized weight: w[i, j] = scales[i] * q[i, j]. An all-zero row has scale 1.
Version 1 (still read): the same without the digest, a 24-byte header.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import struct
from pathlib import Path

import numpy as np

from engine.config import ConfigError, ModelConfig, param_shapes
from sidlive.frames import json_depth

MAGIC = b"SIDM"
VERSION = 2
READS = (1, 2)                         # versions this build reads
ALIGN = 16
HEADER_V1 = struct.Struct("<4sHHQII")  # magic, version, flags, file_size, json_len, n_tensors
HEADER = struct.Struct("<4sHHQII32s")  # the same, then the SHA-256 digest
DIGEST_OFFSET = HEADER_V1.size         # 24
RECORD = struct.Struct("<HBB")      # name_len, dtype, ndim
DT_F32, DT_I8_ROWS = 0, 1
DTYPE_NAMES = {DT_F32: "float32", DT_I8_ROWS: "int8-row"}
MAX_META_DEPTH = 8                     # JSON nesting in meta (the baseline and mixture tables nest 3)


class SidmFormatError(ValueError):
    """A .sidm file is malformed; the message names the file, the field and what was expected."""


@dataclasses.dataclass
class SidmTensor:
    """One tensor as stored in a .sidm file: dtype code, shape, data and (int8 only) per-row scales."""
    dtype: int
    shape: tuple
    data: np.ndarray                 # float32 or int8, shape (rows, cols)
    scales: np.ndarray | None = None  # float32 (rows,), int8 only

    def dequantize(self) -> np.ndarray:
        """The tensor as float32 in its own shape (a copy; int8 rows times their scales)."""
        if self.dtype == DT_F32:
            return self.data.reshape(self.shape).copy()
        return (self.data.astype(np.float32) * self.scales[:, None]).reshape(self.shape)


@dataclasses.dataclass
class SidmFile:
    """A read .sidm file: its path, config and meta JSON, and tensors by name."""
    path: str
    config: dict
    meta: dict
    tensors: dict[str, SidmTensor]

    def dequantized(self) -> dict[str, np.ndarray]:
        """Every tensor dequantized to float32, by name."""
        return {k: t.dequantize() for k, t in self.tensors.items()}


def quantize_rows(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Symmetric int8 per row: scale = max|row| / 127 (1 for an all-zero row).

    Returns (q int8 (rows, cols), scales float32 (rows,), largest |dequantized - w|).
    """
    w = np.asarray(w, dtype=np.float32)
    w2 = w.reshape(w.shape[0], -1)
    amax = np.abs(w2).max(axis=1)
    scales = (amax / np.float32(127.0)).astype(np.float32)
    scales[amax == 0] = 1.0
    q = np.clip(np.rint(w2 / scales[:, None]), -127, 127).astype(np.int8)
    err = float(np.abs(q.astype(np.float32) * scales[:, None] - w2).max()) if w2.size else 0.0
    return q, scales, err


def _pad(n: int) -> int:
    return (-n) % ALIGN


def write_sidm(path: str | Path, config: dict, arrays: dict[str, np.ndarray], quantize: set[str],
               meta: dict | None = None) -> list[dict]:
    """Write arrays (float32) to `path`; names in `quantize` become int8 per-row.

    Returns one dict per tensor: name, shape, dtype, max_abs_err (0 for float32).
    """
    head = json.dumps({"format": "sidm", "config": config, "meta": meta or {}},
                      ensure_ascii=False, sort_keys=True).encode("utf-8")
    body = bytearray()
    body += head + b"\0" * _pad(HEADER.size + len(head))
    report = []
    for name, arr in arrays.items():
        arr = np.asarray(arr, dtype=np.float32)
        if arr.ndim < 1 or arr.ndim > 4:
            raise ValueError(f"tensor {name!r}: ndim {arr.ndim} not in 1..4")
        dt = DT_I8_ROWS if name in quantize else DT_F32
        nb = name.encode("utf-8")
        rec = RECORD.pack(len(nb), dt, arr.ndim) + nb + struct.pack(f"<{arr.ndim}I", *arr.shape)
        body += rec + b"\0" * _pad(HEADER.size + len(body) + len(rec))
        if dt == DT_I8_ROWS:
            q, scales, err = quantize_rows(arr)
            body += scales.astype("<f4").tobytes()
            body += b"\0" * _pad(HEADER.size + len(body))
            body += q.tobytes()
        else:
            err = 0.0
            body += arr.astype("<f4").tobytes()
        body += b"\0" * _pad(HEADER.size + len(body))
        report.append({"name": name, "shape": tuple(arr.shape), "dtype": DTYPE_NAMES[dt], "max_abs_err": err})
    total = HEADER.size + len(body)
    fixed = HEADER_V1.pack(MAGIC, VERSION, 0, total, len(head), len(arrays))
    header = fixed + digest(fixed, bytes(body))
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(header + bytes(body))
    tmp.replace(path)
    return report


def digest(fixed: bytes, body: bytes) -> bytes:
    """The version-2 digest: SHA-256 of the header's first 24 bytes, then everything after the header."""
    return hashlib.sha256(fixed + body).digest()


def config_of(path: str | Path, config) -> ModelConfig:
    """The ModelConfig of a .sidm's JSON config; SidmFormatError naming the file and the field."""
    try:
        return ModelConfig.from_dict(config)
    except ConfigError as e:
        field = f"config.{e.field}" if e.field else "config"
        raise SidmFormatError(f"{path}: field '{field}' in the JSON header {e.problem}") from None


def load_sidm(path: str | Path, expected_shapes: dict[str, tuple] | None = None) -> SidmFile:
    """Read and check a .sidm file. `expected_shapes` defaults to `config.param_shapes` of its config."""
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as e:
        raise SidmFormatError(f"{path}: cannot read ({e.strerror})") from None
    if len(blob) < HEADER_V1.size:
        raise SidmFormatError(f"{path}: size {len(blob)} bytes is shorter than the {HEADER_V1.size}-byte header")
    magic, version, flags, file_size, json_len, n_tensors = HEADER_V1.unpack_from(blob, 0)
    if magic != MAGIC:
        raise SidmFormatError(f"{path}: field 'magic' at offset 0 is {magic!r}, expected {MAGIC!r} (not a .sidm file)")
    if version not in READS:
        raise SidmFormatError(f"{path}: field 'version' at offset 4 is {version}, this build reads 1 and 2")
    off = HEADER.size if version >= 2 else HEADER_V1.size
    if len(blob) < off:
        raise SidmFormatError(f"{path}: size {len(blob)} bytes is shorter than the {off}-byte version-{version} header")
    if flags != 0:
        raise SidmFormatError(f"{path}: field 'flags' at offset 6 is {flags}, expected 0")
    if file_size != len(blob):
        raise SidmFormatError(f"{path}: field 'file_size' at offset 8 says {file_size} bytes, "
                              f"the file has {len(blob)} (truncated or extended)")
    if version >= 2:
        want, got = blob[DIGEST_OFFSET:off], digest(blob[:DIGEST_OFFSET], blob[off:])
        if got != want:
            raise SidmFormatError(f"{path}: field 'digest' at offset {DIGEST_OFFSET} is {want.hex()[:16]}..., "
                                  f"the file's SHA-256 is {got.hex()[:16]}... (changed or damaged since export)")
    if off + json_len > len(blob):
        raise SidmFormatError(f"{path}: field 'json_len' at offset 16 is {json_len}, past the end of the file")
    try:
        head = json.loads(blob[off:off + json_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SidmFormatError(f"{path}: JSON header at offset {off}: not UTF-8 JSON ({e})") from None
    except RecursionError:
        raise SidmFormatError(f"{path}: JSON header at offset {off}: arrays and objects nest too deeply") from None
    if not isinstance(head, dict) or not isinstance(head.get("config"), dict):
        raise SidmFormatError(f"{path}: JSON header at offset {off}: not a JSON object with a 'config' object")
    config, meta = head["config"], head.get("meta", {})
    if not isinstance(meta, dict):
        raise SidmFormatError(f"{path}: field 'meta' in the JSON header is a JSON {type(meta).__name__}, "
                              f"expected a JSON object")
    if json_depth(meta, MAX_META_DEPTH) > MAX_META_DEPTH:
        raise SidmFormatError(f"{path}: field 'meta' in the JSON header nests more than {MAX_META_DEPTH} levels")
    off += json_len + _pad(off + json_len)
    tensors: dict[str, SidmTensor] = {}
    for i in range(n_tensors):
        off, name, t = _read_record(path, blob, off, i)
        tensors[name] = t
    if off != len(blob):
        raise SidmFormatError(f"{path}: {len(blob) - off} unexpected bytes after tensor {n_tensors - 1} at offset {off}")
    if expected_shapes is None:
        expected_shapes = param_shapes(config_of(path, config))
    _check_shapes(path, tensors, expected_shapes)
    return SidmFile(str(path), config, meta, tensors)


def _read_record(path: Path, blob: bytes, off: int, i: int) -> tuple[int, str, SidmTensor]:
    def need(n: int, what: str) -> None:
        if off + n > len(blob):
            raise SidmFormatError(f"{path}: tensor {i}: {what} at offset {off} runs past the end of the file")

    need(RECORD.size, "record header")
    name_len, dt, ndim = RECORD.unpack_from(blob, off)
    if dt not in DTYPE_NAMES:
        raise SidmFormatError(f"{path}: tensor {i}: field 'dtype' at offset {off + 2} is {dt}, expected 0 or 1")
    if not 1 <= ndim <= 4:
        raise SidmFormatError(f"{path}: tensor {i}: field 'ndim' at offset {off + 3} is {ndim}, expected 1..4")
    off += RECORD.size
    need(name_len + 4 * ndim, "name and dims")
    name = blob[off:off + name_len].decode("utf-8", errors="replace")
    off += name_len
    shape = struct.unpack_from(f"<{ndim}I", blob, off)
    off += 4 * ndim
    off += _pad(off)
    rows = shape[0]
    cols = math.prod(shape[1:])
    if dt == DT_I8_ROWS:
        need(4 * rows, f"scales of {name!r}")
        scales = np.frombuffer(blob, "<f4", rows, off).astype(np.float32)
        off += 4 * rows
        off += _pad(off)
        need(rows * cols, f"int8 data of {name!r}")
        data = np.frombuffer(blob, np.int8, rows * cols, off).reshape(rows, cols).copy()
        off += rows * cols
    else:
        scales = None
        need(4 * rows * cols, f"float32 data of {name!r}")
        data = np.frombuffer(blob, "<f4", rows * cols, off).astype(np.float32).reshape(rows, cols)
        off += 4 * rows * cols
    off += _pad(off)
    return off, name, SidmTensor(dt, tuple(shape), data, scales)


def _check_shapes(path: Path, tensors: dict[str, SidmTensor], expected: dict[str, tuple]) -> None:
    missing = [k for k in expected if k not in tensors]
    extra = [k for k in tensors if k not in expected]
    if missing or extra:
        raise SidmFormatError(f"{path}: tensors do not match the config: missing {missing}, unexpected {extra}")
    for k, shape in expected.items():
        if tuple(tensors[k].shape) != tuple(shape):
            raise SidmFormatError(f"{path}: tensor {k!r} has shape {tensors[k].shape}, the config needs {tuple(shape)}")
