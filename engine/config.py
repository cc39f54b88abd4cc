"""The model's configuration: one `ModelConfig` travels with the weights.

Torch-free on purpose: the exporter writes `ModelConfig` into the .sidm header as JSON and
the Numba engine rebuilds the network from it (`param_shapes` lists every tensor). The
trainer's settings and the config-file resolution live in training/config.py.
"""
from __future__ import annotations

import dataclasses

from engine.candidates import NUM_SOURCES
from engine.matches import NUM_BUCKETS, NUM_GROUPS
from sidlive.frames import NUM_REGS, WRITE_ORDER

ANY_COMPOSER = "any"
POINTER_FEATURES = 5   # per source and step: valid, says "no change", bucket / 6, log1p(hits), log1p(misses)
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
    pointer: bool = False                       # repeat candidates (engine/candidates.py): in the global input
                                                # and as gated point masses in the readout (docs/sidm-format.md)

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
        """The config as a JSON-ready dict (tuples as lists)."""
        d = dataclasses.asdict(self)
        d["write_order"] = list(self.write_order)
        d["composers"] = list(self.composers)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        """Rebuild a config from to_dict's output; ValueError on unknown keys."""
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
