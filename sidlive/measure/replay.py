"""A recorded take replayed offline: the frames it played, with the logged mutes at their samples, rendered again and compared with the WAV the session recorded."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sidlive.audio.recording import session_paths
from sidlive.audio.renderer import Renderer
from sidlive.audio.wav import read_wav
from sidlive.frames import load_regs


def replay_take(base: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(recorded int16 samples, offline render of the recorded frames with the logged
    renderer events replayed at their block's first sample)."""

    paths = session_paths(base)
    live, rate = read_wav(paths["wav"])
    frames = load_regs(paths["regs"])
    events = []
    for n, line in enumerate(paths["log"].read_text(encoding="utf-8").splitlines()):
        rec = json.loads(line)
        if rec["control"] in ("renderer.mute", "renderer.panic", "renderer.resume"):
            events.append((rec["value"]["sample"], n, rec["control"], rec["value"]))
    extra = frames.extra
    r = Renderer(frames, chip=frames.chip, rate_hz=rate, clock=frames.clock, subframes=extra.get("subframes", 4))
    out = np.empty(len(live), np.int16)
    done = 0
    for sample, _, control, value in sorted(events):
        if sample > done:
            done += r.read_into(out[done:sample])
        if control == "renderer.mute":
            r.set_mute(value["voice"], value["muted"])
        elif control == "renderer.panic":
            r.panic()
        else:
            r.resume()
    r.read_into(out[done:])
    return live, out


def _diff(a: np.ndarray, b: np.ndarray) -> dict:
    d = np.abs(a.astype(np.int64) - b.astype(np.int64))
    sig = float(np.sqrt(np.mean(b.astype(np.float64) ** 2))) or 1.0
    err = float(np.sqrt(np.mean(d.astype(np.float64) ** 2)))
    return {"max_abs": int(d.max()) if len(d) else 0, "p999_abs": float(np.percentile(d, 99.9)) if len(d) else 0.0,
            "rms_diff_db": round(20 * np.log10(max(err, 1e-9) / sig), 1)}


def compare_take(base: str | Path) -> dict:
    """Recorded vs offline replay, and the floor: two offline replays against each other."""
    live, offline = replay_take(base)
    _, again = replay_take(base)
    return {"samples": len(live), "live_vs_offline": _diff(live, offline), "offline_vs_offline": _diff(again, offline)}


def panic_silence(base: str | Path, after_ms: float = 10.0, window_ms: float = 40.0) -> dict:
    """Every panic of a recorded take: the level (dBFS, RMS) of the WAV from `after_ms` after
    the callback took it, over `window_ms` or up to its resume; the worst and the median."""
    paths = session_paths(base)
    take, rate = read_wav(paths["wav"])
    marks = []
    for line in paths["log"].read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if rec["control"] in ("renderer.panic", "renderer.resume"):
            marks.append((rec["value"]["sample"], rec["control"]))
    marks.sort()
    levels = []
    for i, (sample, control) in enumerate(marks):
        if control != "renderer.panic":
            continue
        a = sample + int(rate * after_ms / 1000)
        b = min(a + int(rate * window_ms / 1000),
                next((s for s, c in marks[i + 1:] if c == "renderer.resume"), len(take)), len(take))
        if b > a:
            x = take[a:b].astype(np.float64)
            levels.append(20 * np.log10(max(np.sqrt(np.mean(x ** 2)), 1e-9) / 32768))
    return {"panics": len(levels), "after_ms": after_ms,
            "worst_dbfs": round(max(levels), 1) if levels else None,
            "median_dbfs": round(float(np.median(levels)), 1) if levels else None}
