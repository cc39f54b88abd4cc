"""Candidate frames for frame t+1: what followed the longest earlier match of each register
group (engine/matches.py), linear extrapolation, and the frames 2-4 back.

S = 8 sources (SOURCES), each 25 values with a valid flag and a length bucket per register:
  0 FRAME   s[ptr_FRAME + 1], all 25 registers, bucket of FRAME
  1 NOTES   s[ptr_NOTES + 1], all 25 registers, bucket of NOTES
  2 GROUP   voice v's registers from s[ptr_VOICEv + 1], 21-24 from s[ptr_FILTER + 1]
  3 VNOTES  voice v's 7 registers from s[ptr_VNOTESv + 1]; 21-24 invalid
  4 EXTRAP  2 x[t] - x[t-1] of the 16-bit voice frequencies, 12-bit pulse widths and the
            11-bit cutoff (lo = $D415 bits 0-2, hi = $D416), split back into the two
            registers; invalid out of range, for t < 1 and for the other registers
  5-7 BACK2/3/4  s[t-1], s[t-2], s[t-3]: the value 2, 3, 4 frames before frame t+1
Buckets are 0 for sources 4-7 and wherever a source is invalid (its value is then 0).

Two implementations that agree exactly: `candidate_frame` (Numba, per frame, reads the
MatchState's history ring: the live engine) and `window_candidates` (numpy, whole-tune
arrays from `tune_matches`, any window of the tune: the training data and the scorer).
The match API is re-exported here (new_match_state, tune_matches, match_push, ...).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from engine.matches import (G_FILTER, G_FRAME, G_NOTES, G_VNOTES1, G_VOICE1, GROUP_NAMES, GROUPS, LENS, NUM_BUCKETS,
                            NUM_GROUPS, ST_CAP, ST_N, ST_ORIGIN, match_begin, match_push, match_rollback)
from engine.matchstate import MatchState, new_match_state, tune_matches
from sidlive.frames import NUM_REGS

__all__ = ["SOURCES", "NUM_SOURCES", "EXTRAP_PAIRS", "candidate_frame", "window_candidates", "GROUPS",
           "GROUP_NAMES", "LENS", "NUM_BUCKETS", "NUM_GROUPS", "ST_N", "MatchState", "new_match_state",
           "match_push", "match_rollback", "match_begin", "tune_matches", "tune_candidates"]

SOURCES = ("frame", "notes", "group", "vnotes", "extrap", "back2", "back3", "back4")
S_FRAME, S_NOTES, S_GROUP, S_VNOTES, S_EXTRAP, S_BACK2, S_BACK3, S_BACK4 = range(8)
NUM_SOURCES = 8
MATCH_SOURCES = (S_FRAME, S_NOTES, S_GROUP, S_VNOTES)
BACK_SOURCES = (S_BACK2, S_BACK3, S_BACK4)

# Extrapolated pairs: lo register, lo mask, hi register, hi mask, lo bits, value bits
EXTRAP_PAIRS = np.array([[0, 0xFF, 1, 0xFF, 8, 16], [7, 0xFF, 8, 0xFF, 8, 16], [14, 0xFF, 15, 0xFF, 8, 16],
                         [2, 0xFF, 3, 0x0F, 8, 12], [9, 0xFF, 10, 0x0F, 8, 12], [16, 0xFF, 17, 0x0F, 8, 12],
                         [21, 0x07, 22, 0xFF, 3, 11]], np.int64)  # (7, 6)


@njit(cache=True, nogil=True, inline="always")
def _copy_regs(hist, cap, q, b, src, r0, r1, out_vals, out_valid, out_bucket):
    """Source src, registers r0..r1-1 := frame at position q, bucket b."""
    row = hist[q % cap]
    for r in range(r0, r1):
        out_vals[src, r] = row[r]
        out_valid[src, r] = 1
        out_bucket[src, r] = b


@njit(cache=True, nogil=True, inline="always")
def _copy_match(hist, cap, ptr, bucket, g, src, r0, r1, out_vals, out_valid, out_bucket):
    """Source src, registers r0..r1-1 := the continuation of group g's match, if any."""
    if ptr[g] >= 0:
        _copy_regs(hist, cap, ptr[g] + 1, bucket[g], src, r0, r1, out_vals, out_valid, out_bucket)


@njit(cache=True, nogil=True)
def candidate_frame(hist, st, t, ptr, bucket, out_vals, out_valid, out_bucket):
    """The 8 sources for frame t+1 given the matches after frame t (ptr (9,) int64 absolute,
    bucket (9,) uint8), reading the ring hist (cap, 25) of state st; out_vals, out_valid,
    out_bucket (8, 25) uint8. Positions before st[ST_ORIGIN] (the tune start) do not exist."""
    cap, origin = st[ST_CAP], st[ST_ORIGIN]
    out_vals[:] = 0
    out_valid[:] = 0
    out_bucket[:] = 0
    _copy_match(hist, cap, ptr, bucket, G_FRAME, S_FRAME, 0, NUM_REGS, out_vals, out_valid, out_bucket)
    _copy_match(hist, cap, ptr, bucket, G_NOTES, S_NOTES, 0, NUM_REGS, out_vals, out_valid, out_bucket)
    for v in range(3):
        _copy_match(hist, cap, ptr, bucket, G_VOICE1 + v, S_GROUP, 7 * v, 7 * v + 7, out_vals, out_valid, out_bucket)
        _copy_match(hist, cap, ptr, bucket, G_VNOTES1 + v, S_VNOTES, 7 * v, 7 * v + 7, out_vals, out_valid, out_bucket)
    _copy_match(hist, cap, ptr, bucket, G_FILTER, S_GROUP, 21, NUM_REGS, out_vals, out_valid, out_bucket)
    if t - 1 >= origin:
        x0 = hist[t % cap]
        x1 = hist[(t - 1) % cap]
        for k in range(EXTRAP_PAIRS.shape[0]):
            lo, lo_m, hi, hi_m, lo_bits, bits = EXTRAP_PAIRS[k]
            a = (np.int64(x0[lo]) & lo_m) | ((np.int64(x0[hi]) & hi_m) << lo_bits)
            c = (np.int64(x1[lo]) & lo_m) | ((np.int64(x1[hi]) & hi_m) << lo_bits)
            x = 2 * a - c
            if 0 <= x < (1 << bits):
                out_vals[S_EXTRAP, lo] = x & lo_m
                out_vals[S_EXTRAP, hi] = x >> lo_bits
                out_valid[S_EXTRAP, lo] = 1
                out_valid[S_EXTRAP, hi] = 1
    for k in range(3):  # BACK2..4: frames t-1, t-2, t-3
        q = t - 1 - k
        if q >= origin:
            _copy_regs(hist, cap, q, 0, S_BACK2 + k, 0, NUM_REGS, out_vals, out_valid, out_bucket)


def _take(seq, q, ok, b, regs, src, vals, valid, bkt):
    """vals[:, src, regs] := seq[q, regs] where ok (q, ok, b: (n,)); bucket b there."""
    rows = seq[np.where(ok, q, 0)][:, regs]  # (n, len(regs))
    vals[:, src, regs] = np.where(ok[:, None], rows, 0)
    valid[:, src, regs] = ok[:, None]
    bkt[:, src, regs] = np.where(ok, b, 0)[:, None]


def window_candidates(seq: np.ndarray, ptr: np.ndarray, bucket: np.ndarray, lo: int, hi: int):
    """candidate_frame for t = lo..hi-1 (frames lo+1..hi) from whole-tune arrays: seq (N, 25)
    uint8, ptr/bucket (N, 9) from tune_matches(seq) (relative to seq). Returns vals, valid,
    bucket, each (hi-lo, 8, 25) uint8."""
    seq = np.asarray(seq, np.uint8)
    if not 0 <= lo <= hi <= len(seq):
        raise ValueError(f"lo, hi must satisfy 0 <= lo <= hi <= {len(seq)} (len(seq)), got {lo}, {hi}")
    if ptr.shape != (len(seq), NUM_GROUPS) or bucket.shape != ptr.shape:
        raise ValueError(f"ptr and bucket must have shape ({len(seq)}, {NUM_GROUPS}), got {ptr.shape}, {bucket.shape}")
    n = hi - lo
    t = np.arange(lo, hi)
    vals = np.zeros((n, NUM_SOURCES, NUM_REGS), np.uint8)
    valid = np.zeros((n, NUM_SOURCES, NUM_REGS), np.uint8)
    bkt = np.zeros((n, NUM_SOURCES, NUM_REGS), np.uint8)
    p, b = ptr[lo:hi], bucket[lo:hi]  # (n, 9)
    every = np.arange(NUM_REGS)

    def match(g, src, regs):
        _take(seq, p[:, g] + 1, p[:, g] >= 0, b[:, g], regs, src, vals, valid, bkt)

    match(G_FRAME, S_FRAME, every)
    match(G_NOTES, S_NOTES, every)
    for v in range(3):
        voice = np.arange(7 * v, 7 * v + 7)
        match(G_VOICE1 + v, S_GROUP, voice)
        match(G_VNOTES1 + v, S_VNOTES, voice)
    match(G_FILTER, S_GROUP, np.arange(21, NUM_REGS))
    x0 = seq[t].astype(np.int64)                     # (n, 25)
    x1 = seq[np.maximum(t - 1, 0)].astype(np.int64)  # (n, 25)
    for lo_r, lo_m, hi_r, hi_m, lo_bits, bits in EXTRAP_PAIRS:
        a = (x0[:, lo_r] & lo_m) | ((x0[:, hi_r] & hi_m) << lo_bits)
        c = (x1[:, lo_r] & lo_m) | ((x1[:, hi_r] & hi_m) << lo_bits)
        x = 2 * a - c
        ok = (t >= 1) & (x >= 0) & (x < (1 << bits))
        vals[:, S_EXTRAP, lo_r] = np.where(ok, x & lo_m, 0)
        vals[:, S_EXTRAP, hi_r] = np.where(ok, x >> lo_bits, 0)
        valid[:, S_EXTRAP, lo_r] = ok
        valid[:, S_EXTRAP, hi_r] = ok
    zeros = np.zeros(n, np.int64)
    for k in range(3):  # BACK2..4: frames t-1, t-2, t-3
        q = t - 1 - k
        _take(seq, q, q >= 0, zeros, every, S_BACK2 + k, vals, valid, bkt)
    return vals, valid, bkt


def tune_candidates(seq: np.ndarray, state: MatchState | None = None):
    """All candidates of a tune: candidates for frames 1..N-1 of seq (N, 25) given the frames
    before; (vals, valid, bucket), each (N-1, 8, 25) uint8 (row i predicts seq[i+1])."""
    seq = np.asarray(seq, np.uint8)
    ptr, bucket = tune_matches(seq, state)
    return window_candidates(seq, ptr, bucket, 0, max(len(seq) - 1, 0))
