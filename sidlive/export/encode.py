"""The .sid export's frame-data encoder: four token streams with LZ back-references.

Data format (docs/sid-export.md has the full description). The 25 registers are four
streams, each read by its own pointer: voice 1 ($00-$06), voice 2 ($07-$0D), voice 3
($0E-$14) and the filter/volume group ($15-$18). Each stream is a sequence of tokens; a
token covers one or more frames of its stream:
  change   H v... [n]  H = bit mask of the stream's registers that change (bits 0-6, not 0),
                       bit 7 set: the stream then holds for n more frames (n = 1..255);
                       one value byte per set mask bit, lowest register first
  wait     $00 n       the stream is unchanged for n frames (n = 1..255)
  copy     $80 lo hi c play the c tokens (1..255) stored at address hi:lo, then come back;
                       copied tokens are plain change/wait tokens (copies do not nest)

The copy token is an LZ77 back-reference over whole tokens (`encode_subtunes` finds them,
greedily, in all earlier data of any stream: tokens mean the same in every stream since a
mask addresses the stream's own registers), which is what makes repeated patterns cheap.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from numba import njit

from sidlive.frames import NUM_REGS

STREAMS = ((0x00, 7), (0x07, 7), (0x0E, 7), (0x15, 4))  # (first register, registers)
MAX_RUN = 255
COPY_BYTES = 4
MAX_COPY_TOKENS = 255
MAX_CHAIN = 256  # earlier occurrences tried per token when looking for a back-reference
MIN_LENS = (2, 4, 6, 8, 12, 16)  # shortest copies (tokens) tried by encode_best
T_WAIT, T_COPY, T_HOLD = 0x00, 0x80, 0x80


# --------------------------------------------------------------------------- encoder

def stream_tokens(g: np.ndarray) -> list[bytes]:
    """Literal tokens of one stream: g (N, k) uint8 register values, k <= 7."""
    n, k = g.shape
    if n == 0:
        return []
    bits = (1 << np.arange(k)).astype(np.int64)
    masks = np.zeros(n, np.int64)
    masks[1:] = ((g[1:] != g[:-1]).astype(np.int64) * bits).sum(axis=1)  # (N,)
    masks[0] = (1 << k) - 1
    masks = masks.tolist()
    rows = g.tolist()
    toks, i = [], 0
    while i < n:
        j = i + 1
        while j < n and masks[j] == 0 and j - i < MAX_RUN + (masks[i] != 0):
            j += 1
        if masks[i] == 0:  # unchanged frames i..j-1
            toks.append(bytes((T_WAIT, j - i)))
        else:
            vals = [rows[i][b] for b in range(k) if masks[i] >> b & 1]
            hold = j - i - 1
            toks.append(bytes([masks[i] | (T_HOLD if hold else 0)] + vals + ([hold] if hold else [])))
        i = j
    return toks


@njit(cache=True, nogil=True)
def _lz_parse(ids, sizes, seg, n_ids, copy_bytes, max_len, max_chain, min_len, src, length):
    """Greedy LZ77 over token ids. For each position i that starts an output item:
    src[i] = -1 (literal) or the first source token of a copy of length[i] tokens.
    A source is a run of consecutive literal tokens of one segment. Tokens that were
    themselves copied can be matched too: canon[i] is the literal token each one stands
    for, and a match is usable while those stay consecutive."""
    n = len(ids)
    head = np.full(n_ids, -1, np.int64)
    prev = np.full(n, -1, np.int64)
    canon = np.full(n, -1, np.int64)
    i = 0
    while i < n:
        best_save, best_j, best_len = 0, -1, 0
        j = head[ids[i]]
        chain = 0
        while j >= 0 and chain < max_chain:
            c = canon[j]
            run, saved = 0, 0
            while (i + run < n and run < max_len and j + run < i and canon[j + run] == c + run
                   and seg[c + run] == seg[c] and seg[i + run] == seg[i] and ids[j + run] == ids[i + run]):
                saved += sizes[i + run]
                run += 1
            if run >= min_len and saved - copy_bytes > best_save:
                best_save, best_j, best_len = saved - copy_bytes, c, run
            j = prev[j]
            chain += 1
        if best_save > 0:
            src[i] = best_j
            length[i] = best_len
            for q in range(best_len):
                canon[i + q] = best_j + q
        else:
            src[i] = -1
            length[i] = 1
            canon[i] = i
        for q in range(length[i]):
            prev[i + q] = head[ids[i + q]]
            head[ids[i + q]] = i + q
        i += length[i]


@dataclasses.dataclass
class Encoded:
    """Subtunes as token streams with their LZ parse; `data(base)` serialises them."""

    tokens: list[bytes]  # all literal tokens, segment after segment
    seg_bounds: list[tuple[int, int]]  # token index range of segment u * 4 + s
    src: np.ndarray  # (n_tokens,) int64, see _lz_parse
    length: np.ndarray  # (n_tokens,) int64
    counts: list[int]  # frames per subtune

    def size(self) -> int:
        """Data bytes (the same for any base address)."""
        lit = self.src < 0
        starts = np.zeros(len(self.src), bool)
        i = 0
        while i < len(self.src):
            starts[i] = True
            i += int(self.length[i])
        n_copies = int((starts & ~lit).sum())
        return int(sum(len(t) for t, keep in zip(self.tokens, starts & lit) if keep)) + COPY_BYTES * n_copies

    def data(self, base: int = 0) -> tuple[bytes, list[list[int]]]:
        """(data bytes placed at `base`, starts[u][s] offsets from base)."""
        out = bytearray()
        offset = np.full(len(self.tokens), -1, np.int64)
        starts: list[list[int]] = [[] for _ in self.counts]
        for k, (lo, hi) in enumerate(self.seg_bounds):
            starts[k // 4].append(len(out))
            i = lo
            while i < hi:
                j = int(self.src[i])
                if j < 0:
                    offset[i] = len(out)
                    out += self.tokens[i]
                    i += 1
                else:
                    addr = base + int(offset[j])
                    out += bytes((T_COPY, addr & 0xFF, addr >> 8, int(self.length[i])))
                    i += int(self.length[i])
        return bytes(out), starts


def encode_subtunes(subtunes: list[np.ndarray], max_chain: int = MAX_CHAIN, min_len: int = 8) -> Encoded:
    """Encode each (N, 25) uint8 register array (N >= 1) as four token streams + LZ."""
    tokens: list[bytes] = []
    bounds: list[tuple[int, int]] = []
    for regs in subtunes:
        regs = np.asarray(regs, np.uint8)
        if regs.ndim != 2 or regs.shape[1] != NUM_REGS or len(regs) == 0:
            raise ValueError(f"a subtune must be an (N >= 1, {NUM_REGS}) array, got {regs.shape}")
        for first, k in STREAMS:
            lo = len(tokens)
            tokens += stream_tokens(regs[:, first:first + k])
            bounds.append((lo, len(tokens)))
    ids_of: dict[bytes, int] = {}
    ids = np.array([ids_of.setdefault(t, len(ids_of)) for t in tokens], np.int64)
    sizes = np.array([len(t) for t in tokens], np.int64)
    seg = np.zeros(len(tokens), np.int64)
    for k, (lo, hi) in enumerate(bounds):
        seg[lo:hi] = k
    src = np.full(len(tokens), -1, np.int64)
    length = np.ones(len(tokens), np.int64)
    _lz_parse(ids, sizes, seg, max(1, len(ids_of)), COPY_BYTES, MAX_COPY_TOKENS, max_chain, min_len, src, length)
    return Encoded(tokens, bounds, src, length, [len(r) for r in subtunes])


def encode_best(subtunes: list[np.ndarray], min_lens=MIN_LENS) -> Encoded:
    """encode_subtunes with the shortest back-reference length (in tokens) that gives the
    least data: short copies split the stream into pieces that later repeats cannot copy
    whole, so the best minimum depends on the song."""
    best = None
    for m in min_lens:
        enc = encode_subtunes(subtunes, min_len=m)
        if best is None or enc.size() < best.size():
            best = enc
    return best
