"""The studio's models: which .sidm files there are, the one in use, and the exact file a take
was made with (by SHA-256), loaded once and kept.

A model that fails to load (not a .sidm, truncated, a config the engine cannot run) raises
ModelError with the loader's message (file, field, offset); the model in use stays.
"""
from __future__ import annotations

import dataclasses
import hashlib
import threading
from pathlib import Path

from engine.sidm import SidmFormatError
from engine.weights import EngineModel, load_model
from sidlive.paths import MODELS_DIR

MODEL_EXT = ".sidm"
KEEP_MODELS = 3          # loaded models kept besides the one in use (takes made with older ones)


class ModelError(ValueError):
    """A model file is missing, unreadable or not one the engine runs; the message says which and why."""


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A model file, its SHA-256 and the engine's model."""

    path: Path
    digest: str
    model: EngineModel
    size: int

    @property
    def name(self) -> str:
        """The file's name without .sidm."""
        return self.path.stem

    def info(self) -> dict:
        """What the page shows and needs: name, path, digest, composers, whether it has a pointer head."""
        c = self.model.cfg
        return {"name": self.name, "path": str(self.path), "digest": self.digest, "size": self.size,
                "composers": list(c.composers), "pointer": bool(c.pointer), "context_frames": c.context_frames}


_DIGESTS: dict = {}
_DIGEST_LOCK = threading.Lock()


def file_digest(path: Path) -> str:
    """SHA-256 hex of a file (cached by path, size and mtime)."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _DIGEST_LOCK:
        if key in _DIGESTS:
            return _DIGESTS[key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    with _DIGEST_LOCK:
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def load_file(path: str | Path) -> LoadedModel:
    """Load a .sidm file; ModelError naming the file and the problem."""
    path = Path(path).expanduser().resolve()
    if path.suffix.lower() != MODEL_EXT:
        raise ModelError(f"{path}: a model file ends in {MODEL_EXT}")
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    try:
        digest = file_digest(path)
        model = load_model(path)
    except SidmFormatError as e:
        raise ModelError(f"model failed to load: {e}") from None
    except (OSError, ValueError) as e:
        raise ModelError(f"model {path} failed to load: {e}") from None
    return LoadedModel(path=path, digest=digest, model=model, size=path.stat().st_size)


class Models:
    """The model in use (`current`), the files to choose from, and models by digest for old takes."""

    def __init__(self, default: str | Path, folders=(MODELS_DIR,)):
        self.folders = [Path(f) for f in folders]
        self.default = Path(default)
        self.current: LoadedModel | None = None
        self.error = ""
        self._by_digest: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()

    def available(self) -> list[dict]:
        """The .sidm files in the model folders, and the default one: name, path, size."""
        seen, out = set(), []
        paths = [self.default] + [p for f in self.folders if f.is_dir() for p in sorted(f.glob(f"*{MODEL_EXT}"))]
        for p in paths:
            rp = p.expanduser().resolve()
            if rp in seen or not rp.is_file():
                continue
            seen.add(rp)
            out.append({"name": rp.stem, "path": str(rp), "size": rp.stat().st_size,
                        "current": self.current is not None and rp == self.current.path})
        return out

    def select(self, path: str | Path) -> LoadedModel:
        """Load a model and use it from now on; on failure (ModelError) the one in use stays."""
        try:
            lm = load_file(path)
        except ModelError as e:
            self.error = str(e)
            raise
        with self._lock:
            self.current = lm
            self.error = ""
            self._remember(lm)
        return lm

    def require(self) -> LoadedModel:
        """The model in use, or ModelError saying there is none (and why)."""
        lm = self.current
        if lm is None:
            raise ModelError(self.error or "no model is loaded; pick one in the model menu")
        return lm

    def for_take(self, path: str, digest: str, what: str = "the take") -> EngineModel:
        """The exact model a take was made with: by digest, else loaded from its path and checked."""
        with self._lock:
            lm = self._by_digest.get(digest)
        if lm is not None:
            return lm.model
        try:
            lm = load_file(path)
        except ModelError as e:
            raise ModelError(f"{what} was made with model {path} (sha256 {digest[:12]}…), which does not "
                             f"load now: {e}") from None
        if lm.digest != digest:
            raise ModelError(f"{what} was made with model {path} (sha256 {digest[:12]}…); that file has "
                             f"changed since (sha256 {lm.digest[:12]}…), so the take cannot be remade exactly")
        with self._lock:
            self._remember(lm)
        return lm.model

    def _remember(self, lm: LoadedModel) -> None:
        self._by_digest[lm.digest] = lm
        keep = {lm.digest} | ({self.current.digest} if self.current else set())
        for d in list(self._by_digest):
            if len(self._by_digest) <= KEEP_MODELS + 1:
                break
            if d not in keep:
                del self._by_digest[d]
