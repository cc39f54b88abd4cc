"""The match machinery's state on the Python side: `MatchState` (the arrays the kernels of
engine/matches.py take, with push / rollback / reset helpers) and `tune_matches` for whole tunes."""
from __future__ import annotations

import threading

import numpy as np

from engine.matches import (HISTORY_FRAMES, MAX_LEN, MAX_ROLLBACK_FRAMES, NUM_GROUPS, NUM_LENS, PH_ROWS, ROW_BYTES,
                            ST_BITS, ST_CAP, ST_EVICT, ST_HIST, ST_LEN, ST_N, ST_ORIGIN, ST_ROLL, ST_UNDO_N,
                            ST_VERIFY, TABLE_BITS, WAYS, WRITES, match_begin, match_push, match_rollback,
                            tune_matches_kernel)
from sidlive.frames import NUM_REGS


class MatchState:
    """The match machinery's arrays (see the module docstring) and Python-side helpers."""

    def __init__(self, history_frames: int = HISTORY_FRAMES, table_bits: int = TABLE_BITS,
                 max_rollback_frames: int = MAX_ROLLBACK_FRAMES, verify: bool = True):
        if not 2 * MAX_LEN <= history_frames <= 1 << 30:
            raise ValueError(f"history_frames must be in {2 * MAX_LEN}..{1 << 30}, got {history_frames}")
        if not 4 <= table_bits <= 30:
            raise ValueError(f"table_bits must be in 4..30, got {table_bits}")
        if not 1 <= max_rollback_frames <= 1 << 16:
            raise ValueError(f"max_rollback_frames must be in 1..{1 << 16}, got {max_rollback_frames}")
        cap = history_frames + max_rollback_frames  # rolled-back pushes may have overwritten R rows
        self.hist = np.zeros((cap, ROW_BYTES), np.uint8)                  # (cap, 32)
        self.hw = self.hist.view(np.uint64)                               # (cap, 4)
        self.ph = np.zeros((PH_ROWS, NUM_GROUPS), np.uint64)              # (64, 9)
        self.wk = np.zeros((NUM_GROUPS, NUM_LENS + 2), np.int64)          # (9, 8)
        self.tab = np.zeros((1 << table_bits, 2), np.int64)               # (2^bits, 2)
        self.ovf = np.zeros((1 << table_bits) // WAYS, np.uint8)          # (2^bits / 4,)
        self.ulog = np.zeros((max_rollback_frames, WRITES, 3), np.int64)  # (R, 54, 3)
        self.st = np.zeros(ST_LEN, np.int64)
        self.st[[ST_HIST, ST_CAP, ST_BITS, ST_ROLL, ST_VERIFY]] = (
            history_frames, cap, table_bits, max_rollback_frames, int(verify))
        self.reset()
        self._ptr = np.full(NUM_GROUPS, -1, np.int64)
        self._bucket = np.zeros(NUM_GROUPS, np.uint8)

    def arrays(self) -> tuple:
        """(hist, hw, ph, wk, tab, ovf, ulog, st): the kernels' leading arguments."""
        return self.hist, self.hw, self.ph, self.wk, self.tab, self.ovf, self.ulog, self.st

    @property
    def nbytes(self) -> int:
        """Bytes held by the state's arrays (hw shares hist's)."""
        return sum(a.nbytes for a in self.arrays() if a is not self.hw)

    @property
    def length(self) -> int:
        """Frames pushed on the timeline (the next push's position)."""
        return int(self.st[ST_N])

    @property
    def origin(self) -> int:
        """Position of the current tune's first frame."""
        return int(self.st[ST_ORIGIN])

    @property
    def undo_frames(self) -> int:
        """How many frames a rollback can take back now."""
        return int(self.st[ST_UNDO_N])

    @property
    def evictions(self) -> int:
        """Live table entries lost to full buckets so far (0: every result is exact)."""
        return int(self.st[ST_EVICT])

    def reset(self) -> None:
        """Empty timeline and table (settings kept)."""
        self.hist[:] = 0
        self.ph[:] = 0
        self.wk[:] = 0
        self.tab[:, 0] = -1
        self.tab[:, 1] = 0
        self.ovf[:] = 0
        self.ulog[:] = -1
        self.st[[ST_N, ST_ORIGIN, ST_UNDO_N, ST_EVICT]] = 0

    def begin_tune(self) -> None:
        """Later pushes form a new tune: nothing before this point matches."""
        match_begin(self.st)

    def push(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Append one frame (25,) uint8; returns copies of (ptr (9,) int64, bucket (9,) uint8)."""
        frame = np.ascontiguousarray(frame, np.uint8)
        if frame.shape != (NUM_REGS,):
            raise ValueError(f"frame must have shape ({NUM_REGS},), got {frame.shape}")
        match_push(*self.arrays(), frame, self._ptr, self._bucket)
        return self._ptr.copy(), self._bucket.copy()

    def rollback(self, new_length: int) -> None:
        """Restore the state after position new_length-1 was pushed."""
        lo = self.length - int(self.st[ST_UNDO_N])
        if match_rollback(*self.arrays(), np.int64(new_length)) != 0:
            raise ValueError(f"new_length must be in {lo}..{self.length} (the undo log's reach), got {new_length}")


def new_match_state(history_frames: int = HISTORY_FRAMES, table_bits: int = TABLE_BITS,
                    max_rollback_frames: int = MAX_ROLLBACK_FRAMES, verify: bool = True) -> MatchState:
    """A fresh MatchState (defaults: 87 min of history, 2^20 slots, 256 frames of rollback)."""
    return MatchState(history_frames, table_bits, max_rollback_frames, verify)


_local = threading.local()


def tune_matches(regs: np.ndarray, state: MatchState | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Matches after each frame of a tune: (ptr (N, 9) int64 relative to regs, -1 none;
    bucket (N, 9) uint8). Runs as a new tune on `state` (default: a per-thread default state)."""
    regs = np.ascontiguousarray(regs, np.uint8)
    if regs.ndim != 2 or regs.shape[1] != NUM_REGS:
        raise ValueError(f"regs must have shape (N, {NUM_REGS}), got {regs.shape}")
    if state is None:
        state = getattr(_local, "state", None)
        if state is None:
            state = _local.state = MatchState()
    ptr = np.empty((len(regs), NUM_GROUPS), np.int64)
    bucket = np.empty((len(regs), NUM_GROUPS), np.uint8)
    tune_matches_kernel(*state.arrays(), regs, ptr, bucket)
    return ptr, bucket
