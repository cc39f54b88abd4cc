"""The shipped model (presets/models/default.sidm) as a user meets it: music from an empty
start at every temperature a performer would use, with and without a loop, in `sidlive
generate` and in `sidlive live` with its defaults; the pointer design and its repetition."""
from __future__ import annotations

import json
import wave

import numpy as np
import pytest

from engine.generator import Generator
from engine.silence import first_sound_frame
from sidlive.commands import live
from sidlive.control.params import SAMPLING_DEFAULTS
from sidlive.frames import PAL_FRAME_RATE_HZ, load
from sidlive.paths import DEFAULT_MODEL, LOOPS_DIR

FIRST_SOUND_FRAMES = int(0.5 * PAL_FRAME_RATE_HZ)   # 0.5 s

pytestmark = pytest.mark.skipif(not DEFAULT_MODEL.is_file(), reason=f"{DEFAULT_MODEL} is absent")


@pytest.fixture(scope="module")
def gen():
    return Generator(DEFAULT_MODEL, log=None)


@pytest.mark.parametrize("temperature", [0.5, 0.7, 0.9, 1.2])
def test_sound_within_half_a_second_from_an_empty_start(gen, temperature):
    """20/20 seeds sound within 0.5 s of the first frame, no prompt, the shared defaults otherwise."""
    late = []
    for seed in range(20):
        gen.reset()
        gen.set_sampling(**(SAMPLING_DEFAULTS | {"temperature": temperature}))
        gen.reseed(seed)
        first = first_sound_frame(gen.generate(2 * FIRST_SOUND_FRAMES))
        if first is None or first > FIRST_SOUND_FRAMES:
            late.append((seed, first))
    assert late == [], f"temperature {temperature}: seeds (seed, first sounding frame) {late}"


def test_sound_within_half_a_second_after_a_loop(gen):
    prompt = load(LOOPS_DIR / "dojo.regs").regs
    for seed in range(5):
        gen.reset()
        gen.set_sampling(**SAMPLING_DEFAULTS)
        gen.reseed(seed)
        gen.prime(prompt)
        assert first_sound_frame(gen.generate(FIRST_SOUND_FRAMES)) is not None


def test_live_with_its_defaults_makes_music(tmp_path, capsys):
    """`sidlive live --audio null --headless --seconds 4` with no loop: the take has sound
    within 0.5 s of its first frame (it was all zeros before the model learned music starts)."""
    assert live.main(["--audio", "null", "--headless", "--seconds", "4", "--midi", "none", "--no-osc",
                      "--record", str(tmp_path / "x.wav")]) == 0
    json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    regs = load(tmp_path / "x.regs").regs
    assert len(regs) > 100
    first = first_sound_frame(regs)
    assert first is not None and first <= FIRST_SOUND_FRAMES, first
    with wave.open(str(tmp_path / "x.wav")) as w:     # and the recorded audio: louder than -40 dBFS by 0.5 s
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16).reshape(-1, w.getnchannels())[:, 0]
    win = rate // 50
    x = pcm[:len(pcm) // win * win].astype(np.float64) / 32768
    rms = np.sqrt(np.mean((x ** 2).reshape(-1, win), axis=1))       # 20 ms windows
    loud = np.flatnonzero(20 * np.log10(np.maximum(rms, 1e-12)) > -40)
    assert len(loud) and loud[0] * win / rate <= 0.5, loud[:3]


def test_the_shipped_model_is_a_pointer_model_that_repeats_on_request(gen):
    """After a loop, playing it again costs a fraction of the bits at repetition 1 and 2 that it
    costs at 0 (history off: the model must invent it)."""
    assert gen.cfg.pointer
    loop = load(LOOPS_DIR / "consultant.regs").regs
    bits = {}
    for rep in (0.0, 1.0, 2.0):
        gen.reset()
        gen.set_sampling(repetition=rep)
        gen.prime(loop)
        bits[rep] = -gen.teacher_logprobs(loop[:200]).sum(1).mean() / np.log(2)
    assert max(bits[1.0], bits[2.0]) < bits[0.0] / 4, bits
