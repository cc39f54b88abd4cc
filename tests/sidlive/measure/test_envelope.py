import shutil

import numpy as np
import pytest

from sidlive.audio.renderer import render
from sidlive.c64.goattracker import FixtureUnavailable, goattracker_frames
from sidlive.measure import soundcheck as E

RATE = 48_000


def _tone(seconds, freq=440.0, amp=8000.0):
    t = np.arange(int(seconds * RATE)) / RATE
    return amp * np.sin(2 * np.pi * freq * t)


def _bursts(seconds, seed):
    """A tone gated on and off at random 50-400 ms intervals: a music-like envelope."""
    rng = np.random.default_rng(seed)
    x = _tone(seconds)
    gate = np.zeros(len(x))
    i = 0
    while i < len(x):
        n = int(rng.integers(50, 400) * RATE / 1000)
        gate[i:i + n] = rng.uniform(0.1, 1.0) if rng.random() < 0.6 else 0.0
        i += n
    return x * gate


def test_energy_envelope_of_a_tone():
    env = E.energy_envelope(_tone(1.0, amp=1000.0), RATE, window_ms=20)
    assert len(env) == 50
    np.testing.assert_allclose(env, 1000 / np.sqrt(2), rtol=0.01)
    assert len(E.energy_envelope(_tone(1.0), RATE, 20, hop_ms=5)) == 1 + (RATE - 960) // 240
    assert np.allclose(E.energy_envelope(np.full(4800, 3000.0), RATE), 0.0)   # DC carries no energy
    assert len(E.energy_envelope(np.zeros(10), RATE)) == 0


def test_correlation_finds_the_lag():
    a = _bursts(6.0, seed=1)
    assert E.envelope_correlation(a, a, RATE) == pytest.approx(1.0)
    shift = int(0.040 * RATE)
    b = np.concatenate([np.zeros(shift), a[:-shift]]) * 0.5      # 40 ms later, quieter
    r, lag_ms = E.envelope_alignment(a, b, RATE)
    assert r > 0.99 and lag_ms == pytest.approx(-40.0, abs=5.0)
    other = _bursts(6.0, seed=2)
    assert E.envelope_correlation(a, other, RATE) < 0.5
    assert np.isnan(E.envelope_correlation(a, np.zeros_like(a), RATE))


def test_bad_parameters():
    with pytest.raises(ValueError, match="window_ms"):
        E.energy_envelope(np.zeros(100), RATE, window_ms=0)
    with pytest.raises(ValueError, match="rate_hz"):
        E.energy_envelope(np.zeros(100), 0)


def test_real_music_renders_agree(tmp_path):
    """Our render of a GoatTracker song against pygoattracker's own reSID render: same music
    correlates, another song not. pygoattracker writes a frame's registers in one cycle, so
    this compares with our write gap off (write_gap_cycles=0); the gap's own check against
    the real player under sidplayfp is in test_soundcheck.py."""
    pgt = pytest.importorskip("pygoattracker")
    try:
        dojo = goattracker_frames("dojo", seconds=6, cache_dir=tmp_path)
        other = goattracker_frames("consultant", seconds=6, cache_dir=tmp_path)
    except FixtureUnavailable as e:
        pytest.skip(str(e))
    ref, fs = pgt.render_samples(pgt.read_sng(dojo.source), seconds=6, model="6581", sampling_frequency=RATE)
    assert fs == RATE
    ref = np.asarray(ref)
    assert E.envelope_correlation(render(dojo, write_gap_cycles=0), ref, RATE) > 0.8
    assert E.envelope_correlation(render(other, write_gap_cycles=0), ref, RATE) < 0.5


# ---------------------------------------------------------------------------- sidplayfp

@pytest.fixture(scope="module")
def tune(hvsc):
    if shutil.which("sidplayfp") is None:
        pytest.skip("sidplayfp is not installed (Debian package sidplayfp)")
    path = hvsc / "MUSICIANS" / "B" / "Bjerregaard_Johannes" / "When_Will_I_Be_Famous.sid"
    if not path.is_file():
        pytest.skip(f"{path} is not in this HVSC subset")
    return path


def test_sidplayfp_render(tune):
    a = E.sidplayfp_render(tune, 3.0, subtune=1, chip="6581")
    assert a.dtype == np.int16 and len(a) == 3 * RATE
    assert np.median(E.energy_envelope(a, RATE)) > 100
    b = E.sidplayfp_render(tune, 3.0, subtune=1, chip="8580")
    assert len(b) == len(a) and np.abs(a.astype(int) - b).mean() > 50
    c = E.sidplayfp_render(tune, 2.5, rate_hz=44_100)
    assert len(c) == int(2.5 * 44_100)


def test_sidplayfp_errors(tune, tmp_path):
    with pytest.raises(ValueError, match="chip"):
        E.sidplayfp_render(tune, 1.0, chip="6582")
    with pytest.raises(FileNotFoundError, match="no such"):
        E.sidplayfp_render(tmp_path / "x.sid", 1.0)
    junk = tmp_path / "junk.sid"
    junk.write_bytes(b"PSID" + bytes(200))
    with pytest.raises(RuntimeError, match="sidplayfp failed"):
        E.sidplayfp_render(junk, 1.0)


def test_sound_check_on_one_tune(tune):
    """Our dump (sidlive.c64.dump), rendered by sidlive, against sidplayfp on the same chip."""
    try:
        import sidlive.c64.machine  # noqa: F401  the dumper's emulator
        from sidlive.c64.dump import dump_tune
    except ImportError as e:
        pytest.skip(f"sidlive.c64.dump cannot run: {e}")
    row = E.check_tune(tune, seconds=10.0, dump=dump_tune)
    assert row["chip"] == "6581" and row["subtune"] == 1
    assert row["correlation"] >= E.TARGET_CORRELATION, row
    assert "corr" in E.format_table([row]) and "1/1 tunes" in E.format_table([row])
