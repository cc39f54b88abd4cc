"""SID register frames: the one data type every stage of sidlive passes along.

A frame is the 25 write registers $D400-$D418 as they stand at one PAL video-frame
boundary (19,656 cycles of the 985,248 Hz clock, 50.125 frames/s). A sequence is an
(N, 25) uint8 array plus metadata.

Frames are canonical: bits the SID ignores are cleared, so the same sound is always the
same frame (the pulse-width high registers $03/$0A/$11 keep their low nibble, the filter
cutoff low register $15 its low 3 bits).

File formats, chosen by extension:
  .regs  the project's binary (see `save_regs`): magic b"SLRG", u16 version, u16 flags,
         u32 n_frames, u32 meta_len, meta_len bytes of UTF-8 JSON metadata, then
         n_frames * 25 register bytes. Little-endian.
  .txt   SID-GPT's text format: one frame per line as 50 uppercase hex characters
         ($D400 ... $D418 in order), `<end>` on the last line.
"""
from __future__ import annotations

import dataclasses
import json
import math
import struct
from pathlib import Path

import numpy as np

NUM_REGS = 25
PAL_CLOCK_HZ = 985_248
NTSC_CLOCK_HZ = 1_022_727
PAL_FRAME_CYCLES = 19_656  # 312 lines x 63 cycles
NTSC_FRAME_CYCLES = 17_095  # 263 lines x 65 cycles
PAL_FRAME_RATE_HZ = PAL_CLOCK_HZ / PAL_FRAME_CYCLES  # 50.1245...

def frame_sample_boundary(k: int, rate_hz: int, cycles_per_frame: int = PAL_FRAME_CYCLES,
                          clock_hz: int = PAL_CLOCK_HZ) -> int:
    """Output samples spanned by frames 0..k-1: floor(k * cycles * rate / clock), exact."""
    return (k * cycles_per_frame * rate_hz) // clock_hz


def note_to_freq_reg(note, clock_hz: float = PAL_CLOCK_HZ):
    """SID frequency register value (0..65535) of a MIDI note number (69 = A4 = 440 Hz),
    equal-tempered, rounded; a scalar gives an int, an array an int64 array."""
    f_hz = 440.0 * 2.0 ** ((np.asarray(note, np.float64) - 69.0) / 12.0)
    reg = np.clip(np.rint(f_hz * (1 << 24) / clock_hz), 0, 0xFFFF).astype(np.int64)
    return int(reg) if reg.ndim == 0 else reg


def freq_reg_to_note(freq_reg: int, clock_hz: float = PAL_CLOCK_HZ) -> float:
    """The (fractional) MIDI note number a SID frequency register value plays; -inf for 0."""
    if freq_reg <= 0:
        return float("-inf")
    return 69.0 + 12.0 * math.log2(freq_reg * clock_hz / (1 << 24) / 440.0)


# Register offsets within $D400.
REG_NAMES = (
    "v1_freq_lo", "v1_freq_hi", "v1_pw_lo", "v1_pw_hi", "v1_ctrl", "v1_ad", "v1_sr",
    "v2_freq_lo", "v2_freq_hi", "v2_pw_lo", "v2_pw_hi", "v2_ctrl", "v2_ad", "v2_sr",
    "v3_freq_lo", "v3_freq_hi", "v3_pw_lo", "v3_pw_hi", "v3_ctrl", "v3_ad", "v3_sr",
    "fc_lo", "fc_hi", "res_filt", "mode_vol",
)
CONTROL_REGS = (0x04, 0x0B, 0x12)

# The order in which a frame's registers are written to a SID (renderer, .sid export
# player, ASID): every register in ascending order except the three voice control
# registers, which go last so a gate change lands after pitch, pulse width and ADSR.
# This is also ASID's register-id order (ids 0-21, then 22-24).
WRITE_ORDER = tuple(r for r in range(NUM_REGS) if r not in CONTROL_REGS) + CONTROL_REGS

# Bits the SID uses in each register; the rest are cleared by `canonicalize`.
CANON_MASK = np.full(NUM_REGS, 0xFF, dtype=np.uint8)
CANON_MASK[[0x03, 0x0A, 0x11]] = 0x0F
CANON_MASK[0x15] = 0x07

REGS_MAGIC = b"SLRG"
REGS_VERSION = 1
_REGS_HEADER = struct.Struct("<4sHHII")  # magic, version, flags, n_frames, meta_len

CLOCKS = ("PAL", "NTSC")
CHIPS = ("6581", "8580")


def check_regs(regs, what: str = "frames") -> np.ndarray:
    """`regs` as a C-contiguous (N, 25) uint8 array; ValueError naming `what` otherwise."""
    regs = np.asarray(regs)
    if regs.ndim != 2 or regs.shape[1] != NUM_REGS:
        raise ValueError(f"{what}: expected shape (N, {NUM_REGS}) register frames, got {regs.shape}")
    if regs.dtype != np.uint8:
        raise ValueError(f"{what}: expected dtype uint8 register frames, got {regs.dtype}")
    return np.ascontiguousarray(regs)


class FramesFormatError(ValueError):
    """A frames file is malformed; the message names the file, where, and what was expected."""


@dataclasses.dataclass
class Frames:
    """A register-frame sequence with its metadata."""

    regs: np.ndarray  # (N, 25) uint8, canonical
    clock: str = "PAL"
    chip: str = "6581"
    frame_rate_hz: float = PAL_FRAME_RATE_HZ
    title: str = ""
    author: str = ""
    source: str = ""
    extra: dict = dataclasses.field(default_factory=dict)  # e.g. speed, subtune, md5

    def __post_init__(self) -> None:
        regs = np.asarray(self.regs)
        if regs.ndim != 2 or regs.shape[1] != NUM_REGS:
            raise ValueError(f"regs must have shape (N, {NUM_REGS}), got {regs.shape}")
        if regs.dtype != np.uint8:
            if regs.size and (regs.min() < 0 or regs.max() > 255):
                raise ValueError("regs values must be in 0..255")
            regs = regs.astype(np.uint8)
        self.regs = canonicalize(regs)
        problem = meta_problem(self.meta())
        if problem is not None:
            raise ValueError(f"{problem[0]}: {problem[1]}")
        self.frame_rate_hz = float(self.frame_rate_hz)

    def __len__(self) -> int:
        return int(self.regs.shape[0])

    @property
    def seconds(self) -> float:
        """Length in seconds at frame_rate_hz."""
        return len(self) / self.frame_rate_hz

    def meta(self) -> dict:
        """The metadata a .regs file stores as JSON (clock, chip, rate, text fields, extra)."""
        return {
            "clock": self.clock, "chip": self.chip, "frame_rate_hz": self.frame_rate_hz,
            "title": self.title, "author": self.author, "source": self.source,
            "extra": self.extra,
        }

    def slice(self, start: int, stop: int) -> "Frames":
        """Frames start..stop as a new Frames (copied regs and extra, same metadata)."""
        return dataclasses.replace(self, regs=self.regs[start:stop].copy(), extra=dict(self.extra))


def canonicalize(regs: np.ndarray) -> np.ndarray:
    """Clear the bits the SID ignores. Returns a new (N, 25) uint8 array."""
    regs = np.asarray(regs, dtype=np.uint8)
    return regs & CANON_MASK


# ---------------------------------------------------------------------------- .regs

def save_regs(frames: Frames, path: str | Path) -> None:
    """Write frames as a .regs file (header, JSON metadata, raw rows)."""
    meta = json.dumps(frames.meta(), ensure_ascii=False).encode("utf-8")
    header = _REGS_HEADER.pack(REGS_MAGIC, REGS_VERSION, 0, len(frames), len(meta))
    data = np.ascontiguousarray(frames.regs, dtype=np.uint8).tobytes()
    Path(path).write_bytes(header + meta + data)


def load_regs(path: str | Path) -> Frames:
    """Read a .regs file; FramesFormatError names the offset or field that is wrong."""
    path = Path(path)
    blob = path.read_bytes()
    if len(blob) < _REGS_HEADER.size:
        raise FramesFormatError(
            f"{path}: file is {len(blob)} bytes, shorter than the {_REGS_HEADER.size}-byte .regs header")
    magic, version, _flags, n, meta_len = _REGS_HEADER.unpack_from(blob, 0)
    if magic != REGS_MAGIC:
        raise FramesFormatError(f"{path}: offset 0: magic is {magic!r}, expected {REGS_MAGIC!r} (.regs file)")
    if version != REGS_VERSION:
        raise FramesFormatError(f"{path}: offset 4: version is {version}, this build reads version {REGS_VERSION}")
    off = _REGS_HEADER.size
    expected = off + meta_len + n * NUM_REGS
    if len(blob) != expected:
        raise FramesFormatError(
            f"{path}: size is {len(blob)} bytes, expected {expected} "
            f"(header {off} + metadata {meta_len} + {n} frames x {NUM_REGS})")
    try:
        meta = json.loads(blob[off:off + meta_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FramesFormatError(f"{path}: offset {off}: metadata is not UTF-8 JSON ({e})") from None
    except RecursionError:
        raise FramesFormatError(f"{path}: offset {off}: metadata nests JSON arrays and objects too deeply "
                                f"(allowed {MAX_META_DEPTH} levels)") from None
    regs = np.frombuffer(blob, dtype=np.uint8, count=n * NUM_REGS, offset=off + meta_len)
    return Frames(regs=regs.reshape(n, NUM_REGS).copy(), **_known_meta(path, meta))


META_FIELDS = ("clock", "chip", "frame_rate_hz", "title", "author", "source", "extra")
MAX_META_DEPTH = 32   # JSON nesting allowed in a metadata field (extra holds small records)


def meta_problem(meta: dict) -> tuple[str, str] | None:
    """(field, what is wrong) for the first metadata field in `meta` with the wrong type or
    range, or None when every field present is right (missing fields take their defaults)."""
    if "frame_rate_hz" in meta:
        rate = meta["frame_rate_hz"]
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)) \
                or not 1.0 <= float(rate) <= 1000.0:
            return "frame_rate_hz", f"{rate!r} is not a number in 1..1000"
    for name, allowed in (("clock", CLOCKS), ("chip", CHIPS)):
        if name in meta and (not isinstance(meta[name], str) or meta[name] not in allowed):
            return name, f"{meta[name]!r} is not one of {', '.join(allowed)}"
    for name in ("title", "author", "source"):
        if name in meta and not isinstance(meta[name], str):
            return name, f"{meta[name]!r} is not a string"
    if "extra" in meta and not isinstance(meta["extra"], dict):
        return "extra", f"{meta['extra']!r} is not a JSON object"
    return None


def json_depth(value, limit: int = MAX_META_DEPTH) -> int:
    """How deep JSON arrays and objects nest in value (0 for a scalar), counted without
    recursion and only as far as limit + 1."""
    deepest, todo = 0, [(value, 0)]
    while todo:
        v, d = todo.pop()
        if isinstance(v, (dict, list)) and deepest <= limit:
            deepest = max(deepest, d + 1)
            todo.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def _known_meta(path: Path, meta) -> dict:
    """The metadata as Frames keywords; FramesFormatError naming the file and the field otherwise."""
    if not isinstance(meta, dict):
        raise FramesFormatError(f"{path}: metadata is a JSON {type(meta).__name__}, expected a JSON object")
    unknown = set(meta) - set(META_FIELDS)
    if unknown:
        raise FramesFormatError(f"{path}: metadata: unknown keys {sorted(unknown)}; allowed {list(META_FIELDS)}")
    problem = meta_problem(meta)
    if problem is not None:
        raise FramesFormatError(f"{path}: metadata field {problem[0]!r}: {problem[1]}")
    for key, value in meta.items():
        if json_depth(value) > MAX_META_DEPTH:
            raise FramesFormatError(f"{path}: metadata field {key!r}: nests more than {MAX_META_DEPTH} levels "
                                    f"of JSON arrays and objects")
    return dict(meta)


# ---------------------------------------------------------------------------- .txt

TXT_END = "<end>"
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def save_txt(frames: Frames, path: str | Path) -> None:
    """Write frames as a .txt file: one line of 25 hex bytes per frame, then the end marker."""
    lines = ["".join(f"{b:02X}" for b in row) for row in frames.regs]
    lines.append(TXT_END)
    Path(path).write_text("\n".join(lines) + "\n", encoding="ascii")


def load_txt(path: str | Path) -> Frames:
    """Read SID-GPT's text format. Blank lines are skipped; `<end>` ends the song."""
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError as e:
        raise FramesFormatError(f"{path}: byte offset {e.start}: not ASCII; expected 50 hex characters per line") from None
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if not s:
            continue
        if s == TXT_END:
            break
        if len(s) != 2 * NUM_REGS:
            raise FramesFormatError(
                f"{path}: line {lineno}: {len(s)} characters, expected {2 * NUM_REGS} hex characters or {TXT_END}")
        bad = next((i for i, c in enumerate(s) if c not in _HEX_DIGITS), None)
        if bad is not None:
            col = len(line) - len(line.lstrip()) + bad + 1
            raise FramesFormatError(f"{path}: line {lineno}, column {col}: {s[bad]!r} is not a hex digit")
        rows.append(bytes.fromhex(s))
    regs = np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(-1, NUM_REGS)
    return Frames(regs=regs.copy(), source=str(path))


# ---------------------------------------------------------------------------- dispatch

def load(path: str | Path) -> Frames:
    """Load a frames file by extension (.regs or .txt)."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext == ".regs":
        return load_regs(path)
    if ext == ".txt":
        return load_txt(path)
    raise FramesFormatError(f"{path}: unknown frames extension {ext!r}; expected .regs or .txt")


def save(frames: Frames, path: str | Path) -> None:
    """Write frames as .regs or .txt by the path's extension; FramesFormatError for any other."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext == ".regs":
        save_regs(frames, path)
    elif ext == ".txt":
        save_txt(frames, path)
    else:
        raise FramesFormatError(f"{path}: unknown frames extension {ext!r}; expected .regs or .txt")
