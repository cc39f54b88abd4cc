"""License-clean real-music fixtures: GoatTracker's example songs as register frames.

Debian's `goattracker` package ships example songs (GPL-2+, Cadaver and contributors)
in /usr/share/doc/goattracker/examples/*.sng. pygoattracker (a faithful Python
transcription of the GoatTracker 2 playroutine) plays one frame per PAL video frame;
its `Player.render_grid` gives the 25 registers after each play call, which is exactly
our frame. Songs loop forever, so `seconds=None` plays until every channel has looped
once (or the song stops), at most `MAX_SECONDS`.

GoatTracker's emulated chip defaults to the 6581 (its readme: "-Exx Set emulated SID
model (0 = 6581 1 = 8580) DEFAULT=6581"), so the frames say chip "6581".

Results are cached as .regs under ~/.cache/sidlive/fixtures (or `cache_dir`), keyed by
the song's SHA-1, subtune, length and the pygoattracker version.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from sidlive.frames import PAL_FRAME_RATE_HZ, Frames, load_regs, save_regs
from sidlive.frames import NUM_REGS

GOATTRACKER_EXAMPLES_DIR = Path("/usr/share/doc/goattracker/examples")
MAX_SECONDS = 600.0
FIXTURE_VERSION = 1   # bump when the frames a fixture produces change


class FixtureUnavailable(RuntimeError):
    """A fixture's source (Debian package, Python package or file) is missing."""


def default_cache_dir() -> Path:
    """Where built fixtures are cached: $XDG_CACHE_HOME (or ~/.cache)/sidlive/fixtures."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sidlive" / "fixtures"


def goattracker_examples(examples_dir: str | Path = GOATTRACKER_EXAMPLES_DIR) -> list[Path]:
    """The example .sng songs, sorted by name."""
    d = Path(examples_dir)
    songs = sorted(d.glob("*.sng")) if d.is_dir() else []
    if not songs:
        raise FixtureUnavailable(
            f"no GoatTracker example songs in {d}: install the Debian package 'goattracker' "
            f"(apt-get install goattracker), which ships them there")
    return songs


def _resolve(name_or_path: str | Path, examples_dir: str | Path) -> Path:
    p = Path(name_or_path)
    if p.parent != Path(".") or p.is_file():
        if not p.is_file():
            raise FixtureUnavailable(f"{p}: GoatTracker song not found")
        return p
    stem = p.name[:-4] if p.name.lower().endswith(".sng") else p.name
    songs = goattracker_examples(examples_dir)
    for s in songs:
        if s.stem.lower() == stem.lower():
            return s
    raise FixtureUnavailable(
        f"no GoatTracker example named {stem!r} in {examples_dir}; "
        f"available: {', '.join(s.stem for s in songs)}")


def _import_pygoattracker():
    try:
        import pygoattracker  # a test extra: needed only for GoatTracker .sng input
    except ImportError as e:
        raise FixtureUnavailable(
            f"the Python package 'pygoattracker' is not installed ({e}); "
            f"install it with: pip install 'pygoattracker>=0.8' (part of sidlive's [test] extra)") from None
    return pygoattracker


def _play(song, subtune: int, max_frames: int | None, Player) -> np.ndarray:
    """(N, 25) register rows, one per play call."""
    if max_frames is not None:
        return np.asarray(Player(song, subtune=subtune).render_grid(max_frames), dtype=np.uint8)
    player = Player(song, subtune=subtune)
    cap = int(MAX_SECONDS * PAL_FRAME_RATE_HZ)
    rows = []
    while len(rows) < cap and not (min(player.loops) > 0):
        writes = player.play_frame()
        if not player.playing and not writes:
            break
        rows.append(list(player.regs))
    return np.asarray(rows, dtype=np.uint8).reshape(-1, NUM_REGS)


def goattracker_frames(name_or_path: str | Path, seconds: float | None = None, *,
                       subtune: int = 0, cache_dir: str | Path | None = None,
                       examples_dir: str | Path = GOATTRACKER_EXAMPLES_DIR) -> Frames:
    """A GoatTracker song rendered to register frames (cached).

    name_or_path: an example's name ("dojo", "dojo.sng") or a path to any .sng.
    seconds: length; None plays until every channel has looped once (<= MAX_SECONDS).
    """
    path = _resolve(name_or_path, examples_dir)
    if seconds is not None and not 0 < seconds <= MAX_SECONDS:
        raise ValueError(f"seconds must be in (0, {MAX_SECONDS:g}] or None; got {seconds!r}")
    gt = _import_pygoattracker()
    blob = path.read_bytes()
    sha1 = hashlib.sha1(blob).hexdigest()
    length = "loop" if seconds is None else f"{seconds:g}s"
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cached = cache / f"gt-{path.stem}-{sha1[:12]}-st{subtune}-{length}-pgt{gt.__version__}-v{FIXTURE_VERSION}.regs"
    if cached.is_file():
        try:
            return load_regs(cached)
        except ValueError:
            pass   # a damaged cache entry: render again below
    try:
        song = gt.read_sng(str(path))
    except Exception as e:  # pygoattracker raises its own parse errors
        raise ValueError(f"{path}: not a readable GoatTracker song ({e})") from None
    if not 0 <= subtune < len(song.subtunes):
        raise ValueError(f"{path}: subtune must be in 0..{len(song.subtunes) - 1}; got {subtune}")
    max_frames = None if seconds is None else int(round(seconds * PAL_FRAME_RATE_HZ))
    regs = _play(song, subtune, max_frames, gt.Player)
    frames = Frames(
        regs=regs, clock="PAL", chip="6581", title=song.name or path.stem,
        author=song.author or "", source=str(path),
        extra={"format": "goattracker", "subtune": subtune, "sha1": sha1,
               "license": "GPL-2.0-or-later", "pygoattracker": gt.__version__},
    )
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(f".tmp{os.getpid()}.regs")
    save_regs(frames, tmp)
    os.replace(tmp, cached)
    return frames
