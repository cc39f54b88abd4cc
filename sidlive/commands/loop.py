"""`sidlive loop`: cut a prompt loop (2-16 s) from a tune or frames file."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sidlive.live.loops import MAX_SECONDS, MIN_SECONDS, LoopError, cut_to_file, parse_time


def main(argv: list[str] | None = None) -> int:
    """`sidlive loop`: cut a prompt loop from a tune or frames file to .regs; returns the exit status."""
    ap = argparse.ArgumentParser(prog="sidlive loop", description="Cut a prompt loop (2-16 s) from a tune or "
                                 "frames file: .sid (dumped), .sng (GoatTracker), .regs or .txt.")
    ap.add_argument("input", type=Path, help="TUNE.sid, SONG.sng, FRAMES.regs or FRAMES.txt")
    ap.add_argument("--start", default="0", help="where the loop starts: seconds or m:ss (default 0)")
    ap.add_argument("--seconds", type=float, default=4.0, help=f"length, {MIN_SECONDS:g}..{MAX_SECONDS:g} s (default 4)")
    ap.add_argument("--subtune", type=int, default=None, help="1-based subtune of a .sid/.sng")
    ap.add_argument("--name", default=None, help="loop name (default: the output file's stem)")
    ap.add_argument("--tempo", type=float, default=None, help="tempo in BPM, if known")
    ap.add_argument("--license", default="", help="license of the source material (kept in the metadata)")
    ap.add_argument("-o", "--output", type=Path, required=True, help="output loop, .regs")
    args = ap.parse_args(argv)
    try:
        lp = cut_to_file(args.input, args.output, parse_time(args.start), args.seconds, subtune=args.subtune,
                         name=args.name, tempo_bpm=args.tempo, license=args.license)
    except (LoopError, OSError, ValueError, RuntimeError) as e:
        print(f"sidlive loop: {e}", file=sys.stderr)
        return 1
    print(f"wrote {lp.path}: loop {lp.name!r}, {len(lp.regs)} frames ({lp.seconds:.2f} s) from {lp.source}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
