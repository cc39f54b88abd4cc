"""The model's and the trainer's configuration: one `ModelConfig` travels with the weights.

Torch-free on purpose: the exporter writes `ModelConfig` into the .sidm header as JSON and
the Numba engine rebuilds the network from it (`param_shapes` lists every tensor).

Resolution order for training: dataclass defaults -> TOML file -> `--key value` flags.
Keys are flat (TOML top level, or `[model]` / `[train]` tables that are merged); each key
belongs to exactly one of `ModelConfig` or `TrainConfig`; an unknown key is an error that
names it and the allowed keys.
"""
from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path

from sidlive.frames import NUM_REGS, WRITE_ORDER

ANY_COMPOSER = "any"
LOCAL_EVENT_MODES = ("changed", "all")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the network (trainer, exporter, engine)."""

    n_regs: int = NUM_REGS
    vocab: int = 256
    write_order: tuple = WRITE_ORDER            # local decoder's register order
    composers: tuple = (ANY_COMPOSER,)          # index 0 is "any" (unknown, others, dropped)
    context_frames: int = 512                   # global attention window (frames)
    d_global: int = 256
    n_layers_global: int = 4
    n_heads_global: int = 4
    mlp_mult_global: int = 4
    d_local: int = 128
    n_layers_local: int = 2
    n_heads_local: int = 4
    mlp_mult_local: int = 4
    d_readout: int = 256                        # hidden width of the per-register readout MLP
    local_events: str = "changed"               # "changed": tokens only for changed registers; "all": every register
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    copy_bonus_init: float = 1.5                # "no change" logit bias: p(no change) = sigmoid(1.5) ~ 0.82 untrained
    init_std: float = 0.02

    def __post_init__(self) -> None:
        if tuple(sorted(self.write_order)) != tuple(range(self.n_regs)):
            raise ValueError(f"write_order must be a permutation of 0..{self.n_regs - 1}, got {self.write_order}")
        if not self.composers or self.composers[0] != ANY_COMPOSER:
            raise ValueError(f"composers[0] must be {ANY_COMPOSER!r}, got {self.composers[:1]}")
        if len(set(self.composers)) != len(self.composers):
            raise ValueError("composers must be unique")
        if self.local_events not in LOCAL_EVENT_MODES:
            raise ValueError(f"local_events must be one of {LOCAL_EVENT_MODES}, got {self.local_events!r}")
        for d, h, name in ((self.d_global, self.n_heads_global, "global"), (self.d_local, self.n_heads_local, "local")):
            if d % h or (d // h) % 2:
                raise ValueError(f"d_{name}={d} must split into n_heads_{name}={h} heads of even size")
        if self.vocab != 256:
            raise ValueError(f"vocab must be 256 (register bytes), got {self.vocab}")
        if self.context_frames < 1:
            raise ValueError(f"context_frames must be >= 1, got {self.context_frames}")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["write_order"] = list(self.write_order)
        d["composers"] = list(self.composers)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        allowed = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - allowed
        if unknown:
            raise ValueError(f"unknown ModelConfig keys {sorted(unknown)}; allowed {sorted(allowed)}")
        d = dict(d)
        for k in ("write_order", "composers"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)

    def composer_index(self, name: str | None) -> int:
        """Index of a composer (normalized, case-insensitive); None/unknown-name style -> 0 ("any")."""
        key = normalize_composer(name)
        if key == ANY_COMPOSER:
            return 0
        for i, c in enumerate(self.composers):
            if c.lower() == key.lower():
                return i
        return 0


def normalize_composer(author: str | None) -> str:
    """HVSC author field -> composer key; empty, "<?>", "Unknown" -> "any"."""
    s = " ".join((author or "").split())
    if s.lower() in ("", "<?>", "?", "unknown", ANY_COMPOSER):
        return ANY_COMPOSER
    return s


def param_shapes(cfg: ModelConfig) -> dict[str, tuple]:
    """Name -> shape of every parameter, in the order the exporter writes them."""
    R, V, dg, dl = cfg.n_regs, cfg.vocab, cfg.d_global, cfg.d_local
    shapes: dict[str, tuple] = {
        "in_emb": (R * V, dg),                 # row r*256+byte; a frame's input is the sum of 25 rows
        "composer_emb": (len(cfg.composers), dg),
    }
    for i in range(cfg.n_layers_global):
        shapes |= _block_shapes(f"g{i}.", dg, cfg.mlp_mult_global)
    shapes |= {
        "g_norm": (dg,),
        "g_to_local": (dl, dg),                # Linear weights are (out, in)
        "val_emb": (R * V, dl),                # token "register r now holds v"
        "prev_emb": (R * V, dl),               # "register r held p in the previous frame"
    }
    for i in range(cfg.n_layers_local):
        shapes |= _block_shapes(f"l{i}.", dl, cfg.mlp_mult_local)
    shapes |= {
        "ro_norm1": (dl,),
        "ro_up": (cfg.d_readout, dl),
        "ro_down": (dl, cfg.d_readout),
        "ro_norm2": (dl,),
        "ro_out": (V, dl),
        "ro_bias": (R * V,),                   # per-register value bias, row r*256+v
        "ro_same": (R, dl),                    # per-register "no change" direction
        "copy_bonus": (R,),                    # per-register "no change" logit bias (the copy path)
    }
    return shapes


def _block_shapes(prefix: str, d: int, mult: int) -> dict[str, tuple]:
    return {
        prefix + "attn_norm": (d,), prefix + "wq": (d, d), prefix + "wk": (d, d),
        prefix + "wv": (d, d), prefix + "wo": (d, d), prefix + "mlp_norm": (d,),
        prefix + "w_up": (mult * d, d), prefix + "w_down": (d, mult * d),
    }


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
    log_every_steps: int = 10
    max_tunes: int = 0                    # 0 = all; else the first N training tunes (smoke runs)
    progress: bool = True


def _fields(cls) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def allowed_keys() -> list[str]:
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
