"""What int8 costs: bits per frame of the float model vs its int8 export, and the engine's own.

    python -m training.int8cost CKPT FILE... [--composer NAME] [--max-frames N]

`EngineScorer` plugs the Numba engine into training/score.py (`score_files` takes any object
with `logprobs(regs, composer) -> (N, 25) log2-probs`). Each frame is scored given the frames
before it (the first given an all-zero frame), through a sliding window of context_frames
(TorchScorer instead restarts windows every context/2 frames, so its figures differ a little
for that reason alone).

`int8_cost` compares like with like: the checkpoint's float32 model and the same model with
the exported int8 weights dequantized, both through TorchScorer on the same frames; the
engine's bits (int8, sliding window) are reported beside them.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path


from sidlive.frames import save_regs
from training.export import export, model_from_sidm
from training.model import load_checkpoint
from training.score import score_files
from training.scorers import EngineScorer, TorchScorer, load_frames


def int8_cost(ckpt_path: str | Path, paths: list, composer: str | None = None, max_frames: int | None = None,
              log=print) -> dict:
    """Bits/frame on `paths` (frames files or .sid): float checkpoint vs its int8 export (both
    PyTorch, same scorer), and the engine. int8_cost_bits_per_frame = int8 - float."""

    frames_paths = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, p in enumerate(paths):  # dump / cut once, score the same frames everywhere
            fr = load_frames(p)
            if max_frames:
                fr = fr.slice(0, max_frames)
            q = Path(tmp) / f"{i:04d}-{Path(p).stem}.regs"
            save_regs(fr, q)
            frames_paths.append(q)
        sidm = Path(tmp) / "model.sidm"
        export(ckpt_path, sidm, log=None)
        float_model, _ = load_checkpoint(ckpt_path)
        scorers = {"float": TorchScorer(float_model), "int8": TorchScorer(model_from_sidm(sidm)),
                   "engine": EngineScorer(sidm, log=log)}
        rep = score_files(scorers, frames_paths, composer)
    bits = rep["mean"]["bits_per_frame"]
    return {"frames": rep["mean"]["frames"], "files": len(paths), "bits_per_frame": bits,
            "int8_cost_bits_per_frame": bits["int8"] - bits["float"],
            "engine_minus_float_bits_per_frame": bits["engine"] - bits["float"]}


def main(argv: list[str] | None = None) -> int:
    """Command line: print int8_cost's figures as JSON; returns the exit status."""
    ap = argparse.ArgumentParser(prog="python -m training.int8cost", description=__doc__.splitlines()[0])
    ap.add_argument("ckpt", help="training checkpoint (.pt)")
    ap.add_argument("files", nargs="+", help="validation frames files (.regs/.txt) or .sid tunes")
    ap.add_argument("--composer", default=None, help="condition on this composer (default: each file's author)")
    ap.add_argument("--max-frames", type=int, default=None, help="score at most this many frames per file")
    args = ap.parse_args(argv)
    try:
        res = int8_cost(args.ckpt, args.files, args.composer, args.max_frames)
    except (ValueError, OSError) as e:
        print(f"training.int8cost: {e}", file=sys.stderr)
        return 2
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
