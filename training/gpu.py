"""One command for a machine with a CUDA GPU (e.g. one H100 and 16 cores): dump the collection
from the .sid files with every core, train the pointer model for N minutes (bf16, a batch sized
for the GPU, batches built ahead by worker processes, the learning-rate schedule over the wall
clock), then export checkpoint and .sidm into OUT_DIR. Nothing large is copied in: the data
is dumped there, from the tunes.

    python -m training.gpu OUT_DIR --minutes 6 [--hvsc ../shared/hvsc/C64Music]
                           [--init-from presets/models/default.sidm] [--batch-windows 48] [--key value ...]

OUT_DIR gets data/ (the dump, resumable), run/ (config.toml, curve.jsonl, last.pt),
model.sidm and gpu_run.json (the wall-time split, frames seen, frames/s, validation bits).
On a machine without CUDA it runs on the CPU (for trying it out with small settings).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from sidlive.c64.collection import dump_collection
from sidlive.paths import REPO_ROOT, hvsc_root
from training.config import resolve
from training.export import export
from training.train import train

POINTER_CONFIG = REPO_ROOT / "training" / "configs" / "pointer.toml"
GPU_BATCH_WINDOWS = 48          # windows of 512 frames per step on one GPU (the 7M model)
MAX_DUMP_SECONDS = 120.0


def gpu_run(out_dir: str | Path, minutes: float, *, hvsc: str | Path | None = None, config: str | Path = POINTER_CONFIG,
            init_from: str | Path | None = None, batch_windows: int | None = None, limit: int | None = None,
            max_seconds: float = MAX_DUMP_SECONDS, flags: list[str] | None = None, log=print) -> dict:
    """Dump, train for `minutes`, export; returns (and writes) the run's figures."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(hvsc) if hvsc else hvsc_root()
    if root is None or not root.is_dir():
        raise ValueError("no HVSC folder: give --hvsc, or put ../shared/hvsc/C64Music beside the checkout")
    if not minutes > 0:
        raise ValueError(f"--minutes must be > 0, got {minutes}")
    cuda = torch.cuda.is_available()
    cores = os.cpu_count() or 1
    t0 = time.monotonic()
    dump = dump_collection(root, out / "data", workers=cores, max_seconds=max_seconds, limit=limit, progress=False)
    t_dump = time.monotonic() - t0
    log(f"dump: {dump['total_frames']:,} frames in {t_dump:.0f} s ({cores} workers)")
    overrides = {"data_dir": str(out / "data"), "run_dir": str(out / "run"), "device": "auto", "bf16": True,
                 "batch_windows": batch_windows or (GPU_BATCH_WINDOWS if cuda else 4), "max_minutes": minutes,
                 "time_schedule": True, "max_steps": 10_000_000, "loader_workers": max(1, cores - 2) if cuda else 0,
                 "threads": cores if not cuda else 1, "ckpt_every_minutes": 2.0, "progress": False,
                 "init_from": str(init_from) if init_from else ""}
    mcfg, tcfg = resolve(config, overrides=overrides, flags=flags)
    t1 = time.monotonic()
    summary = train(mcfg, tcfg, log=log)
    t_train = time.monotonic() - t1
    t2 = time.monotonic()
    export(out / "run" / "last.pt", out / "model.sidm", log=log)
    t_export = time.monotonic() - t2
    fig = {"device": torch.cuda.get_device_name(0) if cuda else "cpu", "cores": cores,
           "dump_s": round(t_dump, 1), "train_s": round(t_train, 1), "export_s": round(t_export, 1),
           "wall_s": round(time.monotonic() - t0, 1), "frames_seen": summary["frames_seen"],
           "steps": summary["step"], "train_frames_per_s": round(summary["frames_seen"] / max(t_train, 1e-9), 1),
           "val_bits_per_frame": summary.get("val_bits_per_frame"), "batch_windows": tcfg.batch_windows,
           "dumped_frames": dump["total_frames"], "model": str(out / "model.sidm")}
    (out / "gpu_run.json").write_text(json.dumps(fig, indent=1) + "\n", encoding="utf-8")
    return fig


def main(argv: list[str] | None = None) -> int:
    """`python -m training.gpu`: dump, train, export in one command; prints the figures as JSON."""
    ap = argparse.ArgumentParser(prog="python -m training.gpu", description=__doc__.split("\n\n")[0],
                                 epilog="Any training config key may follow as --key value.")
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--minutes", type=float, required=True, help="training wall time")
    ap.add_argument("--hvsc", type=Path, default=None, help="HVSC C64Music folder (default ../shared)")
    ap.add_argument("--config", type=Path, default=POINTER_CONFIG)
    ap.add_argument("--init-from", type=Path, default=None, help="warm start from this .sidm / .pt")
    ap.add_argument("--batch-windows", type=int, default=None, help=f"default {GPU_BATCH_WINDOWS} on CUDA, 4 on CPU")
    ap.add_argument("--limit", type=int, default=None, help="dump only the first N tunes (trying it out)")
    ap.add_argument("--max-seconds", type=float, default=MAX_DUMP_SECONDS, help="longest dump per tune")
    args, rest = ap.parse_known_args(argv)
    try:
        fig = gpu_run(args.out_dir, args.minutes, hvsc=args.hvsc, config=args.config, init_from=args.init_from,
                      batch_windows=args.batch_windows, limit=args.limit, max_seconds=args.max_seconds, flags=rest)
    except (ValueError, OSError) as e:
        print(f"training.gpu: {e}", file=sys.stderr)
        return 2
    print(json.dumps(fig, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
