"""Prompt sources: shipped loops, uploads checked before they are kept (size, extension,
content), a .sid dumped on the fly per subtune on the real emulator, and the failures named."""
from __future__ import annotations

import numpy as np
import pytest

from sidlive.frames import Frames, save_txt
from sidlive.studio.library import Library
from sidlive.studio.sources import (MAX_SID_BYTES, MAX_UPLOAD_BYTES, SourceError, Sources, UploadTooLarge,
                                    check_size, inspect_upload)


@pytest.fixture
def sources(tmp_path):
    lib = Library(tmp_path / "lib")
    yield Sources(lib)
    lib.close()


def test_shipped_loops_are_sources(sources):
    listing = sources.listing()
    loops = [s for s in listing if s["kind"] == "loop"]
    assert {"loop:dojo", "loop:cabrinigreen"} <= {s["key"] for s in loops}
    fr = sources.frames("loop:dojo")
    assert len(fr) == 200 and fr.regs.std() > 0


def test_a_sid_upload_is_dumped_per_subtune(sources, tunes):
    data = tunes["two"].read_bytes()
    s = sources.add_upload("two.sid", data)
    assert s["kind"] == "sid" and s["songs"] == 2 and s["title"] == "two loops"
    assert sources.add_upload("again.sid", data)["key"] == s["key"]          # the same bytes: one source
    one, two = sources.frames(s["key"], 1), sources.frames(s["key"], 2)
    # the export plays its frames back exactly (the dumper reads the export's frame counts)
    assert np.array_equal(one.regs, tunes["a"].regs) and np.array_equal(two.regs, tunes["b"].regs)
    sid_id = int(s["key"].split(":")[1])
    assert (sources.library.source_dir(sid_id) / "sub2.regs").is_file()      # dumped once, then read
    with pytest.raises(SourceError, match=r"two.sid: field subtune is 3, allowed 1\.\.2"):
        sources.frames(s["key"], 3)


def test_frames_uploads(sources, tmp_path):
    save_txt(Frames(regs=np.full((60, 25), 7, np.uint8)), tmp_path / "x.txt")
    s = sources.add_upload("sidgpt.txt", (tmp_path / "x.txt").read_bytes())
    assert s["kind"] == "frames" and len(sources.frames(s["key"])) == 60


@pytest.mark.parametrize("name, make, words", [
    ("picture.sid", lambda t: t["picture"].read_bytes(), ["picture.sid", "magic"]),
    ("rsid.sid", lambda t: t["rsid"].read_bytes(), ["rsid.sid", "not supported", "RSID"]),
    ("broken.regs", lambda t: t["broken"].read_bytes(), ["broken.regs", "header"]),
    ("song.mp3", lambda t: b"ID3", ["song.mp3", ".mp3", ".sid, .regs, .txt"]),
    ("bad.txt", lambda t: b"ZZ\n", ["bad.txt", "line 1", "expected 50 hex characters"]),
])
def test_bad_uploads_say_what_is_wrong(sources, tunes, name, make, words):
    with pytest.raises(SourceError) as e:
        sources.add_upload(name, make(tunes))
    for w in words:
        assert w in str(e.value), str(e.value)
    assert sources.library.sources() == []                                   # nothing kept


def test_upload_size_limits():
    check_size("a.sid", MAX_SID_BYTES)
    with pytest.raises(UploadTooLarge, match=rf"a.sid: 70,000 bytes is over the limit for a .sid .*{MAX_SID_BYTES:,}"):
        check_size("a.sid", 70_000)
    with pytest.raises(UploadTooLarge, match=rf"{MAX_UPLOAD_BYTES + 1:,} bytes is over the limit for an upload"):
        inspect_upload("big.regs", bytes(MAX_UPLOAD_BYTES + 1))


def test_a_tune_whose_init_never_returns_is_reported(sources, tunes):
    s = sources.add_upload("hang.sid", tunes["hang"].read_bytes())          # the header is fine
    with pytest.raises(SourceError) as e:
        sources.frames(s["key"])
    msg = str(e.value)
    assert msg.startswith("hang.sid: subtune 1: init_timeout") and "did not return" in msg
    assert str(sources.library.root) not in msg                               # the user's file name, not ours
