"""The census's Numba kernels: an envelope-peak estimate per frame (the SID's ADSR rate
periods), arpeggio, sweep and drum-hit masks over one voice's frequency and control."""
from __future__ import annotations


import numpy as np
from numba import njit

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


@njit(cache=True, nogil=True)
def arp_window(freq, sounding, t, p, min_ratio):
    """Whether the 2p frames ending at t are one arpeggio (see the module docstring)."""
    w0 = t - 2 * p + 1
    if w0 < 0:
        return False
    for s in range(w0, t + 1):
        if not sounding[s] or (s >= w0 + p and freq[s] != freq[s - p]):
            return False
        if s >= w0 + 2 and freq[s] == freq[s - 1] and freq[s - 1] == freq[s - 2]:
            return False
    distinct, lo, hi = 0, freq[t], freq[t]
    for i in range(p):
        v = freq[t - i]
        distinct += 1
        for j in range(i):
            if freq[t - j] == v:
                distinct -= 1
                break
        lo, hi = min(lo, v), max(hi, v)
    return 2 <= distinct <= 4 and lo > 0 and hi >= lo * min_ratio


@njit(cache=True, nogil=True)
def arpeggio_mask(freq, sounding, periods, min_ratio):
    """Frames of one voice inside an arpeggio. (N,) -> (N,) bool"""
    mask = np.zeros(freq.shape[0], np.bool_)
    for t in range(freq.shape[0]):
        for p in periods:
            if arp_window(freq, sounding, t, p, min_ratio):
                mask[t - 2 * p + 1:t + 1] = True
                break
    return mask


@njit(cache=True, nogil=True)
def sweep_mask(value, cond, min_frames, max_hold):
    """Frames inside one-way sweeps of `value` while `cond` holds. (N,) -> ((N,) bool, n_sweeps)"""
    n = value.shape[0]
    mask = np.zeros(n, np.bool_)
    count = 0
    start = -1
    direction = 0
    last_move = -1
    for t in range(1, n + 1):
        step = 0
        broken = t == n or not (cond[t] and cond[t - 1])
        if not broken:
            d = int(value[t]) - int(value[t - 1])
            step = 1 if d > 0 else (-1 if d < 0 else 0)
            if start >= 0 and step == 0 and t - last_move > max_hold:
                broken = True
            if start >= 0 and step != 0 and step != direction:
                broken = True
        if broken or (start < 0 and step != 0):
            if start >= 0 and last_move - start + 1 >= min_frames:
                count += 1
                for s in range(start, last_move + 1):
                    mask[s] = True
            start = -1
            if t < n and step != 0 and cond[t] and cond[t - 1]:
                start = t - 1
                direction = step
                last_move = t
        elif step != 0:
            last_move = t
    return mask, count


@njit(cache=True, nogil=True)
def drum_hits(freq, ctrl, burst_max, sweep_min_ratio):
    """Drum hits of one voice (see module table). (N,) -> int"""
    n = freq.shape[0]
    hits = 0
    for t in range(1, n):
        now = (ctrl[t] & 0x81) == 0x81
        before = (ctrl[t - 1] & 0x81) == 0x81
        if not now or before:
            continue
        run = 0
        while t + run < n and (ctrl[t + run] & 0x81) == 0x81:
            run += 1
        if run <= burst_max:
            hits += 1
            continue
        s = t - 1  # walk back over a falling, gated, non-noise tone
        while (s - 1 >= 0 and (ctrl[s - 1] & 0x81) == 0x01 and (ctrl[s - 1] & 0x70) != 0
               and (ctrl[s] & 0x81) == 0x01 and (ctrl[s] & 0x70) != 0 and freq[s] < freq[s - 1]):
            s -= 1
        if t - s >= 3 and freq[t - 1] > 0 and freq[s] >= freq[t - 1] * sweep_min_ratio:
            hits += 1
    return hits
