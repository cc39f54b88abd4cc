"""`sidlive render`: a frames file (.regs/.txt), a .sid or a GoatTracker .sng to a 16-bit mono WAV.

    sidlive render IN -o OUT.wav [--chip 6581|8580] [--rate 44100|48000] [--mute 1,3]
                                 [--seconds S] [--no-filter] [--subtune N]
                                 [--fx NAME|FILE.toml] [--fx-tail S]

--fx runs an effects chain (presets/fx/NAME.toml, docs/fx.md) over the render with pyo's
offline server; the dry render is kept beside it as OUT.dry.wav.

A .sid is dumped on the fly (sidlive.c64.dump), a .sng played by pygoattracker (until every
channel has looped once). The chip defaults to the frames' metadata.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from sidlive.audio.fx import find_chain, render_fx
from sidlive.audio.renderer import render
from sidlive.audio.wav import write_wav
from sidlive.c64.goattracker import goattracker_frames
from sidlive.frames import FramesFormatError
from sidlive.c64.load import load_tune

RATES_HZ = (44_100, 48_000)
DEMO_SONG = "dojo"        # GoatTracker example by Cadaver (GPL-2+)
DEMO_SECONDS = 30.0


def parse_voices(text: str) -> frozenset:
    """'1,3' -> {1, 3}; voices are 1..3."""
    voices = set()
    for part in filter(None, (p.strip() for p in str(text).split(","))):
        if not part.isdigit() or not 1 <= int(part) <= 3:
            raise ValueError(f"--mute: voice {part!r} is not allowed; voices are 1..3 (e.g. --mute 1,3)")
        voices.add(int(part))
    return frozenset(voices)


def render_file(in_path: str | Path, out_path: str | Path, *, chip: str | None = None,
                rate_hz: int = 48_000, muted_voices=(), seconds: float | None = None,
                filter_enabled: bool = True, subtune: int | None = None) -> dict:
    """Render IN to the WAV OUT; returns what was done (audio and wall seconds, chip...)."""
    t0 = time.perf_counter()
    frames = load_tune(in_path, seconds, subtune)
    t1 = time.perf_counter()
    samples = render(frames, chip=chip, rate_hz=rate_hz, muted_voices=muted_voices,
                     filter_enabled=filter_enabled)
    t2 = time.perf_counter()
    write_wav(out_path, samples, rate_hz)
    audio_s = len(samples) / rate_hz
    return {"out": str(out_path), "frames": len(frames), "audio_s": audio_s,
            "chip": chip or frames.chip, "clock": frames.clock, "rate_hz": rate_hz,
            "load_s": t1 - t0, "render_s": t2 - t1,
            "realtime_factor": audio_s / max(t2 - t1, 1e-9), "title": frames.title}


def demo(out_dir: str | Path, seconds: float = DEMO_SECONDS) -> Path:
    """Render a GoatTracker example song (Debian's goattracker package) to
    OUT_DIR/demo-<song>.wav at 48 kHz; prints and returns the path. Playing is the
    caller's (sidlive.commands.demo plays it with sidlive.live.playback.play_wav_if_device)."""

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = goattracker_frames(DEMO_SONG, seconds=seconds)
    samples = render(frames, rate_hz=48_000)
    path = out_dir / f"demo-{DEMO_SONG}.wav"
    write_wav(path, samples, 48_000)
    print(f"demo: {frames.title} by {frames.author} ({len(samples) / 48_000:.1f} s, "
          f"chip {frames.chip}) -> {path}")
    return path


def add_render_args(ap: argparse.ArgumentParser) -> None:
    """Options shared by `render` and `play`."""
    ap.add_argument("input", type=Path, help="frames file (.regs/.txt), a .sid tune or a GoatTracker .sng")
    ap.add_argument("--chip", choices=("6581", "8580"), default=None,
                    help="SID model (default: the frames' metadata)")
    ap.add_argument("--rate", type=int, choices=RATES_HZ, default=48_000, help="sample rate in Hz (default 48000)")
    ap.add_argument("--mute", type=str, default="", help="voices to mute, e.g. 1,3")
    ap.add_argument("--seconds", type=float, default=None, help="render at most this many seconds")
    ap.add_argument("--no-filter", action="store_true", help="turn the SID filter emulation off")
    ap.add_argument("--subtune", type=int, default=None, help="1-based subtune of a .sid/.sng (default: the start song / the first)")


def main(argv: list[str] | None = None) -> int:
    """`sidlive render`: render a tune or frames file to WAV, optionally through effects; returns the exit status."""
    ap = argparse.ArgumentParser(prog="sidlive render", description=__doc__.splitlines()[0])
    add_render_args(ap)
    ap.add_argument("-o", "--output", type=Path, required=True, help="output WAV file")
    ap.add_argument("--fx", default=None, help="effects chain: a preset name in presets/fx or a .toml file")
    ap.add_argument("--fx-tail", type=float, default=2.0, help="seconds rendered after the music for echoes "
                                                               "and reverb tails (0..30, default 2)")
    args = ap.parse_args(argv)
    try:
        muted = parse_voices(args.mute)
        chain = None
        if args.fx is not None:
            chain = find_chain(args.fx)     # fail fast, before rendering
        dry = args.output.with_suffix(".dry.wav") if chain is not None else args.output
        info = render_file(args.input, dry, chip=args.chip, rate_hz=args.rate,
                           muted_voices=muted, seconds=args.seconds,
                           filter_enabled=not args.no_filter, subtune=args.subtune)
        if chain is not None:
            fx = render_fx(dry, args.output, chain, tail_s=args.fx_tail)
    except (OSError, ValueError, RuntimeError, FramesFormatError) as e:
        print(f"sidlive render: {e}", file=sys.stderr)
        return 1
    print(f"wrote {info['out']}: {info['audio_s']:.2f} s, {info['frames']} frames, chip {info['chip']}, "
          f"{info['rate_hz']} Hz; rendered in {info['render_s']:.2f} s "
          f"({info['realtime_factor']:.1f}x real time)")
    if chain is not None:
        print(f"wrote {fx['out']}: effects {fx['fx']!r}, {fx['audio_s']:.2f} s, effects CPU {fx['fx_cpu_s']:.2f} s "
              f"({fx['fx_realtime_factor']:.0f}x real time)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
