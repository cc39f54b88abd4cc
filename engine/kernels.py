"""Numba kernels of the network: int8 matvec, RMSNorm, rotary attention over a KV ring, the
global step for one frame, one local-decoder token, and the per-register readout.

Weights come as engine/weights.py's flat blobs (W8 int8, WF float32, lay): a matrix slot e
has data at W8[lay[e,0]:], shape lay[e,1] x lay[e,2], per-row scales at WF[lay[e,3]:].
Activations are float32; matvecs accumulate int8 x float32 products in float32 and apply
the row scale at the end. Every buffer lives in the caller's state: `sc` float32 (SC_ROWS,
width) scratch rows (SC_* below), `sd` float64 (SD_ROWS, 256), `si` int64 (SI_ROWS, 256).
Nothing here allocates.

Matches training/model.py (SidModel) and training/sample.py (global_step, local_frame,
readout_one) up to float32 rounding; the float64 log-prob arithmetic of readout_one is
reproduced step for step.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from engine.weights import (B_ATTN_NORM, B_MLP_NORM, B_W_DOWN, B_W_UP, B_WK, B_WO, B_WQ, B_WV, BLOCK_SLOTS, D_CAP,
                            D_DG, D_DL, D_DR, D_FG, D_FL, D_HG, D_LG, D_LL, D_V, D_W, E_BLOCKS, E_COMPOSER_EMB,
                            E_COPY_BONUS, E_G_NORM, E_G_TO_LOCAL, E_IN_EMB, E_RO_BIAS, E_RO_DOWN, E_RO_NORM1,
                            E_RO_NORM2, E_RO_OUT, E_RO_SAME, E_RO_UP, F_EPS, F_THETA, D_PTR, P_CAND_SCALE,
                            P_LEN_EMB)

# float reassociation for vectorised dot products; no nnan/ninf (the sampler relies on -inf)
FM = {"reassoc", "nsz", "arcp", "contract"}

# float32 scratch rows
SC_X, SC_H, SC_Q, SC_K, SC_V, SC_ATT, SC_FF, SC_TMP, SC_SCORES, SC_COS, SC_SIN = range(11)
SC_G, SC_LX, SC_STATE, SC_U, SC_QEMB, SC_HN, SC_Z, SC_TOK, SC_FEAT = range(11, 20)
SC_ROWS = 20
# float64 scratch rows (sampler)
SD_LP, SD_Z, SD_P, SD_CUM, SD_GATES = range(5)
SD_ROWS = 5
SI_IDX, SI_TMP = range(2)
SI_ROWS = 2


def scratch_width(dims: np.ndarray) -> int:
    """Width of the float32 scratch rows: the widest of the network's sizes, at least 32."""
    return int(max(dims[D_DG], dims[D_DL], dims[D_FG], dims[D_FL], dims[D_DR], dims[D_W], dims[D_V], 32))


@njit(cache=True, nogil=True, fastmath=FM)
def matvec(W8, WF, lay, e, x, y):
    """y (rows,) = W[e] (rows, cols) @ x (cols,), W dequantized on the fly (row scale at the end)."""
    off, rows, cols, soff = lay[e, 0], lay[e, 1], lay[e, 2], lay[e, 3]
    i = 0
    while i + 4 <= rows:  # four rows share each load of x
        b = off + i * cols
        r0 = W8[b:b + cols]
        r1 = W8[b + cols:b + 2 * cols]
        r2 = W8[b + 2 * cols:b + 3 * cols]
        r3 = W8[b + 3 * cols:b + 4 * cols]
        a0 = np.float32(0.0)
        a1 = np.float32(0.0)
        a2 = np.float32(0.0)
        a3 = np.float32(0.0)
        for j in range(cols):
            xj = x[j]
            a0 += np.float32(r0[j]) * xj
            a1 += np.float32(r1[j]) * xj
            a2 += np.float32(r2[j]) * xj
            a3 += np.float32(r3[j]) * xj
        y[i] = a0 * WF[soff + i]
        y[i + 1] = a1 * WF[soff + i + 1]
        y[i + 2] = a2 * WF[soff + i + 2]
        y[i + 3] = a3 * WF[soff + i + 3]
        i += 4
    while i < rows:
        y[i] = dot_row(W8, WF, lay, e, i, x)
        i += 1


@njit(cache=True, nogil=True, fastmath=FM)
def dot_row(W8, WF, lay, e, row, x):
    """<W[e][row], x> (float32)."""
    cols = lay[e, 2]
    r = W8[lay[e, 0] + row * cols:lay[e, 0] + (row + 1) * cols]
    acc = np.float32(0.0)
    for j in range(cols):
        acc += np.float32(r[j]) * x[j]
    return acc * WF[lay[e, 3] + row]


@njit(cache=True, nogil=True)
def add_row(W8, WF, lay, e, row, y):
    """y += W[e][row] dequantized (an embedding lookup)."""
    cols = lay[e, 2]
    r = W8[lay[e, 0] + row * cols:lay[e, 0] + (row + 1) * cols]
    s = WF[lay[e, 3] + row]
    for j in range(cols):
        y[j] += np.float32(r[j]) * s


@njit(cache=True, nogil=True, fastmath=FM)
def rmsnorm(x, WF, lay, e, eps, y):
    """y = x / sqrt(mean(x^2) + eps) * w[e]."""
    n = x.shape[0]
    ss = np.float32(0.0)
    for j in range(n):
        ss += x[j] * x[j]
    r = np.float32(1.0) / np.sqrt(ss / np.float32(n) + np.float32(eps))
    w = WF[lay[e, 0]:lay[e, 0] + n]
    for j in range(n):
        y[j] = x[j] * r * w[j]


@njit(cache=True, nogil=True)
def silu(x):
    """SiLU in place: x * sigmoid(x) for each element."""
    for j in range(x.shape[0]):
        x[j] = x[j] / (np.float32(1.0) + np.exp(-x[j]))


@njit(cache=True, nogil=True, fastmath=FM)
def attend(q, kt, vt, first, n, scores, out):
    """Softmax attention of q (d,) over n ring columns of kt/vt (H, hd, cap) starting at
    column `first` (wrapping at cap); out (d,). Heads are contiguous slices of d. The
    transposed layout makes both loops run along positions (no horizontal sums)."""
    n_heads, hd, cap = kt.shape
    scale = np.float32(1.0 / math.sqrt(hd))
    n1 = min(n, cap - first)  # columns first..first+n1-1, then 0..n-n1-1
    n2 = n - n1
    for h in range(n_heads):
        a = h * hd
        for j in range(n):
            scores[j] = 0.0
        s1 = scores[:n1]
        s2 = scores[n1:n]
        for c in range(hd):
            qc = q[a + c]
            r1 = kt[h, c, first:first + n1]  # slices: plain unit-stride loops that vectorise
            r2 = kt[h, c, :n2]
            for j in range(n1):
                s1[j] += qc * r1[j]
            for j in range(n2):
                s2[j] += qc * r2[j]
        mx = np.float32(-np.inf)
        for j in range(n):
            scores[j] *= scale
            mx = max(mx, scores[j])
        tot = np.float32(0.0)
        for j in range(n):
            e = np.exp(scores[j] - mx)
            scores[j] = e
            tot += e
        inv = np.float32(1.0) / tot
        for c in range(hd):
            r1 = vt[h, c, first:first + n1]
            r2 = vt[h, c, :n2]
            acc = np.float32(0.0)
            for j in range(n1):
                acc += s1[j] * r1[j]
            for j in range(n2):
                acc += s2[j] * r2[j]
            out[a + c] = acc * inv


@njit(cache=True, nogil=True)
def store_column(x, t, col):
    """t[h, c, col] = x[h * hd + c] for t (H, hd, cap)."""
    n_heads, hd, _ = t.shape
    for h in range(n_heads):
        for c in range(hd):
            t[h, c, col] = x[h * hd + c]


@njit(cache=True, nogil=True)
def rope_table(pos, hd, theta, cos, sin):
    """cos/sin (hd/2,) float32 of angle pos * theta^(-2i/hd), computed in float64."""
    for i in range(hd // 2):
        ang = np.float64(pos) * theta ** (-(2.0 * i) / hd)
        cos[i] = np.float32(math.cos(ang))
        sin[i] = np.float32(math.sin(ang))


@njit(cache=True, nogil=True)
def rope(x, n_heads, cos, sin):
    """Half-split rotation per head, in place: [x1, x2] -> [x1 c - x2 s, x2 c + x1 s]."""
    hd = x.shape[0] // n_heads
    half = hd // 2
    for h in range(n_heads):
        a = h * hd
        for i in range(half):
            x1 = x[a + i]
            x2 = x[a + half + i]
            x[a + i] = x1 * cos[i] - x2 * sin[i]
            x[a + half + i] = x2 * cos[i] + x1 * sin[i]


@njit(cache=True, nogil=True)
def block(W8, WF, lay, base, eps, x, kt, vt, col, first, n, sc, h, q, k, v, att, ff, cos, sin):
    """One pre-norm block on x (d,) in place. Its k, v go to column `col` of the ring kt/vt
    (H, hd, cap); attention over n columns from `first`. Rotary when cos has entries (the
    global model), none when it is empty (the local decoder)."""
    n_heads = kt.shape[0]
    rmsnorm(x, WF, lay, base + B_ATTN_NORM, eps, h)
    matvec(W8, WF, lay, base + B_WQ, h, q)
    matvec(W8, WF, lay, base + B_WK, h, k)
    matvec(W8, WF, lay, base + B_WV, h, v)
    if cos.shape[0] > 0:
        rope(q, n_heads, cos, sin)
        rope(k, n_heads, cos, sin)
    store_column(k, kt, col)
    store_column(v, vt, col)
    attend(q, kt, vt, first, n, sc[SC_SCORES], att)
    matvec(W8, WF, lay, base + B_WO, att, h)
    for j in range(x.shape[0]):
        x[j] += h[j]
    rmsnorm(x, WF, lay, base + B_MLP_NORM, eps, h)
    matvec(W8, WF, lay, base + B_W_UP, h, ff)
    silu(ff)
    matvec(W8, WF, lay, base + B_W_DOWN, ff, h)
    for j in range(x.shape[0]):
        x[j] += h[j]


@njit(cache=True, nogil=True)
def pointer_input(W8, WF, lay, dims, frame, cv, ck, gb, x, tmp):
    """x (dg,) += sum_g len_emb[g*7 + gb[g]] + sum_s cand_scale[s] * (the in_emb rows of the
    candidates that change `frame`) (training/pointer.py's candidate_input); tmp (dg,) scratch."""
    dg, V, e0 = dims[D_DG], dims[D_V], dims[D_PTR]
    for g in range(gb.shape[0]):
        add_row(W8, WF, lay, e0 + P_LEN_EMB, g * 7 + gb[g], x)
    es = e0 + P_CAND_SCALE
    cols = lay[es, 2]
    for s in range(cv.shape[0]):
        used = False
        for j in range(dg):
            tmp[j] = 0.0
        for r in range(frame.shape[0]):
            if ck[s, r] and cv[s, r] != frame[r]:
                add_row(W8, WF, lay, E_IN_EMB, r * V + cv[s, r], tmp)
                used = True
        if used:
            row = W8[lay[es, 0] + s * cols:lay[es, 0] + (s + 1) * cols]
            scale = WF[lay[es, 3] + s]
            for j in range(dg):
                x[j] += tmp[j] * (np.float32(row[j]) * scale)


@njit(cache=True, nogil=True)
def global_step(W8, WF, lay, dims, fpar, kc, vc, sc, frame, composer, pos, cv, ck, gb):
    """Feed `frame` (25,) at absolute position `pos`: K/V into ring slot pos % cap, attention
    over the last min(pos+1, context) positions. Leaves g_to_local(final norm) in sc[SC_G].
    Pointer models (dims[D_PTR] > 0) add the next frame's candidates cv, ck (8, 25), gb (9,)."""
    R, V, dg, Lg, Hg = frame.shape[0], dims[D_V], dims[D_DG], dims[D_LG], dims[D_HG]
    # kc, vc: (Lg, Hg, hd, cap)
    cap, W, eps = dims[D_CAP], dims[D_W], fpar[F_EPS]
    x = sc[SC_X, :dg]
    for j in range(dg):
        x[j] = 0.0
    for r in range(R):
        add_row(W8, WF, lay, E_IN_EMB, r * V + frame[r], x)
    add_row(W8, WF, lay, E_COMPOSER_EMB, composer, x)
    if dims[D_PTR] > 0:
        pointer_input(W8, WF, lay, dims, frame, cv, ck, gb, x, sc[SC_TMP, :dg])
    hd = dg // Hg
    cos = sc[SC_COS, :hd // 2]
    sin = sc[SC_SIN, :hd // 2]
    rope_table(pos, hd, fpar[F_THETA], cos, sin)
    lo = max(0, pos - W + 1)
    for i in range(Lg):
        block(W8, WF, lay, E_BLOCKS + BLOCK_SLOTS * i, eps, x, kc[i], vc[i], pos % cap, lo % cap, pos - lo + 1,
              sc, sc[SC_H, :dg], sc[SC_Q, :dg], sc[SC_K, :dg], sc[SC_V, :dg], sc[SC_ATT, :dg],
              sc[SC_FF, :dims[D_FG]], cos, sin)
    h = sc[SC_H, :dg]
    rmsnorm(x, WF, lay, E_G_NORM, eps, h)
    matvec(W8, WF, lay, E_G_TO_LOCAL, h, sc[SC_G, :dims[D_DL]])


@njit(cache=True, nogil=True)
def local_push(W8, WF, lay, dims, fpar, lk, lv, sc, tok, j):
    """Token j (tok (dl,)) through the local blocks (causal over tokens 0..j, no rotary);
    the output (the decoder state after this event) goes to sc[SC_STATE]."""
    dl, Ll = dims[D_DL], dims[D_LL]
    x = sc[SC_LX, :dl]
    x[:] = tok
    no_rope = sc[SC_COS, :0]
    base0 = E_BLOCKS + BLOCK_SLOTS * dims[D_LG]
    for i in range(Ll):
        block(W8, WF, lay, base0 + BLOCK_SLOTS * i, fpar[F_EPS], x, lk[i], lv[i], j, np.int64(0), j + 1,
              sc, sc[SC_H, :dl], sc[SC_Q, :dl], sc[SC_K, :dl], sc[SC_V, :dl], sc[SC_ATT, :dl],
              sc[SC_FF, :dims[D_FL]], no_rope, no_rope)
    sc[SC_STATE, :dl] = x


@njit(cache=True, nogil=True)
def log_sigmoid(x):
    """log(sigmoid(x)), computed without overflow for either sign of x."""
    if x >= 0:
        return -math.log1p(math.exp(-x))
    return x - math.log1p(math.exp(x))


@njit(cache=True, nogil=True)
def readout_parts(W8, WF, lay, dims, fpar, sc, sd, reg, prev):
    """The readout's common part from u = state + query embedding (sc[SC_STATE] + sc[SC_QEMB]):
    hn into sc[SC_HN], z = ro_out(hn) + ro_bias[reg] (float64, -inf at `prev`) into sd[SD_Z];
    returns (s, lse): the copy logit <hn, ro_same[reg]> + copy_bonus[reg] and log sum exp z."""
    dl, V, eps = dims[D_DL], dims[D_V], fpar[F_EPS]
    u = sc[SC_U, :dl]
    st = sc[SC_STATE, :dl]
    qe = sc[SC_QEMB, :dl]
    for j in range(dl):
        u[j] = st[j] + qe[j]
    h = sc[SC_H, :dl]
    ff = sc[SC_FF, :dims[D_DR]]
    rmsnorm(u, WF, lay, E_RO_NORM1, eps, h)
    matvec(W8, WF, lay, E_RO_UP, h, ff)
    silu(ff)
    matvec(W8, WF, lay, E_RO_DOWN, ff, h)
    for j in range(dl):
        u[j] += h[j]
    hn = sc[SC_HN, :dl]
    rmsnorm(u, WF, lay, E_RO_NORM2, eps, hn)
    s = np.float64(dot_row(W8, WF, lay, E_RO_SAME, reg, hn) + WF[lay[E_COPY_BONUS, 0] + reg])
    z32 = sc[SC_Z, :V]
    matvec(W8, WF, lay, E_RO_OUT, hn, z32)
    bias = WF[lay[E_RO_BIAS, 0] + reg * V:lay[E_RO_BIAS, 0] + (reg + 1) * V]
    z = sd[SD_Z, :V]
    m = -np.inf
    for w in range(V):
        zw = np.float64(z32[w] + bias[w])
        z[w] = zw
        if w != prev and zw > m:
            m = zw
    z[prev] = -np.inf
    tot = 0.0
    for w in range(V):
        tot += math.exp(z[w] - m)
    return s, m + math.log(tot)


@njit(cache=True, nogil=True)
def readout(W8, WF, lay, dims, fpar, sc, sd, reg, prev):
    """The step's 256 normalized log-probs (float64) into sd[SD_LP]; the copy path p(no
    change) = sigmoid(s) sits at `prev`, the rest is sigmoid(-s) * softmax(z)."""
    V = dims[D_V]
    s, lse = readout_parts(W8, WF, lay, dims, fpar, sc, sd, reg, prev)
    z = sd[SD_Z, :V]
    lsn = log_sigmoid(-s)
    lp = sd[SD_LP, :V]
    for w in range(V):
        lp[w] = lsn + (z[w] - lse)
    lp[prev] = log_sigmoid(s)
