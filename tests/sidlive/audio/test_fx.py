"""Effects with pyo: presets, the offline render (--fx) and the live chain in the audio callback."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

from sidlive.audio.fx import EFFECTS, FxError, find_chain, parse_chain, preset_paths
from sidlive.audio.wav import read_wav
from sidlive.commands import render

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


def test_live_chain_in_the_callback_is_the_offline_chain(model_path, tmp_path, wait):
    """The engine's callback runs the chain in place over what it renders: its output is
    what `sidlive render --fx` (pyo's offline server) makes of the dry take it recorded."""
    from sidlive.audio.fx import FxHost, render_fx
    from sidlive.audio.recording import Recorder
    from tests.sidlive.live.test_daemon import Rig

    (tmp_path / "fx.toml").write_text(DUB)
    chain = find_chain(tmp_path / "fx.toml")
    rec = Recorder(tmp_path / "take", rate_hz=48_000, block_frames=256, meta={"extra": {"subframes": 4}}).start()
    rig = Rig(model_path, recorder=rec)
    fx = FxHost(chain, 48_000, 256, bypass=False)
    rig.audio.fx = fx
    wet = []
    try:
        for _ in range(400):                                          # 2.1 s
            rig.blocks(1, wait)
            wet.append(rig.out[:, 0].copy())
    finally:
        rig.close()
        rec.close()
        fx.close()
    wet = np.concatenate(wet)
    dry, _ = read_wav(tmp_path / "take.wav")
    assert len(dry) == len(wet) and np.ptp(dry) > 2000, "the model played nothing"
    assert fx.blocks == 400 and fx.dry_blocks == 0 and fx.max_s > 0.0
    render_fx(tmp_path / "take.wav", tmp_path / "off.wav", chain, tail_s=0.0)
    off, _ = read_wav(tmp_path / "off.wav")
    live = np.round(wet * 32767).astype(np.int64)
    n = min(len(off), len(live))
    assert n >= len(live) - 256
    err = np.abs(live[:n] - off[:n].astype(np.int64))
    assert err.max() <= 2, err.max()                                 # the 16-bit WAV's rounding
    echo = np.abs(live[:n] - dry[:n].astype(np.int64))
    assert echo.max() > 1000                                         # and it is not the dry signal


def test_fx_host_bypass_blocks_and_close(tmp_path):
    from sidlive.audio.fx import FxHost
    fx = FxHost(find_chain("dub"), 48_000, 256, bypass=True)
    x = (np.random.default_rng(1).standard_normal(256 * 8) * 0.2).astype(np.float32)
    y = x.copy()
    fx.process(y[:256])                     # the server's first block fades in
    fx.process(y[256:768])                  # two pyo buffers in one callback block
    assert np.abs(y[256:768] - x[256:768]).max() < 1e-6                # bypassed: the dry signal (-120 dB)
    fx.set("fx_bypass", False)
    fx.process(y[768:1024])
    fx.process(y[1024:1024 + 100])          # not a multiple of 256: passed on dry, counted
    assert np.array_equal(y[1024:1124], x[1024:1124]) and fx.dry_blocks == 1 and fx.blocks == 3
    fx.process(y[1124:1380])
    assert np.abs(y[1124:1380] - x[1124:1380]).max() > 0.01             # the chain is in
    assert fx.stats()["chain"] == "Dub" and fx.stats()["blocks"] == 4
    fx.close()
    fx.close()                                                        # twice is safe
    z = x[:256].copy()
    fx.process(z)                                                     # closed: untouched
    assert np.array_equal(z, x[:256])
    with pytest.raises(FxError, match="block_frames: 8 is out of range 16..8192"):
        FxHost(find_chain("dub"), 48_000, 8)


def test_live_chain_on_jack_runs_in_our_callback_and_follows_controls(jack, model_path, tmp_path, wait):
    from sidlive.audio.jackserver import portaudio_jack_device
    from sidlive.control.params import ControlEvent
    from tests.sidlive.live.test_daemon import _daemon

    if portaudio_jack_device() is None:
        pytest.skip("this PortAudio build has no JACK host API")
    d, msgs = _daemon(model_path, tmp_path, audio="jack", fx="dub")
    d.start()
    try:
        assert d.ports.fx is not None and d.audio.fx is d.ports.fx, msgs
        assert d.ports.fx.graph.wet_amount.value == 0.0                     # bypassed by default
        d.post(ControlEvent("fx_bypass", False))
        d.post(ControlEvent("fx_delay_time_ms", 500.0))
        assert wait(lambda: d.ports.fx.graph.wet_amount.value == 1.0)
        assert wait(lambda: abs(d.ports.fx.graph.sigs["fx_delay_time_ms"][0].value - 0.5) < 1e-9)
        assert wait(lambda: d.audio.frames_played > 100, timeout_s=15)
        clients = subprocess.run(["jack_lsp"], capture_output=True, text=True, timeout=5).stdout
    finally:
        st = d.stop()
    assert not any(p.startswith("sidlive-fx") for p in clients.split())   # no JACK client of its own
    assert st["fx"]["chain"] == "Dub" and st["fx"]["bypass"] is False
    assert st["fx"]["blocks"] > 100 and st["fx"]["dry_blocks"] == 0
    opened = "effects 'Dub' in the audio callback (filter > delay > reverb): bypassed"
    assert any(m.startswith(opened) for m in msgs), msgs
    d.ports.fx.close()                                                      # twice is safe


def test_live_chain_on_the_null_output_and_a_bad_preset(model_path, tmp_path, wait):
    from tests.sidlive.live.test_daemon import _daemon
    d, msgs = _daemon(model_path, tmp_path, audio="null", fx="room", fx_on=True, record=tmp_path / "s.wav")
    d.start()
    try:
        assert d.ports.fx is not None and d.audio.fx is d.ports.fx
        assert wait(lambda: d.ports.fx.blocks > 50, timeout_s=15)
    finally:
        st = d.stop()
    assert st["fx"]["dry_blocks"] == 0 and st["fx"]["bypass"] is False
    d2, _ = _daemon(model_path, tmp_path, fx="nope")
    from sidlive.live.daemon import LiveError
    with pytest.raises(LiveError, match="no such preset"):
        d2.start()
