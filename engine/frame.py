"""The two entry kernels: append given frames to the timeline, and generate n frames.

Each is one nogil Numba call for any number of frames, so a generator thread spends its
time outside the GIL. State arrays (owned by engine/generator.py's Generator):
  kc, vc   float32 (Lg, H, hd, cap) global K/V ring, transposed; position p in column p % cap
  hist     uint8 (cap, 25)         the timeline's frames; frame t lives in row t % cap
  lk, lv   float32 (Ll, H, hd, 26)  the local decoder's K/V (transposed) for the frame being written
  sc/sd/si scratch (engine/kernels.py)
  st       int64 (ST_LEN,)         timeline length, high-water marks, settings (ST_*)
  sf       float64 (SF_LEN,)       temperature, top_p
  seed     uint64 (1,)
  fmask, fvals  uint8 (25,)        forced registers and their values
  mt       the match state's arrays (engine/matchstate.py MatchState.arrays()), pointer models
  cand     (cv, ck, cb (8, 25) uint8, gb (9,) uint8, ptr (9,) int64, hits, misses (8,) int64):
           the next frame's candidates (refreshed when a frame goes through the global model)

Timeline invariant: st[ST_N] frames; positions 0..N-2 are in the K/V ring, frame N-1 is
pending (it goes through the global model when the next frame is generated or appended).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from engine.candidates import candidate_frame
from engine.kernels import (SC_FEAT, SC_G, SC_QEMB, SC_TMP, SC_TOK, SD_CUM, SD_GATES, SD_LP, SD_P, SD_Z, SI_IDX,
                            SI_TMP, add_row, global_step, local_push, readout)
from engine.matches import ST_N as MST_N
from engine.matches import match_push
from engine.pointer import count_hits, hit_token, pointer_readout, query_features
from engine.sampler import pick, uniform
from engine.weights import D_ALL, D_CAP, D_DL, D_PTR, D_R, D_V, E_PREV_EMB, E_VAL_EMB

ST_N, ST_KHI, ST_FHI, ST_ORIGIN, ST_COMP, ST_TOPK = range(6)
ST_LEN = 6
SF_TEMP, SF_TOPP, SF_REP = 0, 1, 2
SF_LEN = 3
MODE_SAMPLE, MODE_TEACHER = 0, 1


@njit(cache=True, nogil=True)
def _advance(st, n):
    st[ST_N] = n
    if n > st[ST_FHI]:
        st[ST_FHI] = n


@njit(cache=True, nogil=True)
def _feed_pending(W8, WF, lay, dims, fpar, kc, vc, hist, sc, st, mt, cand):
    """Run the pending frame N-1 through the global model at position N-1 (pointer models:
    after it joins the match state, with the next frame's candidates)."""
    n = st[ST_N]
    cap = dims[D_CAP]
    frame = hist[(n - 1) % cap]
    cv, ck, cb, gb, mptr = cand[0], cand[1], cand[2], cand[3], cand[4]
    if dims[D_PTR] > 0:
        mh, mst = mt[0], mt[7]
        match_push(mh, mt[1], mt[2], mt[3], mt[4], mt[5], mt[6], mst, frame, mptr, gb)
        candidate_frame(mh, mst, mst[MST_N] - 1, mptr, gb, cv, ck, cb)
    global_step(W8, WF, lay, dims, fpar, kc, vc, sc, frame, st[ST_COMP], n - 1, cv, ck, gb)
    if n > st[ST_KHI]:
        st[ST_KHI] = n


@njit(cache=True, nogil=True)
def feed_frames(W8, WF, lay, dims, fpar, kc, vc, hist, sc, st, frames, m, mt, cand):
    """Append frames[:m] (m, 25) uint8 to the timeline as given (a prompt, played frames)."""
    cap = dims[D_CAP]
    for i in range(m):
        n = st[ST_N]
        if n > 0:
            _feed_pending(W8, WF, lay, dims, fpar, kc, vc, hist, sc, st, mt, cand)
        hist[n % cap, :] = frames[i]
        _advance(st, n + 1)


@njit(cache=True, nogil=True)
def run_frames(W8, WF, lay, dims, fpar, order, kc, vc, hist, lk, lv, sc, sd, si, st, sf, seed, fmask, fvals,
               n, mode, teacher, out, out_lp, out_logits, mt, cand, rmask, rules):
    """Generate n frames after the timeline (st[ST_N] >= 1) into out (n, 25) and the timeline.

    mode MODE_SAMPLE: sample with the settings in st/sf/seed, forced registers from fmask/fvals,
    register r restricted to the values v with rules[r, v] != 0 where rmask[r] (uint8 (25,),
    (25, 256)).
    mode MODE_TEACHER: every register takes teacher[i] (teacher forcing, for scoring).
    out_lp (>= n, 25) float64, if given (else shape (0, 25)): natural log-prob of each chosen
    value (computed for forced registers too). out_logits (>= n, 25, 256), if given: the
    step's full log-probs, indexed by register.
    """
    R, V, dl, cap = dims[D_R], dims[D_V], dims[D_DL], dims[D_CAP]
    all_events = dims[D_ALL] != 0
    pointer = dims[D_PTR] > 0
    cv, ck, cb, hits, misses = cand[0], cand[1], cand[2], cand[5], cand[6]
    feat = sc[SC_FEAT, :cv.shape[0] * 5]
    gates = sd[SD_GATES, :cv.shape[0] + 2]
    temperature, top_p, top_k, repetition = sf[SF_TEMP], sf[SF_TOPP], st[ST_TOPK], sf[SF_REP]
    s = seed[0]
    tok = sc[SC_TOK, :dl]
    qemb = sc[SC_QEMB, :dl]
    lp = sd[SD_LP, :V]
    for i in range(n):
        t = st[ST_N]
        _feed_pending(W8, WF, lay, dims, fpar, kc, vc, hist, sc, st, mt, cand)
        hits[:] = 0
        misses[:] = 0
        prev = hist[(t - 1) % cap]
        new = hist[t % cap]
        want_lp = out_lp.shape[0] > i
        want_logits = out_logits.shape[0] > i
        frame_index = t - st[ST_ORIGIN]
        local_push(W8, WF, lay, dims, fpar, lk, lv, sc, sc[SC_G, :dl], np.int64(0))
        n_tok = 1
        for k in range(R):
            reg = order[k]
            p = np.int64(prev[reg])
            qemb[:] = 0.0
            add_row(W8, WF, lay, E_PREV_EMB, reg * V + p, qemb)
            if pointer:
                query_features(W8, WF, lay, dims, cv, ck, cb, reg, p, hits, misses, feat, qemb, sc[SC_TMP, :dl])
            if mode == MODE_TEACHER:
                forced, v = True, np.int64(teacher[i, reg])
            elif fmask[reg]:
                forced, v = True, np.int64(fvals[reg])
            else:
                forced, v = False, np.int64(0)
            if not forced or want_lp or want_logits:
                if pointer:
                    pointer_readout(W8, WF, lay, dims, fpar, sc, sd, reg, p, cv, ck, cb, repetition, gates)
                else:
                    readout(W8, WF, lay, dims, fpar, sc, sd, reg, p)
                if not forced:
                    u = uniform(s, frame_index * R + k)
                    v = np.int64(pick(lp, temperature, top_k, top_p, u, sd[SD_Z, :V], sd[SD_P, :V],
                                      sd[SD_CUM, :V], si[SI_IDX, :V], si[SI_TMP, :V], rmask[reg] != 0, rules[reg]))
                if want_lp:
                    out_lp[i, reg] = lp[v]
                if want_logits:
                    out_logits[i, reg, :] = lp
            new[reg] = np.uint8(v)
            if pointer:
                count_hits(cv, ck, reg, v, hits, misses)
            if all_events or v != p:
                tok[:] = qemb
                add_row(W8, WF, lay, E_VAL_EMB, reg * V + v, tok)
                if pointer:
                    hit_token(W8, WF, lay, dims, cv, ck, reg, v, tok)
                local_push(W8, WF, lay, dims, fpar, lk, lv, sc, tok, n_tok)
                n_tok += 1
        out[i, :] = new
        _advance(st, t + 1)
