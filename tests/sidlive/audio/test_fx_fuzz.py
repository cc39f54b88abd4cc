"""Property tests of effects presets: any TOML text gives a chain with every value finite and
in range, or a one-line FxError naming the file (sidlive.measure.fuzzcheck.check_chain)."""
from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from sidlive.audio.fx import EFFECTS, preset_paths
from sidlive.measure import fuzz
from sidlive.measure.fuzzcheck import check_chain
from tests.conftest import fuzz_settings
from tests.sidlive.control.test_maps_fuzz import toml_values

PRESETS = [p.read_text() for p in preset_paths()]
KEYS = ["name", "type", "effect", "x"] + sorted({k for params in EFFECTS.values() for k in params})


@fuzz_settings(200)
@given(effects=st.lists(st.dictionaries(st.sampled_from(KEYS), st.one_of(toml_values, st.sampled_from(
    [f'"{k}"' for k in EFFECTS] + ["0.5", "375", "1"])), max_size=4), max_size=4),
    name=st.one_of(st.just('"n"'), toml_values))
def test_a_hostile_chain(effects, name):
    text = f"name = {name}\n" + "".join("[[effect]]\n" + "".join(f"{k} = {v}\n" for k, v in e.items())
                                         for e in effects)
    assert check_chain(text) in ("ok", "error")


@fuzz_settings(150)
@given(seed=st.integers(0, 2 ** 32 - 1))
def test_campaign_mutations(seed):
    assert check_chain(fuzz.toml_case(np.random.default_rng(seed), PRESETS)) in ("ok", "error")
