"""Shared test fixtures: the shared data folder (tests needing ../shared skip with a reason when it is
absent) and tiny models exported by the training pipeline (real engine, real files)."""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from sidlive.frames import canonicalize
from sidlive.paths import hvsc_root, shared_dir


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


# The property tests' budget: `examples` each in CI (about a minute for all of them together);
# SIDLIVE_FUZZ_SCALE=20 runs twenty times as many (the long campaign is sidlive.measure.fuzz).
FUZZ_SCALE = float(os.environ.get("SIDLIVE_FUZZ_SCALE", "1"))


def fuzz_settings(examples: int) -> settings:
    """Hypothesis settings for a property test: `examples` examples (times SIDLIVE_FUZZ_SCALE),
    no deadline (the machine may be busy), no example database written into the checkout."""
    return settings(max_examples=max(1, int(examples * FUZZ_SCALE)), deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


TINY = dict(context_frames=16, d_global=32, n_layers_global=2, n_heads_global=2, mlp_mult_global=2,
            d_local=16, n_layers_local=2, n_heads_local=2, mlp_mult_local=2, d_readout=32,
            composers=("any", "Rob Hubbard", "Martin Galway"), init_std=0.4, copy_bonus_init=-5.0)


def walk(n: int, seed: int = 0, p_change: float = 0.25) -> np.ndarray:
    """Random frames where each register changes with probability p_change."""
    rng = np.random.default_rng(seed)
    fr = np.zeros((n, 25), np.uint8)
    fr[0] = rng.integers(0, 256, 25)
    for t in range(1, n):
        fr[t] = fr[t - 1]
        ch = rng.random(25) < p_change
        fr[t, ch] = rng.integers(0, 256, ch.sum())
    return fr


def patterned(n: int, seed: int = 0, p_mutate: float = 0.003) -> np.ndarray:
    """Canonical frames that repeat a lot: each voice and the filter replay their own random
    patterns (2-6 values per register), whole earlier stretches recur, a few bytes mutate."""
    rng = np.random.default_rng(seed)
    alphabet = [rng.choice(256, size=int(rng.integers(2, 7)), replace=False) for _ in range(25)]
    blocks = [range(0, 7), range(7, 14), range(14, 21), range(21, 25)]
    fr = np.zeros((n, 25), np.uint8)
    for regs in blocks:
        pats = [np.stack([rng.choice(alphabet[r], size=int(length)) for r in regs], 1)
                for length in rng.integers(2, 40, size=6)]
        parts, total = [], 0
        while total < n:
            parts.append(pats[int(rng.integers(len(pats)))])
            total += len(parts[-1])
        fr[:, list(regs)] = np.concatenate(parts)[:n]
    for _ in range(n // 200):  # whole-frame repeats of earlier stretches
        a, length = int(rng.integers(0, n // 2)), int(rng.integers(8, 100))
        b = int(rng.integers(a + 1, n))
        m = min(length, n - b)
        fr[b:b + m] = fr[a:a + m]
    mut = rng.random((n, 25)) < p_mutate
    fr[mut] = [rng.choice(alphabet[r]) for r in np.nonzero(mut)[1]]
    return canonicalize(fr)


def export_tiny(path, seed: int = 11, **overrides):
    """A seeded tiny SidModel exported to path; returns the PyTorch model on the dequantized weights."""
    torch = pytest.importorskip("torch")
    from engine.config import ModelConfig
    from training.export import export_model, model_from_sidm
    from training.model import SidModel
    torch.manual_seed(seed)
    export_model(SidModel(ModelConfig(**(TINY | overrides))), path, {"source": "engine test"}, log=None)
    return model_from_sidm(path)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """(path of the .sidm, PyTorch model with its dequantized weights)."""
    path = tmp_path_factory.mktemp("engine") / "tiny.sidm"
    return path, export_tiny(path)


@pytest.fixture(scope="session")
def tiny_all(tmp_path_factory):
    """The same with local_events = "all" (a token for every register)."""
    path = tmp_path_factory.mktemp("engine") / "tiny_all.sidm"
    return path, export_tiny(path, seed=12, local_events="all", context_frames=8)


@pytest.fixture(scope="session")
def tiny_np(tmp_path_factory):
    """A torch-free tiny model (numpy random init) for tests that need no reference."""
    from engine.config import ModelConfig
    from sidlive.measure.enginebench import random_model
    path = tmp_path_factory.mktemp("engine") / "tiny_np.sidm"
    return random_model(path, ModelConfig(**TINY), seed=5)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory, request):
    torch = pytest.importorskip("torch")
    from engine.config import ModelConfig
    from training.export import export_model
    from training.model import SidModel
    torch.manual_seed(11)
    path = tmp_path_factory.mktemp("model") / "tiny.sidm"
    export_model(SidModel(ModelConfig(**TINY)), path, {"source": f"test {request.module.__name__}"}, log=None)
    return path
