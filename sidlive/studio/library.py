"""The studio's library on disk: SQLite (stdlib sqlite3) for the records, files for frames and audio.

    ROOT/library.sqlite3           takes and uploaded sources (WAL journal: a killed server loses nothing committed)
    ROOT/takes/<id>/prompt.regs    the take's recipe arrays (spec.TakeSpec): prompt, head, keep
    ROOT/takes/<id>/take.regs      the frames (head + generated), once done
    ROOT/takes/<id>/take.wav       its audio (reSID, 48 kHz mono), once done
    ROOT/sources/<id>/original.sid an upload as it came, and its dumped subtunes sub<k>.regs

ROOT defaults to $XDG_DATA_HOME/sidlive/studio (never the repository). Every file is written
to a .part name and renamed, and a take's row is committed only after its recipe files are in
place, so a server killed at any moment leaves a library that opens: on open, takes that were
queued or running are marked "interrupted" (regenerate finishes them from their recipe), and
folders without a row are removed.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import threading
import time
from pathlib import Path

from sidlive.frames import Frames, load_regs, save_regs
from sidlive.paths import user_data_dir
from sidlive.studio.spec import TakeSpec, frames_digest

SCHEMA_VERSION = 1
STATUSES = ("queued", "running", "done", "failed", "interrupted")
KINDS = ("new", "variation", "continue", "branch", "regenerate")
ARRAYS = ("prompt", "head", "keep")
NAME_MAX = 80

_SCHEMA = """
CREATE TABLE IF NOT EXISTS takes (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, created REAL NOT NULL,
    starred INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL, error TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL, parent INTEGER, group_id INTEGER, branch_at INTEGER,
    model_name TEXT NOT NULL, model_path TEXT NOT NULL, model_digest TEXT NOT NULL,
    composer TEXT NOT NULL, seed INTEGER NOT NULL, temperature REAL NOT NULL, top_k INTEGER NOT NULL,
    top_p REAL NOT NULL, repetition REAL NOT NULL, keep_voices TEXT NOT NULL, chip TEXT NOT NULL,
    frames INTEGER NOT NULL, head_frames INTEGER NOT NULL, prompt_frames INTEGER NOT NULL,
    source TEXT NOT NULL DEFAULT '', settings TEXT NOT NULL,
    engine_s REAL, render_s REAL, encode_s REAL);
CREATE INDEX IF NOT EXISTS takes_composer ON takes(composer);
CREATE INDEX IF NOT EXISTS takes_seed ON takes(seed);
CREATE TABLE IF NOT EXISTS sources (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, ext TEXT NOT NULL, kind TEXT NOT NULL,
    size INTEGER NOT NULL, digest TEXT NOT NULL, created REAL NOT NULL, songs INTEGER NOT NULL DEFAULT 1,
    start_song INTEGER NOT NULL DEFAULT 1, title TEXT NOT NULL DEFAULT '', author TEXT NOT NULL DEFAULT '',
    released TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS sources_digest ON sources(digest);
"""


class NotFound(LookupError):
    """No take or source with that id."""


def default_root() -> Path:
    """The library's default folder: $XDG_DATA_HOME/sidlive/studio (~/.local/share/sidlive/studio)."""
    return user_data_dir() / "studio"


def write_atomic(path: Path, data: bytes) -> None:
    """Write bytes to path through a .part file and a rename (a reader never sees half a file)."""
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def save_regs_atomic(frames: Frames, path: Path) -> None:
    """save_regs through a .part file and a rename."""
    tmp = path.with_name(path.name + ".part.regs")
    save_regs(frames, tmp)
    tmp.replace(path)


class Library:
    """Takes and sources on disk (see the module docstring); every method is thread-safe."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_root()
        (self.root / "takes").mkdir(parents=True, exist_ok=True)
        (self.root / "sources").mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self.db = sqlite3.connect(self.root / "library.sqlite3", check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"{self.root / 'library.sqlite3'}: schema version {version} is newer than this "
                               f"build's {SCHEMA_VERSION}; use a newer sidlive or another --library")
        self.db.executescript(_SCHEMA)
        self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self.interrupted = self._recover()

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self.db.close()

    def _recover(self) -> list[int]:
        with self._lock:
            ids = [r[0] for r in self.db.execute("SELECT id FROM takes WHERE status IN ('queued', 'running')")]
            self.db.execute("UPDATE takes SET status='interrupted', error=? WHERE status IN ('queued', 'running')",
                            ("the studio stopped while this take was being made; regenerate it from its recipe",))
            for kind in ("takes", "sources"):
                known = {str(r[0]) for r in self.db.execute(f"SELECT id FROM {kind}")}
                for p in (self.root / kind).iterdir():
                    if p.name not in known:
                        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
                    elif p.is_dir():
                        for part in p.glob("*.part*"):
                            part.unlink(missing_ok=True)
        return ids

    # ------------------------------------------------------------------ takes
    def take_dir(self, take_id: int) -> Path:
        """The folder of a take's files."""
        return self.root / "takes" / str(int(take_id))

    def create_take(self, spec: TakeSpec, *, name: str, kind: str, model_name: str, source: str = "",
                    parent: int | None = None, group_id: int | None = None, branch_at: int | None = None) -> int:
        """Record a new queued take and its recipe files; returns its id."""
        if kind not in KINDS:
            raise ValueError(f"take kind must be one of {', '.join(KINDS)}, got {kind!r}")
        settings = json.dumps(spec.settings())
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                cur = self.db.execute(
                    "INSERT INTO takes (name, created, status, kind, parent, group_id, branch_at, model_name, "
                    "model_path, model_digest, composer, seed, temperature, top_k, top_p, repetition, keep_voices, "
                    "chip, frames, head_frames, prompt_frames, source, settings) "
                    "VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (clean_name(name), time.time(), kind, parent, group_id, branch_at, model_name, spec.model_path,
                     spec.model_digest, spec.composer, spec.seed, spec.temperature, spec.top_k, spec.top_p,
                     spec.repetition, json.dumps(list(spec.keep_voices)), spec.chip, spec.frames, len(spec.head),
                     len(spec.prompt), source, settings))
                take_id = int(cur.lastrowid)
                if group_id is None:
                    self.db.execute("UPDATE takes SET group_id=? WHERE id=?", (take_id, take_id))
                d = self.take_dir(take_id)
                shutil.rmtree(d, ignore_errors=True)
                d.mkdir(parents=True)
                for arr in ARRAYS:
                    save_regs_atomic(Frames(regs=getattr(spec, arr)), d / f"{arr}.regs")
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        return take_id

    def spec(self, take_id: int) -> TakeSpec:
        """A take's recipe, read back (its arrays checked against the digests recorded with it)."""
        row = self._row("takes", take_id)
        s = json.loads(row["settings"])
        arrays = {}
        for arr in ARRAYS:
            path = self.take_dir(take_id) / f"{arr}.regs"
            try:
                regs = load_regs(path).regs
            except (OSError, ValueError) as e:
                raise RuntimeError(f"take {take_id}: recipe file {path} is unreadable ({e})") from None
            if frames_digest(regs) != s[f"{arr}_digest"]:
                raise RuntimeError(f"take {take_id}: recipe file {path} does not match the digest recorded "
                                   f"with the take (field {arr}_digest)")
            arrays[arr] = regs
        return TakeSpec(model_path=s["model_path"], model_digest=s["model_digest"], seed=int(s["seed"]),
                        frames=int(s["frames"]), temperature=s["temperature"], top_k=int(s["top_k"]),
                        top_p=s["top_p"], repetition=s["repetition"], composer=s["composer"],
                        keep_voices=tuple(s["keep_voices"]), chip=s["chip"],
                        max_rollback_frames=int(s["max_rollback_frames"]), **arrays)

    def set_status(self, take_id: int, status: str, error: str = "") -> None:
        """Set a take's status (and error message)."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        with self._lock:
            self.db.execute("UPDATE takes SET status=?, error=? WHERE id=?", (status, error, int(take_id)))

    def finish_take(self, take_id: int, frames: Frames, wav_bytes: bytes, timings: dict) -> None:
        """Write a take's frames and audio, then mark it done (in that order)."""
        d = self.take_dir(take_id)
        save_regs_atomic(frames, d / "take.regs")
        write_atomic(d / "take.wav", wav_bytes)
        with self._lock:
            self.db.execute("UPDATE takes SET status='done', error='', engine_s=?, render_s=?, encode_s=? WHERE id=?",
                            (timings.get("engine_s"), timings.get("render_s"), timings.get("encode_s"), int(take_id)))

    def take_frames(self, take_id: int) -> Frames:
        """A finished take's frames."""
        path = self.take_dir(take_id) / "take.regs"
        if not path.is_file():
            raise NotFound(f"take {take_id} has no frames yet (status {self.take(take_id)['status']})")
        return load_regs(path)

    def wav_path(self, take_id: int) -> Path:
        """A finished take's WAV file (NotFound before it is done)."""
        path = self.take_dir(take_id) / "take.wav"
        if not path.is_file():
            raise NotFound(f"take {take_id} has no audio yet (status {self.take(take_id)['status']})")
        return path

    def take(self, take_id: int) -> dict:
        """One take's record as a plain dict."""
        return _take_dict(self._row("takes", take_id))

    def takes(self, *, composer: str | None = None, seed: int | None = None, starred: bool | None = None,
              text: str | None = None, limit: int = 500) -> list[dict]:
        """Takes, newest first, filtered by composer, seed, star and text (name or source)."""
        where, args = [], []
        if composer:
            where.append("composer = ?")
            args.append(composer)
        if seed is not None:
            where.append("seed = ?")
            args.append(int(seed))
        if starred is not None:
            where.append("starred = ?")
            args.append(1 if starred else 0)
        if text:
            where.append("(name LIKE ? OR source LIKE ? OR composer LIKE ?)")
            args += [f"%{text}%"] * 3
        sql = "SELECT * FROM takes" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC LIMIT ?"
        with self._lock:
            rows = self.db.execute(sql, (*args, int(limit))).fetchall()
        return [_take_dict(r) for r in rows]

    def composers(self) -> list[str]:
        """The composers that takes were made with."""
        with self._lock:
            return [r[0] for r in self.db.execute("SELECT DISTINCT composer FROM takes ORDER BY composer")]

    def update_take(self, take_id: int, *, name: str | None = None, starred: bool | None = None) -> dict:
        """Rename and/or star a take; returns the record."""
        self._row("takes", take_id)
        with self._lock:
            if name is not None:
                self.db.execute("UPDATE takes SET name=? WHERE id=?", (clean_name(name), int(take_id)))
            if starred is not None:
                self.db.execute("UPDATE takes SET starred=? WHERE id=?", (1 if starred else 0, int(take_id)))
        return self.take(take_id)

    def delete_take(self, take_id: int) -> None:
        """Remove a take's row, then its files."""
        self._row("takes", take_id)
        with self._lock:
            self.db.execute("DELETE FROM takes WHERE id=?", (int(take_id),))
        shutil.rmtree(self.take_dir(take_id), ignore_errors=True)

    # ------------------------------------------------------------------ sources
    def source_dir(self, source_id: int) -> Path:
        """The folder of an uploaded source's files."""
        return self.root / "sources" / str(int(source_id))

    def add_source(self, data: bytes, *, name: str, ext: str, kind: str, songs: int = 1, start_song: int = 1,
                   title: str = "", author: str = "", released: str = "") -> dict:
        """Store an upload (the same bytes again: the existing record); returns its record."""
        digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            row = self.db.execute("SELECT * FROM sources WHERE digest=? AND ext=?", (digest, ext)).fetchone()
            if row is not None:
                return dict(row)
            self.db.execute("BEGIN IMMEDIATE")
            try:
                cur = self.db.execute(
                    "INSERT INTO sources (name, ext, kind, size, digest, created, songs, start_song, title, author, "
                    "released) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (clean_name(name), ext, kind, len(data), digest, time.time(), songs, start_song, title, author,
                     released))
                sid = int(cur.lastrowid)
                d = self.source_dir(sid)
                shutil.rmtree(d, ignore_errors=True)
                d.mkdir(parents=True)
                write_atomic(d / f"original{ext}", data)
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        return self.source(sid)

    def source(self, source_id: int) -> dict:
        """One uploaded source's record."""
        return dict(self._row("sources", source_id))

    def sources(self) -> list[dict]:
        """Uploaded sources, newest first."""
        with self._lock:
            return [dict(r) for r in self.db.execute("SELECT * FROM sources ORDER BY id DESC")]

    def _row(self, table: str, row_id) -> sqlite3.Row:
        try:
            rid = int(row_id)
        except (TypeError, ValueError):
            raise NotFound(f"{table[:-1]} id must be a whole number, got {row_id!r}") from None
        with self._lock:
            row = self.db.execute(f"SELECT * FROM {table} WHERE id=?", (rid,)).fetchone()
        if row is None:
            raise NotFound(f"no {table[:-1]} {rid} in the library {self.root}")
        return row


def clean_name(name: str) -> str:
    """A display name: one line, trimmed, at most NAME_MAX characters (ValueError when empty)."""
    s = " ".join(str(name).split())[:NAME_MAX]
    if not s:
        raise ValueError(f"field name: must be 1..{NAME_MAX} characters, got {name!r}")
    return s


def _take_dict(row: sqlite3.Row) -> dict:
    d = dict(row)
    d["starred"] = bool(d["starred"])
    d["keep_voices"] = json.loads(d["keep_voices"])
    d["settings"] = json.loads(d["settings"])
    d["total_frames"] = d["head_frames"] + d["frames"]
    return d
