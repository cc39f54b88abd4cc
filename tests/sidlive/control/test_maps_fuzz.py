"""Property tests of controller maps (and their [keyboard]): any TOML text gives a map within
every range that reads back as itself, or a one-line ControllerMapError naming the file
(sidlive.measure.fuzzcheck.check_map). toml_values is shared with the effects presets' test."""
from __future__ import annotations

import json
import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from sidlive.control.keyvoice import KeyboardConfig
from sidlive.control.maps import preset_paths
from sidlive.control.params import PARAMS
from sidlive.measure import fuzz
from sidlive.measure.fuzzcheck import check_map
from tests.conftest import fuzz_settings

PRESETS = [p.read_text() for p in preset_paths()]


def toml_text(value) -> str:
    """A Python value as a TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(map(toml_text, value)) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_text(v)}" for k, v in value.items()) + " }"
    return str(value)


scalars = st.one_of(st.booleans(), st.integers(-2 ** 63, 2 ** 63 - 1), st.integers(-3, 130), st.floats(),
                    st.text(max_size=12), st.sampled_from(list(PARAMS) + ["pulse", "noise", "sustain", "none",
                                                                          "toggle", "momentary", "exp", "loop"]))
toml_values = st.one_of(st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text("abcxyz", min_size=1, max_size=3), inner, max_size=2)),
    max_leaves=6).map(toml_text), st.sampled_from(fuzz.HOSTILE_TOML))
KEYS = ["name", "channel", "program_change", "cc", "note", "param", "min", "max", "curve", "mode", "x"] + \
    list(KeyboardConfig.fields())


@fuzz_settings(200)
@given(preset=st.sampled_from(PRESETS), line=st.integers(0, 200), key=st.sampled_from(KEYS), value=toml_values,
       table=st.sampled_from(["", "[keyboard]\n", "[[knob]]\n", "[[button]]\n"]))
def test_a_hostile_value_in_a_map(preset, line, key, value, table):
    lines = preset.splitlines()
    lines.insert(line % (len(lines) + 1), f"{table}{key} = {value}")
    assert check_map("\n".join(lines) + "\n") in ("ok", "error")


@fuzz_settings(150)
@given(keyboard=st.fixed_dictionaries({"channel": st.integers(0, 17)},
                                      optional={k: toml_values for k in KeyboardConfig.fields()[1:]}))
def test_keyboard_section(keyboard):
    text = 'name = "k"\n[keyboard]\n' + "".join(f"{k} = {v}\n" for k, v in keyboard.items())
    assert check_map(text) in ("ok", "error")


@fuzz_settings(150)
@given(seed=st.integers(0, 2 ** 32 - 1))
def test_campaign_mutations(seed):
    assert check_map(fuzz.toml_case(np.random.default_rng(seed), PRESETS)) in ("ok", "error")
