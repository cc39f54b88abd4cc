"""`sidlive bench`: this machine's figures, from a registry of named benchmarks.

    sidlive bench [--json] [--only NAME ...] [--quick]

Each benchmark is a function registered with `@benchmark("name")`; it takes `quick`
(shorter workloads, for tests) and returns a dict of figures, or raises
`Unavailable(reason)` when it cannot run here (printed as "name: unavailable (reason)").
The engine (sidlive/measure/enginebench.py) and the soak (sidlive/measure/soak.py) register
theirs in their own files through sidlive/measure/registry.py; this module imports them.

Figures are ratios measured within one run (audio seconds per wall second, frames per
second); nothing here asserts on time.
"""
from __future__ import annotations

import inspect
import platform
import random
import time

from sidlive.audio.renderer import Renderer
from sidlive.c64.dump import dump_tune
from sidlive.c64.goattracker import FixtureUnavailable, goattracker_frames
from sidlive.measure import enginebench, soak  # noqa: F401  importing them registers their benchmarks
from sidlive.measure.registry import BENCHMARKS, ON_REQUEST, Unavailable, benchmark
from sidlive.paths import hvsc_root


@benchmark("render")
def bench_render(quick: bool = False) -> dict:
    """Real-time factor: 60 s of a GoatTracker fixture rendered at 48 kHz (6581)."""

    seconds = 5.0 if quick else 60.0
    try:
        frames = goattracker_frames("dojo", seconds=seconds)
    except FixtureUnavailable as e:
        raise Unavailable(str(e)) from None
    Renderer(frames.slice(0, 2), rate_hz=48_000).render_frames(2)   # warm Numba outside timing
    r = Renderer(frames, chip=frames.chip, rate_hz=48_000)
    t0, c0 = time.perf_counter(), time.process_time()
    n = len(r.render_frames(len(frames)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    audio = n / 48_000
    return {"fixture": "goattracker:dojo", "chip": frames.chip, "rate_hz": 48_000,
            "audio_s": round(audio, 3), "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
            "realtime_factor": round(audio / wall, 2),
            "realtime_factor_cpu": round(audio / max(cpu, 1e-9), 2)}   # less sensitive to a busy machine


def _dump_tunes(n: int) -> list:
    root = hvsc_root()
    if root is None:
        raise Unavailable("no ../shared/hvsc/C64Music and no fixture PSID to dump")
    musicians = root / "MUSICIANS"
    paths = sorted((musicians if musicians.is_dir() else root).rglob("*.sid"))
    if not paths:
        raise Unavailable(f"{root}: no .sid files")
    return random.Random(0).sample(paths, min(len(paths), 4 * n))


@benchmark("dump")
def bench_dump(quick: bool = False) -> dict:
    """sidlive.c64.dump frames per second over a few HVSC tunes (seeded pick)."""
    n_tunes, seconds = (1, 5.0) if quick else (3, 30.0)
    frames_total, wall, used, errors = 0, 0.0, [], []
    warmed = False
    for path in _dump_tunes(n_tunes):
        if len(used) >= n_tunes:
            break
        try:
            if not warmed:   # load/compile the emulator's Numba kernels outside the timing
                dump_tune(path, subtune=None, seconds=0.5)
                warmed = True
            t0 = time.perf_counter()
            f = dump_tune(path, subtune=None, seconds=seconds)
        except Exception as e:   # unsupported tune (RSID, multi-SID ...): try the next
            errors.append(f"{path.name}: {type(e).__name__}")
            continue
        wall += time.perf_counter() - t0
        frames_total += len(f)
        used.append(path.name)
    if not used:
        raise Unavailable(f"no tune dumped ({'; '.join(errors[:3])})")
    return {"tunes": used, "frames": frames_total, "wall_s": round(wall, 3),
            "frames_per_s": round(frames_total / wall, 1)}


def run(names: list[str] | None = None, quick: bool = False, **options) -> dict:
    """{name: figures or {"unavailable": reason}} for the chosen (default: all) benchmarks.

    options (e.g. minutes=, model=) go to the benchmarks whose functions take them.
    """
    names = [n for n in BENCHMARKS if n not in ON_REQUEST] if not names else names
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise ValueError(f"unknown benchmark {unknown[0]!r}; known: {', '.join(BENCHMARKS)}")
    out = {}
    for name in names:
        try:
            fn = BENCHMARKS[name]
            params = inspect.signature(fn).parameters
            kw = {k: v for k, v in options.items() if v is not None and k in params}
            out[name] = fn(quick=quick, **kw)
        except Unavailable as e:
            out[name] = {"unavailable": str(e)}
    return out


def format_report(results: dict) -> str:
    """The benchmark figures as text, one line per benchmark, after a line naming the machine."""
    lines = [f"machine: {platform.machine()} {platform.processor() or ''} python {platform.python_version()}".rstrip()]
    for name, fig in results.items():
        if "unavailable" in fig:
            lines.append(f"{name}: unavailable ({fig['unavailable']})")
        elif name == "render":
            lines.append(f"render: {fig['realtime_factor']}x real time ({fig['audio_s']} s of audio in "
                         f"{fig['wall_s']} s wall, {fig.get('cpu_s', '?')} s CPU; {fig['fixture']}, "
                         f"{fig['chip']}, {fig['rate_hz']} Hz)")
        elif name == "dump":
            lines.append(f"dump: {fig['frames_per_s']} frames/s ({fig['frames']} frames of "
                         f"{len(fig['tunes'])} tunes in {fig['wall_s']} s)")
        else:
            lines.append(f"{name}: " + ", ".join(f"{k} {v}" for k, v in fig.items()))
    return "\n".join(lines)
