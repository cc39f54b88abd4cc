"""Piano-roll data: what the page draws for a run of register frames.

Per voice and frame: the pitch from the frequency registers at the tune's clock
(f = reg * clock / 2^24, as a MIDI note in hundredths: 6900 = A4 = 440 Hz; -1 when the
register is 0), the waveform nibble (control bits 4-7: 1 triangle, 2 saw, 4 pulse, 8 noise,
combinations as on the chip; 0 with the test bit set), the gate bit, and an envelope level
0..15 from a frame-rate ADSR model (attack, decay to sustain while the gate is on, release
after it), so a note's release tail shows after its gate goes off. Per frame for the filter:
the 11-bit cutoff, the routed voices (bits 0-2 of $D417), the resonance and the mode.

`roll_data(regs, start, before)` covers frames start..start+len(regs)-1; `before` is the
frame ahead of the run (onsets need it) and the envelope state carried in (`state`), so a
growing take is sent in pieces that join exactly.
"""
from __future__ import annotations

import math

import numpy as np

from sidlive.frames import NTSC_CLOCK_HZ, NUM_REGS, PAL_CLOCK_HZ, PAL_FRAME_RATE_HZ, check_regs

VOICE_BASE = (0, 7, 14)
# The SID's envelope times (datasheet): attack per nibble in ms; decay and release are 3x.
ATTACK_MS = (2, 8, 16, 24, 38, 56, 68, 80, 100, 250, 500, 800, 1000, 3000, 5000, 8000)
LEVELS = 15
CLOCKS_HZ = {"PAL": PAL_CLOCK_HZ, "NTSC": NTSC_CLOCK_HZ}


def pitch_centi(freq_reg: np.ndarray, clock_hz: float = PAL_CLOCK_HZ) -> np.ndarray:
    """MIDI note x 100 (rounded) of SID frequency register values; -1 where the value is 0."""
    f = np.asarray(freq_reg, np.float64)
    out = np.full(f.shape, -1, np.int64)
    on = f > 0
    hz = f[on] * clock_hz / (1 << 24)
    out[on] = np.rint((69.0 + 12.0 * np.log2(hz / 440.0)) * 100.0).astype(np.int64)
    return out


def _envelope(ctrl: np.ndarray, ad: np.ndarray, sr: np.ndarray, level0: float, gate0: int,
              frame_ms: float) -> tuple[np.ndarray, float]:
    """Envelope level 0..1 per frame (a linear attack, exponential decay and release, at frame
    resolution: a picture of the note, not reSID's counter), and the level after the run."""
    n = len(ctrl)
    out = np.zeros(n, np.float64)
    level, phase, prev_gate = float(level0), "release", int(gate0)
    if gate0:
        phase = "sustain"
    for t in range(n):
        gate = int(ctrl[t]) & 1
        if gate and not prev_gate:
            phase = "attack"
        elif not gate and prev_gate:
            phase = "release"
        prev_gate = gate
        sustain = (int(sr[t]) >> 4) / 15.0
        if phase == "attack":
            level += frame_ms / ATTACK_MS[int(ad[t]) >> 4]
            if level >= 1.0:
                level, phase = 1.0, "decay"
        elif phase in ("decay", "sustain"):
            tau = 3.0 * ATTACK_MS[int(ad[t]) & 15] / 4.0
            level = sustain + (level - sustain) * math.exp(-frame_ms / tau)
        else:
            tau = 3.0 * ATTACK_MS[int(sr[t]) & 15] / 4.0
            level *= math.exp(-frame_ms / tau)
        out[t] = level
    return out, level


def roll_data(regs, *, start: int = 0, before=None, state=None, clock: str = "PAL",
              frame_rate_hz: float = PAL_FRAME_RATE_HZ) -> dict:
    """The roll of frames `regs` (N, 25) that begin at frame `start` (see the module docstring).

    before: the (25,) frame ahead of the run, or None (silence); state: the `state` of the
    previous piece's result (envelope levels), or None. Returns plain lists for JSON."""
    regs = check_regs(regs, "roll frames")
    if clock not in CLOCKS_HZ:
        raise ValueError(f"roll: clock must be one of {', '.join(CLOCKS_HZ)}, got {clock!r}")
    prev = np.zeros(NUM_REGS, np.uint8) if before is None else np.asarray(before, np.uint8)
    if prev.shape != (NUM_REGS,):
        raise ValueError(f"roll: the frame before must have shape ({NUM_REGS},), got {prev.shape}")
    levels_in = list(state["levels"]) if state else [0.0, 0.0, 0.0]
    frame_ms = 1000.0 / frame_rate_hz
    voices, levels_out = [], []
    for v, b in enumerate(VOICE_BASE):
        freq = regs[:, b].astype(np.int64) | (regs[:, b + 1].astype(np.int64) << 8)
        ctrl = regs[:, b + 4]
        wave = np.where(ctrl & 0x08, 0, ctrl >> 4).astype(np.int64)
        gate = (ctrl & 1).astype(np.int64)
        gates = np.concatenate([[int(prev[b + 4]) & 1], gate])
        onsets = (np.nonzero(np.diff(gates) > 0)[0] + start).tolist()
        env, last = _envelope(ctrl, regs[:, b + 5], regs[:, b + 6], levels_in[v], int(prev[b + 4]) & 1, frame_ms)
        levels_out.append(last)
        voices.append({"pitch": pitch_centi(freq, CLOCKS_HZ[clock]).tolist(), "wave": wave.tolist(),
                       "gate": gate.tolist(), "level": np.rint(env * LEVELS).astype(np.int64).tolist(),
                       "onsets": onsets})
    cutoff = (regs[:, 22].astype(np.int64) << 3) | (regs[:, 21].astype(np.int64) & 7)
    return {"start": int(start), "frames": int(len(regs)), "clock": clock, "frame_rate_hz": frame_rate_hz,
            "voices": voices, "cutoff": cutoff.tolist(), "route": (regs[:, 23] & 7).astype(np.int64).tolist(),
            "resonance": (regs[:, 23] >> 4).astype(np.int64).tolist(),
            "mode": ((regs[:, 24] >> 4) & 7).astype(np.int64).tolist(),
            "state": {"levels": levels_out}}


def roll_piece(regs_all: np.ndarray, start: int, stop: int, *, clock: str = "PAL",
               frame_rate_hz: float = PAL_FRAME_RATE_HZ) -> dict:
    """The roll of frames start..stop-1 of a whole run (the envelope replayed from frame 0)."""
    regs_all = check_regs(regs_all, "roll frames")
    if not 0 <= start <= stop <= len(regs_all):
        raise ValueError(f"roll: frames {start}..{stop} are outside 0..{len(regs_all)}")
    state = None
    if start > 0:
        state = roll_data(regs_all[:start], clock=clock, frame_rate_hz=frame_rate_hz)["state"]
    before = regs_all[start - 1] if start > 0 else None
    return roll_data(regs_all[start:stop], start=start, before=before, state=state, clock=clock,
                     frame_rate_hz=frame_rate_hz)
