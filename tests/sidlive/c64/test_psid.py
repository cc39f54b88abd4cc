"""PSID header parsing and Songlengths.md5 parsing."""
from __future__ import annotations

import hashlib
import struct

import pytest

from sidlive.c64.psid import PsidFormatError, UnsupportedTune, build_psid, load_psid, parse_psid
from sidlive.c64.songlengths import (SonglengthsFormatError, find_hvsc_root, load_songlengths, parse_songlengths,
                                     parse_time, song_seconds, songlengths_path)

PROG = bytes([0xA9, 0x0F, 0x8D, 0x18, 0xD4, 0x60, 0x60])  # LDA #$0F; STA $D418; RTS; RTS


def test_v1_header():
    blob = build_psid(PROG, load_addr=0x1000, init_addr=0x1000, play_addr=0x1006, songs=3,
                      start_song=2, speed_bits=0b010, title="Tit", author="Au", released="1987 X",
                      version=1)
    t = parse_psid(blob, "t.sid")
    assert (t.magic, t.version, t.data_offset) == ("PSID", 1, 0x76)
    assert (t.load_addr, t.init_addr, t.play_addr) == (0x1000, 0x1000, 0x1006)
    assert (t.songs, t.start_song) == (3, 2)
    assert [t.speed_cia(s) for s in (1, 2, 3)] == [False, True, False]
    assert (t.title, t.author, t.released) == ("Tit", "Au", "1987 X")
    assert (t.clock, t.chip, t.flags) == ("unknown", "unknown", 0)
    assert (t.frames_clock(), t.frames_chip()) == ("PAL", "6581")
    assert t.data == PROG and t.end_addr == 0x1006
    assert t.md5 == hashlib.md5(blob).hexdigest()
    assert (t.is_rsid, t.is_mus, t.n_sids, t.unsupported()) == (False, False, 1, None)
    with pytest.raises(ValueError, match=r"subtune 4 out of range 1..3"):
        t.speed_cia(4)


def test_v2_flags_and_strings():
    blob = bytearray(build_psid(PROG, load_addr=0xC000, init_addr=0, play_addr=0xC006,
                                flags=(2 << 2) | (2 << 4), version=2))
    blob[0x16:0x16 + 6] = b"Caf\xe9 \x80"  # Windows-1252: e-acute, euro sign
    blob[0x36:0x36 + 32] = b"A" * 32  # no NUL terminator
    t = parse_psid(bytes(blob))
    assert t.title == "Caf\u00e9 \u20ac" and t.author == "A" * 32
    assert (t.clock, t.chip) == ("NTSC", "8580")
    assert (t.frames_clock(), t.frames_chip()) == ("NTSC", "8580")
    assert t.init_addr == 0xC000  # initAddress 0 -> load address
    for clock_bits, name in ((1, "PAL"), (3, "any")):
        t2 = parse_psid(build_psid(PROG, load_addr=0x1000, init_addr=0x1000, play_addr=0,
                                   flags=clock_bits << 2 | 3 << 4))
        assert (t2.clock, t2.chip, t2.frames_clock(), t2.frames_chip()) == (name, "any", "PAL", "6581")


def test_speed_bits_beyond_32_share_bit_31():
    t = parse_psid(build_psid(PROG, load_addr=0x1000, init_addr=0x1000, play_addr=0x1006,
                              songs=40, speed_bits=1 << 31))
    assert not t.speed_cia(31)
    assert all(t.speed_cia(s) for s in (32, 33, 40))


def test_load_address_zero_reads_it_from_the_data():
    blob = build_psid(PROG, load_addr=0x0801, init_addr=0x0801, play_addr=0x0807,
                      embed_load_addr=True)
    assert struct.unpack_from(">H", blob, 8)[0] == 0
    t = parse_psid(blob)
    assert t.load_addr == 0x0801 and t.data == PROG


def test_rsid_mus_and_multi_sid_are_recognised_as_unsupported():
    rsid = parse_psid(build_psid(PROG, load_addr=0x1000, init_addr=0x1000, play_addr=0,
                                 magic=b"RSID"), "r.sid")
    assert rsid.is_rsid and rsid.unsupported().startswith("not supported: RSID tune r.sid")
    with pytest.raises(UnsupportedTune, match=r"^not supported: RSID tune r\.sid"):
        rsid.require_supported()
    two = parse_psid(build_psid(PROG, load_addr=0x1000, init_addr=0x1000, play_addr=0x1006,
                                version=3, second_sid=0x42), "two.sid")
    assert two.n_sids == 2 and two.second_sid_addr == 0xD420
    assert two.unsupported() == "not supported: 2-SID tune two.sid (extra SID at $D420)"
    three = parse_psid(build_psid(PROG, load_addr=0x1000, init_addr=0x1000, play_addr=0x1006,
                                  version=4, second_sid=0x42, third_sid=0xE0), "3.sid")
    assert three.n_sids == 3 and three.unsupported().startswith("not supported: 3-SID tune")
    # v2 has no second-SID byte; an invalid (odd) address means no extra SID
    for version, byte in ((2, 0x42), (3, 0x43), (3, 0x80)):
        one = parse_psid(build_psid(PROG, load_addr=0x1000, init_addr=0x1000, play_addr=0x1006,
                                    version=version, second_sid=byte))
        assert one.n_sids == 1 and one.unsupported() is None
    mus = parse_psid(build_psid(PROG, load_addr=0x1000, init_addr=0x1000, play_addr=0,
                                flags=0x15), "m.sid")
    assert mus.is_mus and mus.unsupported().startswith("not supported: MUS tune m.sid")


def _good(**kw) -> bytearray:
    args = dict(load_addr=0x1000, init_addr=0x1000, play_addr=0x1006, songs=2, start_song=1)
    args.update(kw)
    return bytearray(build_psid(PROG, **args))


def _put16(blob: bytearray, off: int, value: int) -> bytes:
    struct.pack_into(">H", blob, off, value)
    return bytes(blob)


@pytest.mark.parametrize("blob, message", [
    (b"PSX\0" + bytes(0x80), "x.sid: magic (offset $00) is b'PSX\\x00', allowed b'PSID' or b'RSID'"),
    (b"PS", "x.sid: magic (offset $00) is b'PS', allowed b'PSID' or b'RSID'"),
    (bytes(_good()[:0x50]), "x.sid: file is 80 bytes, shorter than the 118-byte PSID v1 header"),
    (bytes(_good()[:0x78]), "x.sid: file is 120 bytes, shorter than the 124-byte PSID v2 header"),
    (_put16(_good(), 0x04, 5), "x.sid: version (offset $04) is 5, allowed 1..4"),
    (_put16(_good(), 0x04, 0), "x.sid: version (offset $04) is 0, allowed 1..4"),
    (_put16(_good(magic=b"RSID", version=2), 0x04, 1), "x.sid: version (offset $04) is 1, allowed 2..4 for RSID"),
    (_put16(_good(), 0x06, 0x10), "x.sid: dataOffset (offset $06) is $0010, allowed $007C..$0083 (header size..file size)"),
    (_put16(_good(), 0x06, 0x200), "x.sid: dataOffset (offset $06) is $0200, allowed $007C..$0083 (header size..file size)"),
    (_put16(_good(), 0x0E, 0), "x.sid: songs (offset $0E) is 0, allowed 1..256"),
    (_put16(_good(), 0x0E, 257), "x.sid: songs (offset $0E) is 257, allowed 1..256"),
    (_put16(_good(), 0x10, 3), "x.sid: startSong (offset $10) is 3, allowed 1..2 (songs)"),
    (_put16(_good(), 0x10, 0), "x.sid: startSong (offset $10) is 0, allowed 1..2 (songs)"),
    (_put16(_good(), 0x08, 0xFFFC), "x.sid: data runs past $FFFF: 7 bytes loaded at $FFFC end at $10002; allowed end <= $FFFF"),
    (bytes(_good()[:0x7C]), "x.sid: no program data after offset $007C; allowed 1..65536 bytes"),
    (_put16(_good(), 0x08, 0)[:0x7D], "x.sid: loadAddress (offset $08) is 0, so the data (offset $007C) must start with a 2-byte load address, but it is 1 bytes"),
])
def test_malformed_headers_name_file_field_value_and_range(blob, message):
    with pytest.raises(PsidFormatError) as e:
        parse_psid(bytes(blob), "x.sid")
    assert str(e.value) == message


def test_load_psid_names_the_path(tmp_path):
    p = tmp_path / "bad.sid"
    p.write_bytes(b"NOPE" + bytes(200))
    with pytest.raises(PsidFormatError, match=r"bad\.sid: magic \(offset \$00\)"):
        load_psid(p)


def test_real_collection_headers(hvsc):
    files = sorted(hvsc.rglob("*.sid"))[:300]
    assert files
    for p in files:
        t = load_psid(p)
        assert t.magic == "PSID" and 1 <= t.start_song <= t.songs
        assert t.load_addr + len(t.data) <= 0x10000


# ---------------------------------------------------------------------------- Songlengths

SONGLENGTHS = """\
[Database]
; /MUSICIANS/A/Someone/Tune.sid
0123456789abcdef0123456789ABCDEF=3:28 0:16.5 1:02.250(G)
; /DEMOS/x.sid
ffffffffffffffffffffffffffffffff=0:05(M)(G)

"""


def test_parse_songlengths_text():
    t = parse_songlengths(SONGLENGTHS)
    assert t["0123456789abcdef0123456789abcdef"] == [208.0, 16.5, 62.25]
    assert t["f" * 32] == [5.0]
    assert song_seconds(t, "0123456789ABCDEF0123456789abcdef", 3) == 62.25
    assert song_seconds(t, "f" * 32, 2) is None and song_seconds(t, "0" * 32, 1) is None
    assert parse_time("10:00.001") == 600.001 and parse_time("1:60") is None
    assert parse_time("1:5x") is None


@pytest.mark.parametrize("text, message", [
    ("[Database]\nnot a line\n", "db: line 2: 'not a line' is not '; comment', '[section]' or '<32 hex md5>=m:ss[.mmm] ...'"),
    ("abc=1:00\n", "db: line 1: 'abc=1:00' is not '; comment', '[section]' or '<32 hex md5>=m:ss[.mmm] ...'"),
    ("0" * 32 + "=1:00 2:75\n", "db: line 1: time 2 is '2:75', expected m:ss or m:ss.mmm (seconds 00-59, optional (X) attributes)"),
    ("0" * 32 + "=\n", "db: line 1: no song length after '='"),
])
def test_songlengths_errors(text, message):
    with pytest.raises(SonglengthsFormatError) as e:
        parse_songlengths(text, "db")
    assert str(e.value) == message


def test_find_hvsc_root(tmp_path):
    (tmp_path / "DOCUMENTS").mkdir()
    (tmp_path / "DOCUMENTS" / "Songlengths.md5").write_text(SONGLENGTHS)
    tune = tmp_path / "MUSICIANS" / "A" / "t.sid"
    tune.parent.mkdir(parents=True)
    tune.write_bytes(b"")
    assert find_hvsc_root(tune) == tmp_path.resolve()
    assert songlengths_path(tmp_path) == tmp_path / "DOCUMENTS" / "Songlengths.md5"
    assert find_hvsc_root(tmp_path.parent / "elsewhere.sid") is None


def test_real_songlengths(hvsc):
    path = songlengths_path(hvsc)
    table = load_songlengths(path)
    assert len(table) > 10_000
    tune = load_psid(sorted(hvsc.rglob("*.sid"))[0])
    secs = song_seconds(table, tune.md5, tune.start_song)
    assert secs is not None and 1 <= secs < 3600
