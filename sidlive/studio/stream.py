"""Frames in, audio out, while both grow: the engine pushes frames, a render thread turns them
into 16-bit samples (reSID, `Renderer`), the page reads the samples as they come.

The samples are those `render` gives for the whole run: one Renderer renders the frames in
order, each batch exactly up to its last frame's boundary (sidlive.frames.frame_sample_boundary),
so the pieces join without a gap or an overlap.
"""
from __future__ import annotations

import io
import threading
import time
import wave

import numpy as np

from sidlive.audio.renderer import CLOCK_PARAMS, Renderer
from sidlive.frames import NUM_REGS, frame_sample_boundary

RATE_HZ = 48_000
MAX_BATCH_FRAMES = 100          # the render thread publishes at least every 2 s of audio


class AudioStream:
    """One growing run of frames and its samples (see the module docstring)."""

    def __init__(self, total_frames: int, *, chip: str = "6581", clock: str = "PAL", rate_hz: int = RATE_HZ):
        clock_hz, cycles = CLOCK_PARAMS[clock]
        self.total_frames = int(total_frames)
        self.rate_hz = rate_hz
        self.chip, self.clock = chip, clock
        self.frames = np.zeros((self.total_frames, NUM_REGS), np.uint8)
        self.frames_ready = 0
        self.total_samples = frame_sample_boundary(self.total_frames, rate_hz, cycles, clock_hz)
        self.pcm = np.zeros(self.total_samples, np.int16)
        self.samples_ready = 0
        self.frames_rendered = 0
        self.render_s = 0.0
        self.done = False            # every frame rendered
        self.error = ""              # the input stopped short (the job failed or was cancelled)
        self.cond = threading.Condition()
        self._closed = False
        self._cancel = False
        self._fed = 0
        self._renderer = Renderer(self._next, chip=chip, rate_hz=rate_hz, clock=clock)
        self.thread = threading.Thread(target=self._render_loop, name="studio-render", daemon=True)

    def start(self) -> "AudioStream":
        """Start the render thread."""
        self.thread.start()
        return self

    def push(self, rows: np.ndarray) -> None:
        """Append frames (engine side)."""
        n = len(rows)
        with self.cond:
            if self.frames_ready + n > self.total_frames:
                raise ValueError(f"stream: {self.frames_ready} + {n} frames is over its {self.total_frames}")
            self.frames[self.frames_ready:self.frames_ready + n] = rows
            self.frames_ready += n
            self.cond.notify_all()

    def close(self, error: str = "") -> None:
        """No more frames will come (error: why the run stopped short)."""
        with self.cond:
            self._closed = True
            if error:
                self.error = error
            self.cond.notify_all()

    def cancel(self) -> None:
        """Stop rendering as soon as the current batch ends."""
        with self.cond:
            self._cancel = True
            self._closed = True
            self.error = self.error or "cancelled"
            self.cond.notify_all()

    def _next(self):
        row = self.frames[self._fed]
        self._fed += 1
        return row

    def _render_loop(self) -> None:
        try:
            while True:
                with self.cond:
                    self.cond.wait_for(lambda: self.frames_ready > self.frames_rendered or self._closed)
                    if self._cancel or (self._closed and self.frames_ready == self.frames_rendered):
                        break
                    k = min(self.frames_ready - self.frames_rendered, MAX_BATCH_FRAMES)
                t = time.perf_counter()
                samples = self._renderer.render_frames(k)
                self.render_s += time.perf_counter() - t
                with self.cond:
                    self.pcm[self.samples_ready:self.samples_ready + len(samples)] = samples
                    self.samples_ready += len(samples)
                    self.frames_rendered += k
                    self.cond.notify_all()
        except Exception as e:  # noqa: BLE001 - the reader must hear of it
            with self.cond:
                self.error = f"render: {type(e).__name__}: {e}"
        with self.cond:
            self.done = self.frames_rendered == self.total_frames and not self._cancel
            self._closed = True
            self.cond.notify_all()

    @property
    def finished(self) -> bool:
        """True when no more samples will come (all rendered, or stopped)."""
        return self.done or (self._closed and not self.thread.is_alive())

    def wait(self, from_sample: int, timeout_s: float) -> None:
        """Block until samples past from_sample are ready or the stream is finished (or the timeout)."""
        with self.cond:
            self.cond.wait_for(lambda: self.samples_ready > from_sample or self.finished, timeout=timeout_s)

    def read(self, from_sample: int) -> tuple[bytes, dict]:
        """(little-endian int16 bytes from from_sample to what is ready, the stream's counters)."""
        with self.cond:
            ready = self.samples_ready
            info = {"ready": ready, "total": self.total_samples, "rate": self.rate_hz,
                    "done": self.done, "error": self.error, "frames_ready": self.frames_ready}
        start = min(max(0, int(from_sample)), ready)
        return self.pcm[start:ready].astype("<i2").tobytes(), info

    def join(self, timeout_s: float | None = None) -> None:
        """Wait for the render thread to end."""
        self.thread.join(timeout_s)


def wav_bytes(pcm: np.ndarray, rate_hz: int) -> bytes:
    """A 16-bit mono WAV file of pcm."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate_hz)
        w.writeframes(np.ascontiguousarray(pcm, "<i2").tobytes())
    return buf.getvalue()


def read_wav_range(path, from_sample: int, max_samples: int | None = None) -> tuple[bytes, dict]:
    """(int16 bytes of a mono 16-bit WAV from from_sample on, its counters as AudioStream.read gives them)."""
    with wave.open(str(path), "rb") as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(f"{path}: expected a mono 16-bit WAV, got {w.getnchannels()} channels of "
                             f"{8 * w.getsampwidth()} bits")
        total = w.getnframes()
        start = min(max(0, int(from_sample)), total)
        w.setpos(start)
        n = total - start if max_samples is None else min(total - start, max_samples)
        data = w.readframes(n)
        info = {"ready": total, "total": total, "rate": w.getframerate(), "done": True, "error": "",
                "frames_ready": None}
    return data, info
