"""`sidlive recover`: finish recordings left behind by a crash or kill -9."""
from __future__ import annotations

import argparse
import sys

from sidlive.audio.recover import recover


def main(argv: list[str] | None = None) -> int:
    """`sidlive recover`: finish each crashed recording given; returns 1 if any failed, else 0."""
    ap = argparse.ArgumentParser(prog="sidlive recover", description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+", help="a recording's base name, or its .wav / .regs.part / .jsonl")
    ap.add_argument("--force", action="store_true", help="replace an existing .regs")
    args = ap.parse_args(argv)
    status = 0
    for p in args.paths:
        try:
            for line in recover(p, args.force):
                print(line)
        except (OSError, ValueError) as e:
            print(f"sidlive recover: {e}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
