"""engine/candidates.py: the per-frame Numba candidates equal the vectorized window ones and a
literal reading of the definition; EXTRAP splits and range checks; window slices."""
from __future__ import annotations

import time

import numpy as np
import pytest

from engine.candidates import (EXTRAP_PAIRS, NUM_SOURCES, S_BACK2, S_EXTRAP, S_FRAME, S_GROUP, S_NOTES,
                               S_VNOTES, candidate_frame, new_match_state, tune_candidates, tune_matches,
                               window_candidates)
from engine.matches import G_FILTER, G_FRAME, G_NOTES, G_VNOTES1, G_VOICE1
from sidlive.frames import NUM_REGS
from tests.conftest import patterned, walk


def engine_candidates(state, seq):
    """Push seq as a new tune on state, candidate_frame after every push: (N, 8, 25) x 3."""
    n = len(seq)
    out = [np.zeros((n, NUM_SOURCES, NUM_REGS), np.uint8) for _ in range(3)]
    state.begin_tune()
    for i, f in enumerate(seq):
        ptr, bucket = state.push(f)
        candidate_frame(state.hist, state.st, state.length - 1, ptr, bucket, out[0][i], out[1][i], out[2][i])
    return out


def literal_candidates(seq, ptr, bucket):
    """The definition, register by register, in plain Python."""
    n = len(seq)
    vals, valid, bkt = (np.zeros((n, NUM_SOURCES, NUM_REGS), np.int64) for _ in range(3))

    def put(t, src, r, q, b):
        vals[t, src, r], valid[t, src, r], bkt[t, src, r] = seq[q, r], 1, b

    for t in range(n):
        for r in range(NUM_REGS):
            v = min(r // 7, 2)
            for src, g in ((S_FRAME, G_FRAME), (S_NOTES, G_NOTES),
                           (S_GROUP, G_VOICE1 + v if r < 21 else G_FILTER), (S_VNOTES, G_VNOTES1 + v)):
                if ptr[t, g] >= 0 and not (src == S_VNOTES and r >= 21):
                    put(t, src, r, ptr[t, g] + 1, bucket[t, g])
            for k in range(3):
                if t - 1 - k >= 0:
                    put(t, S_BACK2 + k, r, t - 1 - k, 0)
        if t >= 1:
            for lo, lo_m, hi, hi_m, lo_bits, bits in EXTRAP_PAIRS.tolist():
                a = (int(seq[t, lo]) & lo_m) | ((int(seq[t, hi]) & hi_m) << lo_bits)
                c = (int(seq[t - 1, lo]) & lo_m) | ((int(seq[t - 1, hi]) & hi_m) << lo_bits)
                x = 2 * a - c
                if 0 <= x < 2 ** bits:
                    vals[t, S_EXTRAP, lo], vals[t, S_EXTRAP, hi] = x & lo_m, x >> lo_bits
                    valid[t, S_EXTRAP, lo] = valid[t, S_EXTRAP, hi] = 1
    return vals, valid, bkt


def assert_same(got, want):
    for name, a, b in zip(("vals", "valid", "bucket"), got, want):
        np.testing.assert_array_equal(np.asarray(a, np.int64), np.asarray(b, np.int64), err_msg=name)


def test_window_candidates_equal_the_literal_definition():
    seq = patterned(400, seed=2)
    ptr, bucket = tune_matches(seq, new_match_state(table_bits=16))
    assert_same(window_candidates(seq, ptr, bucket, 0, len(seq)), literal_candidates(seq, ptr, bucket))


@pytest.mark.parametrize("history", [None, 100])
def test_engine_and_window_candidates_agree(history):
    kw = dict(table_bits=18, max_rollback_frames=16) | ({"history_frames": history} if history else {})
    state = new_match_state(**kw)
    engine_candidates(state, patterned(700, seed=3))  # an earlier tune: origin > 0, ring rows reused
    seq = patterned(2500, seed=4)
    got = engine_candidates(state, seq)
    ptr, bucket = tune_matches(seq, new_match_state(**kw))
    full = window_candidates(seq, ptr, bucket, 0, len(seq))
    assert_same(got, full)
    assert full[1][:, S_FRAME].any() and full[1][:, S_EXTRAP].any()
    for lo, hi in ((0, 1), (37, 300), (2400, 2500), (5, 5)):  # a window of a longer tune
        assert_same(window_candidates(seq, ptr, bucket, lo, hi), [a[lo:hi] for a in full])


def test_tune_candidates_rows_predict_the_next_frame():
    seq = walk(50, seed=3)
    vals, valid, _ = tune_candidates(seq)
    assert vals.shape == (49, NUM_SOURCES, NUM_REGS)
    np.testing.assert_array_equal(vals[:, S_BACK2][2:], seq[1:-2])  # row i predicts seq[i+1]; BACK2 = seq[i-1]
    assert not valid[0, S_BACK2].any() and valid[1, S_BACK2].all()


def two_frames(pairs):
    """Frames t-1, t with the given (lo, hi, x[t-1], x[t]) extrapolation pairs set."""
    seq = np.zeros((2, NUM_REGS), np.uint8)
    for lo, hi, lo_bits, x1, x0 in pairs:
        for row, x in ((0, x1), (1, x0)):
            seq[row, lo] = x & ((1 << lo_bits) - 1)
            seq[row, hi] = x >> lo_bits
    return seq


def both_implementations(seq):
    state = new_match_state(table_bits=12, history_frames=64, max_rollback_frames=4)
    eng = engine_candidates(state, seq)
    win = window_candidates(seq, *tune_matches(seq, new_match_state(table_bits=12)), 0, len(seq))
    assert_same(eng, win)
    return [a[-1, S_EXTRAP] for a in win]  # (25,) each, for frame t+1


def test_extrap_splits_pulse_width_and_cutoff():
    # v1 pulse width 0x7F0 -> 0x800: 0x810; cutoff 0x3FF -> 0x400: 0x401; v2 freq 0x12FF -> 0x1300: 0x1301
    seq = two_frames([(2, 3, 8, 0x7F0, 0x800), (21, 22, 3, 0x3FF, 0x400), (7, 8, 8, 0x12FF, 0x1300)])
    vals, valid, bucket = both_implementations(seq)
    assert (vals[2], vals[3]) == (0x10, 0x08)
    assert (vals[21], vals[22]) == (0x01, 0x80)
    assert (vals[7], vals[8]) == (0x01, 0x13)
    assert valid[[0, 1, 2, 3, 7, 8, 9, 10, 14, 15, 16, 17, 21, 22]].all()  # zeros extrapolate to zero
    assert not valid[[4, 5, 6, 11, 12, 13, 18, 19, 20, 23, 24]].any() and not bucket.any()


@pytest.mark.parametrize("pair, x1, x0", [
    ((2, 3, 8), 0x010, 0xFF8),   # 12-bit pulse width: 0x1FE0 > 0xFFF
    ((2, 3, 8), 0x100, 0x010),   # below zero
    ((21, 22, 3), 0x7FE, 0x7FF),  # 11-bit cutoff: 0x800
    ((21, 22, 3), 0x001, 0x000),  # cutoff below zero
    ((0, 1, 8), 0xFFFE, 0xFFFF),  # 16-bit frequency: 0x10000
])
def test_extrap_rejects_out_of_range(pair, x1, x0):
    vals, valid, _ = both_implementations(two_frames([(*pair, x1, x0)]))
    assert not valid[[pair[0], pair[1]]].any() and vals[pair[0]] == vals[pair[1]] == 0


def test_extrap_at_the_range_edges_and_first_frame():
    vals, valid, _ = both_implementations(two_frames([(2, 3, 8, 0xFFD, 0xFFE), (21, 22, 3, 0x002, 0x001)]))
    assert valid[[2, 3, 21, 22]].all() and (vals[2], vals[3], vals[21], vals[22]) == (0xFF, 0x0F, 0, 0)
    first = window_candidates(walk(3), *tune_matches(walk(3)), 0, 1)
    assert not first[1][0, S_EXTRAP:].any()  # t = 0: no extrapolation, nothing 2-4 frames back


def test_window_candidates_checks_its_range():
    seq = walk(10)
    with pytest.raises(ValueError, match=r"lo, hi must satisfy 0 <= lo <= hi <= 10"):
        window_candidates(seq, *tune_matches(seq), 3, 11)


def test_candidate_timing_printed():
    seq = patterned(20_000, seed=6)
    ptr, bucket = tune_matches(seq)
    t0 = time.process_time()
    window_candidates(seq, ptr, bucket, 0, len(seq))
    dt = time.process_time() - t0
    print(f"\nwindow_candidates {len(seq) / dt:,.0f} frames/s")
