"""Longest earlier match of the recent frames, per register group (the repeat machinery
behind engine/candidates.py), with rollback, for the training data, the scorer and the engine.

Groups (register index tuples, GROUPS): FRAME (all 25), NOTES (frequency lo/hi + control of the three
voices), VOICE1-3 (7 registers each), VNOTES1-3 (one voice's frequency + control), FILTER (21-24). For a
timeline s[0..t] and group g the match is the largest L in LENS with a p, L-1 <= p < t, where
s[p-L+1..p, g] == s[t-L+1..t, g], the most recent such p: ptr[g] = p (its continuation s[p+1] is a
candidate for frame t+1) and bucket[g] = 1 + index of L in LENS; ptr -1 and bucket 0 when none. Windows
must lie inside the current tune (positions >= its origin) and start within the last `history_frames`.

The kernels (Numba, nogil, no allocation per frame) take plain arrays, in the order of
`MatchState.arrays()`:
  hist  uint8 (cap, 32)    the timeline, 25 registers + 7 zero bytes per row; position p in
                           row p % cap, cap = history_frames + max_rollback_frames
  hw    uint64 (cap, 4)    the same memory as 4 words per row (the kernels write through it)
  ph    uint64 (64, 9)     prefix hashes per group: P[p] = P[p-1] * B + h(frame p), row p % 64
  wk    int64 (9, 8)       per group: the window keys of the push (columns 0-5, scratch), the
                           last push's verified match end and length (VK_END, VK_LEN; 0 none)
  tab   int64 (2^bits, 2)  hash table slots: (latest end position p of a window, -1 empty;
                           the window's full 64-bit key (group, L, window hash), bit-cast)
  ovf   uint8 (2^bits/4,)  per bucket: some key whose first bucket this is lives in its second
  ulog  int64 (R, 54, 3)   undo ring: per frame (row p % R) its table writes (slot, old
                           position, old key); slot -1 for unused entries
  st    int64 (ST_LEN,)    length, origin, settings, counters (ST_*)
The window hash of the last L frames is P[t] - P[t-L] * B^L (rollback rebuilds the ring from
any base). The table has 4-slot buckets (one cache line); a key lives in its first bucket
(top key bits) unless that bucket held only live entries when it came, then in its second
(low bits, flagged in ovf). The push looks each key up and writes t into its slot in one pass,
longest L first; a new key takes the bucket's oldest slot, so stale entries (earlier tunes,
expired) go first, and a tune's results do not depend on what ran before it unless live
entries were evicted (ST_EVICT counts them; 0 means every result is exact). A hit counts only
when the full key matches, the window lies in the tune and the history, and (verify on, the
default) the window's registers equal the current ones: word compares, only the newest frame
when the last push verified the rest.
A default state (2^18 frames of history, 2^21 slots, 256 frames of rollback) holds 42.8 MB: hist 8.4 MB,
table 33.6 MB, overflow flags 0.5 MB, undo ring 0.33 MB.
"""
from __future__ import annotations

import sys

import numpy as np
from numba import njit

from sidlive.frames import NUM_REGS

GROUP_NAMES = ("frame", "notes", "voice1", "voice2", "voice3", "vnotes1", "vnotes2", "vnotes3", "filter")
GROUPS = (tuple(range(25)), (0, 1, 4, 7, 8, 11, 14, 15, 18),
          tuple(range(0, 7)), tuple(range(7, 14)), tuple(range(14, 21)),
          (0, 1, 4), (7, 8, 11), (14, 15, 18), (21, 22, 23, 24))
G_FRAME, G_NOTES, G_VOICE1, G_VOICE2, G_VOICE3, G_VNOTES1, G_VNOTES2, G_VNOTES3, G_FILTER = range(9)
NUM_GROUPS = 9
LENS = (1, 2, 4, 8, 16, 32)
NUM_LENS = 6
MAX_LEN = 32
NUM_BUCKETS = 1 + NUM_LENS

HISTORY_FRAMES = 1 << 18   # 87 min at 50.125 frames/s
TABLE_BITS = 21
MAX_ROLLBACK_FRAMES = 256
WAYS = 4                   # slots per bucket
PH_ROWS = 64               # prefix-hash ring (> MAX_LEN, power of two)
PH_MASK = PH_ROWS - 1
ROW_BYTES = 32
WRITES = NUM_GROUPS * NUM_LENS  # table writes per frame (undo entries)
VK_END, VK_LEN = NUM_LENS, NUM_LENS + 1  # wk columns: the last push's verified match per group
# st: length (next position), tune origin, history_frames, ring rows, table bits, rollback frames,
# frames the undo log can take back, verify flag, evictions, a sink for the prefetch loads
ST_N, ST_ORIGIN, ST_HIST, ST_CAP, ST_BITS, ST_ROLL, ST_UNDO_N, ST_VERIFY, ST_EVICT, ST_TOUCH = range(10)
ST_LEN = 10

if sys.byteorder != "little":
    raise ImportError("engine.matches packs register bytes into little-endian words")


M64 = 2**64 - 1


def _splitmix(i: int) -> int:
    z = (i * 0x9E3779B97F4A7C15 + 0x51D) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


WIN_BASE = 0x9E3779B97F4A7C15
BPOW = np.array([pow(WIN_BASE, L, 2**64) for L in LENS], np.uint64)  # (6,) B^L mod 2^64
KEY_SALT = np.array([[_splitmix(g * NUM_LENS + i) for i in range(NUM_LENS)] for g in range(NUM_GROUPS)],
                    np.uint64)  # (9, 6)
FRAME_SALT = np.array([_splitmix(100 + g) for g in range(NUM_GROUPS)], np.uint64)  # (9,)
GROUP_MASK = np.zeros((NUM_GROUPS, ROW_BYTES // 8), np.uint64)  # (9, 4) the group's bytes in a row's words
for _g, _regs in enumerate(GROUPS):
    for _r in _regs:
        GROUP_MASK[_g, _r >> 3] |= np.uint64(0xFF << (8 * (_r & 7)))
GROUP_WORDS = np.full((NUM_GROUPS, ROW_BYTES // 8), -1, np.int64)  # (9, 4) the words it touches
GROUP_NWORDS = np.zeros(NUM_GROUPS, np.int64)  # (9,)
for _g in range(NUM_GROUPS):
    _ks = np.flatnonzero(GROUP_MASK[_g])
    GROUP_WORDS[_g, :len(_ks)] = _ks
    GROUP_NWORDS[_g] = len(_ks)
LENS_ARR = np.array(LENS, np.int64)


@njit(cache=True, nogil=True, inline="always")
def mix64(z):
    """SplitMix64 finalizer of a uint64."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True, nogil=True, inline="always")
def _group_hash(w, g):
    """64-bit hash of group g's registers in the row words w (4,) uint64."""
    h = FRAME_SALT[g]
    for i in range(GROUP_NWORDS[g]):
        k = GROUP_WORDS[g, i]
        h = mix64(h ^ (w[k] & GROUP_MASK[g, k]))
    return h


@njit(cache=True, nogil=True, inline="always")
def _extend_prefix(w, ph, q):
    """ph row q := P[q] for every group, from P[q-1] and frame q's row words w (4,)."""
    prev = ph[(q - 1) & PH_MASK]
    cur = ph[q & PH_MASK]
    for g in range(NUM_GROUPS):
        cur[g] = prev[g] * np.uint64(WIN_BASE) + _group_hash(w, g)


@njit(cache=True, nogil=True, inline="always")
def _window_equal(hw, cap, g, a, b, length):
    """Group g's registers of the `length` rows ending at row a equal those ending at row b."""
    for _ in range(length):
        for k in range(4):
            if (hw[a, k] ^ hw[b, k]) & GROUP_MASK[g, k] != 0:
                return False
        a = a - 1 if a > 0 else cap - 1
        b = b - 1 if b > 0 else cap - 1
    return True


@njit(cache=True, nogil=True, inline="always")
def _scan(tab, base, key):
    """(the slot holding key, else -1; the oldest slot) of the bucket starting at slot base
    (branch-free: the scan does not wait on a cache miss to decide)."""
    oldest = base
    old_pos = tab[base, 0]
    hit = np.int64(-1)
    for s in range(base, base + WAYS):
        p = tab[s, 0]
        hit = s if (tab[s, 1] == key) & (p >= 0) else hit
        older = p < old_pos
        oldest = s if older else oldest
        old_pos = p if older else old_pos
    return hit, oldest


@njit(cache=True, nogil=True, inline="always")
def _slot_for(tab, ovf, key, shift, lowest, st):
    """(slot, found): where key lives, else where it goes. A key lives in its first bucket
    (top bits) unless that bucket held only live entries (position >= lowest) when it came:
    then in its second bucket (low bits), and the first bucket's overflow flag is set."""
    b1 = np.int64(np.uint64(key) >> shift) & ~np.int64(WAYS - 1)
    b2 = key & (tab.shape[0] - 1) & ~np.int64(WAYS - 1)
    if b2 == b1:
        b2 ^= WAYS
    s, victim = _scan(tab, b1, key)
    if s >= 0:
        return s, True
    flagged = ovf[b1 // WAYS] != 0
    if flagged:
        s, victim2 = _scan(tab, b2, key)
        if s >= 0:
            return s, True
    if tab[victim, 0] < lowest:
        return victim, False
    ovf[b1 // WAYS] = 1
    if not flagged:
        victim2 = _scan(tab, b2, key)[1]
    if tab[victim2, 0] >= lowest:
        st[ST_EVICT] += 1  # a live entry lost (the table is small for this timeline)
    return victim2, False


@njit(cache=True, nogil=True, inline="always")
def match_push(hist, hw, ph, wk, tab, ovf, ulog, st, frame, out_ptr, out_bucket):
    """Append frame (25,) uint8 at position t = st[ST_N]; out_ptr (9,) int64 absolute match
    ends (-1 none) and out_bucket (9,) uint8 length buckets: the candidates for frame t+1."""
    t = st[ST_N]
    origin, cap, roll = st[ST_ORIGIN], st[ST_CAP], st[ST_ROLL]
    lowest = max(origin, t - st[ST_HIST] + 1)  # earliest valid window start
    shift = np.uint64(64 - st[ST_BITS])
    trow = t % cap
    verify = st[ST_VERIFY] != 0
    row = hw[trow]
    for k in range(4):
        word = np.uint64(0)
        for j in range(8):
            r = 8 * k + j
            if r < NUM_REGS:
                word |= np.uint64(frame[r]) << np.uint64(8 * j)
        row[k] = word
    _extend_prefix(row, ph, t)
    n_fit = 0  # lengths whose window lies in the tune
    while n_fit < NUM_LENS and LENS_ARR[n_fit] <= t - origin + 1:
        n_fit += 1
    pt = ph[t & PH_MASK]
    touch = np.int64(0)
    for g in range(NUM_GROUPS):  # all keys first, touching their buckets: the misses overlap
        for li in range(n_fit):
            key = np.int64((pt[g] - ph[(t - LENS_ARR[li]) & PH_MASK, g] * BPOW[li]) ^ KEY_SALT[g, li])
            wk[g, li] = key
            touch += tab[np.int64(np.uint64(key) >> shift) & ~np.int64(WAYS - 1), 0]
    st[ST_TOUCH] = touch
    urow = ulog[t % roll]
    u = 0
    for g in range(NUM_GROUPS):
        best_p, best_b = np.int64(-1), 0
        for li in range(n_fit - 1, -1, -1):  # longest first: look up, then write t
            L = LENS_ARR[li]
            key = wk[g, li]
            slot, found = _slot_for(tab, ovf, key, shift, lowest, st)
            old = tab[slot, 0]
            if found and best_p < 0 and old - L + 1 >= lowest and old < t:
                orow = trow - (t - old)
                if orow < 0:
                    orow += cap
                # frames t-1.. vs old-1.. were verified by the last push: then only t vs old is left
                known = wk[g, VK_LEN] if wk[g, VK_END] == old - 1 else 0
                if not verify or _window_equal(hw, cap, g, orow, trow, 1 if L - 1 <= known else L):
                    best_p, best_b = old, li + 1
            urow[u, 0] = slot
            urow[u, 1] = old
            urow[u, 2] = tab[slot, 1]
            u += 1
            tab[slot, 0] = t
            tab[slot, 1] = key
        out_ptr[g] = best_p
        out_bucket[g] = best_b
        wk[g, VK_END] = best_p
        wk[g, VK_LEN] = LENS_ARR[best_b - 1] if best_b > 0 else 0
    for j in range(u, WRITES):
        urow[j, 0] = -1
    st[ST_N] = t + 1
    st[ST_UNDO_N] = min(roll, st[ST_UNDO_N] + 1)


@njit(cache=True, nogil=True)
def match_rollback(hist, hw, ph, wk, tab, ovf, ulog, st, new_length):
    """Restore the state after position new_length-1 was pushed; returns 0, or -1 when
    new_length is outside st[ST_N] - st[ST_UNDO_N] .. st[ST_N] (nothing changed)."""
    n = st[ST_N]
    k = n - new_length
    if k < 0 or k > st[ST_UNDO_N]:
        return -1
    roll, cap = st[ST_ROLL], st[ST_CAP]
    for t in range(n - 1, new_length - 1, -1):
        urow = ulog[t % roll]
        for j in range(WRITES - 1, -1, -1):
            s = urow[j, 0]
            if s >= 0:
                tab[s, 0] = urow[j, 1]
                tab[s, 1] = urow[j, 2]
    # prefix hashes the pushes overwrote: rebuilt from any base (windows use differences)
    q0 = max(st[ST_ORIGIN], new_length - MAX_LEN - 1)
    ph[(q0 - 1) & PH_MASK, :] = 0
    for q in range(q0, new_length):
        _extend_prefix(hw[q % cap], ph, q)
    wk[:, VK_LEN] = 0  # the verified matches belong to the old timeline
    st[ST_N] = new_length
    st[ST_UNDO_N] -= k
    return 0


@njit(cache=True, nogil=True)
def match_begin(st):
    """Start a new tune at the current length: earlier positions no longer match."""
    st[ST_ORIGIN] = st[ST_N]
    st[ST_UNDO_N] = 0


@njit(cache=True, nogil=True)
def tune_matches_kernel(hist, hw, ph, wk, tab, ovf, ulog, st, regs, out_ptr, out_bucket):
    """match_push over regs (N, 25) as a new tune; ptr rows relative to the tune start."""
    match_begin(st)
    origin = st[ST_ORIGIN]
    for t in range(regs.shape[0]):
        match_push(hist, hw, ph, wk, tab, ovf, ulog, st, regs[t], out_ptr[t], out_bucket[t])
        for g in range(NUM_GROUPS):
            if out_ptr[t, g] >= 0:
                out_ptr[t, g] -= origin
