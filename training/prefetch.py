"""Batches made ahead in worker processes: a batch is a function of (seed, rank, step) alone,
so workers can build steps step+1, step+2, ... while the device trains on `step` (a GPU
outruns one CPU building windows with their candidates). The same batches as in-process."""
from __future__ import annotations

import multiprocessing as mp
import signal

import numpy as np

from training.dataset import Batch, WindowSampler

_SAMPLER: WindowSampler | None = None


def _init(sampler: WindowSampler) -> None:
    # A forked worker inherits the trainer's graceful-stop handlers; it must die on SIGTERM
    # (Pool.terminate) and leave Ctrl-C to the trainer.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    global _SAMPLER
    _SAMPLER = sampler


def _make(args: tuple) -> Batch:
    seed, rank, step, batch = args
    return _SAMPLER.sample(np.random.default_rng([seed, rank, step]), batch)


class Prefetcher:
    """`get(step)` -> the batch of `step`, made by `workers` processes (fork) ahead of time."""

    def __init__(self, sampler: WindowSampler, seed: int, rank: int, batch: int, first_step: int, last_step: int,
                 workers: int):
        self.pool = mp.get_context("fork").Pool(workers, initializer=_init, initargs=(sampler,))
        self._it = self.pool.imap(_make, ((seed, rank, s, batch) for s in range(first_step, last_step)), chunksize=1)
        self.next_step = first_step

    def get(self, step: int) -> Batch:
        """The batch of `step` (steps must be asked for in order)."""
        if step != self.next_step:
            raise ValueError(f"prefetcher: asked for step {step}, the next one is {self.next_step}")
        self.next_step += 1
        return next(self._it)

    def close(self) -> None:
        """Stop the workers (twice is safe)."""
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None
