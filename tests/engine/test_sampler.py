"""The Numba sampler against training/sample.py's pick and RNG, value for value."""
from __future__ import annotations

import numpy as np
import pytest

from engine.sampler import pick, select, sort_desc, splitmix64, uniform

torch = pytest.importorskip("torch")
from training import sample as ref  # noqa: E402


def test_rng_matches_reference():
    for seed in (0, 1, 7391738265, (1 << 64) - 1, 12345678901234567890):
        for counter in (0, 1, 24, 25, 1000, 123456789):
            assert int(splitmix64(np.uint64(seed), counter)) == ref.splitmix64(seed, counter)
            assert uniform(np.uint64(seed), counter) == ref.uniform(seed, counter)


def test_select_is_kth_smallest():
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 256):
        for _ in range(30):
            a = rng.integers(-5, 5, n).astype(np.float64) if rng.random() < 0.5 else rng.normal(size=n)
            k = int(rng.integers(0, n))
            assert select(a.copy(), n, k) == np.sort(a)[k]


def test_sort_desc_orders_by_value_then_index():
    rng = np.random.default_rng(1)
    for n in (0, 1, 5, 64, 256):
        p = rng.integers(0, 4, 256).astype(np.float64)
        idx = rng.permutation(256)[:n].astype(np.int64)
        want = sorted(idx.tolist(), key=lambda i: (-p[i], i))
        buf = np.zeros(256, np.int64)
        buf[:n] = idx
        sort_desc(buf, n, p, np.zeros(256, np.int64))
        assert buf[:n].tolist() == want


FREE = np.ones(256, np.uint8)


def _scratch(allow=None):
    """pick's scratch arrays and its restriction (none unless allow is given)."""
    return ([np.zeros(256) for _ in range(3)] + [np.zeros(256, np.int64) for _ in range(2)]
            + [allow is not None, FREE if allow is None else allow.astype(np.uint8)])


@pytest.mark.parametrize("temperature,top_k,top_p", [
    (0.0, 0, 1.0), (1.0, 0, 1.0), (0.5, 0, 1.0), (1.0, 40, 1.0), (1.0, 1, 1.0), (1.0, 255, 1.0),
    (1.0, 0, 0.9), (2.0, 10, 0.5), (1.0, 0, 0.0), (0.9, 40, 0.95), (1.0, 256, 1.0),
])
def test_pick_matches_reference(temperature, top_k, top_p):
    rng = np.random.default_rng(top_k * 7 + int(top_p * 100))
    for trial in range(150):
        if trial % 3 == 0:   # quantized log-probs: many exact ties
            lp = np.round(rng.normal(-6, 2, 256)) - 0.5
        else:
            lp = rng.normal(-6, 3, 256)
        lp[int(rng.integers(0, 256))] = -0.01 * trial
        u = ref.uniform(trial, trial * 25)
        want = ref.pick(lp, temperature, top_k, top_p, u)
        got = pick(lp, temperature, top_k, top_p, u, *_scratch())
        assert got == want, (trial, got, want)


def test_pick_extreme_u_stays_on_allowed_values():
    lp = np.full(256, -50.0)
    lp[[3, 200]] = -0.1
    for u in (0.0, 1.0 - 2 ** -53):
        assert pick(lp, 1.0, 2, 1.0, u, *_scratch()) == ref.pick(lp, 1.0, 2, 1.0, u)


@pytest.mark.parametrize("temperature,top_k,top_p", [(0.0, 0, 1.0), (1.0, 0, 1.0), (0.9, 40, 0.95), (1.0, 1, 1.0)])
def test_restricted_pick_matches_reference_and_keeps_to_the_allowed_values(temperature, top_k, top_p):
    """The silence guard's restriction: only allowed values, the reference's choice; when
    truncation leaves no allowed value, the most likely allowed one."""
    rng = np.random.default_rng(3)
    for trial in range(150):
        lp = rng.normal(-6, 3, 256)
        allow = rng.random(256) < (0.5 if trial % 2 else 0.02)
        allow[int(rng.integers(0, 256))] = True
        u = ref.uniform(trial, trial)
        want = ref.pick(lp, temperature, top_k, top_p, u, allow)
        got = pick(lp, temperature, top_k, top_p, u, *_scratch(allow))
        assert got == want and allow[got], (trial, got, want)
    lp = np.zeros(256)
    lp[7] = 5.0                       # top-k 1 keeps only 7, which is not allowed
    allow = np.zeros(256, bool)
    allow[[9, 11]] = True
    lp[11] = 1.0
    assert pick(lp, 1.0, 1, 1.0, 0.5, *_scratch(allow)) == ref.pick(lp, 1.0, 1, 1.0, 0.5, allow) == 11

