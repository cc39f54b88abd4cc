"""Making takes off the event loop: one worker thread runs the queued takes in order (the engine
in that thread, its kernels without the GIL), each take's frames streaming to an AudioStream
that its own thread renders while the engine goes on; then the frames and the WAV go to the
library. Fragment previews render on their own stream, one at a time (a new one stops the last).

Every change (queued, progress, done, failed) bumps `version`, which the page's long poll
watches. Times per take: engine (setup, prime, generate), render (reSID), encode (the WAV and
.regs files written), and the wall time from start to done.
"""
from __future__ import annotations

import collections
import dataclasses
import queue
import threading
import time

import numpy as np

from sidlive.frames import Frames
from sidlive.studio.library import Library, NotFound
from sidlive.studio.models import ModelError, Models
from sidlive.studio.spec import Cancelled, run_spec
from sidlive.studio.stream import AudioStream, wav_bytes

KEEP_PREVIEWS = 4
KEEP_JOBS = 50           # finished jobs kept for their timings


@dataclasses.dataclass
class Job:
    """One take being made: where it stands and how long each part took."""

    take_id: int
    total_frames: int
    state: str = "queued"         # queued | running | done | failed | cancelled
    frames_done: int = 0
    error: str = ""
    stream: AudioStream | None = None
    cancel: bool = False
    queued_at: float = dataclasses.field(default_factory=time.perf_counter)
    started_at: float | None = None
    timings: dict = dataclasses.field(default_factory=dict)

    def info(self, ahead: int = 0) -> dict:
        """The job as the page sees it."""
        s = self.stream
        return {"take_id": self.take_id, "state": self.state, "frames_done": self.frames_done,
                "total_frames": self.total_frames, "error": self.error, "ahead": ahead,
                "samples_ready": s.samples_ready if s else 0, "total_samples": s.total_samples if s else 0,
                "timings": self.timings}


class Worker:
    """The take queue and its thread, plus the preview streams."""

    def __init__(self, library: Library, models: Models):
        self.library, self.models = library, models
        self.jobs: dict[int, Job] = {}
        self.version = 0
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._previews: collections.OrderedDict[str, AudioStream] = collections.OrderedDict()
        self._preview_n = 0
        self._stop = False
        self.thread = threading.Thread(target=self._loop, name="studio-worker", daemon=True)
        self.thread.start()

    def changed(self) -> None:
        """Something the page shows changed."""
        with self._lock:
            self.version += 1

    # ------------------------------------------------------------------ takes
    def submit(self, take_id: int, total_frames: int) -> Job:
        """Queue a recorded take."""
        job = Job(take_id, total_frames)
        with self._lock:
            self.jobs[take_id] = job
            old = [k for k, j in self.jobs.items() if j.state not in ("queued", "running")]
            for k in old[:-KEEP_JOBS]:
                del self.jobs[k]
        self._queue.put(job)
        self.changed()
        return job

    def cancel(self, take_id: int) -> bool:
        """Stop a queued or running take (it is then deleted); False when there is none."""
        job = self.jobs.get(take_id)
        if job is None or job.state not in ("queued", "running"):
            return False
        job.cancel = True
        if job.stream is not None:
            job.stream.cancel()
        return True

    def active(self) -> list[dict]:
        """The queued and running jobs, with how many takes are ahead of each."""
        with self._lock:
            live = [j for j in self.jobs.values() if j.state in ("queued", "running")]
        live.sort(key=lambda j: j.queued_at)
        return [j.info(ahead=i) for i, j in enumerate(live)]

    def stream_for(self, take_id: int) -> AudioStream | None:
        """A take's stream while it is being made (None once its files are in the library)."""
        job = self.jobs.get(take_id)
        return job.stream if job is not None and job.state in ("queued", "running") else None

    def _loop(self) -> None:
        while not self._stop:
            job = self._queue.get()
            if job is None:
                break
            try:
                self._run(job)
            except Exception as e:  # noqa: BLE001 - one take's failure must not stop the queue
                self._fail(job, f"{type(e).__name__}: {e}")
            finally:
                self.changed()

    def _fail(self, job: Job, message: str) -> None:
        job.state, job.error = "failed", message
        if job.stream is not None:
            job.stream.close(message)
        try:
            self.library.set_status(job.take_id, "failed", message)
        except NotFound:
            pass

    def _run(self, job: Job) -> None:
        if job.cancel:
            return self._cancelled(job)
        t_start = time.perf_counter()
        job.started_at = t_start
        try:
            spec = self.library.spec(job.take_id)
            model = self.models.for_take(spec.model_path, spec.model_digest, f"take {job.take_id}")
        except (ModelError, RuntimeError, NotFound) as e:
            return self._fail(job, str(e))
        self.library.set_status(job.take_id, "running")
        stream = AudioStream(spec.total_frames, chip=spec.chip)
        job.stream = stream
        job.state = "running"
        self.changed()
        if len(spec.head):
            stream.push(spec.head)
        stream.start()

        def on_frames(rows):
            stream.push(rows)
            job.frames_done += len(rows)
            self.changed()

        try:
            regs, engine_s = run_spec(spec, model, on_frames=on_frames, cancelled=lambda: job.cancel or self._stop)
        except Cancelled:
            stream.cancel()
            stream.join()
            return self._cancelled(job)
        except Exception as e:  # noqa: BLE001
            self._fail(job, f"engine: {type(e).__name__}: {e}")
            raise
        stream.close()
        stream.join()
        if job.cancel:
            return self._cancelled(job)
        if not stream.done:
            return self._fail(job, stream.error or "render stopped short")
        t = time.perf_counter()
        take = self.library.take(job.take_id)
        out = np.concatenate([spec.head, regs]) if len(spec.head) else regs
        frames = Frames(regs=out, chip=spec.chip, title=take["name"], author=spec.composer,
                        source=f"sidlive studio take {job.take_id}", extra={"studio": spec.settings()})
        timings = {"engine_s": round(engine_s, 4), "render_s": round(stream.render_s, 4)}
        data = wav_bytes(stream.pcm, stream.rate_hz)
        timings["encode_s"] = round(time.perf_counter() - t, 4)   # the WAV and .regs written below count too
        self.library.finish_take(job.take_id, frames, data, timings)
        timings["encode_s"] = round(time.perf_counter() - t, 4)
        timings["wall_s"] = round(time.perf_counter() - t_start, 4)
        timings["queued_s"] = round(t_start - job.queued_at, 4)
        job.timings = timings
        job.state = "done"

    def _cancelled(self, job: Job) -> None:
        if self._stop and not job.cancel:        # the studio is stopping: the take waits for a regenerate
            job.state = "interrupted"
            self.library.set_status(job.take_id, "interrupted", "the studio stopped while this take was being "
                                                               "made; regenerate it from its recipe")
            return
        job.state = "cancelled"
        try:
            self.library.delete_take(job.take_id)
        except NotFound:
            pass

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the worker: the take being made stops (interrupted, to be regenerated), the queue stays queued
        (interrupted when the library opens next); waits for the thread."""
        self._stop = True
        self._queue.put(None)
        self.thread.join(timeout_s)

    # ------------------------------------------------------------------ previews
    def preview(self, regs: np.ndarray, chip: str, clock: str = "PAL") -> str:
        """Render frames for listening (a fragment, a source); returns the stream's key. Stops the last preview."""
        stream = AudioStream(len(regs), chip=chip, clock=clock)
        stream.push(regs)
        stream.close()
        with self._lock:
            for old in self._previews.values():
                if not old.finished:
                    old.cancel()
            self._preview_n += 1
            key = f"p{self._preview_n}"
            self._previews[key] = stream
            while len(self._previews) > KEEP_PREVIEWS:
                self._previews.popitem(last=False)
        stream.start()
        return key

    def preview_stream(self, key: str) -> AudioStream | None:
        """A preview's stream by key (None once dropped)."""
        with self._lock:
            return self._previews.get(key)
