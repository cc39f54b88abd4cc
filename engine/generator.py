"""The engine's state API for the live daemon: prime, generate, roll back, reseed, reset.

    from engine.generator import Generator
    g = Generator("presets/models/default.sidm", seed=7391738265, temperature=0.9)
    g.prime(prompt_regs)              # (P, 25) uint8
    frames = g.generate(700)          # (700, 25) uint8; one nogil Numba call
    g.rollback(10); g.generate(10)    # the same 10 frames again (same seed and settings)

Timeline: the frames so far (prompt and generated), `length` of them. Generating frame t
feeds frame t-1 through the global model at absolute position t-1 (rotary angles in float64
from the absolute position; attention over the last `context_frames` positions, a sliding
window with no recompute), then writes frame t register by register with the local decoder.
With the same model, prompt, seed and settings, `reset(); prime(P); generate(n)` equals
training.sample.generate(model, P, n, ...) frame for frame (an empty timeline is primed
with one all-zero frame, as there).

RNG: frame t uses counters (t - origin) * 25 + k, where `origin` is the timeline length at
the first generate() after the timeline was empty (reset, construction) or after reseed():
from there on the frames are those of training.sample.generate(model, timeline, n, seed=...).
Frames appended later with prime() and rollbacks keep the origin (so a rollback regenerates
the same frames unless the settings or the seed changed). Runs are bit-identical for the same
model, prompt, settings and max_rollback_frames on the same machine (vectorised float32 sums
depend on the CPU's SIMD width and on where the K/V ring wraps).

Rollback: the global K/V ring holds context_frames + max_rollback_frames positions, so
`rollback_to(L)` is exact for any L >= 1 with L >= high - max_rollback_frames, where high is
the longest the timeline has been since reset (`min_length` says the current bound); it
costs O(1) (the ring rows past L are simply reused).

Thread safety: one generator thread calls prime/generate/rollback/reset; these hold a lock,
so a call from another thread waits until the current kernel call ends (between frames).
set_sampling / set_forced / reseed may come from any thread at any time: they are staged
and applied atomically at the start of the next generate/prime call, i.e. between frames.
The kernels release the GIL, so an audio thread and MIDI run beside generation.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from engine.frame import (MODE_SAMPLE, MODE_TEACHER, SF_LEN, SF_REP, SF_TEMP, SF_TOPP, ST_COMP, ST_FHI, ST_KHI, ST_LEN,
                          ST_N, ST_ORIGIN, ST_TOPK, feed_frames, run_frames)
from engine.matches import NUM_GROUPS
from engine.matchstate import MatchState
from engine.jit import ensure_compiled
from engine.kernels import SC_ROWS, SD_ROWS, SI_ROWS, scratch_width
from engine.silence import (CANONICAL, next_window_move, silence_frames, trailing_silence, voice_draw, wake_up_rules,
                            window_start)
from engine.weights import D_CAP, D_MAXTOK, EngineModel, load_model

MAX_TEMPERATURE = 1000.0
MIN_TEMPERATURE = 1e-3   # below this (but > 0) exp(lp / T) under/overflows; use 0 for greedy
DEFAULT_MAX_ROLLBACK = 256
MIN_REPETITION, MAX_REPETITION = 0.0, 4.0   # scales the match sources' gate weight (pointer models)
DEFAULT_MAX_SILENCE_S = 0.5    # the silence guard: a note starts after this much silence (0 = off)
MAX_MAX_SILENCE_S = 60.0


def check_sampling(temperature: float, top_k: int, top_p: float, repetition: float = 1.0,
                   max_silence_s: float = DEFAULT_MAX_SILENCE_S) -> None:
    """Raise ValueError unless temperature, top_k, top_p, repetition and max_silence_s are in their
    allowed ranges."""
    if not 0.0 <= max_silence_s <= MAX_MAX_SILENCE_S:
        raise ValueError(f"max_silence_s must be in 0..{MAX_MAX_SILENCE_S:g} seconds (0 = the model may stay "
                         f"silent), got {max_silence_s}")
    if not MIN_REPETITION <= repetition <= MAX_REPETITION:
        raise ValueError(f"repetition must be in {MIN_REPETITION:g}..{MAX_REPETITION:g} (0 = never copy from the "
                         f"history, 1 = as trained, 2 = loops tighter), got {repetition}")
    if not (temperature == 0 or MIN_TEMPERATURE <= temperature <= MAX_TEMPERATURE):
        raise ValueError(f"temperature must be 0 (greedy) or in {MIN_TEMPERATURE}..{MAX_TEMPERATURE}, got {temperature}")
    if not (isinstance(top_k, (int, np.integer)) and 0 <= top_k <= 256):
        raise ValueError(f"top_k must be an integer in 0..256 (0 = off), got {top_k!r}")
    if not 0.0 <= top_p <= 1.0:
        raise ValueError(f"top_p must be in 0..1 (0 or 1 = off), got {top_p}")


class Generator:
    """Frame generator over one model; all buffers are allocated here, none per frame."""

    def __init__(self, model: EngineModel | str | Path, *, max_rollback_frames: int = DEFAULT_MAX_ROLLBACK,
                 temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, seed: int = 0,
                 composer: str | int | None = None, repetition: float = 1.0,
                 max_silence_s: float = DEFAULT_MAX_SILENCE_S, log=print):
        self.model = model if isinstance(model, EngineModel) else load_model(model)
        if not 1 <= max_rollback_frames <= 1 << 20:
            raise ValueError(f"max_rollback_frames must be in 1..{1 << 20}, got {max_rollback_frames}")
        m, c = self.model, self.model.cfg
        self.cfg = c
        self.max_rollback_frames = int(max_rollback_frames)
        self.dims = m.dims(self.max_rollback_frames)
        cap = int(self.dims[D_CAP])
        self.capacity = cap
        Hg, Hl = c.n_heads_global, c.n_heads_local
        self.kc = np.zeros((c.n_layers_global, Hg, c.d_global // Hg, cap), np.float32)  # K^T ring per layer, head
        self.vc = np.zeros_like(self.kc)
        self.hist = np.zeros((cap, c.n_regs), np.uint8)
        tok = int(self.dims[D_MAXTOK])
        self.lk = np.zeros((c.n_layers_local, Hl, c.d_local // Hl, tok), np.float32)
        self.lv = np.zeros_like(self.lk)
        w = scratch_width(self.dims)
        self.sc = np.zeros((SC_ROWS, w), np.float32)
        self.sd = np.zeros((SD_ROWS, c.vocab), np.float64)
        self.si = np.zeros((SI_ROWS, c.vocab), np.int64)
        self.st = np.zeros(ST_LEN, np.int64)
        self.sf = np.zeros(SF_LEN, np.float64)
        self.seed_arr = np.zeros(1, np.uint64)
        self.fmask = np.zeros(c.n_regs, np.uint8)
        self.fvals = np.zeros(c.n_regs, np.uint8)
        self._no_teacher = np.zeros((0, c.n_regs), np.uint8)
        self._no_lp = np.zeros((0, c.n_regs), np.float64)
        self._no_logits = np.zeros((0, c.n_regs, c.vocab), np.float64)
        self._zero = np.zeros((1, c.n_regs), np.uint8)
        # pointer models: the match state over the whole timeline (an hour-long set fits) and
        # the next frame's candidates; a token state for the others (the kernels' signature)
        self.matches = (MatchState(max_rollback_frames=min(self.max_rollback_frames + 2, 1 << 16)) if c.pointer
                        else MatchState(history_frames=64, table_bits=4, max_rollback_frames=1))
        self.cand = (np.zeros((8, c.n_regs), np.uint8), np.zeros((8, c.n_regs), np.uint8),
                     np.zeros((8, c.n_regs), np.uint8), np.zeros(NUM_GROUPS, np.uint8),
                     np.full(NUM_GROUPS, -1, np.int64), np.zeros(8, np.int64), np.zeros(8, np.int64))
        self._mbase = self.matches.length     # match-state position of timeline frame 0
        self._lock = threading.RLock()
        self._pending: dict = {}
        self._pending_lock = threading.Lock()
        self._origin_pending = True
        # restricted registers and their allowed values: canonical values always (the pulse
        # width's and cutoff's unused bits stay clear), the silence guard's rules when it acts
        self.rules = CANONICAL.astype(np.uint8)
        self._canon_mask = (~CANONICAL).any(axis=1).astype(np.uint8)
        self.rmask = self._canon_mask.copy()
        self._max_silence_frames = 0
        self.max_silence_s = 0.0
        self.set_sampling(temperature=temperature, top_k=top_k, top_p=top_p, composer=composer, repetition=repetition,
                          max_silence_s=max_silence_s)
        self.reseed(seed)
        self._apply_pending()
        ensure_compiled(self, log)

    # ------------------------------------------------------------------ settings (any thread)

    def set_sampling(self, *, temperature: float | None = None, top_k: int | None = None,
                     top_p: float | None = None, composer: str | int | None = ...,
                     repetition: float | None = None, max_silence_s: float | None = None) -> None:
        """Stage sampling settings (None / omitted = unchanged); applied before the next frame.
        max_silence_s: the silence guard (see `generate`).
        composer: a name (unknown names mean "any"), an index, or None ("any"); it conditions
        the frames fed from then on (frames already in the K/V ring keep theirs)."""
        with self._pending_lock:
            cur = self._current_settings()
            t = cur["temperature"] if temperature is None else float(temperature)
            k = cur["top_k"] if top_k is None else top_k
            p = cur["top_p"] if top_p is None else float(top_p)
            r = cur["repetition"] if repetition is None else float(repetition)
            ms = cur["max_silence_s"] if max_silence_s is None else float(max_silence_s)
            check_sampling(t, k, p, r, ms)
            new = {"temperature": t, "top_k": int(k), "top_p": p, "repetition": r, "max_silence_s": ms}
            if composer is not ...:
                new["composer"] = self.composer_index(composer)
            self._pending.update(new)

    def set_forced(self, mask=None, values=None) -> None:
        """Force registers: mask (25,) bool, values (25,) 0..255; mask None clears all."""
        n = self.cfg.n_regs
        if mask is None:
            m, v = np.zeros(n, np.uint8), np.zeros(n, np.uint8)
        else:
            m = np.asarray(mask)
            v = np.zeros(n, np.int64) if values is None else np.asarray(values)
            if m.shape != (n,) or v.shape != (n,):
                raise ValueError(f"force mask and values must have shape ({n},), got {m.shape} and {v.shape}")
            if v.size and (v.min() < 0 or v.max() > 255):
                raise ValueError(f"force values must be in 0..255, got {v.min()}..{v.max()}")
            m, v = m.astype(bool).astype(np.uint8), v.astype(np.uint8)
        with self._pending_lock:
            self._pending["forced"] = (m, v)

    def reseed(self, seed: int) -> None:
        """New seed; the next generated frame uses counter 0 (see the module docstring)."""
        if not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        with self._pending_lock:
            self._pending["seed"] = int(seed) & ((1 << 64) - 1)

    def composer_index(self, composer: str | int | None) -> int:
        """Composer index for a name or an index (ValueError if out of range); unknown names give 0."""
        if isinstance(composer, (int, np.integer)) and not isinstance(composer, bool):
            if not 0 <= composer < len(self.cfg.composers):
                raise ValueError(f"composer index must be in 0..{len(self.cfg.composers) - 1}, got {composer}")
            return int(composer)
        return self.cfg.composer_index(composer)

    def _current_settings(self) -> dict:
        cur = {"temperature": float(self.sf[SF_TEMP]), "top_k": int(self.st[ST_TOPK]), "top_p": float(self.sf[SF_TOPP]),
               "repetition": float(self.sf[SF_REP]), "max_silence_s": self.max_silence_s}
        cur.update({k: v for k, v in self._pending.items() if k in cur})
        return cur

    @property
    def settings(self) -> dict:
        """The settings in force (not counting staged ones)."""
        return {"temperature": float(self.sf[SF_TEMP]), "top_k": int(self.st[ST_TOPK]),
                "top_p": float(self.sf[SF_TOPP]), "repetition": float(self.sf[SF_REP]),
                "max_silence_s": self.max_silence_s, "composer": self.cfg.composers[int(self.st[ST_COMP])],
                "seed": int(self.seed_arr[0]), "forced": self.fmask.astype(bool).copy(),
                "forced_values": self.fvals.copy()}

    def _apply_pending(self) -> None:
        with self._pending_lock:
            p, self._pending = self._pending, {}
        if "temperature" in p:
            self.sf[SF_TEMP], self.st[ST_TOPK], self.sf[SF_TOPP] = p["temperature"], p["top_k"], p["top_p"]
            self.sf[SF_REP] = p["repetition"]
            self.max_silence_s = p["max_silence_s"]
            self._max_silence_frames = silence_frames(self.max_silence_s)
        if "composer" in p:
            self.st[ST_COMP] = p["composer"]
        if "forced" in p:
            self.fmask[:], self.fvals[:] = p["forced"]
        if "seed" in p:
            self.seed_arr[0] = p["seed"]
            self._origin_pending = True

    # ------------------------------------------------------------------ timeline (generator thread)

    @property
    def length(self) -> int:
        """Frames in the timeline (prompt + appended + generated)."""
        return int(self.st[ST_N])

    @property
    def min_length(self) -> int:
        """The shortest timeline rollback_to() can still restore exactly."""
        W, cap = self.cfg.context_frames, self.capacity
        khi, fhi = int(self.st[ST_KHI]), int(self.st[ST_FHI])
        lo = max(1, fhi - cap + 1)          # frame L-1 must still be in the history ring
        if khi > cap:
            lo = max(lo, khi - cap + W)     # positions L-W .. L-2 must still be in the K/V ring
        if self.cfg.pointer:
            lo = max(lo, self.length - self.matches.undo_frames)   # the match state's undo log
        return min(lo, self.length) if self.length else 0

    def reset(self) -> None:
        """Empty the timeline (settings and seed stay)."""
        with self._lock:
            self.st[ST_N] = self.st[ST_KHI] = self.st[ST_FHI] = 0
            self._origin_pending = True
            self.matches.begin_tune()
            self._mbase = self.matches.length

    def prime(self, frames) -> None:
        """Append frames (P, 25) 0..255 as given, e.g. a prompt or frames played elsewhere."""
        fr = self._check_frames(frames, "prime frames")
        with self._lock:
            self._apply_pending()
            m = self.model
            feed_frames(m.W8, m.WF, m.lay, self.dims, m.fpar, self.kc, self.vc, self.hist, self.sc, self.st,
                        fr, len(fr), self.matches.arrays(), self.cand)

    def generate(self, n: int, out: np.ndarray | None = None) -> np.ndarray:
        """Generate n frames; returns out (n, 25) uint8 (allocated if not given).

        The silence guard: when the last max_silence_s of the timeline are silent
        (engine.silence), the next frame must start a note (engine.silence.wake_up_rules: the
        model still chooses every value, among those that start one); 0 turns it off."""
        out = self._out(n, out)
        with self._lock:
            self._apply_pending()
            if self._max_silence_frames == 0:
                return self._run(n, MODE_SAMPLE, self._no_teacher, out, self._no_lp, self._no_logits)
            if self.st[ST_N] == 0:
                self.prime(self._zero)
            i = 0
            while i < n:
                self._apply_pending()                 # settings staged meanwhile apply between frames
                limit = self._max_silence_frames
                if limit == 0:
                    self._run(n - i, MODE_SAMPLE, self._no_teacher, out[i:], self._no_lp, self._no_logits)
                    break
                t = self.length
                tail = self.last_frames(min(t - window_start(t), self._available()))
                quiet = trailing_silence(tail)
                if quiet < limit:
                    k = min(n - i, limit - quiet, next_window_move(t) - t)
                    self._run(k, MODE_SAMPLE, self._no_teacher, out[i:i + k], self._no_lp, self._no_logits)
                    i += k
                    continue
                index = 0 if self._origin_pending else self.length - int(self.st[ST_ORIGIN])
                self.rules[:] = wake_up_rules(tail[-1], voice_draw(int(self.seed_arr[0]), index), self.fmask != 0) \
                    & CANONICAL
                self.rmask[:] = (self.rules == 0).any(axis=1)
                try:
                    self._run(1, MODE_SAMPLE, self._no_teacher, out[i:i + 1], self._no_lp, self._no_logits, self.rmask)
                finally:
                    self.rules[:] = CANONICAL
                    self.rmask[:] = self._canon_mask
                i += 1
        return out

    def teacher_logprobs(self, frames, want_logits: bool = False):
        """Teacher-forced natural log-probs (F, 25) of frames appended to the timeline (register
        order), and with want_logits the full (F, 25, 256) log-prob vectors. Advances the timeline."""
        fr = self._check_frames(frames, "frames")
        lp = np.zeros((len(fr), self.cfg.n_regs), np.float64)
        logits = np.zeros((len(fr), self.cfg.n_regs, self.cfg.vocab)) if want_logits else self._no_logits
        self._run(len(fr), MODE_TEACHER, fr, None, lp, logits)
        return (lp, logits) if want_logits else lp

    def _out(self, n, out) -> np.ndarray:
        if not (isinstance(n, (int, np.integer)) and n >= 0):
            raise ValueError(f"number of frames must be an integer >= 0, got {n!r}")
        if out is None:
            return np.empty((n, self.cfg.n_regs), np.uint8)
        if out.shape != (n, self.cfg.n_regs) or out.dtype != np.uint8 or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous uint8 array of shape ({n}, {self.cfg.n_regs})")
        return out

    def _run(self, n, mode, teacher, out, out_lp, out_logits, rmask=None) -> np.ndarray:
        out = self._out(n, out)
        rmask = self._canon_mask if rmask is None else rmask
        with self._lock:
            self._apply_pending()
            if self.st[ST_N] == 0:
                self.prime(self._zero)
            if self._origin_pending:
                self.st[ST_ORIGIN] = self.st[ST_N]
                self._origin_pending = False
            m = self.model
            run_frames(m.W8, m.WF, m.lay, self.dims, m.fpar, m.order, self.kc, self.vc, self.hist, self.lk, self.lv,
                       self.sc, self.sd, self.si, self.st, self.sf, self.seed_arr, self.fmask, self.fvals,
                       n, mode, teacher, out, out_lp, out_logits, self.matches.arrays(), self.cand, rmask, self.rules)
        return out

    def rollback(self, n_frames: int) -> None:
        """Drop the last n_frames frames (see rollback_to)."""
        self.rollback_to(self.length - int(n_frames))

    def rollback_to(self, length: int) -> None:
        """Cut the timeline back to `length` frames, exactly as it was then (O(1))."""
        with self._lock:
            if not self.min_length <= length <= self.length or length < 1:
                raise ValueError(f"cannot roll back to {length} frames: the timeline has {self.length}, "
                                 f"the oldest restorable length is {self.min_length} "
                                 f"(max_rollback_frames={self.max_rollback_frames})")
            self.st[ST_N] = length
            if self.cfg.pointer:   # frames 0..length-2 went through the global model: keep those
                self.matches.rollback(self._mbase + length - 1)

    def _available(self) -> int:
        return self.length - max(0, int(self.st[ST_FHI]) - self.capacity)

    def last_frames(self, n: int) -> np.ndarray:
        """The timeline's last n frames (those still in the history ring of `capacity` rows)."""
        n_tl = self.length
        avail = self._available()
        if not 0 <= n <= avail:
            raise ValueError(f"last_frames: n must be in 0..{avail}, got {n}")
        rows = (np.arange(n_tl - n, n_tl) % self.capacity)
        return self.hist[rows].copy()

    def _check_frames(self, frames, what: str) -> np.ndarray:
        a = np.asarray(frames)
        if a.ndim != 2 or a.shape[1] != self.cfg.n_regs:
            raise ValueError(f"{what} must have shape (N, {self.cfg.n_regs}), got {a.shape}")
        if a.dtype != np.uint8:
            if a.size and (a.min() < 0 or a.max() > 255):
                raise ValueError(f"{what}: values must be in 0..255")
            a = a.astype(np.uint8)
        return np.ascontiguousarray(a)

    def warm_up(self) -> None:
        """Call both kernels on zero frames: compiles them (or loads them from the cache)."""
        m = self.model
        feed_frames(m.W8, m.WF, m.lay, self.dims, m.fpar, self.kc, self.vc, self.hist, self.sc, self.st,
                    self._zero, 0, self.matches.arrays(), self.cand)
        run_frames(m.W8, m.WF, m.lay, self.dims, m.fpar, m.order, self.kc, self.vc, self.hist, self.lk, self.lv,
                   self.sc, self.sd, self.si, self.st, self.sf, self.seed_arr, self.fmask, self.fvals,
                   0, MODE_SAMPLE, self._no_teacher, self._zero[:0], self._no_lp, self._no_logits,
                   self.matches.arrays(), self.cand, self._canon_mask, self.rules)
