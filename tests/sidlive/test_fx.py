"""Effects with pyo: presets, the offline render (--fx) and the live chain on JACK."""
from __future__ import annotations

import time

import numpy as np
import pytest

from sidlive import render
from sidlive.fx import EFFECTS, FxError, find_chain, jack_connections, parse_chain, preset_paths
from sidlive.wav import read_wav

pytest.importorskip("pyo")

DUB = 'name = "t"\n[[effect]]\ntype = "delay"\ntime_ms = 200\nfeedback = 0.5\nmix = 0.5\n'


def test_shipped_presets_load_and_name_their_controls():
    paths = preset_paths()
    assert {p.stem for p in paths} >= {"room", "dub", "chorus"}
    for p in paths:
        chain = find_chain(p.stem)
        assert chain.effects and all(k in EFFECTS for k, _ in chain.effects)
        assert all(name.startswith("fx_") for name in chain.values())
    assert find_chain("dub").values()["fx_delay_time_ms"] == 360.0


@pytest.mark.parametrize("text, line, problem", [
    (DUB.replace("time_ms = 200", "time_ms = 5000"), 4, "effect[0].time_ms: 5000 is out of range 1..2000"),
    (DUB.replace('"delay"', '"flanger"'), 3, "effect[0].type: 'flanger' is not one of reverb, delay"),
    (DUB + "colour = 1\n", 7, "effect[0].colour: unknown key; delay has: time_ms, feedback, mix"),
    (DUB + '[[effect]]\ntype = "delay"\n', 8, "effect[1].type: delay is already in the chain"),
    ('name = ""\n', 1, "name: must be a non-empty string"),
    ('name = "x"\nspeed = 2\n', 2, "speed: unknown key"),
])
def test_bad_presets_name_file_line_and_field(text, line, problem):
    with pytest.raises(FxError, match=rf"^fx\.toml: line {line}: " + problem.replace("[", r"\[").replace("]", r"\]")):
        parse_chain(text, "fx.toml")


def test_unknown_preset_lists_the_shipped_ones():
    with pytest.raises(FxError, match="no such preset; presets: chorus, dub, room"):
        find_chain("nope")


def test_render_with_fx_keeps_the_dry_take_and_adds_the_tail(tmp_path, capsys):
    src = tmp_path.parent / "in.regs"
    from sidlive.frames import PAL_FRAME_RATE_HZ, Frames, save
    t = np.arange(100)
    regs = np.zeros((100, 25), np.uint8)
    regs[:, 1] = 30                                   # voice 1: a pulse note for 1 s, then silence
    regs[:, 3] = 8
    regs[:, 4] = np.where(t < 50, 0x41, 0x40)
    regs[:, 6] = 0xF0
    regs[:, 0x18] = 0x0F
    save(Frames(regs), src)
    out = tmp_path / "wet.wav"
    assert render.main([str(src), "-o", str(out), "--fx", str(tmp_path.parent / "fx.toml")]) == 1
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "fx.toml").write_text(DUB)
    assert render.main([str(src), "-o", str(out), "--fx", str(tmp_path / "fx.toml"), "--fx-tail", "1",
                        "--chip", "8580"]) == 0
    text = capsys.readouterr().out
    assert "effects 't'" in text and "effects CPU" in text
    dry, r1 = read_wav(tmp_path / "wet.dry.wav")
    wet, r2 = read_wav(out)
    assert r1 == r2 == 48_000 and len(dry) == round(100 / PAL_FRAME_RATE_HZ * 48_000)
    assert abs(len(wet) - (len(dry) + 48_000)) <= 256             # one second of tail (pyo works in blocks)
    note_end = int(50 / PAL_FRAME_RATE_HZ * 48_000)
    loud = np.ptp(dry[note_end - 4800:note_end])
    quiet = np.ptp(dry[note_end + 4800:note_end + 9600])               # 100-200 ms after the note
    echo = np.ptp(wet[note_end + 4800:note_end + 9600])                # the note 200 ms later (delay, mix 0.5)
    assert loud > 2000 and quiet < loud / 20 and echo > loud / 4, (loud, quiet, echo)
    assert render.main([str(src), "-o", str(out), "--fx", "dub", "--fx-tail", "99"]) == 1
    assert "tail_s: 99.0 is out of range 0..30 s" in capsys.readouterr().err


def test_live_chain_on_jack_routes_through_pyo_and_follows_controls(jack, model_path, tmp_path, wait):
    from sidlive.controls import ControlEvent
    from sidlive.jackserver import portaudio_jack_device
    from tests.sidlive.test_daemon import _daemon

    if portaudio_jack_device() is None:
        pytest.skip("this PortAudio build has no JACK host API")
    d, msgs = _daemon(model_path, tmp_path, audio="jack", fx="dub")
    d.start()
    try:
        assert d.fx is not None, msgs
        conns = jack_connections()
        assert conns["sidlive-fx:input_1"] == ["PortAudio:out_0"], conns          # our output feeds the chain
        assert conns["system:playback_1"] == ["sidlive-fx:output_1"], conns       # the chain feeds the speakers
        assert conns["system:playback_2"] == ["sidlive-fx:output_2"], conns
        import pyo
        peak = pyo.PeakAmp(d.fx.graph.out)
        assert d.fx.graph.wet_amount.value == 0.0                     # bypassed by default
        d.post(ControlEvent("fx_bypass", False))
        d.post(ControlEvent("fx_delay_time_ms", 500.0))
        assert wait(lambda: d.fx.graph.wet_amount.value == 1.0)
        assert wait(lambda: abs(d.fx.graph.sigs["fx_delay_time_ms"][0].value - 0.5) < 1e-9)
        assert wait(lambda: peak.get() > 0.0, timeout_s=10), "no audio through the chain"
        assert wait(lambda: d.engine.frames_played > 100, timeout_s=15)
    finally:
        st = d.stop()
    assert st["fx"] == {"chain": "Dub", "routes": 2, "bypass": False}
    assert any("effects 'Dub' via sidlive-fx" in m for m in msgs)
    d.fx.close()                                                      # twice is safe
    time.sleep(0.2)
    assert not any(p.startswith("sidlive-fx") for p in jack_connections())


def test_live_without_jack_plays_dry_and_says_so(model_path, tmp_path):
    from tests.sidlive.test_daemon import _daemon
    d, msgs = _daemon(model_path, tmp_path, audio="null", fx="room", record=tmp_path / "s.wav")
    d.start()
    try:
        assert d.fx is None
    finally:
        d.stop()
    assert any("need the JACK output" in m and "playing dry" in m for m in msgs)
    d2, _ = _daemon(model_path, tmp_path, fx="nope")
    from sidlive.session import LiveError
    with pytest.raises(LiveError, match="no such preset"):
        d2.start()
