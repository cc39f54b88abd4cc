import sys

import numpy as np
import pytest

from sidlive.c64 import goattracker as FX
from sidlive.frames import PAL_FRAME_RATE_HZ, canonicalize


@pytest.fixture(scope="module")
def examples():
    try:
        return FX.goattracker_examples()
    except FX.FixtureUnavailable as e:
        pytest.skip(str(e))


def test_examples_listed(examples):
    names = {p.stem for p in examples}
    assert {"dojo", "consultant", "sanction"} <= names
    assert all(p.suffix == ".sng" for p in examples)


def test_missing_examples_dir_names_package_and_path(tmp_path):
    with pytest.raises(FX.FixtureUnavailable, match=r"goattracker.*apt-get install goattracker") as e:
        FX.goattracker_examples(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(e.value)


@pytest.mark.parametrize("name", ["dojo", "consultant", "sixpack"])
def test_frames_are_real_music_and_canonical(examples, tmp_path, name):
    fr = FX.goattracker_frames(name, seconds=20, cache_dir=tmp_path)
    assert len(fr) == round(20 * PAL_FRAME_RATE_HZ)
    regs = fr.regs
    assert np.array_equal(regs, canonicalize(regs))
    gates_on = [int((np.diff((regs[:, 7 * v + 4] & 1).astype(int)) == 1).sum()) for v in range(3)]
    assert sum(g >= 2 for g in gates_on) >= 2, gates_on          # several voices play notes
    assert max(gates_on) >= 8, gates_on
    pitches = [len(np.unique(regs[:, 7 * v].astype(int) | regs[:, 7 * v + 1].astype(int) << 8)) for v in range(3)]
    assert sum(pitches) >= 15 and min(pitches) >= 3, pitches     # notes change, on every voice
    changes = int((np.diff(regs[:, [1, 8, 15]].astype(int), axis=0) != 0).sum())
    assert changes >= 30, changes
    assert np.all(regs[:, 0x18] & 0x0F > 0)                      # volume up
    assert fr.chip == "6581" and fr.clock == "PAL"
    assert fr.extra["license"] == "GPL-2.0-or-later" and fr.extra["format"] == "goattracker"
    assert fr.title and fr.source.endswith(f"{name}.sng")


def test_cache_is_used_and_repaired(examples, tmp_path):
    a = FX.goattracker_frames("dojo", seconds=5, cache_dir=tmp_path)
    files = list(tmp_path.glob("*.regs"))
    assert len(files) == 1 and "dojo" in files[0].name
    b = FX.goattracker_frames("dojo.sng", seconds=5, cache_dir=tmp_path)
    assert np.array_equal(a.regs, b.regs) and len(list(tmp_path.glob("*.regs"))) == 1
    files[0].write_bytes(b"SLRG garbage")
    c = FX.goattracker_frames("dojo", seconds=5, cache_dir=tmp_path)
    assert np.array_equal(a.regs, c.regs)


def test_until_loop_and_paths(examples, tmp_path):
    short = next(p for p in examples if p.stem == "tempo2test")
    fr = FX.goattracker_frames(short, cache_dir=tmp_path)         # a Path; seconds=None
    assert 0 < len(fr) < FX.MAX_SECONDS * PAL_FRAME_RATE_HZ
    longer = FX.goattracker_frames(short, seconds=len(fr) / PAL_FRAME_RATE_HZ * 2, cache_dir=tmp_path)
    assert np.array_equal(longer.regs[: len(fr)], fr.regs)         # same play, continued


def test_errors_name_the_thing(examples, tmp_path):
    with pytest.raises(FX.FixtureUnavailable, match="no GoatTracker example named 'nope'.*dojo"):
        FX.goattracker_frames("nope", cache_dir=tmp_path)
    with pytest.raises(FX.FixtureUnavailable, match="not found"):
        FX.goattracker_frames(tmp_path / "x.sng", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="seconds"):
        FX.goattracker_frames("dojo", seconds=-1, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="subtune must be in 0..0"):
        FX.goattracker_frames("consultant", seconds=1, subtune=3, cache_dir=tmp_path)
    bad = tmp_path / "bad.sng"
    bad.write_bytes(b"not a song")
    with pytest.raises(ValueError, match="bad.sng"):
        FX.goattracker_frames(bad, seconds=1, cache_dir=tmp_path)


def test_missing_pygoattracker_is_named(examples, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pygoattracker", None)   # as if not installed
    with pytest.raises(FX.FixtureUnavailable, match="pygoattracker.*pip install"):
        FX.goattracker_frames("dojo", seconds=1, cache_dir=tmp_path)
