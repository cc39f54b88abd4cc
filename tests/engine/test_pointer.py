"""The engine runs a pointer model (engine/pointer.py) as the PyTorch model trains it and as
the reference sampler (training/sample.py) samples it: logits, frames, rollback, repetition."""
from __future__ import annotations

import math

import numpy as np
import pytest

from engine.candidates import tune_candidates, tune_matches
from engine.generator import Generator
from tests.conftest import TINY, patterned

torch = pytest.importorskip("torch")
from engine.config import ModelConfig  # noqa: E402
from training.export import export_model, model_from_sidm  # noqa: E402
from training.model import SidModel  # noqa: E402
from training.pointer import Cands  # noqa: E402
from tests.engine.test_parity import reference_logits  # noqa: E402
from training.sample import generate  # noqa: E402


@pytest.fixture(scope="module")
def ptr_model(tmp_path_factory):
    """(path of a tiny pointer .sidm with every pointer path in use, the PyTorch model on its dequantized weights)."""
    torch.manual_seed(21)
    m = SidModel(ModelConfig(**(TINY | {"pointer": True})))
    with torch.no_grad():
        m.cand_scale.normal_(0, 0.4)
        m.hit_emb.normal_(0, 0.4)
        m.gate_w.normal_(0, 0.8)
        m.len_emb.weight.normal_(0, 0.4)
    path = tmp_path_factory.mktemp("ptr") / "ptr.sidm"
    export_model(m, path, {"source": "pointer test"}, log=None)
    return path, model_from_sidm(path)


def test_engine_logits_match_the_reference_and_the_training_forward(ptr_model):
    path, model = ptr_model
    frames = patterned(60, seed=8)          # repeats: every candidate source fires
    ref = reference_logits(model, frames, composer=1)
    g = Generator(path, log=None)
    g.set_sampling(composer=1)
    g.prime(frames[:1])
    lp, logits = g.teacher_logprobs(frames[1:], want_logits=True)
    assert np.abs(logits - ref).max() < 2e-3
    np.testing.assert_allclose(np.exp(logits).sum(-1), 1.0, atol=1e-9)   # every step normalized
    vals, valid, bucket = tune_candidates(frames)
    _, gb = tune_matches(frames)
    with torch.no_grad():
        lp2 = model(torch.as_tensor(frames.astype(np.int64))[None], torch.tensor([1]),
                    Cands.from_numpy(vals[None], valid[None], bucket[None], gb[None, :-1]))[0].numpy()
    w = model.cfg.context_frames - 1        # the training forward attends to everything: compare inside the window
    assert np.abs(lp[:w] / math.log(2) - lp2[:w]).max() < 2e-3
    assert valid[10:].any(-1).any(-1).all()   # the test exercises the candidates


@pytest.mark.parametrize("kw", [dict(temperature=0.0), dict(temperature=1.0, seed=5),
                                dict(temperature=0.9, top_k=20, top_p=0.9, seed=7, repetition=0.0),
                                dict(temperature=1.0, seed=9, repetition=2.5)])
def test_frames_equal_the_reference_sampler(ptr_model, kw):
    path, model = ptr_model
    prompt = patterned(30, seed=4)
    ref = generate(model, prompt, 60, composer="Rob Hubbard", **kw)
    g = Generator(path, composer="Rob Hubbard", log=None, **kw)
    g.prime(prompt)
    got = g.generate(60)
    np.testing.assert_array_equal(got, ref)


def test_rollback_restores_the_match_state(ptr_model):
    path, _ = ptr_model
    g = Generator(path, temperature=1.0, seed=3, log=None)
    g.prime(patterned(40, seed=1))
    g.generate(30)
    first = g.generate(40)
    g.rollback(40)
    again = g.generate(40)
    np.testing.assert_array_equal(again, first)
    assert g.min_length >= 1


def test_repetition_zero_turns_the_match_sources_off(ptr_model):
    path, _ = ptr_model
    frames = patterned(80, seed=6)
    bits = {}
    for rep in (0.0, 1.0):
        g = Generator(path, repetition=rep, log=None)
        g.prime(frames[:1])
        bits[rep] = -g.teacher_logprobs(frames[1:]).sum()
    assert bits[0.0] != bits[1.0]
    with pytest.raises(ValueError, match="repetition must be in 0..4"):
        Generator(path, repetition=9.0, log=None)


def test_the_pytorch_baseline_runs_a_pointer_model_greedy_like_the_reference(ptr_model):
    from training.torch_ref import TorchGenerator
    path, model = ptr_model
    prompt = patterned(20, seed=11)
    g = TorchGenerator(model, temperature=0.0, composer=0)
    g.prime(prompt)
    got = g.generate(20)
    ref = generate(model, prompt, 20, temperature=0.0)
    assert (got == ref).mean() > 0.95    # float32 torch ops vs the reference's float64 order: near-identical
