"""Sending to a running `sidlive live` over its OSC interface (docs/osc.md).

A knob in the page becomes one OSC message, checked first with the daemon's own parser
(`message_to_event`), so a value out of range is refused here with the daemon's words.
A take or a fragment becomes a prompt loop: it is written as a loop file (2-16 s) into the
folder the daemon reads its loops from (by default the user's loops folder, which every
`sidlive live` without --loops reads after the shipped loops), then, once the daemon has had
time to see it (it rescans every second), `/sidlive/loop N` selects it, N being its index
in the daemon's order (the folders in order, each sorted by file name).
"""
from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import numpy as np
from pythonosc.udp_client import SimpleUDPClient

from sidlive.control.osc import DEFAULT_HOST, DEFAULT_PORT, PREFIX, OscError, message_to_event
from sidlive.control.params import PARAMS
from sidlive.frames import PAL_FRAME_RATE_HZ
from sidlive.live.loops import MAX_SECONDS, MIN_SECONDS, LoopError, LoopLibrary, make_loop_frames, save_loop
from sidlive.paths import LOOPS_DIR, user_loops_dir

RESCAN_WAIT_S = 1.3          # the daemon's hub rescans the loops folder every second
KNOBS = ("temperature", "repetition", "top_p", "top_k", "reseed", "mute_1", "mute_2", "mute_3", "loop")


class InstrumentError(ValueError):
    """A message or a loop cannot be sent; the message says why."""


class Instrument:
    """The OSC side of one `sidlive live`: host, port, and the loop folders it reads (in order)."""

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, loops_dir: str | Path | None = None):
        self.host = host
        self.port = int(port)
        # a daemon started with --loops DIR reads DIR alone; without, the shipped loops then the user's
        self.folders = [Path(loops_dir)] if loops_dir is not None else [LOOPS_DIR, user_loops_dir()]
        self.target = self.folders[-1]
        self.sent = 0
        self.log: list[tuple[float, str, tuple]] = []
        self._client = SimpleUDPClient(self.host, self.port)
        self._lock = threading.Lock()

    def info(self) -> dict:
        """Where the messages go and where loops are written."""
        return {"host": self.host, "port": self.port, "loops_dir": str(self.target), "sent": self.sent,
                "knobs": [{"name": k, "kind": PARAMS[k].kind, "lo": PARAMS[k].lo, "hi": PARAMS[k].hi,
                           "default": PARAMS[k].default, "curve": PARAMS[k].curve} for k in KNOBS]}

    def retarget(self, host: str, port: int) -> None:
        """Send to another host/port from now on."""
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise InstrumentError(f"field port: {port!r} is out of range 1..65535")
        if not isinstance(host, str) or not host.strip():
            raise InstrumentError(f"field host: {host!r} is not a host name or address")
        with self._lock:
            self.host, self.port = host.strip(), port
            self._client = SimpleUDPClient(self.host, self.port)

    def send(self, name: str, value=None) -> dict:
        """One control to the daemon: `/sidlive/<name> value` (no value: a trigger or a toggle's flip)."""
        if name not in KNOBS:
            raise InstrumentError(f"field name: {name!r} is not one of the studio's live controls: {', '.join(KNOBS)}")
        args: tuple = () if value is None else (value,)
        if PARAMS[name].kind == "toggle" and value is not None:
            args = (1 if value in (1, True, "1", "true", "on") else 0,)
        try:
            message_to_event(f"{PREFIX}/{name}", args)
        except OscError as e:
            raise InstrumentError(f"{name}: {e}") from None
        with self._lock:
            self._client.send_message(f"{PREFIX}/{name}", list(args))
            self.sent += 1
            self.log.append((time.time(), name, args))
            del self.log[:-100]
        return {"address": f"{PREFIX}/{name}", "args": list(args), "host": self.host, "port": self.port}

    def send_unit(self, name: str, x: float) -> dict:
        """A knob at position x (0..1) as a MIDI controller sends it: the value on the parameter's curve."""
        if name not in KNOBS or PARAMS[name].kind not in ("continuous", "integer"):
            raise InstrumentError(f"field name: {name!r} is not a knob; knobs: "
                                  f"{', '.join(k for k in KNOBS if PARAMS[k].kind in ('continuous', 'integer'))}")
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not 0.0 <= x <= 1.0:
            raise InstrumentError(f"field unit: {x!r} is out of range 0..1 (a knob position)")
        return self.send(name, PARAMS[name].from_unit(x))

    def send_loop(self, regs: np.ndarray, name: str, *, source: str, author: str = "", chip: str = "6581",
                  wait_s: float = RESCAN_WAIT_S) -> dict:
        """Write regs as a loop in the daemon's folder and select it there (after `wait_s`, in a timer)."""
        lo, hi = (round(s * PAL_FRAME_RATE_HZ) for s in (MIN_SECONDS, MAX_SECONDS))
        if not lo <= len(regs) <= hi:
            raise InstrumentError(f"a loop for the instrument is {MIN_SECONDS:g}..{MAX_SECONDS:g} s ({lo}..{hi} "
                                  f"frames); the selection is {len(regs) / PAL_FRAME_RATE_HZ:.2f} s: select "
                                  f"{MIN_SECONDS:g}-{MAX_SECONDS:g} s on the roll (drag)")
        stem = loop_stem(name)
        path = self.target / f"{stem}.regs"
        n = 2
        while path.exists():
            path = self.target / f"{stem}-{n}.regs"
            n += 1
        try:
            loop = save_loop(make_loop_frames(regs, path.stem, source=source, author=author, chip=chip), path)
            index = LoopLibrary(self.folders).index_of(path.stem)
        except (LoopError, OSError) as e:
            raise InstrumentError(f"cannot write the loop: {e}") from None
        if index > PARAMS["loop"].hi:
            raise InstrumentError(f"the loop is number {index} in the daemon's list; OSC selects "
                                  f"0..{int(PARAMS['loop'].hi)}: remove some loops from {self.target}")
        timer = threading.Timer(wait_s, self.send, args=("loop", index))
        timer.daemon = True
        timer.start()
        return {"name": loop.name, "path": str(path), "index": index, "seconds": round(loop.seconds, 2),
                "select_after_s": wait_s, "host": self.host, "port": self.port}


def loop_stem(name: str) -> str:
    """A file-name-safe loop name (letters, digits, - and _; at most 48 characters)."""
    s = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:48]
    return s or "studio-loop"
