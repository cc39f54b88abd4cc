"""Property tests of the PSID loader: any .sid gives header fields in their ranges or a
one-line PsidFormatError naming it, and dumping it gives the frames asked for from a tune
that kept time, or PsidFormatError / UnsupportedTune / DumpError (sidlive.measure.fuzzcheck)."""
from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidlive.c64.psid import build_psid
from sidlive.measure import fuzz
from sidlive.measure.fuzzcheck import check_psid, check_tune
from tests.conftest import fuzz_settings

FIELDS = {"version": 4, "dataOffset": 6, "loadAddress": 8, "initAddress": 10, "playAddress": 12, "songs": 14,
          "startSong": 16, "flags": 0x76, "startPage": 0x78, "secondSID": 0x7A}
u16 = st.one_of(st.integers(0, 0xFFFF), st.sampled_from([0, 1, 2, 4, 5, 0x76, 0x7C, 0x1000, 0xD400, 0xFFFF]))


def tune_bytes(fields: dict, cut: int, speed: int) -> bytes:
    blob = bytearray(build_psid(fuzz.TUNE, load_addr=0x1000, init_addr=0x1000, play_addr=0x100A, songs=3))
    for name, value in fields.items():
        struct.pack_into(">H", blob, FIELDS[name], value)
    struct.pack_into(">I", blob, 18, speed)
    return bytes(blob[:len(blob) + cut] if cut < 0 else blob + bytes(cut))


@fuzz_settings(300)
@given(fields=st.dictionaries(st.sampled_from(sorted(FIELDS)), u16, max_size=3), cut=st.integers(-130, 8),
       speed=st.integers(0, 2 ** 32 - 1), magic=st.sampled_from([b"PSID", b"RSID", b"PSIX"]))
def test_psid_header(fields, cut, speed, magic):
    assert check_psid(magic + tune_bytes(fields, cut, speed)[4:]) in ("ok", "error")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("psid_fuzz")


@fuzz_settings(60)
@given(fields=st.dictionaries(st.sampled_from(["initAddress", "playAddress", "loadAddress", "songs", "startSong",
                                               "flags"]), u16, max_size=2), speed=st.sampled_from([0, 1, 2 ** 32 - 1]))
def test_dumping_a_hostile_tune(folder, fields, speed):
    p = folder / "t.sid"
    p.write_bytes(tune_bytes(fields, 0, speed))
    if check_psid(p.read_bytes(), p.name) == "ok":
        assert check_tune(p, seconds=0.2) in ("ok", "error")


@fuzz_settings(100)
@given(seed=st.integers(0, 2 ** 32 - 1))
def test_campaign_mutations(folder, seed):
    p = fuzz.psid_case(np.random.default_rng(seed), folder)
    assert check_psid(p.read_bytes(), p.name) in ("ok", "error")
