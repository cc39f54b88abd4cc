"""Numba cache handling: stale kernels dropped when a kernel source changes; warm-cache check."""
from __future__ import annotations

from engine import jit
from engine.generator import Generator


def test_drop_stale_cache_removes_only_engine_kernels(tmp_path):
    names = ["kernels.matvec-40.py311.nbi", "kernels.matvec-40.py311.1.nbc", "frame.run_frames-64.py311.nbi",
             "sampler.pick-90.py311.2.nbc", "weights.x-1.py311.nbi", "renderer._interpolate-119.py311.nbi",
             "generator.cpython-311.pyc"]
    for n in names:
        (tmp_path / n).write_bytes(b"x")
    assert jit.drop_stale_cache(tmp_path) is True
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["renderer._interpolate-119.py311.nbi", "generator.cpython-311.pyc", jit.STAMP_NAME])
    assert (tmp_path / jit.STAMP_NAME).read_text().strip() == jit.sources_hash()
    (tmp_path / "kernels.matvec-40.py311.nbi").write_bytes(b"x")  # built from the current sources
    assert jit.drop_stale_cache(tmp_path) is False
    assert (tmp_path / "kernels.matvec-40.py311.nbi").exists()
    (tmp_path / jit.STAMP_NAME).write_text("0" * 64)  # sources changed since
    assert jit.drop_stale_cache(tmp_path) is True
    assert not (tmp_path / "kernels.matvec-40.py311.nbi").exists()


def test_cache_is_warm_after_first_generator(tiny_np):
    messages = []
    Generator(tiny_np, log=messages.append).generate(2)
    assert jit.cache_is_warm()
    d = jit.cache_dir()
    assert d is not None and (d / jit.STAMP_NAME).read_text().strip() == jit.sources_hash()
    assert all("compil" in m for m in messages)  # nothing else is printed
