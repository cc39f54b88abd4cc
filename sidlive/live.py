"""`sidlive live`: the low-latency instrument. `LiveDaemon` wires the model, ring, audio,
controls, loops and recording together and runs the control thread; the real-time threads
are in daemon.py, the terminal view in view.py. See docs/live.md.

    sidlive live [--model M] [--controller presets/controllers/NAME.toml] [--loops DIR]
                 [--record set.wav] [--audio DEVICE|jack|null] [--midi PORT|virtual|none]
                 [--headless] [--seconds S] [--osc-port 9000] [--loop NAME] [--lookahead 3]

Control thread: MIDI drain -> controller map -> Controls.apply_pending -> one reference
swap each to the audio callback (`AudioEngine.published`) and the generator thread
(`GeneratorThread.request`). It also watches, every 0.25 s: the MIDI port (replugged: it
reopens), the audio output (JACK gone: a message, then the null output, so a recording
goes on), and every second the controller map and the loops folder (reloaded on change; a
missing or bad file is reported with its file, line and field and the previous one stays).
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import gc
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

from sidlive.controls import ControlEvent, Controls, ControlState
from sidlive.daemon import (EV_MUTE, EV_NAMES, EV_PANIC, AudioEngine, GeneratorThread, GenRequest, NullOutput,
                            StreamOutput)
from sidlive.frames import PAL_FRAME_RATE_HZ
from sidlive.loops import PRESETS_DIR as LOOPS_DIR, Arrangement, LoopError, LoopLibrary, capture
from sidlive.ring import FrameRing

log = logging.getLogger("sidlive.live")   # messages also go here (INFO)
REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "presets" / "models" / "default.sidm"
DEFAULT_CONTROLLER = REPO / "presets" / "controllers" / "generic.toml"
NO_DEVICE_EXIT = 3
SETUP_EXIT = 2
RING_FRAMES = 32
STALL_SWITCH_S = 5.0   # a stream still 'active' but silent this long counts as dead
_GOLDEN = 0x9E3779B97F4A7C15


class LiveError(RuntimeError):
    """The session cannot start (missing model, bad map...); the message says what to do."""


class NoAudioDevice(LiveError):
    """No audio output and no --record to run on the null output."""


@dataclasses.dataclass
class LiveConfig:
    model: Path | None = None            # None: presets/models/default.sidm
    controller: Path | None = None       # None: presets/controllers/generic.toml (when MIDI is on)
    loops_dir: Path | None = LOOPS_DIR
    record: Path | None = None           # base name or NAME.wav
    audio: str | None = None             # None: JACK if running, else the default device; "null"
    midi: str | None = "virtual"         # "virtual", a port name, or None / "none"
    osc_host: str = "127.0.0.1"
    osc_port: int | None = 9000          # None: no OSC; 0: any free port
    rate_hz: int = 48_000
    block_frames: int = 256
    lookahead_frames: int = 3
    keep_frames: int = 1                 # unplayed frames a rollback keeps (the generator's head start)
    chip: str = "6581"
    subframes: int = 4
    seed: int = 0
    loop: str | None = None              # start with this loop selected
    loop_mode: str = "prime"
    capture_seconds: float = 4.0
    controls: dict = dataclasses.field(default_factory=dict)   # initial parameter values
    switch_interval_s: float = 0.001     # GIL hand-over interval while running
    rt_priority: int = 2                 # SCHED_FIFO for our Python threads (0: off); below JACK's (5, 10)


def seed_for(base: int, reseeds: int) -> int:
    return (int(base) + reseeds * _GOLDEN) & ((1 << 64) - 1)


def process_start_perf() -> float:
    """perf_counter() value at this process's start (Linux /proc; 10 ms resolution)."""
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return time.perf_counter() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return float("nan")


def set_realtime(native_ids, priority: int) -> int:
    """SCHED_FIFO at `priority` for these threads (Linux tids), where permitted. A thread
    holding the GIL then is not preempted by other programs while the audio callback waits
    for it (priority inversion through the GIL). Returns how many were raised."""
    done = 0
    for tid in native_ids:
        try:
            os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(priority))
            done += 1
        except (OSError, AttributeError):
            pass
    return done


def _pct(values, q) -> float | None:
    return round(float(np.percentile(values, q)), 2) if len(values) else None


class LiveDaemon:
    def __init__(self, cfg: LiveConfig, on_message=None):
        self.cfg = cfg
        self.on_message = on_message or (lambda text: print(f"sidlive live: {text}", file=sys.stderr, flush=True))
        self.messages: collections.deque = collections.deque(maxlen=100)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.stopped = threading.Event()   # set when the session should end (view 'q', signal, --seconds)
        self._seq = 0
        self.publish_log: collections.deque = collections.deque(maxlen=200_000)   # (seq, perf, names)
        self.renderer_events: collections.deque = collections.deque(maxlen=100_000)
        self._ev_read = 0
        self.events_lost = 0
        self.output = None
        self.output_switches = 0
        self.jack_died = False
        self.midi = None
        self.mapper = None
        self.osc = None
        self.recorder = None
        self._thread: threading.Thread | None = None
        self._last_capture = 0.0
        self._map_mtime = None
        self._force_reload = False
        self._stall_warned = False
        self.started_perf = 0.0
        self.rt_threads = 0

    # ------------------------------------------------------------------ messages, posting
    def message(self, text: str) -> None:
        self.messages.append((time.time(), text))
        log.info(text)
        self.on_message(text)

    def request_reload(self) -> None:
        """Any thread: reload the controller map and the loops folder now (the view's R key)."""
        self._force_reload = True
        self._wake.set()

    def post(self, event: ControlEvent) -> None:
        """Any thread: queue a control change (MIDI, OSC, keys)."""
        self.controls.post(event)
        self._wake.set()

    # ------------------------------------------------------------------ setup
    def start(self) -> "LiveDaemon":
        """Load everything, prefill the ring, start the threads and the output. On failure,
        what was opened is closed again (a recording started is finalised)."""
        try:
            return self._start()
        except BaseException:
            self._stop.set()
            self._wake.set()
            if hasattr(self, "_switch_interval"):
                sys.setswitchinterval(self._switch_interval)
                gc.unfreeze()
            for closer in (getattr(self.genthread, "stop", None) if hasattr(self, "genthread") else None,
                           getattr(self.recorder, "close", None), getattr(self.osc, "close", None),
                           getattr(self.midi, "close", None)):
                if closer is not None:
                    try:
                        closer()
                    except Exception:  # noqa: BLE001 - the original error matters more
                        pass
            raise

    def _start(self) -> "LiveDaemon":
        from engine.generator import Generator
        from engine.weights import load_model

        cfg = self.cfg
        model_path = Path(cfg.model) if cfg.model is not None else DEFAULT_MODEL
        if not model_path.is_file():
            hint = (" (the shipped model is not there yet: export one with python -m training.export CKPT "
                    "-o presets/models/default.sidm, or pass --model)") if cfg.model is None else ""
            raise LiveError(f"model {model_path} does not exist{hint}")
        self.model_path = model_path
        try:
            self.model = load_model(model_path)
            self.controls = Controls(ControlState({"lookahead_frames": cfg.lookahead_frames,
                                                   "loop_mode": cfg.loop_mode, **cfg.controls}))
        except ValueError as e:
            raise LiveError(str(e)) from None
        self.library = LoopLibrary(cfg.loops_dir)
        for err in self.library.errors:
            self.message(err)
        start_loop = None
        if cfg.loop is not None:
            try:
                idx = self.library.index_of(cfg.loop)
            except LoopError as e:
                raise LiveError(str(e)) from None
            self.controls.state = self.controls.state.replace(loop=idx)
            start_loop = self.library.get(idx)
        if cfg.midi not in (None, "none"):
            self._load_map(Path(cfg.controller) if cfg.controller else DEFAULT_CONTROLLER, startup=True)
        if cfg.record is not None:
            from sidlive.recording import Recorder
            base = Path(cfg.record)
            base = base.with_suffix("") if base.suffix.lower() == ".wav" else base
            meta = {"chip": cfg.chip, "title": "sidlive live", "author": str(model_path.name),
                    "extra": {"rate_hz": cfg.rate_hz, "subframes": cfg.subframes, "block_frames": cfg.block_frames,
                              "model": str(model_path), "seed": cfg.seed}}
            try:
                self.recorder = Recorder(base, rate_hz=cfg.rate_hz, block_frames=cfg.block_frames, meta=meta).start()
            except (OSError, ValueError) as e:
                raise LiveError(f"--record: {e}") from None
        self.ring = FrameRing(RING_FRAMES)
        self.engine = AudioEngine(self.ring, chip=cfg.chip, rate_hz=cfg.rate_hz, block_frames=cfg.block_frames,
                                  subframes=cfg.subframes, recorder=self.recorder, state=self.controls.state)
        self.arrangement = Arrangement()
        gen = Generator(self.model, max_rollback_frames=64, log=lambda s: self.message(s))
        self.genthread = GeneratorThread(gen, self.ring, self.engine, self.arrangement, keep_frames=cfg.keep_frames,
                                         on_error=self.message)
        if start_loop is not None and self.controls.state.loop_mode == "call_response":
            self.arrangement.set(start_loop, "call_response", 0)
            self.genthread.set_context(None)
        else:
            self.genthread.set_context(start_loop.regs if start_loop is not None else None)
            self.arrangement.set(start_loop, "prime", 0)
        first = self._request(self.controls.state)
        self.genthread.prefill(first)
        self.engine.published = (first.seq, self.controls.state, time.perf_counter())
        self._open_midi(startup=True)   # before the stream: a JACK client joining later can cause an xrun
        self._open_osc()
        self.output = self._open_output()
        gc.collect()
        gc.freeze()
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(cfg.switch_interval_s)
        self.started_perf = time.perf_counter()
        self.started_cpu = time.process_time()
        self.genthread.start()
        self._thread = threading.Thread(target=self._control_loop, name="sidlive-control", daemon=True)
        self._thread.start()
        try:
            self.output.start()
        except Exception as err:  # noqa: BLE001 - PortAudio refuses to start in several ways
            if self.recorder is None:
                raise NoAudioDevice(f"audio output {self.output.name} would not start ({err})") from None
            self.message(f"audio output {self.output.name} would not start ({err}): running on the null output")
            self.output = NullOutput(self.engine.callback, cfg.rate_hz, cfg.block_frames).start()
        if cfg.rt_priority > 0:
            self.rt_threads = set_realtime(self._python_threads(), cfg.rt_priority)
        return self

    def _python_threads(self) -> list[int]:
        threads = [threading.main_thread(), self._thread, self.genthread._thread, self.genthread._worker,
                   getattr(self.recorder, "_thread", None), getattr(self.osc, "_thread", None),
                   getattr(self.output, "_thread", None)]
        return [t.native_id for t in threads if t is not None and t.native_id is not None]

    def _open_output(self):
        cfg, e = self.cfg, self.engine
        if cfg.audio == "null":
            return NullOutput(e.callback, cfg.rate_hz, cfg.block_frames)
        try:
            dev, name, channels = _find_device(cfg.audio)
            return StreamOutput(e.callback, dev, cfg.rate_hz, cfg.block_frames, channels, name)
        except Exception as err:  # noqa: BLE001 - PortAudio errors come in several types
            if self.recorder is None:
                raise NoAudioDevice(f"{err}; with --record the session runs on the null output") from None
            self.message(f"{err}: running on the null output (recording to {self.recorder.paths['wav']})")
            return NullOutput(e.callback, cfg.rate_hz, cfg.block_frames)

    def _open_midi(self, startup: bool = False) -> None:
        spec = self.cfg.midi
        if spec in (None, "none") or self.midi is not None:
            return
        from sidlive.midi import open_input
        try:
            self.midi = open_input(spec)
            self.midi.wakeup = self._wake
            self.message(f"MIDI in: {self.midi.name}")
        except (OSError, ImportError) as e:
            if startup:
                self.message(f"{e}; playing on, will look for the port again")

    def _open_osc(self) -> None:
        if self.cfg.osc_port is None:
            return
        from sidlive.osc import OscServer
        try:
            self.osc = OscServer(self.post, self.cfg.osc_host, self.cfg.osc_port).start()
        except OSError as e:
            self.message(f"OSC: cannot listen on {self.cfg.osc_host}:{self.cfg.osc_port} ({e}); no OSC")

    def _load_map(self, path: Path, startup: bool = False) -> None:
        from sidlive.controllers import ControllerMapError, MidiMapper, load_map
        self._map_path = path
        try:
            self._map_mtime = path.stat().st_mtime_ns
            cmap = load_map(path)
        except (OSError, ControllerMapError) as e:
            text = f"controller map {path}: {e.strerror}" if isinstance(e, OSError) else str(e)
            if startup:
                raise LiveError(text) from None
            self.message(f"{text}; keeping the previous map")
            return
        self.mapper = MidiMapper(cmap)
        if not startup:
            self.message(f"controller map reloaded: {cmap.name} ({path})")

    # ------------------------------------------------------------------ control thread
    def _request(self, state: ControlState) -> GenRequest:
        self._seq += 1
        idx = state.loop
        lp = self.library.get(idx) if idx >= 0 else None
        n_comp = len(self.model.cfg.composers)
        return GenRequest(self._seq, state.temperature, state.top_k, state.top_p, min(state.composer, n_comp - 1),
                          seed_for(self.cfg.seed, state.reseed), lp, (idx, id(lp)), state.loop_mode, state.panic,
                          state.lookahead_frames)

    def _publish(self, changes) -> None:
        state = self.controls.state
        req = self._request(state)
        t = time.perf_counter()
        self.engine.published = (req.seq, state, t)   # the audio callback's one reference
        self.genthread.request = req                   # the generator thread's one reference
        self.genthread.wake.set()
        self.publish_log.append((req.seq, t, tuple(name for name, _ in changes)))

    def _control_loop(self) -> None:
        next_check = next_reload = 0.0
        while not self._stop.is_set():
            self._wake.wait(0.05)
            self._wake.clear()
            try:
                self._control_step()
                now = time.monotonic()
                if now >= next_check:
                    next_check = now + 0.25
                    self._checks()
                if now >= next_reload or self._force_reload:
                    next_reload = now + 1.0
                    force, self._force_reload = self._force_reload, False
                    self._reload(force)
            except Exception as e:  # noqa: BLE001 - the control thread must live on
                self.message(f"control thread: {type(e).__name__}: {e}")

    def _control_step(self) -> None:
        if self.midi is not None and self.mapper is not None:
            for msg in self.midi.drain():
                for ev in self.mapper.handle(msg):
                    self.controls.post(ev)
        update = self.controls.apply_pending()
        for err in update.errors[:3]:
            self.message(err)
        if update.changes:
            self._on_changes(update.changes)
        self._drain_events()

    def _on_changes(self, changes) -> None:
        state = self.controls.state
        names = {name for name, _ in changes}
        if "reseed" in names:
            changes = changes + [("seed", seed_for(self.cfg.seed, state.reseed))]
        self._publish(changes)
        if self.recorder is not None:
            for name, value in changes:
                self.recorder.log_control(name, value)
        if "capture_loop" in names:
            self._capture()
        if names & {"next_loop", "prev_loop"}:
            n = len(self.library.loops)
            step = (1 if "next_loop" in names else 0) - (1 if "prev_loop" in names else 0)
            if n and step:
                new = (state.loop + 1 + step) % (n + 1) - 1    # ... -1 (free), 0 .. n-1, -1 ...
                self.controls.post(ControlEvent("loop", new, source="daemon"))
                self._wake.set()
        if "loop" in names and state.loop >= len(self.library.loops):
            self.message(f"loop {state.loop}: there are {len(self.library.loops)} loops; playing free")

    def _drain_events(self) -> None:
        events, self._ev_read, lost = self.engine.read_events(self._ev_read)
        self.events_lost += lost
        for ev in events:
            seq, kind, a, b, sample, heard, dac = ev
            if kind in (EV_MUTE, EV_PANIC):
                self.renderer_events.append(ev)
                if self.recorder is not None:
                    value = {"voice": a, "muted": bool(b)} if kind == EV_MUTE else {"count": a}
                    value.update(sample=sample, heard_sample=heard, seq=seq)
                    self.recorder.log_control(EV_NAMES[kind], value)

    def _capture(self) -> None:
        now = time.monotonic()
        if now - self._last_capture < 1.0:
            return
        self._last_capture = now
        if self.cfg.loops_dir is None:
            self.message("capture: no loops folder (--loops)")
            return
        read = self.ring.read_pos
        n = min(int(round(self.cfg.capture_seconds * PAL_FRAME_RATE_HZ)), read, len(self.genthread.hist) - 64)
        hist = self.genthread.hist
        regs = hist[np.arange(read - n, read) % len(hist)]
        try:
            lp = capture(regs, self.cfg.loops_dir, chip=self.cfg.chip)
        except (LoopError, OSError) as e:
            self.message(str(e) if str(e).startswith("capture") else f"capture: {e}")
            return
        self.library.refresh()
        self.message(f"captured {lp.seconds:.1f} s as loop {lp.name} ({lp.path})")

    def _checks(self) -> None:
        if self.midi is not None:
            self.midi.check()
        elif self.cfg.midi not in (None, "none", "virtual", "dummy"):
            self._open_midi()
        out = self.output
        stall_s = time.perf_counter() - self.engine.last_callback_perf if self.engine.blocks else 0.0
        if isinstance(out, StreamOutput):
            if not out.active or stall_s > STALL_SWITCH_S:
                why = "stream stopped" if not out.active else f"no audio callback for {stall_s:.1f} s"
                self._switch_to_null(f"audio output {out.name}: {why} (JACK server gone?)")
            elif stall_s > 1.0 and not self._stall_warned:
                self._stall_warned = True
                self.message(f"audio output {out.name}: no callback for {stall_s:.1f} s")
            elif stall_s < 0.1:
                self._stall_warned = False
        elif isinstance(out, NullOutput) and out.error is not None:
            self.message(f"null output failed: {out.error}")
            out.error = None
        if self.genthread.error is not None:
            self.message(f"generator: {self.genthread.error}")
            self.genthread.error = None

    def _switch_to_null(self, why: str) -> None:
        old = self.output
        old.abandon()
        self.jack_died = self.jack_died or "jack" in old.name.lower()
        time.sleep(0.05)   # a callback already under way finishes before the null thread starts
        self.output = NullOutput(self.engine.callback, self.cfg.rate_hz, self.cfg.block_frames).start()
        self.output_switches += 1
        if self.cfg.rt_priority > 0:
            set_realtime([self.output._thread.native_id], self.cfg.rt_priority)
        rec = f"; recording goes on to {self.recorder.paths['wav']}" if self.recorder is not None else ""
        self.message(f"{why}: switched to the null output{rec}")

    def _reload(self, force: bool = False) -> None:
        if self.cfg.midi not in (None, "none"):
            path = self._map_path
            try:
                mtime = path.stat().st_mtime_ns
            except OSError:
                mtime = None
            if force or mtime != self._map_mtime:
                if mtime is None:
                    self._map_mtime = None
                    self.message(f"controller map {path}: missing; keeping the previous map")
                else:
                    self._load_map(path)
        before = self.library.version
        for err in self.library.refresh(force):
            self.message(err)
        if self.library.version != before:
            self._publish([("loops_reloaded", self.library.version)])

    # ------------------------------------------------------------------ running, stopping
    def run(self, seconds: float | None = None) -> None:
        """Block until `stopped` is set or `seconds` have passed."""
        self.stopped.wait(seconds)

    def stop(self) -> dict:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:   # the watchdog first: a stopped stream is not a dead server
            self._thread.join(timeout=2.0)
        if self.output is not None:
            self.output.stop()
        self.genthread.stop()
        self._drain_events()
        sys.setswitchinterval(self._switch_interval)
        if self.cfg.rt_priority > 0:
            try:
                os.sched_setscheduler(threading.main_thread().native_id, os.SCHED_OTHER, os.sched_param(0))
            except (OSError, AttributeError):
                pass
        gc.unfreeze()
        rec = self.recorder.close() if self.recorder is not None else None
        if self.osc is not None:
            self.osc.close()
        if self.midi is not None and not (self.jack_died and getattr(self.midi, "api", "") == "jack"):
            self.midi.close()   # a JACK client whose server died would block in close
        if self.jack_died:
            import atexit

            import sounddevice as sd
            atexit.unregister(sd._exit_handler)   # Pa_Terminate would block on the dead stream
        return self.stats(rec)

    # ------------------------------------------------------------------ figures
    def latency_figures(self) -> dict:
        """Control applied -> first sample heard (DAC time), ms: generator changes (first
        regenerated frame) and renderer changes (mute/solo/panic)."""
        t_pub = {seq: t for seq, t, _ in self.publish_log}
        gen = []
        for seq, cut, _ in list(self.genthread.rollback_log):
            heard = self.engine.frame_sound_time(cut)
            if heard is not None and seq in t_pub:
                gen.append((heard - t_pub[seq]) * 1e3)
        ren = [(ev[6] - t_pub[ev[0]]) * 1e3 for ev in list(self.renderer_events) if ev[0] in t_pub]
        return {"generator_change_ms_p50": _pct(gen, 50), "generator_change_ms_p95": _pct(gen, 95),
                "generator_changes": len(gen), "renderer_change_ms_p50": _pct(ren, 50),
                "renderer_change_ms_p95": _pct(ren, 95), "renderer_changes": len(ren),
                "output_latency_ms": round(self.engine.dac_offset_s * 1e3, 2),
                "lookahead_frames": self.controls.state.lookahead_frames}

    def counters(self) -> dict:
        """Cheap running figures (the view asks ten times a second)."""
        e, g = self.engine, self.genthread
        wall = max(time.perf_counter() - self.started_perf, 1e-9)
        return {"seconds": round(e.samples / self.cfg.rate_hz, 3), "frames_played": e.frames_played,
                "audio_underruns": e.audio_underruns, "ring_underruns": self.ring.underruns,
                "rollbacks": self.ring.rollbacks, "loop_primes": g.primes,
                "generator_frames": g.frames_generated,
                "generator_fps": round(g.frames_generated / g.busy_s, 1) if g.busy_s else None,
                "callback_ms_p50": e.callback_percentile_ms(50), "callback_ms_p99": e.callback_percentile_ms(99),
                "callback_ms_p999": e.callback_percentile_ms(99.9),
                "callback_ms_max": round(e.cb_max_s * 1e3, 3),
                "block_ms": round(self.cfg.block_frames / self.cfg.rate_hz * 1e3, 3),
                "cpu_percent": round(100.0 * (time.process_time() - self.started_cpu) / wall, 1)}

    def stats(self, rec: dict | None = None) -> dict:
        """Everything, for the exit line: counters, latency figures, subsystems."""
        e = self.engine
        first = e.first_frame_dac - process_start_perf() if e.first_frame_dac else None
        return {**self.counters(), "first_audio_s": round(first, 3) if first is not None else None,
                "latency": self.latency_figures(), "output": getattr(self.output, "name", None),
                "output_switches": self.output_switches, "jack_died": self.jack_died, "rt_threads": self.rt_threads,
                "midi": self.midi.stats() if self.midi is not None else None,
                "osc": self.osc.stats() if self.osc is not None else None,
                "controls_rejected": self.controls.rejected, "events_lost": self.events_lost,
                "recording": rec, "messages": len(self.messages)}


def _find_device(spec):
    """(PortAudio device index, name, channels) for None (JACK if running, else the
    default), 'jack', or a device name/index."""
    from sidlive.jackserver import jack_running, portaudio_jack_device
    from sidlive.play import NoAudioDevice as PlayNoDevice, output_device
    try:
        import sounddevice as sd
    except (ImportError, OSError) as e:
        raise NoAudioDevice(f"no audio: the sounddevice/PortAudio library cannot load ({e})") from None
    if spec == "jack" or (spec is None and jack_running()):
        dev = portaudio_jack_device()
        if dev is None:
            if spec == "jack":
                raise NoAudioDevice("no JACK output: no JACK server runs, or PortAudio was built without JACK")
        else:
            info = sd.query_devices(dev)
            return dev, f"jack:{info['name']}", min(2, info["max_output_channels"])
    try:
        info = output_device(spec)
    except PlayNoDevice as e:
        raise NoAudioDevice(str(e)) from None
    return info["index"], str(info["name"]), min(2, info["max_output_channels"])


# ---------------------------------------------------------------------------- CLI

def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="sidlive live", description="Play the model live: MIDI/OSC/keys steer it.")
    ap.add_argument("--model", type=Path, default=None, help="model .sidm (default presets/models/default.sidm)")
    ap.add_argument("--controller", type=Path, default=None, help="controller map .toml (default: generic)")
    ap.add_argument("--loops", type=Path, default=LOOPS_DIR, help="loops folder (default presets/loops)")
    ap.add_argument("--record", type=Path, default=None, help="record to NAME.wav (+ NAME.regs, NAME.controls.jsonl)")
    ap.add_argument("--audio", default=None, help="output: a device name/index, jack or null (default: JACK if "
                                                  "running, else the system default)")
    ap.add_argument("--midi", default="virtual", help="MIDI input: virtual (a sidlive:midi_in port), a port name, "
                                                      "or none")
    ap.add_argument("--headless", action="store_true", help="no view; controls over OSC; print a JSON line at exit")
    ap.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    ap.add_argument("--osc-port", type=int, default=9000, help="OSC UDP port (0: any free one; default 9000)")
    ap.add_argument("--no-osc", action="store_true", help="no OSC server")
    ap.add_argument("--loop", default=None, help="start with this loop selected (a name in the loops folder)")
    ap.add_argument("--loop-mode", choices=("prime", "call_response"), default="prime")
    ap.add_argument("--lookahead", type=int, default=3, help="frames generated ahead (1..25; default 3 = 60 ms)")
    ap.add_argument("--keep", type=int, default=1, help="unplayed frames a rollback keeps (default 1)")
    ap.add_argument("--block", type=int, default=256, help="audio block in samples (default 256)")
    ap.add_argument("--chip", choices=("6581", "8580"), default="6581")
    ap.add_argument("--seed", type=int, default=0, help="base random seed (reseed steps from it)")
    ap.add_argument("--temp", type=float, default=None, help="initial temperature")
    return ap


def config_from_args(args) -> LiveConfig:
    controls = {} if args.temp is None else {"temperature": args.temp}
    return LiveConfig(model=args.model, controller=args.controller, loops_dir=args.loops, record=args.record,
                      audio=args.audio, midi=args.midi, osc_port=None if args.no_osc else args.osc_port,
                      lookahead_frames=args.lookahead, keep_frames=args.keep, block_frames=args.block,
                      chip=args.chip, seed=args.seed, loop=args.loop, loop_mode=args.loop_mode, controls=controls)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    if not 1 <= cfg.lookahead_frames <= 25 or not 0 <= cfg.keep_frames <= cfg.lookahead_frames:
        print("sidlive live: --lookahead must be in 1..25 and --keep in 0..lookahead", file=sys.stderr)
        return SETUP_EXIT
    quiet = None
    if not args.headless:   # the view shows the messages; nothing may write over it
        logging.getLogger("sidlive").addHandler(logging.NullHandler())
        quiet = lambda text: None  # noqa: E731
    daemon = LiveDaemon(cfg, on_message=quiet)
    try:
        daemon.start()
    except NoAudioDevice as e:
        print(f"sidlive live: {e}", file=sys.stderr)
        return NO_DEVICE_EXIT
    except LiveError as e:
        print(f"sidlive live: {e}", file=sys.stderr)
        return SETUP_EXIT
    old_term = None
    if threading.current_thread() is threading.main_thread():
        old_term = signal.signal(signal.SIGTERM, lambda *_: daemon.stopped.set())
    try:
        if args.headless:
            if daemon.osc is not None:
                daemon.message(f"headless; OSC on {daemon.osc.host}:{daemon.osc.port}")
            daemon.run(args.seconds)
        else:
            from sidlive.view import run_view
            run_view(daemon, seconds=args.seconds)
    except KeyboardInterrupt:
        pass
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    stats = daemon.stop()
    if args.headless:
        print(json.dumps(stats), flush=True)
    else:
        print(f"played {stats['seconds']:.1f} s: {stats['audio_underruns']} audio / {stats['ring_underruns']} ring "
              f"underruns, callback p99 {stats['callback_ms_p99']} ms", flush=True)
    if daemon.jack_died:   # libjack clients of a dead server can block interpreter exit
        sys.stderr.flush()
        os._exit(0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
