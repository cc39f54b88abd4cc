"""A keyboard-played SID voice: MIDI notes on one channel play one voice while the model
writes the other two, conditioned on it (the generator's forced registers).

    kv = KeyVoice(KeyboardConfig(channel=2, voice=1, waveform="pulse"))
    kv.note_on(45, 100); kv.note_off(45); kv.all_off()
    snap = kv.snapshot()     # KeySnapshot: mask (25,) bool, first (25,) and steady (25,) uint8

Monophonic, last-note priority: releasing the newest note falls back to the one still
held below it (legato, no new attack), releasing the last one gates off (the release
phase plays). A note struck while the gate is on needs a new attack, and a SID only
restarts its envelope on a gate 0 -> 1 edge: the first frame of such a snapshot
(`first`) has the gate off and the new pitch, every frame after it (`steady`) the gate
on. That is also how the dumper writes a restart inside one frame (gate cleared in the
frame before), so the model reads the keyboard voice the way it read the training data.

Note -> frequency register for the PAL clock: round(f_hz * 2^24 / 985,248), f_hz =
440 * 2^((note - 69 + transpose) / 12), clamped to 0..65,535. Velocity -> sustain level
(velocity = "sustain": round(vel / 127 * 15)) or a fixed sustain (velocity = "none").

The snapshot is built off the audio thread and handed over by one reference: the audio
callback lays `first`/`steady` over each frame it starts (`np.copyto(row, v, where=mask)`,
no allocation), the generator thread forces the same registers (`set_forced(mask,
steady)`) so the model generates around what is played.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from sidlive.frames import NUM_REGS, note_to_freq_reg

WAVEFORMS = {"triangle": 0x10, "saw": 0x20, "pulse": 0x40, "noise": 0x80}
VELOCITY_MODES = ("sustain", "none")
GATE = 0x01


@dataclasses.dataclass(frozen=True, slots=True)
class NoteEvent:
    """A note for the keyboard voice (velocity 0: note off), from MIDI or OSC."""
    note: int
    velocity: int
    source: str = ""


def note_event(note, velocity) -> NoteEvent:
    """A validated NoteEvent; ValueError naming the field and range."""
    for name, v in (("note", note), ("velocity", velocity)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not float(v).is_integer() or not 0 <= v <= 127:
            raise ValueError(f"{name}: {v!r} is out of range 0..127")
    return NoteEvent(int(note), int(velocity))


class KeyboardConfigError(ValueError):
    """A keyboard setting is out of range; the message names the field and the range."""


@dataclasses.dataclass(frozen=True)
class KeyboardConfig:
    """The keyboard voice's settings (MIDI channel, SID voice, waveform, ADSR, velocity mode, transpose)."""
    channel: int = 1               # MIDI channel 1..16
    voice: int = 1                 # SID voice 1..3
    waveform: str = "pulse"
    pulse_width: float = 0.5       # duty cycle 0..1 (pulse waveform)
    attack: int = 0                # ADSR nibbles 0..15
    decay: int = 9
    sustain: int = 10              # used when velocity = "none"
    release: int = 6
    velocity: str = "sustain"      # velocity -> sustain level, or "none"
    transpose_semitones: int = 0   # -48..48

    def __post_init__(self):
        def rng(field, lo, hi):
            v = getattr(self, field)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
                raise KeyboardConfigError(f"keyboard.{field}: {v!r} is out of range {lo}..{hi}")
            if isinstance(lo, int) and not float(v).is_integer():
                raise KeyboardConfigError(f"keyboard.{field}: {v!r} is not a whole number ({lo}..{hi})")
        rng("channel", 1, 16)
        rng("voice", 1, 3)
        rng("pulse_width", 0.0, 1.0)
        for f in ("attack", "decay", "sustain", "release"):
            rng(f, 0, 15)
        rng("transpose_semitones", -48, 48)
        if not isinstance(self.waveform, str) or self.waveform not in WAVEFORMS:
            raise KeyboardConfigError(f"keyboard.waveform: {self.waveform!r} is not one of {', '.join(WAVEFORMS)}")
        if not isinstance(self.velocity, str) or self.velocity not in VELOCITY_MODES:
            raise KeyboardConfigError(f"keyboard.velocity: {self.velocity!r} is not one of "
                                      f"{', '.join(VELOCITY_MODES)}")

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        """The setting names, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @property
    def base(self) -> int:
        """The voice's first register ($00, $07 or $0E)."""
        return 7 * (self.voice - 1)


@dataclasses.dataclass(frozen=True, eq=False)
class KeySnapshot:
    """What the keyboard voice plays now; compared by identity (a new one = a new event)."""
    mask: np.ndarray               # (25,) bool: the voice's 7 registers
    first: np.ndarray              # (25,) uint8: the first frame (gate off when retriggering)
    steady: np.ndarray             # (25,) uint8: every frame after
    note: int | None               # sounding note (None: released)
    seq: int = 0                   # the control thread's publish number (latency figures)


class KeyVoice:
    """The note stack and envelope settings of the keyboard voice (control thread only)."""

    def __init__(self, cfg: KeyboardConfig):
        self.cfg = cfg
        self.held: list[tuple[int, int]] = []    # (note, velocity), oldest first
        self.gate = False
        self.note: int | None = None
        self.velocity = 0
        self.notes_played = 0
        self._retrigger = False
        self.mask = np.zeros(NUM_REGS, bool)
        self.mask[cfg.base:cfg.base + 7] = True

    def note_on(self, note: int, velocity: int) -> None:
        """Strike a note (velocity 0: note off); it becomes the sounding note, retriggering if the gate was on."""
        if velocity <= 0:
            self.note_off(note)
            return
        self.held = [h for h in self.held if h[0] != note] + [(int(note), int(velocity))]
        self._retrigger = self.gate            # a new attack needs a gate 0 -> 1 edge
        self.note, self.velocity, self.gate = int(note), int(velocity), True
        self.notes_played += 1

    def note_off(self, note: int) -> None:
        """Release a note; the newest still-held note takes over (legato), none left gates off."""
        was_top = bool(self.held) and self.held[-1][0] == note
        self.held = [h for h in self.held if h[0] != note]
        self._retrigger = False
        if not was_top:
            return
        if self.held:                          # legato back to the note still held
            self.note, self.velocity = self.held[-1]
        else:
            self.gate = False

    def all_off(self) -> None:
        """Release every note: gate off, nothing held."""
        self.held.clear()
        self.gate = False
        self._retrigger = False

    def _values(self, gate: bool) -> np.ndarray:
        c, b = self.cfg, self.cfg.base
        v = np.zeros(NUM_REGS, np.uint8)
        freq = note_to_freq_reg(self.note + c.transpose_semitones) if self.note is not None else 0
        pw = int(round(c.pulse_width * 4095))
        sustain = round(self.velocity / 127 * 15) if c.velocity == "sustain" else c.sustain
        v[b + 0], v[b + 1] = freq & 0xFF, freq >> 8
        v[b + 2], v[b + 3] = pw & 0xFF, pw >> 8
        v[b + 4] = WAVEFORMS[c.waveform] | (GATE if gate else 0)
        v[b + 5] = c.attack << 4 | c.decay
        v[b + 6] = sustain << 4 | c.release
        return v

    def snapshot(self) -> KeySnapshot:
        """What the voice plays now: mask, first and steady register values, and the sounding note."""
        steady = self._values(self.gate)
        first = self._values(False) if self._retrigger else steady
        return KeySnapshot(self.mask, first, steady, self.note if self.gate else None)


def frames_for(cfg: KeyboardConfig, events, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Offline: the keyboard voice's (mask, (n_frames, 25) values) for note events
    [(frame, "on"|"off", note, velocity)], as the live overlay would play them."""
    kv = KeyVoice(cfg)
    out = np.zeros((n_frames, NUM_REGS), np.uint8)
    by_frame: dict[int, list] = {}
    for ev in events:
        by_frame.setdefault(int(ev[0]), []).append(ev)
    snap, fresh = kv.snapshot(), False
    for t in range(n_frames):
        if t in by_frame:
            for _, kind, note, vel in by_frame[t]:
                kv.note_on(note, vel) if kind == "on" else kv.note_off(note)
            snap, fresh = kv.snapshot(), True
        out[t] = snap.first if fresh else snap.steady
        fresh = False
    return kv.mask.copy(), out
