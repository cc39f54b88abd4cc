"""Loading .sidm files: the engine's layout, and bad files refused naming the file and field."""
from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.config import ModelConfig, param_shapes
from engine.sidm import SidmFormatError, load_sidm, write_sidm
from engine.weights import E_IN_EMB, E_RO_BIAS, load_model, slot
from tests.conftest import TINY

REPO = Path(__file__).resolve().parents[2]


def test_layout_dequantizes_like_the_reader(tiny_np):
    m = load_model(tiny_np)
    f = load_sidm(tiny_np)
    for name, t in f.tensors.items():
        e = slot(name, m.cfg)
        off, rows, cols, soff = m.lay[e]
        want = t.dequantize().reshape(rows, -1)
        if soff >= 0:
            got = m.W8[off:off + rows * cols].reshape(rows, cols).astype(np.float32) * m.WF[soff:soff + rows, None]
        else:
            got = m.WF[off:off + rows].reshape(rows, 1)
        np.testing.assert_array_equal(got, want, err_msg=name)
    assert m.lay[E_IN_EMB, 1] == 25 * 256 and m.lay[E_RO_BIAS, 3] == -1


def _arrays(cfg):
    rng = np.random.default_rng(0)
    return {k: rng.normal(0, 0.1, s).astype(np.float32) for k, s in param_shapes(cfg).items()}


def test_bad_files_are_refused_naming_file_and_field(tmp_path, tiny_np):
    blob = tiny_np.read_bytes()
    (tmp_path / "cut.sidm").write_bytes(blob[:len(blob) // 2])
    with pytest.raises(SidmFormatError, match=r"cut.sidm: field 'file_size'"):
        load_model(tmp_path / "cut.sidm")
    (tmp_path / "magic.sidm").write_bytes(b"RIFF" + blob[4:])
    with pytest.raises(SidmFormatError, match=r"magic.sidm: field 'magic' at offset 0"):
        load_model(tmp_path / "magic.sidm")
    bad = bytearray(blob)
    struct.pack_into("<H", bad, 4, 3)
    (tmp_path / "ver.sidm").write_bytes(bytes(bad))
    with pytest.raises(SidmFormatError, match=r"ver.sidm: field 'version' at offset 4 is 3, this build reads 1 and 2"):
        load_model(tmp_path / "ver.sidm")
    with pytest.raises(SidmFormatError, match=r"nothere.sidm: no such model file"):
        load_model(tmp_path / "nothere.sidm")
    # config and tensor sizes that disagree
    cfg = ModelConfig(**TINY)
    arrays = _arrays(cfg)
    conf = cfg.to_dict() | {"d_local": 32}
    write_sidm(tmp_path / "sizes.sidm", conf, arrays, {k for k, a in arrays.items() if a.ndim == 2})
    with pytest.raises(SidmFormatError, match=r"sizes.sidm: tensor .* has shape .* the config needs"):
        load_model(tmp_path / "sizes.sidm")
    write_sidm(tmp_path / "conf.sidm", cfg.to_dict() | {"n_heads_local": 3}, arrays, set())
    with pytest.raises(SidmFormatError, match=r"conf.sidm: field 'config.n_heads_local'.*n_heads_local=3"):
        load_model(tmp_path / "conf.sidm")


def test_engine_side_checks(tmp_path):
    cfg = ModelConfig(**TINY)
    arrays = _arrays(cfg)
    q = {k for k, a in arrays.items() if a.ndim == 2}
    write_sidm(tmp_path / "f32.sidm", cfg.to_dict(), arrays, q - {"g0.wq"})
    with pytest.raises(SidmFormatError, match=r"f32.sidm: tensor 'g0.wq': field 'dtype' is float32.*int8-row"):
        load_model(tmp_path / "f32.sidm")
    write_sidm(tmp_path / "i8vec.sidm", cfg.to_dict(), arrays, q | {"copy_bonus"})
    with pytest.raises(SidmFormatError, match=r"tensor 'copy_bonus': field 'dtype' is int8-row.*float32"):
        load_model(tmp_path / "i8vec.sidm")
    a2 = dict(arrays, ro_bias=arrays["ro_bias"].copy())
    a2["ro_bias"][17] = np.nan
    write_sidm(tmp_path / "nan.sidm", cfg.to_dict(), a2, q)
    with pytest.raises(SidmFormatError, match=r"nan.sidm: tensor 'ro_bias': element 17 is nan"):
        load_model(tmp_path / "nan.sidm")
    with np.errstate(all="ignore"):  # the writer happily quantizes inf; the engine refuses it
        write_sidm(tmp_path / "inf.sidm", cfg.to_dict(), dict(arrays, g_to_local=np.full((16, 32), np.inf, np.float32)), q)
    with pytest.raises(SidmFormatError, match=r"inf.sidm: tensor 'g_to_local': scale of row 0 is"):
        load_model(tmp_path / "inf.sidm")
    write_sidm(tmp_path / "eps.sidm", cfg.to_dict() | {"norm_eps": 0.0}, arrays, q)
    with pytest.raises(SidmFormatError, match=r"eps.sidm: field 'config.norm_eps' in the JSON header is 0.0"):
        load_model(tmp_path / "eps.sidm")


def test_engine_does_not_import_torch(tiny_np):
    code = ("import sys; from engine.generator import Generator; g = Generator(sys.argv[1], log=None); "
            "g.generate(3); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(tiny_np)], cwd=REPO, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
    assert load_model(tiny_np).meta == {"source": "random"}
