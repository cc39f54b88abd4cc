"""Silence as the census and the sampler's silence guard both decide it, from registers alone.

A voice is audible in a frame when its estimated envelope peak (the SID's ADSR rate periods
and exponential decay, from the gate's edges) is >= AUDIBLE_LEVEL, it has a waveform, the
test bit is off, its frequency is > 0 and neither the filter (routed with no filter mode)
nor "voice 3 off" mutes it; a frame is silent when the volume nibble is 0 or no voice is
audible. The estimate starts from a released, silent chip at the first frame given.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from engine.sampler import uniform
from sidlive.frames import CANON_MASK, PAL_FRAME_CYCLES, PAL_FRAME_RATE_HZ, check_regs

AUDIBLE_LEVEL = 8  # envelope level (of 255) from which a voice counts as audible
CTRL = (0x04, 0x0B, 0x12)
AD = (0x05, 0x0C, 0x13)
SR = (0x06, 0x0D, 0x14)
FREQ_HI = (0x01, 0x08, 0x0F)
RES_FILT, MODE_VOL = 0x17, 0x18
SILENCE_WINDOW_FRAMES = 256   # the guard's silence estimate starts at a multiple of 256 frames (window_start)
# (25, 256) bool: the values a register may take in a canonical frame (sidlive.frames: bits the
# SID ignores are clear); the sampler keeps to them, as the training data does
CANONICAL = (np.arange(256)[None, :] & ~CANON_MASK[:, None].astype(np.int64)) == 0
VOICE_SALT = 0x5111E7CE       # the guard's own RNG stream (seed ^ salt, counter = frame index)

# ADSR rate periods in cycles per envelope step, index = the 4-bit rate (SID datasheet
# times: attack 2 ms ... 8 s over 255 steps at 1 MHz; decay/release use the same periods).
RATE_PERIOD_CYCLES = np.array([9, 32, 63, 95, 149, 220, 267, 313, 392, 977, 1954, 3126,
                                3907, 11720, 19532, 31251], dtype=np.int64)


@njit(cache=True, nogil=True)
def exp_divider(level):
    """The envelope's exponential divider: decay/release slow down at low levels."""
    return 1 if level > 93 else 2 if level > 54 else 4 if level > 26 else 8 if level > 14 else 16 if level > 6 else 30


@njit(cache=True, nogil=True)
def envelope_peak(ctrl, ad, sr, rate_cycles, frame_cycles):
    """Estimated peak envelope level (0-255) of one voice in each frame. (N,) uint8 x3 -> (N,) int32"""
    n = ctrl.shape[0]
    peak = np.zeros(n, np.int32)
    level = 0
    state = 2  # 0 attack, 1 decay/sustain, 2 release
    prev_gate = False
    carry = 0
    for t in range(n):
        gate = (ctrl[t] & 1) != 0
        if gate and not prev_gate:
            state = 0
        elif prev_gate and not gate:
            state = 2
        prev_gate = gate
        start = level
        budget = carry + frame_cycles
        while True:
            if state == 0:
                period = rate_cycles[ad[t] >> 4]
                steps = budget // period
                if steps >= 255 - level:
                    budget -= (255 - level) * period
                    level = 255
                    state = 1
                    continue
                level += steps
                budget -= steps * period
                break
            # decay stops only where the level EQUALS sustain * 17: a sustain raised above
            # the level lets it fall to 0, as on the chip; release falls to 0
            target = (sr[t] >> 4) * 17 if state == 1 else 0
            period = rate_cycles[(ad[t] & 15) if state == 1 else (sr[t] & 15)]
            cost = period * exp_divider(level)
            while level != target and level > 0 and budget >= cost:
                budget -= cost
                level -= 1
                cost = period * exp_divider(level)
            if level == target or level == 0:
                budget = 0
            break
        carry = budget
        peak[t] = max(start, level)
    return peak


def voice_fields(regs: np.ndarray, v: int) -> tuple[np.ndarray, ...]:
    """(freq int32, pw int32, ctrl, ad, sr) of voice v (0-2), each (N,)."""
    b = 7 * v
    freq = regs[:, b].astype(np.int32) | (regs[:, b + 1].astype(np.int32) << 8)
    pw = regs[:, b + 2].astype(np.int32) | ((regs[:, b + 3].astype(np.int32) & 15) << 8)
    return freq, pw, regs[:, b + 4].copy(), regs[:, b + 5].copy(), regs[:, b + 6].copy()


def voice_muted(mode_vol, res_filt, v: int):
    """Whether the filter (voice routed, no filter mode) or "voice 3 off" mutes voice v."""
    routed = ((res_filt >> v) & 1) != 0
    muted = routed & ((mode_vol & 0x70) == 0)
    if v == 2:
        muted = muted | (((mode_vol & 0x80) != 0) & ~routed)
    return muted


def silent_frames(regs: np.ndarray) -> np.ndarray:
    """(N,) bool: the frames that are silent (see the module docstring)."""
    regs = check_regs(regs)
    mode_vol, res_filt = regs[:, MODE_VOL], regs[:, RES_FILT]
    audible = np.zeros(len(regs), dtype=bool)
    for v in range(3):
        freq, _pw, ctrl, ad, sr = voice_fields(regs, v)
        peak = envelope_peak(ctrl, ad, sr, RATE_PERIOD_CYCLES, PAL_FRAME_CYCLES)
        on = (peak >= AUDIBLE_LEVEL) & ((ctrl & 0xF0) != 0) & ((ctrl & 0x08) == 0) & (freq > 0)
        audible |= on & ~voice_muted(mode_vol, res_filt, v)
    return ((mode_vol & 0x0F) == 0) | ~audible


def first_sound_frame(regs: np.ndarray) -> int | None:
    """Index of the first frame that is not silent, or None."""
    loud = np.flatnonzero(~silent_frames(regs))
    return int(loud[0]) if len(loud) else None


def trailing_silence(regs: np.ndarray) -> int:
    """How many of the last frames of regs are silent (estimated from regs[0] on)."""
    if len(regs) == 0:
        return 0
    loud = np.flatnonzero(~silent_frames(regs))
    return len(regs) if len(loud) == 0 else len(regs) - 1 - int(loud[-1])


def wake_up_rules(last: np.ndarray, pick_voice: float, forced: np.ndarray | None = None) -> np.ndarray:
    """(25, 256) bool, the values each register may take in a frame that must start a note
    after `last` (25,), the frame before it: one voice, chosen by pick_voice in [0, 1) among
    those the filter and "voice 3 off" leave audible (all three if none), preferring voices
    whose gate is off, gates on with a
    waveform, test bit off, an attack of at most 100 ms, a sustain level > 0 and a frequency > 0
    (or, if its gate
    is on already, gates off, to start the note in the next frame); the volume > 0; the voice
    not routed through the filter (nor, voice 3, switched off). Every other register is free.
    forced (25,) bool: registers the caller forces; voices whose control register is forced
    are not chosen while another voice can be."""
    allow = np.ones((25, 256), bool)
    v_all = np.arange(256)
    mode_vol, res_filt = np.uint8(last[MODE_VOL]), np.uint8(last[RES_FILT])
    free = [v for v in range(3) if not voice_muted(mode_vol, res_filt, v)] or [0, 1, 2]
    if forced is not None:                      # a voice the caller plays (forced control) is not ours
        free = [v for v in free if not forced[CTRL[v]]] or [v for v in range(3) if not forced[CTRL[v]]] or free
    ready = [v for v in free if not last[CTRL[v]] & 1] or free
    voice = ready[min(int(pick_voice * len(ready)), len(ready) - 1)]
    if last[CTRL[voice]] & 1:
        allow[CTRL[voice]] = (v_all & 1) == 0
    else:
        allow[CTRL[voice]] = ((v_all & 1) == 1) & ((v_all & 0xF0) != 0) & ((v_all & 0x08) == 0)
        allow[AD[voice]] = (v_all >> 4) <= 8
        allow[SR[voice]] = (v_all >> 4) >= 1
        if last[FREQ_HI[voice]] == 0 and last[FREQ_HI[voice] - 1] == 0:
            allow[FREQ_HI[voice]] = v_all != 0
    allow[MODE_VOL] = (v_all & 0x0F) != 0
    allow[RES_FILT] = ((v_all >> voice) & 1) == 0
    if voice == 2:
        allow[MODE_VOL] &= (v_all & 0x80) == 0
    return allow


def window_start(t: int) -> int:
    """Where the silence estimate for a frame at timeline position t starts: a multiple of
    SILENCE_WINDOW_FRAMES, 256..511 frames back (0 early on). It moves only every 256 frames,
    so the estimate of a frame never changes while the window stays, whatever the chunking."""
    w = SILENCE_WINDOW_FRAMES
    return max(0, (t - w) // w * w)


def next_window_move(t: int) -> int:
    """The first position after t whose window_start differs from t's."""
    w = SILENCE_WINDOW_FRAMES
    return max(w, (t // w + 1) * w)


def silence_frames(max_silence_s: float) -> int:
    """The guard's limit in frames for a limit in seconds (0 = off, else at least 1)."""
    return 0 if max_silence_s <= 0 else max(1, int(round(max_silence_s * PAL_FRAME_RATE_HZ)))


def voice_draw(seed: int, frame_index: int) -> float:
    """The uniform draw that picks the voice the guard wakes up in generated frame frame_index."""
    return float(uniform(np.uint64((seed ^ VOICE_SALT) & ((1 << 64) - 1)), np.int64(frame_index)))
