"""training/candstats.py on sequences whose repetition figures are known by construction."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sidlive.frames import Frames, save
from training.candstats import candstats, main, shares, tune_counts
from training.dataset import write_synthetic

PERIOD, REPEATS = 40, 5


def period_values(seed: int = 0) -> np.ndarray:
    """PERIOD distinct values in 16..255 whose second differences are never 0 (around the
    period's wrap and from the zero frame too), so no extrapolation and no BACK2-4 is right."""
    rng = np.random.default_rng(seed)
    while True:
        v = rng.choice(np.arange(16, 256), size=PERIOD, replace=False).astype(np.int64)
        ext = np.concatenate([[0], np.tile(v, 3)])
        if (np.diff(ext, 2) != 0).all():
            return v


def periodic() -> np.ndarray:
    """Frame i: every register = v[i % PERIOD]; all registers change every frame."""
    v = period_values()
    return np.repeat(np.tile(v, REPEATS)[:, None], 25, axis=1).astype(np.uint8)  # (200, 25)


def test_a_repeated_pattern_gives_the_shares_of_its_construction():
    n = PERIOD * REPEATS
    s = shares(tune_counts(periodic()))
    # seq = [zero] + frames; row t predicts seq[t+1]. A window of L frames ending at t occurred
    # earlier iff it lies in the frames (t-L+1 >= 1) and one period back too: L <= t - PERIOD.
    full = n - (PERIOD + 32)                 # t = 72..199 have a 32-frame match
    some = n - (PERIOD + 1)                  # t = 41..199 have some match
    assert s["frame32"] == s["notes32"] == full / n
    assert s["frame32_ok"] == s["notes32_ok"] == 1.0
    assert s["vnotes16"] == s["voice16"] == (n - (PERIOD + 16)) / n
    assert s["vnotes16_ok"] == s["voice16_ok"] == 1.0
    assert s["changed"] == 25.0
    assert s["eq_frame"] == s["eq_notes"] == s["eq_group"] == s["eq_match"] == s["eq_any"] == some / n
    assert s["eq_vnotes"] == pytest.approx(some * 21 / (n * 25))  # VNOTES has no filter registers
    assert s["eq_extrap"] == s["eq_back2"] == s["eq_back3"] == s["eq_back4"] == s["eq_back"] == 0.0
    assert s["self_rep"] == full / (n - 31)


def test_a_constant_tune_repeats_from_its_second_frame():
    frames = np.full((100, 25), 7, np.uint8)
    c = tune_counts(frames)
    # window of L frames ending at t matches at t-1 iff t - L >= 1
    assert c["frame32"] == c["frame32_ok"] == 100 - 33
    assert c["changed"] == 25 and c["eq_any"] == 0  # only frame 1 changes, from the zero frame: no source
    assert shares(c)["eq_match"] == 0.0


def test_pooled_figures_are_frame_weighted():
    a, b = periodic(), np.full((60, 25), 9, np.uint8)
    rep = candstats([("a", a), ("b", b)])
    ca, cb = tune_counts(a), tune_counts(b)
    assert rep["pooled"]["frames"] == 260
    assert rep["pooled"]["frame32"] == pytest.approx((ca["frame32"] + cb["frame32"]) / 260)
    assert rep["pooled"]["eq_any"] == pytest.approx((ca["eq_any"] + cb["eq_any"]) / (ca["changed"] + cb["changed"]))
    assert [f["path"] for f in rep["files"]] == ["a", "b"]


def test_cli_files_and_data(tmp_path, capsys):
    path = tmp_path / "p.regs"
    save(Frames(regs=np.full((80, 25), 5, np.uint8)), path)
    assert main([str(path), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["pooled"]["frames"] == 80 and rep["files"][0]["frame32"] == (80 - 33) / 80
    write_synthetic(tmp_path / "d", n_tunes=6, seed=1, min_frames=100, max_frames=300)
    assert main(["--data", str(tmp_path / "d"), "--tunes", "3"]) == 0
    out = capsys.readouterr().out
    assert "pooled" in out and "fr32ok" in out
    assert main([str(tmp_path / "missing.regs")]) == 2
    assert "candstats:" in capsys.readouterr().err
