"""16-bit PCM WAV files: a one-shot writer, a growing writer whose header stays valid, a reader.

The canonical 44-byte header (RIFF/WAVE, a 16-byte `fmt ` chunk for PCM, then `data`) is
written by hand so `WavWriter` can patch the two size fields while the file grows: a
recorder killed mid-take leaves a file every player opens, missing at most the last
`header_interval_s` of audio from the header's count.
"""
from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np

_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")  # RIFF, size, WAVE, fmt , 16, PCM, ch, rate, byte rate, align, bits, data, size
HEADER_BYTES = _HEADER.size  # 44
_MAX_DATA_BYTES = 0xFFFFFFFF - (HEADER_BYTES - 8)


def _pcm16(samples: np.ndarray) -> np.ndarray:
    """int16 as is; float in [-1, 1] scaled by 32767 and clipped. (N,) or (N, channels)."""
    a = np.asarray(samples)
    if a.dtype == np.int16:
        return a
    if np.issubdtype(a.dtype, np.floating):
        return np.clip(np.rint(a * 32767.0), -32768, 32767).astype(np.int16)
    if np.issubdtype(a.dtype, np.integer):
        if a.size and (a.min() < -32768 or a.max() > 32767):
            raise ValueError(f"integer samples must be in -32768..32767; got {a.min()}..{a.max()}")
        return a.astype(np.int16)
    raise TypeError(f"samples must be int16, integer or float; got {a.dtype}")


def _check_rate(rate_hz) -> int:
    if isinstance(rate_hz, bool) or not isinstance(rate_hz, (int, np.integer)) or not 1 <= rate_hz <= 384_000:
        raise ValueError(f"rate_hz must be an integer in 1..384000; got {rate_hz!r}")
    return int(rate_hz)


def _header(rate_hz: int, channels: int, data_bytes: int) -> bytes:
    align = 2 * channels
    return _HEADER.pack(b"RIFF", 36 + data_bytes, b"WAVE", b"fmt ", 16, 1, channels, rate_hz,
                        rate_hz * align, align, 16, b"data", data_bytes)


def write_wav(path: str | Path, samples: np.ndarray, rate_hz: int) -> Path:
    """Write `samples` ((N,) mono or (N, channels)) as 16-bit PCM. Returns the path."""
    pcm = _pcm16(samples)
    if pcm.ndim not in (1, 2):
        raise ValueError(f"samples must be (N,) or (N, channels); got shape {pcm.shape}")
    with WavWriter(path, rate_hz, channels=1 if pcm.ndim == 1 else pcm.shape[1]) as w:
        w.write(pcm)
    return Path(path)


class WavWriter:
    """Append 16-bit PCM to a WAV file whose header is rewritten every `header_interval_s`
    seconds of audio (and on `flush`/`close`), so the file is valid while it grows.

    with WavWriter("take.wav", 48000) as w:
        w.write(block)        # int16 or float32, (N,) or (N, channels)
    """

    def __init__(self, path: str | Path, rate_hz: int, channels: int = 1,
                 header_interval_s: float = 1.0):
        self.path = Path(path)
        self.rate_hz = _check_rate(rate_hz)
        if not isinstance(channels, (int, np.integer)) or not 1 <= channels <= 8:
            raise ValueError(f"channels must be an integer in 1..8; got {channels!r}")
        if not header_interval_s > 0:
            raise ValueError(f"header_interval_s must be > 0; got {header_interval_s!r}")
        self.channels = int(channels)
        self.frames_written = 0
        self._interval_frames = max(1, int(round(header_interval_s * self.rate_hz)))
        self._frames_at_header = 0
        self._f = open(self.path, "wb")
        self._f.write(_header(self.rate_hz, self.channels, 0))

    @property
    def closed(self) -> bool:
        """True once the file is closed."""
        return self._f is None

    @property
    def seconds(self) -> float:
        """Audio written so far, in seconds."""
        return self.frames_written / self.rate_hz

    def write(self, samples: np.ndarray) -> None:
        """Append samples (int16 or float, (N,) or (N, channels)); the header is rewritten when due."""
        if self._f is None:
            raise ValueError(f"{self.path}: write to a closed WavWriter")
        pcm = _pcm16(samples)
        if pcm.ndim == 1:
            pcm = pcm[:, None]
        if pcm.ndim != 2 or pcm.shape[1] != self.channels:
            raise ValueError(f"{self.path}: samples must be (N,) or (N, {self.channels}); got shape {pcm.shape}")
        data_bytes = (self.frames_written + pcm.shape[0]) * 2 * self.channels
        if data_bytes > _MAX_DATA_BYTES:
            raise ValueError(f"{self.path}: WAV data would exceed 4 GiB ({data_bytes} bytes)")
        self._f.write(np.ascontiguousarray(pcm, dtype="<i2").tobytes())
        self.frames_written += pcm.shape[0]
        if self.frames_written - self._frames_at_header >= self._interval_frames:
            self.flush()

    def flush(self) -> None:
        """Rewrite the RIFF and data sizes for everything written so far; flush to disk."""
        if self._f is None:
            return
        end = self._f.tell()
        self._f.seek(0)
        self._f.write(_header(self.rate_hz, self.channels, self.frames_written * 2 * self.channels))
        self._f.seek(end)
        self._f.flush()
        self._frames_at_header = self.frames_written

    def close(self) -> None:
        """Final header and close; closing twice is safe."""
        if self._f is None:
            return
        self.flush()
        self._f.close()
        self._f = None

    def __enter__(self) -> "WavWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_wav(path: str | Path, mono: bool = True) -> tuple[np.ndarray, int]:
    """Read a 16-bit PCM WAV: (int16 samples, rate_hz). `mono` averages the channels."""
    path = Path(path)
    try:
        with wave.open(str(path), "rb") as w:
            width, channels, rate = w.getsampwidth(), w.getnchannels(), w.getframerate()
            if width != 2:
                raise ValueError(f"{path}: sample width is {8 * width} bits; this reader takes 16-bit PCM")
            data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    except (wave.Error, EOFError) as e:
        raise ValueError(f"{path}: not a readable PCM WAV file ({e})") from None
    data = data.reshape(-1, channels)
    if mono:
        out = data[:, 0].copy() if channels == 1 else \
            np.rint(data.astype(np.float64).mean(axis=1)).astype(np.int16)
        return out, rate
    return data.copy(), rate
