"""`make demo`: the main job on shipped defaults.

With the shipped model (presets/models/default.sidm) the main job is `sidlive live`: 30 s
of the model improvising from a shipped prompt loop, played on the audio device when
there is one, and recorded (WAV + frames + control log) either way. Without a model it
renders a real tune's frames (a GoatTracker example song from Debian's goattracker
package, GPL-2+) to WAV instead, and plays it when an audio device exists.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from sidlive.commands import live
from sidlive.commands.render import demo as render_demo
from sidlive.live.playback import play_wav_if_device
from sidlive.paths import DEFAULT_MODEL

DEMO_LOOP = "cabrinigreen"  # presets/loops/cabrinigreen.regs, cut from a GoatTracker example song


def _audio_device_available() -> bool:
    try:
        import sounddevice as sd  # loads PortAudio: optional, so rendering and recording work without it
        sd.query_devices(kind="output")
        return True
    except Exception:  # no PortAudio, no device
        return False


def run_demo(out_dir: Path, play: bool = True, seconds: float = 30.0) -> Path:
    """Record a live set with the shipped model (else render a real tune) into out_dir; returns the WAV."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if DEFAULT_MODEL.is_file():
        wav = out_dir / "live-set.wav"
        audio = "default" if play and _audio_device_available() else "null"
        if audio == "null":
            print("demo: no audio output device; running on the null output and recording only")
        argv = ["--headless", "--seconds", str(seconds), "--record", str(wav), "--midi", "none",
                "--no-osc", "--loop", DEMO_LOOP, "--loop-mode", "prime"]
        if audio == "null":
            argv += ["--audio", "null"]
        rc = live.main(argv)
        if rc != 0:
            raise SystemExit(rc)
        print(f"demo: recorded {seconds:.0f} s of the model playing live -> {wav} "
              f"(frames {wav.with_suffix('.regs')}, controls {wav.with_suffix('.controls.jsonl')})")
        return wav

    print(f"demo: no model at {DEFAULT_MODEL}; rendering a real tune instead")
    wav = render_demo(out_dir)
    print(f"demo: wrote {wav}")
    if play:
        print(play_wav_if_device(wav))
    return wav


def main(argv: list[str] | None = None) -> int:
    """`sidlive demo`: parse argv and run the demo; returns 0."""
    ap = argparse.ArgumentParser(prog="sidlive demo", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (default out/demo)")
    ap.add_argument("--seconds", type=float, default=30.0, help="length of the live demo (default 30)")
    ap.add_argument("--no-play", action="store_true", help="do not use the audio device; only record")
    args = ap.parse_args(argv)
    run_demo(args.out, play=not args.no_play, seconds=args.seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
