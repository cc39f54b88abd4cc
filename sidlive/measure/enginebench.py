"""`engine` figures for `sidlive bench` (python -m sidlive.measure.enginebench [MODEL] [--quick]): frames/s of one generator thread with the window full,
p99 per frame, events per frame, a forced worst case, rollback, first-frame latency, resident
memory, and the same model in PyTorch (training/torch_ref.py) for scale.

    sidlive.measure.enginebench.run(model_path=None, quick=False) -> dict

Without a model path it measures a randomly initialised model of training/configs/default.toml
written to a temporary .sidm (speed does not depend on the weights' values; the events per
frame it reports say how much local-decoder work the random model caused). Importing this
module registers the `engine` benchmark with sidlive.measure.bench.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from engine.config import ModelConfig, param_shapes
from engine.generator import Generator
from engine.sidm import write_sidm
from sidlive.measure.registry import benchmark
from sidlive.paths import DEFAULT_MODEL, REPO_ROOT
from training.config import resolve
from sidlive.frames import NUM_REGS, PAL_FRAME_RATE_HZ

DEFAULT_TOML = REPO_ROOT / "training" / "configs" / "default.toml"
FRAME_RATE_HZ = PAL_FRAME_RATE_HZ


def random_model(path: str | Path, cfg: ModelConfig | None = None, seed: int = 0) -> Path:
    """Write a randomly initialised model (training/model.py's init scheme, numpy only) to path."""
    cfg = cfg or resolve(DEFAULT_TOML)[0]
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, shape in param_shapes(cfg).items():
        if len(shape) == 2:
            std = cfg.init_std
            if name.endswith(("wo", "w_down", "ro_down")):
                n = cfg.n_layers_global if name.startswith("g") else cfg.n_layers_local
                std /= math.sqrt(2 * max(n, 1))
            arrays[name] = rng.normal(0.0, std, shape).astype(np.float32)
        elif name == "copy_bonus":
            arrays[name] = np.full(shape, cfg.copy_bonus_init, np.float32)
        elif name in ("ro_bias", "gate_b"):
            arrays[name] = np.zeros(shape, np.float32)
        else:
            arrays[name] = np.ones(shape, np.float32)
    write_sidm(path, cfg.to_dict(), arrays, {k for k, a in arrays.items() if a.ndim == 2}, {"source": "random"})
    return Path(path)


def _walk(n: int, p_change: float, seed: int = 1) -> np.ndarray:
    """A random frame sequence where each register changes with probability p_change."""
    rng = np.random.default_rng(seed)
    fr = np.zeros((n, NUM_REGS), np.uint8)
    fr[0] = rng.integers(0, 256, NUM_REGS)
    for t in range(1, n):
        fr[t] = fr[t - 1]
        ch = rng.random(NUM_REGS) < p_change
        fr[t, ch] = (fr[t, ch] + rng.integers(1, 256, ch.sum())) % 256  # a changed register really changes
    return fr


def _pct(a, q) -> float:
    return round(float(np.percentile(a, q)) * 1e3, 3)


def time_engine(model_path, frames: int = 1000, seed: int = 7391738265) -> dict:
    """One thread, window full: per-frame calls (p50/p99), a batched call, worst case, rollback."""
    g = Generator(model_path, seed=seed, temperature=1.0, log=None)
    W = g.cfg.context_frames
    prompt = _walk(W + 16, 0.2)
    g.prime(prompt)
    g.generate(8)  # window full from here on
    out = np.empty((1, NUM_REGS), np.uint8)
    times, cpu, events = np.empty(frames), np.empty(frames), np.empty(frames)
    prev = g.last_frames(1)[0].copy()
    for i in range(frames):
        c0, t0 = time.thread_time(), time.perf_counter()
        g.generate(1, out)
        times[i], cpu[i] = time.perf_counter() - t0, time.thread_time() - c0
        events[i] = np.count_nonzero(out[0] != prev)
        prev[:] = out[0]
    c0, t0 = time.thread_time(), time.perf_counter()
    g.generate(frames)
    batched, batched_cpu = frames / (time.perf_counter() - t0), frames / (time.thread_time() - c0)
    # worst case: every register changes every frame and every readout runs (teacher forcing)
    worst = _walk(max(frames // 4, 50), 1.0, seed=3)
    c0, t0 = time.thread_time(), time.perf_counter()
    g.teacher_logprobs(worst)
    worst_fps, worst_cpu = len(worst) / (time.perf_counter() - t0), len(worst) / (time.thread_time() - c0)
    # roll back 10 frames and regenerate them
    rb, rb_cpu = [], []
    for _ in range(20):
        c0, t0 = time.thread_time(), time.perf_counter()
        g.rollback(10)
        g.generate(10)
        rb.append(time.perf_counter() - t0)
        rb_cpu.append(time.thread_time() - c0)
    return {"model": str(model_path), "context_frames": W, "frames": frames,
            "load_avg_1min": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
            "frames_per_s": round(frames / times.sum(), 1), "realtime_x": round(frames / times.sum() / FRAME_RATE_HZ, 1),
            "ms_per_frame_p50": _pct(times, 50), "ms_per_frame_p99": _pct(times, 99),
            "ms_per_frame_max": round(float(times.max()) * 1e3, 3),
            "cpu_frames_per_s": round(frames / cpu.sum(), 1), "cpu_ms_per_frame_p99": _pct(cpu, 99),
            "batched_frames_per_s": round(batched, 1), "batched_cpu_frames_per_s": round(batched_cpu, 1),
            "events_per_frame": round(float(events.mean()), 2),
            "worst_case_frames_per_s": round(worst_fps, 1), "worst_case_cpu_frames_per_s": round(worst_cpu, 1),
            "worst_case_events_per_frame": NUM_REGS,
            "rollback10_ms_p50": _pct(rb, 50), "rollback10_ms_max": round(max(rb) * 1e3, 3),
            "rollback10_cpu_ms_p50": _pct(rb_cpu, 50)}


_CHILD = r"""
import resource, sys, time
t0 = float(sys.argv[2])
from engine.generator import Generator
g = Generator(sys.argv[1], seed=1, log=None)
f = g.generate(1)
t1 = time.time()
g.generate(int(sys.argv[3]))
print(t1 - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, "torch" in sys.modules, flush=True)
"""


def time_launch(model_path, frames: int = 600) -> dict:
    """A fresh process (warm Numba cache): seconds from launch to the first frame, peak RSS."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    subprocess.run([sys.executable, "-c", _CHILD, str(model_path), str(time.time()), "1"], env=env,
                   check=True, capture_output=True)  # make sure the cache is built
    res = subprocess.run([sys.executable, "-c", _CHILD, str(model_path), str(time.time()), str(frames)], env=env,
                         check=True, capture_output=True, text=True)
    first_s, rss_mb, torch_loaded = res.stdout.split()
    return {"first_frame_s": round(float(first_s), 3), "peak_rss_mb": round(float(rss_mb), 1),
            "rss_frames": frames, "torch_imported": torch_loaded == "True"}


def time_torch(model_path, frames: int = 150) -> dict:
    """The same model in PyTorch eager (float32, KV-cached, batch 1): the best thread count."""
    try:
        import torch  # optional here: the PyTorch comparison runs where torch is installed
    except ImportError as e:
        return {"unavailable": f"torch is not installed ({e})"}
    from training.torch_ref import TorchGenerator  # optional here: the PyTorch comparison runs where torch is installed
    best, cpu = {}, {}
    for threads in sorted({1, min(2, os.cpu_count() or 1)}):
        torch.set_num_threads(threads)
        g = TorchGenerator.from_sidm(model_path, seed=7391738265)
        W = g.cfg.context_frames
        g.prime(_walk(W + 16, 0.2))
        g.generate(4)
        c0, t0 = time.process_time(), time.perf_counter()
        g.generate(frames)
        best[threads] = round(frames / (time.perf_counter() - t0), 1)
        cpu[threads] = round(frames / (time.process_time() - c0), 1)
    t = max(best, key=best.get)
    return {"torch_frames_per_s": best[t], "torch_threads": t, "torch_by_threads": best,
            "torch_cpu_frames_per_s": cpu[t]}


def run(model_path: str | Path | None = None, quick: bool = False) -> dict:
    """All engine figures; model_path None = a random default-config model in a temp file."""
    with tempfile.TemporaryDirectory() as tmp:
        if model_path is None:
            model_path = random_model(Path(tmp) / "random-default.sidm")
            source = "random init, training/configs/default.toml"
        else:
            source = str(model_path)
        fig = {"source": source}
        fig.update(time_engine(model_path, frames=200 if quick else 2000))
        fig.update(time_launch(model_path, frames=100 if quick else 600))
        torch_fig = time_torch(model_path, frames=20 if quick else 150)
        fig.update(torch_fig)
        if "torch_frames_per_s" in torch_fig:
            fig["speedup_vs_torch"] = round(fig["frames_per_s"] / torch_fig["torch_frames_per_s"], 1)
            fig["cpu_speedup_vs_torch"] = round(fig["cpu_frames_per_s"] / torch_fig["torch_cpu_frames_per_s"], 1)
    return fig



@benchmark("engine")
def bench_engine(quick: bool = False) -> dict:
    """Engine frames/s etc. on the default model (presets/models/default.sidm) or a random one."""
    default = DEFAULT_MODEL
    return run(default if default.is_file() else None, quick=quick)


def main(argv: list[str] | None = None) -> int:
    """Command line of the engine benchmark: print its figures as JSON; returns 0."""
    ap = argparse.ArgumentParser(prog="python -m sidlive.measure.enginebench", description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default=None, help="a .sidm (default: random default-config model)")
    ap.add_argument("--quick", action="store_true", help="short workloads")
    args = ap.parse_args(argv)
    print(json.dumps(run(args.model, quick=args.quick), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
