"""The trainer's configuration, and resolving both configs from defaults, a TOML file and flags.

Resolution order for training: dataclass defaults -> TOML file -> `--key value` flags.
Keys are flat (TOML top level, or `[model]` / `[train]` tables that are merged); each key
belongs to exactly one of `ModelConfig` (engine/config.py) or `TrainConfig`; an unknown key
is an error that names it and the allowed keys.
"""
from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path

from engine.config import ModelConfig


@dataclasses.dataclass
class TrainConfig:
    """Trainer settings (not needed to run the model)."""

    data_dir: str = "data/hvsc120"
    run_dir: str = "runs/default"
    device: str = "auto"                  # auto | cpu | cuda
    threads: int = 2                      # torch CPU threads per process
    bf16: bool = True                     # bfloat16 autocast for matmuls (CPU with AVX512-BF16, or CUDA)
    seed: int = 1337
    window_frames: int = 512              # frames per training window (<= context_frames)
    batch_windows: int = 4                # windows per optimizer step (per process)
    max_steps: int = 20000
    max_minutes: float = 0.0              # 0 = no wall-clock limit
    lr: float = 2e-3
    min_lr_frac: float = 0.1              # cosine decays to lr * min_lr_frac at max_steps
    warmup_steps: int = 200
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    composer_dropout: float = 0.15        # fraction of windows trained as "any"
    n_composers: int = 32                 # composers with most training frames that get their own embedding
    rotate_voices: bool = True
    transpose_max_semitones: int = 0      # 0 = off; else uniform shift in [-n, n] semitones
    val_permille: int = 50                # tunes (by md5 hash) held back for validation
    val_windows: int = 32
    val_every_steps: int = 200
    ckpt_every_minutes: float = 10.0
    loader_workers: int = 0               # processes building batches ahead (0: in the training loop)
    time_schedule: bool = False           # the cosine runs over max_minutes of wall clock, not max_steps
    trim_silence: bool = False            # train on tunes from their first sound (no silent starts)
    log_every_steps: int = 10
    max_tunes: int = 0                    # 0 = all; else the first N training tunes (smoke runs)
    init_from: str = ""                   # warm start a new run from this .sidm / .pt (matching tensors)
    progress: bool = True


def _fields(cls) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def allowed_keys() -> list[str]:
    """Every config key (ModelConfig and TrainConfig fields), sorted."""
    return sorted(set(_fields(ModelConfig)) | set(_fields(TrainConfig)))


def _coerce(key: str, value, default, source: str):
    """Convert `value` (TOML value or flag string) to the type of `default`."""
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            if isinstance(value, bool):
                return value
            raise ValueError(value)
        if isinstance(default, tuple):
            items = value.split(",") if isinstance(value, str) else list(value)
            conv = type(default[0]) if default else str
            return tuple(conv(x.strip()) if isinstance(x, str) else conv(x) for x in items)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        return str(value)
    except (TypeError, ValueError):
        raise ValueError(f"{source}: key {key!r}: cannot read {value!r} as {type(default).__name__}") from None


def resolve(toml_path: str | Path | None = None, overrides: dict | None = None,
            flags: list[str] | None = None) -> tuple[ModelConfig, TrainConfig]:
    """Defaults -> TOML -> overrides dict -> `--key value` flags."""
    mfields, tfields = _fields(ModelConfig), _fields(TrainConfig)
    m_defaults, t_defaults = ModelConfig().to_dict(), dataclasses.asdict(TrainConfig())
    values: dict = {}

    def put(key: str, value, source: str) -> None:
        if key not in mfields and key not in tfields:
            raise ValueError(f"{source}: unknown config key {key!r}; allowed keys: {', '.join(allowed_keys())}")
        default = m_defaults.get(key, t_defaults.get(key))
        if isinstance(default, list):
            default = tuple(default)
        values[key] = _coerce(key, value, default, source)

    if toml_path is not None:
        path = Path(toml_path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{path}: not valid TOML ({e})") from None
        for k, v in data.items():
            if isinstance(v, dict) and k in ("model", "train"):
                for k2, v2 in v.items():
                    put(k2, v2, f"{path} [{k}]")
            else:
                put(k, v, str(path))
    for k, v in (overrides or {}).items():
        put(k, v, "overrides")
    flags = list(flags or [])
    i = 0
    while i < len(flags):
        f = flags[i]
        if not f.startswith("--"):
            raise ValueError(f"command line: expected --key value, got {f!r}")
        key = f[2:].replace("-", "_")
        if "=" in key:
            key, val = key.split("=", 1)
            i += 1
        else:
            if i + 1 >= len(flags):
                raise ValueError(f"command line: --{key} needs a value")
            val = flags[i + 1]
            i += 2
        put(key, val, "command line")
    mcfg = ModelConfig.from_dict({k: v for k, v in values.items() if k in mfields})
    tcfg = TrainConfig(**{k: v for k, v in values.items() if k in tfields})
    if tcfg.window_frames > mcfg.context_frames:
        raise ValueError(f"window_frames={tcfg.window_frames} exceeds context_frames={mcfg.context_frames}")
    return mcfg, tcfg


def to_toml(mcfg: ModelConfig, tcfg: TrainConfig) -> str:
    """The resolved configuration as TOML (readable by `resolve`)."""
    lines = ["[model]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in mcfg.to_dict().items()]
    lines += ["", "[train]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in dataclasses.asdict(tcfg).items()]
    return "\n".join(lines) + "\n"


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v), ensure_ascii=False)
