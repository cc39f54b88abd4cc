"""training.gpu (the one command: dump, train, export) on the CPU with small settings, and the
batch prefetcher (the same batches as in-process)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from engine.generator import Generator
from training.dataset import FrameStore, WindowSampler, load_index, write_synthetic
from training.gpu import gpu_run, main
from training.prefetch import Prefetcher

TINY = "training/configs/tiny.toml"


def test_prefetcher_makes_the_in_process_batches(tmp_path):
    write_synthetic(tmp_path, n_tunes=8, seed=2, min_frames=60, max_frames=200)
    s = WindowSampler(FrameStore(tmp_path), load_index(tmp_path), ("any",), 32, rotate=True, candidates=True)
    p = Prefetcher(s, 11, 0, 3, 5, 9, workers=2)
    try:
        for step in range(5, 9):
            a, b = p.get(step), s.sample(np.random.default_rng([11, 0, step]), 3)
            assert np.array_equal(a.frames, b.frames) and all(np.array_equal(x, y) for x, y in zip(a.cand, b.cand))
        with pytest.raises(ValueError, match="asked for step 3"):
            p.get(3)
    finally:
        p.close()
        p.close()


def test_one_command_dumps_trains_and_exports(hvsc, tmp_path):
    from sidlive.paths import REPO_ROOT
    fig = gpu_run(tmp_path / "out", 0.1, hvsc=hvsc, config=REPO_ROOT / TINY, limit=10, max_seconds=4.0,
                  flags=["--pointer", "true", "--val_permille", "400", "--val_windows", "2"], log=lambda m: None)
    assert fig["dumped_frames"] > 100 and fig["steps"] >= 1 and fig["device"] == "cpu"
    assert json.loads((tmp_path / "out" / "gpu_run.json").read_text())["frames_seen"] == fig["frames_seen"]
    g = Generator(tmp_path / "out" / "model.sidm", log=None)
    assert g.cfg.pointer and g.generate(20).shape == (20, 25)
    assert main([str(tmp_path / "x"), "--minutes", "0"]) == 2
