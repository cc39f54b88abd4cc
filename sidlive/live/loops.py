"""Prompt loops: short frame files that steer the live daemon, and `sidlive loop` to cut them.

A loop is a .regs file of 2-16 s (presets/loops/*.regs; .txt is read too) whose metadata
says what it is: the title is the loop's name, `source`/`author` where it came from, and
`extra["loop"]` = {"name", "source", "start_s", "seconds", "tempo_bpm" (or null: unknown),
"license"}. Modes (the `loop_mode` control):
  prime          the loop replaces the model's context, then the model improvises;
  call_response  the loop plays verbatim for its length, the model answers for as long,
                 and again (`Arrangement` says what plays at each ring position).
Capture (`capture_loop`) saves the last N seconds played as a new loop at once.

    sidlive loop TUNE.sid --start 1:02 --seconds 4 -o presets/loops/NAME.regs
    sidlive loop SONG.sng|FRAMES.regs|FRAMES.txt --start 0:08 --seconds 4 -o OUT.regs

A garbled loop raises LoopError naming the file and the line, offset or field; the
library keeps the version it had before (hot reload: `LoopLibrary.refresh`).
"""
from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path

import numpy as np

from sidlive.frames import PAL_FRAME_RATE_HZ, Frames, FramesFormatError, load, save_regs
from sidlive.c64.load import TUNE_EXTS, load_tune

MIN_SECONDS, MAX_SECONDS = 2.0, 16.0
TEMPO_RANGE_BPM = (20.0, 400.0)
LOOP_EXTS = (".regs", ".txt")
INPUT_EXTS = (".sid", ".sng", ".regs", ".txt")
MODES = ("prime", "call_response")


class LoopError(ValueError):
    """A loop file or request is invalid; the message names the file and the field/line."""


@dataclasses.dataclass(frozen=True)
class Loop:
    """A loaded prompt loop: name, file, frames, where it came from and its tempo if known."""
    name: str
    path: Path
    frames: Frames
    source: str = ""
    tempo_bpm: float | None = None

    @property
    def regs(self) -> np.ndarray:
        """The loop's (N, 25) uint8 frames."""
        return self.frames.regs  # (N, 25) uint8

    @property
    def seconds(self) -> float:
        """The loop's length in seconds."""
        return self.frames.seconds


def frame_limits(frame_rate_hz: float = PAL_FRAME_RATE_HZ) -> tuple[int, int]:
    """(min, max) frames of a loop at this frame rate."""
    return int(round(MIN_SECONDS * frame_rate_hz)), int(round(MAX_SECONDS * frame_rate_hz))


def load_loop(path: str | Path) -> Loop:
    """Read and check one loop file; LoopError names the file and what is wrong."""
    path = Path(path)
    if path.suffix.lower() not in LOOP_EXTS:
        raise LoopError(f"{path}: extension {path.suffix!r} is not a loop; allowed {', '.join(LOOP_EXTS)}")
    try:
        frames = load(path)
    except FramesFormatError as e:
        raise LoopError(str(e)) from None
    except OSError as e:
        raise LoopError(f"{path}: cannot read ({e.strerror or e})") from None
    return check_loop(frames, path)


def check_loop(frames: Frames, path: Path) -> Loop:
    """The Loop for frames (as loaded from / to be saved to path), or LoopError."""
    lo, hi = frame_limits(frames.frame_rate_hz)
    if not lo <= len(frames) <= hi:
        raise LoopError(f"{path}: {len(frames)} frames ({frames.seconds:.2f} s); a loop holds "
                        f"{lo}..{hi} frames ({MIN_SECONDS:g}..{MAX_SECONDS:g} s)")
    meta = frames.extra.get("loop", {})
    if not isinstance(meta, dict):
        raise LoopError(f"{path}: field extra.loop must be a JSON object, got {type(meta).__name__}")
    name = meta.get("name", frames.title or path.stem)
    if not isinstance(name, str) or not name.strip() or len(name) > 64:
        raise LoopError(f"{path}: field extra.loop.name must be a non-empty string of at most 64 characters, "
                        f"got {name!r}")
    tempo = meta.get("tempo_bpm")
    if tempo is not None and (isinstance(tempo, bool) or not isinstance(tempo, (int, float))
                              or not TEMPO_RANGE_BPM[0] <= tempo <= TEMPO_RANGE_BPM[1]):
        raise LoopError(f"{path}: field extra.loop.tempo_bpm is {tempo!r}; allowed "
                        f"{TEMPO_RANGE_BPM[0]:g}..{TEMPO_RANGE_BPM[1]:g} or null (unknown)")
    source = meta.get("source", frames.source)
    if not isinstance(source, str):
        raise LoopError(f"{path}: field extra.loop.source must be a string, got {source!r}")
    return Loop(name=name.strip(), path=path, frames=frames, source=source,
                tempo_bpm=None if tempo is None else float(tempo))


def make_loop_frames(regs: np.ndarray, name: str, *, source: str, author: str = "", chip: str = "6581",
                     start_s: float | None = None, tempo_bpm: float | None = None,
                     license: str = "", clock: str = "PAL", frame_rate_hz: float = PAL_FRAME_RATE_HZ) -> Frames:
    """Frames for a loop file: the regs with the loop's metadata (title = name, extra["loop"])."""
    loop_meta = {"name": name, "source": source, "start_s": start_s,
                 "seconds": round(len(regs) / frame_rate_hz, 3), "tempo_bpm": tempo_bpm, "license": license}
    return Frames(regs=regs, clock=clock, chip=chip, frame_rate_hz=frame_rate_hz, title=name, author=author,
                  source=source, extra={"loop": loop_meta})


def save_loop(frames: Frames, path: str | Path) -> Loop:
    """Write a loop (.regs), then read it back through load_loop (never save what won't load)."""
    path = Path(path)
    if path.suffix.lower() != ".regs":
        raise LoopError(f"{path}: loops are written as .regs")
    check_loop(frames, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")   # not a loop extension: a reload never sees it half-written
    save_regs(frames, tmp)
    tmp.replace(path)
    return load_loop(path)


def capture(regs: np.ndarray, loops_dir: str | Path, *, chip: str = "6581", name: str | None = None) -> Loop:
    """Save played frames (N, 25) as a new loop in loops_dir, named capture-<time>."""
    lo, hi = frame_limits()
    if len(regs) < lo:
        raise LoopError(f"capture: only {len(regs)} frames played so far; a loop needs {lo} ({MIN_SECONDS:g} s)")
    regs = regs[-hi:]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = name or f"capture-{stamp}"
    d = Path(loops_dir)
    path = d / f"{name}.regs"
    n = 2
    while path.exists():
        path = d / f"{name}-{n}.regs"
        n += 1
    return save_loop(make_loop_frames(regs, path.stem, source="sidlive live capture", chip=chip), path)


class LoopLibrary:
    """The loops in one or more folders (each sorted by file name, the folders in order),
    reloaded when a folder changes.

    `refresh()` rescans when a file was added, removed or modified; a file that fails to
    load keeps its previous good version (if any) and its error goes to `errors`."""

    def __init__(self, folder):
        folders = [] if folder is None else [folder] if isinstance(folder, (str, Path)) else list(folder)
        self.folders = [Path(f) for f in folders]
        self.loops: list[Loop] = []
        self.errors: list[str] = []
        self.version = 0
        self._signature = None
        self._by_path: dict[Path, Loop] = {}
        self.refresh()

    def _scan(self) -> tuple:
        out = []
        for folder in self.folders:
            if not folder.is_dir():
                continue
            for p in sorted(folder.iterdir()):
                if p.suffix.lower() in LOOP_EXTS and p.is_file():
                    st = p.stat()
                    out.append((p, st.st_mtime_ns, st.st_size))
        return tuple(out)

    def refresh(self, force: bool = False) -> list[str]:
        """Rescan if anything changed (force: reload every file); returns the new errors
        (empty when nothing changed)."""
        sig = self._scan()
        if sig == self._signature and not force:
            return []
        old_sig = {} if force else {p: (m, s) for p, m, s in (self._signature or ())}
        self._signature = sig
        errors, by_path = [], {}
        for p, mtime, size in sig:
            if p in self._by_path and old_sig.get(p) == (mtime, size):
                by_path[p] = self._by_path[p]
                continue
            try:
                by_path[p] = load_loop(p)
            except LoopError as e:
                errors.append(str(e) + (" (keeping the previous version)" if p in self._by_path else ""))
                if p in self._by_path:
                    by_path[p] = self._by_path[p]
        self._by_path = by_path
        self.loops = [by_path[p] for p, _, _ in sig if p in by_path]
        self.errors = errors
        self.version += 1
        return errors

    def get(self, index: int) -> Loop | None:
        """The loop at that index, or None when out of range."""
        return self.loops[index] if 0 <= index < len(self.loops) else None

    def index_of(self, name: str) -> int:
        """Index of the loop with that name, file stem or file name; LoopError listing what there is."""
        for i, lp in enumerate(self.loops):
            if name in (lp.name, lp.path.stem, lp.path.name):
                return i
        raise LoopError(f"no loop named {name!r} in {', '.join(map(str, self.folders)) or 'no folder'}; "
                        f"available: {', '.join(lp.path.stem for lp in self.loops) or 'none'}")


class Arrangement:
    """What plays at each ring position: the model (None) or a loop frame (call_response).

    In call_response, the cycle starts at `start_pos`: positions start_pos + k*2L .. +L-1
    play the loop verbatim, the next L positions are the model's answer. The mapping is
    a pure function of the position, so a rollback regenerates the same arrangement."""

    def __init__(self):
        self.loop: Loop | None = None
        self.mode = "prime"
        self.start_pos = 0

    def set(self, loop: Loop | None, mode: str, start_pos: int) -> None:
        """Play loop (None: the model alone) in mode, with the cycle starting at ring position start_pos."""
        if mode not in MODES:
            raise LoopError(f"loop mode {mode!r} is not one of {', '.join(MODES)}")
        self.loop, self.mode, self.start_pos = loop, mode, int(start_pos)

    def frame_for(self, pos: int) -> np.ndarray | None:
        """The loop frame that plays at ring position pos, or None where the model plays."""
        lp = self.loop
        if lp is None or self.mode != "call_response" or pos < self.start_pos:
            return None
        n = len(lp.regs)
        phase = (pos - self.start_pos) % (2 * n)
        return lp.regs[phase] if phase < n else None

    def phase(self, pos: int) -> str:
        """What plays at pos, for the view: free, improvise, call or response."""
        if self.loop is None:
            return "free"
        if self.mode == "prime":
            return "improvise"
        return "call" if self.frame_for(pos) is not None else "response"


# ---------------------------------------------------------------------------- cutting

def parse_time(text: str) -> float:
    """'1:02' -> 62.0, '1:02.5' -> 62.5, '62' -> 62.0, '0:00:08' -> 8.0."""
    m = re.fullmatch(r"\s*(?:(\d+):)?(?:(\d+):)?(\d+(?:\.\d*)?)\s*", str(text))
    if not m:
        raise LoopError(f"time {text!r}: expected seconds or [h:]m:ss(.s), e.g. 1:02")
    a, b, sec = m.groups()
    if b is None:
        h, mins = 0, int(a or 0)
    else:
        h, mins = int(a), int(b)
    s = float(sec)
    if (a is not None) and s >= 60:
        raise LoopError(f"time {text!r}: seconds must be < 60 after a colon")
    return h * 3600 + mins * 60 + s


def cut_loop(src: str | Path, start_s: float, seconds: float, *, subtune: int | None = None) -> Frames:
    """Frames [start_s, start_s + seconds) of a .sid (dumped), .sng (GoatTracker) or frames file."""
    src = Path(src)
    ext = src.suffix.lower()
    if ext not in INPUT_EXTS:
        raise LoopError(f"{src}: input extension {ext!r} is not one of {', '.join(INPUT_EXTS)}")
    if not src.is_file():
        raise LoopError(f"{src}: no such file")
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise LoopError(f"--seconds {seconds:g}: a loop is {MIN_SECONDS:g}..{MAX_SECONDS:g} s")
    if start_s < 0:
        raise LoopError(f"--start {start_s:g}: must be >= 0")
    end_s = start_s + seconds
    try:
        tune = ext in TUNE_EXTS
        frames = load_tune(src, seconds=end_s + 0.1 if tune else None, subtune=subtune if tune else None)
    except FramesFormatError as e:
        raise LoopError(str(e)) from None
    a = int(round(start_s * frames.frame_rate_hz))
    n = int(round(seconds * frames.frame_rate_hz))
    if a + n > len(frames):
        raise LoopError(f"{src}: {start_s:g} s + {seconds:g} s runs past the end ({frames.seconds:.2f} s, "
                        f"{len(frames)} frames)")
    return frames.slice(a, a + n)


def cut_to_file(src, out, start_s: float, seconds: float, *, subtune=None, name=None,
                tempo_bpm=None, license: str = "") -> Loop:
    """Cut seconds from start_s of a tune or frames file and save it as a loop at out."""
    piece = cut_loop(src, start_s, seconds, subtune=subtune)
    out = Path(out)
    name = name or out.stem
    lic = license or piece.extra.get("license", "")
    frames = make_loop_frames(piece.regs, name, source=f"{Path(src).name} @ {start_s:g} s", author=piece.author,
                              chip=piece.chip, start_s=start_s, tempo_bpm=tempo_bpm, license=lic,
                              clock=piece.clock, frame_rate_hz=piece.frame_rate_hz)
    return save_loop(frames, out)
