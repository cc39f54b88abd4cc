"""Short-time energy envelopes, their correlation, and the sidplayfp sound check.

The sound check asks: does our dump of a tune, rendered by sidlive's reSID renderer,
sound like the tune as sidplayfp (libsidplayfp running the real 6510 code with reSIDfp)
plays it? Waveforms never line up sample for sample (start-up, write timing within a
frame), so we compare loudness envelopes: the RMS of each 20 ms window (mean removed),
one window every 5 ms, Pearson-correlated at the best lag within +-250 ms.

Time bases. reSIDfp (RESAMPLE, sidplayfp's default) makes 2.2e-4 more samples than the
rate it is asked for (`resid_rate_ratio`), so sidplayfp's WAV plays the music that much
slow, while sidlive's renderer puts frames on the exact clock/rate timeline: over 30 s
they drift 6.5 ms apart. The sound check therefore reads sidplayfp's samples at their
true rate (`b_rate_hz`); energy envelopes take fractional hops for that.

    python -m sidlive.measure.soundcheck [HVSC_ROOT] [--n 20] [--seconds 30] [--seed 0] [--json FILE]
                               [--exact] [--delay CYCLES]

prints one row per tune (path, subtune, chip, correlation, lag) and the share >= 0.9.
--exact adds the cycle-exact column: the dumper's SID writes replayed into reSID at their
own cycles (`replay_writes`), i.e. what the tune sounds like before it is cut into 50 Hz
frames. Where that correlates and the frames do not, the loss is the frame format's.
--delay fixes sidplayfp's power-on delay (default: random, so runs differ slightly).
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
from functools import lru_cache
from pathlib import Path

import numpy as np
from pyresidfp._pyresidfp import SID, ChipModel, SamplingMethod

from sidlive.audio.renderer import CLOCK_PARAMS, WARMUP_CYCLES, render
from sidlive.audio.wav import read_wav
from sidlive.c64.dump import dump_tune
from sidlive.c64.machine import run_psid
from sidlive.c64.psid import load_psid
from sidlive.paths import hvsc_root
from sidlive.frames import PAL_CLOCK_HZ

TARGET_CORRELATION = 0.9


def energy_envelope(samples: np.ndarray, rate_hz: float, window_ms: float = 20.0,
                    hop_ms: float | None = None) -> np.ndarray:
    """RMS of each window (window mean removed), one value per hop. (n_windows,) float64.

    The hop may be a fractional number of samples (window k starts at round(k * hop)),
    so a rate_hz that is not an integer keeps the windows on a drift-free time grid."""
    if not window_ms > 0 or (hop_ms is not None and not hop_ms > 0):
        raise ValueError(f"window_ms and hop_ms must be > 0; got {window_ms!r}, {hop_ms!r}")
    if not rate_hz > 0:
        raise ValueError(f"rate_hz must be > 0; got {rate_hz!r}")
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    win = max(1, int(round(window_ms * rate_hz / 1000.0)))
    hop = float(win) if hop_ms is None else max(1.0, hop_ms * rate_hz / 1000.0)
    if len(x) < win:
        return np.zeros(0)
    starts = np.floor(np.arange(1 + int((len(x) - win) // hop)) * hop + 0.5).astype(np.int64)
    starts = starts[starts + win <= len(x)]
    c1 = np.concatenate(([0.0], np.cumsum(x)))
    c2 = np.concatenate(([0.0], np.cumsum(x * x)))
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
                       hop_ms: float = 5.0, max_lag_ms: float = 250.0,
                       b_rate_hz: float | None = None) -> tuple[float, float]:
    """(best Pearson correlation, lag in ms at which b matches a) over lags within
    +-max_lag_ms. NaN when an envelope is constant (silence). b_rate_hz: the rate at
    which b's samples really advance (default rate_hz), e.g. a raw reSID render."""
    ea = energy_envelope(a, rate_hz, window_ms, hop_ms)
    eb = energy_envelope(b, b_rate_hz or rate_hz, window_ms, hop_ms)
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
                         hop_ms: float = 5.0, max_lag_ms: float = 250.0,
                         b_rate_hz: float | None = None) -> float:
    """Pearson correlation of the two energy envelopes at the best lag within +-max_lag_ms."""
    return envelope_alignment(a, b, rate_hz, window_ms, hop_ms, max_lag_ms, b_rate_hz)[0]


@lru_cache(maxsize=None)
def resid_rate_ratio(rate_hz: int = 48_000, clock_hz: int = PAL_CLOCK_HZ, sampling: str = "resample") -> float:
    """Samples reSIDfp really makes per sample asked for (1.000218 for RESAMPLE at 48 kHz):
    counted over 20 s of clock on a fresh pyresidfp, the same engine sidplayfp runs."""
    method = SamplingMethod.RESAMPLE if sampling == "resample" else SamplingMethod.DECIMATE
    sid = SID(ChipModel.MOS6581, method, float(clock_hz), float(rate_hz))
    seconds = 20
    made = sum(len(sid.clock(clock_hz)) for _ in range(seconds))
    return made / (seconds * rate_hz)


# ---------------------------------------------------------------------------- sidplayfp

def sidplayfp_render(sid_path: str | Path, seconds: float, subtune: int | None = None,
                     chip: str | None = None, rate_hz: int = 48_000,
                     timeout_s: float | None = None, delay_cycles: int | None = None) -> np.ndarray:
    """Render a .sid with Debian's sidplayfp (headless, `-w`): int16 mono samples.

    subtune is 1-based (None: the tune's start song); chip "6581"/"8580" forces the model
    (None: the tune's own). At most `seconds` of audio is returned. delay_cycles: the
    C64 power-on delay (sidplayfp --delay; None: sidplayfp's random one). The samples
    run on reSIDfp's own time base (see `resid_rate_ratio`).
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
    if delay_cycles is not None:
        if not 0 <= int(delay_cycles) <= 0xFFFF:
            raise ValueError(f"delay_cycles must be in 0..65535; got {delay_cycles!r}")
        args.append(f"--delay={int(delay_cycles)}")
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


# ---------------------------------------------------------------------------- cycle-exact replay

SID_LOG_ENTRIES_PER_FRAME = 400   # write-log room (a digi tune writes $D418 hundreds of times a frame)


def replay_writes(writes: np.ndarray, chip: str, n_cycles: int, rate_hz: int = 48_000,
                  clock: str = "PAL") -> np.ndarray:
    """Feed SID writes into a fresh reSID at their own cycles: int16 mono samples of
    cycles 0..n_cycles (reSID's raw time base, as sidplayfp's).

    writes: (n, 3) int rows (cycle, register, value) in cycle order, cycle 0 = the first
    sample (earlier writes, e.g. init's, are applied with their spacing, unheard)."""

    if chip not in ("6581", "8580"):
        raise ValueError(f"chip must be '6581' or '8580'; got {chip!r}")
    w = np.asarray(writes, dtype=np.int64).reshape(-1, 3)
    if len(w) and (np.diff(w[:, 0]) < 0).any():
        raise ValueError("writes: cycles must be in order (column 0 non-decreasing)")
    sid = SID(ChipModel.MOS6581 if chip == "6581" else ChipModel.MOS8580, SamplingMethod.RESAMPLE,
              float(CLOCK_PARAMS[clock][0]), float(rate_hz))
    sid.clock(WARMUP_CYCLES)
    now = min(0, int(w[0, 0])) if len(w) else 0
    out: list[int] = []
    for cycle, reg, value in w:
        if cycle >= n_cycles:
            break
        if cycle > now:
            if now < 0:   # before the first sample: clock up to 0 unheard
                sid.clock(int(min(cycle, 0) - now))
                now = min(int(cycle), 0)
            if cycle > now:
                out.extend(sid.clock(int(cycle - now)))
                now = int(cycle)
        sid.write(int(reg), int(value))
    if now < 0:
        sid.clock(-now)
        now = 0
    if n_cycles > now:
        out.extend(sid.clock(int(n_cycles - now)))
    return np.asarray(out, dtype=np.int16)


def cycle_exact_writes(sid_path: str | Path, subtune: int, n_frames: int):
    """Run the dumper's emulator on a PSID subtune (1-based) logging every SID write:
    sidlive.c64.machine.DumpResult with sid_writes (cycles from frame 0's boundary)."""
    tune = load_psid(sid_path).require_supported()
    return run_psid(tune.data, tune.load_addr, tune.init_addr, tune.play_addr, subtune - 1, n_frames,
                    speed_cia=tune.speed_cia(subtune), clock=tune.frames_clock(),
                    sid_log_capacity=SID_LOG_ENTRIES_PER_FRAME * n_frames)


def write_stats(writes: np.ndarray, n_frames: int, cycles_per_frame: int) -> dict:
    """Per-frame write counts from a write log: all writes, and value changes of $D418
    (volume; a digi tune changes it hundreds of times a frame, far beyond 50 Hz frames)."""
    w = np.asarray(writes, dtype=np.int64).reshape(-1, 3)
    w = w[(w[:, 0] >= 0) & (w[:, 0] < n_frames * cycles_per_frame)]
    vol = w[w[:, 1] == 0x18, 2]
    changes = int((np.diff(vol) != 0).sum()) if len(vol) else 0
    return {"writes_per_frame": round(len(w) / max(1, n_frames), 1),
            "d418_changes_per_frame": round(changes / max(1, n_frames), 2)}


# ---------------------------------------------------------------------------- sound check

def check_tune(sid_path: Path, seconds: float = 30.0, rate_hz: int = 48_000, dump=None,
               exact: bool = False, delay_cycles: int | None = None) -> dict:
    """Dump (sidlive.c64.dump.dump_tune by default), render with sidlive, render with
    sidplayfp on the same chip and subtune; correlate the envelopes (sidplayfp read at
    reSIDfp's true rate). exact: also correlate the cycle-exact replay of the dumper's
    writes with sidplayfp ("exact"; both on reSID's time base) and add write_stats."""
    if dump is None:
        dump = dump_tune
    t0 = time.perf_counter()
    frames = dump(sid_path, subtune=None, seconds=seconds)
    t_dump = time.perf_counter() - t0
    subtune = frames.extra.get("subtune")
    ours = render(frames, rate_hz=rate_hz)
    ref = sidplayfp_render(sid_path, seconds, subtune=subtune, chip=frames.chip, rate_hz=rate_hz,
                           delay_cycles=delay_cycles)
    r, lag_ms = envelope_alignment(ours, ref, rate_hz, b_rate_hz=rate_hz * resid_rate_ratio(rate_hz))
    row = {"path": str(sid_path), "subtune": subtune, "chip": frames.chip, "clock": frames.clock,
           "frames": len(frames), "status": frames.extra.get("status", ""),
           "speed": frames.extra.get("speed", ""), "play_hz": frames.extra.get("play_hz"),
           "correlation": None if np.isnan(r) else round(r, 4), "lag_ms": lag_ms,
           "dump_s": round(t_dump, 2)}
    if exact:
        cycles = CLOCK_PARAMS[frames.clock][1]
        res = cycle_exact_writes(sid_path, subtune, len(frames))
        row.update(write_stats(res.sid_writes, len(frames), cycles))
        if res.sid_writes_lost:
            row["exact"] = None   # the log overflowed: no faithful replay
        else:
            x = replay_writes(res.sid_writes, frames.chip, len(frames) * cycles, rate_hz, frames.clock)
            rx = envelope_alignment(x, ref, rate_hz)[0]
            row["exact"] = None if np.isnan(rx) else round(rx, 4)
    return row


def pick_tunes(hvsc_root: Path, n: int, seed: int = 0) -> list[Path]:
    """A seeded sample of `n * 3` .sid paths (spares for tunes the dumper refuses)."""
    paths = sorted(Path(hvsc_root).rglob("*.sid"))
    if not paths:
        raise FileNotFoundError(f"{hvsc_root}: no .sid files")
    return random.Random(seed).sample(paths, min(len(paths), 3 * n))


def sound_check(hvsc_root: Path, n: int = 20, seconds: float = 30.0, seed: int = 0,
                dump=None, log=print, exact: bool = False, delay_cycles: int | None = None) -> list[dict]:
    """Check up to n sampled tunes (refused or failing ones skipped and logged); one row per tune."""
    rows: list[dict] = []
    for path in pick_tunes(hvsc_root, n, seed):
        if len(rows) >= n:
            break
        try:
            row = check_tune(path, seconds, dump=dump, exact=exact, delay_cycles=delay_cycles)
        except Exception as e:   # unsupported (RSID, multi-SID) or failing tunes are listed, not fatal
            log(f"skip {path.relative_to(hvsc_root)}: {type(e).__name__}: {e}")
            continue
        row["path"] = str(path.relative_to(hvsc_root))
        rows.append(row)
        log(format_row(row))
    return rows


def _num(x, spec: str = ".3f", width: int = 6) -> str:
    return f"{'-' if x is None else format(x, spec):>{width}}"


def format_row(row: dict) -> str:
    """One sound-check row as a line of the table."""
    extra = ""
    if "exact" in row:
        extra = (f"{_num(row['exact'])}  {_num(row.get('writes_per_frame'), '.1f', 5)}"
                 f"  {_num(row.get('d418_changes_per_frame'), '.1f', 5)}  ")
    speed = f"{row.get('speed', '')!s:<3} {_num(row.get('play_hz'), '.1f', 5)}"
    return (f"{_num(row['correlation'])}  {row['lag_ms']:+7.1f} ms  {extra}{speed}  {row['chip']}  "
            f"{row['clock']:<4}  st{row['subtune']!s:<3} {row['path']}")


def format_table(rows: list[dict]) -> str:
    """The sound-check rows as a table with summary lines (tunes at the target correlation)."""
    ok = [r for r in rows if r["correlation"] is not None and r["correlation"] >= TARGET_CORRELATION]
    corr = [r["correlation"] for r in rows if r["correlation"] is not None]
    exact = "exact  wr/fr  vol/fr  " if rows and "exact" in rows[0] else ""
    lines = [f"  corr      lag     {exact}speed  Hz  chip  clock subtune path"] + [format_row(r) for r in rows]
    if corr:
        lines.append(f"{len(ok)}/{len(rows)} tunes >= {TARGET_CORRELATION} "
                     f"(median {np.median(corr):.3f}, min {min(corr):.3f})")
    ex = [r["exact"] for r in rows if r.get("exact") is not None]
    if ex:
        lines.append(f"cycle-exact replay: {sum(x >= TARGET_CORRELATION for x in ex)}/{len(ex)} >= "
                     f"{TARGET_CORRELATION} (median {np.median(ex):.3f}, min {min(ex):.3f})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line of the sound check: print the table (and write the rows as JSON); returns the exit status."""
    ap = argparse.ArgumentParser(prog="python -m sidlive.measure.soundcheck",
                                 description="sound check: sidplayfp vs sidlive render of our dump")
    ap.add_argument("hvsc", nargs="?", type=Path, default=None, help="HVSC C64Music folder (default ../shared)")
    ap.add_argument("--n", type=int, default=20, help="tunes (default 20)")
    ap.add_argument("--seconds", type=float, default=30.0, help="seconds per tune (default 30)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    ap.add_argument("--exact", action="store_true",
                    help="also replay the dumper's SID writes at their own cycles (before framing)")
    ap.add_argument("--delay", type=int, default=None, metavar="CYCLES",
                    help="sidplayfp's power-on delay (default: its random one)")
    args = ap.parse_args(argv)
    root = args.hvsc or hvsc_root()
    if root is None or not Path(root).is_dir():
        print("sound check: no HVSC folder (give one, or put ../shared/hvsc/C64Music beside the checkout)",
              file=sys.stderr)
        return 2
    rows = sound_check(Path(root), args.n, args.seconds, args.seed,
                       log=lambda s: print(s, file=sys.stderr), exact=args.exact, delay_cycles=args.delay)
    print(format_table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
