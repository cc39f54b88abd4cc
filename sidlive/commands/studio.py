"""`sidlive studio`: the browser studio — prompt the model with fragments of tunes, keep the takes.

    sidlive studio [--model M] [--library DIR] [--port 8765] [--host 127.0.0.1]
                   [--live-host 127.0.0.1] [--live-port 9000] [--live-loops DIR]

Prints the page's URL and serves until Ctrl-C. The library (takes, uploads) lives in
$XDG_DATA_HOME/sidlive/studio unless --library names another folder. See docs/studio.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sidlive.paths import DEFAULT_MODEL
from sidlive.studio.library import default_root
from sidlive.studio.server import DEFAULT_HOST, DEFAULT_PORT, StudioServer, warn_if_exposed
from sidlive.studio.service import Studio


def main(argv: list[str] | None = None) -> int:
    """`sidlive studio`: serve the studio until stopped; returns the exit status."""
    ap = argparse.ArgumentParser(prog="sidlive studio", description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help=f"model .sidm to start with (default {DEFAULT_MODEL})")
    ap.add_argument("--library", type=Path, default=None, help=f"library folder (default {default_root()})")
    ap.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free one)")
    ap.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (default 127.0.0.1: this machine "
                                                         "only; anything else is reachable from the network)")
    ap.add_argument("--live-host", default="127.0.0.1", help="where `sidlive live` listens for OSC")
    ap.add_argument("--live-port", type=int, default=9000, help="its OSC port (default 9000)")
    ap.add_argument("--live-loops", type=Path, default=None,
                    help="the --loops folder `sidlive live` was started with (default: it reads the shipped loops "
                         "and the user's loops folder, where the studio writes)")
    args = ap.parse_args(argv)
    if not 0 <= args.port <= 65535:
        print(f"sidlive studio: --port {args.port} is out of range 0..65535", file=sys.stderr)
        return 2
    warn_if_exposed(args.host)
    try:
        studio = Studio(args.library, args.model, live_host=args.live_host, live_port=args.live_port,
                        live_loops=args.live_loops)
    except (OSError, RuntimeError) as e:
        print(f"sidlive studio: {e}", file=sys.stderr)
        return 1
    try:
        server = StudioServer(studio, args.host, args.port)
    except OSError as e:
        studio.close()
        print(f"sidlive studio: {e}", file=sys.stderr)
        return 1
    print(f"sidlive studio: {server.url}  (library {studio.library.root}; Ctrl-C stops)", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
