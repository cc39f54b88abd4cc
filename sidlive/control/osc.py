"""Headless control over OSC (UDP, 127.0.0.1:9000 by default). See docs/osc.md.

One address per parameter, `/sidlive/<name>`:
  /sidlive/temperature 0.8       continuous / integer: one number
  /sidlive/mute_2 1              toggle: 0 or 1 (true/false); no argument flips it
  /sidlive/mute 2 1              voice form of mute/solo: voice 1..3, then 0/1 (or none: flip)
  /sidlive/loop_mode call_response   choice: a name or an index; no argument cycles
  /sidlive/reseed                trigger: no argument, or a number (nonzero fires, 0 = release)
  /sidlive/note 45 100           the keyboard voice: note 0..127, velocity 0..127 (0 = note off)

Messages become ControlEvents handed to `post` (e.g. `Controls.post`). Values are checked
here, in the server thread: bad ones are dropped, counted and logged, never raised. The log
takes at most LOG_PER_SECOND dropped messages a second, each field cut to LOG_FIELD_CHARS;
the rest are counted (`dropped_unlogged`) and summed up in one line when the second is over.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from pythonosc import osc_packet
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer

from sidlive.control.keyvoice import NoteEvent, note_event
from sidlive.control.params import PARAMS, VOICES, ControlError, ControlEvent

log = logging.getLogger("sidlive.control.osc")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9000
PREFIX = "/sidlive"
VOICE_ADDRESSES = ("mute", "solo")
LOG_PER_SECOND = 5       # dropped messages logged a second; a flood of garbage costs a few lines
LOG_FIELD_CHARS = 100    # address, arguments and reason are cut to this many characters in the log


def _cut(text: str) -> str:
    return text if len(text) <= LOG_FIELD_CHARS else f"{text[:LOG_FIELD_CHARS]}... ({len(text)} characters)"


class OscError(ValueError):
    """An OSC message cannot be turned into a control change."""


def message_to_event(address: str, args: tuple, prefix: str = PREFIX) -> ControlEvent | NoteEvent:
    """Translate one OSC message into a validated ControlEvent, or raise OscError."""
    if not address.startswith(prefix + "/"):
        raise OscError(f"unknown address (expected {prefix}/<parameter>)")
    name = address[len(prefix) + 1:]
    src = "osc"
    if name == "note":
        if len(args) != 2:
            raise OscError(f"note takes a note 0..127 and a velocity 0..127, got {len(args)} arguments")
        try:
            ev = note_event(*args)
        except ValueError as e:
            raise OscError(f"note: {e}") from None
        return NoteEvent(ev.note, ev.velocity, src)
    if name in VOICE_ADDRESSES:
        if not args or len(args) > 2:
            raise OscError(f"takes a voice {VOICES[0]}..{VOICES[-1]} and optionally 0/1, got {len(args)} arguments")
        voice = args[0]
        if isinstance(voice, bool) or not isinstance(voice, (int, float)) or voice not in VOICES:
            raise OscError(f"voice {voice!r} is out of range {VOICES[0]}..{VOICES[-1]}")
        name, args = f"{name}_{int(voice)}", args[1:]
    p = PARAMS.get(name)
    if p is None:
        raise OscError(f"unknown parameter {name!r}; known: {', '.join(PARAMS)}, mute, solo")
    if len(args) > 1:
        raise OscError(f"{name} takes at most one argument, got {len(args)}")
    if not args:
        if p.kind == "trigger":
            return ControlEvent(name, op="trigger", source=src)
        if p.kind in ("toggle", "choice"):
            return ControlEvent(name, op="toggle", source=src)
        raise OscError(f"{name} needs a value in {p.range_text()}")
    value = args[0]
    if p.kind == "trigger":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise OscError(f"{name}: trigger argument must be a number (nonzero fires), got {value!r}")
        return ControlEvent(name, value != 0, "set", src)
    try:
        return ControlEvent(name, p.validate(value), "set", src)
    except ControlError as e:
        raise OscError(str(e)) from None


class _Dispatcher(Dispatcher):
    """Routes every packet to OscServer._on_message and counts unparsable ones."""

    def __init__(self, owner: "OscServer"):
        super().__init__()
        self._owner = owner

    def call_handlers_for_packet(self, data: bytes, client_address) -> list:
        try:
            messages = [m.message for m in osc_packet.OscPacket(data).messages]
        except Exception:  # noqa: BLE001 - ParseError and anything else from garbage
            self._owner.received += 1          # a packet came: received, then dropped
            self._owner._drop("<packet>", (), f"not an OSC packet ({len(data)} bytes)")
            return []
        for m in messages:
            self._owner._on_message(m.address, tuple(m.params))
        return []


class _Server(BlockingOSCUDPServer):
    def verify_request(self, request, client_address) -> bool:
        return True  # let garbage reach the dispatcher, where it is counted


class OscServer:
    """UDP OSC server in a daemon thread. `post(event)` is called from that thread."""

    def __init__(self, post: Callable[[ControlEvent], None], host: str = DEFAULT_HOST,
                 port: int = DEFAULT_PORT, prefix: str = PREFIX):
        self.post = post
        self.host = host
        self.port = port  # the bound port after start() (useful with port=0)
        self.prefix = prefix
        self.received = 0
        self.accepted = 0
        self.dropped = 0
        self.dropped_unlogged = 0
        self._log_second = float("-inf")   # when the current second of logging began (monotonic)
        self._logged = self._unlogged = 0  # dropped messages logged / not logged in it
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "OscServer":
        """Bind the UDP socket (port 0: any free one) and serve in a daemon thread."""
        if self._server is not None:
            return self
        self._server = _Server((self.host, self.port), _Dispatcher(self))
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="sidlive-osc", daemon=True)
        self._thread.start()
        log.info("OSC: listening on %s:%d", self.host, self.port)
        return self

    def _on_message(self, address: str, args: tuple) -> None:
        self.received += 1
        try:
            event = message_to_event(address, args, self.prefix)
        except OscError as e:
            self._drop(address, args, str(e))
            return
        except Exception as e:  # noqa: BLE001 - never raise in the server thread
            self._drop(address, args, f"{type(e).__name__}: {e}")
            return
        try:
            self.post(event)
        except Exception as e:  # noqa: BLE001
            self._drop(address, args, f"post failed: {type(e).__name__}: {e}")
            return
        self.accepted += 1

    def _drop(self, address: str, args: Any, reason: str) -> None:
        self.dropped += 1
        now = time.monotonic()
        if now - self._log_second >= 1.0:
            if self._unlogged:
                log.warning("OSC: %d more dropped messages not logged in that second (at most %d a second)",
                            self._unlogged, LOG_PER_SECOND)
            self._log_second, self._logged, self._unlogged = now, 0, 0
        if self._logged < LOG_PER_SECOND:
            self._logged += 1
            log.warning("OSC %s %s dropped: %s", _cut(str(address)), _cut(repr(args)), _cut(str(reason)))
        else:
            self._unlogged += 1
            self.dropped_unlogged += 1

    def close(self) -> None:
        """Shut the server down and join its thread; safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def stats(self) -> dict[str, int]:
        """Message counts: received, accepted, dropped, and of those dropped the ones the log left out."""
        return {"received": self.received, "accepted": self.accepted, "dropped": self.dropped,
                "dropped_unlogged": self.dropped_unlogged}

    def __enter__(self) -> "OscServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
