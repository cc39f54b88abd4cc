"""`sidlive learn`: bind the next moved control (CC or note) to a parameter (MIDI learn).

    sidlive learn temperature                       # virtual port, default map file
    sidlive learn --midi nanoKONTROL2 --controller my.toml mute_1

The live view calls `learn_binding` / `learn` too. A CC drives a knob for continuous and
integer parameters and a button for toggle, choice and trigger ones; a note always
drives a button. A control that was bound before is rebound (one control, one parameter).
"""
from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import mido

from sidlive.control.maps import BUTTON_KINDS, Button, ControllerMap, Knob, load_map, save_map
from sidlive.control.params import param
from sidlive.midi.inputs import MidiInput, open_input


class LearnError(ValueError):
    """The moved control cannot drive the parameter."""


def default_map_path() -> Path:
    """The user's controller map: $XDG_CONFIG_HOME (or ~/.config)/sidlive/controller.toml."""
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "sidlive" / "controller.toml"


def learnable(msg: mido.Message) -> bool:
    """A control movement worth learning: CC 0..119, or a note pressed."""
    if msg.type == "control_change":
        return msg.control < 120
    return msg.type == "note_on" and msg.velocity > 0


def learn_binding(cmap: ControllerMap, param_name: str, msg: mido.Message,
                  mode: str | None = None) -> ControllerMap:
    """A new map in which the control that sent `msg` drives `param_name`."""
    p = param(param_name)
    if not learnable(msg):
        raise LearnError(f"{msg} is not a control movement (CC 0..119 or a note pressed)")
    ch = msg.channel + 1
    channel = None if cmap.channel in (0, ch) else ch
    is_cc = msg.type == "control_change"
    number = msg.control if is_cc else msg.note

    def same_control(b) -> bool:
        b_cc = b.cc
        b_note = getattr(b, "note", None)
        return (b.channel or cmap.channel) == (channel or cmap.channel) and \
            ((is_cc and b_cc == number) or (not is_cc and b_note == number))

    knobs = tuple(k for k in cmap.knobs if not same_control(k))
    buttons = tuple(b for b in cmap.buttons if not same_control(b))
    if is_cc and p.kind in ("continuous", "integer"):
        knobs += (Knob(cc=number, param=p.name, channel=channel),)
    elif p.kind in BUTTON_KINDS:
        mode = mode or ("toggle" if p.kind == "toggle" else "momentary")
        buttons += (Button(param=p.name, cc=number if is_cc else None,
                           note=None if is_cc else number, mode=mode, channel=channel),)
    else:
        raise LearnError(f"{p.name} is a {p.kind} parameter: move a knob or fader (a CC), not a key or pad")
    return dataclasses.replace(cmap, knobs=knobs, buttons=buttons)


def wait_for_control(port: MidiInput, timeout_s: float, poll_s: float = 0.005) -> mido.Message | None:
    """The next learnable message from `port`, or None after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for msg in port.drain():
            if learnable(msg):
                return msg
        port.check()
        time.sleep(poll_s)
    return None


def learn(param_name: str, controller_path: str | Path | None = None, midi: str = "virtual",
          timeout_s: float = 30.0, api: str = "auto", port: MidiInput | None = None,
          mode: str | None = None) -> tuple[ControllerMap, mido.Message] | None:
    """Wait for a control on `port` (or open `midi`), bind it, write the map file.
    Returns (new map, the message learned), or None on timeout."""
    param(param_name)  # fail before waiting
    path = Path(controller_path) if controller_path else default_map_path()
    cmap = load_map(path) if path.exists() else \
        ControllerMap(name="Learned", channel=0, program_change="loop")
    own = port is None
    port = open_input(midi, api=api) if own else port
    try:
        msg = wait_for_control(port, timeout_s)
    finally:
        if own:
            port.close()
    if msg is None:
        return None
    new = learn_binding(cmap, param_name, msg, mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_map(new, path)
    return new, msg
