"""`sidlive export`: register frames to a PSID v2 .sid that plays on a C64 and in SID players; `sidlive export check` runs the export check."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sidlive.export.player import RAM_END
from sidlive.export.psidfile import ExportError, export_frames
from sidlive.frames import FramesFormatError, load
from sidlive.measure.exportcheck import check_main


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for `sidlive export`."""
    ap = argparse.ArgumentParser(prog="sidlive export", description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="+", type=Path, help="frames files (.regs/.txt); each one a subtune")
    ap.add_argument("-o", "--output", type=Path, required=True, help="output .sid file")
    ap.add_argument("--title", default=None, help="title (default: the frames' metadata)")
    ap.add_argument("--author", default=None, help="author (default: the frames' metadata)")
    ap.add_argument("--released", default=None, help="released line, e.g. '2025 sidlive' (default: metadata)")
    ap.add_argument("--loop", action="store_true", help="loop each subtune instead of ending in silence")
    ap.add_argument("--seconds", type=float, default=None, help="export at most this many seconds of each input")
    return ap


def main(argv: list[str] | None = None) -> int:
    """`sidlive export`: frames files to a PSID .sid (or `check`); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "check":
        return check_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.output.suffix.lower() != ".sid":
        print(f"sidlive export: -o {args.output}: the output must be a .sid file", file=sys.stderr)
        return 2
    if args.seconds is not None and not args.seconds > 0:
        print(f"sidlive export: --seconds must be > 0, got {args.seconds}", file=sys.stderr)
        return 2
    try:
        frames_list = []
        for p in args.inputs:
            fr = load(p)
            if not fr.source:
                fr.source = str(p)
            if args.seconds is not None:
                fr = fr.slice(0, max(1, int(round(args.seconds * fr.frame_rate_hz))))
            if len(fr) == 0:
                raise ExportError(f"{p}: no frames")
            frames_list.append(fr)
        res = export_frames(frames_list, args.output, title=args.title, author=args.author,
                            released=args.released, loop=args.loop)
    except (OSError, FramesFormatError, ExportError) as e:
        print(f"sidlive export: {e}", file=sys.stderr)
        return 1
    total = sum(res.frames)
    rate = frames_list[0].frame_rate_hz
    print(f"wrote {res.path}: {res.subtunes} subtune{'s' * (res.subtunes > 1)}, {total} frames "
          f"({total / rate:.1f} s), {res.data_bytes} bytes of frame data = {res.bytes_per_frame:.2f} "
          f"bytes/frame; image ${res.load_addr:04X}-${res.load_addr + res.image_bytes - 1:04X} "
          f"({res.free_bytes} bytes free below ${RAM_END:04X})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
