"""Write validation tunes (the tunes a training run held back) as .regs files.

`python -m training.valset RUN_DIR_OR_CKPT OUT_DIR [--n 100] [--unseen 0] [--seconds 60] [--seed 0]`

The split is the run's own (its train config's data_dir, val_permille and seed), so the
files are tunes the model never trained on. Each file keeps its author for composer
conditioning; `sidlive score MODEL OUT_DIR/*.regs` then gives validation bits/frame.
With --unseen N the set is two folders: OUT_DIR/seen (n tunes by composers the training
tunes have) and OUT_DIR/unseen (N tunes by composers no training tune has: held out of
training entirely, solo composers first).
"""
from __future__ import annotations

import argparse
import json
import tomllib
from pathlib import Path

import numpy as np

from sidlive.frames import PAL_FRAME_RATE_HZ, Frames, save_regs
from training.dataset import FrameStore, load_index, split


def train_config_of(run: Path) -> dict:
    """The resolved train config saved with a run (RUN_DIR/config.toml, or beside a checkpoint)."""
    cfg_path = run / "config.toml" if run.is_dir() else run.parent / "config.toml"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path}: no resolved config.toml beside the run")
    cfg = tomllib.loads(cfg_path.read_text())
    flat = {}
    for v in cfg.values():
        if isinstance(v, dict):
            flat.update(v)
    flat.update({k: v for k, v in cfg.items() if not isinstance(v, dict)})
    return flat


def write_valset(run: Path, out_dir: Path, n: int = 100, seconds: float = 60.0, seed: int = 0,
                 unseen: int = 0) -> list[Path]:
    """Write up to n of a run's validation tunes as .regs files (and valset.json); with unseen
    > 0, n tunes of seen composers to OUT/seen and `unseen` of unseen ones to OUT/unseen."""
    cfg = train_config_of(run)
    data_dir = Path(cfg["data_dir"])
    tunes = load_index(data_dir)
    train, val = split(tunes, int(cfg["val_permille"]), int(cfg["seed"]))
    if not val:
        raise ValueError(f"{data_dir}: the split (val_permille={cfg['val_permille']}) holds back no tunes")
    if unseen:
        known = {t.composer for t in train}
        seen_val = [t for t in val if t.composer in known and t.composer != "any"]
        new = sorted((t for t in val if t.composer not in known and t.composer != "any"),
                     key=lambda t: (" & " in t.composer, t.composer))
        return (_write(seen_val, data_dir, out_dir / "seen", n, seconds, seed, run, len(val))
                + _write(new[:unseen], data_dir, out_dir / "unseen", unseen, seconds, seed, run, len(val)))
    return _write(val, data_dir, out_dir, n, seconds, seed, run, len(val))


def _write(val: list, data_dir: Path, out_dir: Path, n: int, seconds: float, seed: int, run: Path,
           n_val: int) -> list[Path]:
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(val), size=min(n, len(val)), replace=False)
    store = FrameStore(data_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    max_frames = int(round(seconds * PAL_FRAME_RATE_HZ))
    paths = []
    for i in sorted(pick):
        t = val[i]
        regs = np.asarray(store.frames(t))[:max_frames]
        stem = "".join(c if c.isalnum() else "_" for c in (t.title or "tune"))[:40]
        name = f"{t.md5[:10]}-{t.subtune}-{stem}.regs"
        author = "" if t.composer == "any" else t.composer
        fr = Frames(regs=regs, author=author, title=t.title or "", source=f"hvsc md5 {t.md5} subtune {t.subtune}",
                    extra={"md5": t.md5, "subtune": t.subtune, "split": "validation"})
        save_regs(fr, out_dir / name)
        paths.append(out_dir / name)
    (out_dir / "valset.json").write_text(json.dumps(
        {"run": str(run), "data_dir": str(data_dir), "n": len(paths), "of_validation_tunes": n_val,
         "seconds": seconds, "seed": seed, "files": [p.name for p in paths]}, indent=1))
    return paths


def main(argv: list[str] | None = None) -> int:
    """Command line: write the validation set; returns 0."""
    ap = argparse.ArgumentParser(prog="python -m training.valset", description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="run directory (or a checkpoint inside it)")
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--n", type=int, default=100, help="tunes to write (default 100)")
    ap.add_argument("--seconds", type=float, default=60.0, help="longest excerpt per tune (default 60)")
    ap.add_argument("--seed", type=int, default=0, help="which validation tunes (default 0)")
    ap.add_argument("--unseen", type=int, default=0, help="also this many tunes of composers no training tune has")
    a = ap.parse_args(argv)
    paths = write_valset(a.run, a.out_dir, a.n, a.seconds, a.seed, a.unseen)
    print(f"wrote {len(paths)} validation tunes to {a.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
