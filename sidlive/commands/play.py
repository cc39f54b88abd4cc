"""`sidlive play`: play a frames file or .sid live on an audio device (or ASID)."""
from __future__ import annotations

import argparse
import sys

from sidlive.audio.outputs import NoAudioDevice, output_device
from sidlive.c64.load import load_tune
from sidlive.commands.render import add_render_args, parse_voices
from sidlive.frames import FramesFormatError
from sidlive.live.playback import NO_DEVICE_EXIT, play_asid_only, play_frames
from sidlive.midi.asid import AsidOut


def main(argv: list[str] | None = None) -> int:
    """`sidlive play`: play a tune or frames file on an audio device (and/or ASID); returns the exit status."""
    ap = argparse.ArgumentParser(prog="sidlive play", description=__doc__.splitlines()[0])
    add_render_args(ap)
    ap.add_argument("--device", default=None, help="output device name or index (default: the system's)")
    ap.add_argument("--asid", default=None, help="also stream the frames as ASID SysEx to a real SID: virtual "
                                                 "(a sidlive:asid port) or an output port name")
    args = ap.parse_args(argv)
    asid = None
    try:
        muted = parse_voices(args.mute)
        try:
            output_device(args.device)   # fail fast, before dumping or rendering anything
            audio = True
        except NoAudioDevice as e:
            if args.asid is None:
                raise
            print(f"sidlive play: {e}; playing on the ASID port only", file=sys.stderr)
            audio = False
        frames = load_tune(args.input, args.seconds, args.subtune)
        if args.asid is not None:
            asid = AsidOut(args.asid)
            print(f"ASID out: {asid.name}")
        print(f"playing {frames.title or args.input} ({frames.seconds:.1f} s, chip {args.chip or frames.chip}, "
              f"{args.rate} Hz); Ctrl-C stops")
        if audio:
            underflows = play_frames(frames, chip=args.chip, rate_hz=args.rate, muted_voices=muted,
                                     filter_enabled=not args.no_filter, device=args.device, asid=asid)
        else:
            play_asid_only(frames, asid, muted)
            underflows = 0
    except NoAudioDevice as e:
        print(f"sidlive play: {e}", file=sys.stderr)
        return NO_DEVICE_EXIT
    except (OSError, ValueError, RuntimeError, FramesFormatError) as e:
        print(f"sidlive play: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopped")
        return 130
    finally:
        if asid is not None:
            asid.close()
            print(f"ASID: {asid.sent_messages} messages, {asid.sent_bytes} bytes")
    if underflows:
        print(f"{underflows} output underflows (the machine could not keep up)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
