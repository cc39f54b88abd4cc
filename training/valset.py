"""Write validation tunes (the tunes a training run held back) as .regs files.

`python -m training.valset RUN_DIR_OR_CKPT OUT_DIR [--n 100] [--seconds 60] [--seed 0]`

The split is the run's own (its train config's data_dir, val_permille and seed), so the
files are tunes the model never trained on. Each file keeps its author for composer
conditioning; `sidlive score MODEL OUT_DIR/*.regs` then gives validation bits/frame.
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


def write_valset(run: Path, out_dir: Path, n: int = 100, seconds: float = 60.0, seed: int = 0) -> list[Path]:
    """Write up to n of a run's validation tunes as .regs files (and valset.json); returns their paths."""
    cfg = train_config_of(run)
    data_dir = Path(cfg["data_dir"])
    tunes = load_index(data_dir)
    _, val = split(tunes, int(cfg["val_permille"]), int(cfg["seed"]))
    if not val:
        raise ValueError(f"{data_dir}: the split (val_permille={cfg['val_permille']}) holds back no tunes")
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
        fr = Frames(regs=regs, author=author, title=t.title, source=f"hvsc md5 {t.md5} subtune {t.subtune}",
                    extra={"md5": t.md5, "subtune": t.subtune, "split": "validation"})
        save_regs(fr, out_dir / name)
        paths.append(out_dir / name)
    (out_dir / "valset.json").write_text(json.dumps(
        {"run": str(run), "data_dir": str(data_dir), "n": len(paths), "of_validation_tunes": len(val),
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
    a = ap.parse_args(argv)
    paths = write_valset(a.run, a.out_dir, a.n, a.seconds, a.seed)
    print(f"wrote {len(paths)} validation tunes to {a.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
