"""engine/matches.py against a brute force of the definition: exact ptr/bucket, history
expiry, rollback equivalence, soundness under slot collisions, tune independence; timings."""
from __future__ import annotations

import time

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from engine.matches import GROUPS, LENS, NUM_GROUPS, match_push
from engine.matchstate import MatchState, new_match_state, tune_matches
from tests.conftest import patterned, walk


def brute_matches(seq: np.ndarray, history: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The definition over all pairs: E[p, t] = group rows equal; windows by doubling
    (M_2L[p, t] = M_L[p, t] & M_L[p-L, t-L]); the last p < t per column. (N, 9) each."""
    n = len(seq)
    ptr = np.full((n, NUM_GROUPS), -1, np.int64)
    bucket = np.zeros((n, NUM_GROUPS), np.uint8)
    pos = np.arange(n)
    before = pos[:, None] < pos[None, :]  # (N, N) p < t
    for g, regs in enumerate(GROUPS):
        ids = np.unique(seq[:, list(regs)], axis=0, return_inverse=True)[1].ravel()
        m = ids[:, None] == ids[None, :]  # M_1
        length = 1
        for li, want in enumerate(LENS):
            while length < want:
                nxt = np.zeros_like(m)
                nxt[length:, length:] = m[length:, length:] & m[:-length, :-length]
                m, length = nxt, 2 * length
            ok = m & before
            if history is not None:  # window start p-L+1 >= t-H+1
                ok &= (pos[:, None] - want) >= (pos[None, :] - history)
            has = ok.any(0)
            last = n - 1 - np.argmax(ok[::-1], axis=0)
            ptr[has, g] = last[has]
            bucket[has, g] = li + 1
    return ptr, bucket


def naive_matches(seq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The definition read literally, window by window (short sequences only)."""
    n = len(seq)
    ptr = np.full((n, NUM_GROUPS), -1, np.int64)
    bucket = np.zeros((n, NUM_GROUPS), np.uint8)
    for g, regs in enumerate(GROUPS):
        col = seq[:, list(regs)]
        for t in range(n):
            for li in range(len(LENS) - 1, -1, -1):
                L = LENS[li]
                if t < L:  # needs L-1 <= p < t
                    continue
                wins = sliding_window_view(col[:t], (L, len(regs)))[:, 0]  # windows ending at p = L-1..t-1
                eq = (wins == col[t - L + 1:t + 1]).all((1, 2))
                if eq.any():
                    ptr[t, g] = L - 1 + np.flatnonzero(eq)[-1]
                    bucket[t, g] = li + 1
                    break
    return ptr, bucket


def test_brute_force_agrees_with_the_literal_definition():
    seq = patterned(300, seed=4)
    for a, b in zip(brute_matches(seq), naive_matches(seq)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("seed", [0, 1])
def test_tune_matches_equal_brute_force(seed):
    seq = patterned(5000, seed=seed)
    state = new_match_state()
    ptr, bucket = tune_matches(seq, state)
    want_ptr, want_bucket = brute_matches(seq)
    assert state.evictions == 0
    assert (want_bucket > 0).mean() > 0.5 and (want_bucket == len(LENS)).any(0).all()  # a real test
    np.testing.assert_array_equal(bucket, want_bucket)
    np.testing.assert_array_equal(ptr, want_ptr)


def test_without_byte_verification_the_full_key_suffices():
    seq = patterned(3000, seed=7)
    state = new_match_state(verify=False)
    got = tune_matches(seq, state)
    assert state.evictions == 0
    for a, b in zip(got, brute_matches(seq)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("verify", [True, False])
def test_a_tiny_table_misses_but_never_reports_a_wrong_match(verify):
    seq = patterned(2000, seed=3)
    state = new_match_state(table_bits=6, verify=verify)  # 64 slots: constant slot collisions
    ptr, bucket = tune_matches(seq, state)
    assert state.evictions > 1000
    want_ptr, want_bucket = brute_matches(seq)
    assert (bucket <= want_bucket).all() and (bucket > 0).sum() > 0
    for t, g in zip(*np.nonzero(bucket)):
        L, p, regs = LENS[bucket[t, g] - 1], ptr[t, g], list(GROUPS[g])
        assert L - 1 <= p < t
        np.testing.assert_array_equal(seq[p - L + 1:p + 1, regs], seq[t - L + 1:t + 1, regs])


def test_history_expiry():
    seq = patterned(3000, seed=5)
    for history in (64, 200):
        got = tune_matches(seq, new_match_state(history_frames=history, table_bits=16))
        for a, b in zip(got, brute_matches(seq, history)):
            np.testing.assert_array_equal(a, b)


def test_tunes_are_independent_and_positions_relative():
    a, b = patterned(1500, seed=8), patterned(1200, seed=9)
    state = new_match_state(table_bits=18)
    tune_matches(a, state)
    got = tune_matches(b, state)
    assert state.origin == len(a) and state.evictions == 0
    for x, y in zip(got, tune_matches(b, new_match_state(table_bits=18))):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(tune_matches(b, state), got):  # the same tune again: no memory of the first pass
        np.testing.assert_array_equal(x, y)


def run_with_rollbacks(state: MatchState, frames: np.ndarray, rng, n_ops: int, max_back: int):
    """Random pushes and rollbacks (re-pushing the same or other frames); returns the
    final timeline and the outputs recorded for it."""
    timeline, outs = [], []
    src = 0
    for _ in range(n_ops):
        if state.undo_frames and rng.random() < 0.08:
            back = int(rng.integers(1, min(max_back, state.undo_frames) + 1))
            state.rollback(len(timeline) - back)
            del timeline[-back:], outs[-back:]
            src = src - back if rng.random() < 0.5 else int(rng.integers(0, len(frames) - 400))
        for _ in range(int(rng.integers(1, 12))):
            f = frames[src % len(frames)]
            src += 1
            timeline.append(f)
            outs.append(state.push(f))
    return np.array(timeline), outs


@pytest.mark.parametrize("history", [None, 80])
def test_rollback_then_pushing_equals_a_fresh_run(history):
    rng = np.random.default_rng(11)
    frames = patterned(4000, seed=12)
    kw = dict(table_bits=18, max_rollback_frames=64) | ({"history_frames": history} if history else {})
    state = new_match_state(**kw)
    timeline, outs = run_with_rollbacks(state, frames, rng, 600, 64)
    assert len(timeline) > 1000
    ptr, bucket = tune_matches(timeline, new_match_state(**kw))
    np.testing.assert_array_equal(np.array([o[0] for o in outs]), ptr)
    np.testing.assert_array_equal(np.array([o[1] for o in outs]), bucket)
    if history is None:
        assert state.evictions == 0
        np.testing.assert_array_equal(ptr, brute_matches(timeline)[0])


def test_rollback_reach_and_errors():
    state = new_match_state(table_bits=12, max_rollback_frames=16)
    seq = walk(40, seed=1)
    for f in seq[:30]:
        state.push(f)
    with pytest.raises(ValueError, match=r"new_length must be in 14\.\.30"):
        state.rollback(13)
    state.rollback(14)
    state.begin_tune()
    with pytest.raises(ValueError, match=r"new_length must be in 14\.\.14"):
        state.rollback(13)
    with pytest.raises(ValueError, match="history_frames"):
        new_match_state(history_frames=10)
    with pytest.raises(ValueError, match="table_bits"):
        new_match_state(table_bits=40)
    with pytest.raises(ValueError, match=r"shape \(N, 25\)"):
        tune_matches(np.zeros((5, 24), np.uint8))


def test_timings_printed():
    """Throughput on repetitive frames (a real tune is similar), per-push and rollback cost."""
    seq = patterned(60_000, seed=21)
    state = new_match_state()
    tune_matches(seq[:100], state)  # compiled
    t0 = time.process_time()
    tune_matches(seq, state)
    dt = time.process_time() - t0
    ptr, bucket = np.zeros(NUM_GROUPS, np.int64), np.zeros(NUM_GROUPS, np.uint8)
    t1 = time.perf_counter()
    for f in seq[:5000]:
        match_push(*state.arrays(), f, ptr, bucket)
    push_us = (time.perf_counter() - t1) / 5000 * 1e6
    t2 = time.perf_counter()
    state.rollback(state.length - 256)
    rb_ms = (time.perf_counter() - t2) * 1e3
    print(f"\ntune_matches {len(seq) / dt:,.0f} frames/s (CPU time); match_push from Python {push_us:.1f} us; "
          f"rollback of 256 frames {rb_ms:.2f} ms; default state {state.nbytes / 1e6:.1f} MB")
