"""The live view of `sidlive live` (rich): what the SID plays and what the daemon does, with
keys that mirror the main controls. Runs in the main thread; keys come from a thread that
reads the terminal in cbreak mode (no keys when stdin is not a terminal).

Keys (also in docs/live.md):
  1 2 3  mute voice        4 5 6  solo voice        x / space  panic (all gates off)
  t T    temperature -/+   p P    top_p -/+          k K        top_k -/+
  c C    composer -/+      v V    volume -/+ 3 dB    l L        lookahead -/+ 1 frame
  e E    repetition -/+ 0.1
  r      reseed            [ ]    previous/next loop  m          loop mode (prime/call_response)
  s      capture loop      R      reload map + loops  q / Esc    quit
"""
from __future__ import annotations

import os
import select
import sys
import termios
import threading
import time
import tty

from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from sidlive.control.params import PARAMS, ControlEvent, ControlState
from sidlive.frames import PAL_CLOCK_HZ, freq_reg_to_note

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
WAVES = ((0x10, "tri"), (0x20, "saw"), (0x40, "pulse"), (0x80, "noise"))
KEY_HELP = ("1 2 3 mute  4 5 6 solo  t/T temp  p/P top_p  k/K top_k  e/E repetition  c/C composer  v/V volume  l/L lookahead  "
            "r reseed  [ ] loop  m mode  s capture  x panic  f effects  b keyboard  R reload  q quit")


def note_name(freq_reg: int, clock_hz: float = PAL_CLOCK_HZ) -> str:
    """SID frequency register (16 bit) -> note name like 'C#4' ('-' for 0)."""
    if freq_reg <= 0:
        return "-"
    midi = int(round(freq_reg_to_note(freq_reg, clock_hz)))
    return f"{NOTE_NAMES[midi % 12]}{midi // 12 - 1}"


def waveform(ctrl: int) -> str:
    """A control register's waveforms as text, e.g. 'pulse (sync)'; '-' for none."""
    names = [n for bit, n in WAVES if ctrl & bit]
    extra = [n for bit, n in ((0x08, "test"), (0x04, "ring"), (0x02, "sync")) if ctrl & bit]
    return "+".join(names) + (f" ({','.join(extra)})" if extra else "") if names or extra else "-"


def filter_text(regs) -> str:
    """The filter registers as one line: cutoff, resonance, routing, mode, 3off and volume."""
    cutoff = (int(regs[0x16]) << 3) | (int(regs[0x15]) & 7)
    res, route, mv = int(regs[0x17]) >> 4, int(regs[0x17]) & 0x0F, int(regs[0x18])
    voices = "+".join(str(v + 1) for v in range(3) if route & (1 << v)) or "none"
    modes = "/".join(n for bit, n in ((0x10, "LP"), (0x20, "BP"), (0x40, "HP")) if mv & bit) or "off"
    return (f"cutoff {cutoff:4d}  res {res:2d}  route {voices}{'+ext' if route & 8 else ''}  mode {modes}"
            f"{'  3off' if mv & 0x80 else ''}  vol {mv & 0x0F}")


def _step(state: ControlState, name: str, delta: float, factor: float | None = None) -> list[ControlEvent]:
    p = PARAMS[name]
    v = state[name]
    new = v * factor if factor is not None else v + delta
    new = min(max(new, p.lo), p.hi)
    if p.kind == "integer":
        new = int(round(new))
    return [ControlEvent(name, new, "set", "key")]


def key_events(key: str, state: ControlState) -> list[ControlEvent] | str:
    """One key -> control events, or 'quit' / 'reload' / '' (unbound)."""
    if key in ("q", "\x1b"):
        return "quit"
    if key == "R":
        return "reload"
    if key in "123" and key:
        return [ControlEvent(f"mute_{key}", op="toggle", source="key")]
    if key in "456" and key:
        return [ControlEvent(f"solo_{int(key) - 3}", op="toggle", source="key")]
    table = {"t": ("temperature", 0, 1 / 1.1), "T": ("temperature", 0, 1.1), "p": ("top_p", -0.05, None),
             "P": ("top_p", 0.05, None), "k": ("top_k", -5, None), "K": ("top_k", 5, None),
             "c": ("composer", -1, None), "C": ("composer", 1, None), "v": ("volume_db", -3, None),
             "V": ("volume_db", 3, None), "l": ("lookahead_frames", -1, None), "L": ("lookahead_frames", 1, None),
             "e": ("repetition", -0.1, None), "E": ("repetition", 0.1, None)}
    if key in table:
        name, delta, factor = table[key]
        return _step(state, name, delta, factor)
    triggers = {"r": "reseed", "[": "prev_loop", "]": "next_loop", "s": "capture_loop", "x": "panic", " ": "panic"}
    if key in triggers:
        return [ControlEvent(triggers[key], op="trigger", source="key")]
    if key == "m":
        return [ControlEvent("loop_mode", op="toggle", source="key")]
    if key == "f":
        return [ControlEvent("fx_bypass", op="toggle", source="key")]
    if key == "b":
        return [ControlEvent("keyboard", op="toggle", source="key")]
    return ""


def render_view(daemon, fps: float | None = None) -> Group:
    """The view as a rich renderable (the daemon's current state)."""
    regs = daemon.audio.renderer.registers
    state = daemon.controls.state
    voices = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("voice", "note", "waveform", "gate", ""):
        voices.add_column(col)
    for v in range(3):
        base = 7 * v
        ctrl = int(regs[base + 4])
        flags = ("M " if state[f"mute_{v + 1}"] else "") + ("S" if state[f"solo_{v + 1}"] else "")
        voices.add_row(str(v + 1), note_name(int(regs[base]) | int(regs[base + 1]) << 8), waveform(ctrl),
                       "on" if ctrl & 1 else "off", flags)
    composers = daemon.model.cfg.composers
    lp = daemon.library.get(state.loop)
    loop = f"{lp.name} ({state.loop_mode}, {daemon.arrangement.phase(daemon.ring.read_pos)})" if lp else "free"
    st = daemon.counters()
    rec = ""
    if daemon.recorder is not None:
        rec = f"  recording {daemon.recorder.paths['wav'].name} {daemon.recorder.samples_in / daemon.cfg.rate_hz:.1f} s"
    lines = [
        Text(f"sidlive live  {daemon.model_path.name}  {getattr(daemon.ports.output, 'name', '?')}  "
             f"{st['block_ms']} ms blocks{rec}", style="bold"),
        voices,
        Text("filter: " + filter_text(regs)),
        Text(f"temperature {state.temperature:.2f}  top_p {state.top_p:.2f}  top_k {state.top_k}  "
             f"repetition {state.repetition:.1f}{'' if daemon.model.cfg.pointer else ' (no effect: not a pointer model)'}  "
             f"composer "
             f"{composers[min(state.composer, len(composers) - 1)]}  seed {daemon.genthread.request.seed}  "
             f"loop {loop}  volume {state.volume_db:+.0f} dB"),
        Text(_extras_text(daemon, state)),
        Text(f"lookahead {daemon.ring.lookahead_frames}/{state.lookahead_frames} frames  underruns audio "
             f"{st['audio_underruns']} ring {st['ring_underruns']}  generator {fps if fps is not None else '-'} "
             f"frames/s (capacity {st['generator_fps']})  callback p99 {st['callback_ms_p99']} ms"),
        Text(KEY_HELP, style="dim"),
    ]
    lines += [Text(text, style="yellow") for _, text in list(daemon.messages)[-4:]]
    return Group(*lines)


def _extras_text(daemon, state) -> str:
    """Effects, keyboard voice and ASID, where the session has them."""
    parts = []
    if daemon.ports.fx is not None:
        parts.append(f"effects {daemon.ports.fx.chain.name}: {'bypassed' if state.fx_bypass else 'on'}")
    elif daemon.fx_chain is not None:
        parts.append(f"effects {daemon.fx_chain.name}: dry (no JACK output)")
    kv = daemon.hub.keyvoice
    if kv is not None:
        note = note_name(_freq(kv.snapshot().steady, kv.cfg.base)) if kv.gate else "-"
        parts.append(f"keyboard ch {kv.cfg.channel} -> voice {kv.cfg.voice}: "
                     f"{note if state.keyboard else 'off (the model plays it)'}")
    if daemon.ports.asid is not None:
        parts.append(f"ASID {daemon.ports.asid.out.name}: {daemon.ports.asid.sent_frames} frames")
    return "  ".join(parts) or "no effects, keyboard or ASID"


def _freq(regs, base: int) -> int:
    return int(regs[base]) | int(regs[base + 1]) << 8


class _Keys:
    """Reads single keys from a terminal in cbreak mode; restores it on close."""

    def __init__(self, on_key):
        self.on_key = on_key
        self.fd = sys.stdin.fileno() if sys.stdin.isatty() else None
        self._old = None
        self._stop = threading.Event()
        self._thread = None

    def start(self) -> "_Keys":
        if self.fd is None:
            return self
        self._old = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)
        self._thread = threading.Thread(target=self._run, name="sidlive-keys", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                ch = os.read(self.fd, 1).decode("latin-1")
                self.on_key(ch)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        if self._old is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._old)


def run_view(daemon, seconds: float | None = None, refresh_hz: float = 10.0) -> None:
    """Show the view until 'q', Ctrl-C, `daemon.stopped` or `seconds`."""
    def on_key(ch: str) -> None:
        out = key_events(ch, daemon.controls.state)
        if out == "quit":
            daemon.stopped.set()
        elif out == "reload":
            daemon.request_reload()
        else:
            for ev in out:
                daemon.post(ev)

    keys = _Keys(on_key).start()
    deadline = None if seconds is None else time.monotonic() + seconds
    last = (time.monotonic(), daemon.genthread.frames_generated)
    fps = None
    try:
        with Live(render_view(daemon), refresh_per_second=refresh_hz, transient=False) as live:
            while not daemon.stopped.wait(1.0 / refresh_hz):
                if deadline is not None and time.monotonic() >= deadline:
                    break
                now, n = time.monotonic(), daemon.genthread.frames_generated
                if now - last[0] >= 1.0:
                    fps, last = round((n - last[1]) / (now - last[0]), 1), (now, n)
                live.update(render_view(daemon, fps))
    finally:
        keys.close()
