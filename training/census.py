"""A census of SID techniques in register frames, and loop-collapse detection.

Input: (N, 25) uint8 canonical register frames at 50.125 frames/s (sidlive.frames).
Per voice v (0-2, registers base 7*v): freq = +0 | +1 << 8 (16 bit), pulse width
pw = +2 | (+3 & 15) << 8 (12 bit), control +4 (bit0 gate, bit3 test, bits 4-7 waveforms
triangle/saw/pulse/noise), AD +5, SR +6. Filter cutoff = ($15 & 7) | $16 << 3 (11 bit),
$17 bits 0-2 route voices to the filter, $18 bits 0-3 volume, bits 4-6 LP/BP/HP, bit 7 v3 off.

Definitions (decided from registers alone; "gated" = control bit 0 set):

silent_share (share of frames)
    A frame is silent when the volume nibble is 0 or no voice is audible. A voice is
    audible when its estimated envelope peak in the frame is >= AUDIBLE_LEVEL (8 of 255), a
    waveform bit is set, the test bit is clear, freq > 0, and it is not muted (voice 3 with
    $18 bit 7 set and not routed to the filter; a voice routed to the filter while no
    filter mode bit is set). The envelope estimate runs the SID's ADSR state machine for
    each frame's 19,656 cycles: attack +1 per rate period, decay/release -1 per rate period
    times the exponential divider (1/2/4/8/16/30 at levels above 93/54/26/14/6/0); decay
    holds where the level equals sustain * 17 (a sustain raised above the level lets it
    fall to 0, as on the chip); gate 0->1 starts attack, 1->0 starts release; level 0
    before frame 0. Gate re-triggers inside one frame are not in the frames and not seen.
onsets_per_s (per second per voice)
    Gate 0->1 transitions between frames t-1 and t (frame 0 never counts). Legato pitch
    changes without a re-gate are not onsets.
arpeggio_share (share of frames per voice)
    Frame t is in an arpeggio when, for some period P in 2..8 frames, the 2P frames ending
    at t are gated with a waveform bit, freq repeats with period P (f[s] == f[s-P] over the
    last P frames), one cycle holds 2-4 distinct freq values, max/min >= one semitone, and
    no value is held 3 frames in a row (each pitch lasts 1-2 frames). All 2P frames count.
pwm_sweep_share (share of frames per voice)
    Frames inside PWM sweeps. A sweep is a stretch [s, e] with the pulse bit set in every
    frame, the 12-bit pulse width moving one way only (steps of 0 or of one sign), at most 2
    zero steps in a row, starting and ending on a move, and e - s + 1 >= 10 frames. A
    reversal or a wrap-around ends a sweep (and may start the next one).
drums_per_s (per second per voice)
    Frames t >= 1 where "noise bit and gate" switches on and either that run of noise+gate
    frames lasts <= 6 frames (a noise burst), or the 3+ frames before t are gated, without
    noise, with a waveform bit and freq falling every frame, by >= 7 semitones in total
    (a pitch down-sweep into noise).
filter_sweep_share (share of frames)
    Frames inside filter sweeps: as PWM sweeps, on the 11-bit cutoff, with some voice routed
    to the filter ($17 & 7 != 0) and a filter mode bit set ($18 & 0x70 != 0) in every frame.

Loop collapse (`loop_collapse`): frame t repeats at period P when frames t and t-P are
equal on every register except the slow modulators (pulse width $02/$03/$09/$0A/$10/$11
and cutoff $15/$16), i.e. distance = number of differing non-modulator registers, and
"near-exact" means distance 0 while PWM/filter sweeps may drift. A repeating stretch of
period P covers frames [i, i + r + P) for a run of r consecutive repeating frames; a loop
collapse is such a stretch with P <= max_period_s and length > min_repeat_s.

`python -m training.census PATH... [--sample N] [--seconds 60] [--json]` measures real tunes
(.sid files dumped with sidlive.c64.dump at their Songlengths length, cut to --seconds).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from sidlive.frames import PAL_FRAME_RATE_HZ
from sidlive.frames import check_regs
from engine.silence import silent_frames, voice_fields
from training.census_kernels import arpeggio_mask, drum_hits, sweep_mask
from training.repetition import loop_collapse
from sidlive.c64.load import load_tune

CENSUS_KEYS = ("silent_share", "onsets_per_s", "arpeggio_share", "pwm_sweep_share",
               "drums_per_s", "filter_sweep_share")
TECHNIQUE_KEYS = CENSUS_KEYS[1:]  # the ones compared against real music (silence has its own target)
UNITS = {"silent_share": "share", "onsets_per_s": "/s/voice", "arpeggio_share": "share/voice",
         "pwm_sweep_share": "share/voice", "drums_per_s": "/s/voice", "filter_sweep_share": "share"}
SWEEP_MIN_FRAMES = 10
SWEEP_MAX_HOLD_STEPS = 2
ARP_PERIODS = (2, 3, 4, 5, 6, 7, 8)
DRUM_BURST_MAX_FRAMES = 6
DRUM_SWEEP_MIN_SEMITONES = 7.0
SEMITONE = 2.0 ** (1.0 / 12.0)


# ---------------------------------------------------------------------------- census

def census_counts(regs: np.ndarray) -> dict:
    """Raw counts for one sequence; `census` pools them and turns them into rates."""
    regs = check_regs(regs)
    n = len(regs)
    c = {"frames": n, "silent_frames": int(silent_frames(regs).sum()),
         "onsets": [0, 0, 0], "arpeggio_frames": [0, 0, 0], "pwm_sweep_frames": [0, 0, 0],
         "pwm_sweeps": [0, 0, 0], "drums": [0, 0, 0]}
    for v in range(3):
        freq, pw, ctrl, _ad, _sr = voice_fields(regs, v)
        gate = (ctrl & 1) != 0
        c["onsets"][v] = int((gate[1:] & ~gate[:-1]).sum())
        sounding = gate & ((ctrl & 0xF0) != 0)
        arp = arpeggio_mask(freq, sounding, np.array(ARP_PERIODS, np.int64), SEMITONE * (1 - 1e-9))
        c["arpeggio_frames"][v] = int(arp.sum())
        pwm, n_pwm = sweep_mask(pw, (ctrl & 0x40) != 0, SWEEP_MIN_FRAMES, SWEEP_MAX_HOLD_STEPS)
        c["pwm_sweep_frames"][v] = int(pwm.sum())
        c["pwm_sweeps"][v] = int(n_pwm)
        c["drums"][v] = int(drum_hits(freq, ctrl, DRUM_BURST_MAX_FRAMES,
                                       SEMITONE ** DRUM_SWEEP_MIN_SEMITONES))
    cutoff = (regs[:, 0x15].astype(np.int32) & 7) | (regs[:, 0x16].astype(np.int32) << 3)
    fcond = ((regs[:, 0x17] & 7) != 0) & ((regs[:, 0x18] & 0x70) != 0)
    fmask, n_f = sweep_mask(cutoff, fcond, SWEEP_MIN_FRAMES, SWEEP_MAX_HOLD_STEPS)
    c["filter_sweep_frames"] = int(fmask.sum())
    c["filter_sweeps"] = int(n_f)
    return c


def pool_counts(counts: list[dict]) -> dict:
    """Sum per-sequence counts (lists add element-wise)."""
    total: dict = {}
    for c in counts:
        for k, v in c.items():
            if isinstance(v, list):
                total[k] = [a + b for a, b in zip(total.get(k, [0] * len(v)), v)]
            else:
                total[k] = total.get(k, 0) + v
    return total


def rates(counts: dict, frame_rate_hz: float = PAL_FRAME_RATE_HZ) -> dict:
    """Census dict from (pooled) counts: every CENSUS_KEYS value, per-voice values, counts."""
    n = counts.get("frames", 0)
    if n <= 0:
        raise ValueError("census: no frames to measure (0 frames)")
    seconds = n / frame_rate_hz
    per_voice = {
        "onsets_per_s": [x / seconds for x in counts["onsets"]],
        "arpeggio_share": [x / n for x in counts["arpeggio_frames"]],
        "pwm_sweep_share": [x / n for x in counts["pwm_sweep_frames"]],
        "drums_per_s": [x / seconds for x in counts["drums"]],
    }
    out = {"frames": n, "seconds": seconds, "silent_share": counts["silent_frames"] / n}
    out.update({k: sum(v) / 3 for k, v in per_voice.items()})
    out["filter_sweep_share"] = counts["filter_sweep_frames"] / n
    out["per_voice"] = per_voice
    out["counts"] = counts
    return out


def census(frames_regs, frame_rate_hz: float = PAL_FRAME_RATE_HZ) -> dict:
    """Census of one (N, 25) uint8 sequence, or pooled over a list of them (frame-weighted)."""
    if isinstance(frames_regs, np.ndarray):
        return rates(census_counts(frames_regs), frame_rate_hz)
    seqs = list(frames_regs)
    if not seqs:
        raise ValueError("census: empty list of sequences")
    return rates(pool_counts([census_counts(check_regs(r, f"sequence {i}"))
                              for i, r in enumerate(seqs)]), frame_rate_hz)


def compare_census(gen: dict, real: dict, keys=CENSUS_KEYS, tolerance: float = 0.5) -> list[dict]:
    """Rows {key, unit, generated, real, ratio, within} with within = |ratio - 1| <= tolerance.

    ratio = generated / real; both 0 gives ratio 1; real 0 and generated > 0 gives inf.
    """
    rows = []
    for k in keys:
        g, r = float(gen[k]), float(real[k])
        ratio = 1.0 if g == r == 0 else (math.inf if r == 0 else g / r)
        rows.append({"key": k, "unit": UNITS[k], "generated": g, "real": r, "ratio": ratio,
                     "within": bool(abs(ratio - 1.0) <= tolerance)})
    return rows


# ---------------------------------------------------------------------------- CLI

def _load_sequences(paths: list[str], seconds: float, sample: int | None):
    """Yield (name, regs or None, error) for .sid/.regs/.txt files and folders of .sid files."""

    files = []
    for p in map(Path, paths):
        files += sorted(q for q in p.rglob("*") if q.suffix.lower() == ".sid") if p.is_dir() else [p]
    if sample is not None and len(files) > sample:
        files = [files[int(i * len(files) / sample)] for i in range(sample)]
    for f in files:
        try:
            # a .sid's own length (Songlengths.md5), cut to `seconds`: no silence after its end
            yield str(f), load_tune(f).regs[:int(round(seconds * PAL_FRAME_RATE_HZ))], None
        except Exception as e:  # noqa: BLE001 (unsupported/broken tunes are counted, not fatal)
            yield str(f), None, f"{type(e).__name__}: {e}"


def main(argv: list[str] | None = None) -> int:
    """`python -m training.census PATH... [--seconds 60] [--sample N] [--json]`: census of real tunes."""
    ap = argparse.ArgumentParser(prog="python -m training.census", description=main.__doc__)
    ap.add_argument("paths", nargs="+", help=".sid (dumped), .regs/.txt files, or folders of .sid")
    ap.add_argument("--seconds", type=float, default=60.0, help="seconds of each tune")
    ap.add_argument("--sample", type=int, default=None, help="N tunes evenly spread over the sorted list")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    counts, failed, collapsed = [], [], []
    for name, regs, err in _load_sequences(a.paths, a.seconds, a.sample):
        if regs is None or len(regs) == 0:
            failed.append((name, err or "no frames"))
            continue
        counts.append(census_counts(regs))
        if loop_collapse(regs)[0]:
            collapsed.append(name)
    if not counts:
        print(f"no tunes measured ({len(failed)} failed)")
        return 1
    c = rates(pool_counts(counts))
    out = {"tunes": len(counts), "failed": len(failed), "loop_collapses": len(collapsed),
           "collapsed_tunes": collapsed, **{k: c[k] for k in CENSUS_KEYS}, "per_voice": c["per_voice"]}
    if a.json:
        print(json.dumps(out, indent=1))
        return 0
    print(f"{len(counts)} tunes ({len(failed)} not measured), {c['seconds']:.0f} s in all")
    for k in CENSUS_KEYS:
        pv = "  ".join(f"{x:.4f}" for x in c["per_voice"].get(k, []))
        print(f"  {k:<20}{UNITS[k]:<14}{c[k]:>9.4f}   {pv}")
    print(f"  loop collapses      {len(collapsed)} of {len(counts)} tunes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
