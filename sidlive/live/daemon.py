"""A `sidlive live` session: `LiveDaemon` wires the model, ring, audio, controls, loops,
recording and the ASID feed together and runs the control thread. The real-time parts are
in daemon.py (audio callback), genthread.py (generator thread) and outputs.py; the figures
in livestats.py; the CLI in live.py; the terminal view in view.py. See docs/live.md.

Control thread: MIDI drain -> controller map -> Controls.apply_pending -> one reference
swap each to the audio callback (`AudioEngine.published`) and the generator thread
(`GeneratorThread.request`). It also watches, every 0.25 s: the MIDI port (replugged: it
reopens), the audio output (JACK gone: a message, then the null output, so a recording
goes on), and every second the controller map and the loops folder (reloaded on change; a
missing or bad file is reported with its file, line and field and the previous one stays).
"""
from __future__ import annotations

import atexit
import collections
import dataclasses
import gc
import logging
import os
import sys
import threading
import time
from pathlib import Path

from engine.generator import Generator
from engine.weights import load_model
from sidlive.audio.fx import FxError, find_chain
from sidlive.audio.outputs import NullOutput
from sidlive.audio.recording import Recorder
from sidlive.audio.ring import FrameRing
from sidlive.control.keyvoice import KeyVoice, NoteEvent
from sidlive.control.params import ControlEvent, Controls, ControlState
from sidlive.live import stats as livestats
from sidlive.live.callback import EV_KEYS, EV_MUTE, EV_NAMES, EV_PANIC, AudioEngine
from sidlive.live.genthread import GeneratorThread, GenRequest
from sidlive.live.loops import Arrangement, LoopError, LoopLibrary
from sidlive.live.ports import LiveError, NoAudioDevice, SessionIO, set_realtime  # noqa: F401
from sidlive.midi.lane import Waker
from sidlive.paths import DEFAULT_CONTROLLER, DEFAULT_MODEL, LOOPS_DIR

log = logging.getLogger("sidlive.commands.live")   # messages also go here (INFO)
NO_DEVICE_EXIT = 3
SETUP_EXIT = 2
RING_FRAMES = 32
_GOLDEN = 0x9E3779B97F4A7C15


@dataclasses.dataclass
class LiveConfig:
    model: Path | None = None            # None: presets/models/default.sidm
    controller: Path | None = None       # None: presets/controllers/generic.toml (when MIDI is on)
    loops_dir: Path | None = LOOPS_DIR
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
    lookahead_frames: int = 3
    keep_frames: int = 1                 # unplayed frames a rollback keeps (the generator's head start)
    chip: str = "6581"
    subframes: int = 16                  # renderer steps per frame: a mute is heard within 1.25 ms of its block
    seed: int = 0
    loop: str | None = None              # start with this loop selected
    loop_mode: str = "prime"
    capture_seconds: float = 4.0
    controls: dict = dataclasses.field(default_factory=dict)   # initial parameter values
    switch_interval_s: float = 0.001     # GIL hand-over interval while running
    rt_priority: int = 2                 # SCHED_FIFO for our Python threads (0: off); below JACK's (5, 10)


def seed_for(base: int, reseeds: int) -> int:
    return (int(base) + reseeds * _GOLDEN) & ((1 << 64) - 1)


class LiveDaemon(SessionIO):
    def __init__(self, cfg: LiveConfig, on_message=None):
        self.cfg = cfg
        self.on_message = on_message or (lambda text: print(f"sidlive live: {text}", file=sys.stderr, flush=True))
        self.messages: collections.deque = collections.deque(maxlen=100)
        self._wake = Waker()           # an eventfd: the audio callback may set it
        self._stop = threading.Event()
        self.stopped = threading.Event()   # set when the session should end (view 'q', signal, --seconds)
        self._seq = 0
        self.publish_log: collections.deque = collections.deque(maxlen=200_000)   # (seq, perf, names)
        self.renderer_events: collections.deque = collections.deque(maxlen=100_000)
        self.key_events: collections.deque = collections.deque(maxlen=100_000)
        self._ev_read = 0
        self._midi_covered = 0         # MIDI lane messages the control thread has taken in
        self._pub_covered = 0          # ... when the last state was published
        self.events_lost = 0
        self.output = None
        self.output_switches = 0
        self.jack_died = False
        self.midi = None
        self.mapper = None
        self.osc = None
        self.recorder = None
        self.asid = None
        self.fx = None                 # fx.FxHost while effects run
        self.fx_chain = None
        self.keyvoice = None           # keyvoice.KeyVoice when the controller map has [keyboard]
        self._notes: collections.deque = collections.deque(maxlen=4096)
        self.notes_dropped = 0
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

    def post(self, event) -> None:
        """Any thread: queue a control change or a keyboard note (MIDI, OSC, keys)."""
        if isinstance(event, NoteEvent):
            self._notes.append(event)
        else:
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
            for closer in (getattr(self.output, "stop", None),   # first: no callback inside the chain
                           getattr(self.genthread, "stop", None) if hasattr(self, "genthread") else None,
                           getattr(self.recorder, "close", None), getattr(self.osc, "close", None),
                           getattr(self.asid, "stop", None), getattr(self.fx, "close", None),
                           getattr(self.midi, "close", None)):
                if closer is not None:
                    try:
                        closer()
                    except Exception:  # noqa: BLE001 - the original error matters more
                        pass
            raise

    def _start(self) -> "LiveDaemon":

        cfg = self.cfg
        model_path = Path(cfg.model) if cfg.model is not None else DEFAULT_MODEL
        if not model_path.is_file():
            hint = (" (the shipped model is not there yet: export one with python -m training.export CKPT "
                    "-o presets/models/default.sidm, or pass --model)") if cfg.model is None else ""
            raise LiveError(f"model {model_path} does not exist{hint}")
        self.model_path = model_path
        fx_values = {}
        if cfg.fx is not None:
            try:
                self.fx_chain = find_chain(cfg.fx)
            except (FxError, OSError) as e:
                raise LiveError(str(e)) from None
            fx_values = {**self.fx_chain.values(), "fx_bypass": not cfg.fx_on}
        try:
            self.model = load_model(model_path)
            self.controls = Controls(ControlState({"lookahead_frames": cfg.lookahead_frames,
                                                   "loop_mode": cfg.loop_mode, **fx_values, **cfg.controls}))
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
        if self.mapper is not None:
            self.set_keyboard(self.mapper.cmap.keyboard)
        self.engine.published = (first.seq, self.controls.state, time.perf_counter(), 0)
        self._open_midi(startup=True)   # before the stream: a JACK client joining later can cause an xrun
        self._open_osc()
        self._open_asid()
        if self.fx_chain is not None:
            self._open_fx()             # before the stream: the callback finds it in place
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
        if self.asid is not None:
            self.asid.start()
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
                   getattr(self.asid, "_thread", None),
                   getattr(self.recorder, "_thread", None), getattr(self.osc, "_thread", None),
                   getattr(self.output, "_thread", None)]
        return [t.native_id for t in threads if t is not None and t.native_id is not None]

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
        self._pub_covered = self._midi_covered
        self.engine.published = (req.seq, state, t, self._midi_covered)   # the audio callback's one reference
        self.genthread.request = req                   # the generator thread's one reference
        self.genthread.wake.set()
        self.publish_log.append((req.seq, t, tuple(name for name, _ in changes)))

    def _control_loop(self) -> None:
        next_check = next_reload = 0.0
        while not self._stop.is_set():
            self._wake.wait(0.05)          # MIDI (the audio callback's lane), OSC, keys, stop
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
        lane = self.engine.lane
        if self.midi is not None and self.mapper is not None:
            if lane is not None:
                self._midi_covered = lane.taken   # read before draining: all of these are in the inbox
            for msg in self.midi.drain():
                for ev in self.mapper.handle(msg):
                    if isinstance(ev, NoteEvent):
                        self._notes.append(ev)
                    else:
                        self.controls.post(ev)
        update = self.controls.apply_pending()
        for err in update.errors[:3]:
            self.message(err)
        if update.changes:
            self._on_changes(update.changes)
        elif lane is not None and lane.fast_last > self._pub_covered:
            # The lane acted on a message that changed nothing here (its flags already are
            # this state): say so, so the audio thread goes back to the published state.
            self._pub_covered = self._midi_covered
            seq, state, t, _ = self.engine.published
            self.engine.published = (seq, state, t, self._midi_covered)
        if self._notes:
            self._play_notes()
        self._drain_events()

    # ------------------------------------------------------------------ keyboard voice
    def set_keyboard(self, kcfg) -> None:
        """A controller map's [keyboard] (or None): a new KeyVoice; the voice goes back to
        the model until the first note."""
        if self.keyvoice is not None and kcfg == self.keyvoice.cfg:
            return
        self.keyvoice = KeyVoice(kcfg) if kcfg is not None else None
        self._publish_keys(None)

    def _play_notes(self) -> None:
        kv = self.keyvoice
        if kv is None or not self.controls.state.keyboard:
            self.notes_dropped += len(self._notes)
            self._notes.clear()
            return
        while self._notes:
            ev = self._notes.popleft()
            kv.note_on(ev.note, ev.velocity) if ev.velocity > 0 else kv.note_off(ev.note)
            if self.recorder is not None:
                self.recorder.log_control("note", {"note": ev.note, "velocity": ev.velocity})
        self._publish_keys(kv.snapshot())

    def _publish_keys(self, snap) -> None:
        if snap is not None:
            self._seq += 1
            snap = dataclasses.replace(snap, seq=self._seq)
            self.publish_log.append((self._seq, time.perf_counter(), ("note",)))
        self.engine.keys = snap          # the audio callback's one reference
        self.genthread.forced = snap     # the generator thread's
        self.genthread.wake.set()

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
        if self.fx is not None:
            for name, value in changes:
                if name.startswith("fx_"):
                    self.fx.set(name, value)
        if self.keyvoice is not None and names & {"panic", "keyboard"}:
            if "panic" in names:
                self.keyvoice.all_off()
            on = state.keyboard and self.keyvoice.notes_played > 0
            self._publish_keys(self.keyvoice.snapshot() if on else None)
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
            seq, kind, a, b, sample, heard, dac, _block = ev
            if kind == EV_KEYS:
                self.key_events.append(ev)
            if kind in (EV_MUTE, EV_PANIC):
                self.renderer_events.append(ev)
                if self.recorder is not None:
                    value = {"voice": a, "muted": bool(b)} if kind == EV_MUTE else {"count": a}
                    value.update(sample=sample, heard_sample=heard, seq=seq)
                    self.recorder.log_control(EV_NAMES[kind], value)

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
        if self.fx is not None:
            self.fx.close()            # the stream has stopped: no callback is inside it
        self.genthread.stop()
        if self.asid is not None and not self.jack_died:
            self.asid.stop()   # sends what has played, then ASID stop
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

            import sounddevice as sd  # loads PortAudio: optional, so rendering and recording work without it
            atexit.unregister(sd._exit_handler)   # Pa_Terminate would block on the dead stream
        stats = self.stats(rec)
        self._wake.close()
        return stats

    # ------------------------------------------------------------------ figures (livestats.py)
    def latency_figures(self) -> dict:
        return livestats.latency_figures(self)

    def counters(self) -> dict:
        return livestats.counters(self)

    def stats(self, rec: dict | None = None) -> dict:
        return livestats.stats(self, rec)
