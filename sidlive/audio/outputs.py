"""Audio outputs for `sidlive live`: a sounddevice stream (JACK or ALSA through PortAudio)
or, with no device or after the JACK server died, a paced thread that drives the same
callback (`NullOutput`). Both call `callback(outdata, frames, time_info, status)` with
sounddevice's arguments; `find_device` picks the output for --audio.
"""
from __future__ import annotations

import threading
import time

import numpy as np

from sidlive.audio.jackserver import jack_running, portaudio_jack_device


class NoAudioDevice(RuntimeError):
    """No usable audio output device (or no PortAudio library)."""


def load_sounddevice():
    """The sounddevice module, or NoAudioDevice when PortAudio cannot load."""
    try:
        import sounddevice as sd  # loads PortAudio: optional, so rendering works on a machine without it
    except (ImportError, OSError) as e:
        raise NoAudioDevice(f"no audio: the sounddevice/PortAudio library cannot load ({e})") from None
    return sd


def output_device(device=None) -> dict:
    """The output device to use (default or NAME_OR_INDEX), or NoAudioDevice saying why."""
    sd = load_sounddevice()
    if isinstance(device, str) and device.isdigit():
        device = int(device)
    try:
        info = sd.query_devices(device, "output")
    except (ValueError, sd.PortAudioError) as e:
        n = len(sd.query_devices())
        what = "no audio output device" if n == 0 else f"audio output device {device!r} unavailable"
        raise NoAudioDevice(f"{what} ({e}); `sidlive devices` lists what there is") from None
    if info["max_output_channels"] < 1:
        raise NoAudioDevice(f"audio device {info['name']!r} has no output channels")
    return dict(info)


class _TimeInfo:
    __slots__ = ("currentTime", "outputBufferDacTime")

    def __init__(self):
        self.currentTime = 0.0
        self.outputBufferDacTime = 0.0


class _Status:
    __slots__ = ("output_underflow",)

    def __init__(self):
        self.output_underflow = False


class NullOutput:
    """No device: a thread calls the callback every block at the audio rate (absolute
    deadlines; a block more than 100 ms late resynchronises and counts in `late`)."""

    name = "null"

    def __init__(self, callback, rate_hz: int = 48_000, block_frames: int = 256, channels: int = 1):
        self.callback = callback
        self.rate_hz = rate_hz
        self.block_frames = block_frames
        self._out = np.zeros((block_frames, channels), np.float32)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.late = 0
        self.latency_s = block_frames / rate_hz
        self.error: BaseException | None = None

    def start(self) -> "NullOutput":
        """Start the pacing thread."""
        self._thread = threading.Thread(target=self._run, name="sidlive-null-audio", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        period = self.block_frames / self.rate_hz
        ti, st = _TimeInfo(), _Status()
        t_next = time.perf_counter()
        try:
            while not self._stop.is_set():
                now = time.perf_counter()
                if now < t_next:
                    time.sleep(t_next - now)
                    now = time.perf_counter()
                elif now - t_next > 0.1:
                    self.late += 1
                    t_next = now
                ti.currentTime = now
                ti.outputBufferDacTime = t_next + period
                self.callback(self._out, self.block_frames, ti, st)
                t_next += period
        except BaseException as e:  # noqa: BLE001 - reported by the daemon's watchdog
            self.error = e

    @property
    def active(self) -> bool:
        """True while the pacing thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Stop the pacing thread (waits up to 2 s for it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)


class StreamOutput:
    """A sounddevice OutputStream (JACK or ALSA through PortAudio). After `abandon()` (the
    server died) the callback outputs silence and the stream is never closed: closing a
    stream whose JACK server is gone blocks forever inside libjack."""

    def __init__(self, callback, device: int, rate_hz: int = 48_000, block_frames: int = 256,
                 channels: int = 1, name: str = ""):
        sd = load_sounddevice()
        self.callback = callback
        self.dead = False
        self.name = name or str(device)
        self.stream = sd.OutputStream(samplerate=rate_hz, blocksize=block_frames, channels=channels,
                                      dtype="float32", latency="low", device=device, callback=self._cb)
        self.latency_s = float(self.stream.latency)

    def _cb(self, outdata, frames, time_info, status) -> None:
        if self.dead:
            outdata.fill(0)
            return
        self.callback(outdata, frames, time_info, status)

    def start(self) -> "StreamOutput":
        """Start the stream."""
        self.stream.start()
        return self

    @property
    def active(self) -> bool:
        """True while the stream runs and has not been abandoned."""
        return not self.dead and bool(self.stream.active)

    def abandon(self) -> None:
        """Mark the stream dead (its server died): the callback outputs silence and stop() leaves it open."""
        self.dead = True

    def stop(self) -> None:
        """Stop and close the stream, unless it was abandoned."""
        if self.dead:
            return
        self.stream.stop()
        self.stream.close()


def find_device(spec):
    """(PortAudio device index, name, channels) for None (JACK if running, else the
    default), 'jack', or a device name/index; NoAudioDevice saying why not."""
    sd = load_sounddevice()
    if spec == "jack" or (spec is None and jack_running()):
        dev = portaudio_jack_device()
        if dev is None:
            if spec == "jack":
                raise NoAudioDevice("no JACK output: no JACK server runs, or PortAudio was built without JACK")
        else:
            info = sd.query_devices(dev)
            return dev, f"jack:{info['name']}", min(2, info["max_output_channels"])
    info = output_device(spec)
    return info["index"], str(info["name"]), min(2, info["max_output_channels"])
