"""The audio thread's MIDI lane: mute and solo in the JACK cycle that delivers them.

Why: the MIDI input and the audio stream are separate JACK clients (rtmidi's and
PortAudio's). A message from a controller is delivered in cycle N; with a backend
callback it reaches Python only after cycle N's audio callback has taken the GIL and
rendered, so the control thread's published state is first heard in cycle N+1: 5.3 ms
more than the message itself needs (one 256-sample period), 10.7 ms p95 to the first
changed sample against the 10 ms the live daemon promises for mute. In poll mode
(`MidiInput.take_raw`, rtmidi's own queue, filled without the GIL) cycle N's callback
finds the message already there in nearly all cycles.

So the audio callback calls `MidiLane.pump(engine)` first thing:
- every raw message goes on to the control thread unchanged (`MidiInput.inbox`): the
  controller map, controls, recording and every other parameter work as before;
- a message that the controller map binds to mute_1..3 or solo_1..3 is also acted on at
  once: the lane keeps the six flags, derives which voices sound exactly as
  `ControlState.voice_on` does, and mutes the renderer (`AudioCallback.lane_voices`).

The lookup table is built off the audio thread from the same `MidiMapper` the control
thread uses (`lane_table`), and swapped in by one reference (`MidiLane.table`) when the
map changes. The published ControlState stays the authority: it carries how many raw
messages the control thread had taken when it was made (`taken` is read before each
drain), and the engine adopts its mute/solo only when that covers the last message the
lane acted on; until then the lane's own flags stand (they are what the control thread
will publish). A mute changed elsewhere (OSC, keys, learn) arrives through the state.

The control thread sleeps on a `Waker` (an eventfd): the lane wakes it with one
non-blocking eventfd write per callback that took messages. That is the audio thread's
only system call here; it never blocks, takes no lock and allocates nothing (a
threading.Event would take a lock; polling every 2 ms instead starved the stream of the
GIL at start-up on this 2-core machine).

Audio-thread rules: no lock, no file, no print; dict lookups and small ints only.
"""
from __future__ import annotations

import os
import select

from sidlive.control.maps import MidiMapper
from sidlive.control.params import PARAMS

SLOTS = ("mute_1", "mute_2", "mute_3", "solo_1", "solo_2", "solo_3")
TOGGLE, MOMENTARY, KNOB = 0, 1, 2
MAX_PER_BLOCK = 256          # raw messages taken per callback; the rest wait for the next one


def lane_table(mapper: MidiMapper | None) -> dict[int, tuple]:
    """(status << 7 | data1) -> (slot, kind, knob values or None) for every note or CC
    message the mapper would turn into a mute/solo change, resolved by the mapper's own
    `binding` (so the precedence rules live in one place)."""
    if mapper is None:
        return {}
    table: dict[int, tuple] = {}
    slot_of = {name: i for i, name in enumerate(SLOTS)}
    for status in [k | c for k in (0x80, 0x90, 0xB0) for c in range(16)]:
        for num in range(128):
            found = mapper.binding(status, num)
            if found is None or found[0] not in ("knob", "button") or found[1].param not in slot_of:
                continue
            what, b = found
            if what == "knob":
                p = PARAMS[b.param]
                values = tuple(bool(p.from_unit(v / 127.0, b.min, b.max, b.curve)) for v in range(128))
                table[(status << 7) | num] = (slot_of[b.param], KNOB, values)
            else:
                table[(status << 7) | num] = (slot_of[b.param], _mode(b), None)
    return table


def _mode(button) -> int:
    return TOGGLE if button.mode == "toggle" else MOMENTARY


def voices_on(flags) -> tuple[bool, bool, bool]:
    """The three voices' on/off from (mute_1..3, solo_1..3), as ControlState.voice_on."""
    any_solo = flags[3] or flags[4] or flags[5]
    return ((flags[3] if any_solo else True) and not flags[0],
            (flags[4] if any_solo else True) and not flags[1],
            (flags[5] if any_solo else True) and not flags[2])


class Waker:
    """threading.Event's set/wait/clear over a Linux eventfd: `set` from any thread,
    the audio thread included; `wait`/`clear` from the one waiting thread."""

    def __init__(self):
        self._fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)

    def set(self) -> None:
        """Wake the waiting thread (one non-blocking eventfd write; never raises)."""
        try:
            os.eventfd_write(self._fd, 1)
        except (BlockingIOError, OSError):   # counter full (never in practice) or closed
            pass

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait up to timeout_s (None: for ever) until set; returns whether it was (False once closed)."""
        try:
            ready, _, _ = select.select([self._fd], [], [], timeout_s)
        except (OSError, ValueError):        # closed
            return False
        return bool(ready)

    def clear(self) -> None:
        """Reset the eventfd counter (a read) so wait blocks again."""
        try:
            os.eventfd_read(self._fd)
        except (BlockingIOError, OSError):
            pass

    def close(self) -> None:
        """Close the eventfd; safe to call twice."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


class MidiLane:
    """One per session and MIDI input; `pump` runs on the audio thread only."""

    def __init__(self, midi, table: dict[int, tuple] | None = None, state=None, waker: Waker | None = None):
        self.midi = midi
        self.waker = waker             # the control thread's
        self.table = table or {}       # swapped by the control thread (one reference)
        self.flags = [False] * 6
        if state is not None:
            self.adopt(state)
        self.taken = 0                 # raw messages taken (single writer: the audio thread)
        self.fast_last = 0             # `taken` at the last message the lane acted on
        self.acted = 0                 # mute/solo changes the lane made

    def adopt(self, state) -> None:
        """Audio thread (or before the stream starts): the published state's mute/solo."""
        for i, name in enumerate(SLOTS):
            self.flags[i] = bool(getattr(state, name))

    def pump(self, engine) -> None:
        """Audio thread: pass waiting raw messages to the inbox, act on bound mute/solo, wake the control thread."""
        midi = self.midi
        take, inbox, table = midi.take_raw, midi.inbox, self.table
        for i in range(MAX_PER_BLOCK):
            data = take()
            if data is None:
                if i and self.waker is not None:
                    self.waker.set()
                return
            inbox(data)
            self.taken += 1            # after the append: `taken` read first covers the deque
            if table:
                try:
                    status, num, value = data
                    if not (0x80 <= status < 0xF0 and 0 <= num < 128 and 0 <= value < 128):
                        continue
                    act = table.get((status << 7) | num)
                except (TypeError, ValueError):   # not three small ints: the control thread counts it
                    continue
                if act is not None:
                    self._act(act, status, value, engine)
        if self.waker is not None:
            self.waker.set()

    def _act(self, act: tuple, status: int, value: int, engine) -> None:
        slot, kind, values = act
        if kind == KNOB:
            new = values[value]
        else:
            kind_bits = status & 0xF0
            pressed = value >= 64 if kind_bits == 0xB0 else (kind_bits == 0x90 and value > 0)
            if kind == TOGGLE:
                if not pressed:
                    return
                new = not self.flags[slot]
            else:
                new = pressed
        self.fast_last = self.taken
        if new != self.flags[slot]:
            self.flags[slot] = new
            self.acted += 1
            engine.lane_voices(voices_on(self.flags))
