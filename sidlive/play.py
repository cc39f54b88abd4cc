"""`sidlive play`: render a frames file or .sid live on an audio device (sounddevice).

    sidlive play IN [--chip 6581|8580] [--rate 44100|48000] [--mute 1,3] [--seconds S]
                    [--no-filter] [--subtune N] [--device NAME_OR_INDEX]

Rendering happens in the audio callback, one frame at a time, through the same
`Renderer.read_into` the live daemon uses. Exit code 3 when there is no audio device.
"""
from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

import numpy as np

from sidlive.frames import Frames, FramesFormatError
from sidlive.render import add_render_args, load_input, parse_voices
from sidlive.renderer import Renderer
from sidlive.wav import read_wav

NO_DEVICE_EXIT = 3


class NoAudioDevice(RuntimeError):
    """No usable audio output device (or no PortAudio library)."""


def _sounddevice():
    try:
        import sounddevice as sd
    except (ImportError, OSError) as e:
        raise NoAudioDevice(f"no audio: the sounddevice/PortAudio library cannot load ({e})") from None
    return sd


def output_device(device=None) -> dict:
    """The output device to use (default or NAME_OR_INDEX), or NoAudioDevice saying why."""
    sd = _sounddevice()
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


def _stream_blocks(fill, n_total: int, rate_hz: int, device=None, blocksize: int = 1024) -> int:
    """Play `n_total` samples produced by `fill(out_float32_view)`; returns underflow count."""
    sd = _sounddevice()
    info = output_device(device)
    done = threading.Event()
    state = {"left": n_total, "underflows": 0}

    def callback(outdata, frames, time_info, status):
        if status.output_underflow:
            state["underflows"] += 1
        take = min(frames, state["left"])
        fill(outdata[:take, 0])
        if take < frames:
            outdata[take:] = 0.0
        if outdata.shape[1] > 1:
            outdata[:, 1:] = outdata[:, :1]
        state["left"] -= take
        if state["left"] <= 0:
            raise sd.CallbackStop

    with sd.OutputStream(samplerate=rate_hz, channels=1, dtype="float32", blocksize=blocksize,
                         latency="high", device=info["index"], callback=callback,
                         finished_callback=done.set):
        done.wait()
    return state["underflows"]


def play_frames(frames: Frames, *, chip: str | None = None, rate_hz: int = 48_000,
                muted_voices=(), filter_enabled: bool = True, device=None) -> int:
    """Play `frames` through a Renderer in the audio callback; returns underflow count."""
    r = Renderer(frames, chip=chip or frames.chip, rate_hz=rate_hz, muted_voices=muted_voices,
                 filter_enabled=filter_enabled, clock=frames.clock)
    return _stream_blocks(r.read_into, r.samples_for_frames(len(frames)), rate_hz, device)


def play_wav(path: str | Path, device=None) -> int:
    """Play a 16-bit WAV file; returns underflow count."""
    samples, rate = read_wav(path)
    pcm = samples.astype(np.float32) / 32768.0
    pos = [0]

    def fill(out):
        out[:] = pcm[pos[0]:pos[0] + len(out)]
        pos[0] += len(out)

    return _stream_blocks(fill, len(pcm), rate, device)


def play_wav_if_device(path: str | Path, device=None) -> str:
    """Play the WAV when an output device exists; returns a line saying what happened."""
    try:
        output_device(device)
    except NoAudioDevice as e:
        return f"not played: {e}"
    underflows = play_wav(path, device)
    return f"played {path}" + (f" ({underflows} underflows)" if underflows else "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="sidlive play", description=__doc__.splitlines()[0])
    add_render_args(ap)
    ap.add_argument("--device", default=None, help="output device name or index (default: the system's)")
    args = ap.parse_args(argv)
    try:
        muted = parse_voices(args.mute)
        output_device(args.device)   # fail fast, before dumping or rendering anything
        frames = load_input(args.input, args.seconds, args.subtune)
        print(f"playing {frames.title or args.input} ({frames.seconds:.1f} s, chip {args.chip or frames.chip}, "
              f"{args.rate} Hz); Ctrl-C stops")
        underflows = play_frames(frames, chip=args.chip, rate_hz=args.rate, muted_voices=muted,
                                 filter_enabled=not args.no_filter, device=args.device)
    except NoAudioDevice as e:
        print(f"sidlive play: {e}", file=sys.stderr)
        return NO_DEVICE_EXIT
    except (OSError, ValueError, RuntimeError, FramesFormatError) as e:
        print(f"sidlive play: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopped")
        return 130
    if underflows:
        print(f"{underflows} output underflows (the machine could not keep up)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
