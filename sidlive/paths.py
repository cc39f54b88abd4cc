"""Where sidlive finds its presets (the shipped model, loops, controller maps, effects) and
the team's shared data folder (`../shared` beside the checkout, or $SIDLIVE_SHARED).

Presets are package data: an installed wheel carries them as `sidlive/presets/`; a source
checkout (an editable install, the tests) reads the repository's top-level `presets/`.
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent          # the checkout, when running from source


def presets_dir() -> Path:
    """The presets folder: the wheel's package data, else the source checkout's presets/."""
    for candidate in (PACKAGE_DIR / "presets", REPO_ROOT / "presets"):
        if (candidate / "models").is_dir():
            return candidate
    raise FileNotFoundError(f"sidlive's presets are missing: neither {PACKAGE_DIR / 'presets'} (installed) "
                            f"nor {REPO_ROOT / 'presets'} (source checkout) exists")


PRESETS_DIR = presets_dir()
MODELS_DIR = PRESETS_DIR / "models"
LOOPS_DIR = PRESETS_DIR / "loops"
CONTROLLERS_DIR = PRESETS_DIR / "controllers"
FX_DIR = PRESETS_DIR / "fx"
DEFAULT_MODEL = MODELS_DIR / "default.sidm"
DEFAULT_CONTROLLER = CONTROLLERS_DIR / "generic.toml"


def user_data_dir() -> Path:
    """The user's sidlive data folder: $XDG_DATA_HOME/sidlive, else ~/.local/share/sidlive."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "sidlive"


def user_loops_dir() -> Path:
    """Where a live session's captured loops go (and are found again) by default."""
    return user_data_dir() / "loops"


def shared_dir() -> Path | None:
    """The team's shared folder ($SIDLIVE_SHARED, else ../shared beside the checkout), or None."""
    env = os.environ.get("SIDLIVE_SHARED")
    candidates = [Path(env)] if env else []
    candidates.append(REPO_ROOT.parent / "shared")
    for c in candidates:
        if c.is_dir():
            return c
    return None


def hvsc_root() -> Path | None:
    """The HVSC subset in the shared folder (hvsc/C64Music), or None."""
    s = shared_dir()
    if s is None:
        return None
    p = s / "hvsc" / "C64Music"
    return p if p.is_dir() else None
