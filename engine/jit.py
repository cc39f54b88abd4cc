"""Getting the kernels ready: Numba's on-disk cache, with a visible message when it is built.

Numba keys a cached function by its own file only, so an edit to engine/kernels.py would
leave engine/frame.py's cached entry kernels stale. `drop_stale_cache` hashes every kernel
source file and removes the engine's cache files when the hash changed.
"""
from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

from engine.frame import feed_frames, run_frames

COMPILE_ESTIMATE_S = 30          # first build here: ~14 s of CPU, 20-45 s of wall time on a busy machine
KERNEL_SOURCES = ("weights.py", "kernels.py", "sampler.py", "matches.py", "candidates.py", "pointer.py", "frame.py")
STAMP_NAME = "engine-kernels.sha256"
_ready = threading.Event()
_lock = threading.Lock()


def _entry_points():
    return feed_frames, run_frames


def cache_dir() -> Path | None:
    """Where Numba keeps the engine's cache (engine/__pycache__ or NUMBA_CACHE_DIR), if known."""
    try:
        return Path(_entry_points()[1]._cache._cache_path)
    except AttributeError:  # a Numba without this (private) attribute: no stale-cache check
        return None


def sources_hash() -> str:
    """SHA-256 hex digest over the names and contents of every kernel source file."""
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in KERNEL_SOURCES:
        h.update(name.encode() + b"\0" + (here / name).read_bytes())
    return h.hexdigest()


def drop_stale_cache(d: Path | None = None) -> bool:
    """Remove the engine's cached kernels from d (default: cache_dir()) if any kernel source
    changed since they were built; returns whether it did."""
    d = cache_dir() if d is None else Path(d)
    if d is None or not d.is_dir():
        return False
    want = sources_hash()
    stamp = d / STAMP_NAME
    if stamp.is_file() and stamp.read_text().strip() == want:
        return False
    prefixes = tuple(n[:-3] + "." for n in KERNEL_SOURCES)
    for f in d.iterdir():
        if f.name.startswith(prefixes) and f.suffix in (".nbi", ".nbc"):
            f.unlink(missing_ok=True)
    stamp.write_text(want + "\n")
    return True


def cache_is_warm() -> bool:
    """True when both entry kernels have a current entry in Numba's cache."""
    try:
        return all(bool(f._cache._cache_file._load_index()) for f in _entry_points())
    except (AttributeError, OSError):
        return False


def ensure_compiled(gen, log=print) -> float:
    """Compile (or load from the cache) the entry kernels for a Generator's argument types.
    Says so before a build (first run, or sources changed). Returns the seconds taken."""
    with _lock:
        if _ready.is_set():
            return 0.0
        t0 = time.perf_counter()
        try:
            drop_stale_cache()
        except OSError:
            pass  # read-only install: Numba falls back as it can
        cold = not cache_is_warm()
        if cold and log is not None:
            log(f"compiling engine kernels (first run, ~{COMPILE_ESTIMATE_S} s)…")
        gen.warm_up()
        dt = time.perf_counter() - t0
        if cold and log is not None:
            log(f"engine kernels compiled in {dt:.1f} s (cached for later runs)")
        _ready.set()
        return dt
