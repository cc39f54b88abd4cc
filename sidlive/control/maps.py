"""Controller maps (presets/controllers/*.toml) and the MIDI mapper.

A map binds knobs (CC -> parameter over a range with a curve) and buttons (CC or note ->
toggle, choice or trigger parameter, momentary or toggle) and program change -> loop.
File format (see docs/controllers.md):
    name = "Korg nanoKONTROL2"
    channel = 1                 # 1..16, or 0 = any channel
    program_change = "loop"     # optional

    [[knob]]
    cc = 16
    param = "temperature"
    min = 0.2                   # optional, default: the parameter's range
    max = 1.5
    curve = "exp"               # optional: linear | exp | log

    [[button]]
    cc = 48                     # or: note = 41
    param = "mute_1"
    mode = "toggle"             # toggle: each press flips; momentary: on while held

    [keyboard]                  # optional: notes on this channel play one SID voice
    channel = 2                 # (keyvoice.KeyboardConfig: voice, waveform, pulse_width,
    voice = 1                   #  attack, decay, sustain, release, velocity, transpose_semitones)

`MidiMapper.handle(msg)` turns one MIDI message into ControlEvents (and NoteEvents for the
keyboard voice); it never raises. CC 120 (all sound off) and 123 (all notes off) always
mean panic. Notes on the keyboard's channel go to the keyboard, before any note button.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import mido

from sidlive.control.keyvoice import KeyboardConfig, KeyboardConfigError, NoteEvent
from sidlive.control.params import CURVES, PARAMS, ControlEvent
from sidlive.paths import CONTROLLERS_DIR
from sidlive.tomldoc import Locator, parse_toml, read_text

PANIC_CCS = (120, 123)
MODES = ("momentary", "toggle")
KNOB_KINDS = ("continuous", "integer", "choice", "toggle")
BUTTON_KINDS = ("toggle", "choice", "trigger")


class ControllerMapError(ValueError):
    """A controller map is invalid; the message names the file, line and field."""


@dataclasses.dataclass(frozen=True)
class Knob:
    """A knob binding: CC -> parameter, with optional range, curve and channel."""
    cc: int
    param: str
    min: float | None = None
    max: float | None = None
    curve: str | None = None
    channel: int | None = None  # None: the map's channel


@dataclasses.dataclass(frozen=True)
class Button:
    """A button binding: CC or note -> parameter, momentary or toggle, with an optional channel."""
    param: str
    cc: int | None = None
    note: int | None = None
    mode: str = "momentary"
    channel: int | None = None


@dataclasses.dataclass(frozen=True)
class ControllerMap:
    """A parsed controller map: name, channel, program-change target, knobs, buttons and keyboard."""
    name: str
    channel: int = 0  # 1..16; 0 = any
    program_change: str | None = None
    knobs: tuple[Knob, ...] = ()
    buttons: tuple[Button, ...] = ()
    keyboard: KeyboardConfig | None = None


# ---------------------------------------------------------------------------- loading

_TOP_KEYS = {"name", "channel", "program_change", "knob", "button", "keyboard"}
_KNOB_KEYS = {"cc", "param", "min", "max", "curve", "channel"}
_BUTTON_KEYS = {"cc", "note", "param", "mode", "channel"}


def load_map(path: str | Path) -> ControllerMap:
    """Read and check a controller map file; ControllerMapError names the problem."""
    return parse_map(read_text(path, ControllerMapError), str(path))


def parse_map(text: str, source: str = "<string>") -> ControllerMap:
    """Parse and check a controller map's TOML text; ControllerMapError names the problem."""
    doc, where = parse_toml(text, source, ControllerMapError)
    for key in doc:
        if key not in _TOP_KEYS:
            raise where.error(None, None, key, f"unknown key; allowed: {', '.join(sorted(_TOP_KEYS))}")
    name = doc.get("name")
    if not isinstance(name, str) or not name.strip():
        raise where.error(None, None, "name", "must be a non-empty string")
    channel = _int_field(doc, "channel", 0, 0, 16, where, None, None, "(0 = any channel)")
    pc = doc.get("program_change")
    if pc is not None:
        if not isinstance(pc, str) or pc not in PARAMS or PARAMS[pc].kind != "integer":
            raise where.error(None, None, "program_change", f"{pc!r} is not an integer parameter (e.g. \"loop\")")
    knobs = tuple(_knob(t, i, where) for i, t in enumerate(_tables(doc, "knob", where)))
    buttons = tuple(_button(t, i, where) for i, t in enumerate(_tables(doc, "button", where)))
    keyboard = _keyboard(doc.get("keyboard"), where)
    cmap = ControllerMap(name=name, channel=channel, program_change=pc, knobs=knobs, buttons=buttons,
                         keyboard=keyboard)
    _check_duplicates(cmap, where)
    return cmap


def _tables(doc: dict, key: str, where: "Locator") -> list[dict]:
    value = doc.get(key, [])
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise where.error(None, None, key, f"must be an array of tables: write [[{key}]]")
    return value


def _knob(t: dict, i: int, where: "Locator") -> Knob:
    _unknown(t, _KNOB_KEYS, "knob", i, where)
    cc = _int_field(t, "cc", None, 0, 119, where, "knob", i, "(120..127 are channel mode messages)")
    p = _param_field(t, "knob", i, where, KNOB_KINDS)
    lo, hi = t.get("min"), t.get("max")
    for key, v in (("min", lo), ("max", hi)):
        if v is None:
            continue
        if p.kind not in ("continuous", "integer"):
            raise where.error("knob", i, key, f"{p.name} is a {p.kind} parameter; min/max apply to numbers only")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not p.lo <= v <= p.hi:
            raise where.error("knob", i, key, f"{v!r} is out of {p.name}'s range {p.range_text()}")
    curve = t.get("curve")
    if curve is not None and curve not in CURVES:
        raise where.error("knob", i, "curve", f"{curve!r} is not one of {', '.join(CURVES)}")
    channel = _int_field(t, "channel", None, 1, 16, where, "knob", i, "")
    return Knob(cc=cc, param=p.name, min=_num(lo), max=_num(hi), curve=curve, channel=channel)


def _button(t: dict, i: int, where: "Locator") -> Button:
    _unknown(t, _BUTTON_KEYS, "button", i, where)
    if ("cc" in t) == ("note" in t):
        raise where.error("button", i, None, "give exactly one of cc or note")
    cc = _int_field(t, "cc", None, 0, 119, where, "button", i, "(120..127 are channel mode messages)")
    note = _int_field(t, "note", None, 0, 127, where, "button", i, "")
    p = _param_field(t, "button", i, where, BUTTON_KINDS)
    mode = t.get("mode", "toggle" if p.kind == "toggle" else "momentary")
    if mode not in MODES:
        raise where.error("button", i, "mode", f"{mode!r} is not one of {', '.join(MODES)}")
    channel = _int_field(t, "channel", None, 1, 16, where, "button", i, "")
    return Button(param=p.name, cc=cc, note=note, mode=mode, channel=channel)


def _keyboard(t, where: "Locator") -> KeyboardConfig | None:
    if t is None:
        return None
    if not isinstance(t, dict):
        raise where.error(None, None, "keyboard", "must be a table: write [keyboard]")
    allowed = set(KeyboardConfig.fields())
    for key in t:
        if key not in allowed:
            raise where.error("keyboard", None, key, f"unknown key; allowed: {', '.join(sorted(allowed))}")
    if "channel" not in t:
        raise where.error("keyboard", None, None, "missing channel (1..16): the MIDI channel the keyboard plays on")
    try:
        return KeyboardConfig(**t)
    except KeyboardConfigError as e:
        key = str(e).split(":", 1)[0].split(".", 1)[1]
        raise where.error("keyboard", None, key, str(e).split(": ", 1)[1]) from None


def _num(v):
    return None if v is None else float(v)


def _unknown(t: dict, allowed: set, table: str, i: int, where: "Locator") -> None:
    for key in t:
        if key not in allowed:
            raise where.error(table, i, key, f"unknown key; allowed: {', '.join(sorted(allowed))}")


def _int_field(t: dict, key: str, default, lo: int, hi: int, where, table, i, note: str):
    v = t.get(key, default)
    if v is None:
        if default is None and key == "cc" and table == "knob":
            raise where.error(table, i, key, "missing; a knob needs a cc number")
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise where.error(table, i, key, f"{v!r} is out of range {lo}..{hi} {note}".rstrip())
    return v


def _param_field(t: dict, table: str, i: int, where: "Locator", kinds: tuple[str, ...]):
    name = t.get("param")
    if not isinstance(name, str) or name not in PARAMS:
        raise where.error(table, i, "param", f"{name!r} is not a parameter; known: {', '.join(PARAMS)}")
    p = PARAMS[name]
    if p.kind not in kinds:
        raise where.error(table, i, "param", f"{name} is a {p.kind} parameter; a {table} drives {', '.join(kinds)}")
    return p


def _check_duplicates(cmap: ControllerMap, where: "Locator") -> None:
    seen: dict[tuple, str] = {}
    for table, items in (("knob", cmap.knobs), ("button", cmap.buttons)):
        for i, b in enumerate(items):
            kind, num = ("cc", b.cc) if b.cc is not None else ("note", b.note)
            key = (b.channel or cmap.channel, kind, num)
            if key in seen:
                raise where.error(table, i, kind, f"{kind} {num} on this channel is already bound by {seen[key]}")
            seen[key] = f"{table}[{i}]"
    kb = cmap.keyboard
    if kb is not None:
        for i, b in enumerate(cmap.buttons):
            if b.note is not None and (b.channel or cmap.channel) == kb.channel:
                raise where.error("button", i, "note", f"note {b.note} on channel {kb.channel} is the keyboard's "
                                                       f"([keyboard] channel {kb.channel}); give the button another channel")


# ---------------------------------------------------------------------------- saving

def dump_map(cmap: ControllerMap) -> str:
    """A controller map as TOML text that parse_map reads back."""
    out = ["# sidlive controller map (see docs/controllers.md)",
           f"name = {json.dumps(cmap.name)}", f"channel = {cmap.channel}"]
    if cmap.program_change:
        out.append(f"program_change = {json.dumps(cmap.program_change)}")
    for k in cmap.knobs:
        out += ["", "[[knob]]", f"cc = {k.cc}", f"param = {json.dumps(k.param)}"]
        out += [f"{key} = {_toml_value(v)}" for key, v in
                (("min", k.min), ("max", k.max), ("curve", k.curve), ("channel", k.channel)) if v is not None]
    for b in cmap.buttons:
        out += ["", "[[button]]"]
        out.append(f"cc = {b.cc}" if b.cc is not None else f"note = {b.note}")
        out += [f"param = {json.dumps(b.param)}", f"mode = {json.dumps(b.mode)}"]
        if b.channel is not None:
            out.append(f"channel = {b.channel}")
    if cmap.keyboard is not None:
        out += ["", "[keyboard]"]
        out += [f"{f} = {_toml_value(getattr(cmap.keyboard, f))}" for f in KeyboardConfig.fields()]
    return "\n".join(out) + "\n"


def _toml_value(v: Any) -> str:
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, float):
        return repr(v)
    return str(v)


def save_map(cmap: ControllerMap, path: str | Path) -> None:
    """Write a controller map as TOML, after checking that the text parses back."""
    text = dump_map(cmap)
    parse_map(text, str(path))  # never write a map we could not read back
    Path(path).write_text(text, encoding="utf-8")


def preset_paths() -> list[Path]:
    """The shipped controller maps (presets/controllers/*.toml), sorted."""
    return sorted(CONTROLLERS_DIR.glob("*.toml"))


# ---------------------------------------------------------------------------- mapping

class MidiMapper:
    """MIDI message -> ControlEvents through a ControllerMap. Pure apart from counters."""

    def __init__(self, cmap: ControllerMap):
        self.cmap = cmap
        self._knobs: dict[tuple[int, int], Knob] = {}  # (channel or 0, cc)
        self._cc_buttons: dict[tuple[int, int], Button] = {}
        self._note_buttons: dict[tuple[int, int], Button] = {}
        for k in cmap.knobs:
            self._knobs[(k.channel or cmap.channel, k.cc)] = k
        for b in cmap.buttons:
            table = self._cc_buttons if b.cc is not None else self._note_buttons
            table[(b.channel or cmap.channel, b.cc if b.cc is not None else b.note)] = b
        self.received = 0
        self.mapped = 0
        self.ignored = 0  # valid MIDI that the map does not bind
        self.malformed = 0  # bytes that are not one MIDI message, or foreign objects

    def handle(self, msg: Any) -> list[ControlEvent]:
        """The events for one MIDI message (a mido.Message or its bytes); counts it, never raises."""
        self.received += 1
        try:
            if not isinstance(msg, mido.Message):
                msg = mido.Message.from_bytes(list(msg))
            events = self._events(msg)
        except Exception:  # noqa: BLE001 - a mapper in a MIDI thread must never raise
            self.malformed += 1
            return []
        if events:
            self.mapped += 1
        else:
            self.ignored += 1
        return events

    def _find(self, table: dict, channel: int, number: int):
        return table.get((channel, number)) or table.get((0, number))

    def binding(self, status: int, number: int):
        """What a note or CC message (status byte, note/controller number) is bound to, by
        the map's precedence (keyboard channel notes, panic CCs, channel-specific before
        any-channel bindings, knobs before CC buttons): ("note", None) for the keyboard
        voice, ("panic", None), ("knob", Knob), ("button", Button), or None."""
        kind, ch = status & 0xF0, (status & 0x0F) + 1
        is_note = kind in (0x80, 0x90)
        kb = self.cmap.keyboard
        if kb is not None and ch == kb.channel and is_note:
            return ("note", None)
        if kind == 0xB0:
            if number in PANIC_CCS:
                return ("panic", None) if self.cmap.channel in (0, ch) else None
            knob = self._find(self._knobs, ch, number)
            if knob is not None:
                return ("knob", knob)
            button = self._find(self._cc_buttons, ch, number)
            return ("button", button) if button is not None else None
        if is_note:
            button = self._find(self._note_buttons, ch, number)
            return ("button", button) if button is not None else None
        return None

    def _events(self, msg: mido.Message) -> list:
        src = f"midi:{self.cmap.name}"
        if not hasattr(msg, "channel"):
            return []
        if msg.type == "program_change":
            if self.cmap.program_change and self.cmap.channel in (0, msg.channel + 1):
                return [ControlEvent(self.cmap.program_change, msg.program, "set", src)]
            return []
        if msg.type not in ("control_change", "note_on", "note_off"):
            return []
        cc = msg.type == "control_change"
        found = self.binding(msg.bytes()[0], msg.control if cc else msg.note)
        if found is None:
            return []
        what, b = found
        if what == "note":
            return [NoteEvent(msg.note, msg.velocity if msg.type == "note_on" else 0, src)]
        if what == "panic":
            return [ControlEvent("panic", op="trigger", source=src)]
        if what == "knob":
            p = PARAMS[b.param]
            return [ControlEvent(p.name, p.from_unit(msg.value / 127.0, b.min, b.max, b.curve), "set", src)]
        return self._button(b, msg.value >= 64 if cc else (msg.type == "note_on" and msg.velocity > 0), src)

    @staticmethod
    def _button(b: Button, pressed: bool, src: str) -> list[ControlEvent]:
        p = PARAMS[b.param]
        if p.kind == "trigger":
            return [ControlEvent(p.name, op="trigger", source=src)] if pressed else []
        if b.mode == "toggle":
            return [ControlEvent(p.name, op="toggle", source=src)] if pressed else []
        if p.kind == "choice":  # momentary: second choice while held
            return [ControlEvent(p.name, p.choices[1 if pressed else 0], "set", src)]
        return [ControlEvent(p.name, pressed, "set", src)]

    def stats(self) -> dict[str, int]:
        """Message counts: received, mapped, ignored, malformed."""
        return {"received": self.received, "mapped": self.mapped,
                "ignored": self.ignored, "malformed": self.malformed}
