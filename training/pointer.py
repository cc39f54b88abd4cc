"""The pointer design's pieces shared by the model (training/model.py) and the reference
sampler (training/sample.py); the Numba engine mirrors them (engine/kernels.py).

For frame t+1 the repeat machinery (engine/candidates.py) offers S = 8 candidate values per
register (what followed the longest earlier match of the whole frame, of the notes, of the
register's own voice or filter group, of the voice's notes; the linear extrapolation of a
frequency / pulse-width / cutoff pair; the values 2, 3, 4 frames back), each with a valid
flag and a match-length bucket, plus the 9 groups' length buckets. The model uses them twice:

- global input: frame t's embedding also sums, per source s, cand_scale[s] * the in_emb rows
  of the candidate values that differ from frame t (the changes the source predicts), and
  len_emb[g*7 + bucket_g] for the 9 groups;
- readout (register r at step k, previous value p): a gate over {prev, the valid sources,
  generate} with logits  g_prev = <ro_same[r], hn> + copy_bonus[r] (the old copy path),
  g_s = <gate_w[s], hn> + gate_b[(r*8+s)*7 + bucket_s] (+ log repetition for the match
  sources when sampling), g_gen = 0; then
      p(v) = pi_prev [v == p] + sum_s pi_s [c_s == v] + pi_gen q(v),
  q the softmax of z = ro_out(hn) + ro_bias[r] over the 255 values != p. Exact and
  normalized: the bits are honest. With no valid source it is the old readout.
  The query gets the step's features (per source: valid, says "no change", bucket / 6,
  log1p of its hits and misses so far in this frame), and an event token gets hit_emb[s]
  for each source that predicted it, so the decoder learns which source is right today.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

from engine.candidates import MATCH_SOURCES, NUM_SOURCES, S_EXTRAP
from engine.config import POINTER_FEATURES
from engine.matches import NUM_BUCKETS, NUM_GROUPS

MAX_BUCKET = NUM_BUCKETS - 1


@dataclasses.dataclass
class Cands:
    """Candidates for the targets of a batch: vals, valid, bucket (B, T, 8, 25); gbucket (B, T, 9)."""

    vals: torch.Tensor     # long
    valid: torch.Tensor    # bool
    bucket: torch.Tensor   # long
    gbucket: torch.Tensor  # long

    @classmethod
    def from_numpy(cls, vals, valid, bucket, gbucket, device=None) -> "Cands":
        """From uint8 arrays (the dataset's), on `device`."""
        t = lambda a, dt: torch.as_tensor(np.asarray(a), device=device).to(dt)  # noqa: E731
        return cls(t(vals, torch.long), t(valid, torch.bool), t(bucket, torch.long), t(gbucket, torch.long))

    def flat(self) -> "Cands":
        """(B*T, ...) views: one row per target frame."""
        return Cands(*(x.reshape(-1, *x.shape[2:]) for x in (self.vals, self.valid, self.bucket, self.gbucket)))

    def rows(self, idx) -> "Cands":
        """The rows `idx` of a flat batch."""
        return Cands(self.vals[idx], self.valid[idx], self.bucket[idx], self.gbucket[idx])


def gate_bias_init(n_regs: int) -> torch.Tensor:
    """Starting gate biases (r*8+s)*7+bucket: match sources by match length (-2 at length 1 up
    to +3 at 32), the extrapolation -1, the frames back -3; an untrained model already mixes."""
    b = torch.full((n_regs, NUM_SOURCES, NUM_BUCKETS), -3.0)
    for s in MATCH_SOURCES:
        b[:, s, :] = torch.arange(NUM_BUCKETS, dtype=torch.float32) - 3.0
    b[:, S_EXTRAP, :] = -1.0
    return b.reshape(-1)


def candidate_input(in_emb: torch.Tensor, cand_scale: torch.Tensor, len_emb: torch.Tensor, reg_base: torch.Tensor,
                    frames: torch.Tensor, c: Cands) -> torch.Tensor:
    """The candidates' part of the global input (B, T, dg) for input frames (B, T, 25)."""
    B, T, S, R = c.vals.shape
    change = (c.valid & (c.vals != frames[:, :, None, :])).to(in_emb.dtype).reshape(B * T, S, R)
    idx = (c.vals + reg_base).reshape(B * T, S, R)
    out = F.embedding_bag(c.gbucket.reshape(B * T, NUM_GROUPS)
                          + torch.arange(NUM_GROUPS, device=idx.device) * NUM_BUCKETS, len_emb, mode="sum")
    for s in range(S):
        out = out + F.embedding_bag(idx[:, s], in_emb, per_sample_weights=change[:, s], mode="sum") * cand_scale[s]
    return out.view(B, T, -1)


def step_features(vo: torch.Tensor, va: torch.Tensor, bo: torch.Tensor, prev_o: torch.Tensor,
                  tgt_o: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per step k (write order) the features (N, 25, 8*5), source-major, and which sources
    predicted the written value (N, 25, 8) bool. vo, va, bo (N, 8, 25) in write order."""
    said = va & (vo == tgt_o[:, None, :])                 # (N, S, 25) source s was right at step k
    wrong = va & (vo != tgt_o[:, None, :])
    hits = torch.cumsum(said, -1) - said.long()           # before step k, in this frame
    misses = torch.cumsum(wrong, -1) - wrong.long()
    f = torch.stack([va.float(), (va & (vo == prev_o[:, None, :])).float(), bo.float() / MAX_BUCKET,
                     torch.log1p(hits.float()), torch.log1p(misses.float())], -1)   # (N, S, 25, 5)
    N, S, R, _ = f.shape
    return f.permute(0, 2, 1, 3).reshape(N, R, S * POINTER_FEATURES), said.permute(0, 2, 1)


def gate_logits(hn: torch.Tensor, g_prev: torch.Tensor, gate_w: torch.Tensor, gate_b: torch.Tensor,
                reg_o: torch.Tensor, va: torch.Tensor, bo: torch.Tensor) -> torch.Tensor:
    """Log gate weights (N, 25, 8+2): prev, the sources (-inf where invalid), generate.
    hn (N, 25, dl); g_prev (N, 25); reg_o (25,) registers in write order; va, bo (N, 8, 25)."""
    S = gate_w.shape[0]
    rows = (reg_o[None, :, None] * S + torch.arange(S, device=hn.device)) * NUM_BUCKETS + bo.permute(0, 2, 1)
    g = hn @ gate_w.t() + gate_b[rows]                   # (N, 25, S)
    g = g.masked_fill(~va.permute(0, 2, 1), float("-inf"))
    gen = torch.zeros_like(g_prev)
    return torch.log_softmax(torch.cat([g_prev[..., None], g, gen[..., None]], -1).float(), -1)


def mixture_logprob(log_pi: torch.Tensor, prev_o, tgt_o, vo, va, log_q_tgt: torch.Tensor) -> torch.Tensor:
    """Natural log p(target) (N, 25) under the gated mixture; log_q_tgt (N, 25): log q(target)
    where the target changed (ignored elsewhere)."""
    neg = torch.full_like(log_pi[..., 0], float("-inf"))
    same = tgt_o == prev_o
    terms = [torch.where(same, log_pi[..., 0], neg)]
    hit = (va & (vo == tgt_o[:, None, :])).permute(0, 2, 1)      # (N, 25, S)
    terms.append(torch.where(hit, log_pi[..., 1:-1], float("-inf")))
    terms.append(torch.where(same, neg, log_pi[..., -1] + log_q_tgt)[..., None])
    return torch.logsumexp(torch.cat([terms[0][..., None], terms[1], terms[2]], -1), -1)


def hit_token(cand, reg: int, v: int, hits, misses, hit_emb: torch.Tensor, tok: torch.Tensor) -> torch.Tensor:
    """One step of a frame written value by value (the samplers): count each valid source's hit
    or miss at register `reg`, and add hit_emb[s] to the event token for each one that hit,
    in source order (the engine's order of additions)."""
    cv, ck = cand[0], cand[1]
    for s in range(cv.shape[0]):
        if ck[s, reg]:
            if cv[s, reg] == v:
                hits[s] += 1
                tok = tok + hit_emb[s]
            else:
                misses[s] += 1
    return tok
