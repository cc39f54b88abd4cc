"""Prompt sources: the shipped loops (and the user's), uploads (.sid dumped on the fly, one
subtune at a time; .regs/.txt frames files) and finished takes, each by a key:

    loop:<name>      a loop of the live daemon's library (presets/loops + $XDG_DATA_HOME/sidlive/loops)
    upload:<id>      an upload in the studio library (a .sid: `subtune` picks the song)
    take:<id>        a finished take

Uploads are checked before they are kept: the size (MAX_UPLOAD_BYTES; a .sid at most what a
PSID can hold), the extension, and the content (a PSID/RSID header, a frames file that
loads). A dump that fails (init never returns, RSID, a jam) says so with the upload's name.
"""
from __future__ import annotations

import collections
import tempfile
import threading
from pathlib import Path

from sidlive.c64.dump import MAX_SECONDS, DumpError, dump_tune
from sidlive.c64.psid import V2_HEADER_BYTES, PsidFormatError, UnsupportedTune, parse_psid
from sidlive.frames import Frames, FramesFormatError, load, load_regs
from sidlive.live.loops import LoopLibrary
from sidlive.paths import LOOPS_DIR, user_loops_dir
from sidlive.studio.library import Library, NotFound, save_regs_atomic

UPLOAD_EXTS = (".sid", ".regs", ".txt")
MAX_UPLOAD_BYTES = 8 << 20
MAX_SID_BYTES = V2_HEADER_BYTES + 2 + 0x10000          # header, load address, all of C64 memory
MAX_SOURCE_S = 600.0                                    # the longest source the studio dumps or shows
CACHE_SOURCES = 8


class SourceError(ValueError):
    """An upload or a source request is invalid; the message names the file and what is wrong."""


class UploadTooLarge(SourceError):
    """An upload is over the size limit."""


def upload_ext(name: str) -> str:
    """The lower-case extension of an upload's name, or SourceError listing the allowed ones."""
    ext = Path(name).suffix.lower()
    if ext not in UPLOAD_EXTS:
        raise SourceError(f"{name}: extension {ext or '(none)'!r} is not one the studio reads; allowed "
                          f"{', '.join(UPLOAD_EXTS)}")
    return ext


def size_limit(name: str) -> int:
    """The most bytes an upload of that name may have."""
    return MAX_SID_BYTES if upload_ext(name) == ".sid" else MAX_UPLOAD_BYTES


def check_size(name: str, size: int) -> None:
    """UploadTooLarge when `size` bytes is over the limit for the upload's kind."""
    limit = size_limit(name)
    if size > limit:
        what = "a .sid (a PSID holds at most 64 KiB of C64 memory)" if limit == MAX_SID_BYTES else "an upload"
        raise UploadTooLarge(f"{name}: {size:,} bytes is over the limit for {what}: {limit:,} bytes")


def inspect_upload(name: str, data: bytes) -> dict:
    """What an upload is (kind, songs, start song, title, author, released), or SourceError saying why not."""
    ext = upload_ext(name)
    check_size(name, len(data))
    if ext == ".sid":
        try:
            tune = parse_psid(data, name)
            tune.require_supported()
        except (PsidFormatError, UnsupportedTune) as e:
            raise SourceError(str(e)) from None
        return {"kind": "sid", "songs": tune.songs, "start_song": tune.start_song, "title": tune.title,
                "author": tune.author, "released": tune.released}
    frames = _load_frames_bytes(name, ext, data)
    if len(frames) == 0:
        raise SourceError(f"{name}: the frames file holds no frames")
    return {"kind": "frames", "songs": 1, "start_song": 1, "title": frames.title or Path(name).stem,
            "author": frames.author, "released": ""}


def _load_frames_bytes(name: str, ext: str, data: bytes) -> Frames:
    with tempfile.TemporaryDirectory(prefix="sidlive-studio-") as tmp:
        path = Path(tmp) / f"upload{ext}"
        path.write_bytes(data)
        try:
            return load(path)
        except FramesFormatError as e:
            raise SourceError(str(e).replace(str(path), name)) from None


class Sources:
    """The prompt sources by key (see the module docstring), their frames cached (a few)."""

    def __init__(self, library: Library, loop_folders=None):
        self.library = library
        self.loops = LoopLibrary(loop_folders if loop_folders is not None else [LOOPS_DIR, user_loops_dir()])
        self._cache: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()

    def listing(self) -> list[dict]:
        """Every loop and upload: key, name, kind, songs, title, author (seconds for loops)."""
        self.loops.refresh()
        out = [{"key": f"loop:{lp.path.stem}", "name": lp.name, "kind": "loop", "songs": 1, "start_song": 1,
                "title": lp.frames.title, "author": lp.frames.author, "seconds": round(lp.seconds, 2)}
               for lp in self.loops.loops]
        out += [{"key": f"upload:{s['id']}", "name": s["name"], "kind": s["kind"], "songs": s["songs"],
                 "start_song": s["start_song"], "title": s["title"], "author": s["author"]}
                for s in self.library.sources()]
        return out

    def add_upload(self, name: str, data: bytes) -> dict:
        """Check and keep an upload; returns its listing entry."""
        info = inspect_upload(name, data)
        rec = self.library.add_source(data, name=Path(name).name, ext=upload_ext(name), **info)
        return {"key": f"upload:{rec['id']}", "name": rec["name"], "kind": rec["kind"], "songs": rec["songs"],
                "start_song": rec["start_song"], "title": rec["title"], "author": rec["author"]}

    def frames(self, key: str, subtune: int | None = None) -> Frames:
        """The frames of a source (a .sid upload dumped once per subtune, then read from the library)."""
        kind, _, ident = str(key).partition(":")
        if kind not in ("loop", "upload", "take") or not ident:
            raise SourceError(f"source {key!r}: expected loop:<name>, upload:<id> or take:<id>")
        cache_key = (key, subtune)
        with self._lock:
            if cache_key in self._cache:
                self._cache.move_to_end(cache_key)
                return self._cache[cache_key]
        if kind == "loop":
            self.loops.refresh()
            try:
                fr = self.loops.loops[self.loops.index_of(ident)].frames
            except ValueError as e:
                raise NotFound(str(e)) from None
        elif kind == "take":
            fr = self.library.take_frames(_int(ident, key))
        else:
            fr = self._upload_frames(_int(ident, key), subtune)
        with self._lock:
            self._cache[cache_key] = fr
            while len(self._cache) > CACHE_SOURCES:
                self._cache.popitem(last=False)
        return fr

    def _upload_frames(self, source_id: int, subtune: int | None) -> Frames:
        rec = self.library.source(source_id)
        d = self.library.source_dir(source_id)
        original = d / f"original{rec['ext']}"
        if rec["kind"] != "sid":
            if subtune not in (None, 1):
                raise SourceError(f"{rec['name']}: field subtune applies to .sid uploads only")
            fr = load(original)
            return fr.slice(0, min(len(fr), round(MAX_SOURCE_S * fr.frame_rate_hz)))
        song = subtune if subtune is not None else rec["start_song"]
        if not 1 <= int(song) <= rec["songs"]:
            raise SourceError(f"{rec['name']}: field subtune is {song}, allowed 1..{rec['songs']}")
        cached = d / f"sub{int(song)}.regs"
        if cached.is_file():
            return load_regs(cached)
        try:
            fr = dump_tune(original, subtune=int(song), seconds=None)
        except (DumpError, PsidFormatError, UnsupportedTune, ValueError) as e:
            raise SourceError(str(e).replace(str(original), rec["name"])) from None
        if fr.seconds > MAX_SOURCE_S:
            fr = fr.slice(0, round(min(MAX_SOURCE_S, MAX_SECONDS) * fr.frame_rate_hz))
        fr.source = rec["name"]
        save_regs_atomic(fr, cached)
        return fr


def _int(text: str, key: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise SourceError(f"source {key!r}: the id must be a whole number") from None

