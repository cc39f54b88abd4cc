"""`sidlive generate`: frames from a model (.sidm) through the Numba engine, to .regs, .txt, .wav or .sid."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.generator import DEFAULT_MAX_SILENCE_S
from sidlive.control.params import SAMPLING_DEFAULTS
from sidlive.frames import PAL_FRAME_RATE_HZ, FramesFormatError
from sidlive.live.offline import RATES_HZ, generate_file


def main(argv: list[str] | None = None) -> int:
    """`sidlive generate`: generate frames from a model to a file; returns the exit status."""
    ap = argparse.ArgumentParser(prog="sidlive generate", description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="model file (default presets/models/default.sidm)")
    ap.add_argument("--frames", type=int, default=700, help=f"frames to generate ({PAL_FRAME_RATE_HZ:.3f} per second; default 700)")
    d = SAMPLING_DEFAULTS   # the same defaults as `sidlive live`
    ap.add_argument("--temp", type=float, default=d["temperature"],
                    help=f"temperature, 0 = greedy (default {d['temperature']})")
    ap.add_argument("--top-k", type=int, default=d["top_k"], help=f"keep the k most likely values, 0 = off "
                                                                   f"(default {d['top_k']})")
    ap.add_argument("--top-p", type=float, default=d["top_p"], help=f"nucleus sampling mass, 1 = off "
                                                                     f"(default {d['top_p']})")
    ap.add_argument("--repetition", type=float, default=d["repetition"],
                    help="how much a pointer model repeats from the history: 0 never copies, 1 as trained, "
                         f"2 loops tighter (default {d['repetition']})")
    ap.add_argument("--max-silence-s", type=float, default=DEFAULT_MAX_SILENCE_S,
                    help="the silence guard: after this many seconds of silence the next frame starts a note "
                         f"(the model picks it), 0 = off (default {DEFAULT_MAX_SILENCE_S})")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument("--prompt", type=Path, default=None, help="prompt: a .sid tune or a .regs/.txt frames file")
    ap.add_argument("--prompt-seconds", type=float, default=4.0, help="seconds of the prompt to use (default 4)")
    ap.add_argument("--composer", default=None, help="condition on a composer the model knows (default: any)")
    ap.add_argument("--with-prompt", action="store_true", help="write the prompt frames before the generated ones")
    ap.add_argument("--chip", choices=("6581", "8580"), default=None, help="SID model for .wav (default 6581)")
    ap.add_argument("--rate", type=int, choices=RATES_HZ, default=48_000, help="sample rate of a .wav in Hz")
    ap.add_argument("-o", "--output", type=Path, required=True, help="output file (.regs, .txt, .wav or .sid)")
    args = ap.parse_args(argv)
    try:
        info = generate_file(args.output, model=args.model, frames=args.frames, temperature=args.temp,
                             top_k=args.top_k, top_p=args.top_p, repetition=args.repetition, seed=args.seed,
                             max_silence_s=args.max_silence_s,
                             prompt=args.prompt,
                             prompt_seconds=args.prompt_seconds, composer=args.composer,
                             with_prompt=args.with_prompt, chip=args.chip, rate_hz=args.rate,
                             log=lambda s: print(s, file=sys.stderr, flush=True))
    except (OSError, ValueError, RuntimeError, FramesFormatError) as e:
        print(f"sidlive generate: {e}", file=sys.stderr)
        return 1
    print(f"wrote {info['out']}: {info['frames']} frames ({info['generated']} generated after "
          f"{info['prompt_frames']} prompt frames) at {info['frames_per_s']:.0f} frames/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
