"""The .sid export check: dump -> export -> dump again (exact) and sidplayfp vs `sidlive render` (`sidlive export check`)."""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from sidlive.audio.renderer import render
from sidlive.c64.dump import dump_tune
from sidlive.c64.psid import load_psid
from sidlive.export.psidfile import ExportError, export_frames
from sidlive.frames import PAL_FRAME_RATE_HZ, canonicalize
from sidlive.measure.soundcheck import envelope_alignment, pick_tunes, resid_rate_ratio, sidplayfp_render
from sidlive.midi.asid import bandwidth
from sidlive.paths import hvsc_root


def check_tune(sid_path: Path, seconds: float, tmp_dir: Path, rate_hz: int = 48_000,
               delay_cycles: int | None = None) -> dict:
    """Dump -> export -> dump again (must be equal) -> sidplayfp vs sidlive render.

    sidplayfp's samples are read at reSIDfp's true rate (`resid_rate_ratio`: its WAV runs
    2.2e-4 slow, 13 ms over 60 s) where they are compared with `sidlive render`, as the
    sound check does; corr_export_raw is the same correlation without that (for reference).
    delay_cycles: sidplayfp's power-on delay (None: its random one)."""

    frames = dump_tune(sid_path, seconds=seconds)
    if frames.extra.get("status") != "ok":
        raise ExportError(f"{sid_path}: the dump ended early ({frames.extra.get('status')})")
    out = tmp_dir / "export.sid"
    res = export_frames(frames, out, warn=lambda m: None)
    secs = len(frames) / frames.frame_rate_hz
    again = dump_tune(out, seconds=secs)
    exact = len(again) == len(frames) and np.array_equal(canonicalize(again.regs), frames.regs)
    ours = render(frames, rate_hz=rate_hz)
    exported = sidplayfp_render(out, secs, subtune=1, chip=frames.chip, rate_hz=rate_hz,
                                delay_cycles=delay_cycles)
    original = sidplayfp_render(sid_path, secs, subtune=frames.extra["subtune"], chip=frames.chip,
                                rate_hz=rate_hz, delay_cycles=delay_cycles)
    sp_rate_hz = rate_hz * resid_rate_ratio(rate_hz)
    r_exp, lag_exp = envelope_alignment(ours, exported, rate_hz, b_rate_hz=sp_rate_hz)
    r_raw, _ = envelope_alignment(ours, exported, rate_hz)
    r_orig, _ = envelope_alignment(ours, original, rate_hz, b_rate_hz=sp_rate_hz)
    r_pp, _ = envelope_alignment(original, exported, rate_hz)
    asid = bandwidth(frames.regs, frames.frame_rate_hz)
    return {"frames": len(frames), "exact": bool(exact), "data_bytes": res.data_bytes,
            "bytes_per_frame": round(res.bytes_per_frame, 3), "corr_export": round(r_exp, 4),
            "corr_export_raw": round(r_raw, 4), "lag_ms": lag_exp, "corr_original": round(r_orig, 4),
            "corr_sidplayfp": round(r_pp, 4),
            "asid_mean": round(asid["mean"], 2), "asid_p99": asid["p99"], "asid_max": asid["max"],
            "chip": frames.chip}


def check(hvsc_root: Path, n: int = 20, seconds: float = 60.0, seed: int = 0, log=print,
          delay_cycles: int | None = None) -> list[dict]:
    """check_tune on the first n dumpable tunes of sidlive.measure.soundcheck.pick_tunes(root, n, seed)."""


    rows = []
    with tempfile.TemporaryDirectory(prefix="sidlive-export-check-") as tmp:
        for path in pick_tunes(hvsc_root, n, seed):
            if len(rows) >= n:
                break
            try:
                if load_psid(path).unsupported():
                    continue
                row = check_tune(path, seconds, Path(tmp), delay_cycles=delay_cycles)
            except Exception as e:  # a tune the dumper or sidplayfp refuses is listed, not fatal
                log(f"skip {path.relative_to(hvsc_root)}: {type(e).__name__}: {e}")
                continue
            row["path"] = str(path.relative_to(hvsc_root))
            rows.append(row)
            log(_row_text(row))
    return rows


def _row_text(r: dict) -> str:
    return (f"{'yes' if r['exact'] else 'NO':>5} {r['bytes_per_frame']:6.2f} {r['corr_export']:7.3f} "
            f"{r['corr_export_raw']:7.3f} {r['corr_original']:7.3f} {r['corr_sidplayfp']:7.3f} "
            f"{r['asid_mean']:6.1f} {r['asid_p99']:5.0f}  {r['path']}")


def check_main(argv: list[str]) -> int:
    """`sidlive export check`: check sampled HVSC tunes, print rows and totals; returns the exit status."""

    ap = argparse.ArgumentParser(prog="sidlive export check", description="round trip and sound check of .sid export")
    ap.add_argument("hvsc", nargs="?", type=Path, default=None, help="HVSC C64Music folder (default ../shared)")
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    ap.add_argument("--delay", type=int, default=None, metavar="CYCLES",
                    help="sidplayfp's power-on delay, 0..8191 (default: its random one)")
    args = ap.parse_args(argv)
    if args.delay is not None and not 0 <= args.delay <= 8191:
        print(f"sidlive export check: --delay must be in 0..8191, got {args.delay}", file=sys.stderr)
        return 2
    root = args.hvsc or hvsc_root()
    if root is None or not Path(root).is_dir():
        print("sidlive export check: no HVSC folder (give one, or put ../shared beside the checkout)", file=sys.stderr)
        return 2
    print("exact B/frame corr_exp exp_raw corr_orig sp_vs_sp asid_B p99  path  (corr: envelope vs sidlive "
          "render; exp_raw: sidplayfp's samples not rate-corrected)")
    rows = check(Path(root), args.n, args.seconds, args.seed, delay_cycles=args.delay)
    if rows:
        bpf = [r["bytes_per_frame"] for r in rows]
        ce = [r["corr_export"] for r in rows]
        cr = [r["corr_export_raw"] for r in rows]
        am = [r["asid_mean"] for r in rows]
        print(f"{sum(r['exact'] for r in rows)}/{len(rows)} exact; bytes/frame mean {np.mean(bpf):.2f} worst "
              f"{max(bpf):.2f}; corr_export median {np.median(ce):.3f} min {min(ce):.3f}, >= 0.95: "
              f"{sum(c >= 0.95 for c in ce)}/{len(rows)} (raw time base: median {np.median(cr):.3f} min "
              f"{min(cr):.3f}, {sum(c >= 0.95 for c in cr)}/{len(rows)}); ASID bytes/frame mean "
              f"{np.mean(am):.1f}, p99 max "
              f"{max(r['asid_p99'] for r in rows):.0f} (MIDI DIN: {3125 / PAL_FRAME_RATE_HZ:.1f} per frame)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0 if rows and all(r["exact"] for r in rows) else 1
