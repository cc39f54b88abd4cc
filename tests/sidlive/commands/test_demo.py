"""`make demo`'s main job: the shipped model playing live (null output here), recorded."""
import numpy as np
import pytest

from sidlive.audio.wav import read_wav
from sidlive.commands import demo
from sidlive.frames import load


def test_demo_plays_the_shipped_model_live_and_records(tmp_path):
    if not demo.DEFAULT_MODEL.is_file():
        pytest.skip(f"{demo.DEFAULT_MODEL} is absent")
    wav = demo.run_demo(tmp_path, play=False, seconds=3.0)
    assert wav == tmp_path / "live-set.wav"
    frames = load(wav.with_suffix(".regs"))
    assert 140 <= len(frames) <= 160  # 3 s at 50.125 frames/s
    samples, rate_hz = read_wav(wav)
    assert rate_hz == 48000
    assert len(samples) >= 3 * 48000 * 0.95
    assert np.abs(np.asarray(samples, dtype=np.float64)).max() > 0  # not a silent file
