"""The sampler in Numba: training/sample.py's `pick` and RNG, step for step, without allocating.

Order of steps for one register (identical to training/sample.py, which is the reference):
  forced value   if the register is forced: its value, no sampling (the caller does this)
  temperature    0: argmax of the log-probs (lowest value on ties); else z = lp / temperature (float64)
  top-k          0 < k < 256: z[z < k-th largest z] = -inf (ties at the k-th value all stay)
  softmax        p = exp(z - max z), unnormalized float64
  top-p          0 < p < 1: order by p descending (ties: lower value first), keep the shortest
                 prefix whose sequential cumulative sum >= top_p * (its total)
  restriction    if the register is restricted (the silence guard): p[v] = 0 where not allowed; if
                 nothing is left (or temperature 0), the allowed value with the largest log-prob
                 (lowest value on ties)
  sample         u = uniform(seed, frame_index * 25 + k); t = u * sum(p) (sequential, value order);
                 the first value v with t < cumsum(p)[v], at most the last value with p > 0
RNG: counter-based SplitMix64 (one counter per (frame, register step), used or not).
All sums run sequentially in index order, so they equal np.cumsum's bit for bit.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)
INV_2_53 = 1.0 / (1 << 53)


@njit(cache=True, nogil=True)
def splitmix64(seed, counter):
    """Output `counter` of SplitMix64 seeded with `seed` (uint64; counter wraps mod 2^64)."""
    z = seed + (np.uint64(counter) + np.uint64(1)) * GOLDEN
    z = (z ^ (z >> np.uint64(30))) * MIX1
    z = (z ^ (z >> np.uint64(27))) * MIX2
    return z ^ (z >> np.uint64(31))


@njit(cache=True, nogil=True)
def uniform(seed, counter):
    """float64 in [0, 1): the top 53 bits times 2^-53."""
    return np.float64(splitmix64(seed, counter) >> np.uint64(11)) * INV_2_53


@njit(cache=True, nogil=True)
def select(a, n, k):
    """The k-th smallest (0-based) of a[:n]; reorders a (Wirth's selection)."""
    lo, hi = 0, n - 1
    while lo < hi:
        x = a[k]
        i, j = lo, hi
        while True:
            while a[i] < x:
                i += 1
            while x < a[j]:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
            if i > j:
                break
        if j < k:
            lo = i
        if k < i:
            hi = j
    return a[k]


@njit(cache=True, nogil=True)
def _before(p, a, b):
    """Top-p order: larger p first, lower value first on ties."""
    return p[a] > p[b] or (p[a] == p[b] and a < b)


@njit(cache=True, nogil=True)
def sort_desc(idx, n, p, tmp):
    """Sort idx[:n] by _before (bottom-up merge sort through tmp)."""
    width = 1
    src, dst = idx, tmp
    in_tmp = False
    while width < n:
        lo = 0
        while lo < n:
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            i, j, o = lo, mid, lo
            while i < mid and j < hi:
                if _before(p, src[j], src[i]):
                    dst[o] = src[j]
                    j += 1
                else:
                    dst[o] = src[i]
                    i += 1
                o += 1
            while i < mid:
                dst[o] = src[i]
                i += 1
                o += 1
            while j < hi:
                dst[o] = src[j]
                j += 1
                o += 1
            lo = hi
        src, dst = dst, src
        in_tmp = not in_tmp
        width *= 2
    if in_tmp:
        idx[:n] = tmp[:n]


@njit(cache=True, nogil=True)
def truncated(lp, temperature, top_k, top_p, z, p, cum, idx, tmp):
    """p (n,) = exp(lp / temperature - max), unnormalized, after top-k then top-p (temperature > 0);
    z, cum float64 and idx, tmp int64 (n,) are scratch."""
    n = lp.shape[0]
    for i in range(n):
        z[i] = lp[i] / temperature
    if 0 < top_k < n:
        for i in range(n):
            cum[i] = z[i]
        kth = select(cum, n, n - top_k)
        for i in range(n):
            if z[i] < kth:
                z[i] = -np.inf
    mx = -np.inf
    for i in range(n):
        if z[i] > mx:
            mx = z[i]
    for i in range(n):
        p[i] = math.exp(z[i] - mx)
    if 0 < top_p < 1:
        m = 0
        for i in range(n):
            if p[i] != 0.0:
                idx[m] = i
                m += 1
        sort_desc(idx, m, p, tmp)
        total = 0.0
        for j in range(m):
            total += p[idx[j]]
        target = top_p * total
        c = 0.0
        keep = m
        for j in range(m):
            c += p[idx[j]]
            if c >= target:
                keep = j + 1
                break
        for j in range(keep, m):
            p[idx[j]] = 0.0


@njit(cache=True, nogil=True)
def pick(lp, temperature, top_k, top_p, u, z, p, cum, idx, tmp, restricted, allow):
    """Choose one value from the log-probs lp (n,) float64; z, p, cum float64 and idx, tmp int64
    (n,) are scratch. restricted: only values v with allow[v] != 0 (uint8 (n,)) may be chosen
    (the most likely of them by lp when truncation left none)."""
    n = lp.shape[0]
    if temperature > 0:
        truncated(lp, temperature, top_k, top_p, z, p, cum, idx, tmp)
    if restricted:
        left = 0.0
        if temperature > 0:
            for i in range(n):
                if allow[i] == 0:
                    p[i] = 0.0
                left += p[i]
        if left == 0.0:
            best = -1
            for i in range(n):
                if allow[i] != 0 and (best < 0 or lp[i] > lp[best]):
                    best = i
            return max(best, 0)
    if temperature <= 0:
        best = 0
        for i in range(1, n):
            if lp[i] > lp[best]:
                best = i
        return best
    c = 0.0
    last = 0
    for i in range(n):
        c += p[i]
        cum[i] = c
        if p[i] != 0.0:
            last = i
    t = u * c
    v = n
    for i in range(n):
        if t < cum[i]:
            v = i
            break
    return min(v, last)
