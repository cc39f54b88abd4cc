"""Warm start: a new model's parameters from an earlier model (a .sidm, dequantized, or a
training checkpoint) wherever names and shapes agree; the rest keep their fresh init. Used
to grow a design (e.g. the pointer readout) on top of weights that already know the music."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.config import ModelConfig
from engine.weights import read_model
from training.model import SidModel, load_checkpoint


def load_init(path: str | Path) -> tuple[ModelConfig, dict[str, np.ndarray]]:
    """(the source model's config, its parameters as float32 arrays by export name)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"init_from: {path}: no such model file (.sidm or .pt)")
    if path.suffix == ".sidm":
        f, cfg = read_model(path)
        return cfg, f.dequantized()
    model, _ = load_checkpoint(path)
    return model.cfg, model.export_state()


def warm_start(model: SidModel, arrays: dict[str, np.ndarray], source: str | Path) -> str:
    """Copy every tensor whose name and shape match; returns a one-line report."""
    state = model.export_state()
    copied, fresh = [], []
    for name, a in state.items():
        if name in arrays and arrays[name].shape == a.shape:
            state[name] = arrays[name]
            copied.append(name)
        else:
            fresh.append(name)
    model.load_export_state(state)
    return f"warm start from {source}: {len(copied)} tensors copied; fresh: {', '.join(fresh) or 'none'}"
