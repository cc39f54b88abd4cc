"""`sidlive play`: render a frames file or .sid live on an audio device (sounddevice).

    sidlive play IN [--chip 6581|8580] [--rate 44100|48000] [--mute 1,3] [--seconds S]
                    [--no-filter] [--subtune N] [--device NAME_OR_INDEX] [--asid PORT|virtual]

Rendering happens in the audio callback, one frame at a time, through the same
`Renderer.read_into` the live daemon uses. Exit code 3 when there is no audio device
(with --asid the frames then go to the ASID port alone). --asid streams every frame as an
ASID update to a real SID (docs/asid.md), started after the stream's output latency so
chip and speakers play together; muted voices go with their waveform bits cleared.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from sidlive.audio.outputs import NoAudioDevice, load_sounddevice, output_device
from sidlive.audio.renderer import Renderer
from sidlive.audio.wav import read_wav
from sidlive.frames import Frames
from sidlive.live.asidfeed import mute_row
from sidlive.midi.asid import send_paced
from sidlive.frames import NUM_REGS

NO_DEVICE_EXIT = 3


def _stream_blocks(fill, n_total: int, rate_hz: int, device=None, blocksize: int = 1024, on_start=None) -> int:
    """Play `n_total` samples produced by `fill(out_float32_view)`; returns underflow count.
    on_start(latency_s), if given, runs once the stream has started."""
    sd = load_sounddevice()
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
                         finished_callback=done.set) as stream:
        if on_start is not None:
            on_start(float(stream.latency))
        done.wait()
    return state["underflows"]


def asid_frames(frames: Frames, muted_voices=()) -> np.ndarray:
    """The frames as they go to a real SID: muted voices without their waveform bits."""
    on = [v not in set(muted_voices) for v in (1, 2, 3)]
    return np.array([mute_row(row, on, np.empty_like(row)) for row in frames.regs], np.uint8).reshape(-1, NUM_REGS)


def play_frames(frames: Frames, *, chip: str | None = None, rate_hz: int = 48_000,
                muted_voices=(), filter_enabled: bool = True, device=None, asid=None) -> int:
    """Play `frames` through a Renderer in the audio callback; returns underflow count.
    asid: an AsidOut (or anything with send_frame) that gets every frame, paced, beside
    the audio; started once the stream runs, after its output latency."""
    r = Renderer(frames, chip=chip or frames.chip, rate_hz=rate_hz, muted_voices=muted_voices,
                 filter_enabled=filter_enabled, clock=frames.clock)
    if asid is None:
        return _stream_blocks(r.read_into, r.samples_for_frames(len(frames)), rate_hz, device)
    stop = threading.Event()
    regs = asid_frames(frames, muted_voices)
    sender = threading.Thread(target=lambda: None)

    def on_start(latency_s: float) -> None:
        nonlocal sender

        def run():
            if not stop.wait(latency_s):
                send_paced(asid, regs, frames.frame_rate_hz, stop)
        sender = threading.Thread(target=run, name="sidlive-play-asid", daemon=True)
        sender.start()

    try:
        return _stream_blocks(r.read_into, r.samples_for_frames(len(frames)), rate_hz, device, on_start=on_start)
    finally:
        sender.join(timeout=1.0 + 1.0 / frames.frame_rate_hz)   # the last frames are due as the audio ends
        stop.set()
        sender.join()


def play_asid_only(frames: Frames, asid, muted_voices=()) -> int:
    """No audio device: the frames go to the ASID port alone, paced; returns frames sent."""
    return send_paced(asid, asid_frames(frames, muted_voices), frames.frame_rate_hz)


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
