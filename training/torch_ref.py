"""PyTorch baseline for the engine benchmark: the same network, float32, KV-cached, batch 1.

training/sample.py is the reference for *what* is computed; it keeps its caches in Python
lists and samples in numpy, which is slow. This is the fast eager-mode PyTorch version to
compare the engine against: preallocated K/V tensors (a ring of context_frames slots,
attention over the filled slots, as plain matmuls), the local decoder's K/V preallocated, the readout and the
sampling in torch ops (softmax at the temperature + torch.multinomial; temperature 0 is
argmax, which matches the reference; values kept canonical as there). Imports torch; the engine
proper never imports this.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from engine.candidates import candidate_frame
from engine.matches import NUM_BUCKETS, NUM_GROUPS
from engine.matchstate import MatchState
from engine.silence import CANONICAL
from training.export import model_from_sidm
from training.model import SidModel, rope_tables
from training.pointer import Cands, candidate_input, hit_token
from training.sample import _features

CANON_T = torch.from_numpy(CANONICAL)
CANON_ALL = CANONICAL.all(axis=1)


def _attend(q: torch.Tensor, K: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """q (1, H, 1, hd), K/V (1, H, n, hd) -> (1, H, 1, hd). (Plain matmuls: PyTorch's CPU
    scaled_dot_product_attention is far slower for one query.)"""
    s = (q @ K.transpose(-1, -2)) * (1.0 / math.sqrt(q.shape[-1]))
    return torch.softmax(s, -1) @ V


class TorchGenerator:
    """Generates frames with a SidModel in eager PyTorch: KV caches preallocated, batch 1."""
    def __init__(self, model: SidModel, seed: int = 0, temperature: float = 1.0, composer: int = 0):
        self.model = model.eval()
        c = self.cfg = model.cfg
        self.temperature = float(temperature)
        self.composer = int(composer)
        self.W = c.context_frames
        Hg, Hl = c.n_heads_global, c.n_heads_local
        self.K = torch.zeros(c.n_layers_global, 1, Hg, self.W, c.d_global // Hg)
        self.V = torch.zeros_like(self.K)
        self.lK = torch.zeros(c.n_layers_local, 1, Hl, c.n_regs + 1, c.d_local // Hl)
        self.lV = torch.zeros_like(self.lK)
        self.reg_base = torch.arange(c.n_regs) * c.vocab
        self.gen = torch.Generator().manual_seed(int(seed) % (1 << 63))
        self.pos = 0
        self.pending: np.ndarray | None = None
        if c.pointer:   # the repeat candidates: a match state and the next frame's candidates
            self.matches = MatchState(table_bits=18)
            self.cand = tuple(np.zeros((8, c.n_regs), np.uint8) for _ in range(3)) + (np.zeros(NUM_GROUPS, np.uint8),)

    @classmethod
    def from_sidm(cls, path, **kw) -> "TorchGenerator":
        """A generator over the dequantized weights of a .sidm file."""
        return cls(model_from_sidm(path), **kw)

    @torch.inference_mode()
    def _global(self, frame: np.ndarray) -> torch.Tensor:
        m, c = self.model, self.cfg
        idx = torch.from_numpy(frame.astype(np.int64)) + self.reg_base
        x = (m.in_emb.weight[idx].sum(0) + m.composer_emb.weight[self.composer]).view(1, 1, -1)  # (1, 1, dg)
        if c.pointer:
            ptr, gb = self.matches.push(frame)
            cv, ck, cb, _ = self.cand
            candidate_frame(self.matches.hist, self.matches.st, np.int64(self.matches.length - 1), ptr, gb, cv, ck, cb)
            self.cand = (cv, ck, cb, gb)
            cc = Cands.from_numpy(cv[None, None], ck[None, None], cb[None, None], gb[None, None])
            x = x + candidate_input(m.in_emb.weight, m.cand_scale, m.len_emb.weight, self.reg_base,
                                    torch.from_numpy(frame.astype(np.int64))[None, None], cc)
        cos, sin = rope_tables(np.array([self.pos]), c.d_global // c.n_heads_global, c.rope_theta)
        slot, n = self.pos % self.W, min(self.pos + 1, self.W)
        for i, blk in enumerate(m.g):
            q, k, v = blk.qkv(x, cos, sin)  # (1, H, 1, hd)
            self.K[i, :, :, slot] = k[:, :, 0]
            self.V[i, :, :, slot] = v[:, :, 0]
            x = blk.finish(x, _attend(q, self.K[i, :, :, :n], self.V[i, :, :, :n]))
        self.pos += 1
        return m.g_norm(x)[0, 0]

    def _push(self, tok: torch.Tensor, j: int) -> torch.Tensor:
        x = tok.view(1, 1, -1)
        for i, blk in enumerate(self.model.l):
            q, k, v = blk.qkv(x)
            self.lK[i, :, :, j] = k[:, :, 0]
            self.lV[i, :, :, j] = v[:, :, 0]
            x = blk.finish(x, _attend(q, self.lK[i, :, :, :j + 1], self.lV[i, :, :, :j + 1]))
        return x[0, 0]

    @torch.inference_mode()
    def _local(self, h: torch.Tensor, prev: np.ndarray) -> np.ndarray:
        m, c = self.model, self.cfg
        V = c.vocab
        state = self._push(m.g_to_local(h), 0)
        n_tok = 1
        out = prev.copy()
        hits, misses = np.zeros(8, np.int64), np.zeros(8, np.int64)
        for reg in c.write_order:
            p = int(prev[reg])
            qe = m.prev_emb.weight[reg * V + p]
            if c.pointer:
                qe = qe + m.cand_feat(_features(self.cand, reg, p, hits, misses))
            hn = m.readout_hidden(state + qe)
            s = (hn * m.ro_same[reg]).sum() + m.copy_bonus[reg]
            z = m.ro_out(hn) + m.ro_bias[reg * V:(reg + 1) * V]
            z[p] = float("-inf")
            if c.pointer:
                lp = self._mixture(hn, s, z, reg, p)
            else:
                lp = F.logsigmoid(-s) + torch.log_softmax(z, -1)
                lp[p] = F.logsigmoid(s)
            if not CANON_ALL[reg]:                   # canonical values only, as the engine samples
                lp = lp.masked_fill(~CANON_T[reg], float("-inf"))
            if self.temperature <= 0:
                v = int(torch.argmax(lp))
            else:
                v = int(torch.multinomial(torch.softmax(lp / self.temperature, -1), 1, generator=self.gen))
            out[reg] = v
            tok = m.val_emb.weight[reg * V + v] + qe
            if c.pointer:
                tok = hit_token(self.cand, reg, v, hits, misses, m.hit_emb, tok)
            if c.local_events == "all" or v != p:
                state = self._push(tok, n_tok)
                n_tok += 1
        return out

    def _mixture(self, hn: torch.Tensor, s: torch.Tensor, z: torch.Tensor, reg: int, p: int) -> torch.Tensor:
        """The pointer readout's 256 log-probs (training/pointer.py) in torch ops."""
        m = self.model
        cv, ck, cb = self.cand[:3]
        valid = torch.from_numpy(ck[:, reg] != 0)
        rows = (reg * 8 + torch.arange(8)) * NUM_BUCKETS + torch.from_numpy(cb[:, reg].astype(np.int64))
        g = (m.gate_w @ hn + m.gate_b[rows]).masked_fill(~valid, float("-inf"))
        log_pi = torch.log_softmax(torch.cat([s.view(1), g, torch.zeros(1)]), -1)
        lp = log_pi[-1] + torch.log_softmax(z, -1)
        lp[p] = log_pi[0]
        for k in np.flatnonzero(ck[:, reg]):
            c = int(cv[k, reg])
            lp[c] = torch.logaddexp(lp[c], log_pi[1 + k])
        return lp

    def prime(self, frames: np.ndarray) -> None:
        """Feed prompt frames; the last is held back as the input of the next generated frame."""
        for f in np.asarray(frames, np.uint8):
            if self.pending is not None:
                self._global(self.pending)
            self.pending = f.copy()

    def generate(self, n: int) -> np.ndarray:
        """Generate n frames (from an all-zero frame when not primed); (n, 25) uint8."""
        if self.pending is None:
            self.prime(np.zeros((1, self.cfg.n_regs), np.uint8))
        out = np.zeros((n, self.cfg.n_regs), np.uint8)
        for i in range(n):
            h = self._global(self.pending)
            self.pending = self._local(h, self.pending)
            out[i] = self.pending
        return out
