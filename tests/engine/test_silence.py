"""The silence estimate and the sampler's silence guard (engine.silence, Generator.generate)."""
from __future__ import annotations

import numpy as np
import pytest

from engine.generator import Generator
from engine.silence import (AD, CTRL, MODE_VOL, SR, silence_frames, silent_frames, trailing_silence, voice_draw,
                            wake_up_rules)

from tests.conftest import TINY

torch = pytest.importorskip("torch")
from engine.config import ModelConfig  # noqa: E402
from training import sample  # noqa: E402
from training.export import export_model, model_from_sidm  # noqa: E402
from training.model import SidModel  # noqa: E402


def _frame_from_rules(last, allow, rng):
    """last with every restricted register set to a random allowed value."""
    new = last.copy()
    for r in range(25):
        if not allow[r].all():
            new[r] = rng.choice(np.flatnonzero(allow[r]))
    return new


def test_a_frame_the_rules_allow_starts_a_note_within_two_frames():
    """Whatever silent frame came before and whatever allowed values the model picks, the voice
    the guard chose sounds at once (gate was off) or in the frame after (gate was on)."""
    rng = np.random.default_rng(0)
    for trial in range(400):
        last = rng.integers(0, 256, 25).astype(np.uint8)
        if trial % 2:
            last[list(CTRL)] &= 0xFE                  # gates off
        before = np.zeros((3, 25), np.uint8)           # a released chip before it
        seq = np.concatenate([before, last[None]])
        for step in range(2):
            allow = wake_up_rules(seq[-1], rng.random())
            assert allow.any(axis=1).all()
            seq = np.concatenate([seq, _frame_from_rules(seq[-1], allow, rng)[None]])
            if not silent_frames(seq)[-1]:
                break
        assert not silent_frames(seq)[-1], (trial, seq[-3:])


def test_the_rules_restrict_only_what_a_note_needs():
    last = np.zeros(25, np.uint8)
    allow = wake_up_rules(last, 0.0)                   # voice 0, gate off, volume 0
    restricted = {r for r in range(25) if not allow[r].all()}
    assert restricted == {CTRL[0], AD[0], SR[0], 0x01, MODE_VOL, 0x17}
    assert allow[CTRL[0], 0x41] and not allow[CTRL[0], 0x40] and not allow[CTRL[0], 0x49]
    assert not allow[MODE_VOL, 0x10] and allow[MODE_VOL, 0x1F]
    forced = np.zeros(25, bool)
    forced[CTRL[0]] = forced[CTRL[1]] = True      # voices 1 and 2 are played by the caller
    for draw in (0.0, 0.5, 0.99):
        allow = wake_up_rules(last, draw, forced)
        assert not allow[CTRL[2]].all() and allow[CTRL[0]].all() and allow[CTRL[1]].all()


def test_trailing_silence_and_limits():
    quiet = np.zeros((30, 25), np.uint8)
    assert trailing_silence(quiet) == 30
    loud = quiet.copy()
    loud[:, 0x01], loud[:, 0x18], loud[5:, CTRL[0]], loud[:, SR[0]] = 0x20, 0x0F, 0x41, 0xF0
    assert trailing_silence(loud) == 0
    assert silence_frames(0) == 0 and silence_frames(0.5) == 25 and silence_frames(0.001) == 1
    assert voice_draw(1, 2) == voice_draw(1, 2) != voice_draw(1, 3)


@pytest.fixture(scope="module")
def silent_model(tmp_path_factory):
    """A tiny pointer model whose readout says "no change" almost surely: it stays silent."""
    torch.manual_seed(0)
    model = SidModel(ModelConfig(**(TINY | {"pointer": True})))
    with torch.no_grad():
        model.copy_bonus.fill_(12.0)
    path = tmp_path_factory.mktemp("m") / "silent.sidm"
    export_model(model, path, {"source": "silence test"}, log=None)
    return model_from_sidm(path), path


def test_the_guard_wakes_a_silent_model_and_the_engine_matches_the_reference(silent_model):
    model, path = silent_model
    g = Generator(path, log=None, temperature=0.9, top_k=40, top_p=0.95, seed=3, max_silence_s=0)
    off = g.generate(120)
    assert silent_frames(off).all()                    # the model alone: silence
    g = Generator(path, log=None, temperature=0.9, top_k=40, top_p=0.95, seed=3, max_silence_s=0.2)
    on = g.generate(120)
    s = silent_frames(np.concatenate([np.zeros((1, 25), np.uint8), on]))[1:]
    first = int(np.argmin(s))
    assert not s.all() and first <= silence_frames(0.2) + 1, first
    ref = sample.generate(model, None, 120, temperature=0.9, top_k=40, top_p=0.95, seed=3, max_silence_s=0.2)
    np.testing.assert_array_equal(on, ref)
    # chunking does not change the frames
    g.reset()
    g.reseed(3)
    parts = np.concatenate([g.generate(k) for k in (1, 7, 30, 2, 80)])
    np.testing.assert_array_equal(parts, on)


def test_guard_decisions_do_not_depend_on_the_chunking(silent_model):
    """Past the first window moves (256, 512, 768 frames), with prompts that sound then stop:
    any chunking gives the frames of one call, and the reference's."""
    model, path = silent_model
    rng = np.random.default_rng(5)
    prompt = np.zeros((300, 25), np.uint8)
    prompt[:, 0x18], prompt[:, 0x01], prompt[:, 0x06] = 0x0F, 0x11, 0x08   # slow release
    prompt[::40, 0x04] = 0x21
    prompt[1::40, 0x04] = 0x20
    g = Generator(path, log=None, temperature=1.0, seed=9, max_silence_s=0.3)
    g.prime(prompt)
    whole = g.generate(600)
    for _ in range(3):
        g.reset()
        g.reseed(9)
        g.prime(prompt)
        sizes, left = [], 600
        while left:
            sizes.append(min(left, int(rng.integers(1, 90))))
            left -= sizes[-1]
        np.testing.assert_array_equal(np.concatenate([g.generate(k) for k in sizes]), whole)
    ref = sample.generate(model, prompt, 600, temperature=1.0, seed=9, max_silence_s=0.3)
    np.testing.assert_array_equal(whole, ref)
