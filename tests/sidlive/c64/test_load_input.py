"""Any file -> frames (`load_tune`) keeps the dumper's verdict: a tune that stopped keeping
time is an error for render, generate, score and loop, not a short render with exit 0."""
from __future__ import annotations

import numpy as np
import pytest

from sidlive.c64.dump import DumpError
from sidlive.c64.load import load_tune
from sidlive.c64.psid import build_psid
from sidlive.commands import render as render_cmd
from sidlive.frames import Frames, FramesFormatError, save
from tests.sidlive.c64.test_dump import COUNTER_INIT, COUNTER_PLAY


@pytest.fixture
def runaway(tmp_path):
    """The counter tune with playAddress $D400: play runs into the SID registers and never returns."""
    p = tmp_path / "runaway.sid"
    p.write_bytes(build_psid(COUNTER_INIT + COUNTER_PLAY, load_addr=0x1000, init_addr=0x1000, play_addr=0xD400))
    return p


def test_load_tune_refuses_a_dump_that_stopped(runaway):
    with pytest.raises(DumpError, match=r"runaway.sid: subtune 1: play_timeout: play \$D400 .* after 101 frames"):
        load_tune(runaway)


def test_render_exits_1_naming_the_status(runaway, tmp_path, capsys):
    out = tmp_path / "o.wav"
    assert render_cmd.main([str(runaway), "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert "runaway.sid" in err and "play_timeout" in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_a_tune_that_keeps_time_still_renders(tmp_path, capsys):
    p = tmp_path / "ok.sid"
    p.write_bytes(build_psid(COUNTER_INIT + COUNTER_PLAY, load_addr=0x1000, init_addr=0x1000,
                             play_addr=0x1000 + len(COUNTER_INIT)))
    assert len(load_tune(p, seconds=1.0)) == 50
    assert render_cmd.main([str(p), "-o", str(tmp_path / "ok.wav"), "--seconds", "0.5"]) == 0


def test_a_frames_file_without_frames_is_refused(tmp_path, capsys):
    p = tmp_path / "early.txt"
    p.write_text("<end>\n" + "01" * 25 + "\n")       # the end marker before the first frame
    with pytest.raises(FramesFormatError, match=r"early.txt: no frames"):
        load_tune(p)
    assert render_cmd.main([str(p), "-o", str(tmp_path / "e.wav"), "--seconds", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert "early.txt: no frames" in err and len(err.splitlines()) == 1
    save(Frames(regs=np.zeros((0, 25), np.uint8)), tmp_path / "empty.regs")
    with pytest.raises(FramesFormatError, match=r"empty.regs: no frames"):
        load_tune(tmp_path / "empty.regs")
