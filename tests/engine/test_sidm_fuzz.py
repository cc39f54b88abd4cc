"""Property tests of the .sidm loader: any file gives a model whose outputs are finite
probabilities, or a one-line SidmFormatError naming it (sidlive.measure.fuzzcheck.check_sidm);
a changed byte is always refused unless the digest was redone."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.sidm import HEADER, HEADER_V1, digest
from sidlive.measure import fuzz
from sidlive.measure.fuzzcheck import check_sidm
from tests.conftest import fuzz_settings

CONFIG_KEYS = ["n_regs", "vocab", "write_order", "composers", "context_frames", "d_global", "n_layers_global",
               "n_heads_global", "mlp_mult_global", "d_local", "n_layers_local", "n_heads_local", "mlp_mult_local",
               "d_readout", "local_events", "rope_theta", "norm_eps", "copy_bonus_init", "init_std", "pointer", "bogus"]
hostile = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 64, 2 ** 64), st.integers(-8, 70),
                    st.floats(allow_nan=True), st.text(max_size=8), st.lists(st.integers(-2, 30), max_size=26),
                    st.lists(st.text(max_size=4), max_size=3), st.dictionaries(st.text(max_size=3), st.integers()))


@pytest.fixture(scope="module")
def base(tiny_np, tmp_path_factory):
    return tiny_np.read_bytes(), tmp_path_factory.mktemp("sidm_fuzz")


def with_head(blob: bytes, head: dict) -> bytes:
    """blob with its JSON header replaced, lengths and digest redone."""
    json_len = HEADER_V1.unpack_from(blob, 0)[4]
    tail = blob[HEADER.size + json_len + (-(HEADER.size + json_len)) % 16:]
    text = json.dumps(head, allow_nan=True).encode()
    body = text + b"\0" * ((-(HEADER.size + len(text))) % 16) + tail
    fixed = HEADER_V1.pack(b"SIDM", 2, 0, HEADER.size + len(body), len(text), HEADER_V1.unpack_from(blob, 0)[5])
    return fixed + digest(fixed, body) + body


@fuzz_settings(150)
@given(edits=st.lists(st.tuples(st.integers(4, 10 ** 6), st.integers(0, 255)), min_size=1, max_size=3),
       cut=st.integers(-40, 40))
def test_changed_bytes_are_refused(base, edits, cut):
    blob, folder = base
    b = bytearray(blob)
    for off, value in edits:
        b[off % len(b)] = value
    b = b[:len(b) + cut] if cut < 0 else b + bytes(cut)
    p = folder / "e.sidm"
    p.write_bytes(bytes(b))
    assert check_sidm(p, pristine=blob) in ("ok", "error")


@fuzz_settings(150)
@given(changes=st.dictionaries(st.sampled_from(CONFIG_KEYS), hostile, min_size=1, max_size=2),
       meta=st.one_of(st.just({"source": "t"}), hostile,
                      st.fixed_dictionaries({"baseline": hostile}), st.fixed_dictionaries({"mixture": hostile})))
def test_hostile_header_fields(base, changes, meta):
    blob, folder = base
    json_len = HEADER_V1.unpack_from(blob, 0)[4]
    head = json.loads(blob[HEADER.size:HEADER.size + json_len])
    head["config"].update(changes)
    head["meta"] = meta
    p = folder / "h.sidm"
    p.write_bytes(with_head(blob, head))
    assert check_sidm(p) in ("ok", "error")


@fuzz_settings(100)
@given(seed=st.integers(0, 2 ** 32 - 1))
def test_campaign_mutations(base, seed):
    blob, folder = base
    (folder / "b.sidm").write_bytes(blob)
    p, pristine = fuzz.sidm_case(np.random.default_rng(seed), folder, folder / "b.sidm")
    assert check_sidm(p, pristine) in ("ok", "error")
