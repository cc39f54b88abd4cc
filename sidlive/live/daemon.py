"""A `sidlive live` session: `LiveDaemon` puts the parts together, starts them in order and
stops them in the reverse order (one `contextlib.ExitStack`).

The parts, each with a narrow interface: the model and its generator thread (genthread.py)
filling the frame ring; the audio callback (callback.py) rendering the ring through reSID
into the output; the control hub (hub.py), the control thread that turns MIDI, OSC and key
events into control snapshots for both; the ports (ports.py): audio output, OSC in, ASID
out, effects. The figures are in stats.py, the CLI in sidlive/commands/live.py, the
terminal view in view.py. See docs/live.md.
"""
from __future__ import annotations

import atexit
import collections
import contextlib
import dataclasses
import gc
import logging
import os
import secrets
import sys
import threading
import time
from pathlib import Path

from engine.generator import DEFAULT_MAX_SILENCE_S, Generator
from engine.weights import load_model
from sidlive.audio.fx import FxError, find_chain
from sidlive.audio.recording import Recorder
from sidlive.audio.ring import FrameRing
from sidlive.control.keyvoice import NoteEvent
from sidlive.control.params import Controls, ControlState, param
from sidlive.live import stats as livestats
from sidlive.live.callback import LIVE_SUBFRAMES, AudioCallback
from sidlive.live.genthread import GeneratorThread
from sidlive.live.hub import ControlHub, read_map, seed_for  # noqa: F401  (seed_for: the take's seeds)
from sidlive.live.loops import Arrangement, LoopError, LoopLibrary
from sidlive.live.ports import LiveError, NoAudioDevice, Ports, set_realtime  # noqa: F401
from sidlive.midi.lane import Waker
from sidlive.paths import DEFAULT_CONTROLLER, DEFAULT_MODEL, LOOPS_DIR, user_loops_dir

log = logging.getLogger("sidlive.live")   # messages also go here (INFO)
NO_DEVICE_EXIT = 3
SETUP_EXIT = 2
RING_FRAMES = 32


@dataclasses.dataclass
class LiveConfig:
    """Everything a session is started with (the CLI's flags; defaults for a plain `sidlive live`)."""

    model: Path | None = None            # None: presets/models/default.sidm
    controller: Path | None = None       # None: presets/controllers/generic.toml (when MIDI is on)
    loops_dir: Path | None = None         # None: the shipped loops + the user's (captures go there)
    record: Path | None = None           # base name or NAME.wav
    audio: str | None = None             # None: JACK if running, else the default device; "null"
    midi: str | None = "virtual"         # "virtual", a port name, or None / "none"
    asid: str | None = None              # ASID out: None (off), "virtual" (a sidlive:asid port) or a port name
    asid_lead_s: float = 0.0             # send ASID frames this much before the speakers play them
    fx: str | None = None                # effects chain: a presets/fx name or a .toml (any output)
    fx_on: bool = False                  # start with the chain in (default: bypassed)
    osc_host: str = "127.0.0.1"
    osc_port: int | None = 9000          # None: no OSC; 0: any free port
    rate_hz: int = 48_000
    block_frames: int = 256
    lookahead_frames: int = param("lookahead_frames").default   # the live control's default
    keep_frames: int = 1                 # unplayed frames a rollback keeps (the generator's head start)
    chip: str = "6581"
    subframes: int = LIVE_SUBFRAMES      # renderer steps per frame: a mute is heard within 1.25 ms of its block
    seed: int | None = None              # base seed; None: a fresh random one, said and recorded
    loop: str | None = None              # start with this loop selected
    loop_mode: str = "prime"
    capture_seconds: float = 4.0
    controls: dict = dataclasses.field(default_factory=dict)   # initial parameter values
    switch_interval_s: float = 0.001     # GIL hand-over interval while running
    rt_priority: int = 2                 # SCHED_FIFO for our Python threads (0: off); below JACK's (5, 10)
    max_silence_s: float = DEFAULT_MAX_SILENCE_S   # the silence guard (engine.generator; 0 = off)


class LiveDaemon:
    """One live session: `start()`, then `run()` until stopped, then `stop()` -> figures."""

    def __init__(self, cfg: LiveConfig, on_message=None):
        self.cfg = cfg
        self.on_message = on_message or (lambda text: print(f"sidlive live: {text}", file=sys.stderr, flush=True))
        self.messages: collections.deque = collections.deque(maxlen=100)
        self.wake = Waker()            # an eventfd: the audio callback may set it
        self.stopped = threading.Event()   # set when the session should end (view 'q', signal, --seconds)
        self.recorder = None
        self.fx_chain = None
        self.rt_threads = 0
        self.started_perf = self.started_cpu = 0.0
        self._stack = contextlib.ExitStack()
        self._recording = None         # the recorder's summary, once closed

    # ------------------------------------------------------------------ any thread
    def message(self, text: str) -> None:
        """Say something to the performer (the view, stderr) and the log."""
        self.messages.append((time.time(), text))
        log.info(text)
        self.on_message(text)

    def post(self, event) -> None:
        """Any thread: queue a control change or a keyboard note (MIDI, OSC, keys)."""
        if isinstance(event, NoteEvent):
            self.hub.notes.append(event)
        else:
            self.controls.post(event)
        self.wake.set()

    def request_reload(self) -> None:
        """Any thread: reload the controller map and the loops folder now (the view's R key)."""
        self.hub.request_reload()

    # ------------------------------------------------------------------ start, run, stop
    def start(self) -> "LiveDaemon":
        """Load everything, prefill the ring, start the threads and the output. On failure,
        what was opened is closed again (a recording started is finalised)."""
        try:
            self._start(self._stack)
        except BaseException:
            self._stack.close()
            raise
        return self

    def _guarded(self, what: str, fn, *args) -> None:
        """Run a closing step; an error there is reported, and the other steps still run."""
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - stopping must go on
            self.message(f"stopping: {what}: {type(e).__name__}: {e}")

    def _start(self, stack: contextlib.ExitStack) -> None:
        if self.cfg.seed is None:   # every run its own music; the take records the seed, so it replays
            self.cfg = dataclasses.replace(self.cfg, seed=secrets.randbits(63))
            self.message(f"seed {self.cfg.seed} (--seed {self.cfg.seed} plays this run again)")
        cfg = self.cfg
        close = lambda what, fn, *a: stack.callback(self._guarded, what, fn, *a)  # noqa: E731
        stack.callback(self.wake.close)
        self.model_path = Path(cfg.model) if cfg.model is not None else DEFAULT_MODEL
        if not self.model_path.is_file():
            hint = (" (the shipped model is not there yet: export one with python -m training.export CKPT "
                    "-o presets/models/default.sidm, or pass --model)") if cfg.model is None else ""
            raise LiveError(f"model {self.model_path} does not exist{hint}")
        fx_values = {}
        if cfg.fx is not None:
            try:
                self.fx_chain = find_chain(cfg.fx)
            except (FxError, OSError) as e:
                raise LiveError(str(e)) from None
            fx_values = {**self.fx_chain.values(), "fx_bypass": not cfg.fx_on}
        try:
            self.model = load_model(self.model_path)
            self.controls = Controls(ControlState({"lookahead_frames": cfg.lookahead_frames,
                                                   "loop_mode": cfg.loop_mode, **fx_values, **cfg.controls}))
        except ValueError as e:
            raise LiveError(str(e)) from None
        self.library = LoopLibrary([LOOPS_DIR, user_loops_dir()] if cfg.loops_dir is None else cfg.loops_dir)
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
        mapper = map_path = map_mtime = None
        if cfg.midi not in (None, "none"):
            map_path = Path(cfg.controller) if cfg.controller else DEFAULT_CONTROLLER
            mapper, map_mtime = read_map(map_path)
        self._open_recorder(stack)
        self.ring = FrameRing(RING_FRAMES)
        self.audio = AudioCallback(self.ring, chip=cfg.chip, rate_hz=cfg.rate_hz, block_frames=cfg.block_frames,
                                   subframes=cfg.subframes, recorder=self.recorder, state=self.controls.state)
        self.arrangement = Arrangement()
        gen = Generator(self.model, max_rollback_frames=64, max_silence_s=cfg.max_silence_s,
                        log=lambda s: self.message(s))
        self.genthread = GeneratorThread(gen, self.ring, self.audio, self.arrangement, keep_frames=cfg.keep_frames,
                                         on_error=self.message)
        self.ports = Ports(cfg, self.audio, self.controls, self.recorder, self.post, self.message)
        self.hub = ControlHub(cfg, controls=self.controls, audio=self.audio, genthread=self.genthread,
                              library=self.library, ring=self.ring, ports=self.ports, recorder=self.recorder,
                              n_composers=len(self.model.cfg.composers), wake=self.wake, message=self.message,
                              mapper=mapper, map_path=map_path, map_mtime=map_mtime)
        if start_loop is not None and self.controls.state.loop_mode == "call_response":
            self.arrangement.set(start_loop, "call_response", 0)
            self.genthread.set_context(None)
        else:
            self.genthread.set_context(start_loop.regs if start_loop is not None else None)
            self.arrangement.set(start_loop, "prime", 0)
        first = self.hub.request(self.controls.state)
        self.genthread.prefill(first)
        if mapper is not None:
            self.hub.set_keyboard(mapper.cmap.keyboard)
        self.audio.published = (first.seq, self.controls.state, time.perf_counter(), 0)
        # Opened before the stream (a JACK client joining later can cause an xrun); closed
        # after it, in the reverse order.
        close("closing MIDI in", self.hub.close_midi)
        self.hub.open_midi(startup=True)
        close("closing OSC", self.ports.close_osc)
        self.ports.open_osc()
        self.ports.open_asid()
        if self.fx_chain is not None:
            close("closing the effects", self.ports.close_fx)
            self.ports.open_fx(self.fx_chain)   # before the stream: the callback finds it in place
        self.ports.open_output()
        self._realtime_on(stack)
        close("draining the callback's events", self.hub.drain_events)
        close("stopping ASID out", self.ports.stop_asid)
        if self.ports.asid is not None:
            self.ports.asid.start()
        close("stopping the generator thread", self.genthread.stop)
        self.genthread.start()
        close("stopping the audio output", self.ports.stop_output)
        close("stopping the control thread", self.hub.stop)   # first on stop: the watchdog
        self.hub.start()
        self.ports.start_output()
        if cfg.rt_priority > 0:
            self.rt_threads = set_realtime(self._python_threads(), cfg.rt_priority)

    def _open_recorder(self, stack) -> None:
        cfg = self.cfg
        if cfg.record is None:
            return
        base = Path(cfg.record)
        base = base.with_suffix("") if base.suffix.lower() == ".wav" else base
        meta = {"chip": cfg.chip, "title": "sidlive live", "author": str(self.model_path.name),
                "extra": {"rate_hz": cfg.rate_hz, "subframes": cfg.subframes, "block_frames": cfg.block_frames,
                          "model": str(self.model_path), "seed": cfg.seed}}
        try:
            self.recorder = Recorder(base, rate_hz=cfg.rate_hz, block_frames=cfg.block_frames, meta=meta).start()
        except (OSError, ValueError) as e:
            raise LiveError(f"--record: {e}") from None
        stack.callback(self._guarded, "closing the recording", self._close_recorder)

    def _close_recorder(self) -> None:
        self._recording = self.recorder.close()

    def _realtime_on(self, stack) -> None:
        """While running: a short GIL switch interval, the GC frozen; undone on stop."""
        gc.collect()
        gc.freeze()
        old = sys.getswitchinterval()
        sys.setswitchinterval(self.cfg.switch_interval_s)
        stack.callback(self._realtime_off, old)
        self.started_perf = time.perf_counter()
        self.started_cpu = time.process_time()

    def _realtime_off(self, switch_interval: float) -> None:
        sys.setswitchinterval(switch_interval)
        if self.cfg.rt_priority > 0:
            try:
                os.sched_setscheduler(threading.main_thread().native_id, os.SCHED_OTHER, os.sched_param(0))
            except (OSError, AttributeError):
                pass
        gc.unfreeze()

    def _python_threads(self) -> list[int]:
        threads = [threading.main_thread(), self.hub.thread, self.genthread._thread, self.genthread._worker,
                   getattr(self.ports.asid, "_thread", None),
                   getattr(self.recorder, "_thread", None), getattr(self.ports.osc, "_thread", None),
                   getattr(self.ports.output, "_thread", None)]
        return [t.native_id for t in threads if t is not None and t.native_id is not None]

    def run(self, seconds: float | None = None) -> None:
        """Block until `stopped` is set or `seconds` have passed."""
        self.stopped.wait(seconds)

    def stop(self) -> dict:
        """Stop every part in the reverse order of start; returns the session's figures."""
        self._stack.close()
        if self.ports.jack_died:
            import sounddevice as sd   # loads PortAudio: only here, where the stream died with JACK
            atexit.unregister(sd._exit_handler)   # Pa_Terminate would block on the dead stream
        return self.stats(self._recording)

    # ------------------------------------------------------------------ figures (stats.py)
    def latency_figures(self) -> dict:
        """Control -> heard latencies (ms)."""
        return livestats.latency_figures(self)

    def counters(self) -> dict:
        """Cheap running figures (the view's)."""
        return livestats.counters(self)

    def stats(self, rec: dict | None = None) -> dict:
        """Everything, for the exit line."""
        return livestats.stats(self, rec)
