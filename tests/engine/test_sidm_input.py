"""Hostile .sidm files: config fields type- and range-checked, meta a JSON object, weights
finite and in range, and a SHA-256 digest (version 2) that catches any changed byte; a
version-1 file (no digest) still loads."""
from __future__ import annotations

import hashlib
import json
import struct

import numpy as np
import pytest

from engine import sidm
from engine.config import ModelConfig, param_shapes
from engine.sidm import SidmFormatError, load_sidm, write_sidm
from engine.weights import MAX_ABS_WEIGHT, load_model
from sidlive.commands import generate as gen_cli
from tests.conftest import TINY


def arrays_of(cfg: ModelConfig, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {k: rng.normal(0, 0.1, s).astype(np.float32) for k, s in param_shapes(cfg).items()}


def write(path, config: dict | None = None, meta=None, **arrays):
    """A tiny model with config fields, meta or tensors replaced (lengths and digest made right)."""
    cfg = ModelConfig(**TINY)
    a = arrays_of(cfg) | arrays
    with np.errstate(all="ignore"):
        write_sidm(path, cfg.to_dict() | (config or {}), a, {k for k, v in a.items() if v.ndim == 2},
                   {"source": "test"} if meta is None else meta)
    return path


@pytest.mark.parametrize("field, value", [
    ("n_heads_global", 0), ("n_heads_local", 0), ("n_heads_global", -4), ("n_heads_local", -4),
    ("norm_eps", "1e-5"), ("rope_theta", "10000"), ("norm_eps", -1.0), ("rope_theta", float("inf")),
    ("context_frames", 1.5), ("d_global", True), ("pointer", "yes"), ("composers", ["any", 5]),
    ("write_order", list(range(24)) + ["24"]), ("local_events", ["all"]), ("n_layers_local", 1 << 20),
])
def test_config_fields_are_checked(tmp_path, field, value):
    p = write(tmp_path / "c.sidm", {field: value})
    with pytest.raises(SidmFormatError, match=rf"c.sidm: field 'config.{field}(\[\d+\])?' in the JSON header is") as e:
        load_model(p)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("meta", [5, None, [1], "x"])
def test_meta_must_be_an_object(tmp_path, meta):
    p = write(tmp_path / "m.sidm")
    f = load_sidm(p)
    head = json.dumps({"format": "sidm", "config": f.config, "meta": meta}).encode()
    p2 = tmp_path / "m2.sidm"
    rebuild(p, p2, head)
    with pytest.raises(SidmFormatError, match=r"m2.sidm: field 'meta'.*JSON object"):
        load_model(p2)


def rebuild(src, dst, head: bytes) -> None:
    """src with its JSON header replaced by head (padding, lengths and digest redone)."""
    blob = src.read_bytes()
    magic, version, flags, size, json_len, n, digest = sidm.HEADER.unpack_from(blob, 0)
    start = sidm.HEADER.size
    tensors = blob[start + json_len + (-(start + json_len)) % 16:]
    body = head + b"\0" * ((-(start + len(head))) % 16) + tensors
    fixed = struct.pack("<4sHHQII", magic, version, flags, start + len(body), len(head), n)
    dst.write_bytes(fixed + hashlib.sha256(fixed + body).digest() + body)


def test_deeply_nested_header_is_an_error(tmp_path):
    p = write(tmp_path / "n.sidm")
    f = load_sidm(p)
    deep = b'{"format": "sidm", "config": ' + json.dumps(f.config).encode() + b', "meta": {"x": ' \
        + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    rebuild(p, tmp_path / "deep.sidm", deep)
    with pytest.raises(SidmFormatError, match=r"deep.sidm: JSON header"):
        load_model(tmp_path / "deep.sidm")


@pytest.mark.parametrize("name, value, fragment", [
    ("g0.wq", np.nan, "tensor 'g0.wq': scale of row 3"),
    ("g0.wq", np.inf, "tensor 'g0.wq': scale of row 3"),
    ("g0.wq", 3e38, "tensor 'g0.wq': scale of row 3"),
    ("g0.attn_norm", np.nan, "tensor 'g0.attn_norm': element 3"),
    ("copy_bonus", 3e38, "tensor 'copy_bonus': element 3"),
    ("ro_bias", -1e30, "tensor 'ro_bias': element 3"),
])
def test_weights_must_be_finite_and_in_range(tmp_path, name, value, fragment):
    cfg = ModelConfig(**TINY)
    a = arrays_of(cfg)[name].copy()
    a.reshape(a.shape[0], -1)[3, 0] = value
    p = write(tmp_path / "w.sidm", **{name: a})
    with pytest.raises(SidmFormatError, match=rf"w.sidm: {fragment}.*{MAX_ABS_WEIGHT:g}") as e:
        load_model(p)
    assert "\n" not in str(e.value)


def test_generate_refuses_a_huge_copy_bonus(tmp_path, capsys):
    p = write(tmp_path / "big.sidm", copy_bonus=np.full(25, 3e38, np.float32))
    assert gen_cli.main(["--model", str(p), "--frames", "10", "-o", str(tmp_path / "o.regs")]) == 1
    err = capsys.readouterr().err.strip()
    assert "big.sidm: tensor 'copy_bonus'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o.regs").exists()


def test_every_changed_byte_is_caught_by_the_digest(tmp_path):
    p = write(tmp_path / "d.sidm")
    blob = p.read_bytes()
    assert struct.unpack_from("<H", blob, 4)[0] == 2
    rng = np.random.default_rng(3)
    for i, off in enumerate(rng.integers(sidm.HEADER.size, len(blob), 20)):
        bad = bytearray(blob)
        bad[off] ^= 1 << int(rng.integers(8))
        q = tmp_path / f"flip{i}.sidm"
        q.write_bytes(bytes(bad))
        with pytest.raises(SidmFormatError, match=rf"flip{i}.sidm: field 'digest' at offset 24"):
            load_sidm(q)


def test_version_1_files_still_load(tmp_path):
    p = write(tmp_path / "v2.sidm")
    blob = p.read_bytes()
    magic, _, flags, size, json_len, n, _ = sidm.HEADER.unpack_from(blob, 0)
    # the digest field is 32 bytes, a multiple of the 16-byte alignment: the rest moves as is
    v1 = struct.pack("<4sHHQII", magic, 1, flags, size - 32, json_len, n) + blob[sidm.HEADER.size:]
    (tmp_path / "v1.sidm").write_bytes(v1)
    m1, m2 = load_model(tmp_path / "v1.sidm"), load_model(p)
    assert np.array_equal(m1.W8, m2.W8) and np.array_equal(m1.WF, m2.WF) and m1.cfg == m2.cfg
    bad = bytearray(v1)
    struct.pack_into("<H", bad, 4, 3)
    (tmp_path / "v3.sidm").write_bytes(bytes(bad))
    with pytest.raises(SidmFormatError, match=r"v3.sidm: field 'version' at offset 4 is 3, this build reads 1 and 2"):
        load_sidm(tmp_path / "v3.sidm")
