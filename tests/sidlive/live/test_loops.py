"""Prompt loops: files, the library's hot reload, the call-and-response arrangement,
capture, and `sidlive loop` cutting from .sid / .sng / .regs / .txt."""
from __future__ import annotations

import numpy as np
import pytest

from sidlive.c64.goattracker import FixtureUnavailable, goattracker_frames
from sidlive.commands import loop as loop_cmd
from sidlive.frames import PAL_FRAME_RATE_HZ, Frames, load, save, save_regs, save_txt
from sidlive.live import loops as L
from sidlive.paths import LOOPS_DIR


def walk(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    fr = np.zeros((n, 25), np.uint8)
    fr[0] = rng.integers(0, 256, 25)
    for t in range(1, n):
        fr[t] = fr[t - 1]
        ch = rng.random(25) < 0.2
        fr[t, ch] = rng.integers(0, 256, ch.sum())
    return Frames(regs=fr).regs   # canonical


def write_loop(path, n=150, seed=0, **kw):
    return L.save_loop(L.make_loop_frames(walk(n, seed), path.stem, source="test", **kw), path)


def test_shipped_loops_load_with_their_metadata():
    lib = L.LoopLibrary(LOOPS_DIR)
    assert lib.errors == [] and len(lib.loops) >= 3
    lo, hi = L.frame_limits()
    for lp in lib.loops:
        assert lo <= len(lp.regs) <= hi
        meta = lp.frames.extra["loop"]
        assert meta["license"] == "GPL-2.0-or-later" and ".sng" in meta["source"]
        assert lp.regs.std() > 0   # not a silent or frozen stretch


def test_save_load_round_trip_and_tempo(tmp_path):
    lp = write_loop(tmp_path / "a.regs", tempo_bpm=125.0)
    back = L.load_loop(tmp_path / "a.regs")
    assert back.name == "a" and back.tempo_bpm == 125.0 and back.source == "test"
    assert np.array_equal(back.regs, lp.regs)
    save_txt(Frames(regs=walk(120)), tmp_path / "b.txt")   # .txt: no metadata, name from the file
    assert L.load_loop(tmp_path / "b.txt").name == "b"


@pytest.mark.parametrize("make, words", [
    (lambda p: save_regs(Frames(regs=walk(40)), p), ["x.regs", "40 frames", "100..802"]),
    (lambda p: save_regs(Frames(regs=walk(900)), p), ["x.regs", "900 frames", "100..802"]),
    (lambda p: save_regs(L.make_loop_frames(walk(150), "x", source="t", tempo_bpm=1000.0), p),
     ["x.regs", "extra.loop.tempo_bpm", "1000", "20..400"]),
    (lambda p: save_regs(Frames(regs=walk(150), extra={"loop": {"name": ""}}), p), ["x.regs", "extra.loop.name"]),
    (lambda p: p.write_bytes(b"NOPE" + bytes(40)), ["x.regs", "offset 0", "magic"]),
])
def test_bad_loops_name_the_file_and_field(tmp_path, make, words):
    p = tmp_path / "x.regs"
    make(p)
    with pytest.raises(L.LoopError) as e:
        L.load_loop(p)
    for w in words:
        assert w in str(e.value)


def test_bad_txt_loop_names_the_line(tmp_path):
    p = tmp_path / "x.txt"
    lines = ["00" * 25] * 120
    lines[57] = "zz" * 25
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(L.LoopError, match=r"x\.txt: line 58, column 1"):
        L.load_loop(p)


def test_library_reloads_and_keeps_the_previous_version(tmp_path):
    write_loop(tmp_path / "a.regs", seed=1)
    lib = L.LoopLibrary(tmp_path)
    assert [lp.name for lp in lib.loops] == ["a"] and lib.refresh() == []
    first = lib.loops[0]
    (tmp_path / "a.regs").write_bytes(b"garbage")               # garbled: keep the old one
    errors = lib.refresh()
    assert len(errors) == 1 and "a.regs" in errors[0] and "keeping the previous version" in errors[0]
    assert lib.loops == [first]
    write_loop(tmp_path / "b.regs", seed=2)
    lib.refresh()
    assert [lp.name for lp in lib.loops] == ["a", "b"] and lib.index_of("b") == 1
    (tmp_path / "b.regs").unlink()
    lib.refresh()
    assert [lp.name for lp in lib.loops] == ["a"]
    with pytest.raises(L.LoopError, match="no loop named 'zzz'.*available: a"):
        lib.index_of("zzz")


def test_call_response_arrangement():
    lp = L.Loop("t", None, Frames(regs=walk(100)))
    arr = L.Arrangement()
    assert arr.frame_for(5) is None and arr.phase(5) == "free"
    arr.set(lp, "call_response", 10)
    assert arr.frame_for(9) is None
    for k in range(3):   # call, response, call, ...
        base = 10 + 200 * k
        assert np.array_equal(arr.frame_for(base), lp.regs[0]) and np.array_equal(arr.frame_for(base + 99), lp.regs[99])
        assert arr.frame_for(base + 100) is None and arr.frame_for(base + 199) is None
        assert arr.phase(base + 50) == "call" and arr.phase(base + 150) == "response"
    arr.set(lp, "prime", 0)
    assert arr.frame_for(10) is None and arr.phase(10) == "improvise"
    with pytest.raises(L.LoopError, match="loop mode 'x'"):
        arr.set(lp, "x", 0)


def test_capture_saves_the_last_seconds(tmp_path):
    regs = walk(1000)
    lp = L.capture(regs, tmp_path, name="cap")
    assert lp.path == tmp_path / "cap.regs" and np.array_equal(lp.regs, regs[-802:])
    again = L.capture(regs[:300], tmp_path, name="cap")
    assert again.path.name == "cap-2.regs" and len(again.regs) == 300
    with pytest.raises(L.LoopError, match="only 50 frames"):
        L.capture(regs[:50], tmp_path)


def test_parse_time():
    assert L.parse_time("1:02") == 62 and L.parse_time("62.5") == 62.5 and L.parse_time("1:00:01") == 3601
    for bad in ("1:75", "abc", "-3"):
        with pytest.raises(L.LoopError, match="time"):
            L.parse_time(bad)


def test_cut_from_frames_files_and_cli(tmp_path, capsys):
    fr = Frames(regs=walk(1000), title="src")
    save(fr, tmp_path / "src.regs")
    save(fr, tmp_path / "src.txt")
    for src in ("src.regs", "src.txt"):
        out = tmp_path / f"cut-{src}.regs"
        assert loop_cmd.main([str(tmp_path / src), "--start", "0:04", "--seconds", "3", "-o", str(out), "--tempo", "90"]) == 0
        lp = L.load_loop(out)
        a = int(round(4 * PAL_FRAME_RATE_HZ))
        assert np.array_equal(lp.regs, fr.regs[a:a + int(round(3 * PAL_FRAME_RATE_HZ))]) and lp.tempo_bpm == 90
        assert lp.frames.extra["loop"]["start_s"] == 4.0
    assert loop_cmd.main([str(tmp_path / "src.regs"), "--start", "18", "--seconds", "4", "-o", str(tmp_path / "x.regs")]) == 1
    assert "runs past the end" in capsys.readouterr().err
    assert loop_cmd.main([str(tmp_path / "src.regs"), "--seconds", "30", "-o", str(tmp_path / "x.regs")]) == 1
    assert "2..16 s" in capsys.readouterr().err


def test_cut_from_a_sid_and_a_goattracker_song(tmp_path):
    from sidlive.c64.psid import build_psid
    # init: LDA #0 ; STA $FB ; LDA #$0F ; STA $D418 ; RTS   play: INC $FB ; LDA $FB ; STA $D400 ; RTS
    init = bytes([0xA9, 0x00, 0x85, 0xFB, 0xA9, 0x0F, 0x8D, 0x18, 0xD4, 0x60])
    play = bytes([0xE6, 0xFB, 0xA5, 0xFB, 0x8D, 0x00, 0xD4, 0x60])
    sid = tmp_path / "count.sid"
    sid.write_bytes(build_psid(init + play, load_addr=0x1000, init_addr=0x1000, play_addr=0x100A, songs=1,
                               start_song=1, title="Count", author="Test", released="2024"))
    lp = L.cut_to_file(sid, tmp_path / "count.regs", 2.0, 3.0)
    a = int(round(2 * PAL_FRAME_RATE_HZ))
    steps = np.diff(lp.regs[:, 0].astype(int)) % 256
    assert len(lp.regs) == int(round(3 * PAL_FRAME_RATE_HZ)) and set(steps.tolist()) == {1}
    assert abs(int(lp.regs[0, 0]) - a % 256) <= 2 and lp.frames.author == "Test"
    try:
        song = goattracker_frames("dojo", seconds=10.1)
    except FixtureUnavailable as e:
        pytest.skip(str(e))
    lp = L.cut_to_file(song.source, tmp_path / "dojo.regs", 8.0, 2.0)
    a = int(round(8 * PAL_FRAME_RATE_HZ))
    assert np.array_equal(lp.regs, song.regs[a:a + len(lp.regs)])
    assert load(tmp_path / "dojo.regs").extra["loop"]["license"] == "GPL-2.0-or-later"

