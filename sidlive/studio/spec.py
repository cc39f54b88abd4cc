"""A take's exact recipe (`TakeSpec`) and running it on the engine (`run_spec`).

A spec holds everything the frames depend on: the model (path and SHA-256 of the file), the
prompt fragment (frames that prime the model's context), the head (frames of the output
that come before generation: a continued or branched take's part of its parent), the kept
voices and the frames they replay from (`keep`, looped from output frame 0), the seed, the
sampling values, the composer and the engine's rollback depth. `run_spec` always does the
same thing with them: one fresh Generator, one prime of prompt + head, then the frames, one
at a time with the kept voices forced (set_forced before each), else in chunks (the engine's
random counters follow the frame position, so the chunking does not change a frame). Same
spec, same model file, same machine: the same frames, bit for bit.
"""
from __future__ import annotations

import dataclasses
import hashlib
import time

import numpy as np

from engine.generator import DEFAULT_MAX_ROLLBACK, Generator, check_sampling
from sidlive.control.params import PARAMS, SAMPLING_DEFAULTS, ControlError
from sidlive.frames import CHIPS, NUM_REGS, PAL_FRAME_RATE_HZ, check_regs

SEED_MAX = (1 << 53) - 1                # a seed survives JSON and JavaScript numbers
LENGTH_S = (0.5, 600.0)                 # seconds one take may generate
PROMPT_MAX_S = 60.0
VOICE_REGS = 7
FIRST_CHUNK_FRAMES = 16                 # a small first chunk: the first audio comes sooner
CHUNK_FRAMES = 64
SAMPLING_FIELDS = ("temperature", "top_k", "top_p", "repetition")


class SpecError(ValueError):
    """A take's settings are invalid; the message names the field and the allowed values."""


def frames_digest(regs: np.ndarray) -> str:
    """SHA-256 hex of frames' bytes (N x 25, row by row)."""
    return hashlib.sha256(np.ascontiguousarray(regs, np.uint8).tobytes()).hexdigest()


def _empty() -> np.ndarray:
    return np.zeros((0, NUM_REGS), np.uint8)


@dataclasses.dataclass
class TakeSpec:
    """The recipe of one take (see the module docstring)."""

    model_path: str
    model_digest: str
    seed: int
    frames: int                                   # frames to generate after the head
    temperature: float = SAMPLING_DEFAULTS["temperature"]
    top_k: int = SAMPLING_DEFAULTS["top_k"]
    top_p: float = SAMPLING_DEFAULTS["top_p"]
    repetition: float = SAMPLING_DEFAULTS["repetition"]
    composer: str = "any"
    keep_voices: tuple = ()
    chip: str = "6581"
    max_rollback_frames: int = DEFAULT_MAX_ROLLBACK
    prompt: np.ndarray = dataclasses.field(default_factory=_empty, repr=False)
    head: np.ndarray = dataclasses.field(default_factory=_empty, repr=False)
    keep: np.ndarray = dataclasses.field(default_factory=_empty, repr=False)

    @property
    def total_frames(self) -> int:
        """Frames of the take's output: head + generated."""
        return len(self.head) + self.frames

    def settings(self) -> dict:
        """The scalar settings as a JSON-able dict (the arrays go by their digests)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
             if f.name not in ("prompt", "head", "keep")}
        d["keep_voices"] = list(self.keep_voices)
        d.update(prompt_frames=len(self.prompt), head_frames=len(self.head), keep_frames=len(self.keep),
                 prompt_digest=frames_digest(self.prompt), head_digest=frames_digest(self.head),
                 keep_digest=frames_digest(self.keep))
        return d

    def with_arrays(self, **changes) -> "TakeSpec":
        """A copy with fields changed (the arrays are shared, never written)."""
        return dataclasses.replace(self, **changes)


def check_spec(spec: TakeSpec, composers: tuple | list) -> TakeSpec:
    """The spec with its values coerced, or SpecError naming the field and its allowed range."""
    for name in SAMPLING_FIELDS:
        try:
            setattr(spec, name, PARAMS[name].validate(getattr(spec, name)))
        except ControlError as e:
            raise SpecError(f"field {e}") from None
    try:
        check_sampling(spec.temperature, spec.top_k, spec.top_p, spec.repetition)
    except ValueError as e:
        raise SpecError(f"sampling: {e}") from None
    if isinstance(spec.seed, bool) or not isinstance(spec.seed, (int, np.integer)) or not 0 <= spec.seed <= SEED_MAX:
        raise SpecError(f"field seed: {spec.seed!r} is out of range 0..{SEED_MAX}")
    spec.seed = int(spec.seed)
    lo, hi = (round(s * PAL_FRAME_RATE_HZ) for s in LENGTH_S)
    if isinstance(spec.frames, bool) or not isinstance(spec.frames, (int, np.integer)) or not 1 <= spec.frames <= hi:
        raise SpecError(f"field length: {spec.frames!r} frames is out of range 1..{hi} "
                        f"({LENGTH_S[1]:g} s at {PAL_FRAME_RATE_HZ:.3f} frames/s)")
    if spec.composer not in composers:
        raise SpecError(f"field composer: {spec.composer!r} is not one of the model's composers: "
                        f"{', '.join(composers)}")
    if spec.chip not in CHIPS:
        raise SpecError(f"field chip: {spec.chip!r} is not one of {', '.join(CHIPS)}")
    voices = tuple(sorted(set(spec.keep_voices)))
    if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= v <= 3 for v in voices):
        raise SpecError(f"field keep_voices: {list(spec.keep_voices)!r}: voices are 1..3")
    spec.keep_voices = tuple(int(v) for v in voices)
    for name in ("prompt", "head", "keep"):
        try:
            setattr(spec, name, check_regs(getattr(spec, name), name))
        except ValueError as e:
            raise SpecError(f"field {e}") from None
    max_prompt = round(PROMPT_MAX_S * PAL_FRAME_RATE_HZ)
    if len(spec.prompt) > max_prompt:
        raise SpecError(f"field prompt: {len(spec.prompt)} frames is over the limit of {max_prompt} "
                        f"({PROMPT_MAX_S:g} s); select a shorter fragment")
    if spec.keep_voices and len(spec.keep) == 0:
        raise SpecError("field keep_voices: keeping voices needs a prompt fragment to take them from")
    return spec


def forced_mask(voices) -> np.ndarray:
    """The (25,) bool mask of the registers of voices (1..3): 7 each."""
    mask = np.zeros(NUM_REGS, bool)
    for v in voices:
        mask[(v - 1) * VOICE_REGS:v * VOICE_REGS] = True
    return mask


def new_generator(spec: TakeSpec, model) -> Generator:
    """A fresh Generator for the spec, primed with prompt + head."""
    g = Generator(model, max_rollback_frames=spec.max_rollback_frames, temperature=spec.temperature,
                  top_k=spec.top_k, top_p=spec.top_p, repetition=spec.repetition, seed=spec.seed,
                  composer=spec.composer, log=None)
    context = np.concatenate([spec.prompt, spec.head]) if len(spec.head) else spec.prompt
    if len(context):
        g.prime(context)
    return g


class Cancelled(Exception):
    """The job was cancelled while it ran."""


def run_spec(spec: TakeSpec, model, *, on_frames=None, cancelled=lambda: False,
             chunks: tuple = (FIRST_CHUNK_FRAMES, CHUNK_FRAMES)) -> tuple[np.ndarray, float]:
    """(the spec's generated frames (frames, 25) uint8, engine seconds: setup, prime and the
    generate calls, not the callbacks). on_frames(rows) gets
    each new run of frames as it is made; cancelled() is asked between chunks (Cancelled)."""
    t0 = time.perf_counter()
    g = new_generator(spec, model)
    busy = time.perf_counter() - t0
    out = np.empty((spec.frames, NUM_REGS), np.uint8)
    n, H = spec.frames, len(spec.head)
    if spec.keep_voices:
        mask, K = forced_mask(spec.keep_voices), len(spec.keep)
        done = 0
        for size in _chunk_sizes(n, chunks):
            if cancelled():
                raise Cancelled()
            t = time.perf_counter()
            for j in range(done, done + size):
                g.set_forced(mask, spec.keep[(H + j) % K])
                g.generate(1, out[j:j + 1])
            busy += time.perf_counter() - t
            if on_frames is not None:
                on_frames(out[done:done + size])
            done += size
    else:
        done = 0
        for size in _chunk_sizes(n, chunks):
            if cancelled():
                raise Cancelled()
            t = time.perf_counter()
            g.generate(size, out[done:done + size])
            busy += time.perf_counter() - t
            if on_frames is not None:
                on_frames(out[done:done + size])
            done += size
    return out, busy


def _chunk_sizes(n: int, chunks: tuple) -> list[int]:
    first, rest = chunks
    sizes, left = [], n
    while left > 0:
        size = min(left, first if not sizes else rest)
        sizes.append(size)
        left -= size
    return sizes
