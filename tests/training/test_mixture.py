"""training/mixture.py: an exact distribution, fitting recovers known weights, never worse
than the model on its training data, scorer plumbing, weight files."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sidlive.frames import NUM_REGS, Frames, save
from tests.conftest import patterned
from training.baseline import ChangeModel
from training.mixture import (NUM_MIX, MixInputs, MixtureScorer, MixtureWeights, fit_mixture, mixture_inputs,
                              mixture_logprobs)
from training.score import score_files


def random_weights(seed: int) -> MixtureWeights:
    rng = np.random.default_rng(seed)
    return MixtureWeights(rng.normal(0, 1, NUM_REGS), rng.normal(0, 2, (NUM_REGS, NUM_MIX, 7)))


def test_mixture_sums_to_one_over_all_256_values():
    regs = patterned(80, seed=1)
    p_model = np.random.default_rng(2).dirichlet(np.full(256, 0.3), size=(80, NUM_REGS))  # (80, 25, 256)
    inputs = mixture_inputs(regs)
    assert inputs.valid[:, -1].all() and (inputs.vals[1:, -1] == regs[:-1]).all()  # PREV
    w = random_weights(3)
    total = np.zeros((80, NUM_REGS))
    for y in range(256):
        actual = np.full((80, NUM_REGS), y, np.uint8)
        total += np.exp2(mixture_logprobs(w, np.log2(p_model[..., y]), inputs, actual))
    np.testing.assert_allclose(total, 1.0, atol=1e-12)


def synthetic(n: int, w: MixtureWeights, seed: int):
    """Data drawn from the mixture itself: random valid sources, buckets 1 and 4 for matches,
    random candidate values, a fixed model distribution per register."""
    rng = np.random.default_rng(seed)
    valid = (rng.random((n, NUM_MIX, NUM_REGS)) < 0.6).astype(np.uint8)
    valid[:, -1] = 1
    bucket = np.where(rng.random((n, NUM_MIX, NUM_REGS)) < 0.5, 1, 4).astype(np.uint8)
    bucket[:, 4:] = 0
    bucket *= valid
    vals = rng.integers(0, 256, (n, NUM_MIX, NUM_REGS)).astype(np.uint8)
    p_model = rng.dirichlet(np.full(256, 0.5), size=NUM_REGS)  # (25, 256)
    r = np.arange(NUM_REGS)
    wts = np.where(valid == 1, np.exp(w.log_source[r[None, None, :], np.arange(NUM_MIX)[None, :, None], bucket]), 0)
    comp = np.concatenate([np.broadcast_to(np.exp(w.log_model), (n, 1, NUM_REGS)), wts], axis=1)  # (n, 10, 25)
    cum = np.cumsum(comp / comp.sum(1, keepdims=True), axis=1)
    pick = (rng.random((n, 1, NUM_REGS)) > cum).sum(1)  # (n, 25): 0 = model, k+1 = source k
    cdf = np.cumsum(p_model, axis=1)
    from_model = np.stack([np.searchsorted(cdf[j], rng.random(n) * cdf[j, -1]) for j in r], 1).clip(0, 255)
    src = np.take_along_axis(vals, np.maximum(pick - 1, 0)[:, None, :], 1)[:, 0]
    actual = np.where(pick == 0, from_model, src).astype(np.uint8)
    return np.log2(p_model[r[None, :], actual]), MixInputs(vals, valid, bucket), actual


def test_fitting_recovers_known_weights():
    rng = np.random.default_rng(5)
    true = MixtureWeights(np.zeros(NUM_REGS), rng.normal(0, 1.0, (NUM_REGS, NUM_MIX, 7)))
    lp, inputs, actual = synthetic(12_000, true, seed=6)
    fit = fit_mixture(lp, inputs, actual, steps=400, lr=0.1, prior=0.1)
    cells = [(k, b) for k in range(4) for b in (1, 4)] + [(k, 0) for k in range(4, NUM_MIX)]
    got = np.array([fit.log_source[:, k, b] - fit.log_model for k, b in cells])  # gauge-free ratios
    want = np.array([true.log_source[:, k, b] - true.log_model for k, b in cells])
    assert np.abs(got - want).mean() < 0.1 and np.abs(got - want).max() < 0.5
    bits = -mixture_logprobs(fit, lp, inputs, actual).sum() / len(actual)
    assert bits <= -mixture_logprobs(true, lp, inputs, actual).sum() / len(actual) + 0.01


def test_never_worse_than_the_model_on_its_training_data(tmp_path):
    tunes = [patterned(1500, seed=s) for s in range(3)]
    base = ChangeModel.fit(tunes)
    lp = np.concatenate([base.logprobs(t) for t in tunes])
    inputs = MixInputs.concat([mixture_inputs(t) for t in tunes])
    actual = np.concatenate(tunes)
    w = fit_mixture(lp, inputs, actual, steps=200)
    model_bits = -lp.sum() / len(lp)
    mix_bits = -mixture_logprobs(w, lp, inputs, actual).sum() / len(lp)
    assert mix_bits < model_bits
    path = tmp_path / "t.regs"
    save(Frames(regs=tunes[0]), path)
    rep = score_files({"base": base, "mix": MixtureScorer(base, w)}, [path])
    assert rep["mean"]["bits_per_frame"]["mix"] < rep["mean"]["bits_per_frame"]["base"]
    assert MixtureScorer(base, w).composer_known("anyone")


def test_weights_round_trip_and_errors(tmp_path):
    w = random_weights(7)
    w.save(tmp_path / "w.npz")
    back = MixtureWeights.load(tmp_path / "w.npz")
    again = MixtureWeights.from_dict(json.loads(json.dumps(w.to_dict())))
    for x in (back, again):
        np.testing.assert_array_equal(x.log_source, w.log_source)
        np.testing.assert_array_equal(x.log_model, w.log_model)
    with pytest.raises(ValueError, match=r"expected \(25,\), \(25, 9, 7\)"):
        MixtureWeights(np.zeros(25), np.zeros((25, 8, 7)))
    with pytest.raises(ValueError, match="differ from this build"):
        MixtureWeights.from_dict(w.to_dict() | {"sources": ["frame"]})
    with pytest.raises(ValueError, match="not a mixture-weights .npz"):
        MixtureWeights.load(tmp_path / "missing.npz")
    inputs = mixture_inputs(patterned(10))
    with pytest.raises(ValueError, match=r"must have shape \(10, 25\)"):
        mixture_logprobs(w, np.zeros((9, 25)), inputs, np.zeros((10, 25), np.uint8))
