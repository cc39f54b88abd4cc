"""Property tests of the OSC handler: any address and arguments give an event whose value is
already valid, or a one-line OscError; the server's handler counts it and never raises
(sidlive.measure.fuzzcheck.check_osc)."""
from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from sidlive.control.params import PARAMS
from sidlive.measure import fuzz
from sidlive.measure.fuzzcheck import check_osc
from tests.conftest import fuzz_settings

values = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 40, 2 ** 40), st.integers(-2, 130),
                   st.floats(allow_nan=True), st.text(max_size=30), st.binary(max_size=8),
                   st.sampled_from(["call_response", "prime", "1", "true", "off", " 0.5 "]),
                   st.lists(st.integers(0, 3), max_size=3))
addresses = st.one_of(st.sampled_from([f"/sidlive/{p}" for p in PARAMS] + ["/sidlive/mute", "/sidlive/solo",
                                                                             "/sidlive/note", "/sidlive/"]),
                      st.text(max_size=40), st.text(max_size=20).map(lambda s: "/sidlive/" + s))


@fuzz_settings(400)
@given(address=addresses, args=st.lists(values, max_size=3).map(tuple))
def test_any_message(address, args):
    assert check_osc(address, args) in ("ok", "error")


@fuzz_settings(200)
@given(seed=st.integers(0, 2 ** 32 - 1))
def test_campaign_mutations(seed):
    assert check_osc(*fuzz.osc_case(np.random.default_rng(seed))) in ("ok", "error")
