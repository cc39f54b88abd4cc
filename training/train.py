"""Train the sidlive model.

    python -m training.train --config training/configs/default.toml [--key value ...] [--resume PATH]
    torchrun --nproc_per_node 2 -m training.train --config ...      (DDP: gloo on CPU, nccl on CUDA)

CPU by default, CUDA when present (device = "auto"). Resumes from `--resume PATH` or from
RUN_DIR/last.pt when it exists. The run dir gets config.toml (the resolved config),
curve.jsonl (step, frames, wall_s, train/val bits per frame), baseline.npz, last.pt, best.pt.
Batches are a function of (seed, rank, step), so a resumed run sees the same data.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from engine.config import ModelConfig
from training.baseline import ChangeModel
from training.config import TrainConfig, resolve, to_toml
from training.dataset import Batch, FrameStore, WindowSampler, load_index, split, top_composers
from training.model import LN2, SidModel, count_params
from training.pointer import Cands
from training.warmstart import load_init, warm_start
from training.prefetch import Prefetcher

CKPT_FORMAT = "sidlive-ckpt"


@dataclasses.dataclass
class Dist:
    """This process's place in a distributed run: rank, world size and local rank."""
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """True on rank 0 (the process that logs and writes checkpoints)."""
        return self.rank == 0


def setup_dist(device_kind: str) -> Dist:
    """Join the process group when WORLD_SIZE > 1 (nccl on CUDA, else gloo); one process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def pick_device(name: str, d: Dist) -> torch.device:
    """The torch device for auto / cpu / cuda (this rank's GPU); ValueError when cuda is missing."""
    if name not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {name!r}")
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ValueError("device = 'cuda' but no CUDA device is available")
        torch.cuda.set_device(d.local_rank)
        return torch.device("cuda", d.local_rank)
    return torch.device("cpu")


def lr_at(step: int, t: TrainConfig, time_frac: float | None = None) -> float:
    """Learning rate at step: linear warmup, then cosine decay to min_lr_frac of lr, over the
    steps (or over the wall-clock budget: time_frac = elapsed / max_minutes, time_schedule)."""
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    frac = min(1.0, (step - t.warmup_steps) / max(1, t.max_steps - t.warmup_steps))
    if time_frac is not None:
        frac = min(1.0, time_frac)
    return t.lr * (t.min_lr_frac + (1 - t.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * frac)))


def make_optimizer(model: SidModel, t: TrainConfig) -> torch.optim.Optimizer:
    """AdamW with weight decay on the matrices only (not embeddings, norms or vectors)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        is_matrix = p.ndim == 2 and not name.endswith("_emb.weight")
        (decay if is_matrix else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": t.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=t.lr, betas=(t.beta1, t.beta2))


def batch_bits(model, b: Batch, device: torch.device, bf16: bool) -> tuple[torch.Tensor, int]:
    """Summed bits over real target frames, and their count."""
    frames = torch.as_tensor(b.frames.astype(np.int64), device=device)
    comp = torch.as_tensor(b.composer, device=device)
    mask = torch.as_tensor(b.mask, device=device)
    cands = Cands.from_numpy(*b.cand, device=device) if b.cand is not None else None
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        lp = model(frames, comp, cands)  # (B, T, 25) log2
    bits = -(lp.float().sum(-1) * mask).sum()
    return bits, int(mask.sum())


@torch.no_grad()
def evaluate(model: SidModel, val: Batch, batch: int, device: torch.device, bf16: bool) -> float:
    """Mean bits per real target frame of the model over the validation windows."""
    model.eval()
    total, n = 0.0, 0
    for i in range(0, len(val.frames), batch):
        bits, cnt = batch_bits(model, val.sub(i, i + batch), device, bf16)
        total, n = total + float(bits), n + cnt
    model.train()
    return total / max(n, 1)


def save_checkpoint(path: Path, state: dict) -> None:
    """Save state with torch.save to a temporary file, then rename it over path."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def train(mcfg: ModelConfig, tcfg: TrainConfig, resume: str | None = None, log=print) -> dict:
    """Run (or continue) training; returns a summary dict."""
    device_kind = "cuda" if tcfg.device == "cuda" or (tcfg.device == "auto" and torch.cuda.is_available()) else "cpu"
    d = setup_dist(device_kind)
    device = pick_device(tcfg.device, d)
    if device.type == "cpu":
        torch.set_num_threads(max(1, tcfg.threads))
    bf16 = tcfg.bf16
    run_dir = Path(tcfg.run_dir)
    ckpt = None
    resume_path = Path(resume) if resume else (run_dir / "last.pt")
    if resume or resume_path.exists():
        if not resume_path.is_file():
            raise FileNotFoundError(f"{resume_path}: checkpoint to resume from does not exist")
        ckpt = torch.load(resume_path, map_location="cpu", weights_only=False)
        if ckpt.get("format") != CKPT_FORMAT:
            raise ValueError(f"{resume_path}: field 'format' is not {CKPT_FORMAT!r}")
        mcfg = ModelConfig.from_dict(ckpt["model_config"])
        log(f"resuming from {resume_path} at step {ckpt['step']}")

    tunes = load_index(tcfg.data_dir)
    train_tunes, val_tunes = split(tunes, tcfg.val_permille, tcfg.seed)
    if tcfg.max_tunes:
        train_tunes = train_tunes[:tcfg.max_tunes]
    if not val_tunes:
        raise ValueError(f"{tcfg.data_dir}: no validation tunes at val_permille={tcfg.val_permille}")
    init = load_init(tcfg.init_from) if ckpt is None and tcfg.init_from else None
    if init is not None:
        mcfg = dataclasses.replace(mcfg, composers=init[0].composers)
    elif ckpt is None and mcfg.composers == ModelConfig().composers and tcfg.n_composers > 0:
        mcfg = dataclasses.replace(mcfg, composers=top_composers(train_tunes, tcfg.n_composers))
    store = FrameStore(tcfg.data_dir)
    sampler = WindowSampler(store, train_tunes, mcfg.composers, tcfg.window_frames, tcfg.rotate_voices,
                            tcfg.transpose_max_semitones, tcfg.composer_dropout, candidates=mcfg.pointer,
                            trim_silence=tcfg.trim_silence)
    val_set = WindowSampler(store, val_tunes, mcfg.composers, tcfg.window_frames,
                            candidates=mcfg.pointer, trim_silence=tcfg.trim_silence).fixed_windows(tcfg.seed,
                                                                                                   tcfg.val_windows)

    torch.manual_seed(tcfg.seed)
    model = SidModel(mcfg).to(device)
    opt = make_optimizer(model, tcfg)
    step, frames_seen, wall_prev, best_val = 0, 0, 0.0, float("inf")
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step, frames_seen, wall_prev = ckpt["step"], ckpt["frames_seen"], ckpt["wall_s"]
        best_val = ckpt.get("best_val", float("inf"))
        baseline = ChangeModel.from_dict(ckpt["baseline"])
    elif d.main:
        baseline = ChangeModel.fit(store.frames(t) for t in train_tunes)
    if init is not None:
        log(warm_start(model, init[1], tcfg.init_from))
    ddp_model = model
    if d.world > 1:
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)

    params = count_params(model)
    if d.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.toml").write_text(to_toml(mcfg, tcfg), encoding="utf-8")
        baseline.save(run_dir / "baseline.npz")
        val_base = _baseline_bits(baseline, val_set)
        log(f"params: global {params['global']:,}  local {params['local']:,}  total {params['total']:,}; "
            f"train tunes {len(train_tunes)}, val tunes {len(val_tunes)}; "
            f"composers {len(mcfg.composers) - 1} + any; baseline on val windows {val_base:.2f} bits/frame")
    curve_path = run_dir / "curve.jsonl"

    def checkpoint(val_bits: float | None, wall: float) -> None:
        nonlocal best_val
        state = {"format": CKPT_FORMAT, "version": 1, "model_config": mcfg.to_dict(),
                 "train_config": dataclasses.asdict(tcfg), "model": model.state_dict(),
                 "optimizer": opt.state_dict(), "step": step, "frames_seen": frames_seen, "wall_s": wall,
                 "best_val": best_val, "val_bits": val_bits, "baseline": baseline.to_dict(),
                 "params": params, "data": {"data_dir": str(tcfg.data_dir), "train_tunes": len(train_tunes),
                                            "val_tunes": len(val_tunes)}}
        if val_bits is not None and val_bits < best_val:
            best_val = state["best_val"] = val_bits
            save_checkpoint(run_dir / "best.pt", state)
        save_checkpoint(run_dir / "last.pt", state)

    frames_per_step = tcfg.batch_windows * tcfg.window_frames * d.world
    t_start = time.monotonic()
    t_ckpt = t_start
    acc_bits, acc_frames, t_log = 0.0, 0, time.monotonic()
    last_val = None
    bar = None
    if d.main and tcfg.progress:
        bar = tqdm(total=tcfg.max_steps, initial=step, unit="step", dynamic_ncols=True)
    model.train()
    def time_frac(t0: float) -> float | None:
        """Elapsed share of the wall-clock budget, for a time-based schedule (else None)."""
        if not (tcfg.time_schedule and tcfg.max_minutes > 0):
            return None
        return (time.monotonic() - t0) / (60 * tcfg.max_minutes)

    stop_requested, restore_signals = _stop_on_signals()
    try:
        prefetch = (Prefetcher(sampler, tcfg.seed, d.rank, tcfg.batch_windows, step, tcfg.max_steps,
                               tcfg.loader_workers) if tcfg.loader_workers > 0 else None)
        while step < tcfg.max_steps:
            out_of_time = tcfg.max_minutes > 0 and time.monotonic() - t_start > 60 * tcfg.max_minutes
            if _stop_all(out_of_time or stop_requested.is_set(), d):
                if stop_requested.is_set():
                    log(f"stop requested (signal): finishing at step {step} with a checkpoint")
                break
            for g in opt.param_groups:
                g["lr"] = lr_at(step, tcfg, time_frac(t_start))
            b = (prefetch.get(step) if prefetch is not None
                 else sampler.sample(np.random.default_rng([tcfg.seed, d.rank, step]), tcfg.batch_windows))
            bits, n = batch_bits(ddp_model, b, device, bf16)
            loss = bits / max(n, 1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if tcfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
            opt.step()
            step += 1
            frames_seen += frames_per_step
            acc_bits, acc_frames = acc_bits + float(bits.detach()), acc_frames + n
            now = time.monotonic()
            val_bits = None
            if d.main and (step % tcfg.val_every_steps == 0 or step == tcfg.max_steps):
                val_bits = last_val = evaluate(model, val_set, tcfg.batch_windows, device, bf16)
            if d.main and (step % tcfg.log_every_steps == 0 or val_bits is not None):
                fps = acc_frames * d.world / max(now - t_log, 1e-9)
                rec = {"step": step, "frames": frames_seen, "wall_s": round(wall_prev + now - t_start, 2),
                       "train_bits_per_frame": acc_bits / max(acc_frames, 1), "val_bits_per_frame": val_bits,
                       "lr": lr_at(step - 1, tcfg, time_frac(t_start)), "frames_per_s": round(fps, 1)}
                with curve_path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(rec) + "\n")
                if bar is not None:
                    bar.set_postfix(loss=f"{rec['train_bits_per_frame'] * LN2 / 25:.3f}",
                                    bits=f"{rec['train_bits_per_frame']:.1f}",
                                    val=f"{last_val:.1f}" if last_val is not None else "-", fps=f"{fps:.0f}")
                acc_bits, acc_frames, t_log = 0.0, 0, time.monotonic()
            if bar is not None:
                bar.update(1)
            if d.main and now - t_ckpt > 60 * tcfg.ckpt_every_minutes:
                checkpoint(val_bits, wall_prev + now - t_start)
                t_ckpt = now
        if prefetch is not None:
            prefetch.close()
        wall = wall_prev + time.monotonic() - t_start
        summary = {"step": step, "frames_seen": frames_seen, "wall_s": wall, "params": params}
        if d.main:
            if bar is not None:
                bar.close()
            final_val = evaluate(model, val_set, tcfg.batch_windows, device, bf16)
            checkpoint(final_val, wall)
            summary |= {"val_bits_per_frame": final_val, "best_val_bits_per_frame": best_val,
                        "baseline_val_bits_per_frame": _baseline_bits(baseline, val_set)}
            (run_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
            log(f"done: step {step}, {frames_seen:,} frames, {wall:.0f} s, val {final_val:.2f} bits/frame")
        if d.world > 1:
            dist.barrier()
            dist.destroy_process_group()
        return summary
    finally:
        restore_signals()


def _stop_on_signals():
    """SIGTERM/SIGINT end training gracefully: final validation, checkpoint, summary.
    Returns (stop event, restore): `restore()` puts the previous handlers back."""

    ev = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: ev.set())

    def restore() -> None:
        """Put back the handlers that were there before training (a library caller keeps its own)."""
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return ev, restore


def _stop_all(stop: bool, d: Dist) -> bool:
    if d.world <= 1:
        return stop
    flag = torch.tensor([1.0 if stop else 0.0])
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item() > 0)


def _baseline_bits(baseline: ChangeModel, val: Batch) -> float:
    total, n = 0.0, 0
    for fr, m in zip(val.frames, val.mask):
        lp = baseline.pair_logprobs(fr[:-1], fr[1:])  # (T, 25)
        total += -(lp.sum(1) * m).sum()
        n += int(m.sum())
    return total / max(n, 1)


def main(argv: list[str] | None = None) -> int:
    """Command line: resolve the config and train; returns the exit status."""
    ap = argparse.ArgumentParser(prog="python -m training.train", description="Train the sidlive model.",
                                 epilog="Any config key may be given as --key value (see training/config.py).")
    ap.add_argument("--config", help="TOML config file")
    ap.add_argument("--resume", help="checkpoint to resume from (default: RUN_DIR/last.pt when present)")
    args, rest = ap.parse_known_args(argv)
    try:
        mcfg, tcfg = resolve(args.config, flags=rest)
        train(mcfg, tcfg, resume=args.resume)
    except (ValueError, OSError) as e:
        print(f"train: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
