"""HVSC's song-length database, DOCUMENTS/Songlengths.md5: md5 of a .sid -> seconds per subtune.

Format:
    [Database]
    ; /MUSICIANS/H/Hubbard_Rob/Commando.sid
    0123456789abcdef0123456789abcdef=3:28 0:16.500 1:02(G)
Each entry line is the whole-file md5, '=', then one time per subtune, `m:ss` or
`m:ss.mmm`, optionally followed by attributes in parentheses (`(G)`, `(M)`, ...), which
are ignored. `;` lines are comments (the tune's path), `[...]` lines section headers.
"""
from __future__ import annotations

import re
from pathlib import Path

SONGLENGTHS_RELPATH = Path("DOCUMENTS") / "Songlengths.md5"

_ENTRY = re.compile(r"^([0-9a-fA-F]{32})=(.*)$")
_TIME = re.compile(r"^(\d+):(\d{1,2})(?:\.(\d{1,3}))?(?:\([A-Za-z]+\))*$")


class SonglengthsFormatError(ValueError):
    """Songlengths.md5 is malformed; the message names the file, line and what was expected."""


def parse_time(token: str) -> float | None:
    """`m:ss[.mmm]` (attributes like `(G)` allowed after) -> seconds; None if malformed."""
    m = _TIME.match(token)
    if not m:
        return None
    minutes, secs, frac = m.groups()
    if int(secs) >= 60:
        return None
    ms = int(frac.ljust(3, "0")) if frac else 0
    return int(minutes) * 60 + int(secs) + ms / 1000.0


def parse_songlengths(text: str, name: str = "<Songlengths.md5>") -> dict[str, list[float]]:
    """Parse the database text into {md5 (lower case): [seconds of subtune 1, 2, ...]}."""
    table: dict[str, list[float]] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if not s or s.startswith(";") or (s.startswith("[") and s.endswith("]")):
            continue
        m = _ENTRY.match(s)
        if not m:
            raise SonglengthsFormatError(
                f"{name}: line {lineno}: {s[:60]!r} is not '; comment', '[section]' or "
                "'<32 hex md5>=m:ss[.mmm] ...'")
        times = []
        for col, token in enumerate(m.group(2).split(), start=1):
            t = parse_time(token)
            if t is None:
                raise SonglengthsFormatError(
                    f"{name}: line {lineno}: time {col} is {token!r}, expected m:ss or m:ss.mmm "
                    "(seconds 00-59, optional (X) attributes)")
            times.append(t)
        if not times:
            raise SonglengthsFormatError(f"{name}: line {lineno}: no song length after '='")
        table[m.group(1).lower()] = times
    return table


def load_songlengths(path: str | Path) -> dict[str, list[float]]:
    """Read an HVSC Songlengths.md5 file: md5 -> song lengths in seconds."""
    path = Path(path)
    return parse_songlengths(path.read_text(encoding="latin-1"), str(path))


def songlengths_path(hvsc_root: str | Path) -> Path | None:
    """DOCUMENTS/Songlengths.md5 under an HVSC root (or under its C64Music folder)."""
    root = Path(hvsc_root)
    for cand in (root / SONGLENGTHS_RELPATH, root / "C64Music" / SONGLENGTHS_RELPATH):
        if cand.is_file():
            return cand
    return None


def find_hvsc_root(tune_path: str | Path) -> Path | None:
    """The nearest folder above `tune_path` that holds DOCUMENTS/Songlengths.md5, or None."""
    p = Path(tune_path).resolve()
    for parent in p.parents:
        if (parent / SONGLENGTHS_RELPATH).is_file():
            return parent
    return None


def song_seconds(table: dict[str, list[float]], md5: str, subtune: int) -> float | None:
    """Length of 1-based `subtune` of the tune with this md5, or None when unknown."""
    times = table.get(md5.lower())
    if not times or not 1 <= subtune <= len(times):
        return None
    return times[subtune - 1]
