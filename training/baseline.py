"""Baseline: repeat the previous frame, with a learned per-register change model.

For register r with previous value p:
  p(v = p)  = 1 - c[r]                         c[r]: change probability (add-one smoothed)
  p(v != p) = c[r] * h[r, v] / (1 - h[r, p])   h[r]: histogram of the values r changes to
                                               (+0.5 per value), normalized
Fit on training tunes, each seen as [all-zero frame] + frames (as the model sees them).
About 50 bits/frame on held-back real tunes. Numpy only.

    python -m training.baseline DATA_DIR -o baseline.npz [--val-permille 50 --seed 1337]
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from sidlive.frames import NUM_REGS
from training.dataset import FrameStore, load_index, split


class ChangeModel:
    """The baseline: per-register change probabilities (25,) and changed-to value histograms (25, 256)."""
    def __init__(self, change_p: np.ndarray, hist: np.ndarray):
        self.change_p = np.asarray(change_p, np.float64)  # (25,)
        self.hist = np.asarray(hist, np.float64)          # (25, 256), rows sum to 1
        if self.change_p.shape != (NUM_REGS,) or self.hist.shape != (NUM_REGS, 256):
            raise ValueError(f"change model shapes {self.change_p.shape}, {self.hist.shape}; "
                             f"expected ({NUM_REGS},), ({NUM_REGS}, 256)")
        if not ((self.change_p > 0) & (self.change_p < 1)).all():
            raise ValueError("change_p: every change probability must be in (0, 1)")
        if not ((self.hist > 0) & (self.hist < 1)).all() or not np.allclose(self.hist.sum(1), 1.0, atol=1e-6):
            raise ValueError("hist: every value must be in (0, 1) and every row must sum to 1")

    @classmethod
    def fit(cls, sequences) -> "ChangeModel":
        """sequences: iterable of (n, 25) uint8 frame arrays (each prefixed with a zero frame here)."""
        changes = np.zeros(NUM_REGS)
        total = 0
        counts = np.zeros((NUM_REGS, 256))
        base = np.arange(NUM_REGS) * 256
        for seq in sequences:
            seq = np.concatenate([np.zeros((1, NUM_REGS), np.uint8), np.asarray(seq, np.uint8)])
            prev, cur = seq[:-1], seq[1:]
            ch = prev != cur  # (n, 25)
            changes += ch.sum(0)
            total += len(cur)
            idx = (cur.astype(np.int64) + base)[ch]
            counts += np.bincount(idx, minlength=NUM_REGS * 256).reshape(NUM_REGS, 256)
        change_p = (changes + 1.0) / (total + 2.0)
        hist = counts + 0.5
        return cls(change_p, hist / hist.sum(1, keepdims=True))

    def logprobs(self, regs: np.ndarray, composer: str | None = None) -> np.ndarray:
        """log2 p of every register byte of regs (N, 25) given the frame before (zeros before frame 0)."""
        regs = np.asarray(regs, np.uint8)
        prev = np.concatenate([np.zeros((1, NUM_REGS), np.uint8), regs[:-1]])
        return self.pair_logprobs(prev, regs)

    def pair_logprobs(self, prev: np.ndarray, regs: np.ndarray) -> np.ndarray:
        """log2 p of regs (N, 25) given prev (N, 25)."""
        regs, prev = np.asarray(regs, np.uint8), np.asarray(prev, np.uint8)
        r = np.arange(NUM_REGS)[None, :]
        same = regs == prev
        h_v = self.hist[r, regs]
        h_p = self.hist[r, prev]
        p_change = self.change_p[None, :] * h_v / (1.0 - h_p)
        p = np.where(same, 1.0 - self.change_p[None, :], p_change)
        return np.log2(p)

    def save(self, path: str | Path) -> None:
        """Write change_p and hist to an .npz file."""
        np.savez(path, change_p=self.change_p, hist=self.hist)

    @classmethod
    def load(cls, path: str | Path) -> "ChangeModel":
        """Read a model saved by save(); ValueError when the file is not one."""
        try:
            z = np.load(path)
            return cls(z["change_p"], z["hist"])
        except (OSError, KeyError, ValueError) as e:
            raise ValueError(f"{path}: not a change-model .npz with change_p (25,) and hist (25, 256): {e}") from None

    def to_dict(self) -> dict:
        """The model as JSON-ready lists (stored in checkpoints and .sidm metadata)."""
        return {"change_p": self.change_p.tolist(), "hist": self.hist.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "ChangeModel":
        """Rebuild a model from to_dict's output; ValueError saying what is missing or wrong."""
        if not isinstance(d, dict) or not {"change_p", "hist"} <= set(d):
            raise ValueError(f"expected an object with change_p ({NUM_REGS}) and hist ({NUM_REGS} x 256)")
        try:
            change_p, hist = np.array(d["change_p"], np.float64), np.array(d["hist"], np.float64)
        except (TypeError, ValueError):
            raise ValueError("change_p and hist must be arrays of numbers") from None
        return cls(change_p, hist)

    def mean_changes_per_frame(self) -> float:
        """Expected number of registers that change per frame."""
        return float(self.change_p.sum())


def fit_dataset(data_dir: str | Path, val_permille: int, seed: int, max_tunes: int = 0) -> ChangeModel:
    """Fit the change model on a dataset's training split (max_tunes: only the first N tunes; 0 = all)."""
    train, _ = split(load_index(data_dir), val_permille, seed)
    if max_tunes:
        train = train[:max_tunes]
    store = FrameStore(data_dir)
    return ChangeModel.fit(store.frames(t) for t in train)


def main(argv: list[str] | None = None) -> int:
    """Command line: fit on DATA_DIR's training split and write the .npz; returns 0."""
    ap = argparse.ArgumentParser(prog="python -m training.baseline", description=__doc__.split("\n")[0])
    ap.add_argument("data_dir")
    ap.add_argument("-o", "--output", required=True, help="output .npz")
    ap.add_argument("--val-permille", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1337)
    args = ap.parse_args(argv)
    model = fit_dataset(args.data_dir, args.val_permille, args.seed)
    model.save(args.output)
    print(f"wrote {args.output}: {model.mean_changes_per_frame():.2f} changes/frame expected, "
          f"{-math.log2(1 - model.change_p).sum():.2f} bits/frame for a frame with no change")
    return 0


if __name__ == "__main__":
    sys.exit(main())
