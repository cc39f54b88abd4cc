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

from engine.candidates import candidate_frame
from engine.config import POINTER_FEATURES
from engine.matches import NUM_BUCKETS, NUM_GROUPS
from engine.matchstate import MatchState
from engine.generator import DEFAULT_MAX_SILENCE_S
from engine.silence import CANONICAL, silence_frames, trailing_silence, voice_draw, wake_up_rules, window_start
from training.model import SidModel, rope_tables
from training.pointer import MAX_BUCKET, Cands, candidate_input, hit_token

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


def truncated(logits: np.ndarray, temperature: float, top_k: int, top_p: float) -> np.ndarray:
    """exp(logits / temperature - max), unnormalized float64, after top-k then top-p (temperature > 0)."""
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
    return p


def pick(logits: np.ndarray, temperature: float, top_k: int, top_p: float, u: float,
         allow: np.ndarray | None = None) -> int:
    """Choose one byte from 256 logits (see the module docstring for the order); allow (256,)
    bool restricts the choice (the silence guard)."""
    if allow is not None:
        p = truncated(logits, temperature, top_k, top_p) * allow if temperature > 0 else np.zeros(logits.size)
        if np.cumsum(p)[-1] == 0.0:
            return int(np.argmax(np.where(allow, logits, -np.inf)))
    elif temperature <= 0:
        return int(np.argmax(logits))
    else:
        p = truncated(logits, temperature, top_k, top_p)
    cum = np.cumsum(p)
    t = u * cum[-1]
    v = int(np.searchsorted(cum, t, side="right"))  # first v with t < cum[v]
    return min(v, int(np.nonzero(p)[0][-1]))


class GlobalCache:
    """Per-layer K/V of the last `capacity` frames: lists of (H, hd) tensors; for pointer models
    also the match state and the next frame's candidates (cv, ck, cb (8, 25), gb (9,))."""

    def __init__(self, n_layers: int, capacity: int, pointer: bool = False):
        self.k = [[] for _ in range(n_layers)]
        self.v = [[] for _ in range(n_layers)]
        self.capacity = capacity
        self.pos = 0
        self.matches = MatchState(table_bits=16, history_frames=1 << 16) if pointer else None
        self.cand = tuple(np.zeros((8, 25), np.uint8) for _ in range(3)) + (np.zeros(NUM_GROUPS, np.uint8),)

    def push_candidates(self, frame: np.ndarray) -> None:
        """The frame joins the match state; the candidates for the frame after it."""
        ptr, gb = self.matches.push(frame)
        cv, ck, cb, _ = self.cand
        candidate_frame(self.matches.hist, self.matches.st, np.int64(self.matches.length - 1), ptr, gb, cv, ck, cb)
        self.cand = (cv, ck, cb, gb)


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
    if cfg.pointer:
        cache.push_candidates(frame)
        cv, ck, cb, gb = cache.cand
        c = Cands.from_numpy(cv[None, None], ck[None, None], cb[None, None], gb[None, None])
        fr = torch.as_tensor(frame.astype(np.int64))[None, None]
        x = x + candidate_input(model.in_emb.weight, model.cand_scale, model.len_emb.weight, model.reg_base, fr, c)
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
def readout_parts(model: SidModel, u: torch.Tensor, reg: int, prev: int) -> tuple:
    """(hn, s, z, lse): the readout features, the copy logit s = <hn, ro_same[reg]> + copy_bonus[reg]
    (float32 -> float), z = ro_out(hn) + ro_bias[reg] (float64, -inf at prev) and its
    log-sum-exp (the sum sequential over the values ascending)."""
    hn = model.readout_hidden(u)
    s = float((hn * model.ro_same[reg]).sum() + model.copy_bonus[reg])
    V = model.cfg.vocab
    z = (model.ro_out(hn) + model.ro_bias[reg * V:(reg + 1) * V]).numpy().astype(np.float64)
    z[prev] = -np.inf
    m = z.max()
    return hn, s, z, m + math.log(np.cumsum(np.exp(z - m))[-1])


@torch.no_grad()
def readout_one(model: SidModel, u: torch.Tensor, reg: int, prev: int) -> np.ndarray:
    """The step's 256 log-probs (float64) for register `reg` from u = state + query embedding (dl,).

    s = <hn, ro_same[reg]> + copy_bonus[reg] and z = ro_out(hn) + ro_bias[reg] in float32; then in
    float64: lp[prev] = log sigmoid(s); lp[v] = log sigmoid(-s) + z[v] - m - log(sum_{w != prev}
    exp(z[w] - m)) with m = max_{w != prev} z[w], the sum sequential over w ascending.
    """
    _, s, z, lse = readout_parts(model, u, reg, prev)
    lp = _log_sigmoid(-s) + (z - lse)
    lp[prev] = _log_sigmoid(s)
    return lp


def _logaddexp(a: float, b: float) -> float:
    if a == -np.inf:
        return b
    if b == -np.inf:
        return a
    return max(a, b) + math.log1p(math.exp(-abs(a - b)))


@torch.no_grad()
def readout_pointer(model: SidModel, u: torch.Tensor, reg: int, prev: int, cand, repetition: float = 1.0) -> np.ndarray:
    """The pointer model's 256 log-probs (float64): p(v) = pi_prev [v == prev] + sum_s pi_s
    [c_s == v] + pi_gen q(v) (training/pointer.py), in the engine's order of operations:
    gates g = (s, g_0..g_7 (-inf: invalid, or a match source at repetition 0), 0), m = max g,
    tot = sum exp(g - m) in that order; lp = log pi_gen + z - lse, lp[prev] = log pi_prev,
    then lp[c_s] = logaddexp(lp[c_s], log pi_s) for s ascending."""
    cv, ck, cb = cand[:3]
    hn, s, z, lse = readout_parts(model, u, reg, prev)
    S = cv.shape[0]
    g = np.full(S + 2, -np.inf)
    g[0], g[S + 1] = s, 0.0
    for k in range(S):
        if ck[k, reg] and (k >= 4 or repetition > 0):
            g[1 + k] = float((hn * model.gate_w[k]).sum() + model.gate_b[(reg * S + k) * NUM_BUCKETS + int(cb[k, reg])])
            if k < 4 and repetition != 1.0:
                g[1 + k] += math.log(repetition)
    m = g.max()
    log_tot = math.log(np.cumsum(np.exp(g - m))[-1])
    lp = (g[S + 1] - m - log_tot) + (z - lse)
    lp[prev] = g[0] - m - log_tot
    for k in range(S):
        if g[1 + k] != -np.inf:
            c = int(cv[k, reg])
            lp[c] = _logaddexp(lp[c], g[1 + k] - m - log_tot)
    return lp


def _features(cand, reg: int, p: int, hits, misses) -> torch.Tensor:
    """The step's candidate features (40,) float32, source-major (training/pointer.py)."""
    cv, ck, cb = cand[:3]
    f = np.zeros((cv.shape[0], POINTER_FEATURES), np.float32)
    for s in range(cv.shape[0]):
        ok = bool(ck[s, reg])
        f[s] = (float(ok), float(ok and cv[s, reg] == p), np.float32(cb[s, reg]) / np.float32(MAX_BUCKET),
                math.log1p(hits[s]), math.log1p(misses[s]))
    return torch.from_numpy(f.reshape(-1))


@torch.no_grad()
def local_frame(model: SidModel, h: torch.Tensor, prev: np.ndarray, choose, cand=None,
                repetition: float = 1.0) -> np.ndarray:
    """Write the next frame register by register. choose(k, reg, logits) -> byte. cand: the
    frame's candidates (pointer models: GlobalCache.cand)."""
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
    hits, misses = np.zeros(8, np.int64), np.zeros(8, np.int64)
    for k, reg in enumerate(cfg.write_order):
        p = int(prev[reg])
        q_emb = model.prev_emb.weight[reg * V + p]
        if cfg.pointer:
            q_emb = q_emb + model.cand_feat(_features(cand, reg, p, hits, misses))
            lp = readout_pointer(model, state + q_emb, reg, p, cand, repetition)
        else:
            lp = readout_one(model, state + q_emb, reg, p)
        v = int(choose(k, reg, lp))
        out[reg] = v
        tok = model.val_emb.weight[reg * V + v] + q_emb
        if cfg.pointer:
            tok = hit_token(cand, reg, v, hits, misses, model.hit_emb, tok)
        if cfg.local_events == "all" or v != p:
            state = push(tok)
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
             force_mask=None, force_values=None, repetition: float = 1.0,
             max_silence_s: float = DEFAULT_MAX_SILENCE_S) -> np.ndarray:
    """Generate n_frames (n, 25) uint8 after `prompt` (P, 25) uint8; no prompt = one all-zero frame.
    Values stay canonical (engine.silence.CANONICAL). The silence guard (max_silence_s > 0):
    when the last max_silence_s of the timeline (judged from engine.silence.window_start on)
    are silent, the frame must start a note (engine.silence.wake_up_rules; the restricted
    registers' values still come from the model)."""
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
    limit = silence_frames(max_silence_s)
    cache = GlobalCache(cfg.n_layers_global, cfg.context_frames, cfg.pointer)
    for f in prompt[:-1]:
        global_step(model, f, comp, cache)
    cur = prompt[-1]
    out = np.zeros((n_frames, cfg.n_regs), np.uint8)
    for i in range(n_frames):
        h = global_step(model, cur, comp, cache)
        rules = None
        if limit:
            t = len(prompt) + i
            tail = np.concatenate([prompt, out[:i]])[window_start(t):]
            if trailing_silence(tail) >= limit:
                rules = wake_up_rules(tail[-1], voice_draw(seed, i), None if fmask is None else fmask[i])

        def choose(k, reg, logits, i=i, rules=rules):
            if fmask is not None and fmask[i, reg]:
                return int(fvals[i, reg])
            allow = CANONICAL[reg] if rules is None else CANONICAL[reg] & rules[reg]
            allow = None if allow.all() else allow
            return pick(logits, temperature, top_k, top_p, uniform(seed, i * cfg.n_regs + k), allow)

        cur = local_frame(model, h, cur, choose, cache.cand, repetition)
        out[i] = cur
    return out


@torch.no_grad()
def incremental_logprobs(model: SidModel, frames: np.ndarray, composer: int = 0) -> np.ndarray:
    """Teacher-forced log2-probs (N, 25) of frames[1:] given frames[:-1], through the sampler's path."""
    model.eval()
    cfg = model.cfg
    cache = GlobalCache(cfg.n_layers_global, cfg.context_frames, cfg.pointer)
    out = np.zeros((len(frames) - 1, cfg.n_regs))
    for i in range(len(frames) - 1):
        h = global_step(model, frames[i], composer, cache)
        tgt = frames[i + 1]

        def choose(k, reg, logits, i=i):
            out[i, reg] = logits[tgt[reg]] / math.log(2)
            return int(tgt[reg])

        local_frame(model, h, frames[i], choose, cache.cand)
    return out
