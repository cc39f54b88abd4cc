"""Any tune or frames file to register frames, in one place: a .sid (dumped on the 6510
emulator), a GoatTracker .sng (played by pygoattracker) or a frames file (.regs, .txt)."""
from __future__ import annotations

from pathlib import Path

from sidlive.c64.dump import DumpError, dump_tune
from sidlive.c64.goattracker import goattracker_frames
from sidlive.frames import TXT_END, Frames, FramesFormatError, load

TUNE_EXTS = (".sid", ".sng")
FRAMES_EXTS = (".regs", ".txt")
INPUT_EXTS = TUNE_EXTS + FRAMES_EXTS


def load_tune(path: str | Path, seconds: float | None = None, subtune: int | None = None) -> Frames:
    """The frames of `path`, at most `seconds` of them (a .sid without `seconds`: its
    Songlengths entry, else the dumper's default); `subtune` (1-based) for .sid and .sng.
    A .sid whose dump did not run to the end (status other than ok) raises DumpError, a
    frames file without frames FramesFormatError."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in INPUT_EXTS:
        raise ValueError(f"{path}: extension {ext!r} is not one of {', '.join(INPUT_EXTS)}")
    if seconds is not None and not seconds > 0:
        raise ValueError(f"seconds must be > 0; got {seconds!r}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if ext == ".sid":
        frames = dump_tune(path, subtune=subtune, seconds=seconds)
        x = frames.extra
        if x["status"] != "ok":   # the frames stop where the tune stopped keeping time
            raise DumpError(f"{path}: subtune {x['subtune']}: {x['status']}: {x['message']}; "
                            f"`sidlive dump` keeps the {len(frames)} frames made before it")
        return frames
    if ext == ".sng":
        return goattracker_frames(path, seconds, subtune=(subtune or 1) - 1)
    if subtune is not None:
        raise ValueError(f"{path}: --subtune applies to .sid and .sng input only")
    frames = load(path)
    if len(frames) == 0:   # every reader of load_tune needs music: rendering or scoring nothing is no answer
        raise FramesFormatError(f"{path}: no frames (an empty file, or {TXT_END} before the first frame)")
    return frames if seconds is None else frames.slice(0, max(1, int(round(seconds * frames.frame_rate_hz))))
