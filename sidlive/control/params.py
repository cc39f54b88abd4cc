"""Live parameters: the registry, immutable control snapshots and their hand-over.

Every parameter has a name, unit, range, default, knob curve, kind and target:
  kind    continuous (float), integer, choice (one of `choices`), toggle (bool), or
          trigger (a press counter: the state holds how many times it fired, so a reader
          sees a new trigger by comparing counts, without a queue)
  target  generator (sampling), renderer (acts within one audio block), loops (the loop
          manager) or daemon
  rollback  True when a change alters what is generated: the daemon drops the unplayed
          lookahead and regenerates from the playhead.

`ControlState` is an immutable snapshot. The control thread builds a new one and hands
it over with one reference assignment (`Controls.state = new`, mididings style); the
audio callback and the generator just read `controls.state` once per block / frame.
Bad values raise `ControlError` naming the parameter, the value and the allowed range.
"""
from __future__ import annotations

import collections
import dataclasses
import math
from typing import Any, Iterable, Mapping

from sidlive.audio.fx import EFFECTS, param_name

KINDS = ("continuous", "integer", "choice", "toggle", "trigger")
TARGETS = ("generator", "renderer", "loops", "daemon", "fx")
CURVES = ("linear", "exp", "log")
OPS = ("set", "toggle", "trigger")
VOICES = (1, 2, 3)


class ControlError(ValueError):
    """A control value or event is invalid; the message names parameter, value and range."""


@dataclasses.dataclass(frozen=True)
class Param:
    """One live parameter: name, kind, target, rollback flag, default, range, unit, curve, choices, doc."""
    name: str
    kind: str
    target: str
    rollback: bool
    default: Any
    lo: float = 0.0
    hi: float = 1.0
    unit: str = ""
    curve: str = "linear"
    choices: tuple[str, ...] = ()
    doc: str = ""

    def range_text(self) -> str:
        """The allowed values as text, for messages and help."""
        if self.kind in ("continuous", "integer"):
            return f"{self.lo:g}..{self.hi:g}" + (f" {self.unit}" if self.unit else "")
        if self.kind == "choice":
            return " | ".join(self.choices) + f" (or index 0..{len(self.choices) - 1})"
        if self.kind == "toggle":
            return "0 | 1 (false | true)"
        return "no value (a trigger)"

    def validate(self, value: Any) -> Any:
        """Coerce value to this parameter's type or raise ControlError."""
        bad = ControlError(f"{self.name}: {value!r} is out of range {self.range_text()}")
        if self.kind == "toggle":
            if isinstance(value, str):
                low = value.strip().lower()
                if low in ("1", "true", "on", "yes"):
                    return True
                if low in ("0", "false", "off", "no"):
                    return False
                raise bad
            if isinstance(value, (bool, int, float)) and value in (0, 1):
                return bool(value)
            raise bad
        if self.kind == "choice":
            if isinstance(value, str) and value in self.choices:
                return value
            if isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer() \
                    and 0 <= value < len(self.choices):
                return self.choices[int(value)]
            raise bad
        if self.kind == "trigger":
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                return value
            raise ControlError(f"{self.name}: a trigger's count must be an int >= 0, got {value!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    raise bad from None
            else:
                raise bad
        if not math.isfinite(value) or not self.lo <= value <= self.hi:
            raise bad
        if self.kind == "integer":
            if not float(value).is_integer():
                raise ControlError(f"{self.name}: {value!r} is not a whole number (range {self.range_text()})")
            return int(value)
        return float(value)

    def from_unit(self, x: float, lo: float | None = None, hi: float | None = None,
                  curve: str | None = None) -> Any:
        """Map a knob position x in 0..1 to a value over [lo, hi] (default: the full range).

        Curves: linear; exp (slow start: t = (10^x - 1) / 9); log (fast start: t = log10(1 + 9x))."""
        x = min(1.0, max(0.0, float(x)))
        if self.kind == "choice":
            return self.choices[min(int(x * len(self.choices)), len(self.choices) - 1)]
        if self.kind == "toggle":
            return x >= 0.5
        if self.kind not in ("continuous", "integer"):
            raise ControlError(f"{self.name}: a {self.kind} parameter has no knob range")
        lo = self.lo if lo is None else lo
        hi = self.hi if hi is None else hi
        curve = curve or self.curve
        t = _shape(x, curve)
        v = lo + t * (hi - lo)
        v = min(max(v, min(self.lo, self.hi)), max(self.lo, self.hi))
        return int(round(v)) if self.kind == "integer" else v

    def to_unit(self, value: Any, lo: float | None = None, hi: float | None = None,
                curve: str | None = None) -> float:
        """Inverse of `from_unit` (for showing or picking up a knob position)."""
        if self.kind == "choice":
            return (self.choices.index(value) + 0.5) / len(self.choices)
        if self.kind == "toggle":
            return 1.0 if value else 0.0
        lo = self.lo if lo is None else lo
        hi = self.hi if hi is None else hi
        if hi == lo:
            return 0.0
        t = min(1.0, max(0.0, (float(value) - lo) / (hi - lo)))
        curve = curve or self.curve
        if curve == "exp":
            return math.log10(1.0 + 9.0 * t)
        if curve == "log":
            return (10.0 ** t - 1.0) / 9.0
        return t


def _shape(x: float, curve: str) -> float:
    if curve == "linear":
        return x
    if curve == "exp":
        return (10.0 ** x - 1.0) / 9.0
    if curve == "log":
        return math.log10(1.0 + 9.0 * x)
    raise ControlError(f"curve {curve!r} is not one of {CURVES}")


def _registry() -> dict[str, Param]:
    P = Param
    params = [
        P("temperature", "continuous", "generator", True, 1.0, 0.1, 2.0, curve="exp",
          doc="sampling temperature"),
        P("top_p", "continuous", "generator", True, 1.0, 0.05, 1.0,
          doc="nucleus sampling: keep the smallest set of bytes with this probability mass (1 = off)"),
        P("top_k", "integer", "generator", True, 0, 0, 256,
          doc="keep the k most likely bytes (0 = off)"),
        P("repetition", "continuous", "generator", True, 1.0, 0.0, 2.0,
          doc="how much the model repeats from the tune's history (pointer models): 0 never copies, "
              "1 as trained, 2 loops tighter"),
        P("lookahead_frames", "integer", "generator", False, 3, 1, 25, unit="frames",
          doc="frames generated ahead of the playhead (3 = 60 ms)"),
        P("volume_db", "continuous", "renderer", False, 0.0, -48.0, 6.0, unit="dB",
          doc="master volume"),
        P("composer", "integer", "generator", True, 0, 0, 255,
          doc="composer-style conditioning: an index into the model's composer list"),
        P("reseed", "trigger", "generator", True, 0, doc="new random seed"),
    ]
    for v in VOICES:
        params.append(P(f"mute_{v}", "toggle", "renderer", False, False, doc=f"mute voice {v}"))
    for v in VOICES:
        params.append(P(f"solo_{v}", "toggle", "renderer", False, False,
                        doc=f"solo voice {v} (any solo silences the unsoloed voices)"))
    params += [
        P("capture_loop", "trigger", "loops", False, 0, doc="capture the recent frames as a new loop"),
        P("next_loop", "trigger", "loops", True, 0, doc="select the next loop"),
        P("prev_loop", "trigger", "loops", True, 0, doc="select the previous loop"),
        P("loop", "integer", "loops", True, -1, -1, 127,
          doc="selected loop (MIDI program change); -1 = free generation"),
        P("loop_mode", "choice", "loops", True, "prime", choices=("prime", "call_response"),
          doc="prime: the loop primes the model's context; call_response: loop and answer alternate"),
        P("panic", "trigger", "renderer", True, 0,
          doc="silence the SID within one block and drop the lookahead (also MIDI CC 120/123)"),
        P("keyboard", "toggle", "daemon", False, True,
          doc="the controller map's [keyboard] plays its voice (off: the model writes all three)"),
        P("fx_bypass", "toggle", "fx", False, True, doc="bypass the effects chain (--fx; on by default)"),
    ]
    units = {"ms": "ms", "hz": "Hz", "db": "dB"}
    for kind, ps in EFFECTS.items():
        for key, (lo, hi, default) in ps.items():
            unit = units.get(key.rsplit("_", 1)[-1], "")
            curve = "exp" if unit in ("Hz", "ms") else "linear"
            params.append(P(param_name(kind, key), "continuous", "fx", False, default, lo, hi, unit=unit,
                            curve=curve, doc=f"{kind} {key.replace('_', ' ')} (--fx chains with a {kind})"))
    return {p.name: p for p in params}


PARAMS: dict[str, Param] = _registry()
# The sampling defaults of every command (live, generate, the census): one definition.
SAMPLING_DEFAULTS = {k: PARAMS[k].default for k in ("temperature", "top_k", "top_p", "repetition")}


def param(name: str) -> Param:
    """The registered parameter of that name; ControlError when unknown."""
    try:
        return PARAMS[name]
    except KeyError:
        raise ControlError(f"unknown parameter {name!r}; known: {', '.join(PARAMS)}") from None


@dataclasses.dataclass(frozen=True, slots=True)
class ControlEvent:
    """A request to change one parameter. op: set (value), toggle, trigger."""

    name: str
    value: Any = None
    op: str = "set"
    source: str = ""


class ControlState:
    """Immutable snapshot of every parameter. Read as `state.temperature` or `state["top_p"]`.

    Derived, precomputed for the audio thread: `voice_on` ((3,) bools after mute/solo)
    and `gain` (linear master gain)."""

    __slots__ = ("_values", "voice_on", "gain")

    def __init__(self, values: Mapping[str, Any] | None = None):
        full = {name: p.default for name, p in PARAMS.items()}
        for name, value in (values or {}).items():
            full[name] = param(name).validate(value)
        object.__setattr__(self, "_values", full)
        solo = [full[f"solo_{v}"] for v in VOICES]
        any_solo = any(solo)
        voice_on = tuple((solo[i] if any_solo else True) and not full[f"mute_{v}"]
                         for i, v in enumerate(VOICES))
        object.__setattr__(self, "voice_on", voice_on)
        object.__setattr__(self, "gain", 10.0 ** (full["volume_db"] / 20.0))

    def __setattr__(self, name, value):
        raise AttributeError("ControlState is immutable; use replace() or apply()")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, name: str) -> Any:
        return self._values[param(name).name]

    def __eq__(self, other) -> bool:
        return isinstance(other, ControlState) and self._values == other._values

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._values.items())))

    def __repr__(self) -> str:
        return f"ControlState({self._values!r})"

    def as_dict(self) -> dict[str, Any]:
        """Every parameter's value, by name (a copy)."""
        return dict(self._values)

    def replace(self, **changes: Any) -> "ControlState":
        """A new snapshot with the given values changed (validated)."""
        merged = dict(self._values)
        merged.update(changes)
        return ControlState(merged)

    def apply(self, event: ControlEvent) -> tuple["ControlState", Any]:
        """Apply one event; returns (new state, new value). Raises ControlError."""
        p = param(event.name)
        old = self._values[p.name]
        if event.op == "trigger" or (event.op == "set" and p.kind == "trigger"):
            if p.kind != "trigger":
                raise ControlError(f"{p.name}: is a {p.kind} parameter, not a trigger")
            if event.op == "set" and event.value is not None and not _truthy(event.value, p):
                return self, old  # a button release or 0: nothing fires
            new = old + 1
        elif event.op == "toggle":
            if p.kind == "toggle":
                new = not old
            elif p.kind == "choice":
                new = p.choices[(p.choices.index(old) + 1) % len(p.choices)]
            else:
                raise ControlError(f"{p.name}: cannot toggle a {p.kind} parameter")
        elif event.op == "set":
            new = p.validate(event.value)
        else:
            raise ControlError(f"{p.name}: unknown op {event.op!r}; expected one of {OPS}")
        if new == old and type(new) is type(old):
            return self, old
        merged = dict(self._values)
        merged[p.name] = new
        return ControlState(merged), new


def _truthy(value: Any, p: Param) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and math.isfinite(value):
        return value != 0
    raise ControlError(f"{p.name}: trigger value must be a number (nonzero fires), got {value!r}")


@dataclasses.dataclass
class Update:
    """What one batch of events changed."""

    changes: list[tuple[str, Any]] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)

    @property
    def rollback(self) -> bool:
        """True when any change alters what is generated (the lookahead must be regenerated)."""
        return any(PARAMS[name].rollback for name, _ in self.changes)

    @property
    def targets(self) -> set[str]:
        """The targets of the changed parameters."""
        return {PARAMS[name].target for name, _ in self.changes}


class Controls:
    """Holds the current snapshot. Any thread may `post()` events (a deque append);
    the control thread alone calls `apply_pending()`/`apply()`, which swaps `state`."""

    def __init__(self, state: ControlState | None = None, inbox_max: int = 4096):
        self.state = state or ControlState()
        self._inbox: collections.deque[ControlEvent] = collections.deque(maxlen=inbox_max)
        self.rejected = 0  # events refused with a ControlError

    def post(self, event: ControlEvent) -> None:
        """Queue an event for the control thread (any thread; the oldest drop when the inbox is full)."""
        self._inbox.append(event)

    def apply_pending(self, max_events: int = 1024) -> Update:
        """Apply up to max_events queued events, oldest first."""
        events = []
        while self._inbox and len(events) < max_events:
            events.append(self._inbox.popleft())
        return self.apply(events)

    def apply(self, events: Iterable[ControlEvent]) -> Update:
        """Apply events in order, swapping in the new state; bad ones are counted and reported, not raised."""
        update = Update()
        state = self.state
        for ev in events:
            try:
                state, value = _apply_checked(state, ev)
            except ControlError as e:
                self.rejected += 1
                update.errors.append(str(e))
                continue
            if value is not _UNCHANGED:
                update.changes.append((ev.name, value))
        if state is not self.state:
            self.state = state  # the one reference swap readers see
        return update


_UNCHANGED = object()


def _apply_checked(state: ControlState, ev: ControlEvent) -> tuple[ControlState, Any]:
    if not isinstance(ev, ControlEvent):
        raise ControlError(f"expected a ControlEvent, got {type(ev).__name__}")
    new_state, value = state.apply(ev)
    return (new_state, _UNCHANGED) if new_state is state else (new_state, value)


def describe() -> list[dict[str, Any]]:
    """The registry as plain dicts (for docs, the live view and OSC discovery)."""
    return [{"name": p.name, "kind": p.kind, "target": p.target, "rollback": p.rollback,
             "range": p.range_text(), "default": p.default, "unit": p.unit, "curve": p.curve,
             "doc": p.doc} for p in PARAMS.values()]
