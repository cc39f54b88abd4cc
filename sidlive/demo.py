"""`make demo`: the main job on shipped defaults.

Until the live daemon and a trained model ship, the main job renders a real tune's frames
(a GoatTracker example song from Debian's goattracker package, GPL-2+) to WAV and plays it
when an audio device exists.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def run_demo(out_dir: Path, play: bool = True) -> Path:
    from sidlive.render import demo as render_demo

    wav = render_demo(out_dir)
    print(f"demo: wrote {wav}")
    if play:
        from sidlive.play import play_wav_if_device

        print(play_wav_if_device(wav))
    return wav


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="sidlive demo", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (default out/demo)")
    ap.add_argument("--no-play", action="store_true", help="only write the WAV")
    args = ap.parse_args(argv)
    run_demo(args.out, play=not args.no_play)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
