"""Property tests of the frames reader, both formats: any file gives the frames it holds or a
one-line FramesFormatError naming it (sidlive.measure.fuzzcheck.check_frames), nothing else."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidlive.frames import META_FIELDS
from sidlive.measure import fuzz
from sidlive.measure.fuzzcheck import check_frames
from tests.conftest import fuzz_settings

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70), st.floats(allow_nan=True),
                    st.text(max_size=20), st.sampled_from(["PAL", "NTSC", "6581", "8580", "50.1245", "any"]))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                            st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                           max_leaves=12)
good = {"clock": st.sampled_from(["PAL", "NTSC"]), "chip": st.sampled_from(["6581", "8580"]),
        "frame_rate_hz": st.floats(1, 1000), "title": st.text(max_size=10), "author": st.text(max_size=10),
        "source": st.text(max_size=10), "extra": st.dictionaries(st.text(max_size=5), json_values, max_size=3)}
metadata = st.dictionaries(st.sampled_from(META_FIELDS + ("bogus",)), json_values, max_size=4) | \
    st.fixed_dictionaries({}, optional=good) | json_values


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("frames_fuzz")


@fuzz_settings(150)
@given(meta=metadata, n=st.integers(0, 4), edits=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)),
                                                         max_size=3), cut=st.integers(-3, 3), depth=st.integers(0, 3))
def test_regs_reader(folder, meta, n, edits, cut, depth):
    text = json.dumps(meta, allow_nan=True)
    if depth:                                   # metadata nested past any limit, deep enough for recursion
        text = '{"extra": {"x": ' + fuzz.deep(10 ** (depth + 1) // 2) + "}}"
    m = text.encode()
    blob = bytearray(struct.pack("<4sHHII", b"SLRG", 1, 0, n, len(m)) + m + bytes(range(25)) * n)
    for off, value in edits:
        if off < len(blob):
            blob[off] = value
    blob = blob[:len(blob) + cut] if cut < 0 else blob + bytes(cut)
    p = folder / "f.regs"
    p.write_bytes(bytes(blob))
    assert check_frames(p) in ("ok", "error")


hex_lines = st.text(alphabet="0123456789abcdefABCDEF", min_size=50, max_size=50)
noise = st.text(alphabet=st.sampled_from(list("0123456789ABCDEFg \t\r\x0b\x0c\x1c<end>é\x00-")), max_size=60)


@fuzz_settings(150)
@given(lines=st.lists(st.one_of(hex_lines, noise, st.just("<end>"), st.just("")), max_size=8),
       edits=st.lists(st.tuples(st.integers(0, 500), st.sampled_from([" ", "  ", "\t", "x", "\n", "é", ""])),
                      max_size=3), eol=st.sampled_from(["\n", "\r\n", "\r"]))
def test_txt_reader(folder, lines, edits, eol):
    text = eol.join(lines)
    for off, s in edits:
        text = text[:off] + s + text[off + 1:]
    p = folder / "f.txt"
    p.write_bytes(text.encode("utf-8"))
    assert check_frames(p) in ("ok", "error")


@fuzz_settings(100)
@given(seed=st.integers(0, 2 ** 32 - 1), fmt=st.sampled_from(["regs", "txt"]))
def test_campaign_mutations(folder, seed, fmt):
    rng = np.random.default_rng(seed)
    p = (fuzz.regs_case if fmt == "regs" else fuzz.txt_case)(rng, folder)
    assert check_frames(p) in ("ok", "error")


def test_the_check_catches_a_wrong_reading(folder, monkeypatch):
    """The oracle is not a formality: a reader that drops the last frame is caught."""
    p = folder / "w.txt"
    p.write_text("\n".join(["01" * 25] * 3) + "\n")
    assert check_frames(p) == "ok"
    from sidlive import frames
    real = frames.load_txt
    monkeypatch.setattr(frames, "load_txt", lambda path: frames.Frames(regs=real(path).regs[:-1]))
    with pytest.raises(AssertionError, match="2 frames read, the file holds 3"):
        check_frames(p)
