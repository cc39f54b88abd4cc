"""The resumable collection dump on a temp tree of hand-made PSIDs."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sidlive.c64.collection import MIN_PARTIAL_SECONDS, dump_collection
from sidlive.c64.dump import dump_tune
from sidlive.c64.psid import build_psid, load_psid
from sidlive.frames import PAL_FRAME_RATE_HZ

MAX_SECONDS = 20.0

# init ($1000): STA $D401 ; LDA #0 ; STA $FB ; STA $FC ; LDA #$0F ; STA $D418 ; RTS  (15 bytes)
INIT = bytes([0x8D, 0x01, 0xD4, 0xA9, 0x00, 0x85, 0xFB, 0x85, 0xFC, 0xA9, 0x0F, 0x8D, 0x18, 0xD4, 0x60])
PLAY_AT = 0x1000 + len(INIT)
# play: INC $FB ; LDA $FB ; STA $D400 ; RTS
PLAY_OK = bytes([0xE6, 0xFB, 0xA5, 0xFB, 0x8D, 0x00, 0xD4, 0x60])


def play_then(fail: bytes, after_pages: int) -> bytes:
    """play: 16-bit counter in $FB/$FC; once $FC reaches `after_pages` run `fail`, else store $FB."""
    tail = bytes([0xA5, 0xFB, 0x8D, 0x00, 0xD4, 0x60])  # LDA $FB ; STA $D400 ; RTS
    return (bytes([0xE6, 0xFB, 0xD0, 0x02, 0xE6, 0xFC,  # INC $FB ; BNE +2 ; INC $FC
                   0xA5, 0xFC, 0xC9, after_pages,  # LDA $FC ; CMP #n
                   0xD0, len(fail)])  # BNE over the failure
            + fail + tail)


JAM = bytes([0x02])
HANG_AT = PLAY_AT + 12  # JMP to itself, at the failure's address
HANG = bytes([0x4C, HANG_AT & 0xFF, HANG_AT >> 8])


def psid(play: bytes = PLAY_OK, init: bytes = INIT, **kw) -> bytes:
    args = dict(load_addr=0x1000, init_addr=0x1000, play_addr=0x1000 + len(init), songs=1,
                start_song=1, title="T", author="A")
    args.update(kw)
    return build_psid(init + play, **args)


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "C64Music"
    files = {
        "MUSICIANS/A/ok_two_songs.sid": psid(songs=2, start_song=2, title="Two"),
        "MUSICIANS/A/ok_cia.sid": psid(speed_bits=1, title="Cia"),
        "MUSICIANS/B/jam_late.sid": psid(play_then(JAM, 3)),  # jams after 768 plays: 15.3 s kept
        "MUSICIANS/B/hang_early.sid": psid(play_then(HANG, 1)),  # hangs after 256 plays: 5.1 s, dropped
        "MUSICIANS/B/init_hangs.sid": psid(init=bytes([0x4C, 0x00, 0x10]), play=PLAY_OK),
        "MUSICIANS/C/broken.sid": b"PSID" + bytes(40),
        "MUSICIANS/C/rsid.sid": psid(play=b"", magic=b"RSID", play_addr=0),
    }
    for rel, blob in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(blob)
    (root / "DOCUMENTS").mkdir()
    md5 = load_psid(root / "MUSICIANS/A/ok_two_songs.sid").md5
    (root / "DOCUMENTS/Songlengths.md5").write_text(f"[Database]\n{md5}=1:00 0:03\n")
    return root


def read_index(out):
    return [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]


def check_dataset(out, root):
    entries = read_index(out)
    keys = [(e["path"], e["subtune"]) for e in entries]
    assert len(keys) == len(set(keys))
    for e in entries:
        if e["shard"] is None:
            assert e["frames"] == 0 and e["offset"] is None
            continue
        data = np.load(out / e["shard"], mmap_mode="r")  # (rows, 25)
        assert data.dtype == np.uint8 and data.shape[1] == 25
        assert e["offset"] + e["frames"] <= data.shape[0]
        rows = np.asarray(data[e["offset"]:e["offset"] + e["frames"]])
        if e["status"] == "ok":  # the shard holds exactly what a single dump gives
            f = dump_tune(root / e["path"], subtune=e["subtune"],
                          seconds=e["frames"] / PAL_FRAME_RATE_HZ)
            assert np.array_equal(rows, f.regs)
    assert not list((out / "shards").glob("*.tmp*"))
    return {e["path"]: e for e in entries}


def test_collection_dump_statuses_and_resume(tree, tmp_path):
    out = tmp_path / "out"
    s = dump_collection(tree, out, workers=2, max_seconds=MAX_SECONDS, shard_mb=0.01, progress=False)
    by = check_dataset(out, tree)
    assert len(by) == 7 and s["entries"] == 7
    two = by["MUSICIANS/A/ok_two_songs.sid"]
    assert (two["status"], two["subtune"], two["usable"], two["title"]) == ("ok", 2, True, "Two")
    assert two["frames"] == round(3 * PAL_FRAME_RATE_HZ) and two["seconds_from"] == "Songlengths.md5"
    cia = by["MUSICIANS/A/ok_cia.sid"]
    assert (cia["status"], cia["speed"]) == ("ok", "cia")
    assert cia["frames"] == round(MAX_SECONDS * PAL_FRAME_RATE_HZ)  # default 180 s, capped
    jam = by["MUSICIANS/B/jam_late.sid"]
    assert jam["status"] == "jam" and jam["usable"] and jam["shard"]
    assert 765 <= jam["frames"] <= 769 and jam["frames"] >= MIN_PARTIAL_SECONDS * PAL_FRAME_RATE_HZ
    hang = by["MUSICIANS/B/hang_early.sid"]
    assert hang["status"] == "play_timeout" and not hang["usable"] and hang["frames"] == 0
    assert by["MUSICIANS/B/init_hangs.sid"]["status"] == "init_timeout"
    broken = by["MUSICIANS/C/broken.sid"]
    assert broken["status"] == "error" and "broken.sid: file is 44 bytes" in broken["message"]
    rsid = by["MUSICIANS/C/rsid.sid"]
    assert rsid["status"] == "unsupported" and rsid["message"].startswith("not supported: RSID tune")
    assert s["statuses"]["ok"]["count"] == 2 and s["total_frames"] == sum(e["frames"] for e in by.values())
    assert json.loads((out / "summary.json").read_text())["entries"] == 7
    assert len(list((out / "shards").glob("shard-*.npy"))) >= 2  # small shards: several written

    # run again: nothing redone, index unchanged
    before = (out / "index.jsonl").read_bytes()
    s2 = dump_collection(tree, out, workers=1, max_seconds=MAX_SECONDS, shard_mb=0.01, progress=False)
    assert (out / "index.jsonl").read_bytes() == before and s2["this_run"]["entries"] == 0

    # a kill mid-way: last index line cut short, a tmp shard and an unreferenced shard left
    lines = before.splitlines(keepends=True)
    last = json.loads(lines[-1])
    (out / "index.jsonl").write_bytes(b"".join(lines[:-1]) + lines[-1][:25])
    (out / "shards" / "shard-000777.npy.tmp").write_bytes(b"partial")
    np.save(out / "shards" / "shard-000778.npy", np.zeros((3, 25), np.uint8))
    s3 = dump_collection(tree, out, workers=1, max_seconds=MAX_SECONDS, shard_mb=0.01, progress=False)
    assert s3["this_run"]["entries"] == 1
    by3 = check_dataset(out, tree)
    assert len(by3) == 7 and by3[last["path"]]["status"] == last["status"]
    assert by3[last["path"]]["frames"] == last["frames"]
    assert not (out / "shards" / "shard-000778.npy").exists()

    # --all-subtunes adds only the subtunes not yet done
    s4 = dump_collection(tree, out, workers=1, max_seconds=2.0, all_subtunes=True, progress=False)
    assert s4["this_run"]["entries"] == 1
    entries = read_index(out)
    assert sorted(e["subtune"] for e in entries if e["path"] == "MUSICIANS/A/ok_two_songs.sid") == [1, 2]


def test_limit_and_bad_root(tmp_path, tree):
    out = tmp_path / "lim"
    s = dump_collection(tree, out, workers=1, max_seconds=1.0, limit=2, progress=False)
    assert s["entries"] == 2
    with pytest.raises(ValueError, match=r"HVSC_ROOT .*nowhere is not a folder"):
        dump_collection(tmp_path / "nowhere", out, workers=1, progress=False)
