"""Novelty: the longest run of frames a sequence shares verbatim with the training set.

Index: every `window_frames`-frame window (default 8) inside each training tune is hashed
(a 64-bit mix of each row's 25 bytes, combined polynomially over the window) into a
sorted uint64 array with the window's position beside it (a virtual coordinate: tunes laid
end to end), looked up with np.searchsorted. Windows never cross tune boundaries.

Search (seed and extend): each window of the query whose hash occurs in the index at most
`max_seed_hits` times is a seed; for every training position of that hash the match is
extended backwards and forwards by exact row comparison (the hash is never trusted: a
collision simply extends to < window_frames). Seeds on a diagonal (training position -
query position) already covered by an extended run are skipped. Runs made only of windows
that occur more than `max_seed_hits` times (silence, held notes, stock patterns found all
over the corpus) are not counted as memorisation; `present_stretch_frames` reports the
longest stretch whose windows all occur somewhere, an upper bound that includes them.

Dataset layout: DATA_DIR/index.jsonl, one JSON object per (tune, subtune) with "path",
"status", "shard" ("shards/NAME.npy", relative to DATA_DIR), "offset" (first row in the
shard), "frames"; see `read_index` for which entries are used. Shards are (rows, 25) uint8 .npy.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
from numba import njit, types
from numba.typed import Dict, List

from sidlive.frames import NUM_REGS, PAL_FRAME_RATE_HZ
from training.dataset import index_entries

WINDOW_FRAMES = 8
MAX_SEED_HITS = 1000
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_MIX = np.uint64(0x9E3779B97F4A7C15)


# ---------------------------------------------------------------------------- dataset

def read_index(data_dir: str | Path) -> list[dict]:
    """The tunes of DATA_DIR/index.jsonl that hold frames, fields checked, each with its "path".

    The same entries the trainer uses (training.dataset.index_entries).
    """
    return index_entries(data_dir, required=(("path", str),))


def open_shards(data_dir: str | Path, entries: list[dict]) -> dict[str, np.ndarray]:
    """Memory-map each shard the entries name and check every entry lies inside its shard."""
    data_dir = Path(data_dir)
    shards: dict[str, np.ndarray] = {}
    for e in entries:
        name = e["shard"]
        if name not in shards:
            p = data_dir / name
            a = np.asarray(np.load(p, mmap_mode="r"))
            if a.ndim != 2 or a.shape[1] != NUM_REGS or a.dtype != np.uint8:
                raise ValueError(f"{p}: expected a (rows, {NUM_REGS}) uint8 array, got {a.shape} {a.dtype}")
            shards[name] = a
        rows = shards[name].shape[0]
        if e["offset"] + e["frames"] > rows:
            raise ValueError(f"{data_dir / 'index.jsonl'}: line {e.get('_line', '?')}: offset {e['offset']} + "
                             f"frames {e['frames']} exceeds the {rows} rows of {name}")
    return shards


def tune_frames(shards: dict[str, np.ndarray], entry: dict) -> np.ndarray:
    """The (frames, 25) uint8 rows of one index entry (a view into the memory-mapped shard)."""
    return shards[entry["shard"]][entry["offset"]:entry["offset"] + entry["frames"]]


# ---------------------------------------------------------------------------- kernels

@njit(cache=True, nogil=True)
def _window_hashes(rows, w):
    """(n, 25) uint8 -> (max(n - w + 1, 0),) uint64 hash of each w-row window."""
    n = rows.shape[0]
    rh = np.empty(n, np.uint64)
    for t in range(n):
        h = _FNV_OFFSET
        for j in range(rows.shape[1]):
            h = (h ^ np.uint64(rows[t, j])) * _FNV_PRIME
        h ^= h >> np.uint64(29)
        rh[t] = h * _MIX
    m = max(n - w + 1, 0)
    out = np.empty(m, np.uint64)
    for t in range(m):
        h = np.uint64(0)
        for i in range(w):
            h = h * _MIX + rh[t + i]
        out[t] = h ^ (h >> np.uint64(31))
    return out


@njit(cache=True, nogil=True)
def _rows_equal(a, i, b, j):
    for c in range(a.shape[1]):
        if a[i, c] != b[j, c]:
            return False
    return True


@njit(cache=True, nogil=True)
def _seed_extend(query, qhash, hashes, positions, ent_base, ent_frames, ent_shard, ent_offset,
                 shards, w, max_seed_hits):
    """Longest exact run: (length, query_start, entry, tune_start, n_present, n_seeds)."""
    covered = Dict.empty(key_type=types.int64, value_type=types.int64)  # diagonal -> next uncovered k
    best_len, best_q, best_e, best_t = 0, -1, -1, -1
    n_present = 0
    n_seeds = 0
    m = query.shape[0]
    for k in range(qhash.shape[0]):
        lo = np.searchsorted(hashes, qhash[k], side="left")
        hi = np.searchsorted(hashes, qhash[k], side="right")
        if hi > lo:
            n_present += 1
        if hi == lo or hi - lo > max_seed_hits:
            continue
        n_seeds += 1
        for idx in range(lo, hi):
            p = np.int64(positions[idx])
            d = p - k
            if d in covered and covered[d] > k:
                continue
            e = np.searchsorted(ent_base, p, side="right") - 1
            local = p - ent_base[e]
            shard = shards[ent_shard[e]]
            row0 = ent_offset[e]
            back = 0
            while (k - back - 1 >= 0 and local - back - 1 >= 0
                   and _rows_equal(query, k - back - 1, shard, row0 + local - back - 1)):
                back += 1
            fwd = 0
            while (k + fwd < m and local + fwd < ent_frames[e]
                   and _rows_equal(query, k + fwd, shard, row0 + local + fwd)):
                fwd += 1
            covered[d] = max(covered.get(d, np.int64(0)), np.int64(k + fwd - w + 1))
            if back + fwd > best_len:
                best_len, best_q, best_e, best_t = back + fwd, k - back, e, local - back
    return best_len, best_q, best_e, best_t, n_present, n_seeds


# ---------------------------------------------------------------------------- index

class NoveltyIndex:
    """Sorted window hashes of a training set, with positions, for verbatim-run lookups."""

    def __init__(self, hashes, positions, entries, shards, window_frames=WINDOW_FRAMES):
        self.hashes = hashes  # (W,) uint64, sorted
        self.positions = positions  # (W,) uint32|int64 virtual window start, same order
        self.entries = entries  # list of dicts with path, shard, offset, frames
        self.window_frames = int(window_frames)
        names = sorted(shards)
        self._shard_names = names
        self._shards = List()
        for nm in names:
            a = shards[nm]
            if a.flags.writeable:  # one array type in the typed list: read-only views
                a = a.view()
                a.setflags(write=False)
            self._shards.append(a)
        sid = {nm: i for i, nm in enumerate(names)}
        self.ent_frames = np.array([e["frames"] for e in entries], dtype=np.int64)
        self.ent_base = np.concatenate(([0], np.cumsum(self.ent_frames)[:-1])).astype(np.int64) \
            if entries else np.zeros(0, np.int64)
        self.ent_shard = np.array([sid[e["shard"]] for e in entries], dtype=np.int64)
        self.ent_offset = np.array([e["offset"] for e in entries], dtype=np.int64)

    # -- building
    @classmethod
    def from_tunes(cls, shards: dict[str, np.ndarray], entries: list[dict],
                   window_frames: int = WINDOW_FRAMES) -> "NoveltyIndex":
        """Build the index of every window_frames-frame window of the given training tunes."""
        if window_frames < 1:
            raise ValueError(f"window_frames must be >= 1, got {window_frames}")
        entries = list(entries)
        n_win = [max(e["frames"] - window_frames + 1, 0) for e in entries]
        hashes = np.empty(sum(n_win), np.uint64)
        pos = np.empty(sum(n_win), np.int64)
        base, at = 0, 0
        for e, nw in zip(entries, n_win):
            if nw:
                hashes[at:at + nw] = _window_hashes(tune_frames(shards, e), window_frames)
                pos[at:at + nw] = np.arange(base, base + nw)
            at += nw
            base += e["frames"]
        order = np.argsort(hashes, kind="stable")
        hashes = hashes[order]
        pos = pos[order]
        del order
        if base < 2**32:
            pos = pos.astype(np.uint32)
        return cls(hashes, pos, entries, shards, window_frames)

    @classmethod
    def build(cls, data_dir: str | Path, keep: Callable[[dict], bool] | None = None,
              window_frames: int = WINDOW_FRAMES) -> "NoveltyIndex":
        """Index the status-"ok" tunes of DATA_DIR (those `keep(entry)` accepts)."""
        entries = [e for e in read_index(data_dir) if keep is None or keep(e)]
        return cls.from_tunes(open_shards(data_dir, entries), entries, window_frames)

    @classmethod
    def from_sequences(cls, seqs: list[np.ndarray], names: list[str] | None = None,
                       window_frames: int = WINDOW_FRAMES) -> "NoveltyIndex":
        """An in-memory index over a list of (N, 25) uint8 sequences (one per tune)."""
        names = names or [f"seq{i}" for i in range(len(seqs))]
        shards, entries = {}, []
        for i, (s, nm) in enumerate(zip(seqs, names)):
            s = np.ascontiguousarray(s)
            if s.ndim != 2 or s.shape[1] != NUM_REGS or s.dtype != np.uint8:
                raise ValueError(f"sequence {i} ({nm}): expected (N, {NUM_REGS}) uint8, got {s.shape} {s.dtype}")
            shards[f"mem{i}"] = s
            entries.append({"path": nm, "shard": f"mem{i}", "offset": 0, "frames": len(s)})
        return cls.from_tunes(shards, entries, window_frames)

    # -- persistence (the hash table only; shards are re-opened from DATA_DIR)
    def save(self, path: str | Path) -> None:
        """Write the hashes, positions and entries to an .npz file."""
        meta = json.dumps({"window_frames": self.window_frames,
                           "entries": [{k: e[k] for k in ("path", "shard", "offset", "frames")}
                                       for e in self.entries]})
        with open(path, "wb") as f:
            np.savez(f, hashes=self.hashes, positions=self.positions, meta=np.array(meta))

    @classmethod
    def load(cls, path: str | Path, data_dir: str | Path) -> "NoveltyIndex":
        """Read an index written by save(), opening its shards under data_dir."""
        with np.load(path) as z:
            meta = json.loads(str(z["meta"]))
            hashes, positions = z["hashes"], z["positions"]
        entries = meta["entries"]
        return cls(hashes, positions, entries, open_shards(data_dir, entries), meta["window_frames"])

    def __len__(self) -> int:
        return int(self.hashes.shape[0])

    # -- lookup
    def longest_run(self, regs: np.ndarray, max_seed_hits: int = MAX_SEED_HITS,
                    frame_rate_hz: float = PAL_FRAME_RATE_HZ) -> dict:
        """The longest run of `regs` frames found verbatim in one training tune.

        Returns {frames, seconds, query_start, path, tune_offset (frame within the tune),
        shard, shard_row, windows, present_windows, seed_windows, present_stretch_frames}.
        """
        regs = np.asarray(regs)
        if regs.ndim != 2 or regs.shape[1] != NUM_REGS or regs.dtype != np.uint8:
            raise ValueError(f"novelty query: expected (N, {NUM_REGS}) uint8 frames, got {regs.shape} {regs.dtype}")
        if max_seed_hits < 1:
            raise ValueError(f"max_seed_hits must be >= 1, got {max_seed_hits}")
        regs = np.ascontiguousarray(regs)
        w = self.window_frames
        qhash = _window_hashes(regs, w)
        out = {"frames": 0, "seconds": 0.0, "query_start": -1, "path": None, "tune_offset": -1,
               "shard": None, "shard_row": -1, "windows": int(len(qhash)), "present_windows": 0,
               "seed_windows": 0, "present_stretch_frames": 0}
        if len(qhash) == 0 or len(self) == 0:
            return out
        length, q0, e, t0, n_present, n_seeds = _seed_extend(
            regs, qhash, self.hashes, self.positions, self.ent_base, self.ent_frames,
            self.ent_shard, self.ent_offset, self._shards, w, max_seed_hits)
        present = self._present(qhash)
        out.update(present_windows=int(n_present), seed_windows=int(n_seeds),
                   present_stretch_frames=_longest_true_run(present) + w - 1 if present.any() else 0)
        if length > 0:
            ent = self.entries[e]
            out.update(frames=int(length), seconds=length / frame_rate_hz, query_start=int(q0),
                       path=ent["path"], tune_offset=int(t0), shard=ent["shard"],
                       shard_row=int(ent["offset"] + t0))
        return out

    def _present(self, qhash: np.ndarray) -> np.ndarray:
        i = np.searchsorted(self.hashes, qhash)
        i = np.minimum(i, len(self.hashes) - 1)
        return self.hashes[i] == qhash


def _longest_true_run(mask: np.ndarray) -> int:
    m = np.concatenate(([False], mask, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(m))
    return int((edges[1::2] - edges[0::2]).max()) if len(edges) else 0
