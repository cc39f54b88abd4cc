"""Repetition in frame sequences: the longest exact repeat (loop collapse: a generation stuck
repeating a short loop), self-repetition (how much of a piece follows a 32-frame stretch it
played before; real tunes 29-34 %)."""
from __future__ import annotations

import numpy as np

from engine.candidates import tune_matches
from engine.matches import G_FRAME, LENS, NUM_BUCKETS
from sidlive.frames import NUM_REGS, PAL_FRAME_RATE_HZ, check_regs

# Registers a loop is judged on: not the pulse widths and the cutoff, whose sweeps run on
# while the notes repeat.
MODULATOR_REGS = (0x02, 0x03, 0x09, 0x0A, 0x10, 0x11, 0x15, 0x16)
LOOP_REGS = tuple(r for r in range(NUM_REGS) if r not in MODULATOR_REGS)
MATCH_CONTEXT = LENS[-1]   # 32 frames


def longest_repeat(regs: np.ndarray, max_period_frames: int) -> tuple[int, int, int]:
    """Longest stretch repeating with a period <= max_period_frames: (period, start, length).

    Ties go to the smallest period; (0, -1, 0) when nothing repeats.
    """
    regs = check_regs(regs)
    if max_period_frames < 1:
        raise ValueError(f"max_period_frames must be >= 1, got {max_period_frames}")
    _, ids = np.unique(regs[:, LOOP_REGS], axis=0, return_inverse=True)
    ids = ids.reshape(-1)  # (N,) one id per distinct non-modulator frame
    best = (0, -1, 0)
    for p in range(1, min(max_period_frames, len(ids) - 1) + 1):
        m = np.concatenate(([False], ids[p:] == ids[:-p], [False]))
        edges = np.flatnonzero(np.diff(m.astype(np.int8)))
        if len(edges) == 0:
            continue
        starts, ends = edges[0::2], edges[1::2]
        i = int(np.argmax(ends - starts))
        length = int(ends[i] - starts[i]) + p
        if length > best[2]:
            best = (p, int(starts[i]), length)
    return best


def loop_collapse(regs: np.ndarray, max_period_s: float = 4.0, min_repeat_s: float = 20.0,
                  frame_rate_hz: float = PAL_FRAME_RATE_HZ) -> tuple[bool, int, int]:
    """(collapsed, period_frames, start_frame): a period <= max_period_s repeating > min_repeat_s.

    When not collapsed, period_frames is 0 and start is -1.
    """
    max_p = int(round(max_period_s * frame_rate_hz))
    period, start, length = longest_repeat(regs, max_p)
    if length > min_repeat_s * frame_rate_hz:
        return True, period, start
    return False, 0, -1


def self_repetition(regs: np.ndarray, start: int = 0) -> tuple[int, int]:
    """(frames whose previous 32 frames occurred earlier in regs, frames counted): over frames
    t >= max(start, 32); the whole-frame match of engine/candidates.py, longest length 32."""
    regs = check_regs(regs)
    if len(regs) <= MATCH_CONTEXT:
        return 0, 0
    _, bucket = tune_matches(regs)                      # row t: the context ending at frame t
    t0 = max(start, MATCH_CONTEXT)
    hit = bucket[t0 - 1:len(regs) - 1, G_FRAME] >= NUM_BUCKETS - 1
    return int(hit.sum()), int(len(hit))

