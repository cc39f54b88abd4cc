"""The sidlive network: a global transformer over frames and a local decoder over registers.

Global: causal over frames, one position per frame. Frame t's input is the sum of 25
learned (register, byte) embeddings plus the composer embedding; pre-norm blocks (RMSNorm,
rotary attention, SiLU MLP), final RMSNorm. Its output at t predicts frame t+1.

Local ("change-event") decoder: frame t+1's registers are written one at a time in
`cfg.write_order`. For register r the readout sees the local body's state after the last
*event* of this frame plus an embedding of (r, previous value of r) and gives a 256-way
distribution factorized as p(no change) = sigmoid(s) and p(v | change) = softmax over the
255 other values. s carries a learned per-register bias (`copy_bonus`, the copy path), so
an untrained model already predicts "no change". The local body is a small causal
transformer over the frame's events: token 0 is the projected global state, then one token
per register that changed (`local_events = "changed"`: ~5.8 tokens per frame instead of
26), or per register whatever its value (`"all"`: the plain dense decoder). Unchanged
registers add no token, which is exact: whether r changed is known once its value is
chosen, so every step is a proper distribution and the product over the 25 steps is the
exact probability of the frame. Training runs the 256-way projection only for registers
that changed (p(no change) needs just s).

Every Linear has no bias and weight shape (out, in). Names match `config.param_shapes`.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.candidates import NUM_SOURCES
from engine.config import POINTER_FEATURES, ModelConfig, param_shapes
from engine.matches import NUM_BUCKETS, NUM_GROUPS
from training.pointer import (Cands, candidate_input, gate_bias_init, gate_logits, mixture_logprob,
                              step_features)

LN2 = math.log(2.0)


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x^2) + eps) * weight."""

    def __init__(self, d: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x normalized by its root mean square over the last axis, times weight."""
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(positions: np.ndarray, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of shape (len(positions), head_dim/2): angle = pos * theta^(-2i/head_dim), in float64."""
    inv = theta ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)  # (hd/2,)
    ang = np.asarray(positions, dtype=np.float64)[:, None] * inv[None, :]
    return torch.from_numpy(np.cos(ang).astype(np.float32)), torch.from_numpy(np.sin(ang).astype(np.float32))


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Half-split rotation: x = [x1, x2] -> [x1*cos - x2*sin, x2*cos + x1*sin]. x (..., L, hd)."""
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class Block(nn.Module):
    """A pre-norm transformer block: RMSNorm, rotary multi-head attention, RMSNorm, SiLU MLP."""
    def __init__(self, d: int, n_heads: int, mult: int, eps: float):
        super().__init__()
        self.n_heads = n_heads
        self.attn_norm = RMSNorm(d, eps)
        self.wq = nn.Linear(d, d, bias=False)
        self.wk = nn.Linear(d, d, bias=False)
        self.wv = nn.Linear(d, d, bias=False)
        self.wo = nn.Linear(d, d, bias=False)
        self.mlp_norm = RMSNorm(d, eps)
        self.w_up = nn.Linear(d, mult * d, bias=False)
        self.w_down = nn.Linear(mult * d, d, bias=False)

    def qkv(self, x: torch.Tensor, cos=None, sin=None):
        """Queries, keys and values (B, H, L, hd) of x after the attention norm, rotary applied if cos is given."""
        B, L, d = x.shape
        hd = d // self.n_heads
        h = self.attn_norm(x)
        q, k, v = (w(h).view(B, L, self.n_heads, hd).transpose(1, 2) for w in (self.wq, self.wk, self.wv))  # (B, H, L, hd)
        if cos is not None:
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        return q, k, v

    def finish(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """a: attention output (B, H, L, hd) -> residual + MLP."""
        B, L, d = x.shape
        x = x + self.wo(a.transpose(1, 2).reshape(B, L, d))
        return x + self.w_down(F.silu(self.w_up(self.mlp_norm(x))))

    def forward(self, x: torch.Tensor, cos=None, sin=None) -> torch.Tensor:
        """The block over x (B, L, d) with causal attention."""
        q, k, v = self.qkv(x, cos, sin)
        return self.finish(x, F.scaled_dot_product_attention(q, k, v, is_causal=True))


class SidModel(nn.Module):
    """The sidlive network: global transformer over frames, local change-event decoder over registers."""
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        R, V, dg, dl = cfg.n_regs, cfg.vocab, cfg.d_global, cfg.d_local
        self.in_emb = nn.Embedding(R * V, dg)
        self.composer_emb = nn.Embedding(len(cfg.composers), dg)
        self.g = nn.ModuleList(Block(dg, cfg.n_heads_global, cfg.mlp_mult_global, cfg.norm_eps)
                               for _ in range(cfg.n_layers_global))
        self.g_norm = RMSNorm(dg, cfg.norm_eps)
        self.g_to_local = nn.Linear(dg, dl, bias=False)
        self.val_emb = nn.Embedding(R * V, dl)
        self.prev_emb = nn.Embedding(R * V, dl)
        self.l = nn.ModuleList(Block(dl, cfg.n_heads_local, cfg.mlp_mult_local, cfg.norm_eps)
                               for _ in range(cfg.n_layers_local))
        self.ro_norm1 = RMSNorm(dl, cfg.norm_eps)
        self.ro_up = nn.Linear(dl, cfg.d_readout, bias=False)
        self.ro_down = nn.Linear(cfg.d_readout, dl, bias=False)
        self.ro_norm2 = RMSNorm(dl, cfg.norm_eps)
        self.ro_out = nn.Linear(dl, V, bias=False)
        self.ro_bias = nn.Parameter(torch.zeros(R * V))
        self.ro_same = nn.Parameter(torch.zeros(R, dl))
        self.copy_bonus = nn.Parameter(torch.full((R,), float(cfg.copy_bonus_init)))
        if cfg.pointer:   # training/pointer.py
            S = NUM_SOURCES
            self.cand_scale = nn.Parameter(torch.zeros(S, dg))
            self.len_emb = nn.Embedding(NUM_GROUPS * NUM_BUCKETS, dg)
            self.cand_feat = nn.Linear(S * POINTER_FEATURES, dl, bias=False)
            self.hit_emb = nn.Parameter(torch.zeros(S, dl))
            self.gate_w = nn.Parameter(torch.zeros(S, dl))
            self.gate_b = nn.Parameter(gate_bias_init(R))
        self.register_buffer("order", torch.tensor(cfg.write_order, dtype=torch.long), persistent=False)
        self.register_buffer("reg_base", torch.arange(R, dtype=torch.long) * V, persistent=False)
        self._init_weights()

    def _init_weights(self) -> None:
        std = self.cfg.init_std
        for name, p in self.named_parameters():
            if p.ndim == 2:
                s = std
                if name.endswith(("wo.weight", "w_down.weight", "ro_down.weight")):
                    n = self.cfg.n_layers_global if name.startswith("g.") else self.cfg.n_layers_local
                    s = std / math.sqrt(2 * max(n, 1))
                nn.init.normal_(p, 0.0, s)
        if self.cfg.pointer:
            with torch.no_grad():
                self.cand_scale.fill_(0.1)   # candidates start as a light touch on the frame embedding
                self.hit_emb.zero_()

    # ------------------------------------------------------------------ global

    def global_states(self, frames: torch.Tensor, composer: torch.Tensor, cands: Cands | None = None) -> torch.Tensor:
        """frames (B, T, 25) long, composer (B,) long, the candidates for frames 1..T (pointer
        models) -> final-normed states (B, T, dg), positions 0..T-1."""
        B, T, R = frames.shape
        x = F.embedding_bag((frames + self.reg_base).view(B * T, R), self.in_emb.weight, mode="sum")
        x = x.view(B, T, -1) + self.composer_emb(composer)[:, None, :]  # (B, T, dg)
        if self.cfg.pointer:
            x = x + candidate_input(self.in_emb.weight, self.cand_scale, self.len_emb.weight, self.reg_base, frames, cands)
        cos, sin = rope_tables(np.arange(T), self.cfg.d_global // self.cfg.n_heads_global, self.cfg.rope_theta)
        cos, sin = cos.to(x.device), sin.to(x.device)
        for blk in self.g:
            x = blk(x, cos, sin)
        return self.g_norm(x)

    # ------------------------------------------------------------------ local

    def frame_logprobs(self, h: torch.Tensor, prev: torch.Tensor, target: torch.Tensor,
                       cands: Cands | None = None) -> torch.Tensor:
        """Natural-log probability of each target register byte.

        h (N, dg) global states, prev (N, 25) long previous frames, target (N, 25) long,
        cands: the targets' candidates, flat (pointer models). Returns (N, 25) in register
        order ($D400..$D418).
        """
        N, R = prev.shape
        order = self.order
        prev_o, tgt_o = prev[:, order], target[:, order]  # (N, 25) write order
        base_o = self.reg_base[order]  # (25,)
        q_emb = self.prev_emb(prev_o + base_o)  # (N, 25, dl)
        said = cand_o = None
        if self.cfg.pointer:
            cand_o = (cands.vals[:, :, order], cands.valid[:, :, order], cands.bucket[:, :, order])  # (N, S, 25)
            feats, said = step_features(*cand_o, prev_o, tgt_o)
            q_emb = q_emb + self.cand_feat(feats)
        if self.cfg.local_events == "changed":
            changed = tgt_o != prev_o
        else:
            changed = torch.ones_like(tgt_o, dtype=torch.bool)
        tok = self.val_emb(tgt_o + base_o) + q_emb  # (N, 25, dl) token for "r changed to v"
        if said is not None:
            tok = tok + said.to(tok.dtype) @ self.hit_emb  # which sources predicted it
        g = self.g_to_local(h)  # (N, dl)
        last = torch.cumsum(changed, 1) - changed.long()  # (N, 25) index of the token before step k
        lengths = changed.sum(1)
        outs, perms = [], []
        for n_ev in torch.unique(lengths).tolist():  # one dense batch per event count
            idx = torch.nonzero(lengths == n_ev).squeeze(1)
            x = g[idx][:, None, :]  # (n, 1, dl)
            if n_ev:
                ev = tok[idx][changed[idx]].view(len(idx), n_ev, -1)  # (n, n_ev, dl) in write order
                x = torch.cat([x, ev], 1)
            for blk in self.l:
                x = blk(x)
            li = last[idx][:, :, None].expand(-1, -1, x.shape[-1])
            outs.append(torch.gather(x, 1, li))  # (n, 25, dl) state before each step
            perms.append(idx)
        perm = torch.cat(perms)
        u = torch.cat(outs) + q_emb[perm]  # (N, 25, dl)
        if self.cfg.pointer:
            lp = self.pointer_logprobs(u, prev_o[perm], tgt_o[perm], tuple(c[perm] for c in cand_o))
        else:
            lp = self.readout_logprobs(u, prev_o[perm], tgt_o[perm])  # (N, 25)
        out = torch.empty_like(lp)
        out[perm] = lp
        res = torch.empty_like(out)
        res[:, order] = out
        return res

    def readout_hidden(self, u: torch.Tensor) -> torch.Tensor:
        """u (..., dl) state + query embedding -> normed readout features (..., dl)."""
        u = u + self.ro_down(F.silu(self.ro_up(self.ro_norm1(u))))
        return self.ro_norm2(u)

    def readout_logprobs(self, u: torch.Tensor, prev_o: torch.Tensor, tgt_o: torch.Tensor) -> torch.Tensor:
        """Log-prob of tgt_o under the factorized readout. u (N, 25, dl); prev_o, tgt_o (N, 25) write order.

        p(v = prev) = sigmoid(s); p(v != prev) = sigmoid(-s) * softmax of z over the 255 other values,
        s = <hn, ro_same[r]> + copy_bonus[r] (the copy path),  z = ro_out(hn) + ro_bias[r].
        The 256-way projection runs only where the register changed (~19% of steps).
        """
        hn = self.readout_hidden(u)
        s = (hn * self.ro_same[self.order]).sum(-1) + self.copy_bonus[self.order]  # (N, 25)
        same = tgt_o == prev_o
        rows, ks = torch.nonzero(~same, as_tuple=True)
        bias = self.ro_bias.view(self.cfg.n_regs, self.cfg.vocab)[self.order]  # (25, 256)
        z = self.ro_out(hn[rows, ks]) + bias[ks]  # (M, 256)
        z = z.scatter(1, prev_o[rows, ks][:, None], float("-inf"))
        lpc = F.logsigmoid(-s[rows, ks]) + torch.log_softmax(z, -1).gather(1, tgt_o[rows, ks][:, None]).squeeze(1)
        changed_lp = torch.zeros_like(s).index_put((rows, ks), lpc)
        return torch.where(same, F.logsigmoid(s), changed_lp)

    def pointer_logprobs(self, u: torch.Tensor, prev_o: torch.Tensor, tgt_o: torch.Tensor, cand_o) -> torch.Tensor:
        """Log-prob of tgt_o under the gated mixture (training/pointer.py); u (N, 25, dl), cand_o
        (vals, valid, bucket) (N, 8, 25) in write order. The 256-way softmax runs only where the
        register changed."""
        vo, va, bo = cand_o
        hn = self.readout_hidden(u)
        g_prev = (hn * self.ro_same[self.order]).sum(-1) + self.copy_bonus[self.order]  # (N, 25)
        log_pi = gate_logits(hn, g_prev, self.gate_w, self.gate_b, self.order, va, bo)  # (N, 25, S+2)
        rows, ks = torch.nonzero(tgt_o != prev_o, as_tuple=True)
        bias = self.ro_bias.view(self.cfg.n_regs, self.cfg.vocab)[self.order]  # (25, 256)
        z = self.ro_out(hn[rows, ks]) + bias[ks]  # (M, 256)
        z = z.scatter(1, prev_o[rows, ks][:, None], float("-inf"))
        log_q = torch.zeros_like(g_prev, dtype=log_pi.dtype).index_put(
            (rows, ks), torch.log_softmax(z.float(), -1).gather(1, tgt_o[rows, ks][:, None]).squeeze(1))
        return mixture_logprob(log_pi, prev_o, tgt_o, vo, va, log_q)

    # ------------------------------------------------------------------ whole windows

    def forward(self, frames: torch.Tensor, composer: torch.Tensor, cands: Cands | None = None) -> torch.Tensor:
        """frames (B, T+1, 25) long: inputs 0..T-1 predict 1..T; cands: the candidates for
        frames 1..T (pointer models). Returns log2-probs (B, T, 25)."""
        B, T1, R = frames.shape
        if self.cfg.pointer and cands is None:
            raise ValueError("a pointer model needs the candidates of its frames (training/pointer.py)")
        h = self.global_states(frames[:, :-1], composer, cands)  # (B, T, dg)
        lp = self.frame_logprobs(h.reshape(B * (T1 - 1), -1), frames[:, :-1].reshape(-1, R),
                                 frames[:, 1:].reshape(-1, R), cands.flat() if cands is not None else None)
        return lp.view(B, T1 - 1, R) / LN2

    def export_state(self) -> dict[str, np.ndarray]:
        """Parameters as float32 numpy arrays under their `param_shapes` names."""
        out = {}
        for key, t in self.state_dict().items():
            out[export_name(key)] = t.detach().cpu().float().numpy()
        want = param_shapes(self.cfg)
        if {k: tuple(v.shape) for k, v in out.items()} != want:
            raise RuntimeError("model parameters do not match config.param_shapes")
        return {k: out[k] for k in want}

    def load_export_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Load parameters from float arrays keyed by their param_shapes names."""
        sd = {key: torch.from_numpy(np.ascontiguousarray(arrays[export_name(key)], dtype=np.float32))
              for key in self.state_dict()}
        self.load_state_dict(sd)


def export_name(state_key: str) -> str:
    """'g.0.wq.weight' -> 'g0.wq'; 'in_emb.weight' -> 'in_emb'; 'copy_bonus' -> 'copy_bonus'."""
    parts = state_key.split(".")
    if parts[-1] == "weight":
        parts = parts[:-1]
    if len(parts) >= 2 and parts[0] in ("g", "l") and parts[1].isdigit():
        parts = [parts[0] + parts[1]] + parts[2:]
    return ".".join(parts)


def count_params(model: SidModel) -> dict[str, int]:
    """Parameters of the global part (incl. input/composer embeddings) and the local part."""
    g = l_ = 0
    for key, p in model.state_dict().items():
        name = export_name(key)
        if name.startswith(("in_emb", "composer_emb", "cand_scale", "len_emb", "g_norm")) or re.match(r"g\d", name):
            g += p.numel()
        else:
            l_ += p.numel()
    return {"global": g, "local": l_, "total": g + l_}


def load_checkpoint(path, map_location="cpu") -> tuple[SidModel, dict]:
    """Rebuild a model from a training checkpoint (.pt) using the config stored in it."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except (OSError, RuntimeError, EOFError) as e:
        raise ValueError(f"{path}: cannot read checkpoint ({e})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != "sidlive-ckpt":
        raise ValueError(f"{path}: field 'format' is not 'sidlive-ckpt' (not a sidlive training checkpoint)")
    model = SidModel(ModelConfig.from_dict(ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model, ckpt
