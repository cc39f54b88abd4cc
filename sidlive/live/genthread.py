"""The generator thread of `sidlive live`: the engine (GIL released in its kernels) keeps
the frame ring `lookahead_frames` ahead of the audio callback, rolls back and regenerates
when a control changes generation, and primes prompt loops on a shadow generator.
"""
from __future__ import annotations

import threading
import time

import numpy as np

from engine.generator import Generator
from sidlive.frames import CANON_MASK, CONTROL_REGS, NUM_REGS

PRIME_CHUNK_FRAMES = 64       # a loop is primed in chunks; between them a newer loop takes over


class GenRequest:
    """What the generator thread should be doing; built by the control thread, handed over
    by one reference swap (`GeneratorThread.request = req`)."""

    __slots__ = ("seq", "temperature", "top_k", "top_p", "composer", "seed", "loop", "loop_key", "mode",
                 "panic", "lookahead_frames", "repetition")

    def __init__(self, seq, temperature, top_k, top_p, composer, seed, loop, loop_key, mode, panic,
                 lookahead_frames, repetition: float = 1.0):
        self.seq, self.temperature, self.top_k, self.top_p = seq, temperature, top_k, top_p
        self.composer, self.seed, self.loop, self.loop_key, self.mode = composer, seed, loop, loop_key, mode
        self.panic, self.lookahead_frames, self.repetition = panic, lookahead_frames, repetition

    def sampling(self) -> tuple:
        """(temperature, top_k, top_p, composer, repetition): the settings that change sampling."""
        return self.temperature, self.top_k, self.top_p, self.composer, self.repetition


class GeneratorThread:
    """Keeps `lookahead_frames` frames in the ring, canonical (frames.CANON_MASK: the bits
    the SID ignores cleared, as a recorded .regs loads; the renderer writes only changed
    registers, a player's cycles apart, so a take replays exactly only if the frames
    written are the frames recorded). A request that changes generation
    (sampling, seed, loop, panic) rolls the ring back to the playhead + keep_frames and
    regenerates from there; prime-mode loops are primed on a shadow Generator in a worker
    thread (a 512-frame prime takes ~0.1 s, longer than the lookahead) and swapped in; the
    primer works in 64-frame chunks and drops a loop as soon as a newer one is asked for,
    so a burst of program changes costs one prime, not one each."""

    def __init__(self, gen, ring, audio, arrangement, *, keep_frames: int = 1,
                 history_frames: int = 1024, min_rollback_interval_s: float = 0.01, on_error=None):
        self.gen = gen
        self.ring = ring
        self.audio = audio
        self.arrangement = arrangement
        self.keep_frames = int(keep_frames)
        self.min_rollback_interval_s = float(min_rollback_interval_s)
        self.on_error = on_error or (lambda text: None)
        self.hist = np.zeros((history_frames, NUM_REGS), np.uint8)   # (H, 25) frames by ring position
        self.offset = 0              # generator timeline length - ring write position
        self.request: GenRequest | None = None
        self.forced = None           # keyvoice.KeySnapshot or None: registers the model must keep
        self._forced_applied = None
        self.wake = threading.Event()
        self._applied: GenRequest | None = None
        self._one = np.zeros((1, NUM_REGS), np.uint8)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_rollback = 0.0
        # shadow priming
        self._shadow = None
        self._job = None             # (loop, key) wanted
        self._ready = None           # key primed into the shadow, waiting for the swap
        self._job_event = threading.Event()
        self._worker: threading.Thread | None = None
        # figures
        self.frames_generated = 0
        self.busy_s = 0.0
        self.rollback_log: list[tuple[int, int, float]] = []   # (request seq, cut, perf time)
        self.primes = 0
        self.primes_abandoned = 0    # loop primes cut short by a newer loop (a program-change flood)
        self.primed_frames = 0
        self.error: BaseException | None = None

    # ------------------------------------------------------------------ setup (caller's thread)
    def set_context(self, frames: np.ndarray | None) -> None:
        """Before start: the timeline becomes `frames` (or one zero frame) at ring position 0."""
        self.gen.reset()
        ctx = self._context(frames)
        self.gen.prime(ctx)
        self.offset = self.gen.length - self.ring.write_pos

    def _context(self, frames) -> np.ndarray:
        if frames is None or len(frames) == 0:
            return np.zeros((1, NUM_REGS), np.uint8)
        return np.ascontiguousarray(frames[-self.gen.cfg.context_frames:])

    def prefill(self, request: GenRequest) -> None:
        """Before start: adopt request's settings and fill the ring to its lookahead."""
        self.request = request
        self._apply_settings(request, None)
        self._applied = request
        self._fill()

    def start(self) -> "GeneratorThread":
        """Start the generator thread and the loop-priming worker."""
        self._thread = threading.Thread(target=self._run, name="sidlive-generator", daemon=True)
        self._worker = threading.Thread(target=self._prime_worker, name="sidlive-primer", daemon=True)
        self._thread.start()
        self._worker.start()
        return self

    def stop(self) -> None:
        """Stop both threads (waits up to 2 s for each)."""
        self._stop.set()
        self.wake.set()
        self._job_event.set()
        for t in (self._thread, self._worker):
            if t is not None:
                t.join(timeout=2.0)

    @property
    def alive(self) -> bool:
        """True while the generator thread runs."""
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ generator thread
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                req = self.request
                if req is not self._applied and \
                        time.perf_counter() - self._last_rollback >= self.min_rollback_interval_s:
                    self._apply(req)
                if self._ready is not None:
                    self._swap_in_shadow()
                self._fill()
                self.wake.wait(0.003)
                self.wake.clear()
        except BaseException as e:  # noqa: BLE001 - the watchdog reports it
            self.error = e
            self.on_error(f"generator thread stopped: {type(e).__name__}: {e}")

    def _apply_forced(self, always: bool = False) -> None:
        """The keyboard voice's registers become forced (no rollback: the audio callback
        already plays them over the lookahead)."""
        f = self.forced
        if f is self._forced_applied and not always:
            return
        self._forced_applied = f
        if f is None:
            self.gen.set_forced(None, None)
        else:
            self.gen.set_forced(f.mask, f.steady)

    def _fill(self) -> None:
        self._apply_forced()
        req = self._applied
        target = req.lookahead_frames if req is not None else 3
        ring, gen = self.ring, self.gen
        while ring.lookahead_frames < target and not self._stop.is_set():
            slot = ring.reserve()
            if slot is None:
                return
            pos = ring.write_pos
            f = self.arrangement.frame_for(pos)
            t0 = time.perf_counter()
            if f is not None:
                gen.prime(f[None, :])
                np.copyto(slot, f)
            else:
                gen.generate(1, self._one)
                np.bitwise_and(self._one[0], CANON_MASK, out=slot)   # what is played is what is recorded
            self.busy_s += time.perf_counter() - t0
            self.frames_generated += 1
            self.hist[pos % len(self.hist)] = slot
            ring.commit()

    def _apply_settings(self, req: GenRequest, prev: GenRequest | None) -> bool:
        changed = False
        if prev is None or req.sampling() != prev.sampling():
            self.gen.set_sampling(temperature=req.temperature, top_k=req.top_k, top_p=req.top_p,
                                  composer=req.composer, repetition=req.repetition)
            changed = True
        if prev is None or req.seed != prev.seed:
            self.gen.reseed(req.seed)
            changed = True
        return changed

    def _apply(self, req: GenRequest) -> None:
        prev = self._applied
        self._applied = req
        changed = self._apply_settings(req, prev)
        loop_changed = prev is None or req.loop_key != prev.loop_key or req.mode != prev.mode
        panic = prev is not None and req.panic != prev.panic
        if loop_changed and req.loop is not None and req.mode == "prime":
            self._job = (req.loop, req.loop_key)   # the worker primes the shadow; swapped in later
            self._job_event.set()
            loop_changed = False
        elif loop_changed:
            self._job = None
        if changed or loop_changed or panic:
            self._rollback(req, loop_changed, panic)

    def _wait_cut(self) -> int | None:
        ring = self.ring
        ring.request_rollback(ring.read_pos + self.keep_frames)
        while not self._stop.is_set():
            cut = ring.rollback_done()
            if cut is not None:
                return cut
            time.sleep(0.0005)
        return None

    def _rollback(self, req: GenRequest, loop_changed: bool, panic: bool) -> None:
        cut = self._wait_cut()
        if cut is None:
            return
        self.gen.rollback_to(cut + self.offset)
        if loop_changed:
            mode = req.mode if req.loop is not None else "prime"
            self.arrangement.set(req.loop, mode, cut)
        if panic:
            row = self.hist[(cut - 1) % len(self.hist)].copy() if cut > 0 else np.zeros(NUM_REGS, np.uint8)
            for c in CONTROL_REGS:
                row[c] &= 0xFE
            self.gen.prime(row[None, :])
            slot = self.ring.reserve()
            np.copyto(slot, row)
            self.hist[cut % len(self.hist)] = row
            self.ring.commit()
            self.audio.panic_cut = (req.panic, cut)
        self._last_rollback = time.perf_counter()
        self.rollback_log.append((req.seq, cut, self._last_rollback))
        if len(self.rollback_log) > 100_000:
            del self.rollback_log[:50_000]

    def _swap_in_shadow(self) -> None:
        ready = self._ready
        req = self._applied
        job = self._job
        if job is None or job[1] != ready or req is None:
            self._ready = None
            self._job_event.set()   # a newer job (or none): the worker looks again
            return
        cut = self._wait_cut()
        if cut is None:
            return
        self.gen, self._shadow = self._shadow, self.gen
        self._ready = None          # only now may the worker touch the (new) shadow again
        self._apply_settings(req, None)   # the swapped-in generator gets the current settings and seed
        self._apply_forced(always=True)
        self.offset = self.gen.length - cut
        self.arrangement.set(job[0], "prime", cut)
        self._job = None
        self.primes += 1
        self._last_rollback = time.perf_counter()
        self.rollback_log.append((req.seq, cut, self._last_rollback))

    # ------------------------------------------------------------------ primer thread
    def _prime_worker(self) -> None:
        try:
            while not self._stop.is_set():
                self._job_event.wait(0.2)
                self._job_event.clear()
                job = self._job
                if job is None or self._ready is not None:
                    continue
                if self._shadow is None:
                    self._shadow = Generator(self.gen.model, max_rollback_frames=self.gen.max_rollback_frames,
                                             max_silence_s=self.gen.max_silence_s, log=None)
                self._shadow.reset()
                ctx = self._context(job[0].regs)
                for i in range(0, len(ctx), PRIME_CHUNK_FRAMES):   # a newer loop abandons this one
                    if self._job is not job or self._stop.is_set():
                        break
                    self._shadow.prime(ctx[i:i + PRIME_CHUNK_FRAMES])
                    self.primed_frames += min(PRIME_CHUNK_FRAMES, len(ctx) - i)
                if self._job is job:
                    self._ready = job[1]
                else:
                    self.primes_abandoned += 1
                    self._job_event.set()
        except BaseException as e:  # noqa: BLE001
            self.error = e
            self.on_error(f"loop primer stopped: {type(e).__name__}: {e}")
