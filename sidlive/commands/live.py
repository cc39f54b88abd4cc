"""`sidlive live`: the low-latency instrument (CLI over session.LiveDaemon). See docs/live.md.

    sidlive live [--model M] [--controller presets/controllers/NAME.toml] [--loops DIR]
                 [--record set.wav] [--audio DEVICE|jack|null] [--midi PORT|virtual|none]
                 [--asid PORT|virtual] [--fx NAME] [--headless] [--seconds S] [--osc-port 9000]
                 [--loop NAME] [--lookahead 3]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from engine.generator import MAX_MAX_SILENCE_S
from sidlive.live.daemon import (  # noqa: F401
    DEFAULT_CONTROLLER,
    DEFAULT_MODEL,
    NO_DEVICE_EXIT,
    SETUP_EXIT,
    LiveConfig,
    LiveDaemon,
    LiveError,
    NoAudioDevice,
)
from sidlive.live.view import run_view
from sidlive.control.params import param
from sidlive.frames import CHIPS
from sidlive.live.loops import MODES

D = LiveConfig()                      # the defaults, defined once in LiveConfig
LOOKAHEAD = param("lookahead_frames")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for `sidlive live`."""
    ap = argparse.ArgumentParser(prog="sidlive live", description="Play the model live: MIDI/OSC/keys steer it.")
    ap.add_argument("--model", type=Path, default=None, help="model .sidm (default presets/models/default.sidm)")
    ap.add_argument("--controller", type=Path, default=None, help="controller map .toml (default: generic; needs "
                                                                  "MIDI input, so not with --midi none)")
    ap.add_argument("--loops", type=Path, default=None,
                    help="loops folder, where captures go too (default: the shipped loops plus your own in "
                         "$XDG_DATA_HOME/sidlive/loops, ~/.local/share/sidlive/loops, where captures go)")
    ap.add_argument("--record", type=Path, default=None, help="record to NAME.wav (+ NAME.regs, NAME.controls.jsonl)")
    ap.add_argument("--audio", default=None, help="output: a device name/index, jack or null (default: JACK if "
                                                  "running, else the system default)")
    ap.add_argument("--midi", default=D.midi, help="MIDI input: virtual (a sidlive:midi_in port), a port name, "
                                                      "or none")
    ap.add_argument("--asid", default=None, help="also stream every frame as ASID SysEx to a real SID: virtual "
                                                 "(a sidlive:asid port) or an output port name")
    ap.add_argument("--asid-lead-ms", type=float, default=0.0, help="send ASID frames this much before the "
                                                                     "speakers play them (hardware delay; 0..1000)")
    ap.add_argument("--fx", default=None, help="effects chain (pyo, in the audio callback, any output): "
                                               "a presets/fx name or a .toml; bypassed until fx_bypass "
                                               "is set to 0 (or --fx-on)")
    ap.add_argument("--fx-on", action="store_true", help="start with the effects chain in")
    ap.add_argument("--headless", action="store_true", help="no view; controls over OSC; print a JSON line at exit")
    ap.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    ap.add_argument("--osc-port", type=int, default=D.osc_port, help=f"OSC UDP port (0: any free one; default {D.osc_port})")
    ap.add_argument("--no-osc", action="store_true", help="no OSC server")
    ap.add_argument("--loop", default=None, help="start with this loop selected (a name in the loops folder)")
    ap.add_argument("--loop-mode", choices=MODES, default=D.loop_mode)
    ap.add_argument("--lookahead", type=int, default=D.lookahead_frames,
                    help=f"frames generated ahead ({LOOKAHEAD.range_text()}; default {D.lookahead_frames})")
    ap.add_argument("--keep", type=int, default=D.keep_frames, help=f"unplayed frames a rollback keeps (default {D.keep_frames})")
    ap.add_argument("--block", type=int, default=D.block_frames, help=f"audio block in samples (default {D.block_frames})")
    ap.add_argument("--chip", choices=CHIPS, default=D.chip)
    ap.add_argument("--seed", type=int, default=None, help="base random seed (reseed steps from it; default: a "
                                                         "fresh random one, printed and recorded with the take)")
    ap.add_argument("--temp", type=float, default=None, help="initial temperature")
    ap.add_argument("--repetition", type=float, default=None, help="initial repetition (0..2; pointer models)")
    ap.add_argument("--max-silence-s", type=float, default=D.max_silence_s,
                    help="the silence guard: after this much silence the model must start a note, 0 = off "
                         f"(default {D.max_silence_s})")
    return ap


def config_from_args(args) -> LiveConfig:
    """The LiveConfig for parsed `sidlive live` arguments."""
    controls = {k: v for k, v in (("temperature", args.temp), ("repetition", args.repetition)) if v is not None}
    return LiveConfig(model=args.model, controller=args.controller, loops_dir=args.loops, record=args.record,
                      audio=args.audio, midi=args.midi, asid=args.asid,
                      asid_lead_s=args.asid_lead_ms / 1e3, fx=args.fx, fx_on=args.fx_on,
                      osc_port=None if args.no_osc else args.osc_port,
                      lookahead_frames=args.lookahead, keep_frames=args.keep, block_frames=args.block,
                      chip=args.chip, seed=args.seed, loop=args.loop, loop_mode=args.loop_mode, controls=controls,
                      max_silence_s=args.max_silence_s)


def main(argv: list[str] | None = None) -> int:
    """`sidlive live`: run the daemon with the view (or headless) until stopped; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.controller is not None and args.midi == "none":   # a map binds MIDI messages only
        print(f"sidlive live: --controller {args.controller}: a controller map needs MIDI input, and --midi none "
              f"turns it off; give --midi virtual or a port name, or leave --controller out", file=sys.stderr)
        return SETUP_EXIT
    cfg = config_from_args(args)
    if not 0 <= cfg.max_silence_s <= MAX_MAX_SILENCE_S:
        print(f"sidlive live: --max-silence-s must be in 0..{MAX_MAX_SILENCE_S:g} seconds (0 = off), "
              f"got {cfg.max_silence_s:g}", file=sys.stderr)
        return SETUP_EXIT
    if not LOOKAHEAD.lo <= cfg.lookahead_frames <= LOOKAHEAD.hi or not 0 <= cfg.keep_frames <= cfg.lookahead_frames:
        print(f"sidlive live: --lookahead must be in {LOOKAHEAD.range_text()} and --keep in 0..lookahead", file=sys.stderr)
        return SETUP_EXIT
    quiet = None
    if not args.headless:   # the view shows the messages; nothing may write over it
        logging.getLogger("sidlive").addHandler(logging.NullHandler())
        quiet = lambda text: None  # noqa: E731
    daemon = LiveDaemon(cfg, on_message=quiet)
    try:
        daemon.start()
    except NoAudioDevice as e:
        print(f"sidlive live: {e}", file=sys.stderr)
        return NO_DEVICE_EXIT
    except LiveError as e:
        print(f"sidlive live: {e}", file=sys.stderr)
        return SETUP_EXIT
    old_term = None
    if threading.current_thread() is threading.main_thread():
        old_term = signal.signal(signal.SIGTERM, lambda *_: daemon.stopped.set())
    try:
        if args.headless:
            if daemon.ports.osc is not None:
                daemon.message(f"headless; OSC on {daemon.ports.osc.host}:{daemon.ports.osc.port}")
            daemon.run(args.seconds)
        else:
            run_view(daemon, seconds=args.seconds)
    except KeyboardInterrupt:
        pass
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    stats = daemon.stop()
    if args.headless:
        print(json.dumps(stats), flush=True)
    else:
        print(f"played {stats['seconds']:.1f} s: {stats['audio_underruns']} audio / {stats['ring_underruns']} ring "
              f"underruns, callback p99 {stats['callback_ms_p99']} ms", flush=True)
    if daemon.ports.jack_died:   # libjack clients of a dead server can block interpreter exit
        sys.stderr.flush()
        os._exit(0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
