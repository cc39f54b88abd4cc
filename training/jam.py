"""Does the model jam around a keyboard-played voice? The census of the other two voices
with one voice forced to a played bassline, beside free generation from the same prompts
and seeds (the keyboard voice of sidlive live).

    python -m training.jam presets/models/default.sidm [--n 10] [--seconds 30] [--voice 1] [--json]

The bassline is played through sidlive.control.keyvoice exactly as the live overlay plays it
(note -> PAL frequency, a gate-off frame before each retriggered attack), forced frame by
frame into the engine's sampler; the prompts are the shipped loops (presets/loops), so
the check needs no dataset. Reported: note onsets per second on the other voices (the
issue's line: within +-50% of free generation), their silent share, and whether every
forced register came out verbatim.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from engine.generator import Generator
from sidlive.control.keyvoice import KeyboardConfig, frames_for
from sidlive.control.params import PARAMS
from sidlive.frames import PAL_FRAME_RATE_HZ, load
from sidlive.paths import LOOPS_DIR
from training.census import census

# An A-minor riff, 8th notes at 125 BPM (12 frames per step), each held 9 frames.
RIFF = (33, 45, 33, 43, 29, 41, 36, 40, 31, 43, 31, 38, 28, 40, 35, 44)
STEP_FRAMES, HOLD_FRAMES = 12, 9


def bassline_events(n_frames: int, riff=RIFF, step: int = STEP_FRAMES, hold: int = HOLD_FRAMES) -> list:
    """[(frame, "on"|"off", note, velocity)] repeating the riff over n_frames."""
    events = []
    for k, t in enumerate(range(0, n_frames, step)):
        note = riff[k % len(riff)]
        events.append((t, "on", note, 100 + 20 * (k % 2)))
        if t + hold < n_frames:
            events.append((t + hold, "off", note, 0))
    return events


def run_jam(model_path, n: int = 10, seconds: float = 30.0, voice: int = 1, temperature: float | None = None,
            seed: int = 2000, prompt_seconds: float = 3.0) -> dict:
    """Census of the other voices, free vs with one voice forced to a played bassline, from the shipped loops."""
    g = Generator(model_path, log=None)
    g.set_sampling(temperature=PARAMS["temperature"].default if temperature is None else temperature)
    n_frames = int(round(seconds * PAL_FRAME_RATE_HZ))
    kcfg = KeyboardConfig(channel=1, voice=voice, waveform="pulse", attack=0, decay=9, release=4)
    mask, forced = frames_for(kcfg, bassline_events(n_frames), n_frames)   # (25,), (N, 25)
    prompts = [load(p).regs[:int(prompt_seconds * PAL_FRAME_RATE_HZ)] for p in sorted(LOOPS_DIR.glob("*.regs"))]
    if not prompts:
        raise FileNotFoundError(f"{LOOPS_DIR}: no loops to prompt with")
    free, jam, verbatim = [], [], True
    row = np.zeros((1, 25), np.uint8)
    for i in range(n):
        prompt = prompts[i % len(prompts)]
        for forced_run in (False, True):
            g.reset()
            g.reseed(seed + i)
            g.set_forced(None)
            g.prime(prompt)
            if not forced_run:
                free.append(g.generate(n_frames).copy())
                continue
            out = np.zeros((n_frames, 25), np.uint8)
            for t in range(n_frames):
                g.set_forced(mask, forced[t])
                g.generate(1, row)
                out[t] = row[0]
            verbatim &= bool((out[:, mask] == forced[:, mask]).all())
            jam.append(out)
    others = [v for v in range(3) if v != voice - 1]
    c_free, c_jam = census(free), census(jam)

    def other(c, key):
        return float(np.mean([c["per_voice"][key][v] for v in others]))

    onsets_free, onsets_jam = other(c_free, "onsets_per_s"), other(c_jam, "onsets_per_s")
    ratio = onsets_jam / onsets_free if onsets_free > 0 else float("inf")
    return {"model": str(model_path), "n": n, "seconds": seconds, "voice": voice,
            "forced_verbatim": verbatim,
            "other_voices_onsets_per_s": {"free": round(onsets_free, 3), "jam": round(onsets_jam, 3),
                                          "ratio": round(ratio, 3), "within_50pct": bool(0.5 <= ratio <= 1.5)},
            "keyboard_voice_onsets_per_s": round(c_jam["per_voice"]["onsets_per_s"][voice - 1], 3),
            "silent_share": {"free": round(c_free["silent_share"], 4), "jam": round(c_jam["silent_share"], 4)},
            "census_free": {k: v for k, v in c_free.items() if k not in ("counts", "per_voice")},
            "census_jam": {k: v for k, v in c_jam.items() if k not in ("counts", "per_voice")}}


def main(argv: list[str] | None = None) -> int:
    """Command line: run the jam check and print the figures (or JSON); returns the exit status."""
    ap = argparse.ArgumentParser(prog="python -m training.jam", description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--n", type=int, default=10, help="generations of each kind")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--voice", type=int, choices=(1, 2, 3), default=1, help="the keyboard voice")
    ap.add_argument("--temperature", type=float, default=None, help="default: sidlive live's (0.9)")
    ap.add_argument("--seed", type=int, default=2000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    try:
        rep = run_jam(args.model, args.n, args.seconds, args.voice, args.temperature, args.seed)
    except (OSError, ValueError) as e:
        print(f"training.jam: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(rep))
        return 0
    o = rep["other_voices_onsets_per_s"]
    print(f"{rep['n']} x {rep['seconds']:g} s, keyboard voice {rep['voice']} "
          f"({rep['keyboard_voice_onsets_per_s']} onsets/s), forced registers verbatim: {rep['forced_verbatim']}")
    print(f"other voices, onsets/s: free {o['free']}  jam {o['jam']}  ratio {o['ratio']} "
          f"({'within' if o['within_50pct'] else 'outside'} +-50%)")
    print(f"silent share: free {rep['silent_share']['free']:.3f}  jam {rep['silent_share']['jam']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
