"""Reference sampler (PyTorch, float32): the behaviour the Numba engine must reproduce.

Per generated frame:
  1. global step: the newest frame (the last prompt frame, then each generated frame) goes
     through the global model at absolute position p (0 for the first prompt frame) with a
     KV cache holding at most `context_frames` entries; when full the oldest is dropped
     (a sliding window; rotary angles use absolute positions, computed in float64).
  2. local decoder over registers in `write_order`, k = 0..24, register r = write_order[k]:
       logits (float64, 256)  = readout_one(state after the last event, r, prev[r]): the
                                step's normalized log-probs, the copy path (p(no change))
                                already inside at prev[r]
       forced value           if force_mask[r]: v = force_values[r] (no sampling)
       temperature            if temperature == 0: v = argmax (lowest index on ties)
                              else z = float64(logits) / temperature
       top-k                  if 0 < top_k < 256: z[z < (k-th largest z)] = -inf
       softmax                p = exp(z - max z)   (unnormalized, float64)
       top-p                  if 0 < top_p < 1: sort p descending (ties: lower value first),
                              keep the shortest prefix whose cumulative sum >= top_p * sum(p)
       sample                 u = uniform(seed, frame_index * 25 + k); t = u * cumsum(p)[-1];
                              v = the first value (0..255 ascending) with t < cumsum(p)[v]
     then, if local_events == "all" or v != prev[r], the event token for (r, v) enters the
     local decoder.
  All sums are sequential in index order (np.cumsum), so a loop reproduces them exactly.
RNG: counter-based SplitMix64; `frame_index` counts generated frames from 0, every
(frame, register) step owns one counter whether or not it samples.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from training.model import SidModel, rope_tables

MASK64 = (1 << 64) - 1


def splitmix64(seed: int, counter: int) -> int:
    """Output `counter` of SplitMix64 seeded with `seed` (both taken mod 2^64)."""
    z = (seed + (counter + 1) * 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def uniform(seed: int, counter: int) -> float:
    """float64 in [0, 1): the top 53 bits of splitmix64 times 2^-53."""
    return (splitmix64(seed & MASK64, counter) >> 11) * (1.0 / (1 << 53))


def pick(logits: np.ndarray, temperature: float, top_k: int, top_p: float, u: float) -> int:
    """Choose one byte from 256 logits (see the module docstring for the order)."""
    if temperature <= 0:
        return int(np.argmax(logits))
    z = logits.astype(np.float64) / float(temperature)
    if 0 < top_k < z.size:
        kth = np.sort(z)[::-1][top_k - 1]
        z = np.where(z < kth, -np.inf, z)
    p = np.exp(z - z.max())
    if 0 < top_p < 1:
        order = np.argsort(-p, kind="stable")
        cum = np.cumsum(p[order])
        m = int(np.searchsorted(cum, top_p * cum[-1], side="left")) + 1  # first index with cum >= top_p*sum
        keep = np.zeros_like(p)
        keep[order[:m]] = p[order[:m]]
        p = keep
    cum = np.cumsum(p)
    t = u * cum[-1]
    v = int(np.searchsorted(cum, t, side="right"))  # first v with t < cum[v]
    return min(v, int(np.nonzero(p)[0][-1]))


class GlobalCache:
    """Per-layer K/V of the last `capacity` frames: lists of (H, hd) tensors."""

    def __init__(self, n_layers: int, capacity: int):
        self.k = [[] for _ in range(n_layers)]
        self.v = [[] for _ in range(n_layers)]
        self.capacity = capacity
        self.pos = 0


def _attend(q: torch.Tensor, ks: list, vs: list) -> torch.Tensor:
    """q (1, H, 1, hd); ks/vs lists of (H, hd) -> (1, H, 1, hd)."""
    K = torch.stack(ks, 1)  # (H, S, hd)
    V = torch.stack(vs, 1)
    s = (q[0] @ K.transpose(1, 2)) * (1.0 / math.sqrt(q.shape[-1]))  # (H, 1, S)
    e = torch.exp(s - s.amax(-1, keepdim=True))  # (torch.softmax spins up threads on tiny inputs)
    return ((e / e.sum(-1, keepdim=True)) @ V)[None]


@torch.no_grad()
def global_step(model: SidModel, frame: np.ndarray, composer: int, cache: GlobalCache) -> torch.Tensor:
    """Feed one frame (25,) uint8 at position cache.pos; returns the final-normed state (dg,)."""
    cfg = model.cfg
    idx = torch.as_tensor(frame.astype(np.int64)) + model.reg_base
    x = (model.in_emb.weight[idx].sum(0) + model.composer_emb.weight[composer]).view(1, 1, -1)
    cos, sin = rope_tables(np.array([cache.pos]), cfg.d_global // cfg.n_heads_global, cfg.rope_theta)
    for i, blk in enumerate(model.g):
        q, k, v = blk.qkv(x, cos, sin)  # (1, H, 1, hd)
        cache.k[i].append(k[0, :, 0])
        cache.v[i].append(v[0, :, 0])
        if len(cache.k[i]) > cache.capacity:
            del cache.k[i][0], cache.v[i][0]
        x = blk.finish(x, _attend(q, cache.k[i], cache.v[i]))
    cache.pos += 1
    return model.g_norm(x)[0, 0]


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


@torch.no_grad()
def readout_one(model: SidModel, u: torch.Tensor, reg: int, prev: int) -> np.ndarray:
    """The step's 256 log-probs (float64) for register `reg` from u = state + query embedding (dl,).

    s = <hn, ro_same[reg]> + copy_bonus[reg] and z = ro_out(hn) + ro_bias[reg] in float32; then in
    float64: lp[prev] = log sigmoid(s); lp[v] = log sigmoid(-s) + z[v] - m - log(sum_{w != prev}
    exp(z[w] - m)) with m = max_{w != prev} z[w], the sum sequential over w ascending.
    """
    hn = model.readout_hidden(u)
    s = float((hn * model.ro_same[reg]).sum() + model.copy_bonus[reg])
    V = model.cfg.vocab
    z = (model.ro_out(hn) + model.ro_bias[reg * V:(reg + 1) * V]).numpy().astype(np.float64)
    z[prev] = -np.inf
    m = z.max()
    lse = m + math.log(np.cumsum(np.exp(z - m))[-1])
    lp = _log_sigmoid(-s) + (z - lse)
    lp[prev] = _log_sigmoid(s)
    return lp


@torch.no_grad()
def local_frame(model: SidModel, h: torch.Tensor, prev: np.ndarray, choose) -> np.ndarray:
    """Write the next frame register by register. choose(k, reg, logits) -> byte."""
    cfg = model.cfg
    V = cfg.vocab
    ks = [[] for _ in model.l]
    vs = [[] for _ in model.l]

    def push(tok: torch.Tensor) -> torch.Tensor:
        x = tok.view(1, 1, -1)
        for i, blk in enumerate(model.l):
            q, k, v = blk.qkv(x)
            ks[i].append(k[0, :, 0])
            vs[i].append(v[0, :, 0])
            x = blk.finish(x, _attend(q, ks[i], vs[i]))
        return x[0, 0]

    state = push(model.g_to_local(h))
    out = prev.copy()
    for k, reg in enumerate(cfg.write_order):
        p = int(prev[reg])
        q_emb = model.prev_emb.weight[reg * V + p]
        v = int(choose(k, reg, readout_one(model, state + q_emb, reg, p)))
        out[reg] = v
        if cfg.local_events == "all" or v != p:
            state = push(model.val_emb.weight[reg * V + v] + q_emb)
    return out


def _force_rows(arr, n: int, dtype, name: str) -> np.ndarray | None:
    if arr is None:
        return None
    a = np.asarray(arr)
    if a.shape == (25,):
        a = np.broadcast_to(a, (n, 25))
    if a.shape != (n, 25):
        raise ValueError(f"{name} must have shape (25,) or ({n}, 25), got {a.shape}")
    return a.astype(dtype)


@torch.no_grad()
def generate(model: SidModel, prompt: np.ndarray | None, n_frames: int, composer: str | int | None = None,
             temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, seed: int = 0,
             force_mask=None, force_values=None) -> np.ndarray:
    """Generate n_frames (n, 25) uint8 after `prompt` (P, 25) uint8; no prompt = one all-zero frame."""
    model.eval()
    cfg = model.cfg
    if temperature < 0 or top_k < 0 or not (0 <= top_p <= 1):
        raise ValueError(f"temperature must be >= 0 (got {temperature}), top_k >= 0 (got {top_k}), "
                         f"top_p in 0..1 (got {top_p})")
    prompt = np.zeros((1, cfg.n_regs), np.uint8) if prompt is None or len(prompt) == 0 else np.asarray(prompt, np.uint8)
    if prompt.ndim != 2 or prompt.shape[1] != cfg.n_regs:
        raise ValueError(f"prompt must have shape (P, {cfg.n_regs}), got {prompt.shape}")
    comp = composer if isinstance(composer, int) else cfg.composer_index(composer)
    fmask = _force_rows(force_mask, n_frames, bool, "force_mask")
    fvals = _force_rows(force_values, n_frames, np.uint8, "force_values")
    if (fmask is None) != (fvals is None):
        raise ValueError("force_mask and force_values go together")
    cache = GlobalCache(cfg.n_layers_global, cfg.context_frames)
    for f in prompt[:-1]:
        global_step(model, f, comp, cache)
    cur = prompt[-1]
    out = np.zeros((n_frames, cfg.n_regs), np.uint8)
    for i in range(n_frames):
        h = global_step(model, cur, comp, cache)

        def choose(k, reg, logits, i=i):
            if fmask is not None and fmask[i, reg]:
                return int(fvals[i, reg])
            return pick(logits, temperature, top_k, top_p, uniform(seed, i * cfg.n_regs + k))

        cur = local_frame(model, h, cur, choose)
        out[i] = cur
    return out


@torch.no_grad()
def incremental_logprobs(model: SidModel, frames: np.ndarray, composer: int = 0) -> np.ndarray:
    """Teacher-forced log2-probs (N, 25) of frames[1:] given frames[:-1], through the sampler's path."""
    model.eval()
    cfg = model.cfg
    cache = GlobalCache(cfg.n_layers_global, cfg.context_frames)
    out = np.zeros((len(frames) - 1, cfg.n_regs))
    for i in range(len(frames) - 1):
        h = global_step(model, frames[i], composer, cache)
        tgt = frames[i + 1]

        def choose(k, reg, logits, i=i):
            out[i, reg] = logits[tgt[reg]] / math.log(2)
            return int(tgt[reg])

        local_frame(model, h, frames[i], choose)
    return out
