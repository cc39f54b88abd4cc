"""training.int8cost (EngineScorer, int8_cost) and sidlive.measure.enginebench (functional, no timing asserts)."""
from __future__ import annotations

import numpy as np
import pytest

from engine.config import ModelConfig
from engine.weights import load_model
from sidlive.frames import Frames, save
from sidlive.measure.enginebench import random_model, time_engine
from tests.conftest import walk
from training.scorers import EngineScorer


def test_engine_scorer_matches_reference_incremental_logprobs(tiny):
    pytest.importorskip("torch")
    from training.sample import incremental_logprobs
    path, model = tiny
    regs = walk(30, seed=7)
    got = EngineScorer(path, log=None).logprobs(regs, "Martin Galway")
    want = incremental_logprobs(model, np.concatenate([np.zeros((1, 25), np.uint8), regs]), composer=2)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_int8_cost_compares_float_and_int8(tmp_path):
    torch = pytest.importorskip("torch")
    from tests.conftest import TINY
    from training.int8cost import int8_cost
    from training.model import SidModel
    torch.manual_seed(3)
    model = SidModel(ModelConfig(**TINY))
    ckpt = tmp_path / "m.pt"
    torch.save({"format": "sidlive-ckpt", "model_config": model.cfg.to_dict(), "model": model.state_dict(),
                "step": 1}, ckpt)
    f = tmp_path / "v.regs"
    save(Frames(regs=walk(14, seed=8)), f)  # shorter than the context: all scorers see the same frames
    res = int8_cost(ckpt, [f], log=None)
    b = res["bits_per_frame"]
    assert res["frames"] == 14 and set(b) == {"float", "int8", "engine"}
    assert b["float"] != b["int8"] and abs(res["int8_cost_bits_per_frame"]) < 0.05 * b["float"]
    assert abs(b["engine"] - b["int8"]) < 1e-3 * b["int8"]


def test_random_model_and_engine_figures(tmp_path):
    cfg = ModelConfig(context_frames=32, d_global=32, n_layers_global=1, n_heads_global=2, mlp_mult_global=2,
                      d_local=16, n_layers_local=1, n_heads_local=2, mlp_mult_local=2, d_readout=16)
    p = random_model(tmp_path / "r.sidm", cfg)
    assert load_model(p).cfg == cfg
    fig = time_engine(p, frames=30)
    assert fig["frames"] == 30 and fig["context_frames"] == 32
    assert fig["frames_per_s"] > 0 and fig["ms_per_frame_p99"] >= fig["ms_per_frame_p50"] > 0
    assert 0 <= fig["events_per_frame"] <= 25


def test_engine_benchmark_registers_with_sidlive_bench():
    import sidlive.measure.enginebench  # noqa: F401  (registers on import)
    from sidlive.measure.bench import BENCHMARKS
    assert "engine" in BENCHMARKS
