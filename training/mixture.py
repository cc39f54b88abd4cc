"""Register-level mixture baseline: a model's distribution mixed with point masses on the
repeat candidates of engine/candidates.py.

For register r of a frame with valid sources k (the 8 candidate sources + PREV, the previous
frame's value, always valid) proposing values c_k with length buckets b_k:

    p(y) = (a_model[r] p_model(y) + sum_k a[r, k, b_k] [c_k == y]) / (a_model[r] + sum_k a[r, k, b_k])

with positive weights a = exp(theta) per (register, source, bucket) and a_model = exp(theta_model)
per register: 25 + 25 x 9 x 7 = 1,600 numbers. Given the model's conditional it is an exact,
normalized distribution over the 256 values (the model's own distribution mixed with point
masses), so -log2 p summed over registers is an honest bits/frame figure. Only the model's
probability of the actual value is needed: log2 in, log2 out (training/score.py's unit).
Fitting maximizes the log-likelihood with a small Gaussian prior on theta (a source that is
always right where valid would otherwise have no finite optimum): full-batch Adam over a
Numba loss/gradient kernel.

    python -m training.mixture MODEL DATA_DIR [--train-tunes 30 --val-tunes 20 --seconds 60]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from numba import njit

from engine.candidates import NUM_BUCKETS, NUM_SOURCES, SOURCES, tune_candidates
from sidlive.frames import NUM_REGS, PAL_FRAME_RATE_HZ
from training.baseline import ChangeModel
from training.dataset import FrameStore, load_index, split
from training.scorers import load_scorer

MIX_SOURCES = SOURCES + ("prev",)
NUM_MIX = NUM_SOURCES + 1  # 9
S_PREV = NUM_SOURCES
LOG2E = 1.0 / math.log(2.0)
MIN_LOG2P = -1000.0  # model log2-probs are clipped here (2^-1000 is still a float64)


@dataclasses.dataclass
class MixInputs:
    """Per frame and register: the 9 sources' values, valid flags and buckets, each (N, 9, 25) uint8."""

    vals: np.ndarray
    valid: np.ndarray
    bucket: np.ndarray

    def __len__(self) -> int:
        return len(self.vals)

    @classmethod
    def concat(cls, parts: list["MixInputs"]) -> "MixInputs":
        """Frames of several tunes one after another."""
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("vals", "valid", "bucket")))


def mixture_inputs(regs: np.ndarray) -> MixInputs:
    """The sources for every frame of regs (N, 25) uint8 given the frames before it, the
    first given an all-zero frame (as the scorers see a tune)."""
    regs = np.asarray(regs, np.uint8)
    seq = np.concatenate([np.zeros((1, NUM_REGS), np.uint8), regs])  # (N+1, 25)
    v8, ok8, b8 = tune_candidates(seq)  # (N, 8, 25): row t predicts seq[t+1] = regs[t]
    n = len(regs)
    vals = np.concatenate([v8, seq[:n, None, :]], axis=1)  # PREV = seq[t]
    valid = np.concatenate([ok8, np.ones((n, 1, NUM_REGS), np.uint8)], axis=1)
    bucket = np.concatenate([b8, np.zeros((n, 1, NUM_REGS), np.uint8)], axis=1)
    return MixInputs(vals, valid, bucket)


@dataclasses.dataclass
class MixtureWeights:
    """log a_model (25,) and log a (25, 9 sources, 7 buckets), natural log."""

    log_model: np.ndarray
    log_source: np.ndarray

    def __post_init__(self):
        self.log_model = np.asarray(self.log_model, np.float64)
        self.log_source = np.asarray(self.log_source, np.float64)
        want = ((NUM_REGS,), (NUM_REGS, NUM_MIX, NUM_BUCKETS))
        if (self.log_model.shape, self.log_source.shape) != want:
            raise ValueError(f"mixture weights have shapes {self.log_model.shape}, {self.log_source.shape}; "
                             f"expected {want[0]}, {want[1]}")
        if not (np.isfinite(self.log_model).all() and np.isfinite(self.log_source).all()):
            raise ValueError("mixture weights must be finite")

    @classmethod
    def zeros(cls) -> "MixtureWeights":
        """All weights 1."""
        return cls(np.zeros(NUM_REGS), np.zeros((NUM_REGS, NUM_MIX, NUM_BUCKETS)))

    def save(self, path: str | Path) -> None:
        """Write an .npz with log_model and log_source."""
        np.savez(path, log_model=self.log_model, log_source=self.log_source)

    @classmethod
    def load(cls, path: str | Path) -> "MixtureWeights":
        """Read save()'s .npz."""
        try:
            z = np.load(path)
            return cls(z["log_model"], z["log_source"])
        except (OSError, KeyError, ValueError) as e:
            raise ValueError(f"{path}: not a mixture-weights .npz with log_model (25,) and "
                             f"log_source (25, {NUM_MIX}, {NUM_BUCKETS}): {e}") from None

    def to_dict(self) -> dict:
        """JSON-able: {"sources": names, "log_model": [25], "log_source": [25][9][7]}."""
        return {"sources": list(MIX_SOURCES), "log_model": self.log_model.tolist(),
                "log_source": self.log_source.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "MixtureWeights":
        """Inverse of to_dict (the source order must match); ValueError saying what is missing or wrong."""
        if not isinstance(d, dict) or not {"log_model", "log_source"} <= set(d):
            raise ValueError("expected an object with log_model and log_source")
        sources = d.get("sources", MIX_SOURCES)
        if not isinstance(sources, (list, tuple)) or list(sources) != list(MIX_SOURCES):
            raise ValueError(f"mixture sources {str(sources)[:200]} differ from this build's {list(MIX_SOURCES)}")
        try:
            return cls(np.array(d["log_model"], np.float64), np.array(d["log_source"], np.float64))
        except TypeError:
            raise ValueError("log_model and log_source must be arrays of numbers") from None


@njit(cache=True, nogil=True)
def _mix(a_model, a, pm, vals, valid, bucket, actual, out_logp):
    """Natural log p of actual (N, 25) under the mixture into out_logp (N, 25)."""
    n, n_src, n_regs = vals.shape
    for t in range(n):
        for r in range(n_regs):
            y = actual[t, r]
            num = a_model[r] * pm[t, r]
            den = a_model[r]
            for k in range(n_src):
                if valid[t, k, r]:
                    w = a[r, k, bucket[t, k, r]]
                    den += w
                    if vals[t, k, r] == y:
                        num += w
            out_logp[t, r] = math.log(num / den)


def _model_p(model_log2p: np.ndarray) -> np.ndarray:
    return np.exp2(np.maximum(np.asarray(model_log2p, np.float64), MIN_LOG2P))  # (N, 25)


def _check(model_log2p, inputs: MixInputs, actual):
    n = len(inputs)
    if np.shape(model_log2p) != (n, NUM_REGS) or np.shape(actual) != (n, NUM_REGS):
        raise ValueError(f"model_log2p and actual must have shape ({n}, {NUM_REGS}) like the inputs' "
                         f"(N, 9, 25), got {np.shape(model_log2p)}, {np.shape(actual)}")


def mixture_logprobs(weights: MixtureWeights, model_log2p: np.ndarray, inputs: MixInputs,
                     actual: np.ndarray) -> np.ndarray:
    """log2 p of actual (N, 25) uint8 under the mixture; model_log2p (N, 25): the model's
    log2 p of the actual values."""
    _check(model_log2p, inputs, actual)
    out = np.empty((len(inputs), NUM_REGS))
    _mix(np.exp(weights.log_model), np.exp(weights.log_source), _model_p(model_log2p), inputs.vals,
         inputs.valid, inputs.bucket, np.asarray(actual, np.uint8), out)
    return out * LOG2E


PM_BINS_PER_BIT = 8  # the fit merges entries whose model probabilities are within 1/8 bit
PM_MAX_BITS = 60


def compress(model_log2p: np.ndarray, inputs: MixInputs, actual: np.ndarray):
    """Merge the (frame, register) entries the fit cannot tell apart: same register, same
    sources valid with the same buckets and the same hits, model log2-probability in the same
    1/8-bit bin (or any, when no source hits: then the model term is a constant).
    Returns reg (G,) int64, state (G, 9) uint8 (0 invalid, 1 + bucket a miss, 8 + bucket a
    hit), pm (G,) float64 (the group's mean model probability), count (G,) float64."""
    _check(model_log2p, inputs, actual)
    n = len(inputs)
    hit = (inputs.vals == np.asarray(actual, np.uint8)[:, None, :]) & (inputs.valid == 1)  # (N, 9, 25)
    state = (inputs.valid * (1 + inputs.bucket + 7 * hit)).transpose(0, 2, 1).reshape(n * NUM_REGS, NUM_MIX)
    lp = np.maximum(np.asarray(model_log2p, np.float64), -PM_MAX_BITS).ravel()  # (E,)
    pm_bin = np.where(hit.any(1).ravel(), np.rint(-lp * PM_BINS_PER_BIT), 0).astype(np.int64)
    key = np.tile(np.arange(NUM_REGS, dtype=np.int64), n)
    for k in range(NUM_MIX):
        key = (key << 4) | state[:, k]
    key = (key << 9) | pm_bin  # 5 + 36 + 9 bits
    _, first, inv, count = np.unique(key, return_index=True, return_inverse=True, return_counts=True)
    pm = np.bincount(inv, weights=np.exp2(lp)) / count
    return first % NUM_REGS, state[first], pm, count.astype(np.float64)


@njit(cache=True, nogil=True)
def _fit_step(a_model, a, reg, state, pm, count, g_model, g):
    """Summed count * log p over the groups of `compress`, and its gradient w.r.t. theta into
    g_model (25,) and g (25, 9, 7)."""
    g_model[:] = 0.0
    g[:] = 0.0
    n_src = state.shape[1]
    total = 0.0
    for i in range(reg.shape[0]):
        r = reg[i]
        num = a_model[r] * pm[i]
        den = a_model[r]
        for k in range(n_src):
            s = state[i, k]
            if s > 0:
                w = a[r, k, (s - 1) % 7]
                den += w
                if s >= 8:
                    num += w
        total += count[i] * math.log(num / den)
        inv_num, inv_den = count[i] / num, count[i] / den
        g_model[r] += a_model[r] * (pm[i] * inv_num - inv_den)
        for k in range(n_src):
            s = state[i, k]
            if s > 0:
                b = (s - 1) % 7
                g[r, k, b] += a[r, k, b] * ((inv_num if s >= 8 else 0.0) - inv_den)
    return total


def fit_mixture(model_log2p: np.ndarray, inputs: MixInputs, actual: np.ndarray, steps: int = 300,
                lr: float = 0.1, prior: float = 1.0, init: MixtureWeights | None = None,
                log=None) -> MixtureWeights:
    """Maximize sum log p(actual) - prior/2 * |theta|^2 by full-batch Adam over the merged
    entries of `compress`; model_log2p (N, 25) log2 p of the actual values under the model,
    inputs (N, 9, 25), actual (N, 25) uint8."""
    if steps < 0 or lr <= 0 or prior < 0:
        raise ValueError(f"steps must be >= 0, lr > 0, prior >= 0; got {steps}, {lr}, {prior}")
    reg, state, pm, count = compress(model_log2p, inputs, actual)
    if log is not None:
        log(f"fit: {len(inputs) * NUM_REGS} entries in {len(reg)} groups")
    w = init or MixtureWeights.zeros()
    theta = np.concatenate([w.log_model, w.log_source.ravel()])  # (1600,)
    g_model, g = np.zeros(NUM_REGS), np.zeros((NUM_REGS, NUM_MIX, NUM_BUCKETS))
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    n_entries = max(count.sum(), 1.0)
    for i in range(1, steps + 1):
        a_model, a = np.exp(theta[:NUM_REGS]), np.exp(theta[NUM_REGS:]).reshape(g.shape)
        ll = _fit_step(a_model, a, reg, state, pm, count, g_model, g)
        grad = -(np.concatenate([g_model, g.ravel()]) - prior * theta) / n_entries  # minimize
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad * grad
        theta -= lr * (m / (1 - 0.9 ** i)) / (np.sqrt(v / (1 - 0.999 ** i)) + 1e-12)
        if log is not None and (i % 50 == 0 or i == steps):
            log(f"step {i}: {-ll * LOG2E / max(len(inputs), 1):.3f} bits/frame (merged entries)")
    return MixtureWeights(theta[:NUM_REGS], theta[NUM_REGS:].reshape(g.shape))


class MixtureScorer:
    """A scorer (training/score.py's `logprobs(regs, composer)`, log2) mixing a base scorer
    with the repeat candidates."""

    def __init__(self, base, weights: MixtureWeights):
        self.base, self.weights = base, weights

    def composer_known(self, name: str) -> bool:
        """As the base scorer (True when it has no composers)."""
        return self.base.composer_known(name) if hasattr(self.base, "composer_known") else True

    def logprobs(self, regs: np.ndarray, composer: str | None = None) -> np.ndarray:
        """log2 p of every register of regs (N, 25) given the frames before (zeros before frame 0)."""
        regs = np.asarray(regs, np.uint8)
        lp = self.base.logprobs(regs, composer)
        return mixture_logprobs(self.weights, lp, mixture_inputs(regs), regs)


# ---------------------------------------------------------------------------- measurement

def _bits_per_frame(log2p: np.ndarray) -> float:
    return float(-log2p.sum() / max(len(log2p), 1))


def _scored(scorer, data_dir, pool, n: int, seconds: float, rng, name: str, log) -> tuple:
    """(model log2p, mixture inputs, frames) of n tunes drawn from pool, each cut to `seconds`."""
    if len(pool) < n:
        raise ValueError(f"{data_dir}: the {name} split has {len(pool)} tunes, fewer than the {n} asked for")
    store = FrameStore(data_dir)
    max_frames = max(1, int(round(seconds * PAL_FRAME_RATE_HZ)))
    lps, inps, regs = [], [], []
    t0 = time.perf_counter()
    for i in rng.choice(len(pool), size=n, replace=False):
        r = np.ascontiguousarray(store.frames(pool[i])[:max_frames])
        lps.append(scorer.logprobs(r, pool[i].composer))
        inps.append(mixture_inputs(r))
        regs.append(r)
    out = (np.concatenate(lps), MixInputs.concat(inps), np.concatenate(regs))
    if log:
        log(f"{name}: {n} tunes, {len(out[2])} frames scored in {time.perf_counter() - t0:.0f} s")
    return out


def fit_on_data(scorer, data_dir: str | Path, n_tunes: int = 30, seconds: float = 60.0, val_permille: int = 50,
                seed: int = 1337, steps: int = 300, log=print) -> MixtureWeights:
    """Mixture weights over `scorer` fitted on n_tunes training tunes of a collection dump."""
    train, _ = split(load_index(data_dir), val_permille, seed)
    data = _scored(scorer, data_dir, train, n_tunes, seconds, np.random.default_rng(seed), "fit", log)
    return fit_mixture(*data, steps=steps, log=log)


def measure(scorer, data_dir: str | Path, train_tunes: int = 30, val_tunes: int = 20, seconds: float = 60.0,
            val_permille: int = 50, seed: int = 1337, steps: int = 300, log=print) -> tuple[dict, MixtureWeights]:
    """Fit the mixture over `scorer` on train_tunes training tunes and score val_tunes held-back
    ones (training.dataset.split), each cut to `seconds`; bits/frame of model and mixture."""
    train, val = split(load_index(data_dir), val_permille, seed)
    rng = np.random.default_rng(seed)
    sets = {name: _scored(scorer, data_dir, pool, n, seconds, rng, name, log)
            for name, pool, n in (("train", train, train_tunes), ("val", val, val_tunes))}
    t0 = time.perf_counter()
    weights = fit_mixture(*sets["train"], steps=steps, log=log)
    report = {"fit_seconds": round(time.perf_counter() - t0, 2)}
    for name, (lp, inp, regs) in sets.items():
        report[name] = {"frames": len(regs), "model_bits_per_frame": _bits_per_frame(lp),
                        "mixture_bits_per_frame": _bits_per_frame(mixture_logprobs(weights, lp, inp, regs))}
    return report, weights


def main(argv: list[str] | None = None) -> int:
    """`python -m training.mixture`: fit the mixture on training tunes, score validation tunes."""
    ap = argparse.ArgumentParser(prog="python -m training.mixture", description=__doc__.split("\n")[0])
    ap.add_argument("model", help="checkpoint (.pt) or .sidm, or 'baseline:FILE.npz' for a change model")
    ap.add_argument("data_dir", help="collection dump (index.jsonl + shards)")
    ap.add_argument("--train-tunes", type=int, default=30)
    ap.add_argument("--val-tunes", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60.0, help="frames per tune (default 60 s)")
    ap.add_argument("--steps", type=int, default=300, help="Adam steps (default 300)")
    ap.add_argument("--val-permille", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("-o", "--output", help="write the fitted weights (.npz)")
    args = ap.parse_args(argv)
    try:
        if args.model.startswith("baseline:"):
            scorer = ChangeModel.load(args.model.split(":", 1)[1])
        else:
            scorer = load_scorer(args.model)[0]
        report, weights = measure(scorer, args.data_dir, args.train_tunes, args.val_tunes, args.seconds,
                                  args.val_permille, args.seed, args.steps,
                                  log=lambda m: print(m, file=sys.stderr))
    except (ValueError, OSError) as e:
        print(f"mixture: {e}", file=sys.stderr)
        return 2
    if args.output:
        weights.save(args.output)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
