"""Engine vs the PyTorch reference (training/sample.py) on the dequantized weights."""
from __future__ import annotations

import numpy as np
import pytest

from engine.generator import Generator
from tests.conftest import walk

torch = pytest.importorskip("torch")
from training.sample import GlobalCache, generate, global_step, local_frame  # noqa: E402


def reference_logits(model, frames, composer):
    """The reference's full log-prob vector for every step of frames[1:] (teacher forced)."""
    cfg = model.cfg
    cache = GlobalCache(cfg.n_layers_global, cfg.context_frames, cfg.pointer)
    out = np.zeros((len(frames) - 1, cfg.n_regs, cfg.vocab))
    for i in range(len(frames) - 1):
        h = global_step(model, frames[i], composer, cache)

        def choose(k, reg, logits, i=i):
            out[i, reg] = logits
            return int(frames[i + 1, reg])

        local_frame(model, h, frames[i], choose, cache.cand)
    return out


@pytest.mark.parametrize("which", ["tiny", "tiny_all"])
def test_logits_match_reference(which, request):
    path, model = request.getfixturevalue(which)
    frames = walk(40, seed=3)  # longer than the window: the sliding window is exercised
    ref = reference_logits(model, frames, composer=1)
    g = Generator(path)
    g.set_sampling(composer=1)
    g.prime(frames[:1])
    lp, logits = g.teacher_logprobs(frames[1:], want_logits=True)
    err = np.abs(logits - ref) / np.maximum(np.abs(ref), 1.0)
    assert err.max() < 1e-3, err.max()
    assert np.abs(logits - ref).max() < 1e-3
    picked = np.take_along_axis(ref, frames[1:, :, None].astype(np.int64), 2)[..., 0]
    np.testing.assert_allclose(lp, picked, rtol=1e-4, atol=1e-4)


def _engine_run(path, prompt, n, **kw):
    g = Generator(path, temperature=kw.get("temperature", 1.0), top_k=kw.get("top_k", 0),
                  top_p=kw.get("top_p", 1.0), seed=kw.get("seed", 0), composer=kw.get("composer"))
    if kw.get("force_mask") is not None:
        g.set_forced(kw["force_mask"], kw["force_values"])
    if prompt is not None:
        g.prime(prompt)
    return g.generate(n)


def test_greedy_200_frames_identical(tiny):
    path, model = tiny
    prompt = walk(6, seed=4)
    ref = generate(model, prompt, 200, composer="Rob Hubbard", temperature=0.0)
    got = _engine_run(path, prompt, 200, composer="Rob Hubbard", temperature=0.0)
    assert len(np.unique(ref, axis=0)) > 20  # not a trivial fixed point
    np.testing.assert_array_equal(got, ref)


VOICE1_GIVEN = [r in (0x00, 0x01, 0x04) for r in range(25)]   # voice 1 frequency and control (gate)
VOICE1_VALUES = [{0x00: 0x25, 0x01: 0x1C, 0x04: 0x41}.get(r, 0) for r in range(25)]


@pytest.mark.parametrize("which,settings", [
    ("tiny", dict(temperature=1.0, top_k=40, top_p=0.9, seed=7391738265, composer="Martin Galway",
                  force_mask=VOICE1_GIVEN, force_values=VOICE1_VALUES)),
    ("tiny", dict(temperature=0.7, top_k=0, top_p=1.0, seed=3)),
    ("tiny", dict(temperature=1.3, top_k=5, top_p=1.0, seed=(1 << 64) - 5)),
    ("tiny_all", dict(temperature=1.0, top_k=0, top_p=0.8, seed=99)),
])
def test_sampled_runs_identical(which, settings, request):
    path, model = request.getfixturevalue(which)
    prompt = walk(5, seed=8)
    n = 80
    ref = generate(model, prompt, n, **settings)
    got = _engine_run(path, prompt, n, **settings)
    np.testing.assert_array_equal(got, ref)
    if settings.get("force_mask"):
        assert (got[:, [0, 1, 4]] == [0x25, 0x1C, 0x41]).all()


def test_no_prompt_starts_from_a_zero_frame(tiny):
    path, model = tiny
    ref = generate(model, None, 30, temperature=1.0, seed=5)
    np.testing.assert_array_equal(_engine_run(path, None, 30, seed=5), ref)


def test_golden_output(tmp_path):
    """training.export --golden: the engine reproduces its frames exactly and its bits to rounding."""
    from training.export import write_golden
    gold = write_golden(tmp_path)
    prompt = np.array([list(bytes.fromhex(h)) for h in gold["prompt"]], np.uint8)
    g = Generator(tmp_path / gold["sidm"])
    for c in gold["cases"]:
        g.reset()
        g.set_sampling(temperature=c["temperature"], top_k=c["top_k"], top_p=c["top_p"], composer=c["composer"])
        g.set_forced(c["force_mask"], c["force_values"])
        g.reseed(c["seed"])
        g.prime(prompt)
        want = np.array([list(bytes.fromhex(h)) for h in c["frames"]], np.uint8)
        np.testing.assert_array_equal(g.generate(gold["n_frames"]), want, err_msg=c["name"])
    tf = gold["teacher_forced"]
    g.reset()
    g.set_forced(None)
    g.set_sampling(composer=tf["composer"])
    greedy = np.array([list(bytes.fromhex(h)) for h in gold["cases"][0]["frames"]], np.uint8)
    seq = np.concatenate([prompt, greedy])
    g.prime(seq[:1])
    bits = -g.teacher_logprobs(seq[1:]).sum(1) / np.log(2)
    np.testing.assert_allclose(bits, tf["bits_per_frame"], rtol=1e-5, atol=1e-3)


def test_torch_baseline_is_the_same_model(tiny):
    """training/torch_ref.py (the benchmark's PyTorch side) computes what the reference does."""
    from training.torch_ref import TorchGenerator
    path, model = tiny
    prompt = walk(20, seed=9)  # longer than the window
    ref = generate(model, prompt, 10, temperature=0.0, composer=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: OpenMP hand-offs would dominate on a busy machine
    try:
        tg = TorchGenerator(model, temperature=0.0, composer=2)
        tg.prime(prompt)
        np.testing.assert_array_equal(tg.generate(10), ref)
    finally:
        torch.set_num_threads(threads)
