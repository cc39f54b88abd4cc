"""Training data: the dump's index + shards, a split by tune, composers, windows, augmentation.

DATA_DIR/index.jsonl has one JSON object per (tune, subtune) with at least "md5",
"subtune", "author", "status", "frames", "shard" ("shards/NAME.npy" or null), "offset";
DATA_DIR/shards/*.npy are (rows, 25) uint8 arrays of tunes concatenated. Entries with
status "ok", a shard and frames >= 1 are used.

Each tune is seen as [all-zero frame] + its frames (the SID after reset), so a window that
starts at a tune's beginning teaches how tunes start from silence, and generation without a
prompt starts from an all-zero frame. Windows are (T+1) frames: inputs 0..T-1 predict 1..T;
a tune shorter than the window is zero-padded and the padded targets are masked out.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from engine.config import ANY_COMPOSER, normalize_composer
from engine.candidates import NUM_SOURCES, tune_matches, window_candidates
from engine.matches import NUM_GROUPS
from sidlive.frames import NUM_REGS, note_to_freq_reg
from engine.silence import first_sound_frame

VOICE_REGS = 7
RES_FILT, MODE_VOL = 0x17, 0x18
FREQ_LO = (0x00, 0x07, 0x0E)
VOICE3_OFF = 0x80  # $D418 bit 7


class DatasetError(ValueError):
    """The dataset on disk is malformed; the message names the file, line and field."""


@dataclasses.dataclass(frozen=True)
class Tune:
    """One usable (tune, subtune) of the index: md5, subtune, composer key, shard, offset, frames, title."""
    md5: str
    subtune: int
    composer: str
    shard: str
    offset: int
    frames: int
    title: str = ""


class IndexMissing(DatasetError, FileNotFoundError):
    """DATA_DIR/index.jsonl does not exist."""


def index_entries(data_dir: str | Path, required: tuple = ()) -> list[dict]:
    """Usable entries of DATA_DIR/index.jsonl as dicts (status "ok", a shard, >= 1 frame).

    md5/frames/offset/shard are checked, plus any `required` (key, type) pairs; each entry
    gets "_line", its line number. Errors name the file, the line and the field.
    """
    path = Path(data_dir) / "index.jsonl"
    if not path.is_file():
        raise IndexMissing(f"{path}: missing (expected the dump's index.jsonl in {data_dir})")
    checks = (("md5", str), ("frames", int), ("offset", int), ("shard", str)) + tuple(required)
    entries = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                e = json.loads(line)
            except json.JSONDecodeError as err:
                raise DatasetError(f"{path}: line {lineno}: not JSON ({err})") from None
            if not isinstance(e, dict):
                raise DatasetError(f"{path}: line {lineno}: expected a JSON object")
            if e.get("status") != "ok" or not e.get("shard"):
                continue
            for key, typ in checks:
                if not isinstance(e.get(key), typ) or isinstance(e.get(key), bool):
                    raise DatasetError(f"{path}: line {lineno}: field {key!r} is {e.get(key)!r}, expected {typ.__name__}")
            if e["frames"] < 0 or e["offset"] < 0:
                raise DatasetError(f"{path}: line {lineno}: fields 'frames'/'offset' must be >= 0, "
                                   f"got {e['frames']}/{e['offset']}")
            if e["frames"] == 0:
                continue
            e["_line"] = lineno
            entries.append(e)
    return entries


def load_index(data_dir: str | Path) -> list[Tune]:
    """Usable tunes of DATA_DIR/index.jsonl (status "ok", with a shard and >= 1 frame)."""
    return [Tune(md5=e["md5"], subtune=int(e.get("subtune") or 0), composer=normalize_composer(e.get("author")),
                 shard=e["shard"], offset=e["offset"], frames=e["frames"], title=str(e.get("title") or ""))
            for e in index_entries(data_dir)]


class FrameStore:
    """Memory-maps shards on first use and checks each tune lies inside its shard."""

    def __init__(self, data_dir: str | Path):
        self.data_dir = Path(data_dir)
        self._shards: dict[str, np.ndarray] = {}

    def shard(self, name: str) -> np.ndarray:
        """The named shard, memory-mapped on first use; DatasetError unless it is uint8 (rows, 25)."""
        if name not in self._shards:
            path = self.data_dir / name
            try:
                arr = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as e:
                raise DatasetError(f"{path}: cannot load shard ({e})") from None
            if arr.dtype != np.uint8 or arr.ndim != 2 or arr.shape[1] != NUM_REGS:
                raise DatasetError(f"{path}: shard is {arr.dtype} {arr.shape}, expected uint8 (rows, {NUM_REGS})")
            self._shards[name] = arr
        return self._shards[name]

    def frames(self, tune: Tune) -> np.ndarray:
        """The tune's frames (n, 25) uint8 (a view into the mmap)."""
        arr = self.shard(tune.shard)
        if tune.offset + tune.frames > len(arr):
            raise DatasetError(f"{self.data_dir / tune.shard}: tune {tune.md5} subtune {tune.subtune}: "
                               f"offset {tune.offset} + frames {tune.frames} exceeds the shard's {len(arr)} rows")
        return arr[tune.offset:tune.offset + tune.frames]


def is_validation(md5: str, val_permille: int, seed: int) -> bool:
    """A tune (all its subtunes) is held back iff sha256(f"{seed}:{md5}") mod 1000 < val_permille."""
    h = int.from_bytes(hashlib.sha256(f"{seed}:{md5.lower()}".encode()).digest()[:8], "little")
    return h % 1000 < val_permille


def split(tunes: list[Tune], val_permille: int, seed: int) -> tuple[list[Tune], list[Tune]]:
    """(training tunes, validation tunes): held back by md5 hash, val_permille per 1000."""
    train = [t for t in tunes if not is_validation(t.md5, val_permille, seed)]
    val = [t for t in tunes if is_validation(t.md5, val_permille, seed)]
    return train, val


def top_composers(tunes: list[Tune], n: int) -> tuple[str, ...]:
    """("any", then the n composers with most frames; ties by name)."""
    total: dict[str, int] = {}
    for t in tunes:
        if t.composer != ANY_COMPOSER:
            total[t.composer] = total.get(t.composer, 0) + t.frames
    ranked = sorted(total, key=lambda c: (-total[c], c))[:n]
    return (ANY_COMPOSER, *ranked)


# ---------------------------------------------------------------------------- augmentation

def rotate_voices(win: np.ndarray, k: int) -> np.ndarray:
    """Move voice v to voice (v+k) mod 3 (registers and $D417 filter-routing bits 0-2).

    Sync and ring modulation take voice v-1 (cyclically) as their source, so a cyclic
    rotation keeps them right. Callers must not rotate a window that sets $D418 bit 7
    (voice 3 off), which is tied to voice 3 itself.
    """
    k %= 3
    if k == 0:
        return win
    out = win.copy()
    for v in range(3):
        dst = (v + k) % 3
        out[:, dst * VOICE_REGS:(dst + 1) * VOICE_REGS] = win[:, v * VOICE_REGS:(v + 1) * VOICE_REGS]
    filt = win[:, RES_FILT]
    low = filt & 0x07
    rot = ((low << k) | (low >> (3 - k))) & 0x07
    out[:, RES_FILT] = (filt & 0xF8) | rot
    return out


def transpose(win: np.ndarray, semitones: int) -> np.ndarray:
    """Scale every voice's 16-bit frequency by 2^(semitones/12), rounded, clipped to 0..65535."""
    if semitones == 0:
        return win
    out = win.copy()
    ratio = 2.0 ** (semitones / 12.0)
    for lo in FREQ_LO:
        f = win[:, lo].astype(np.int64) | (win[:, lo + 1].astype(np.int64) << 8)
        f = np.clip(np.rint(f * ratio), 0, 0xFFFF).astype(np.int64)
        out[:, lo] = f & 0xFF
        out[:, lo + 1] = f >> 8
    return out


# ---------------------------------------------------------------------------- windows

@dataclasses.dataclass
class Batch:
    """A training batch: windows of T+1 frames, the target mask and the composer indices; for
    pointer models also the targets' candidates (vals, valid, bucket (B, T, 8, 25), group buckets (B, T, 9))."""
    frames: np.ndarray    # (B, T+1, 25) uint8
    mask: np.ndarray      # (B, T) bool: target frame t+1 is real
    composer: np.ndarray  # (B,) int64 composer index
    cand: tuple | None = None   # (vals, valid, bucket, gbucket) uint8

    def sub(self, i: int, j: int) -> "Batch":
        """Windows i..j-1."""
        return Batch(self.frames[i:j], self.mask[i:j], self.composer[i:j],
                     None if self.cand is None else tuple(a[i:j] for a in self.cand))


class WindowSampler:
    """Windows drawn with probability proportional to tune length, then a uniform start."""

    def __init__(self, store: FrameStore, tunes: list[Tune], composers: tuple[str, ...], window_frames: int,
                 rotate: bool = False, transpose_max: int = 0, composer_dropout: float = 0.0,
                 candidates: bool = False, trim_silence: bool = False):
        if not tunes:
            raise DatasetError(f"{store.data_dir}: no usable tunes for this split")
        self.store, self.tunes, self.T = store, tunes, window_frames
        self.candidates = candidates    # also the targets' candidates (pointer models)
        self.trim = trim_silence        # tunes start at their first sound (the SID after reset, then music)
        self._lead: dict[int, int] = {}
        self.comp_index = {c: i for i, c in enumerate(composers)}
        self.rotate, self.transpose_max, self.dropout = rotate, transpose_max, composer_dropout
        self.cum = np.cumsum([t.frames for t in tunes], dtype=np.float64)

    def frames(self, tune: Tune) -> np.ndarray:
        """The tune's frames as trained on: without its leading silence when trimming."""
        src = self.store.frames(tune)
        if not self.trim:
            return src
        key = id(tune)
        if key not in self._lead:
            first = first_sound_frame(np.asarray(src))
            self._lead[key] = min(first if first is not None else 0, max(len(src) - 1, 0))
        return src[self._lead[key]:]

    def window(self, tune: Tune, start: int) -> tuple[np.ndarray, np.ndarray]:
        """Frames start..start+T of [zero frame] + tune, zero-padded; and the target mask (T,)."""
        src = self.frames(tune)
        seq_len = len(src) + 1
        win = np.zeros((self.T + 1, NUM_REGS), np.uint8)
        lo, hi = start, min(start + self.T + 1, seq_len)  # positions in the zero-prefixed sequence
        if lo == 0:
            win[1:hi] = src[0:hi - 1]
        else:
            win[0:hi - lo] = src[lo - 1:hi - 1]
        mask = np.arange(1, self.T + 1) < (hi - lo)
        return win, mask

    def window_cands(self, tune: Tune, start: int, rotate_k: int, transpose_st: int) -> tuple:
        """The candidates for the window's targets ((T, 8, 25) x3 and group buckets (T, 9)) from
        the whole tune before it, augmented as the window is; zero where there is no target."""
        src = self.frames(tune)
        hi = min(start + self.T + 1, len(src) + 1)
        seq = np.concatenate([np.zeros((1, NUM_REGS), np.uint8), src[:hi - 1]])
        seq = transpose(rotate_voices(seq, rotate_k), transpose_st)
        ptr, bucket = tune_matches(seq)
        n = hi - 1 - start                      # real targets: positions start+1 .. hi-1
        out = [np.zeros((self.T, NUM_SOURCES, NUM_REGS), np.uint8) for _ in range(3)]
        gb = np.zeros((self.T, NUM_GROUPS), np.uint8)
        if n > 0:
            for o, a in zip(out, window_candidates(seq, ptr, bucket, start, hi - 1)):
                o[:n] = a
            gb[:n] = bucket[start:hi - 1]
        return (*out, gb)

    def sample(self, rng: np.random.Generator, batch: int) -> Batch:
        """A batch of windows, with voice rotation, transposition and composer dropout as configured
        (the same draws with or without candidates)."""
        frames = np.zeros((batch, self.T + 1, NUM_REGS), np.uint8)
        mask = np.zeros((batch, self.T), bool)
        comp = np.zeros(batch, np.int64)
        cands = [np.zeros((batch, self.T, NUM_SOURCES, NUM_REGS), np.uint8) for _ in range(3)]
        gbucket = np.zeros((batch, self.T, NUM_GROUPS), np.uint8)
        for b in range(batch):
            i = int(np.searchsorted(self.cum, rng.random() * self.cum[-1], side="right"))
            tune = self.tunes[min(i, len(self.tunes) - 1)]
            n = len(self.frames(tune)) if self.trim else tune.frames   # the frames trained on
            start = int(rng.integers(0, max(0, n + 1 - (self.T + 1)) + 1))
            win, m = self.window(tune, start)
            k = st = 0
            if self.rotate:
                k = int(rng.integers(0, 3))
                if not (win[:, MODE_VOL] & VOICE3_OFF).any():
                    win = rotate_voices(win, k)
                else:
                    k = 0
            if self.transpose_max:
                st = int(rng.integers(-self.transpose_max, self.transpose_max + 1))
                win = transpose(win, st)
            frames[b], mask[b] = win, m
            if self.candidates:
                *c, gb = self.window_cands(tune, start, k, st)
                for dst, src in zip(cands, c):
                    dst[b] = src
                gbucket[b] = gb
            drop = self.dropout > 0 and rng.random() < self.dropout
            comp[b] = 0 if drop else self.comp_index.get(tune.composer, 0)
        return Batch(frames, mask, comp, (*cands, gbucket) if self.candidates else None)

    def fixed_windows(self, seed: int, n: int) -> Batch:
        """A reproducible set of n windows (no augmentation, true composers): the validation set."""
        plain = WindowSampler(self.store, self.tunes, tuple(self.comp_index), self.T, candidates=self.candidates,
                              trim_silence=self.trim)
        return plain.sample(np.random.default_rng([seed, 0xA11]), n)


# ---------------------------------------------------------------------------- synthetic data

def write_synthetic(data_dir: str | Path, n_tunes: int = 40, seed: int = 0, min_frames: int = 100,
                    max_frames: int = 1500, authors: tuple = ("Alpha", "Beta", "<?>")) -> list[dict]:
    """Write a small dataset in the dump's layout (index.jsonl + one shard) for tests and smoke runs.

    Each tune is a simple tracker-like pattern: per voice a note every `step` frames from a
    pentatonic scale (frequency from the equal-tempered PAL table), gate on then off,
    a pulse-width sweep, a fixed ADSR; a slow filter sweep; fixed volume.
    """
    out = Path(data_dir)
    (out / "shards").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows, index, offset = [], [], 0
    for i in range(n_tunes):
        n = int(rng.integers(min_frames, max_frames + 1))
        fr = np.zeros((n, NUM_REGS), np.uint8)
        step = int(rng.integers(3, 9))
        root = int(rng.integers(24, 48))
        wave = rng.choice([0x10, 0x20, 0x40, 0x80], size=3)
        for v in range(3):
            base = v * VOICE_REGS
            fr[:, base + 5] = rng.integers(0, 256)
            fr[:, base + 6] = rng.integers(0, 256)
            pw = (np.arange(n) * int(rng.integers(4, 40)) + int(rng.integers(0, 4096))) % 4096
            fr[:, base + 2], fr[:, base + 3] = pw & 0xFF, pw >> 8
            notes = root + 12 * v + rng.choice([0, 2, 4, 7, 9, 12], size=n // step + 1)
            note = np.repeat(notes, step)[:n]
            freq = note_to_freq_reg(note + 12)   # this scale's note 57 is A4
            fr[:, base], fr[:, base + 1] = freq & 0xFF, freq >> 8
            gate = (np.arange(n) % step) < max(1, step - 2)
            fr[:, base + 4] = wave[v] | gate
        fc = (np.arange(n) * 3 + int(rng.integers(0, 2048))) % 2048
        fr[:, 0x15], fr[:, 0x16] = fc & 0x07, fc >> 3
        fr[:, 0x17] = 0xF1
        fr[:, 0x18] = 0x1F
        rows.append(fr)
        md5 = hashlib.md5(f"synthetic-{seed}-{i}".encode()).hexdigest()
        index.append({"path": f"synthetic/{i}.sid", "md5": md5, "subtune": 1, "title": f"synthetic {i}",
                      "author": authors[i % len(authors)], "released": "", "clock": "PAL", "chip": "6581",
                      "speed": "vbi", "play_hz": 50, "frames": n, "status": "ok", "message": "",
                      "shard": "shards/synthetic.npy", "offset": offset})
        offset += n
    np.save(out / "shards" / "synthetic.npy", np.concatenate(rows))
    (out / "index.jsonl").write_text("".join(json.dumps(e) + "\n" for e in index), encoding="utf-8")
    return index
