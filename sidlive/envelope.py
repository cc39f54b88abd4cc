"""Short-time energy envelopes, their correlation, and the sidplayfp sound check.

The sound check asks: does our dump of a tune, rendered by sidlive's reSID renderer,
sound like the tune as sidplayfp (libsidplayfp running the real 6510 code with reSIDfp)
plays it? Waveforms never line up sample for sample (start-up, write timing within a
frame), so we compare loudness envelopes: the RMS of each 20 ms window (mean removed),
one window every 5 ms, Pearson-correlated at the best lag within +-250 ms.

    python -m sidlive.envelope [HVSC_ROOT] [--n 20] [--seconds 30] [--seed 0] [--json FILE]

prints one row per tune (path, subtune, chip, correlation, lag) and the share >= 0.9.
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from sidlive.wav import read_wav

TARGET_CORRELATION = 0.9


def energy_envelope(samples: np.ndarray, rate_hz: int, window_ms: float = 20.0,
                    hop_ms: float | None = None) -> np.ndarray:
    """RMS of each window (window mean removed), one value per hop. (n_windows,) float64."""
    if not window_ms > 0 or (hop_ms is not None and not hop_ms > 0):
        raise ValueError(f"window_ms and hop_ms must be > 0; got {window_ms!r}, {hop_ms!r}")
    if not rate_hz > 0:
        raise ValueError(f"rate_hz must be > 0; got {rate_hz!r}")
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    win = max(1, int(round(window_ms * rate_hz / 1000.0)))
    hop = win if hop_ms is None else max(1, int(round(hop_ms * rate_hz / 1000.0)))
    if len(x) < win:
        return np.zeros(0)
    n = 1 + (len(x) - win) // hop
    c1 = np.concatenate(([0.0], np.cumsum(x)))
    c2 = np.concatenate(([0.0], np.cumsum(x * x)))
    starts = np.arange(n) * hop
    s1 = c1[starts + win] - c1[starts]
    s2 = c2[starts + win] - c2[starts]
    var = np.maximum(s2 / win - (s1 / win) ** 2, 0.0)
    return np.sqrt(var)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float("nan")


def envelope_alignment(a: np.ndarray, b: np.ndarray, rate_hz: int, window_ms: float = 20.0,
                       hop_ms: float = 5.0, max_lag_ms: float = 250.0) -> tuple[float, float]:
    """(best Pearson correlation, lag in ms at which b matches a) over lags within
    +-max_lag_ms. NaN when an envelope is constant (silence)."""
    ea = energy_envelope(a, rate_hz, window_ms, hop_ms)
    eb = energy_envelope(b, rate_hz, window_ms, hop_ms)
    max_lag = int(round(max_lag_ms / hop_ms))
    best, best_lag = float("nan"), 0
    for lag in range(-max_lag, max_lag + 1):   # b[i] compared with a[i + lag]
        xa = ea[max(0, lag):]
        xb = eb[max(0, -lag):]
        n = min(len(xa), len(xb))
        if n < max(8, min(len(ea), len(eb)) // 2):
            continue
        r = _pearson(xa[:n], xb[:n])
        if not np.isnan(r) and (np.isnan(best) or r > best):
            best, best_lag = r, lag
    return best, best_lag * hop_ms


def envelope_correlation(a: np.ndarray, b: np.ndarray, rate_hz: int, window_ms: float = 20.0,
                         hop_ms: float = 5.0, max_lag_ms: float = 250.0) -> float:
    """Pearson correlation of the two energy envelopes at the best lag within +-max_lag_ms."""
    return envelope_alignment(a, b, rate_hz, window_ms, hop_ms, max_lag_ms)[0]


# ---------------------------------------------------------------------------- sidplayfp

def sidplayfp_render(sid_path: str | Path, seconds: float, subtune: int | None = None,
                     chip: str | None = None, rate_hz: int = 48_000,
                     timeout_s: float | None = None) -> np.ndarray:
    """Render a .sid with Debian's sidplayfp (headless, `-w`): int16 mono samples.

    subtune is 1-based (None: the tune's start song); chip "6581"/"8580" forces the model
    (None: the tune's own). At most `seconds` of audio is returned.
    """
    exe = shutil.which("sidplayfp")
    if exe is None:
        raise FileNotFoundError("sidplayfp is not installed (Debian package 'sidplayfp')")
    sid_path = Path(sid_path)
    if not sid_path.is_file():
        raise FileNotFoundError(f"{sid_path}: no such .sid file")
    if not 0 < seconds <= 3600:
        raise ValueError(f"seconds must be in (0, 3600]; got {seconds!r}")
    whole = int(np.ceil(seconds))
    args = [exe, "-q", f"-t{whole // 60}:{whole % 60:02d}", "-m", f"-f{int(rate_hz)}"]
    if subtune is not None:
        args.append(f"-o{int(subtune)}")
    if chip is not None:
        if chip not in ("6581", "8580"):
            raise ValueError(f"chip must be '6581' or '8580'; got {chip!r}")
        args.append("-mof" if chip == "6581" else "-mnf")
    with tempfile.TemporaryDirectory(prefix="sidlive-sidplayfp-") as tmp:
        out = Path(tmp) / "out.wav"
        proc = subprocess.run(args + [f"-w{out}", str(sid_path)], capture_output=True,
                              timeout=timeout_s or 60 + 2 * whole, stdin=subprocess.DEVNULL)
        if proc.returncode != 0 or not out.is_file():
            tail = (proc.stderr or proc.stdout).decode("utf-8", "replace").strip()[-300:]
            raise RuntimeError(f"{sid_path}: sidplayfp failed (exit {proc.returncode}): {tail}")
        samples, rate = read_wav(out, mono=True)
    if rate != rate_hz:
        raise RuntimeError(f"{sid_path}: sidplayfp wrote {rate} Hz, asked for {rate_hz} Hz")
    return samples[: int(round(seconds * rate_hz))]


# ---------------------------------------------------------------------------- sound check

def check_tune(sid_path: Path, seconds: float = 30.0, rate_hz: int = 48_000, dump=None) -> dict:
    """Dump (training.dump.dump_tune by default), render with sidlive, render with
    sidplayfp on the same chip and subtune; correlate the envelopes."""
    from sidlive.renderer import render
    if dump is None:
        from training.dump import dump_tune as dump   # another stage; imported late
    t0 = time.perf_counter()
    frames = dump(sid_path, subtune=None, seconds=seconds)
    t_dump = time.perf_counter() - t0
    subtune = frames.extra.get("subtune")
    ours = render(frames, rate_hz=rate_hz)
    ref = sidplayfp_render(sid_path, seconds, subtune=subtune, chip=frames.chip, rate_hz=rate_hz)
    r, lag_ms = envelope_alignment(ours, ref, rate_hz)
    return {"path": str(sid_path), "subtune": subtune, "chip": frames.chip, "clock": frames.clock,
            "frames": len(frames), "status": frames.extra.get("status", ""),
            "correlation": None if np.isnan(r) else round(r, 4), "lag_ms": lag_ms,
            "dump_s": round(t_dump, 2)}


def pick_tunes(hvsc_root: Path, n: int, seed: int = 0) -> list[Path]:
    """A seeded sample of `n * 3` .sid paths (spares for tunes the dumper refuses)."""
    paths = sorted(Path(hvsc_root).rglob("*.sid"))
    if not paths:
        raise FileNotFoundError(f"{hvsc_root}: no .sid files")
    return random.Random(seed).sample(paths, min(len(paths), 3 * n))


def sound_check(hvsc_root: Path, n: int = 20, seconds: float = 30.0, seed: int = 0,
                dump=None, log=print) -> list[dict]:
    rows: list[dict] = []
    for path in pick_tunes(hvsc_root, n, seed):
        if len(rows) >= n:
            break
        try:
            row = check_tune(path, seconds, dump=dump)
        except Exception as e:   # unsupported (RSID, multi-SID) or failing tunes are listed, not fatal
            log(f"skip {path.relative_to(hvsc_root)}: {type(e).__name__}: {e}")
            continue
        row["path"] = str(path.relative_to(hvsc_root))
        rows.append(row)
        log(format_row(row))
    return rows


def format_row(row: dict) -> str:
    r = row["correlation"]
    return (f"{'nan' if r is None else f'{r:.3f}':>6}  {row['lag_ms']:+7.1f} ms  {row['chip']}  "
            f"{row['clock']:<4}  st{row['subtune']!s:<3} {row['path']}")


def format_table(rows: list[dict]) -> str:
    ok = [r for r in rows if r["correlation"] is not None and r["correlation"] >= TARGET_CORRELATION]
    corr = [r["correlation"] for r in rows if r["correlation"] is not None]
    lines = ["  corr      lag     chip  clock subtune path"] + [format_row(r) for r in rows]
    if corr:
        lines.append(f"{len(ok)}/{len(rows)} tunes >= {TARGET_CORRELATION} "
                     f"(median {np.median(corr):.3f}, min {min(corr):.3f})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from sidlive.shared import hvsc_root
    ap = argparse.ArgumentParser(prog="python -m sidlive.envelope",
                                 description="sound check: sidplayfp vs sidlive render of our dump")
    ap.add_argument("hvsc", nargs="?", type=Path, default=None, help="HVSC C64Music folder (default ../shared)")
    ap.add_argument("--n", type=int, default=20, help="tunes (default 20)")
    ap.add_argument("--seconds", type=float, default=30.0, help="seconds per tune (default 30)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = ap.parse_args(argv)
    root = args.hvsc or hvsc_root()
    if root is None or not Path(root).is_dir():
        print("sound check: no HVSC folder (give one, or put ../shared/hvsc/C64Music beside the checkout)",
              file=sys.stderr)
        return 2
    try:
        import training.dump  # noqa: F401
    except ImportError as e:
        print(f"sound check: training.dump is unavailable ({e})", file=sys.stderr)
        return 2
    rows = sound_check(Path(root), args.n, args.seconds, args.seed,
                       log=lambda s: print(s, file=sys.stderr))
    print(format_table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
