"""The pointer design in the engine (training/pointer.py is the reference): the step features
and query, the hit tokens, and the gated mixture readout over {prev, 8 candidate sources,
generate} (the candidates' part of the global input is kernels.pointer_input).

Candidate buffers (the Generator's, refreshed each time a frame goes through the global
model): cv, ck, cb uint8 (8, 25) values, valid flags, length buckets for the next frame;
gb uint8 (9,) the groups' buckets. Per frame: hits, misses int64 (8,) so far in the frame.
float64 arithmetic of the mixture follows training/sample.py step for step.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from engine.kernels import SC_HN, SD_LP, SD_Z, add_row, dot_row, matvec, readout_parts
from engine.matches import NUM_BUCKETS
from engine.weights import D_PTR, D_V, P_CAND_FEAT, P_GATE_B, P_GATE_W, P_HIT_EMB

N_SOURCES = 8
N_MATCH = 4          # sources 0-3 follow earlier matches: the repetition control scales them
N_FEAT = 5           # per source: valid, says "no change", bucket / 6, log1p(hits), log1p(misses)
MAX_BUCKET = NUM_BUCKETS - 1


@njit(cache=True, nogil=True)
def query_features(W8, WF, lay, dims, cv, ck, cb, reg, prev, hits, misses, feat, qemb, tmp):
    """qemb (dl,) += cand_feat @ the step's features (feat (40,), tmp (dl,) scratch, source-major)."""
    for s in range(N_SOURCES):
        ok = ck[s, reg] != 0
        feat[s * N_FEAT] = 1.0 if ok else 0.0
        feat[s * N_FEAT + 1] = 1.0 if ok and cv[s, reg] == prev else 0.0
        feat[s * N_FEAT + 2] = np.float32(cb[s, reg]) / np.float32(MAX_BUCKET)
        feat[s * N_FEAT + 3] = np.float32(math.log1p(hits[s]))
        feat[s * N_FEAT + 4] = np.float32(math.log1p(misses[s]))
    matvec(W8, WF, lay, dims[D_PTR] + P_CAND_FEAT, feat, tmp)
    for i in range(qemb.shape[0]):
        qemb[i] += tmp[i]


@njit(cache=True, nogil=True)
def hit_token(W8, WF, lay, dims, cv, ck, reg, v, tok):
    """tok += hit_emb[s] for every source that predicted the value v of register reg."""
    e = dims[D_PTR] + P_HIT_EMB
    for s in range(N_SOURCES):
        if ck[s, reg] and cv[s, reg] == v:
            add_row(W8, WF, lay, e, s, tok)


@njit(cache=True, nogil=True)
def count_hits(cv, ck, reg, v, hits, misses):
    """After register reg took value v: each valid source's hit or miss."""
    for s in range(N_SOURCES):
        if ck[s, reg]:
            if cv[s, reg] == v:
                hits[s] += 1
            else:
                misses[s] += 1


@njit(cache=True, nogil=True)
def _logaddexp(a, b):
    if a == -np.inf:
        return b
    if b == -np.inf:
        return a
    m = max(a, b)
    return m + math.log1p(math.exp(-abs(a - b)))


@njit(cache=True, nogil=True)
def pointer_readout(W8, WF, lay, dims, fpar, sc, sd, reg, prev, cv, ck, cb, repetition, gates):
    """The step's 256 normalized log-probs (float64) into sd[SD_LP] under the gated mixture
    p(v) = pi_prev [v == prev] + sum_s pi_s [c_s == v] + pi_gen q(v); gates (10,) float64
    scratch. repetition scales the weight of the match sources (0: never copy from history)."""
    V = dims[D_V]
    s, lse = readout_parts(W8, WF, lay, dims, fpar, sc, sd, reg, prev)
    hn = sc[SC_HN, :lay[dims[D_PTR] + P_GATE_W, 2]]
    bias0 = lay[dims[D_PTR] + P_GATE_B, 0]
    log_rep = math.log(repetition) if repetition > 0 else -np.inf
    gates[0] = s
    m = s
    for k in range(N_SOURCES):
        g = -np.inf
        if ck[k, reg] and (k >= N_MATCH or repetition > 0):
            g = np.float64(dot_row(W8, WF, lay, dims[D_PTR] + P_GATE_W, k, hn)
                           + WF[bias0 + (reg * N_SOURCES + k) * NUM_BUCKETS + cb[k, reg]])
            if k < N_MATCH and repetition != 1.0:
                g += log_rep
        gates[1 + k] = g
        if g > m:
            m = g
    gates[N_SOURCES + 1] = 0.0
    if m < 0.0:
        m = 0.0
    tot = 0.0
    for k in range(N_SOURCES + 2):
        tot += math.exp(gates[k] - m)
    log_tot = math.log(tot)
    z = sd[SD_Z, :V]
    lp = sd[SD_LP, :V]
    log_gen = gates[N_SOURCES + 1] - m - log_tot
    for w in range(V):
        lp[w] = log_gen + (z[w] - lse)
    lp[prev] = gates[0] - m - log_tot
    for k in range(N_SOURCES):
        if gates[1 + k] != -np.inf:
            c = cv[k, reg]
            lp[c] = _logaddexp(lp[c], gates[1 + k] - m - log_tot)
