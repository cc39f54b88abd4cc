"""The control hub of `sidlive live`: the control thread and everything it owns.

MIDI drain (the audio callback's lane fills the input's queue) -> controller map ->
Controls.apply_pending -> one reference swap each to the audio callback (`published`) and
the generator thread (`request`). It also plays keyboard notes, steps through loops,
captures loops, logs what changed to the recording, and watches, every 0.25 s, the MIDI
port (replugged: it reopens) and the session's ports, and every second the controller map
and the loops folder (reloaded on change; a missing or bad file is reported with its file,
line and field and the previous one stays).
"""
from __future__ import annotations

import collections
import dataclasses
import threading
import time
from pathlib import Path

import numpy as np

from sidlive.control.keyvoice import KeyVoice, NoteEvent
from sidlive.control.maps import ControllerMapError, MidiMapper, load_map
from sidlive.control.params import ControlEvent, ControlState
from sidlive.frames import PAL_FRAME_RATE_HZ
from sidlive.live.callback import EV_KEYS, EV_MUTE, EV_NAMES, EV_PANIC, EV_RESUME
from sidlive.live.genthread import GenRequest
from sidlive.live.loops import LoopError, capture
from sidlive.live.ports import LiveError
from sidlive.midi.inputs import open_input
from sidlive.midi.lane import MidiLane, lane_table
from sidlive.paths import user_loops_dir

_GOLDEN = 0x9E3779B97F4A7C15


def seed_for(base: int, reseeds: int) -> int:
    """The generator's seed after `reseeds` reseeds of a run with base seed `base`."""
    return (int(base) + reseeds * _GOLDEN) & ((1 << 64) - 1)


def read_map(path: Path) -> tuple[MidiMapper, int]:
    """(the mapper of the controller map at path, its mtime); LiveError naming the problem."""
    try:
        mtime = path.stat().st_mtime_ns
        return MidiMapper(load_map(path)), mtime
    except (OSError, ControllerMapError) as e:
        raise LiveError(f"controller map {path}: {e.strerror}" if isinstance(e, OSError) else str(e)) from None


class ControlHub:
    """The control thread of one session and its state (map, keyboard voice, event logs)."""

    def __init__(self, cfg, *, controls, audio, genthread, library, ring, ports, recorder, n_composers: int,
                 wake, message, mapper: MidiMapper | None = None, map_path: Path | None = None, map_mtime=None):
        self.cfg, self.controls, self.audio, self.genthread = cfg, controls, audio, genthread
        self.library, self.ring, self.ports, self.recorder = library, ring, ports, recorder
        self.n_composers, self.wake, self.message = n_composers, wake, message
        self.mapper, self.map_path, self._map_mtime = mapper, map_path, map_mtime
        self.midi = None
        self.keyvoice = None           # KeyVoice when the controller map has [keyboard]
        self.publish_log: collections.deque = collections.deque(maxlen=200_000)   # (seq, perf, names)
        self.renderer_events: collections.deque = collections.deque(maxlen=100_000)
        self.key_events: collections.deque = collections.deque(maxlen=100_000)
        self.notes: collections.deque = collections.deque(maxlen=4096)
        self.notes_dropped = 0
        self.events_lost = 0
        self._seq = 0
        self._ev_read = 0
        self._midi_covered = 0         # MIDI lane messages the control thread has taken in
        self._pub_covered = 0          # ... when the last state was published
        self._last_capture = 0.0
        self._force_reload = False
        self._stop = threading.Event()
        self.thread: threading.Thread | None = None

    # ------------------------------------------------------------------ thread
    def start(self) -> None:
        """Start the control thread."""
        self.thread = threading.Thread(target=self._loop, name="sidlive-control", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stop the control thread (first on stop: a stopped stream is not a dead server)."""
        self._stop.set()
        self.wake.set()
        if self.thread is not None:
            self.thread.join(timeout=2.0)

    def request_reload(self) -> None:
        """Any thread: reload the controller map and the loops folder now."""
        self._force_reload = True
        self.wake.set()

    def _loop(self) -> None:
        next_check = next_reload = 0.0
        while not self._stop.is_set():
            self.wake.wait(0.05)          # MIDI (the audio callback's lane), OSC, keys, stop
            self.wake.clear()
            try:
                self.step()
                now = time.monotonic()
                if now >= next_check:
                    next_check = now + 0.25
                    self.check()
                if now >= next_reload or self._force_reload:
                    next_reload = now + 1.0
                    force, self._force_reload = self._force_reload, False
                    self.reload(force)
            except Exception as e:  # noqa: BLE001 - the control thread must live on
                self.message(f"control thread: {type(e).__name__}: {e}")

    # ------------------------------------------------------------------ MIDI in
    def open_midi(self, startup: bool = False) -> None:
        """Open the MIDI input (poll mode: the audio callback's lane takes the messages)."""
        spec = self.cfg.midi
        if spec in (None, "none") or self.midi is not None:
            return
        try:
            self.midi = open_input(spec, poll=True)
            self.audio.lane = MidiLane(self.midi, lane_table(self.mapper), self.controls.state, self.wake)
            self.message(f"MIDI in: {self.midi.name}")
        except (OSError, ImportError) as e:
            if startup:
                self.message(f"{e}; playing on, will look for the port again")

    def close_midi(self) -> None:
        """Close the MIDI input (not a JACK one whose server died: that would block)."""
        if self.midi is not None and not (self.ports.jack_died and getattr(self.midi, "api", "") == "jack"):
            self.midi.close()

    # ------------------------------------------------------------------ one step
    def request(self, state: ControlState) -> GenRequest:
        """The generator thread's next request for `state` (a new sequence number)."""
        self._seq += 1
        idx = state.loop
        lp = self.library.get(idx) if idx >= 0 else None
        return GenRequest(self._seq, state.temperature, state.top_k, state.top_p,
                          min(state.composer, self.n_composers - 1), seed_for(self.cfg.seed, state.reseed), lp,
                          (idx, id(lp)), state.loop_mode, state.panic, state.lookahead_frames, state.repetition)

    def publish(self, changes) -> None:
        """Hand the current state to the audio callback and the generator thread."""
        state = self.controls.state
        req = self.request(state)
        t = time.perf_counter()
        self._pub_covered = self._midi_covered
        self.audio.published = (req.seq, state, t, self._midi_covered)   # the audio callback's one reference
        self.genthread.request = req                   # the generator thread's one reference
        self.genthread.wake.set()
        self.publish_log.append((req.seq, t, tuple(name for name, _ in changes)))

    def step(self) -> None:
        """Take in MIDI, apply pending controls, publish, play notes, drain the callback's events."""
        lane = self.audio.lane
        if self.midi is not None and self.mapper is not None:
            if lane is not None:
                self._midi_covered = lane.taken   # read before draining: all of these are in the inbox
            for msg in self.midi.drain():
                for ev in self.mapper.handle(msg):
                    if isinstance(ev, NoteEvent):
                        self.notes.append(ev)
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
            seq, state, t, _ = self.audio.published
            self.audio.published = (seq, state, t, self._midi_covered)
        if self.notes:
            self._play_notes()
        self.drain_events()

    def _on_changes(self, changes) -> None:
        state = self.controls.state
        names = {name for name, _ in changes}
        if "reseed" in names:
            changes = changes + [("seed", seed_for(self.cfg.seed, state.reseed))]
        self.publish(changes)
        if self.recorder is not None:
            for name, value in changes:
                self.recorder.log_control(name, value)
        if "capture_loop" in names:
            self.capture()
        if self.ports.fx is not None:
            for name, value in changes:
                if name.startswith("fx_"):
                    self.ports.fx.set(name, value)
        if self.keyvoice is not None and names & {"panic", "keyboard"}:
            if "panic" in names:
                self.keyvoice.all_off()
            on = state.keyboard and self.keyvoice.notes_played > 0
            self.publish_keys(self.keyvoice.snapshot() if on else None)
        if names & {"next_loop", "prev_loop"}:
            n = len(self.library.loops)
            step = (1 if "next_loop" in names else 0) - (1 if "prev_loop" in names else 0)
            if n and step:
                new = (state.loop + 1 + step) % (n + 1) - 1    # ... -1 (free), 0 .. n-1, -1 ...
                self.controls.post(ControlEvent("loop", new, source="daemon"))
                self.wake.set()
        if "loop" in names and state.loop >= len(self.library.loops):
            self.message(f"loop {state.loop}: there are {len(self.library.loops)} loops; playing free")

    def drain_events(self) -> None:
        """Move the audio callback's events (mutes, panics, heard notes) to the logs and the recording."""
        events, self._ev_read, lost = self.audio.read_events(self._ev_read)
        self.events_lost += lost
        for ev in events:
            seq, kind, a, b, sample, heard, dac, _block = ev
            if kind == EV_KEYS:
                self.key_events.append(ev)
            if kind in (EV_MUTE, EV_PANIC, EV_RESUME):
                if kind != EV_RESUME:
                    self.renderer_events.append(ev)
                if self.recorder is not None:
                    value = {"voice": a, "muted": bool(b)} if kind == EV_MUTE else {"count": a}
                    value.update(sample=sample, heard_sample=heard, seq=seq)
                    self.recorder.log_control(EV_NAMES[kind], value)

    # ------------------------------------------------------------------ keyboard voice
    def set_keyboard(self, kcfg) -> None:
        """A controller map's [keyboard] (or None): a new KeyVoice; the voice goes back to
        the model until the first note."""
        if self.keyvoice is not None and kcfg == self.keyvoice.cfg:
            return
        self.keyvoice = KeyVoice(kcfg) if kcfg is not None else None
        self.publish_keys(None)

    def _play_notes(self) -> None:
        kv = self.keyvoice
        if kv is None or not self.controls.state.keyboard:
            self.notes_dropped += len(self.notes)
            self.notes.clear()
            return
        while self.notes:
            ev = self.notes.popleft()
            kv.note_on(ev.note, ev.velocity) if ev.velocity > 0 else kv.note_off(ev.note)
            if self.recorder is not None:
                self.recorder.log_control("note", {"note": ev.note, "velocity": ev.velocity})
        self.publish_keys(kv.snapshot())

    def publish_keys(self, snap) -> None:
        """Hand a keyboard snapshot (or None: the model plays the voice) to both threads."""
        if snap is not None:
            self._seq += 1
            snap = dataclasses.replace(snap, seq=self._seq)
            self.publish_log.append((self._seq, time.perf_counter(), ("note",)))
        self.audio.keys = snap           # the audio callback's one reference
        self.genthread.forced = snap     # the generator thread's
        self.genthread.wake.set()

    # ------------------------------------------------------------------ files
    def capture(self) -> None:
        """Save the last capture_seconds that played as a new loop (at most once a second)."""
        now = time.monotonic()
        if now - self._last_capture < 1.0:
            return
        self._last_capture = now
        folder = self.cfg.loops_dir if self.cfg.loops_dir is not None else user_loops_dir()
        read = self.ring.read_pos
        hist = self.genthread.hist
        n = min(int(round(self.cfg.capture_seconds * PAL_FRAME_RATE_HZ)), read, len(hist) - 64)
        regs = hist[np.arange(read - n, read) % len(hist)]
        try:
            lp = capture(regs, folder, chip=self.cfg.chip)
        except (LoopError, OSError) as e:
            self.message(str(e) if str(e).startswith("capture") else f"capture: {e}")
            return
        self.library.refresh()
        self.message(f"captured {lp.seconds:.1f} s as loop {lp.name} ({lp.path})")

    def check(self) -> None:
        """Every 0.25 s: the MIDI port (reopened when replugged), the ports, the generator."""
        if self.midi is not None:
            self.midi.check()
        elif self.cfg.midi not in (None, "none", "virtual", "dummy"):
            self.open_midi()
        self.ports.check()
        if self.genthread.error is not None:
            self.message(f"generator: {self.genthread.error}")
            self.genthread.error = None

    def reload(self, force: bool = False) -> None:
        """The controller map and the loops folder again, when their files changed (or force)."""
        if self.cfg.midi not in (None, "none"):
            path = self.map_path
            try:
                mtime = path.stat().st_mtime_ns
            except OSError:
                mtime = None
            if force or mtime != self._map_mtime:
                if mtime is None:
                    self._map_mtime = None
                    self.message(f"controller map {path}: missing; keeping the previous map")
                else:
                    self._reload_map(path)
        before = self.library.version
        for err in self.library.refresh(force):
            self.message(err)
        if self.library.version != before:
            self.publish([("loops_reloaded", self.library.version)])

    def _reload_map(self, path: Path) -> None:
        try:
            self.mapper, self._map_mtime = read_map(path)
        except LiveError as e:
            try:
                self._map_mtime = path.stat().st_mtime_ns   # not again until the file changes
            except OSError:
                pass
            self.message(f"{e}; keeping the previous map")
            return
        lane = self.audio.lane
        if lane is not None:
            lane.table = lane_table(self.mapper)   # one reference: the audio thread's next pump uses it
        self.set_keyboard(self.mapper.cmap.keyboard)
        self.message(f"controller map reloaded: {self.mapper.cmap.name} ({path})")
