"""`sidlive live` as a command: setup errors, the null output, the headless JSON line, OSC
control, the launch measurement, and the rich view with its keys."""
from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import pytest
from rich.console import Console

from sidlive.commands import live
from sidlive.control.params import ControlState
from sidlive.live.view import filter_text, key_events, note_name, render_view, run_view, waveform

TINY = dict(context_frames=16, d_global=32, n_layers_global=2, n_heads_global=2, mlp_mult_global=2,
            d_local=16, n_layers_local=2, n_heads_local=2, mlp_mult_local=2, d_readout=32,
            composers=("any", "Rob Hubbard", "Martin Galway"), init_std=0.4, copy_bonus_init=-5.0)
QUIET = ["--midi", "none", "--no-osc", "--loops", "presets/loops"]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from engine.config import ModelConfig
    from training.export import export_model
    from training.model import SidModel
    torch.manual_seed(11)
    path = tmp_path_factory.mktemp("cli") / "tiny.sidm"
    export_model(SidModel(ModelConfig(**TINY)), path, {"source": "sidlive live CLI test"}, log=None)
    return path


def test_missing_model_is_a_clear_error(capsys, tmp_path):
    assert live.main(["--model", str(tmp_path / "nope.sidm"), "--headless", "--audio", "null", *QUIET]) == 2
    assert f"model {tmp_path / 'nope.sidm'} does not exist" in capsys.readouterr().err
    if not live.DEFAULT_MODEL.is_file():
        assert live.main(["--headless", "--audio", "null", *QUIET]) == 2
        err = capsys.readouterr().err
        assert "presets/models/default.sidm does not exist" in err and "training.export" in err


def test_bad_controller_and_loop_are_named(capsys, model_path, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[[knob]]\ncc = 16\nparam = "warp"\n')
    assert live.main(["--model", str(model_path), "--headless", "--audio", "null", "--no-osc",
                      "--midi", "dummy", "--controller", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.toml: line 4: knob[0].param" in err and "'warp'" in err
    assert live.main(["--model", str(model_path), "--headless", "--audio", "null", *QUIET, "--loop", "nosuch"]) == 2
    assert "no loop named 'nosuch'" in capsys.readouterr().err


def test_no_audio_device_without_and_with_record(capsys, model_path, tmp_path):
    assert live.main(["--model", str(model_path), "--headless", "--audio", "no-such-device", *QUIET]) == 3
    err = capsys.readouterr().err
    assert "no-such-device" in err and "--record" in err
    rc = live.main(["--model", str(model_path), "--headless", "--audio", "no-such-device", *QUIET,
                    "--seconds", "1.5", "--record", str(tmp_path / "take.wav"), "--loop", "dojo"])
    out, err = capsys.readouterr()
    assert rc == 0 and "running on the null output" in err
    st = json.loads(out.strip().splitlines()[-1])
    for key in ("frames_played", "audio_underruns", "ring_underruns", "generator_fps", "callback_ms_p99",
                "first_audio_s", "latency", "cpu_percent"):
        assert key in st
    assert st["output"] == "null" and st["frames_played"] > 10
    assert st["recording"]["frames_in"] >= st["frames_played"] and (tmp_path / "take.regs").is_file()


def test_osc_controls_a_headless_session(model_path, wait):
    from pythonosc.udp_client import SimpleUDPClient
    d = live.LiveDaemon(live.LiveConfig(model=model_path, audio="null", midi="none", osc_port=0, rt_priority=0),
                        on_message=lambda m: None).start()
    try:
        c = SimpleUDPClient("127.0.0.1", d.ports.osc.port)
        assert wait(lambda: d.audio.frames_played > 5)
        c.send_message("/sidlive/temperature", 0.5)
        c.send_message("/sidlive/mute", [2, 1])
        c.send_message("/sidlive/reseed", [])
        assert wait(lambda: d.controls.state.temperature == 0.5 and d.controls.state.reseed == 1)
        assert wait(lambda: d.audio.renderer.muted_voices == {2})
        assert wait(lambda: d.genthread.rollback_log and d.genthread.gen.settings["temperature"] == 0.5)
        assert wait(lambda: d.audio.frame_sound_time(d.genthread.rollback_log[-1][1]) is not None)
        c.send_message("/sidlive/temperature", 9.0)   # out of range: dropped, counted
        assert wait(lambda: d.ports.osc.dropped == 1)
    finally:
        st = d.stop()
    assert st["osc"]["accepted"] == 3 and st["latency"]["generator_changes"] >= 1


def test_launch_time_is_measured_from_process_start(model_path):
    from sidlive.measure.soak import launch_time
    fig = launch_time(model_path, runs=1)
    assert "error" not in fig, fig
    assert 0 < fig["first_audio_s"] < fig["process_wall_s"]


def test_view_shows_voices_filter_and_settings(model_path):
    assert note_name(0) == "-" and note_name(7493) == "A4" and note_name(7938) == "A#4"   # PAL: 440 / 466 Hz
    assert waveform(0x41) == "pulse" and waveform(0x15) == "tri (ring)" and waveform(0) == "-"
    regs = [0] * 25
    regs[0x15], regs[0x16], regs[0x17], regs[0x18] = 7, 0x80, 0xF5, 0x1F
    assert filter_text(regs) == "cutoff 1031  res 15  route 1+3  mode LP  vol 15"
    d = live.LiveDaemon(live.LiveConfig(model=model_path, audio="null", midi="dummy", osc_port=None, rt_priority=0,
                                        loop="dojo", loop_mode="call_response"), on_message=lambda m: None).start()
    try:
        time.sleep(0.3)
        con = Console(record=True, width=160)
        con.print(render_view(d))
        text = con.export_text()
        run_view(d, seconds=0.3)    # stdin is not a terminal here: no keys, just the view
    finally:
        d.stop()
    for words in ("voice", "waveform", "filter: cutoff", "temperature 1.00", "loop dojo (call_response, call)",
                  "lookahead", "underruns audio 0", "1 2 3 mute", "keyboard ch 2 -> voice 1: -"):
        assert words in text, words


def test_keys_mirror_the_controls():
    s = ControlState()
    assert key_events("q", s) == "quit" and key_events("R", s) == "reload" and key_events("?", s) == ""
    (ev,) = key_events("2", s)
    assert (ev.name, ev.op) == ("mute_2", "toggle")
    (ev,) = key_events("6", s)
    assert ev.name == "solo_3"
    (ev,) = key_events("T", s)
    assert ev.name == "temperature" and ev.value == pytest.approx(1.1)   # the default 1.0 x 1.1
    (ev,) = key_events("k", s.replace(top_k=2))
    assert ev.value == 0                      # clamped to the range
    for key, name in (("r", "reseed"), ("]", "next_loop"), ("[", "prev_loop"), ("s", "capture_loop"),
                      ("x", "panic"), (" ", "panic")):
        (ev,) = key_events(key, s)
        assert (ev.name, ev.op) == (name, "trigger")
    (ev,) = key_events("m", s)
    assert (ev.name, ev.op) == ("loop_mode", "toggle")
    (ev,) = key_events("L", s)
    assert (ev.name, ev.value) == ("lookahead_frames", 4)
    for key, name in (("f", "fx_bypass"), ("b", "keyboard")):
        (ev,) = key_events(key, s)
        assert (ev.name, ev.op) == (name, "toggle")


def test_kill_9_leaves_a_valid_wav_and_a_recoverable_take(model_path, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from sidlive.audio.recover import recover
    from sidlive.audio.wav import read_wav
    cmd = [sys.executable, "-m", "sidlive.commands.live", "--model", str(model_path), "--audio", "null", "--headless",
           *QUIET, "--record", str(tmp_path / "take.wav")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wav = tmp_path / "take.wav"
    try:
        deadline = time.monotonic() + 30
        while (not wav.exists() or wav.stat().st_size < 150_000) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    samples, rate = read_wav(wav)          # valid as it lies, up to its last header update
    assert rate == 48_000 and len(samples) > 48_000
    lines = recover(tmp_path / "take")
    assert any("take.regs:" in line for line in lines)
    from sidlive.frames import load_regs
    frames = load_regs(tmp_path / "take.regs")
    assert len(frames) >= len(samples) // 958 - 60


def test_each_run_gets_its_own_seed_said_recorded_and_replayable(capsys, model_path, tmp_path):
    """Without --seed every run reseeds from a fresh random base seed; the run says it, the
    take's metadata and the JSON line hold it, and --seed N plays the same frames again."""
    from sidlive.frames import load_regs
    seeds, takes = [], []
    for i in range(2):
        assert live.main(["--model", str(model_path), "--headless", "--audio", "null", *QUIET, "--seconds", "1",
                          "--record", str(tmp_path / f"t{i}.wav")]) == 0
        out, err = capsys.readouterr()
        seed = json.loads(out.strip().splitlines()[-1])["seed"]
        assert f"seed {seed}" in err and load_regs(tmp_path / f"t{i}.regs").extra["seed"] == seed
        seeds.append(seed)
        takes.append(load_regs(tmp_path / f"t{i}.regs").regs)
    assert seeds[0] != seeds[1]
    assert live.main(["--model", str(model_path), "--headless", "--audio", "null", *QUIET, "--seconds", "1",
                      "--record", str(tmp_path / "again.wav"), "--seed", str(seeds[0])]) == 0
    again = load_regs(tmp_path / "again.regs").regs
    n = min(len(again), len(takes[0]))
    assert n > 20 and np.array_equal(again[:n], takes[0][:n])


def test_the_silence_guard_is_a_flag(model_path):
    """`--max-silence-s` reaches the generator (default 0.5 s; 0 lets the model stay silent)."""
    assert live.config_from_args(live.build_parser().parse_args([])).max_silence_s == 0.5
    cfg = live.config_from_args(live.build_parser().parse_args(["--max-silence-s", "0", "--model", str(model_path)]))
    cfg = dataclasses.replace(cfg, audio="null", midi=None, osc_port=None, rt_priority=0)
    d = live.LiveDaemon(cfg, on_message=lambda m: None).start()
    try:
        assert d.genthread.gen.settings["max_silence_s"] == 0.0
    finally:
        d.stop()


def test_a_silence_guard_out_of_range_is_a_setup_error(capsys, model_path):
    rc = live.main(["--model", str(model_path), "--audio", "null", "--headless", "--seconds", "1", "--midi", "none",
                    "--no-osc", "--max-silence-s", "-1"])
    err = capsys.readouterr().err
    assert rc == live.SETUP_EXIT and "--max-silence-s must be in 0..60" in err and "-1" in err
    assert "Traceback" not in err
