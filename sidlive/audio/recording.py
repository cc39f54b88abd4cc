"""Record a live session: audio (WAV), the frames that played (.regs) and a control log.

    rec = Recorder("takes/jam1").start()   # jam1.wav, jam1.regs.part, jam1.controls.jsonl
    rec.write_block(outdata[:, 0])         # audio callback: copies into a ring, never waits
    rec.write_frame(regs_row)              # audio callback: the frame just played
    rec.log_control("temperature", 0.8)    # control thread
    rec.close()                            # final headers; jam1.regs.part -> jam1.regs

The audio callback only copies into preallocated lock-free rings (`ring.BlockRing`); a
writer thread empties them every `poll_s`. If the writer falls behind and a ring is full,
the block is dropped and counted (`stats()["dropped_blocks"]`); the WAV keeps its timeline
(a dropped block becomes silence, a dropped frame repeats the previous one) and the drop
counts are logged and appended to the control log on close.

Crash safety (kill -9, power is another matter): the WAV header (`wav.WavWriter`) and the
.regs.part frame count are rewritten at least every `header_interval_s`, after the data
they count has reached the OS, so a killed take is a valid WAV and a .regs.part that
`sidlive recover` (recover.py) turns into a loadable .regs holding every complete frame.
"""
from __future__ import annotations

import collections
import json
import logging
import os
import struct
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from sidlive.audio.ring import BlockRing
from sidlive.audio.wav import WavWriter
from sidlive.frames import NUM_REGS, REGS_MAGIC, REGS_VERSION, Frames

log = logging.getLogger("sidlive.audio.recording")

# The .regs header as documented in frames.py: magic, u16 version, u16 flags,
# u32 n_frames, u32 meta_len, then meta_len bytes of JSON. Little-endian.
REGS_HEADER = struct.Struct("<4sHHII")
REGS_COUNT_OFFSET = 8
PART_SUFFIX = ".part"


def session_paths(base: str | Path) -> dict[str, Path]:
    """A take's file paths: .wav, .regs, .regs.part and .controls.jsonl next to base."""
    base = Path(base)
    return {"wav": base.with_name(base.name + ".wav"),
            "regs": base.with_name(base.name + ".regs"),
            "regs_part": base.with_name(base.name + ".regs" + PART_SUFFIX),
            "log": base.with_name(base.name + ".controls.jsonl")}


def regs_meta(meta: dict | None) -> bytes:
    """Validated .regs metadata JSON (the Frames fields; defaults for a live PAL take)."""
    m = {"source": "sidlive live recording"}
    m.update(meta or {})
    frames = Frames(regs=np.zeros((0, NUM_REGS), np.uint8), **m)
    return json.dumps(frames.meta(), ensure_ascii=False).encode("utf-8")


class Recorder:
    """Records a live session (WAV, .regs frames, control log) from rings a writer thread empties."""
    def __init__(self, base: str | Path, *, rate_hz: int = 48_000, block_frames: int = 256,
                 ring_seconds: float = 2.0, meta: dict | None = None,
                 header_interval_s: float = 0.5, poll_s: float = 0.02):
        if not 0 < header_interval_s <= 1.0:
            raise ValueError(f"header_interval_s must be in (0, 1]; got {header_interval_s!r}")
        if not isinstance(block_frames, int) or not 1 <= block_frames <= 65536:
            raise ValueError(f"block_frames must be an int in 1..65536; got {block_frames!r}")
        self.paths = session_paths(base)
        self.rate_hz = rate_hz
        self.block_frames = block_frames
        self.header_interval_s = header_interval_s
        self.poll_s = poll_s
        self._meta = regs_meta(meta)
        n_blocks = max(4, int(np.ceil(ring_seconds * rate_hz / block_frames)))
        n_frames = max(16, int(np.ceil(ring_seconds * 60)))
        self._audio = BlockRing(n_blocks, (block_frames,), np.float32)  # (n_blocks, block_frames)
        self._frames = BlockRing(n_frames, (NUM_REGS,), np.uint8)  # (n_frames, 25)
        self._controls: collections.deque = collections.deque()
        # Producer (audio callback) counters.
        self.samples_in = 0
        self.frames_in = 0
        # Writer state.
        self.samples_written = 0
        self.header_samples = 0  # samples the WAV header counted at our last header update
        self.frames_written = 0
        self.frames_header = 0  # frames the .regs.part header counted at the last update
        self.controls_written = 0
        self._last_row = np.zeros(NUM_REGS, np.uint8)
        self._wav: WavWriter | None = None
        self._regs = None
        self._log = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._t0 = 0.0
        self.closed = False
        self.error: BaseException | None = None

    # ------------------------------------------------------------------ setup
    def start(self) -> "Recorder":
        """Create the take's files (FileExistsError if any exists) and start the writer thread."""
        if self._wav is not None:
            return self
        for key in ("wav", "regs", "regs_part", "log"):
            if self.paths[key].exists():
                raise FileExistsError(f"{self.paths[key]}: exists; choose another recording name")
        self.paths["wav"].parent.mkdir(parents=True, exist_ok=True)
        self._wav = WavWriter(self.paths["wav"], self.rate_hz, 1, header_interval_s=self.header_interval_s)
        self._regs = open(self.paths["regs_part"], "wb")
        self._regs.write(REGS_HEADER.pack(REGS_MAGIC, REGS_VERSION, 0, 0, len(self._meta)) + self._meta)
        self._regs.flush()
        self._log = open(self.paths["log"], "w", encoding="utf-8")
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="sidlive-recorder", daemon=True)
        self._thread.start()
        return self

    # ------------------------------------------------------------------ audio callback
    def write_block(self, samples: np.ndarray) -> bool:
        """Copy one block (float32 in [-1, 1], (n,) with n <= block_frames). Never waits;
        returns False and counts a drop when the writer is behind."""
        start = self.samples_in
        self.samples_in = start + len(samples)
        return self._audio.push(samples, start)

    def write_frame(self, row: np.ndarray) -> bool:
        """Copy the (25,) frame that just started playing. Never waits."""
        k = self.frames_in
        self.frames_in = k + 1
        return self._frames.push(row, k)

    # ------------------------------------------------------------------ control thread
    def log_control(self, control: str, value: Any) -> None:
        """Queue a control change, stamped with the audio time so far (s), for the control log."""
        self._controls.append((self.samples_in / self.rate_hz, control, value))

    # ------------------------------------------------------------------ writer thread
    def _run(self) -> None:
        next_header = time.monotonic() + self.header_interval_s
        try:
            while not self._stop.is_set():
                self._drain()
                now = time.monotonic()
                if now >= next_header:
                    self._update_headers()
                    next_header = now + self.header_interval_s
                self._stop.wait(self.poll_s)
            self._drain()
        except BaseException as e:  # noqa: BLE001 - keep the failure for close() to report
            self.error = e
            log.error("recorder writer failed: %s", e)

    def _drain(self) -> None:
        ring = self._audio
        n = ring.pending()
        for i in range(n):
            block, start = ring.peek(i)
            if start > self.samples_written:  # dropped blocks: keep the timeline with silence
                self._wav.write(np.zeros(start - self.samples_written, np.int16))
                self.samples_written = start
            self._wav.write(block)
            self.samples_written += len(block)
        ring.release(n)
        ring = self._frames
        n = ring.pending()
        chunks = []
        for i in range(n):
            row, k = ring.peek(i)
            if k > self.frames_written:  # dropped frames: the previous state held
                chunks.append(np.tile(self._last_row, k - self.frames_written).tobytes())
                self.frames_written = k
            chunks.append(row.tobytes())
            self._last_row[:] = row
            self.frames_written += 1
        ring.release(n)
        if chunks:
            self._regs.write(b"".join(chunks))
        lines = []
        while self._controls:
            t_s, control, value = self._controls.popleft()
            lines.append(json.dumps({"t_s": round(t_s, 6), "control": control, "value": value},
                                    default=str) + "\n")
        if lines:
            self._log.write("".join(lines))
            self._log.flush()
            self.controls_written += len(lines)

    def _pad_to_end(self) -> None:
        """Blocks/frames dropped after the last one written: silence / the held frame."""
        if self.samples_in > self.samples_written:
            self._wav.write(np.zeros(self.samples_in - self.samples_written, np.int16))
            self.samples_written = self.samples_in
        if self.frames_in > self.frames_written:
            self._regs.write(np.tile(self._last_row, self.frames_in - self.frames_written).tobytes())
            self.frames_written = self.frames_in

    def _update_headers(self) -> None:
        self._wav.flush()
        self.header_samples = self._wav.frames_written
        self._regs.flush()  # rows reach the OS before the count that includes them
        os.pwrite(self._regs.fileno(), struct.pack("<I", self.frames_written), REGS_COUNT_OFFSET)
        self.frames_header = self.frames_written

    # ------------------------------------------------------------------ end
    @property
    def dropped_blocks(self) -> int:
        """Audio blocks dropped because the writer was behind."""
        return self._audio.dropped

    @property
    def dropped_frames(self) -> int:
        """Frames dropped because the writer was behind."""
        return self._frames.dropped

    def stats(self) -> dict[str, Any]:
        """Seconds written, sample / frame / control counters and drop counts."""
        return {"seconds": self.samples_written / self.rate_hz, "samples_in": self.samples_in,
                "samples_written": self.samples_written, "header_samples": self.header_samples,
                "frames_in": self.frames_in, "frames_written": self.frames_written,
                "frames_header": self.frames_header, "controls_written": self.controls_written,
                "dropped_blocks": self.dropped_blocks, "dropped_frames": self.dropped_frames}

    def close(self) -> dict[str, Any]:
        """Stop the writer (after the audio stream is stopped), finalise all files.
        Returns stats(). Closing twice is safe."""
        if self.closed or self._wav is None:
            self.closed = True
            return self.stats()
        self.closed = True
        self._stop.set()
        self._thread.join()
        if self.dropped_blocks or self.dropped_frames:
            log.warning("recording %s: writer fell behind: %d audio blocks and %d frames dropped",
                        self.paths["wav"], self.dropped_blocks, self.dropped_frames)
            self.log_control("recorder.dropped_blocks", self.dropped_blocks)
            self.log_control("recorder.dropped_frames", self.dropped_frames)
        try:
            if self.error is None:
                self._drain()
                self._pad_to_end()
            self._update_headers()
        finally:
            self._wav.close()
            self._regs.close()
            self._log.close()
        os.replace(self.paths["regs_part"], self.paths["regs"])
        if self.error is not None:
            raise RuntimeError(f"recording {self.paths['wav']}: writer failed: {self.error}") from self.error
        return self.stats()

    def __enter__(self) -> "Recorder":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
