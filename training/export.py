"""Export a training checkpoint to a .sidm file (int8 weights, see docs/sidm-format.md).

    python -m training.export CKPT -o presets/models/NAME.sidm
    python -m training.export --golden DIR      # the engine's golden test data

Every 2-D tensor (Linear weights and embedding tables) is stored int8 with one float32
scale per row; 1-D tensors (norm weights, ro_bias, copy_bonus) stay float32. The exporter
prints each tensor's largest quantization error.

The golden output (`write_golden`): a tiny seeded fixture model exported to golden.sidm,
and the frames the PyTorch reference sampler produces from the *dequantized* .sidm
weights (greedy, and one sampled run with forced registers), plus teacher-forced bits per
frame, in golden.json. The Numba engine must reproduce them.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from engine.config import ModelConfig
from engine.sidm import SidmFile, write_sidm
from engine.weights import read_model
from sidlive.frames import canonicalize
from training.model import SidModel, load_checkpoint
from training.sample import generate, incremental_logprobs


def export(ckpt_path: str | Path, out_path: str | Path, log=print) -> list[dict]:
    """Export a training checkpoint to .sidm, with its training figures in the metadata; per-tensor report."""
    model, ckpt = load_checkpoint(ckpt_path)
    meta = {"source": Path(ckpt_path).name, "step": ckpt.get("step"), "frames_seen": ckpt.get("frames_seen"),
            "val_bits_per_frame": ckpt.get("val_bits"), "params": ckpt.get("params")}
    if "baseline" in ckpt:
        meta["baseline"] = ckpt["baseline"]
    return export_model(model, out_path, meta, log)


def export_model(model, out_path: str | Path, meta: dict | None = None, log=print) -> list[dict]:
    """Write a model as .sidm (2-D tensors int8 per row, the rest float32); per-tensor error report."""
    arrays = model.export_state()
    quantize = {k for k, a in arrays.items() if a.ndim == 2}
    report = write_sidm(out_path, model.cfg.to_dict(), arrays, quantize, meta)
    if log is not None:
        for r in report:
            shape = "x".join(map(str, r["shape"]))
            log(f"  {r['name']:<16} {shape:>12} {r['dtype']:<9} max |err| {r['max_abs_err']:.3g}")
        log(f"wrote {out_path}: {Path(out_path).stat().st_size:,} bytes")
    return report


def model_from_sidm(path: str | Path):
    """A PyTorch SidModel holding the dequantized weights of a .sidm file, read with the
    engine's checks (engine.weights.read_model): both runtimes accept the same files."""
    return model_from_file(*read_model(path))


def model_from_file(f: SidmFile, cfg: ModelConfig):
    """A PyTorch SidModel (eval mode) holding the dequantized weights of a checked .sidm (read_model's result)."""
    model = SidModel(cfg)
    model.load_export_state(f.dequantized())
    model.eval()
    return model


# ---------------------------------------------------------------------------- golden output

GOLDEN_CONFIG = dict(context_frames=16, d_global=32, n_layers_global=2, n_heads_global=2, mlp_mult_global=2,
                     d_local=16, n_layers_local=2, n_heads_local=2, mlp_mult_local=2, d_readout=32,
                     composers=("any", "Rob Hubbard"), init_std=0.3, copy_bonus_init=-3.0)
GOLDEN_SEED = 4829173650
GOLDEN_PROMPT_FRAMES = 4
GOLDEN_FRAMES = 24  # prompt + 24 > context 16: exercises the sliding window


def golden_prompt() -> np.ndarray:
    """The golden fixture's prompt: seeded random frames, canonicalized."""
    rng = np.random.default_rng(GOLDEN_SEED)
    p = rng.integers(0, 256, size=(GOLDEN_PROMPT_FRAMES, 25)).astype(np.uint8)
    return canonicalize(p)


def fixture_model():
    """The golden fixture's small model, freshly initialized from the fixed seed."""

    torch.manual_seed(GOLDEN_SEED % (1 << 31))
    return SidModel(ModelConfig(**GOLDEN_CONFIG))


def write_golden(out_dir: str | Path) -> dict:
    """Write golden.sidm and golden.json into out_dir; returns the JSON dict."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sidm_path = out_dir / "golden.sidm"
    export_model(fixture_model(), sidm_path, {"source": "golden fixture"}, log=None)
    model = model_from_sidm(sidm_path)
    prompt = golden_prompt()
    cases = [
        {"name": "greedy", "composer": "Rob Hubbard", "temperature": 0.0, "top_k": 0, "top_p": 1.0,
         "seed": 0, "force_mask": None, "force_values": None},
        {"name": "sampled", "composer": "any", "temperature": 0.9, "top_k": 40, "top_p": 0.95,
         "seed": 7391738265, "force_mask": [r == 0x18 for r in range(25)],
         "force_values": [0x1F if r == 0x18 else 0 for r in range(25)]},
    ]
    for c in cases:
        frames = generate(model, prompt, GOLDEN_FRAMES, composer=c["composer"], temperature=c["temperature"],
                          top_k=c["top_k"], top_p=c["top_p"], seed=c["seed"], force_mask=c["force_mask"],
                          force_values=c["force_values"])
        c["frames"] = [row.tobytes().hex().upper() for row in frames]
    greedy = np.array([list(bytes.fromhex(h)) for h in cases[0]["frames"]], np.uint8)
    seq = np.concatenate([prompt, greedy])
    lp = incremental_logprobs(model, seq, composer=model.cfg.composer_index("Rob Hubbard"))
    gold = {"sidm": sidm_path.name, "prompt": [row.tobytes().hex().upper() for row in prompt],
            "n_frames": GOLDEN_FRAMES, "cases": cases,
            "teacher_forced": {"composer": "Rob Hubbard", "frames": "prompt + greedy frames",
                               "bits_per_frame": [float(-x) for x in lp.sum(1)]}}
    (out_dir / "golden.json").write_text(json.dumps(gold, indent=1) + "\n", encoding="utf-8")
    return gold


def main(argv: list[str] | None = None) -> int:
    """Command line: export a checkpoint, or write the golden fixture; returns the exit status."""
    ap = argparse.ArgumentParser(prog="python -m training.export", description="Export a checkpoint to .sidm.")
    ap.add_argument("ckpt", nargs="?", help="training checkpoint (.pt)")
    ap.add_argument("-o", "--output", help="output .sidm path")
    ap.add_argument("--golden", metavar="DIR", help="write the golden fixture (golden.sidm, golden.json) to DIR")
    args = ap.parse_args(argv)
    if args.golden:
        gold = write_golden(args.golden)
        print(f"wrote {args.golden}/golden.sidm and golden.json ({len(gold['cases'])} cases)")
        return 0
    if not args.ckpt or not args.output:
        ap.error("CKPT and -o OUTPUT are required (or --golden DIR)")
    try:
        export(args.ckpt, args.output)
    except (ValueError, OSError) as e:
        print(f"export: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
