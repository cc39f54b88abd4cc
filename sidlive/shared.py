"""Locate the team's shared data folder (`../shared` beside the checkout, or $SIDLIVE_SHARED)."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_dir() -> Path | None:
    env = os.environ.get("SIDLIVE_SHARED")
    candidates = [Path(env)] if env else []
    candidates.append(REPO_ROOT.parent / "shared")
    for c in candidates:
        if c.is_dir():
            return c
    return None


def hvsc_root() -> Path | None:
    s = shared_dir()
    if s is None:
        return None
    p = s / "hvsc" / "C64Music"
    return p if p.is_dir() else None
