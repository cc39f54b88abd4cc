"""`sidlive dump`: run a PSID tune on the 6510 emulator and keep its SID registers per frame.

    sidlive dump TUNE.sid [--subtune N] [--seconds S] -o OUT.regs|OUT.txt
    python -m sidlive.c64.dump TUNE.sid ...            (same)
    python -m sidlive.c64.dump HVSC_ROOT OUT_DIR ...   (a folder first: the collection dump,
                                                     see sidlive/c64/collection.py)

Length of the dump, first that applies: --seconds; the tune's entry in HVSC's
DOCUMENTS/Songlengths.md5 (searched upward from the tune); DEFAULT_SECONDS (180 s).
"""
from __future__ import annotations

from pathlib import Path

from sidlive.c64.machine import run_psid
from sidlive.c64.psid import PsidTune, exported_frames, load_psid
from sidlive.c64.songlengths import find_hvsc_root, load_songlengths, song_seconds, songlengths_path
from sidlive.frames import NTSC_CLOCK_HZ, NTSC_FRAME_CYCLES, PAL_FRAME_RATE_HZ, Frames

DEFAULT_SECONDS = 180.0
MAX_SECONDS = 3600.0
NTSC_FRAME_RATE_HZ = NTSC_CLOCK_HZ / NTSC_FRAME_CYCLES
# Statuses whose frames so far are still real music (the tune ran, then stopped keeping time).
PARTIAL_STATUSES = ("play_timeout", "jam", "bad_address")


class DumpError(RuntimeError):
    """The emulator could not produce any frames for a tune (init never returned, ...)."""


def frame_rate_hz(clock: str) -> float:
    """Frames per second for a clock: NTSC's rate for "NTSC", else PAL's."""
    return NTSC_FRAME_RATE_HZ if clock == "NTSC" else PAL_FRAME_RATE_HZ


def resolve_seconds(tune: PsidTune, subtune: int, seconds: float | None,
                    songlengths: dict | None, tune_path: str | Path | None) -> tuple[float, str]:
    """(seconds, where from): --seconds, else Songlengths.md5, else the frames a sidlive export holds, else
    DEFAULT_SECONDS."""
    if seconds is not None:
        if not 0 < seconds <= MAX_SECONDS:
            raise ValueError(f"seconds is {seconds}, allowed 0 < seconds <= {MAX_SECONDS:g}")
        return float(seconds), "--seconds"
    if songlengths is None and tune_path is not None:
        root = find_hvsc_root(tune_path)
        if root is not None:
            songlengths = _cached_songlengths(songlengths_path(root))
    if songlengths:
        s = song_seconds(songlengths, tune.md5, subtune)
        if s:
            return float(s), "Songlengths.md5"
    n = exported_frames(tune.data, subtune)
    if n:
        return min(n / frame_rate_hz(tune.frames_clock()), MAX_SECONDS), "sidlive export"
    return DEFAULT_SECONDS, "default"


_SONGLENGTHS_CACHE: dict[str, dict] = {}


def _cached_songlengths(path: Path) -> dict:
    key = str(path)
    if key not in _SONGLENGTHS_CACHE:
        _SONGLENGTHS_CACHE[key] = load_songlengths(path)
    return _SONGLENGTHS_CACHE[key]


def check_subtune(tune: PsidTune, subtune: int | None) -> int:
    """1-based subtune, default the tune's start song; range-checked."""
    if subtune is None:
        return tune.start_song
    if not 1 <= subtune <= tune.songs:
        raise ValueError(f"{tune.path}: subtune is {subtune}, allowed 1..{tune.songs} (songs)")
    return int(subtune)


def run_tune(tune: PsidTune, subtune: int, n_frames: int, raw: bool = False):
    """Run 1-based `subtune` for `n_frames` frames; returns sidlive.c64.machine.DumpResult.

    raw: the plain register shadow at each frame boundary; by default a gate restart
    inside one frame is made visible (sidlive.c64.machine.mark_retriggers).
    """

    tune.require_supported()
    return run_psid(tune.data, tune.load_addr, tune.init_addr, tune.play_addr, subtune - 1,
                    n_frames, speed_cia=tune.speed_cia(subtune), clock=tune.frames_clock(),
                    mark_gate_retriggers=not raw)


def dump_tune(path: str | Path, subtune: int | None = None, seconds: float | None = None,
              songlengths: dict | None = None, raw: bool = False) -> Frames:
    """Dump one subtune (1-based; default the start song) of a PSID file to Frames.

    raw=True keeps the plain register snapshots (no gate-restart marks; see run_tune).
    A tune that stops keeping time part way (play_timeout, jam) returns the frames it
    made, with extra["status"] saying so; one that makes no frames raises DumpError.
    RSID/MUS/multi-SID tunes raise UnsupportedTune, malformed files PsidFormatError.
    """
    tune = load_psid(path)
    tune.require_supported()
    subtune = check_subtune(tune, subtune)
    secs, secs_from = resolve_seconds(tune, subtune, seconds, songlengths, path)
    clock = tune.frames_clock()
    rate_hz = frame_rate_hz(clock)
    n_frames = max(1, round(secs * rate_hz))
    res = run_tune(tune, subtune, n_frames, raw=raw)
    if len(res.regs) == 0:
        raise DumpError(f"{path}: subtune {subtune}: {res.status}: {res.message}")
    extra = {"md5": tune.md5, "subtune": subtune, "songs": tune.songs, "speed": res.speed,
             "play_hz": round(float(res.play_hz), 3), "status": res.status,
             "message": res.message, "seconds_requested": secs, "seconds_from": secs_from,
             "released": tune.released, "retriggers": int(res.retriggers), "raw": raw}
    return Frames(regs=res.regs, clock=clock, chip=tune.frames_chip(), frame_rate_hz=rate_hz,
                  title=tune.title, author=tune.author, source=str(path), extra=extra)
