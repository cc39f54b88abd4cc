"""`sidlive bench`: run named benchmarks and print this machine's figures."""
from __future__ import annotations

import argparse
import json
import sys

from sidlive.measure.bench import format_report, run


def main(argv: list[str] | None = None) -> int:
    """`sidlive bench`: run the named benchmarks and print the figures; returns the exit status."""
    ap = argparse.ArgumentParser(prog="sidlive bench", description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (default: all), e.g. soak")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--only", nargs="+", default=None, metavar="NAME", help="run only these benchmarks")
    ap.add_argument("--quick", action="store_true", help="short workloads (seconds, not minutes)")
    ap.add_argument("--minutes", type=float, default=None, help="length of timed runs that take one (soak)")
    ap.add_argument("--model", default=None, help="model file for model benchmarks (default: the shipped one)")
    ap.add_argument("--fx", default=None, help="soak with this effects chain on (presets/fx name)")
    args = ap.parse_args(argv)
    try:
        results = run((args.names or []) + (args.only or []) or None, quick=args.quick,
                      minutes=args.minutes, model=args.model, fx=args.fx)
    except ValueError as e:
        print(f"sidlive bench: {e}", file=sys.stderr)
        return 2
    print(json.dumps(results, indent=1) if args.json else format_report(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
