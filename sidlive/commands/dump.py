"""`sidlive dump`: a PSID tune to register frames, or a whole HVSC tree to training shards."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sidlive.c64.collection import DEFAULT_SHARD_MB, dump_collection
from sidlive.c64.dump import DEFAULT_SECONDS, DumpError, dump_tune
from sidlive.c64.psid import PsidFormatError, UnsupportedTune
from sidlive.frames import FramesFormatError, save
from sidlive.frames import PAL_FRAME_RATE_HZ


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for dumping one tune."""
    p = argparse.ArgumentParser(
        prog="sidlive dump",
        description="Dump a PSID tune's SID registers, one frame per video frame "
                    f"(PAL: {PAL_FRAME_RATE_HZ:.3f}/s). "
                    "Given a folder first (sidlive dump HVSC_ROOT OUT_DIR ...), runs "
                    "the resumable collection dump instead; see its --help.")
    p.add_argument("tune", help="a PSID .sid file")
    p.add_argument("--subtune", type=int, default=None, help="1-based subtune (default: the start song)")
    p.add_argument("--seconds", type=float, default=None,
                   help="length to dump (default: the tune's Songlengths.md5 entry when it lives "
                        f"under an HVSC root, else {DEFAULT_SECONDS:g} s)")
    p.add_argument("--raw", action="store_true",
                   help="plain register snapshots: do not mark gate restarts inside one frame")
    p.add_argument("-o", "--output", required=True, help="output frames file, .regs or .txt")
    return p


def main(argv: list[str] | None = None) -> int:
    """`sidlive dump`: one tune to a frames file, or (a folder first) the collection dump; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and Path(argv[0]).is_dir():
        return collection_main(argv)
    args = build_parser().parse_args(argv)
    out = Path(args.output)
    if out.suffix.lower() not in (".regs", ".txt"):
        print(f"sidlive dump: -o {out}: extension must be .regs or .txt", file=sys.stderr)
        return 2
    try:
        frames = dump_tune(args.tune, args.subtune, args.seconds, raw=args.raw)
        save(frames, out)
    except (OSError, PsidFormatError, UnsupportedTune, DumpError, FramesFormatError, ValueError) as e:
        print(f"sidlive dump: {e}", file=sys.stderr)
        return 1
    x = frames.extra
    print(f"{out}: {len(frames)} frames ({frames.seconds:.1f} s, length from {x['seconds_from']}), "
          f"subtune {x['subtune']}/{x['songs']}, {x['speed']} {x['play_hz']:.2f} Hz, "
          f"status {x['status']}")
    if x["status"] != "ok":
        print(f"sidlive dump: warning: {x['status']}: {x['message']} (kept {len(frames)} frames)",
              file=sys.stderr)
        return 1
    return 0


def collection_parser() -> argparse.ArgumentParser:
    """The argument parser for the collection dump (HVSC_ROOT OUT_DIR)."""
    p = argparse.ArgumentParser(
        prog="sidlive dump HVSC_ROOT OUT_DIR",
        description="Dump every PSID tune under HVSC_ROOT to OUT_DIR/index.jsonl + shards/*.npy "
                    "(resumable; safe to kill). Lengths from HVSC_ROOT/DOCUMENTS/Songlengths.md5 "
                    f"(else {DEFAULT_SECONDS:g} s), capped at --max-seconds.")
    p.add_argument("hvsc_root")
    p.add_argument("out_dir")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--max-seconds", type=float, default=DEFAULT_SECONDS,
                   help=f"cap on each dump's length (default {DEFAULT_SECONDS:g})")
    p.add_argument("--all-subtunes", action="store_true", help="every subtune, not just the start song")
    p.add_argument("--limit", type=int, default=None, help="only the first N files (path order)")
    p.add_argument("--shard-mb", type=float, default=DEFAULT_SHARD_MB,
                   help=f"shard size in MiB (default {DEFAULT_SHARD_MB})")
    p.add_argument("--no-progress", action="store_true")
    return p


def collection_main(argv: list[str] | None = None) -> int:
    """`sidlive dump HVSC_ROOT OUT_DIR`: the resumable collection dump."""
    args = collection_parser().parse_args(argv)
    try:
        dump_collection(args.hvsc_root, args.out_dir, workers=args.workers,
                        max_seconds=args.max_seconds, all_subtunes=args.all_subtunes,
                        limit=args.limit, shard_mb=args.shard_mb, progress=not args.no_progress)
    except (ValueError, OSError) as e:
        print(f"collection dump: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
