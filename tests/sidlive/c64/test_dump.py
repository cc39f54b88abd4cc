"""dump_tune and `sidlive dump` on hand-assembled PSIDs and on real tunes."""
from __future__ import annotations

import numpy as np
import pytest

from sidlive.c64.dump import DEFAULT_SECONDS, dump_tune, resolve_seconds
from sidlive.commands.dump import main
from sidlive.c64.psid import UnsupportedTune, build_psid, load_psid
from sidlive.c64.songlengths import load_songlengths, song_seconds, songlengths_path
from sidlive.frames import PAL_CLOCK_HZ, PAL_FRAME_RATE_HZ, load

# init ($1000): STA $D401 (subtune) ; LDA #0 ; STA $FB ; LDA #$0F ; STA $D418 ; RTS
# play ($100D): INC $FB ; LDA $FB ; STA $D400 ; RTS
COUNTER_INIT = bytes([0x8D, 0x01, 0xD4, 0xA9, 0x00, 0x85, 0xFB, 0xA9, 0x0F, 0x8D, 0x18, 0xD4, 0x60])
COUNTER_PLAY = bytes([0xE6, 0xFB, 0xA5, 0xFB, 0x8D, 0x00, 0xD4, 0x60])
CIA_TIMER = 0x2666  # ~100.3 Hz at the PAL clock: two play calls per frame
# The same, with init first setting CIA 1 timer A: LDA #lo ; STA $DC04 ; LDA #hi ; STA $DC05
CIA_SETUP = bytes([0xA9, CIA_TIMER & 0xFF, 0x8D, 0x04, 0xDC, 0xA9, CIA_TIMER >> 8, 0x8D, 0x05, 0xDC])


def counter_psid(*, cia: bool = False, songs: int = 3, start_song: int = 2, **kw) -> bytes:
    init = (CIA_SETUP if cia else b"") + COUNTER_INIT
    return build_psid(init + COUNTER_PLAY, load_addr=0x1000, init_addr=0x1000,
                      play_addr=0x1000 + len(init), songs=songs, start_song=start_song,
                      speed_bits=0xFFFFFFFF if cia else 0, title="Counter", author="Test",
                      released="2024 sidlive", **kw)


def _steps(col: np.ndarray) -> np.ndarray:
    return (np.diff(col.astype(np.int64)) % 256)


def test_dump_tune_vbi_counter(tmp_path):
    p = tmp_path / "counter.sid"
    p.write_bytes(counter_psid())
    f = dump_tune(p, seconds=2.0)
    assert len(f) == round(2.0 * PAL_FRAME_RATE_HZ)
    assert (f.clock, f.chip, f.title, f.author, f.source) == ("PAL", "6581", "Counter", "Test", str(p))
    x = f.extra
    assert (x["subtune"], x["speed"], x["status"], x["seconds_from"]) == (2, "vbi", "ok", "--seconds")
    assert x["md5"] == load_psid(p).md5
    assert abs(x["play_hz"] - PAL_FRAME_RATE_HZ) < 0.5
    assert np.all(f.regs[:, 0x01] == 1)  # init got A = subtune - 1
    assert np.all(f.regs[:, 0x18] == 0x0F)
    assert np.all(_steps(f.regs[:, 0x00]) == 1)  # one play call per frame
    assert f.regs[0, 0x00] in (0, 1)
    f1 = dump_tune(p, subtune=1, seconds=1.0)
    assert np.all(f1.regs[:, 0x01] == 0) and f1.extra["subtune"] == 1


def test_dump_tune_cia_speed_calls_play_at_the_timer_rate(tmp_path):
    p = tmp_path / "cia.sid"
    p.write_bytes(counter_psid(cia=True))
    f = dump_tune(p, seconds=4.0)
    assert f.extra["speed"] == "cia" and f.extra["status"] == "ok"
    expect_hz = PAL_CLOCK_HZ / CIA_TIMER
    assert abs(f.extra["play_hz"] - expect_hz) / expect_hz < 0.02
    steps = _steps(f.regs[:, 0x00])
    assert set(np.unique(steps)) <= {1, 2, 3}
    assert abs(steps.mean() - expect_hz / PAL_FRAME_RATE_HZ) < 0.05


def test_default_seconds_and_errors(tmp_path):
    p = tmp_path / "counter.sid"
    p.write_bytes(counter_psid())
    tune = load_psid(p)
    assert resolve_seconds(tune, 2, None, None, p) == (DEFAULT_SECONDS, "default")
    assert resolve_seconds(tune, 2, None, {tune.md5: [1.0, 7.5, 2.0]}, p) == (7.5, "Songlengths.md5")
    assert resolve_seconds(tune, 2, 3.0, {tune.md5: [1.0, 7.5]}, p) == (3.0, "--seconds")
    with pytest.raises(ValueError, match=r"seconds is -1.0, allowed 0 < seconds <= 3600"):
        resolve_seconds(tune, 2, -1.0, None, p)
    with pytest.raises(ValueError, match=r"counter\.sid: subtune is 4, allowed 1\.\.3 \(songs\)"):
        dump_tune(p, subtune=4, seconds=1.0)
    r = tmp_path / "r.sid"
    r.write_bytes(counter_psid(magic=b"RSID"))
    with pytest.raises(UnsupportedTune, match=r"^not supported: RSID tune .*r\.sid"):
        dump_tune(r, seconds=1.0)


def test_songlengths_found_above_the_tune(tmp_path):
    tune_bytes = counter_psid()
    p = tmp_path / "MUSICIANS" / "T" / "counter.sid"
    p.parent.mkdir(parents=True)
    p.write_bytes(tune_bytes)
    (tmp_path / "DOCUMENTS").mkdir()
    md5 = load_psid(p).md5
    (tmp_path / "DOCUMENTS" / "Songlengths.md5").write_text(
        f"[Database]\n; /MUSICIANS/T/counter.sid\n{md5}=0:09 0:01.500 0:04\n")
    f = dump_tune(p)
    assert f.extra["seconds_from"] == "Songlengths.md5"
    assert len(f) == round(1.5 * PAL_FRAME_RATE_HZ)


def test_cli_regs_and_txt(tmp_path, capsys):
    p = tmp_path / "counter.sid"
    p.write_bytes(counter_psid())
    out = tmp_path / "c.regs"
    assert main([str(p), "--subtune", "3", "--seconds", "1", "-o", str(out)]) == 0
    assert "status ok" in capsys.readouterr().out
    f = load(out)
    assert len(f) == round(PAL_FRAME_RATE_HZ) and np.all(f.regs[:, 0x01] == 2)
    assert f.extra["subtune"] == 3 and f.title == "Counter"
    txt = tmp_path / "c.txt"
    assert main([str(p), "--subtune", "3", "--seconds", "1", "-o", str(txt)]) == 0
    assert np.array_equal(load(txt).regs, f.regs)
    assert main([str(p), "--seconds", "1", "-o", str(tmp_path / "c.wav")]) == 2
    assert "extension must be .regs or .txt" in capsys.readouterr().err
    bad = tmp_path / "bad.sid"
    bad.write_bytes(b"JUNK" + bytes(300))
    assert main([str(bad), "-o", str(out)]) == 1
    assert "bad.sid: magic (offset $00) is b'JUNK'" in capsys.readouterr().err


def _short_real_tunes(hvsc, n: int, max_seconds: float = 40.0):
    table = load_songlengths(songlengths_path(hvsc))
    picked = []
    for path in sorted(hvsc.rglob("*.sid")):
        t = load_psid(path)
        secs = song_seconds(table, t.md5, t.start_song)
        if t.play_addr and not t.speed_cia(t.start_song) and secs and secs <= max_seconds:
            picked.append((path, secs))
            if len(picked) == n:
                break
    return picked


def test_real_tunes(hvsc):
    for path, secs in _short_real_tunes(hvsc, 2):
        f = dump_tune(path)  # length from the collection's Songlengths.md5
        assert f.extra["seconds_from"] == "Songlengths.md5"
        assert f.extra["status"] == "ok", f.extra["message"]
        assert len(f) == round(secs * PAL_FRAME_RATE_HZ)
        assert np.any(f.regs[:, 0x18] & 0x0F)  # volume up at some point
        assert np.any(f.regs[:, [0x04, 0x0B, 0x12]] & 1)  # some voice gated
        assert len(np.unique(f.regs, axis=0)) > 10  # the registers move


def test_verify_dump_agrees_with_the_oracle_on_real_tunes(hvsc):
    pytest.importorskip("pysidtracker")
    from sidlive.measure.dumpcheck import code_hints, compare_one, sample_tunes
    picks = sample_tunes(hvsc, 2, seed=3, cia=False)
    assert len(picks) == 2
    for rel, sub in picks:
        rec = compare_one((str(hvsc), rel, sub, 300))
        assert rec["result"] in ("identical", "differs"), rec
        assert rec["frames"] >= 300
    assert code_hints(bytes([0xAD, 0x1B, 0xD4])) == ["reads osc3 $D41B"]
    assert code_hints(bytes([0x8D, 0x1B, 0xD4])) == []


def test_gate_restart_inside_a_frame_is_marked_unless_raw(tmp_path):
    # play: LDA #$40 ; STA $D404 (gate off) ; LDA #$41 ; STA $D404 (gate on) ; RTS
    play = bytes([0xA9, 0x40, 0x8D, 0x04, 0xD4, 0xA9, 0x41, 0x8D, 0x04, 0xD4, 0x60])
    p = tmp_path / "retrig.sid"
    p.write_bytes(build_psid(COUNTER_INIT + play, load_addr=0x1000, init_addr=0x1000,
                             play_addr=0x1000 + len(COUNTER_INIT)))
    raw = dump_tune(p, seconds=1.0, raw=True)
    assert np.all(raw.regs[:, 0x04] == 0x41)  # the snapshots alone never see the gate drop
    assert raw.extra["raw"] and raw.extra["retriggers"] == 0
    marked = dump_tune(p, seconds=1.0)
    gate = marked.regs[:, 0x04] & 1
    assert marked.extra["retriggers"] == int((gate == 0).sum()) > len(marked) // 3
    assert np.all(marked.regs[:, 0x04] | 1 == 0x41)  # only gate bits change
    assert main([str(p), "--seconds", "1", "--raw", "-o", str(tmp_path / "r.regs")]) == 0
    assert np.array_equal(load(tmp_path / "r.regs").regs, raw.regs)
