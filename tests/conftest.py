"""Shared test fixtures. Tests needing ../shared skip with a reason when it is absent."""
from __future__ import annotations

import pytest

from sidlive.shared import hvsc_root, shared_dir


@pytest.fixture(scope="session")
def shared():
    d = shared_dir()
    if d is None:
        pytest.skip("../shared (or $SIDLIVE_SHARED) is absent: HVSC and CPU test data unavailable")
    return d


@pytest.fixture(scope="session")
def hvsc():
    d = hvsc_root()
    if d is None:
        pytest.skip("../shared/hvsc/C64Music is absent: real-tune tests need the HVSC subset")
    return d
