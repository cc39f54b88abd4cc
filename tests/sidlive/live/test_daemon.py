"""The live daemon's real-time parts and the whole session on real parts: a model exported
by the training pipeline, the Renderer, the ring, the Recorder, a sounddevice stream on a
JACK dummy server, JACK MIDI through rtmidi."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from sidlive.audio.jackserver import JackServer, jackd_path, portaudio_jack_device
from sidlive.audio.recording import Recorder, session_paths
from sidlive.audio.ring import FrameRing
from sidlive.audio.wav import read_wav
from sidlive.control.params import ControlState
from sidlive.frames import CANON_MASK, CONTROL_REGS, load_regs
from sidlive.live.callback import EV_MUTE, EV_PANIC, EV_RESUME, AudioCallback
from sidlive.live.genthread import GeneratorThread, GenRequest
from sidlive.live.loops import Arrangement
from sidlive.measure.replay import compare_take, replay_take
from sidlive.paths import CONTROLLERS_DIR
from sidlive.paths import LOOPS_DIR as LOOPS

NANO = str(CONTROLLERS_DIR / "korg_nanokontrol2.toml")
class _TI:
    currentTime = 0.0
    outputBufferDacTime = 0.005


class _St:
    output_underflow = False


def req(seq, temperature=1.0, seed=5, panic=0, loop=None, mode="prime"):
    return GenRequest(seq, temperature, 0, 1.0, 0, seed, loop, (-1 if loop is None else 0, id(loop)), mode, panic, 3)


class Rig:
    """Engine + generator thread driven block by block by the test (no output thread)."""

    def __init__(self, model_path, recorder=None, seed=5):
        from engine.generator import Generator
        self.gen = Generator(model_path, max_rollback_frames=64, seed=seed, temperature=1.0, log=None)
        self.ring = FrameRing(32)
        self.audio = AudioCallback(self.ring, recorder=recorder, state=ControlState())
        self.arr = Arrangement()
        self.gt = GeneratorThread(self.gen, self.ring, self.audio, self.arr)
        self.gt.set_context(None)
        self.gt.prefill(req(1, seed=seed))
        self.gt.start()
        self.out = np.zeros((256, 1), np.float32)

    def _ready(self):
        """The next frame is there, or the producer waits for the consumer's answer to its
        rollback request (which only a callback gives)."""
        r = self.ring
        if r.rollback_pending:
            return r._ack[0] != r._req[0]
        return r.lookahead_frames >= 3

    def blocks(self, n, wait):
        for _ in range(n):
            assert wait(self._ready)
            self.audio.callback(self.out, 256, _TI, _St)
            self.gt.wake.set()

    def publish(self, state, seq):
        self.audio.published = (seq, state, time.perf_counter(), 0)

    def close(self):
        self.gt.stop()


def test_rollback_regenerates_from_the_playhead_exactly(model_path, wait):
    """Frames before the cut were made with the old temperature, frames from the cut with
    the new one: the same as an offline Generator switching at that frame."""
    from engine.generator import Generator
    rig = Rig(model_path)
    try:
        rig.blocks(40, wait)
        rig.gt.request = req(2, temperature=0.5)
        assert wait(lambda: rig.gt.rollback_log or rig.blocks(1, wait), timeout_s=10)
        rig.blocks(60, wait)
        seq, cut, _ = rig.gt.rollback_log[0]
        played = rig.ring.read_pos
    finally:
        rig.close()
    assert seq == 2 and rig.ring.rollbacks == 1 and rig.ring.underruns == 0 and cut < played
    assert rig.ring.dropped_frames >= 1   # unplayed lookahead dropped, not played
    ref = Generator(model_path, max_rollback_frames=64, seed=5, temperature=1.0, log=None)
    ref.prime(np.zeros((1, 25), np.uint8))
    before = ref.generate(cut)
    ref.set_sampling(temperature=0.5)
    after = ref.generate(played - cut)
    hist = rig.gt.hist
    assert np.array_equal(hist[:cut], before & CANON_MASK)     # played canonical (what a .regs holds)
    assert np.array_equal(hist[cut:played], after & CANON_MASK)
    old = Generator(model_path, max_rollback_frames=64, seed=5, temperature=1.0, log=None)
    old.prime(np.zeros((1, 25), np.uint8))
    assert not np.array_equal(old.generate(played)[cut:], after)   # the change was real


def test_mute_and_panic_act_within_a_block_and_the_take_replays(model_path, tmp_path, wait):
    rec = Recorder(tmp_path / "take", rate_hz=48_000, block_frames=256, meta={"extra": {"subframes": 4}}).start()
    rig = Rig(model_path, recorder=rec)
    logged = []
    try:
        rig.blocks(30, wait)
        state = ControlState().replace(mute_2=True)
        rig.publish(state, 2)
        rig.blocks(1, wait)
        assert rig.audio.renderer.muted_voices == {2}        # in the first block after the swap
        rig.blocks(40, wait)
        state = state.replace(panic=1, solo_3=True)
        rig.publish(state, 3)
        rig.gt.request = req(3, panic=1)
        rig.blocks(1, wait)
        regs = rig.audio.renderer.registers
        assert all(regs[c] & 1 == 0 for c in CONTROL_REGS)     # every gate off at once
        assert rig.audio.renderer.muted_voices == {1, 2}      # solo 3 (mute 2 kept)
        rig.blocks(80, wait)
    finally:
        rig.close()
        events, _, lost = rig.audio.read_events(0)
        for seq, kind, a, b, sample, heard, _, _ in events:
            if kind == EV_MUTE:
                rec.log_control("renderer.mute", {"voice": a, "muted": bool(b), "sample": sample})
            elif kind == EV_PANIC:
                rec.log_control("renderer.panic", {"count": a, "sample": sample})
            elif kind == EV_RESUME:
                rec.log_control("renderer.resume", {"count": a, "sample": sample})
            logged.append((kind, sample, heard))
        stats = rec.close()
    assert lost == 0 and stats["dropped_blocks"] == 0
    mutes = [(s, h) for k, s, h in logged if k == EV_MUTE]
    assert [s for s, _ in mutes] == [30 * 256, 71 * 256]   # applied at the block's first sample
    # panic is silence: below -60 dBFS 10 ms after the callback took it, until the first
    # frame generated after it plays; then the music comes back
    (_, p_sample, p_heard), = [e for e in logged if e[0] == EV_PANIC]
    resumes = [s for k, s, _ in logged if k == EV_RESUME]
    take, _ = read_wav(session_paths(tmp_path / "take")["wav"])
    quiet = take[p_sample + 480:resumes[0]].astype(np.float64)
    assert len(resumes) == 1 and len(quiet) > 0
    assert 20 * np.log10(max(np.sqrt(np.mean(quiet ** 2)), 1e-9) / 32768) < -60
    assert all(s <= h < s + 256 * 2 for s, h in mutes)                # heard from the next step (< 5.2 ms)
    seq, cut, _ = rig.gt.rollback_log[-1]
    frames = load_regs(session_paths(tmp_path / "take")["regs"]).regs
    assert len(frames) == rig.audio.renderer.frames_rendered
    start = rig.ring.read_pos - len(frames)    # no underruns: row k is position k
    assert start == 0 and rig.ring.underruns == 0
    after_panic = frames[cut - 1:cut + 1]       # the last frame before the cut was masked, the cut is gate-off
    assert all(row[c] & 1 == 0 for row in after_panic for c in CONTROL_REGS)
    # the recorded WAV is the offline render of the recorded frames with the mutes replayed
    cmp = compare_take(tmp_path / "take")
    live, offline = replay_take(tmp_path / "take")
    assert len(live) == 152 * 256 == cmp["samples"]
    floor = cmp["offline_vs_offline"]
    assert cmp["live_vs_offline"]["max_abs"] <= max(4 * floor["max_abs"], 256)
    assert cmp["live_vs_offline"]["rms_diff_db"] < -50
    # ...and not without them: the mutes and the panic really changed the sound
    log = session_paths(tmp_path / "take")["log"]
    log.write_text("")
    live2, unmuted = replay_take(tmp_path / "take")
    assert np.abs(live2.astype(int) - unmuted.astype(int)).max() > 8 * max(floor["max_abs"], 32)


def test_call_response_plays_the_loop_verbatim_then_answers(model_path, wait):
    from sidlive.live.loops import Loop, LoopLibrary
    shipped = LoopLibrary(LOOPS).loops[0]
    lp = Loop("short", shipped.path, shipped.frames.slice(0, 100))
    rig = Rig(model_path)
    try:
        rig.blocks(10, wait)
        rig.gt.request = req(2, loop=lp, mode="call_response")
        n = len(lp.regs)
        target = 2 * n + 40
        while rig.ring.read_pos < (rig.gt.rollback_log[0][1] if rig.gt.rollback_log else 0) + target:
            rig.blocks(20, wait)
    finally:
        rig.close()
    cut = rig.gt.rollback_log[0][1]
    hist = rig.gt.hist
    assert np.array_equal(hist[cut:cut + n], lp.regs)                 # the call, verbatim
    assert not np.array_equal(hist[cut + n:cut + 2 * n], lp.regs)     # the model's answer
    assert np.array_equal(hist[cut + 2 * n:cut + 2 * n + 40], lp.regs[:40])   # and the call again
    assert rig.gen.length == rig.ring.write_pos + rig.gt.offset       # the model heard everything played


def test_prime_mode_swaps_in_a_primed_context(model_path, wait):
    from sidlive.live.loops import LoopLibrary
    lp = LoopLibrary(LOOPS).loops[1]
    rig = Rig(model_path)
    try:
        rig.blocks(10, wait)
        rig.gt.request = req(2, loop=lp, mode="prime")
        assert wait(lambda: rig.gt.primes or rig.blocks(1, wait), timeout_s=20)
        rig.blocks(20, wait)
        cut = rig.gt.rollback_log[-1][1]
        ctx = rig.gen.cfg.context_frames
        first = rig.gt.hist[cut].copy()
    finally:
        rig.close()
    assert rig.ring.underruns == 0
    from engine.generator import Generator
    ref = Generator(model_path, max_rollback_frames=64, seed=5, temperature=1.0, log=None)
    ref.prime(lp.regs[-ctx:])
    assert np.array_equal(ref.generate(1)[0] & CANON_MASK, first)   # continues the loop, not the old context


# ---------------------------------------------------------------------------- whole sessions

def sync(out, d, timeout_s=5.0):
    """Wait until the JACK MIDI connection out -> the daemon carries messages (the daemon's
    control thread drains its port, so watch its count): an unmapped note-off every 10 ms."""
    before = d.hub.midi.received
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        out.send_message([0x8F, 0, 0])
        time.sleep(0.01)
        if d.hub.midi.received > before:
            time.sleep(0.03)
            return
    raise AssertionError(f"no message reached {d.hub.midi.name} within {timeout_s} s")


def _daemon(model_path, tmp_path, **kw):
    from sidlive.live.daemon import LiveConfig, LiveDaemon
    loops = tmp_path / "loops"
    if not loops.exists():
        shutil.copytree(LOOPS, loops, ignore=shutil.ignore_patterns("*.md"))
    msgs = []
    cfg = dict(model=model_path, loops_dir=loops, osc_port=None, controller=NANO, midi="none", audio="null",
               rt_priority=0)
    cfg.update(kw)
    return LiveDaemon(LiveConfig(**cfg), on_message=msgs.append), msgs


def test_session_on_jack_with_midi_records_what_it_played(jack, jack_midi_out, model_path, tmp_path, wait):
    if portaudio_jack_device() is None:
        pytest.skip("this PortAudio build has no JACK host API")
    d, msgs = _daemon(model_path, tmp_path, audio="jack", midi="virtual", record=tmp_path / "set.wav")
    d.start()
    try:
        out = jack_midi_out("sidlive:midi_in")
        sync(out, d)
        assert wait(lambda: d.audio.frames_played > 120, timeout_s=15)   # > 2 s: enough to capture
        out.send_message([0xB0, 16, 20])     # temperature knob
        out.send_message([0xB0, 48, 127])    # M1: mute voice 1
        out.send_message([0xB0, 60, 127])    # MARKER SET: reseed
        assert wait(lambda: d.controls.state.mute_1 and d.controls.state.reseed == 1)
        assert wait(lambda: 1 in d.audio.renderer.muted_voices)
        assert wait(lambda: len(d.genthread.rollback_log) >= 1)
        out.send_message([0xC0, 2])          # program change: loop 2
        out.send_message([0xB0, 45, 127])    # REC: capture a loop
        out.send_message([0xB0, 123, 0])     # all notes off: panic
        assert wait(lambda: d.controls.state.loop == 2 and d.genthread.primes >= 1, timeout_s=10)
        assert wait(lambda: d.controls.state.panic == 1 and d.audio.panic_cut[0] == 1)
        assert wait(lambda: any("captured" in m for m in msgs))
        assert wait(lambda: d.audio.frames_played > 200, timeout_s=15)
    finally:
        st = d.stop()
    assert st["output"].startswith("jack:") and st["output_switches"] == 0, msgs
    assert st["midi"]["received"] >= 7 and st["latency"]["renderer_changes"] >= 1
    assert any(p.name.startswith("capture-") for p in (tmp_path / "loops").iterdir())
    rec = st["recording"]
    samples, rate = read_wav(tmp_path / "set.wav")
    assert rate == 48_000 and len(samples) == rec["samples_written"] == rec["samples_in"] == d.audio.samples
    assert rec["frames_written"] == len(load_regs(tmp_path / "set.regs")) == d.audio.renderer.frames_rendered
    log = [json.loads(line) for line in (tmp_path / "set.controls.jsonl").read_text().splitlines()]
    names = {r["control"] for r in log}
    assert {"temperature", "mute_1", "reseed", "seed", "loop", "panic", "renderer.mute", "renderer.panic"} <= names
    cmp = compare_take(tmp_path / "set")
    assert cmp["live_vs_offline"]["max_abs"] <= max(4 * cmp["offline_vs_offline"]["max_abs"], 256)


def test_bad_map_and_loop_on_hot_reload_keep_the_previous_ones(model_path, tmp_path, wait):
    cmap = tmp_path / "map.toml"
    shutil.copy(NANO, cmap)
    d, msgs = _daemon(model_path, tmp_path, controller=cmap, midi="dummy")
    d.start()
    try:
        old_mapper = d.hub.mapper
        text = cmap.read_text().replace("cc = 17", "cc = 300", 1)
        cmap.write_text(text)
        line = text.splitlines().index("cc = 300") + 1
        assert wait(lambda: any("map.toml" in m and "keeping the previous map" in m for m in msgs), timeout_s=5)
        err = next(m for m in msgs if "map.toml" in m)
        assert f"line {line}" in err and "knob[1].cc" in err and "0..119" in err
        assert d.hub.mapper is old_mapper
        d.hub.midi.feed([0xB0, 48, 127])      # the previous map still works
        assert wait(lambda: d.controls.state.mute_1)
        bad = tmp_path / "loops" / "zz-bad.regs"
        bad.write_bytes(b"SLRG" + bytes(10))
        assert wait(lambda: any("zz-bad.regs" in m for m in msgs), timeout_s=5)
        cmap.unlink()
        assert wait(lambda: any("missing; keeping the previous map" in m for m in msgs), timeout_s=5)
        shutil.copy(NANO, cmap)
        assert wait(lambda: any("controller map reloaded" in m for m in msgs), timeout_s=5)
        assert d.hub.mapper is not old_mapper
    finally:
        d.stop()


def test_unplugged_midi_port_is_reopened_and_the_music_goes_on(jack, jack_midi_out, model_path, tmp_path, wait):
    ctl = jack_midi_out(None, client="knobs")          # a 'controller': knobs:out
    d, msgs = _daemon(model_path, tmp_path, midi="knobs:out")
    d.start()
    try:
        assert d.hub.midi is not None and d.hub.midi.connected
        jack_midi_out.unplug(ctl)
        assert wait(lambda: d.hub.midi.disconnects == 1, timeout_s=5)
        blocks = d.audio.blocks
        assert wait(lambda: d.audio.blocks > blocks + 50)        # still playing
        ctl = jack_midi_out(None, client="knobs")
        assert wait(lambda: d.hub.midi.reconnects == 1, timeout_s=5)
        sync(ctl, d)
        ctl.send_message([0xB0, 49, 127])                          # M2 after the replug
        assert wait(lambda: d.controls.state.mute_2)
    finally:
        st = d.stop()
    assert st["frames_played"] > 0 and st["midi"]["disconnects"] == 1 and st["midi"]["reconnects"] == 1


def test_jack_death_switches_to_null_and_the_recording_goes_on(model_path, tmp_path):
    if jackd_path() is None:
        pytest.skip("jackd is not installed (Debian package jackd2)")
    # A fixed name: jackd's shared registry keeps a killed server's entry (8 slots in all)
    # until a server of the same name registers again.
    server = JackServer(name=f"sidlive-jackdeath-{os.getuid()}").start()
    env = dict(os.environ, JACK_DEFAULT_SERVER=server.name, JACK_NO_START_SERVER="1")
    cmd = [sys.executable, "-m", "sidlive.commands.live", "--model", str(model_path), "--audio", "jack", "--headless",
           "--midi", "none", "--no-osc", "--seconds", "5", "--record", str(tmp_path / "take.wav"),
           "--loops", str(tmp_path)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wav = tmp_path / "take.wav"
        deadline = time.monotonic() + 30
        while (not wav.exists() or wav.stat().st_size < 100_000) and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(server.proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        server.stop()
    assert proc.returncode == 0, err
    st = json.loads(out.strip().splitlines()[-1])
    assert st["jack_died"] and st["output"] == "null" and st["output_switches"] == 1
    assert "switched to the null output" in err and "recording goes on" in err
    rec = st["recording"]
    samples, _ = read_wav(tmp_path / "take.wav")
    assert rec["dropped_blocks"] == 0 and len(samples) == rec["samples_in"] == rec["samples_written"]
    assert len(load_regs(tmp_path / "take.regs")) == rec["frames_in"]
    assert rec["seconds"] > 1.0


def test_capture_goes_to_the_users_loops_folder_by_default(model_path, tmp_path, wait, monkeypatch):
    """Without --loops the library is the shipped loops plus the user's own, and a capture
    lands in the user's folder ($XDG_DATA_HOME/sidlive/loops), never in presets/loops."""
    from sidlive.control.params import ControlEvent
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    shipped = sorted(p.name for p in LOOPS.iterdir())
    n_shipped = len([n for n in shipped if n.endswith(".regs")])
    d, msgs = _daemon(model_path, tmp_path, loops_dir=None)
    d.start()
    try:
        assert len(d.library.loops) == n_shipped
        assert wait(lambda: d.audio.frames_played > 120, timeout_s=15)
        d.post(ControlEvent("capture_loop", op="trigger", source="test"))
        assert wait(lambda: any("captured" in m for m in msgs)), msgs
        assert wait(lambda: len(d.library.loops) == n_shipped + 1)   # the capture joins the library
    finally:
        d.stop()
    user = tmp_path / "xdg" / "sidlive" / "loops"
    assert [p.name.startswith("capture-") for p in user.iterdir()] == [True]
    assert sorted(p.name for p in LOOPS.iterdir()) == shipped
