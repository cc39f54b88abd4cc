"""Scorers: objects with `logprobs(regs (N, 25) uint8, composer) -> (N, 25) log2-probs`, each
frame given the frames before it and an all-zero frame before the first (training/score.py
scores files with any of them).

- `EngineScorer`: the Numba engine (int8), teacher forced through a sliding window of
  context_frames: what the instrument plays. Every frame has its full context.
- `TorchScorer`: the PyTorch model (a checkpoint, or a .sidm's dequantized weights) over
  windows of context_frames restarted every context/2 frames.
Pointer models get their candidates (engine/candidates.py) from the whole sequence before
each frame, as in training.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from engine.candidates import tune_candidates, tune_matches
from engine.config import ANY_COMPOSER, normalize_composer
from engine.generator import Generator
from engine.sidm import SidmFormatError
from engine.weights import EngineModel, load_model, read_model
from sidlive.c64.load import load_tune
from sidlive.frames import NUM_REGS, Frames
from training.baseline import ChangeModel
from training.export import model_from_file
from training.model import load_checkpoint
from training.pointer import Cands


def window_cands(seq: np.ndarray) -> tuple:
    """(vals, valid, bucket (N-1, 8, 25), group buckets (N-1, 9)): row t predicts seq[t+1]."""
    vals, valid, bucket = tune_candidates(seq)
    _, gb = tune_matches(seq)
    return vals, valid, bucket, gb[:-1]


class EngineScorer:
    """Teacher-forced log2-probs through the engine (one Generator, reset per call)."""

    def __init__(self, model: EngineModel | str | Path, log=print):
        self.gen = Generator(model if isinstance(model, EngineModel) else load_model(model),
                             max_rollback_frames=1, log=log)
        self.cfg = self.gen.cfg

    def composer_known(self, name: str) -> bool:
        """True when the model conditions on this composer (or it means "any")."""
        key = normalize_composer(name)
        return key == ANY_COMPOSER or any(c.lower() == key.lower() for c in self.cfg.composers)

    def logprobs(self, regs: np.ndarray, composer: str | int | None = None) -> np.ndarray:
        """log2-probs (N, 25) of regs, teacher-forced through the engine from an all-zero frame."""
        g = self.gen
        g.reset()
        g.set_sampling(composer=composer)
        g.prime(np.zeros((1, self.cfg.n_regs), np.uint8))
        return g.teacher_logprobs(np.asarray(regs, np.uint8)) / math.log(2)


class TorchScorer:
    """Scores with a PyTorch SidModel over windows of `context_frames`, stride half of that."""

    def __init__(self, model):
        self.model = model
        self.cfg = model.cfg

    def composer_known(self, name: str) -> bool:
        """True when the model conditions on this composer (or it means "any")."""
        key = normalize_composer(name)
        return key == ANY_COMPOSER or any(c.lower() == key.lower() for c in self.cfg.composers)

    def logprobs(self, regs: np.ndarray, composer: str | None = None) -> np.ndarray:
        """log2-probs (N, 25) of regs over overlapping context windows, an all-zero frame before the first."""
        regs = np.asarray(regs, np.uint8)
        n = len(regs)
        seq = torch.as_tensor(np.concatenate([np.zeros((1, NUM_REGS), np.uint8), regs]).astype(np.int64))
        comp = torch.tensor([self.cfg.composer_index(composer)])
        cands = window_cands(seq.numpy().astype(np.uint8)) if self.cfg.pointer else None
        C = self.cfg.context_frames
        stride = max(1, C // 2)
        out = np.zeros((n, NUM_REGS))
        done, a = 0, 0
        with torch.no_grad():
            while done < n:
                b = min(a + C, n)  # targets a..b-1 from inputs seq[a..b-1]
                c = None if cands is None else Cands.from_numpy(*(x[a:b][None] for x in cands))
                lp = self.model(seq[a:b + 1][None], comp, c)[0].numpy()  # (b-a, 25) log2
                out[done:b] = lp[done - a:]
                done = b
                a = max(0, b + stride - C)  # next window scores `stride` new targets
        return out


def stored(path: str | Path, meta: dict, key: str, parse):
    """parse(meta[key]) (None when the key is absent); SidmFormatError naming the file and the field."""
    if key not in meta:
        return None
    try:
        return parse(meta[key])
    except (TypeError, ValueError) as e:
        raise SidmFormatError(f"{path}: field 'meta.{key}' in the JSON header: {e}") from None


def load_scorer(path: str | Path, engine: bool = True, log=None) -> tuple:
    """(scorer, the baseline stored with it or None, its metadata) for a .sidm (the Numba
    engine, int8, as it plays; engine=False: PyTorch on the dequantized weights, read with
    the same checks) or a training checkpoint (PyTorch, float). A stored baseline is checked
    here, naming the file (a stored mixture where it is used: `stored`)."""
    path = Path(path)
    if path.suffix == ".sidm":
        if engine:
            model = load_model(path)
            scorer, meta = EngineScorer(model, log=log), model.meta
        else:
            f, cfg = read_model(path)
            scorer, meta = TorchScorer(model_from_file(f, cfg)), f.meta
        return scorer, stored(path, meta, "baseline", ChangeModel.from_dict), meta
    model, ckpt = load_checkpoint(path)
    base = ChangeModel.from_dict(ckpt["baseline"]) if "baseline" in ckpt else None
    return TorchScorer(model), base, {k: ckpt[k] for k in ("mixture",) if k in ckpt}


def load_frames(path: str | Path, sid_seconds: float | None = None) -> Frames:
    """A frames file, or a .sid dumped on the fly (length: sid_seconds, else its Songlengths entry)."""
    path = Path(path)
    if path.suffix.lower() == ".sid":
        try:
            return load_tune(path, seconds=sid_seconds)
        except (RuntimeError, ValueError) as e:  # DumpError, UnsupportedTune, PsidFormatError
            msg = str(e)
            raise ValueError(msg if str(path) in msg else f"{path}: {msg}") from None
    return load_tune(path)


