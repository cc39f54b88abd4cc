"""MIDI input behind a small interface: python-rtmidi (JACK or ALSA) and a dummy backend.

The backend callback (rtmidi's thread) only appends the raw bytes to a deque, which is
thread-safe without a lock; the control thread calls `drain()`, which parses them with
mido and drops and counts what is not one valid MIDI message.

Poll mode (`poll=True`, what `sidlive live` uses): no backend callback; one consumer
thread, the audio callback, takes each raw message with `take_raw()` (rtmidi's own
lock-free queue: no GIL needed on arrival, so a message delivered in a JACK cycle is
there when that cycle's audio callback starts) and hands it on with `inbox()`; see
sidlive/midi/lane.py. A named port that vanishes
(unplugged) is noticed by `check()`, which the control thread calls every ~0.5 s, and
reopened when it comes back, without stopping anything else.

    port = open_input("virtual")          # a virtual input port "sidlive:midi_in"
    port = open_input("nanoKONTROL2")     # exact or unique substring of a port name
    for msg in port.drain(): ...
    port.check(); port.close(); port.close()   # close twice is safe
"""
from __future__ import annotations

import collections
import logging

import mido
import rtmidi

from sidlive.audio.jackserver import jack_running

log = logging.getLogger("sidlive.midi.inputs")

CLIENT_NAME = "sidlive"
VIRTUAL_PORT = "midi_in"
QUEUE_MAX = 4096


class MidiPortError(OSError):
    """A MIDI port cannot be opened; the message lists what is available."""


class MidiInput:
    """Base: a lock-free inbox of raw messages, parsed on `drain()`."""

    name = ""

    def __init__(self, queue_max: int = QUEUE_MAX):
        self._q: collections.deque = collections.deque(maxlen=queue_max)
        self.closed = False
        self.received = 0  # raw messages taken from the queue
        self.garbage = 0  # raw messages that were not one valid MIDI message
        self.overflows = 0  # messages lost because the queue was full
        self.disconnects = 0
        self.reconnects = 0
        self.wakeup = None  # optional threading.Event set on every message (the control thread waits on it)

    def _push(self, data) -> None:
        """Backend thread: enqueue raw bytes. No parsing, no logging; sets `wakeup` if given."""
        if len(self._q) == self._q.maxlen:
            self.overflows += 1
        self._q.append(data)
        wakeup = self.wakeup
        if wakeup is not None:
            wakeup.set()

    def inbox(self, data) -> None:
        """Poll mode: the consumer hands a raw message on to `drain()` (it wakes the
        control thread itself: midilane.Waker)."""
        if len(self._q) == self._q.maxlen:
            self.overflows += 1
        self._q.append(data)

    def take_raw(self):
        """Poll mode, one consumer thread only: the next raw message (list of ints) or None."""
        return None

    def pending(self) -> int:
        """Raw messages waiting for drain()."""
        return len(self._q)

    def drain(self, max_messages: int = 1024) -> list[mido.Message]:
        """Parse up to max_messages queued raw messages, oldest first; garbage is dropped and counted."""
        out = []
        q = self._q
        while q and len(out) < max_messages:
            data = q.popleft()
            self.received += 1
            try:
                out.append(mido.Message.from_bytes(list(data)))
            except (ValueError, TypeError):
                self.garbage += 1
        return out

    @property
    def connected(self) -> bool:
        """True until closed."""
        return not self.closed

    def check(self) -> bool:
        """Reconnect if needed; returns whether the port is connected now."""
        return self.connected

    def close(self) -> None:
        """Mark the input closed."""
        self.closed = True

    def stats(self) -> dict[str, int]:
        """Counters: received, garbage, overflows, disconnects, reconnects."""
        return {"received": self.received, "garbage": self.garbage, "overflows": self.overflows,
                "disconnects": self.disconnects, "reconnects": self.reconnects}

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class DummyMidiInput(MidiInput):
    """In-process backend: `feed()` raw bytes from any thread (tests, the live view)."""

    def __init__(self, name: str = "dummy", queue_max: int = QUEUE_MAX, poll: bool = False):
        super().__init__(queue_max)
        self.name = name
        self.poll = poll
        self._raw: collections.deque = collections.deque(maxlen=queue_max)

    def feed(self, data) -> None:
        """Deliver raw bytes as if from a device (poll mode: to take_raw's queue); ignored once closed."""
        if self.closed:
            return
        if self.poll:
            self._raw.append(data)
        else:
            self._push(data)

    def take_raw(self):
        """Poll mode: the next fed raw message, or None."""
        try:
            return self._raw.popleft()
        except IndexError:
            return None

    def send(self, msg: mido.Message) -> None:
        """Feed a mido message's bytes."""
        self.feed(msg.bytes())


def choose_api(api: str = "auto") -> str:
    """'jack' when a JACK server runs (or asked for), else 'alsa'."""
    if api not in ("auto", "jack", "alsa"):
        raise ValueError(f"MIDI api must be auto, jack or alsa, got {api!r}")
    if api == "auto":
        return "jack" if jack_running() else "alsa"
    return api


def _rtapi(api: str) -> int:
    return rtmidi.API_UNIX_JACK if api == "jack" else rtmidi.API_LINUX_ALSA


def list_input_ports(api: str = "auto") -> list[str]:
    """Names of the MIDI input ports on the chosen API ([] when no client can be made)."""

    try:
        probe = rtmidi.MidiIn(rtapi=_rtapi(choose_api(api)), name=f"{CLIENT_NAME}-probe")
    except rtmidi.RtMidiError:
        return []
    try:
        return list(probe.get_ports())
    finally:
        probe.delete()


def ports_by_api() -> list[dict]:
    """The MIDI ports of every rtmidi API that `live` and `learn` can use: for "jack" (when a
    JACK server runs) and "alsa", {"api", "inputs", "outputs", "error"} (error: why none)."""
    out = []
    for api in ("jack", "alsa"):
        rec = {"api": api, "inputs": [], "outputs": [], "error": None}
        if api == "jack" and not jack_running():
            rec["error"] = "no JACK server runs"
        else:
            try:
                for key, cls in (("inputs", rtmidi.MidiIn), ("outputs", rtmidi.MidiOut)):
                    probe = cls(rtapi=_rtapi(api), name=f"{CLIENT_NAME}-probe")
                    try:
                        rec[key] = list(probe.get_ports())
                    finally:
                        probe.delete()
            except (rtmidi.RtMidiError, SystemError) as e:   # no ALSA sequencer: SystemError from its init
                rec["error"] = f"{type(e).__name__}: {e}"
        out.append(rec)
    return out


def match_port(wanted: str, names: list[str]) -> str | None:
    """Exact name, else the unique case-insensitive substring match, else None."""
    if wanted in names:
        return wanted
    hits = [n for n in names if wanted.lower() in n.lower()]
    return hits[0] if len(hits) == 1 else None


class RtMidiInput(MidiInput):
    """python-rtmidi input: a virtual port (port=None) or a named source port."""

    def __init__(self, port: str | None = None, api: str = "auto", client_name: str = CLIENT_NAME,
                 virtual_name: str = VIRTUAL_PORT, queue_max: int = QUEUE_MAX, poll: bool = False):
        super().__init__(queue_max)
        self.poll = poll

        self._rtmidi = rtmidi
        self.api = choose_api(api)
        self.wanted = port
        self.client_name = client_name
        self.virtual = port is None
        try:
            self._rt = rtmidi.MidiIn(rtapi=_rtapi(self.api), name=client_name, queue_size_limit=queue_max)
        except rtmidi.RtMidiError as e:
            raise MidiPortError(f"MIDI ({self.api}): cannot create a client: {e}") from None
        self._rt.ignore_types(sysex=False, timing=True, active_sense=True)
        # The callback goes in before any port opens: rtmidi keeps messages that arrive
        # while no callback is set in its own queue, where a callback never sees them.
        if not poll:
            self._rt.set_callback(self._on_message)
        self._get = self._rt.get_message
        self._open = False
        if self.virtual:
            try:
                self._rt.open_virtual_port(virtual_name)
            except rtmidi.RtMidiError as e:
                self._rt.delete()
                raise MidiPortError(f"MIDI ({self.api}): cannot open a virtual port: {e}") from None
            self.name = f"{client_name}:{virtual_name}"
            self._open = True
        else:
            names = self._rt.get_ports()
            found = match_port(port, names)
            if found is None:
                self._rt.delete()
                raise MidiPortError(f"MIDI ({self.api}): no single input port matches {port!r}; "
                                    f"available: {names or 'none'}")
            self.name = found
            self._connect(found)

    def _on_message(self, event, _data=None) -> None:
        self._push(event[0])  # rtmidi thread: a list of ints; parsed in drain()

    def take_raw(self):
        """Poll mode, one consumer thread only: the next raw message from rtmidi's queue, or None."""
        if self.closed:
            return None
        event = self._get()
        return None if event is None else event[0]

    def _connect(self, name: str) -> bool:
        names = self._rt.get_ports()
        if name not in names:
            return False
        if not self.poll:
            self._rt.set_callback(self._on_message)  # again: rtmidi's close_port() drops it
        try:
            self._rt.open_port(names.index(name), name=VIRTUAL_PORT)
        except self._rtmidi.RtMidiError as e:
            log.warning("MIDI: opening %s failed: %s", name, e)
            return False
        self._open = True
        return True

    @property
    def connected(self) -> bool:
        """True while the port is open and the input not closed."""
        return self._open and not self.closed

    def check(self) -> bool:
        """Notice a named port that vanished, reopen it when it returns; returns whether connected."""
        if self.closed or self.virtual:
            return self.connected
        names = self._rt.get_ports()
        if self._open and self.name not in names:
            self._rt.close_port()
            self._open = False
            self.disconnects += 1
            log.warning("MIDI: %s vanished; waiting for it to return", self.name)
        elif not self._open:
            # Match the user's spec again: a replugged device may come back under a new
            # client number (e.g. a2j's "[24]"), so the exact old name may not return.
            found = self.name if self.name in names else match_port(self.wanted, names)
            if found is not None and self._connect(found):
                self.name = found
                self.reconnects += 1
                log.info("MIDI: %s is back", found)
        return self.connected

    def close(self) -> None:
        """Cancel the callback, close the port and free the rtmidi client; safe to call twice."""
        if self.closed:
            return
        self.closed = True
        try:
            if not self.poll:
                self._rt.cancel_callback()
            if self._open:
                self._rt.close_port()
        finally:
            self._open = False
            self._rt.delete()


def open_input(spec: str | None = "virtual", api: str = "auto", poll: bool = False) -> MidiInput:
    """'virtual' (or None): a virtual port `sidlive:midi_in`; 'dummy': a DummyMidiInput;
    anything else: the input port whose name matches (exact or unique substring).
    poll: no backend callback; one consumer takes messages with `take_raw()`."""
    if spec == "dummy":
        return DummyMidiInput(poll=poll)
    if spec in (None, "virtual"):
        return RtMidiInput(None, api=api, poll=poll)
    return RtMidiInput(spec, api=api, poll=poll)
