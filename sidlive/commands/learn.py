"""`sidlive learn`: bind the next moved MIDI control (CC or note) to a parameter."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sidlive.control.params import PARAMS
from sidlive.midi.learn import default_map_path, learn


def main(argv: list[str] | None = None) -> int:
    """`sidlive learn`: bind the next moved MIDI control to a parameter in a controller map; returns the exit status."""
    ap = argparse.ArgumentParser(prog="sidlive learn", description=__doc__.split("\n\n")[0])
    ap.add_argument("param", help=f"parameter to bind: {', '.join(PARAMS)}")
    ap.add_argument("--controller", type=Path, default=None,
                    help=f"controller map to update or create (default {default_map_path()})")
    ap.add_argument("--midi", default="virtual", help="input port name (or a unique part of it), or 'virtual'")
    ap.add_argument("--api", default="auto", choices=("auto", "jack", "alsa"), help="MIDI system")
    ap.add_argument("--mode", choices=("momentary", "toggle"), default=None, help="button behaviour")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (default 30)")
    args = ap.parse_args(argv)
    if args.param not in PARAMS:
        print(f"sidlive learn: unknown parameter {args.param!r}; known: {', '.join(PARAMS)}", file=sys.stderr)
        return 2
    where = args.midi if args.midi != "virtual" else "the virtual port sidlive:midi_in"
    print(f"move a control on {where} to bind it to {args.param} ...", flush=True)
    try:
        result = learn(args.param, args.controller, args.midi, args.timeout, args.api, mode=args.mode)
    except (OSError, ValueError) as e:
        print(f"sidlive learn: {e}", file=sys.stderr)
        return 1
    if result is None:
        print(f"sidlive learn: no control moved within {args.timeout:g} s", file=sys.stderr)
        return 1
    _, msg = result
    what = f"CC {msg.control}" if msg.type == "control_change" else f"note {msg.note}"
    path = args.controller or default_map_path()
    print(f"bound {what} (channel {msg.channel + 1}) to {args.param}; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
