"""A .sidm file laid out for the Numba kernels: flat int8 / float32 blobs plus a layout table.

`load_model(path)` reads the file with `read_model` (engine/sidm.py's reader, numpy only, no
PyTorch, plus the engine's own checks: every 2-D tensor int8 with one positive finite scale
per row, every 1-D tensor float32, every weight finite and within MAX_ABS_WEIGHT, a config
the engine can run; PyTorch reads .sidm files through it too) and packs:
  W8   int8 (total,)      every int8 matrix, row-major, one after the other
  WF   float32 (total,)   every int8 matrix's per-row scales and every float32 vector
  lay  int64 (E, 4)       per tensor: [offset of data, rows, cols, offset of scales or -1]
                          data offset is into W8 for int8 tensors, into WF for float32 ones
  dims int64 (N_DIMS,)    the network's sizes (D_* indices below)
  fpar float64 (2,)       [norm_eps, rope_theta]

Tensor slots (rows of `lay`): the E_* constants, then 8 per global block (B_* + E_BLOCKS +
8 * i), then 8 per local block (after the global ones). Dequantized weight: w[i, j] =
WF[lay[e, 3] + i] * float32(W8[lay[e, 0] + i * cols + j]), exactly engine.sidm's.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from engine.config import ModelConfig, param_shapes
from engine.sidm import DT_F32, DT_I8_ROWS, SidmFile, SidmFormatError, config_of, load_sidm
from sidlive.frames import NUM_REGS

# tensor slots
# (np.int64, not int: Numba would compile one specialization per literal slot number)
(E_IN_EMB, E_COMPOSER_EMB, E_G_NORM, E_G_TO_LOCAL, E_VAL_EMB, E_PREV_EMB, E_RO_NORM1, E_RO_UP, E_RO_DOWN,
 E_RO_NORM2, E_RO_OUT, E_RO_BIAS, E_RO_SAME, E_COPY_BONUS, E_BLOCKS) = (np.int64(i) for i in range(15))
TOP_NAMES = ("in_emb", "composer_emb", "g_norm", "g_to_local", "val_emb", "prev_emb", "ro_norm1", "ro_up",
             "ro_down", "ro_norm2", "ro_out", "ro_bias", "ro_same", "copy_bonus")
# per block, offsets from the block's first slot
B_ATTN_NORM, B_WQ, B_WK, B_WV, B_WO, B_MLP_NORM, B_W_UP, B_W_DOWN = (np.int64(i) for i in range(8))
BLOCK_NAMES = ("attn_norm", "wq", "wk", "wv", "wo", "mlp_norm", "w_up", "w_down")
BLOCK_SLOTS = np.int64(len(BLOCK_NAMES))

# pointer models: 6 more slots after the local blocks, at dims[D_PTR] + P_*
(P_CAND_SCALE, P_LEN_EMB, P_CAND_FEAT, P_HIT_EMB, P_GATE_W, P_GATE_B) = (np.int64(i) for i in range(6))
POINTER_NAMES = ("cand_scale", "len_emb", "cand_feat", "hit_emb", "gate_w", "gate_b")

# dims
(D_R, D_V, D_DG, D_LG, D_HG, D_FG, D_DL, D_LL, D_HL, D_FL, D_DR, D_W, D_CAP, D_ALL, D_NCOMP,
 D_MAXTOK, D_PTR) = range(17)
N_DIMS = 17   # D_PTR: the first pointer slot, 0 for a model without the pointer design
F_EPS, F_THETA = 0, 1
# Largest |weight| a model may hold (trained models stay below 10): far from float32 overflow
# in any product the kernels form, so a model file cannot make the engine compute inf or NaN.
MAX_ABS_WEIGHT = 1000.0
MAX_SCALE = MAX_ABS_WEIGHT / 127   # int8 rows: |q| <= 127


@dataclasses.dataclass
class EngineModel:
    """A loaded model packed for the kernels: config, meta, W8 / WF blobs, layout, float params, write order."""
    path: str
    cfg: ModelConfig
    meta: dict
    W8: np.ndarray
    WF: np.ndarray
    lay: np.ndarray
    fpar: np.ndarray
    order: np.ndarray          # int64 (25,) write order

    @property
    def n_bytes(self) -> int:
        """Size of the weight blobs (W8 plus WF) in bytes."""
        return int(self.W8.nbytes + self.WF.nbytes)

    def dims(self, max_rollback_frames: int) -> np.ndarray:
        """Sizes for the kernels; the global KV ring holds context + max_rollback frames."""
        c = self.cfg
        d = np.zeros(N_DIMS, np.int64)
        d[D_R], d[D_V] = c.n_regs, c.vocab
        d[D_DG], d[D_LG], d[D_HG], d[D_FG] = c.d_global, c.n_layers_global, c.n_heads_global, c.mlp_mult_global * c.d_global
        d[D_DL], d[D_LL], d[D_HL], d[D_FL] = c.d_local, c.n_layers_local, c.n_heads_local, c.mlp_mult_local * c.d_local
        d[D_DR], d[D_W] = c.d_readout, c.context_frames
        d[D_CAP] = c.context_frames + max_rollback_frames
        d[D_ALL] = 1 if c.local_events == "all" else 0
        d[D_NCOMP] = len(c.composers)
        d[D_MAXTOK] = c.n_regs + 1
        d[D_PTR] = E_BLOCKS + BLOCK_SLOTS * (c.n_layers_global + c.n_layers_local) if c.pointer else 0
        return d


def slot(name: str, cfg: ModelConfig) -> int:
    """The `lay` row of a tensor name ('g1.wq' -> E_BLOCKS + 8 + B_WQ)."""
    if name in TOP_NAMES:
        return TOP_NAMES.index(name)
    if name in POINTER_NAMES:
        return int(E_BLOCKS + BLOCK_SLOTS * (cfg.n_layers_global + cfg.n_layers_local)) + POINTER_NAMES.index(name)
    head, _, leaf = name.partition(".")
    i = int(head[1:])
    base = int(E_BLOCKS) if head[0] == "g" else int(E_BLOCKS + BLOCK_SLOTS * cfg.n_layers_global)
    return base + int(BLOCK_SLOTS) * i + BLOCK_NAMES.index(leaf)


def read_model(path: str | Path) -> tuple[SidmFile, ModelConfig]:
    """A .sidm file read with every check the engine makes (the one reader of model files,
    PyTorch's too): the file's format (engine.sidm), a config the engine can run, 2-D
    tensors int8 with one scale per row in (0, MAX_ABS_WEIGHT / 127], 1-D tensors float32
    with finite values of at most MAX_ABS_WEIGHT. SidmFormatError names the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise SidmFormatError(f"{path}: no such model file")
    f = load_sidm(path)  # header, digest, sizes, tensor records and shapes vs the config
    cfg = config_of(path, f.config)
    if cfg.n_regs != NUM_REGS:
        raise SidmFormatError(f"{path}: field 'config.n_regs' is {cfg.n_regs}, the engine needs {NUM_REGS}")
    for name, shape in param_shapes(cfg).items():
        t = f.tensors[name]
        if len(shape) == 2:
            if t.dtype != DT_I8_ROWS:
                raise SidmFormatError(f"{path}: tensor {name!r}: field 'dtype' is float32, the engine needs "
                                      f"int8-row for 2-D tensors (export with training.export)")
            sc = t.scales
            bad = np.nonzero(~(np.isfinite(sc) & (sc > 0) & (sc <= MAX_SCALE)))[0]
            if len(bad):
                raise SidmFormatError(f"{path}: tensor {name!r}: scale of row {bad[0]} is {sc[bad[0]]}, expected a "
                                      f"finite value in (0, {MAX_SCALE:.4g}] (weights within +-{MAX_ABS_WEIGHT:g})")
        else:
            if t.dtype != DT_F32:
                raise SidmFormatError(f"{path}: tensor {name!r}: field 'dtype' is int8-row, the engine needs "
                                      f"float32 for 1-D tensors")
            data = t.data.reshape(-1)
            bad = np.nonzero(~(np.abs(data) <= MAX_ABS_WEIGHT))[0]   # NaN fails the comparison too
            if len(bad):
                raise SidmFormatError(f"{path}: tensor {name!r}: element {bad[0]} is {data[bad[0]]}, expected a "
                                      f"finite value within +-{MAX_ABS_WEIGHT:g}")
    return f, cfg


def load_model(path: str | Path) -> EngineModel:
    """Read and check a .sidm file (read_model) and pack it for the kernels; SidmFormatError
    (a ValueError) names the file and the field."""
    path = Path(path)
    f, cfg = read_model(path)
    shapes = param_shapes(cfg)
    n_e = E_BLOCKS + BLOCK_SLOTS * (cfg.n_layers_global + cfg.n_layers_local) + (len(POINTER_NAMES) if cfg.pointer else 0)
    lay = np.full((n_e, 4), -1, np.int64)
    n8 = sum(int(np.prod(s)) for k, s in shapes.items() if len(s) == 2)
    nf = sum(s[0] for s in shapes.values())
    W8 = np.empty(n8, np.int8)
    WF = np.empty(nf, np.float32)
    o8 = of = 0
    for name, shape in shapes.items():
        t = f.tensors[name]
        e = slot(name, cfg)
        if len(shape) == 2:
            rows, cols = shape
            W8[o8:o8 + rows * cols] = t.data.reshape(-1)
            WF[of:of + rows] = t.scales
            lay[e] = (o8, rows, cols, of)
            o8 += rows * cols
            of += rows
        else:
            data = t.data.reshape(-1)
            WF[of:of + len(data)] = data
            lay[e] = (of, len(data), 1, -1)
            of += len(data)
    assert o8 == n8 and of == nf and (lay[:, 1] > 0).all()
    fpar = np.array([cfg.norm_eps, cfg.rope_theta], np.float64)
    return EngineModel(str(path), cfg, f.meta, W8, WF, lay, fpar, np.asarray(cfg.write_order, np.int64))
