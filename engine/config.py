"""The model's configuration: one `ModelConfig` travels with the weights.

Torch-free on purpose: the exporter writes `ModelConfig` into the .sidm header as JSON and
the Numba engine rebuilds the network from it (`param_shapes` lists every tensor). The
trainer's settings and the config-file resolution live in training/config.py.
"""
from __future__ import annotations

import dataclasses
import math

from engine.candidates import NUM_SOURCES
from engine.matches import NUM_BUCKETS, NUM_GROUPS
from sidlive.frames import NUM_REGS, WRITE_ORDER

ANY_COMPOSER = "any"
POINTER_FEATURES = 5   # per source and step: valid, says "no change", bucket / 6, log1p(hits), log1p(misses)
LOCAL_EVENT_MODES = ("changed", "all")
MAX_SIZE = 1 << 16
SIZE_FIELDS = ("n_regs", "vocab", "context_frames", "d_global", "n_layers_global", "n_heads_global",
               "mlp_mult_global", "d_local", "n_layers_local", "n_heads_local", "mlp_mult_local", "d_readout")
# name, the allowed range as a test and in words
FLOAT_FIELDS = (("rope_theta", lambda v: v > 1, " > 1"), ("norm_eps", lambda v: 0 < v <= 1, " in (0, 1]"),
                ("copy_bonus_init", lambda v: True, ""), ("init_std", lambda v: v >= 0, " >= 0"))


def shown(value, limit: int = 80) -> str:
    """repr(value) cut to `limit` characters (error messages stay one short line)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


class ConfigError(ValueError):
    """A ModelConfig field is wrong: `field` names it (None: the config as a whole), `problem` says how."""

    def __init__(self, field: str | None, problem: str):
        super().__init__(f"{field} {problem}" if field else f"config {problem}")
        self.field, self.problem = field, problem


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
    pointer: bool = False                       # repeat candidates (engine/candidates.py): in the global input
                                                # and as gated point masses in the readout (docs/sidm-format.md)

    def __post_init__(self) -> None:
        for name in SIZE_FIELDS:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_SIZE:
                raise ConfigError(name, f"is {shown(v)}, expected a whole number in 1..{MAX_SIZE}")
        for name, ok, text in FLOAT_FIELDS:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not ok(v):
                raise ConfigError(name, f"is {shown(v)}, expected a finite number{text}")
        if not isinstance(self.pointer, bool):
            raise ConfigError("pointer", f"is {shown(self.pointer)}, expected true or false")
        if self.vocab != 256:
            raise ConfigError("vocab", f"is {self.vocab}, expected 256 (register bytes)")
        order = self.write_order
        if not isinstance(order, tuple) or any(isinstance(r, bool) or not isinstance(r, int) for r in order) \
                or tuple(sorted(order)) != tuple(range(self.n_regs)):
            raise ConfigError("write_order", f"is {shown(order)}, expected a permutation of 0..{self.n_regs - 1}")
        comps = self.composers
        if not isinstance(comps, tuple) or not comps:
            raise ConfigError("composers", f"is {shown(comps)}, expected a list of names, 'any' first")
        for i, c in enumerate(comps):
            if not isinstance(c, str) or not c.strip():
                raise ConfigError(f"composers[{i}]", f"is {shown(c)}, expected a non-empty string")
        if comps[0] != ANY_COMPOSER:
            raise ConfigError("composers", f"starts with {shown(comps[0])}; composers[0] must be {ANY_COMPOSER!r}")
        if len(set(comps)) != len(comps):
            raise ConfigError("composers", "holds a name twice; composers must be unique")
        if not isinstance(self.local_events, str) or self.local_events not in LOCAL_EVENT_MODES:
            raise ConfigError("local_events", f"is {shown(self.local_events)}, expected one of {LOCAL_EVENT_MODES}")
        for d, h, name in ((self.d_global, self.n_heads_global, "global"), (self.d_local, self.n_heads_local, "local")):
            if d % h or (d // h) % 2:
                raise ConfigError(f"n_heads_{name}", f"is {h}: d_{name}={d} must split into n_heads_{name}={h} "
                                                     f"heads of even size")

    def to_dict(self) -> dict:
        """The config as a JSON-ready dict (tuples as lists)."""
        d = dataclasses.asdict(self)
        d["write_order"] = list(self.write_order)
        d["composers"] = list(self.composers)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        """Rebuild a config from to_dict's output; ConfigError naming the field otherwise."""
        if not isinstance(d, dict):
            raise ConfigError(None, f"is a {type(d).__name__}, expected a JSON object")
        allowed = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - allowed
        if unknown:
            raise ConfigError(None, f"has unknown ModelConfig keys {shown(sorted(unknown))}; allowed {sorted(allowed)}")
        d = dict(d)
        for k in ("write_order", "composers"):
            if k in d:
                if not isinstance(d[k], (list, tuple)):
                    raise ConfigError(k, f"is {shown(d[k])}, expected a list")
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
    if cfg.pointer:
        S, G, NB = NUM_SOURCES, NUM_GROUPS, NUM_BUCKETS
        shapes |= {
            "cand_scale": (S, dg),             # per-source scale of the candidate frame's in_emb rows
            "len_emb": (G * NB, dg),           # row g*7+bucket: how long group g's match is
            "cand_feat": (dl, S * POINTER_FEATURES),   # the step's candidate features -> the query
            "hit_emb": (S, dl),                # added to an event token for each source that predicted it
            "gate_w": (S, dl),                 # per-source gate direction
            "gate_b": (R * S * NB,),           # gate bias, row (r*8+s)*7+bucket
        }
    return shapes


def _block_shapes(prefix: str, d: int, mult: int) -> dict[str, tuple]:
    return {
        prefix + "attn_norm": (d,), prefix + "wq": (d, d), prefix + "wk": (d, d),
        prefix + "wv": (d, d), prefix + "wo": (d, d), prefix + "mlp_norm": (d,),
        prefix + "w_up": (mult * d, d), prefix + "w_down": (d, mult * d),
    }
