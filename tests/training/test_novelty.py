"""The verbatim-run index: planted copies, random frames, tune boundaries, hash collisions."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sidlive.frames import PAL_FRAME_RATE_HZ
from training.novelty import NoveltyIndex, read_index


def rand(rng, n):
    return rng.integers(0, 256, (n, 25), dtype=np.uint8)


@pytest.fixture(scope="module")
def tunes():
    rng = np.random.default_rng(7)
    return [rand(rng, n) for n in (1200, 2000, 800)]


@pytest.fixture(scope="module")
def index(tunes):
    return NoveltyIndex.from_sequences(tunes, ["A.sid", "B.sid", "C.sid"])


def test_planted_copy_is_found_with_its_location(tunes, index):
    q = rand(np.random.default_rng(8), 3000)
    q[1000:1300] = tunes[1][700:1000]
    r = index.longest_run(q)
    assert (r["frames"], r["query_start"], r["path"], r["tune_offset"]) == (300, 1000, "B.sid", 700)
    assert r["seconds"] == pytest.approx(300 / PAL_FRAME_RATE_HZ)
    assert r["present_windows"] == 300 - 7 and r["present_stretch_frames"] == 300


def test_random_frames_share_nothing(index):
    r = index.longest_run(rand(np.random.default_rng(9), 3000))
    assert r["frames"] == 0 and r["path"] is None and r["present_windows"] == 0


def test_runs_shorter_than_a_window_are_not_found(tunes, index):
    q = rand(np.random.default_rng(10), 500)
    q[100:107] = tunes[0][50:57]  # 7 frames: no full 8-frame window
    assert index.longest_run(q)["frames"] == 0
    q[100:108] = tunes[0][50:58]
    assert index.longest_run(q)["frames"] == 8


def test_a_run_never_crosses_a_tune_boundary(tunes, index):
    q = np.concatenate([tunes[0][-100:], tunes[1][:150]])  # A's end then B's start, adjacent in the index
    r = index.longest_run(q)
    assert (r["frames"], r["path"], r["tune_offset"], r["query_start"]) == (150, "B.sid", 0, 100)


def test_whole_tune_replayed(tunes, index):
    r = index.longest_run(tunes[2])
    assert (r["frames"], r["path"], r["tune_offset"]) == (800, "C.sid", 0)


def test_hash_hits_are_verified(tunes):
    """Point one index hash at a query window that is not really there: no match comes back."""
    idx = NoveltyIndex.from_sequences(tunes, ["A.sid", "B.sid", "C.sid"])
    q = rand(np.random.default_rng(11), 100)
    from training.novelty import _window_hashes
    qh = _window_hashes(q, 8)
    idx.hashes = idx.hashes.copy()
    idx.hashes[0] = qh[40]  # a forged collision: position positions[0] now "has" q's window 40
    order = np.argsort(idx.hashes, kind="stable")
    idx.hashes, idx.positions = idx.hashes[order], idx.positions[order]
    r = idx.longest_run(q)
    assert r["present_windows"] == 1 and r["frames"] < 8


def test_common_windows_do_not_seed_but_extend(tunes):
    rng = np.random.default_rng(12)
    riff = rand(rng, 100)
    a, b = tunes[0].copy(), tunes[1].copy()
    a[200:300] = riff  # the riff occurs in both training tunes
    b[500:600] = riff
    idx = NoveltyIndex.from_sequences([a, b], ["A.sid", "B.sid"])
    q = rand(rng, 1000)
    q[300:400] = riff
    assert idx.longest_run(q, max_seed_hits=2)["frames"] == 100
    r = idx.longest_run(q, max_seed_hits=1)  # too common to be evidence of copying one tune
    assert r["frames"] == 0 and r["seed_windows"] == 0 and r["present_stretch_frames"] == 100
    q[400:500] = a[300:400]  # ...but a rare continuation seeds, and extends back over the riff
    r = idx.longest_run(q, max_seed_hits=1)
    assert (r["frames"], r["path"], r["tune_offset"], r["query_start"]) == (200, "A.sid", 200, 300)


def write_dataset(root, tunes, statuses):
    (root / "shards").mkdir(parents=True)
    np.save(root / "shards" / "shard-0.npy", np.concatenate(tunes))
    lines, off = [], 0
    for i, (t, st) in enumerate(zip(tunes, statuses)):
        lines.append(json.dumps({"path": f"T{i}.sid", "md5": f"{i:032x}", "author": "X", "frames": len(t),
                                 "status": st, "shard": "shards/shard-0.npy", "offset": off}))
        off += len(t)
    (root / "index.jsonl").write_text("\n".join(lines) + "\n")


def test_build_from_dataset_dir_save_and_load(tmp_path, tunes):
    write_dataset(tmp_path, tunes, ["ok", "unsupported", "ok"])
    idx = NoveltyIndex.build(tmp_path)
    assert [e["path"] for e in idx.entries] == ["T0.sid", "T2.sid"]
    q = np.concatenate([tunes[2][10:260], tunes[1][:300]])  # T1 is not "ok": not indexed
    r = idx.longest_run(q)
    assert (r["frames"], r["path"], r["tune_offset"], r["shard_row"]) == (250, "T2.sid", 10, 1200 + 2000 + 10)
    idx.save(tmp_path / "nov.npz")
    again = NoveltyIndex.load(tmp_path / "nov.npz", tmp_path)
    assert again.longest_run(q) == r
    held_out = NoveltyIndex.build(tmp_path, keep=lambda e: e["path"] != "T2.sid")
    assert held_out.longest_run(q)["frames"] == 0


def test_bad_dataset_entries_are_named(tmp_path, tunes):
    write_dataset(tmp_path, tunes[:1], ["ok"])
    p = tmp_path / "index.jsonl"
    e = json.loads(p.read_text())
    p.write_text(json.dumps(e | {"offset": "zero"}) + "\n")
    with pytest.raises(ValueError, match=r"index.jsonl: line 1: field 'offset'"):
        read_index(tmp_path)
    p.write_text(json.dumps(e | {"frames": 5000}) + "\n")
    with pytest.raises(ValueError, match=r"line 1: offset 0 \+ frames 5000 exceeds the 1200 rows"):
        NoveltyIndex.build(tmp_path)
    with pytest.raises(FileNotFoundError, match="index.jsonl"):
        read_index(tmp_path / "nowhere")


def test_bad_query_is_named(index):
    with pytest.raises(ValueError, match=r"\(N, 25\) uint8"):
        index.longest_run(np.zeros((10, 25), np.int32))
