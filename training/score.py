"""`sidlive score MODEL FILE... [--composer NAME] [--json]`: bits per frame, model vs baseline.

FILE is a frames file (.regs, .txt) or a .sid tune (dumped on the fly). MODEL is a training
checkpoint (.pt) or a .sidm file (run here through PyTorch with its dequantized weights).
Each frame is scored given the frames before it, the first given an all-zero frame. Beside
the model: the "repeat the previous frame" baseline with a learned change model, taken
from the checkpoint (or the .sidm header, or --baseline FILE.npz).

Any object with `logprobs(regs (N, 25) uint8, composer) -> (N, 25) log2-probs` can be
scored (`score_files`); the Numba engine will plug in the same way.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from engine.config import ANY_COMPOSER, normalize_composer
from engine.sidm import load_sidm
from sidlive.frames import NUM_REGS, REG_NAMES, Frames, FramesFormatError
from training.baseline import ChangeModel
from training.export import model_from_sidm
from training.model import load_checkpoint
from sidlive.c64.load import load_tune


class TorchScorer:
    """Scores with a PyTorch SidModel over windows of `context_frames`, stride half of that."""

    def __init__(self, model):
        self.model = model
        self.cfg = model.cfg

    def composer_known(self, name: str) -> bool:
        """True when the model conditions on this composer (or it means "any")."""
        key = normalize_composer(name)
        return key == ANY_COMPOSER or any(c.lower() == key.lower() for c in self.cfg.composers)

    def logprobs(self, regs: np.ndarray, composer: str | None = None) -> np.ndarray:
        """log2-probs (N, 25) of regs over overlapping context windows, an all-zero frame before the first."""
        regs = np.asarray(regs, np.uint8)
        n = len(regs)
        seq = torch.as_tensor(np.concatenate([np.zeros((1, NUM_REGS), np.uint8), regs]).astype(np.int64))
        comp = torch.tensor([self.cfg.composer_index(composer)])
        C = self.cfg.context_frames
        stride = max(1, C // 2)
        out = np.zeros((n, NUM_REGS))
        done, a = 0, 0
        with torch.no_grad():
            while done < n:
                b = min(a + C, n)  # targets a..b-1 from inputs seq[a..b-1]
                lp = self.model(seq[a:b + 1][None], comp)[0].numpy()  # (b-a, 25) log2
                out[done:b] = lp[done - a:]
                done = b
                a = max(0, b + stride - C)  # next window scores `stride` new targets
        return out


def load_scorer(path: str | Path) -> tuple[TorchScorer, ChangeModel | None]:
    """(scorer, the baseline stored with it or None) for a .sidm or a training checkpoint."""
    path = Path(path)
    if path.suffix == ".sidm":
        meta = load_sidm(path).meta
        base = ChangeModel.from_dict(meta["baseline"]) if "baseline" in meta else None
        return TorchScorer(model_from_sidm(path)), base
    model, ckpt = load_checkpoint(path)
    base = ChangeModel.from_dict(ckpt["baseline"]) if "baseline" in ckpt else None
    return TorchScorer(model), base


def load_frames(path: str | Path, sid_seconds: float | None = None) -> Frames:
    """A frames file, or a .sid dumped on the fly (length: sid_seconds, else its Songlengths entry)."""
    path = Path(path)
    if path.suffix.lower() == ".sid":
        try:
            return load_tune(path, seconds=sid_seconds)
        except (RuntimeError, ValueError) as e:  # DumpError, UnsupportedTune, PsidFormatError
            msg = str(e)
            raise ValueError(msg if str(path) in msg else f"{path}: {msg}") from None
    return load_tune(path)


def score_files(scorers: dict, paths: list, composer: str | None = None, sid_seconds: float | None = None) -> dict:
    """scorers: name -> object with logprobs(). Returns per-file and frame-weighted mean bits."""
    files = []
    tot_bits = {k: np.zeros(NUM_REGS) for k in scorers}
    tot_frames = 0
    for p in paths:
        fr = load_frames(p, sid_seconds)
        comp = composer if composer is not None else fr.author
        rec = {"path": str(p), "frames": len(fr), "composer": normalize_composer(comp),
               "bits_per_frame": {}, "bits_per_register": {}}
        for name, s in scorers.items():
            bits = -s.logprobs(fr.regs, comp).sum(0) if len(fr) else np.zeros(NUM_REGS)  # (25,)
            tot_bits[name] += bits
            per_reg = bits / max(len(fr), 1)
            rec["bits_per_frame"][name] = float(per_reg.sum())
            rec["bits_per_register"][name] = [float(x) for x in per_reg]
        tot_frames += len(fr)
        files.append(rec)
    mean = {"frames": tot_frames, "bits_per_frame": {}, "bits_per_register": {}}
    for name in scorers:
        per_reg = tot_bits[name] / max(tot_frames, 1)
        mean["bits_per_frame"][name] = float(per_reg.sum())
        mean["bits_per_register"][name] = [float(x) for x in per_reg]
    return {"files": files, "mean": mean}


def format_table(report: dict) -> str:
    """A score report as tables: bits per frame per file and per register."""
    names = list(report["mean"]["bits_per_frame"])
    w = max([len(Path(f["path"]).name) for f in report["files"]] + [20])
    head = f"{'file':<{w}} {'frames':>7} " + " ".join(f"{n:>9}" for n in names) + "   (bits/frame)"
    lines = [head]
    for f in report["files"]:
        lines.append(f"{Path(f['path']).name:<{w}} {f['frames']:>7} "
                     + " ".join(f"{f['bits_per_frame'][n]:>9.2f}" for n in names))
    m = report["mean"]
    lines.append(f"{'all (frame-weighted)':<{w}} {m['frames']:>7} "
                 + " ".join(f"{m['bits_per_frame'][n]:>9.2f}" for n in names))
    lines += ["", f"{'register':<14} " + " ".join(f"{n:>9}" for n in names) + "   (bits/frame, all files)"]
    for r in range(NUM_REGS):
        lines.append(f"${0xD400 + r:04X} {REG_NAMES[r]:<8} "
                     + " ".join(f"{m['bits_per_register'][n][r]:>9.3f}" for n in names))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`sidlive score`: score files under the model and the baseline; returns the exit status."""
    ap = argparse.ArgumentParser(prog="sidlive score", description="Bits per frame of tunes under a model.")
    ap.add_argument("model", help="checkpoint (.pt) or .sidm")
    ap.add_argument("files", nargs="+", help="frames files (.regs, .txt) or .sid tunes")
    ap.add_argument("--composer", help="composer to condition on (default: each file's author, else any)")
    ap.add_argument("--baseline", help="change-model .npz (default: the one stored with the model)")
    ap.add_argument("--seconds", type=float, help="length to dump .sid files (default: Songlengths.md5, else 180 s)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args(argv)
    try:
        scorer, base = load_scorer(args.model)
        if args.baseline:
            base = ChangeModel.load(args.baseline)
        if args.composer is not None and not scorer.composer_known(args.composer):
            raise ValueError(f"--composer {args.composer!r} is not one of the model's composers: "
                             f"{', '.join(scorer.cfg.composers)}")
        scorers = {"model": scorer}
        if base is not None:
            scorers["baseline"] = base
        report = score_files(scorers, args.files, args.composer, args.seconds)
    except (ValueError, OSError, FramesFormatError) as e:
        print(f"score: {e}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=1) if args.json else format_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
