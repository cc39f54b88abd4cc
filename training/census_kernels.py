"""The census's Numba kernels: arpeggio, sweep and drum-hit masks over one voice's frequency
and control (the envelope-peak estimate is engine.silence's)."""
from __future__ import annotations


import numpy as np
from numba import njit

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
