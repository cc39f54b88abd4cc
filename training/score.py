"""`sidlive score MODEL FILE...`: bits per frame of tunes, the model beside two baselines.

FILE is a frames file (.regs, .txt) or a .sid tune (dumped on the fly). MODEL is a .sidm
(scored through the Numba engine, int8, as it plays; --torch: PyTorch on the dequantized
weights) or a training checkpoint (.pt, PyTorch). Each frame is scored given the frames
before it, the first given an all-zero frame. Beside the model:

- baseline: repeat the previous frame, with a learned change model (from the model file or
  the checkpoint, or --baseline FILE.npz);
- mixture: the register-level mixture (training/mixture.py): a model's distribution mixed
  with point masses on the repeat candidates, weights fitted on training tunes (--mixture
  W.npz, the model file's header, or --fit-mixture DATA_DIR), over MODEL or over another
  model (--mixture-of, e.g. the previous shipped model).

Per scorer the report also splits the bits by frame kind: frames whose last 32 frames
occurred earlier in the tune (`frame_match`), the others, and frames where no voice's last
16 frames of notes occurred earlier (`no_voice_match`: the model's own invention).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from engine.candidates import tune_matches
from engine.config import normalize_composer
from engine.matches import G_FRAME, G_VNOTES1, NUM_BUCKETS
from sidlive.frames import NUM_REGS, REG_NAMES, FramesFormatError
from training.baseline import ChangeModel
from training.mixture import MixtureScorer, MixtureWeights, fit_on_data
from training.scorers import load_frames, load_scorer, stored

KINDS = ("frame_match", "other", "no_voice_match")
LONGEST = NUM_BUCKETS - 1        # bucket of a 32-frame match
VOICE_16 = NUM_BUCKETS - 2       # bucket of a 16-frame match


def frame_kinds(regs: np.ndarray) -> dict[str, np.ndarray]:
    """Masks (N,) over the frames of regs (scored from an all-zero frame): KINDS."""
    seq = np.concatenate([np.zeros((1, NUM_REGS), np.uint8), np.asarray(regs, np.uint8)])
    _, gb = tune_matches(seq)
    gb = gb[:-1]                  # row t: the context before frame t of regs
    match = gb[:, G_FRAME] >= LONGEST
    voices = (gb[:, G_VNOTES1:G_VNOTES1 + 3] >= VOICE_16).any(1)
    return {"frame_match": match, "other": ~match, "no_voice_match": ~voices}


def score_files(scorers: dict, paths: list, composer: str | None = None, sid_seconds: float | None = None) -> dict:
    """scorers: name -> object with logprobs(). Returns per-file and frame-weighted mean bits."""
    files = []
    tot_bits = {k: np.zeros(NUM_REGS) for k in scorers}
    tot_kind = {k: dict.fromkeys(KINDS, 0.0) for k in scorers}
    n_kind = dict.fromkeys(KINDS, 0)
    tot_frames = 0
    for p in paths:
        fr = load_frames(p, sid_seconds)
        comp = composer if composer is not None else fr.author
        kinds = frame_kinds(fr.regs)
        rec = {"path": str(p), "frames": len(fr), "composer": normalize_composer(comp),
               "kind_frames": {k: int(m.sum()) for k, m in kinds.items()},
               "bits_per_frame": {}, "bits_per_register": {}, "bits_by_kind": {}}
        for name, s in scorers.items():
            lp = s.logprobs(fr.regs, comp) if len(fr) else np.zeros((0, NUM_REGS))   # (N, 25) log2
            bits = -lp.sum(0)                     # (25,)
            per_frame = -lp.sum(1)                # (N,)
            tot_bits[name] += bits
            per_reg = bits / max(len(fr), 1)
            rec["bits_per_frame"][name] = float(per_reg.sum())
            rec["bits_per_register"][name] = [float(x) for x in per_reg]
            rec["bits_by_kind"][name] = {k: float(per_frame[m].mean()) if m.any() else None for k, m in kinds.items()}
            for k, m in kinds.items():
                tot_kind[name][k] += float(per_frame[m].sum())
        for k, m in kinds.items():
            n_kind[k] += int(m.sum())
        tot_frames += len(fr)
        files.append(rec)
    mean = {"frames": tot_frames, "kind_frames": n_kind, "bits_per_frame": {}, "bits_per_register": {},
            "bits_by_kind": {}}
    for name in scorers:
        per_reg = tot_bits[name] / max(tot_frames, 1)
        mean["bits_per_frame"][name] = float(per_reg.sum())
        mean["bits_per_register"][name] = [float(x) for x in per_reg]
        mean["bits_by_kind"][name] = {k: tot_kind[name][k] / n_kind[k] if n_kind[k] else None for k in KINDS}
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
    lines += ["", f"{'frames by kind':<{w}} {'frames':>7} " + " ".join(f"{n:>9}" for n in names)]
    for k in KINDS:
        vals = [m["bits_by_kind"][n][k] for n in names]
        lines.append(f"{k:<{w}} {m['kind_frames'][k]:>7} " + " ".join(f"{v:>9.2f}" if v is not None else f"{'-':>9}"
                                                                       for v in vals))
    lines += ["", f"{'register':<14} " + " ".join(f"{n:>9}" for n in names) + "   (bits/frame, all files)"]
    for r in range(NUM_REGS):
        lines.append(f"${0xD400 + r:04X} {REG_NAMES[r]:<8} "
                     + " ".join(f"{m['bits_per_register'][n][r]:>9.3f}" for n in names))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`sidlive score`: score files under the model and the baselines; returns the exit status."""
    ap = argparse.ArgumentParser(prog="sidlive score", description="Bits per frame of tunes under a model.")
    ap.add_argument("model", help="a .sidm (the engine) or a checkpoint (.pt)")
    ap.add_argument("files", nargs="+", help="frames files (.regs, .txt) or .sid tunes")
    ap.add_argument("--composer", help="composer to condition on (default: each file's author, else any)")
    ap.add_argument("--baseline", help="change-model .npz (default: the one stored with the model)")
    ap.add_argument("--torch", action="store_true", help="score a .sidm through PyTorch (dequantized), not the engine")
    ap.add_argument("--mixture", help="mixture weights .npz (default: the ones in the model file's header)")
    ap.add_argument("--mixture-of", help="the model the mixture mixes (default: MODEL)")
    ap.add_argument("--fit-mixture", metavar="DATA_DIR", help="fit the mixture weights on training tunes of a dump")
    ap.add_argument("--fit-tunes", type=int, default=30, help="training tunes to fit on (default 30)")
    ap.add_argument("--save-mixture", help="write the weights used to this .npz")
    ap.add_argument("--seconds", type=float, help="length to dump .sid files (default: Songlengths.md5, else 180 s)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args(argv)
    try:
        scorer, base, meta = load_scorer(args.model, engine=not args.torch, log=None)
        if args.baseline:
            base = ChangeModel.load(args.baseline)
        if args.composer is not None and not scorer.composer_known(args.composer):
            raise ValueError(f"--composer {args.composer!r} is not one of the model's composers: "
                             f"{', '.join(scorer.cfg.composers)}")
        scorers = {"model": scorer}
        if base is not None:
            scorers["baseline"] = base
        mixed, mix_meta = scorer, meta
        if args.mixture_of:
            mixed, _, mix_meta = load_scorer(args.mixture_of, engine=not args.torch, log=None)
        weights = None
        if args.mixture:
            weights = MixtureWeights.load(args.mixture)
        elif args.fit_mixture:
            weights = fit_on_data(mixed, args.fit_mixture, n_tunes=args.fit_tunes, log=lambda m: print(m, file=sys.stderr))
        elif "mixture" in mix_meta and not args.mixture_of:
            weights = stored(args.model, mix_meta, "mixture", MixtureWeights.from_dict)
        if weights is not None:
            scorers["mixture" if not args.mixture_of else f"mixture:{Path(args.mixture_of).stem}"] = \
                MixtureScorer(mixed, weights)
            if args.save_mixture:
                weights.save(args.save_mixture)
        report = score_files(scorers, args.files, args.composer, args.seconds)
    except (ValueError, OSError, FramesFormatError) as e:
        print(f"score: {e}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=1) if args.json else format_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
