"""Hostile frames files: every metadata field type-checked once, at the loader, with the file
and the field in a one-line error; .txt lines are hex digits only. The commands that read
frames (export, render, score) report the loader's error and exit non-zero."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from sidlive.commands import export as export_cmd
from sidlive.commands import render as render_cmd
from sidlive.frames import FramesFormatError, load


def regs_file(path, meta: bytes, n: int = 1):
    """A .regs file of n all-zero frames with the given raw metadata bytes."""
    path.write_bytes(struct.pack("<4sHHII", b"SLRG", 1, 0, n, len(meta)) + meta + bytes(25 * n))
    return path


BAD_META = [
    ({"frame_rate_hz": "50.1245"}, "frame_rate_hz"),
    ({"frame_rate_hz": True}, "frame_rate_hz"),
    ({"frame_rate_hz": float("nan")}, "frame_rate_hz"),
    ({"extra": 5}, "extra"),
    ({"extra": [1, 2]}, "extra"),
    ({"extra": None}, "extra"),
    ({"author": 5}, "author"),
    ({"author": ["Rob Hubbard"]}, "author"),
    ({"title": {"a": 1}}, "title"),
    ({"source": None}, "source"),
    ({"clock": ["PAL"]}, "clock"),
    ({"chip": 6581}, "chip"),
]


@pytest.mark.parametrize("meta, field", BAD_META, ids=[f"{k}={v!r}" for (m, k) in BAD_META for v in m.values()])
def test_metadata_fields_are_type_checked_naming_file_and_field(tmp_path, meta, field):
    p = regs_file(tmp_path / "x.regs", json.dumps(meta).encode())
    with pytest.raises(FramesFormatError, match=rf"x.regs: metadata field '{field}'") as e:
        load(p)
    assert "\n" not in str(e.value)


def test_good_metadata_still_loads(tmp_path):
    meta = {"clock": "NTSC", "chip": "8580", "frame_rate_hz": 60, "title": "t", "author": "a", "source": "s",
            "extra": {"speed": "vbi"}}
    fr = load(regs_file(tmp_path / "ok.regs", json.dumps(meta).encode()))
    assert isinstance(fr.frame_rate_hz, float) and fr.frame_rate_hz == 60.0 and fr.extra == {"speed": "vbi"}


def test_deeply_nested_metadata_is_an_error_not_a_recursion(tmp_path):
    meta = b'{"extra": {"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    with pytest.raises(FramesFormatError, match=r"deep.regs: offset 16: metadata nests .* too deeply"):
        load(regs_file(tmp_path / "deep.regs", meta))
    nested = b'{"extra": {"x": ' + b"[" * 200 + b"]" * 200 + b"}}"   # parses, but nests past the limit
    with pytest.raises(FramesFormatError, match=r"nest.regs: metadata field 'extra'.*levels"):
        load(regs_file(tmp_path / "nest.regs", nested))


def test_txt_line_with_inner_spaces_is_refused(tmp_path):
    line = "00" * 12 + "  " + "00" * 12          # 50 characters, but 48 hex digits
    p = tmp_path / "gap.txt"
    p.write_text(line + "\n")
    with pytest.raises(FramesFormatError, match=r"gap.txt: line 1, column 25: ' ' is not a hex digit"):
        load(p)
    p.write_text("\n".join([line] * 25) + "\n<end>\n")    # was read as 24 misaligned frames
    with pytest.raises(FramesFormatError, match=r"gap.txt: line 1"):
        load(p)
    p.write_text("\n".join(["01" * 25] * 3) + "\n<end>\n")
    assert np.all(load(p).regs == 1) and len(load(p)) == 3


def one_line_error(capsys, fragment: str) -> None:
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("meta", [{"frame_rate_hz": "50.1245"}, {"extra": 5}, {"author": [1]}])
def test_export_reports_bad_metadata(tmp_path, capsys, meta):
    p = regs_file(tmp_path / "in.regs", json.dumps(meta).encode(), n=10)
    assert export_cmd.main([str(p), "-o", str(tmp_path / "out.sid"), "--seconds", "1"]) == 1
    one_line_error(capsys, "in.regs: metadata field")
    assert not (tmp_path / "out.sid").exists()


def test_render_reports_bad_input_instead_of_rendering(tmp_path, capsys):
    p = regs_file(tmp_path / "rate.regs", json.dumps({"frame_rate_hz": "50.1245"}).encode(), n=10)
    assert render_cmd.main([str(p), "-o", str(tmp_path / "o.wav"), "--seconds", "0.1"]) == 1
    one_line_error(capsys, "rate.regs: metadata field 'frame_rate_hz'")
    gap = tmp_path / "gap.txt"
    gap.write_text("\n".join(["00" * 12 + "  " + "00" * 12] * 25) + "\n<end>\n")
    assert render_cmd.main([str(gap), "-o", str(tmp_path / "g.wav")]) == 1
    one_line_error(capsys, "gap.txt: line 1, column 25")
    assert not (tmp_path / "g.wav").exists()
