import json

import numpy as np
import pytest

from engine.config import normalize_composer
from training.dataset import (DatasetError, FrameStore, WindowSampler, is_validation, load_index, rotate_voices,
                              split, top_composers, transpose, write_synthetic)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("synth")
    write_synthetic(d, n_tunes=30, seed=1, min_frames=40, max_frames=400)
    return d


def test_load_index_uses_ok_entries_only(data):
    lines = (data / "index.jsonl").read_text().splitlines()
    extra = json.loads(lines[0]) | {"status": "error", "md5": "f" * 32}
    (data / "index.jsonl").write_text("\n".join(lines + [json.dumps(extra)]) + "\n")
    tunes = load_index(data)
    assert len(tunes) == 30 and all(t.md5 != "f" * 32 for t in tunes)
    assert {t.composer for t in tunes} == {"Alpha", "Beta", "any"}


def test_load_index_errors_name_file_line_and_field(tmp_path):
    (tmp_path / "index.jsonl").write_text('{"md5": "a", "status": "ok", "shard": "s.npy", "frames": "x", "offset": 0}\n')
    with pytest.raises(DatasetError, match=r"index.jsonl: line 1: field 'frames'"):
        load_index(tmp_path)
    (tmp_path / "index.jsonl").write_text("\n{nope\n")
    with pytest.raises(DatasetError, match=r"line 2: not JSON"):
        load_index(tmp_path)
    with pytest.raises(DatasetError, match="missing"):
        load_index(tmp_path / "absent")


def test_store_checks_tune_inside_shard(data):
    tunes = load_index(data)
    store = FrameStore(data)
    assert store.frames(tunes[0]).shape == (tunes[0].frames, 25)
    import dataclasses
    bad = dataclasses.replace(tunes[-1], frames=tunes[-1].frames + 1)
    with pytest.raises(DatasetError, match="exceeds the shard"):
        store.frames(bad)


def test_split_by_tune_is_seeded_and_disjoint(data):
    tunes = load_index(data)
    tr, va = split(tunes, 300, seed=7)
    assert {t.md5 for t in tr}.isdisjoint({t.md5 for t in va})
    assert len(tr) + len(va) == len(tunes) and va
    assert split(tunes, 300, seed=7) == (tr, va)
    assert split(tunes, 300, seed=8) != (tr, va)
    md5s = [f"{i:032x}" for i in range(4000)]
    frac = np.mean([is_validation(m, 50, 1) for m in md5s])
    assert 0.035 < frac < 0.065
    assert is_validation("ABC", 500, 3) == is_validation("abc", 500, 3)


def test_composers():
    assert normalize_composer("  Rob   Hubbard ") == "Rob Hubbard"
    for unknown in ("", None, "<?>", "Unknown", "any"):
        assert normalize_composer(unknown) == "any"
    from training.dataset import Tune
    tunes = [Tune("a", 1, "X", "s", 0, 10), Tune("b", 1, "Y", "s", 0, 30), Tune("c", 1, "X", "s", 0, 25),
             Tune("d", 1, "any", "s", 0, 999), Tune("e", 1, "Z", "s", 0, 40)]
    assert top_composers(tunes, 2) == ("any", "Z", "X")


def test_rotate_voices():
    rng = np.random.default_rng(0)
    w = rng.integers(0, 256, (5, 25)).astype(np.uint8)
    r1 = rotate_voices(w, 1)
    np.testing.assert_array_equal(r1[:, 7:14], w[:, 0:7])   # voice 1 -> voice 2
    np.testing.assert_array_equal(r1[:, 0:7], w[:, 14:21])  # voice 3 -> voice 1
    np.testing.assert_array_equal(r1[:, 21:23], w[:, 21:23])
    np.testing.assert_array_equal(r1[:, 24], w[:, 24])
    f = np.array([[0xA1], [0x12], [0x04], [0xF7]], np.uint8)  # filt1; filt2; filt3; all
    x = np.zeros((4, 25), np.uint8)
    x[:, 23] = f[:, 0]
    assert list(rotate_voices(x, 1)[:, 23]) == [0xA2, 0x14, 0x01, 0xF7]
    assert list(rotate_voices(x, 2)[:, 23]) == [0xA4, 0x11, 0x02, 0xF7]
    np.testing.assert_array_equal(rotate_voices(rotate_voices(rotate_voices(w, 1), 1), 1), w)
    np.testing.assert_array_equal(rotate_voices(w, 0), w)


def test_voice3_off_windows_are_not_rotated(tmp_path):
    write_synthetic(tmp_path, n_tunes=3, seed=2, min_frames=50, max_frames=60)
    shard = np.load(tmp_path / "shards" / "synthetic.npy")
    shard[:, 24] |= 0x80
    np.save(tmp_path / "shards" / "synthetic.npy", shard)
    tunes = load_index(tmp_path)
    s = WindowSampler(FrameStore(tmp_path), tunes, ("any",), 64, rotate=True)
    whole = {s.window(t, 0)[0].tobytes() for t in tunes}  # windows longer than the tunes: always whole tunes
    got = s.sample(np.random.default_rng(0), 12).frames
    assert all(w.tobytes() in whole for w in got)
    shard[:, 24] &= 0x7F
    np.save(tmp_path / "shards" / "synthetic.npy", shard)
    s = WindowSampler(FrameStore(tmp_path), tunes, ("any",), 64, rotate=True)
    whole = {s.window(t, 0)[0].tobytes() for t in tunes}
    got = s.sample(np.random.default_rng(0), 12).frames
    assert not all(w.tobytes() in whole for w in got)  # without voice-3-off, rotations happen


def test_transpose():
    w = np.zeros((2, 25), np.uint8)
    w[0, 0], w[0, 1] = 0x34, 0x12   # 0x1234
    w[1, 14], w[1, 15] = 0x00, 0x90  # 0x9000: an octave up clips
    up = transpose(w, 12)
    assert int(up[0, 0]) | (int(up[0, 1]) << 8) == 0x2468
    assert up[1, 14] == 0xFF and up[1, 15] == 0xFF
    np.testing.assert_array_equal(transpose(w, 0), w)
    down = transpose(w, -12)
    assert int(down[0, 0]) | (int(down[0, 1]) << 8) == 0x091A


def test_windows_start_from_silence_and_mask_padding(data):
    tunes = load_index(data)
    store = FrameStore(data)
    s = WindowSampler(store, tunes, ("any", "Alpha", "Beta"), 64)
    short = min(tunes, key=lambda t: t.frames)
    win, mask = s.window(short, 0)
    assert not win[0].any()
    np.testing.assert_array_equal(win[1:1 + short.frames], store.frames(short)[:64])
    assert mask.sum() == min(short.frames, 64)
    long = max(tunes, key=lambda t: t.frames)
    win, mask = s.window(long, 10)
    np.testing.assert_array_equal(win, store.frames(long)[9:9 + 65])
    assert mask.all()
    b = s.sample(np.random.default_rng(0), 3)
    assert b.frames.shape == (3, 65, 25) and b.mask.shape == (3, 64) and b.composer.dtype == np.int64


def test_sampling_is_weighted_by_length(tmp_path):
    write_synthetic(tmp_path, n_tunes=2, seed=3, min_frames=100, max_frames=100)
    shard = np.load(tmp_path / "shards" / "synthetic.npy")
    lines = [json.loads(x) for x in (tmp_path / "index.jsonl").read_text().splitlines()]
    lines[0]["frames"], lines[1]["frames"], lines[1]["offset"] = 20, 180, 20  # 1 : 9
    (tmp_path / "index.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    shard[:20, 24] = 1   # tag tune 0
    shard[20:, 24] = 2
    np.save(tmp_path / "shards" / "synthetic.npy", shard)
    s = WindowSampler(FrameStore(tmp_path), load_index(tmp_path), ("any",), 8)
    b = s.sample(np.random.default_rng(0), 2000)
    frac0 = np.mean(b.frames[:, -1, 24] == 1)
    assert 0.07 < frac0 < 0.13


def test_composer_dropout(data):
    tunes = [t for t in load_index(data) if t.composer == "Alpha"]
    s = WindowSampler(FrameStore(data), tunes, ("any", "Alpha"), 8, composer_dropout=0.2)
    c = s.sample(np.random.default_rng(1), 1000).composer
    assert 0.15 < np.mean(c == 0) < 0.25 and set(c) == {0, 1}


def test_trim_silence_starts_windows_at_the_first_sound(tmp_path):
    from engine.silence import first_sound_frame
    write_synthetic(tmp_path, n_tunes=3, seed=3, min_frames=120, max_frames=200)
    tunes = load_index(tmp_path)
    shard = tmp_path / "shards" / "synthetic.npy"
    data = np.load(shard)
    t = tunes[0]
    data[t.offset:t.offset + 40] = 0            # 40 silent frames before the music
    np.save(shard, data)
    store = FrameStore(tmp_path)
    plain = WindowSampler(store, tunes, ("any",), 16)
    trim = WindowSampler(store, tunes, ("any",), 16, trim_silence=True)
    lead = first_sound_frame(np.asarray(store.frames(t)))
    assert 40 <= lead < 50        # the first note's attack reaches an audible level a frame or two in
    w0, _ = plain.window(t, 0)
    w1, _ = trim.window(t, 0)
    assert not w0[1:].any() and np.array_equal(w1[1:], store.frames(t)[lead:lead + 16])   # the zero frame, then music
    assert first_sound_frame(w1[1:]) == 0


def test_trimmed_windows_start_within_the_trimmed_tune(tmp_path):
    """Window starts are drawn over the frames trained on: with the leading silence cut, every
    window of a long enough tune is full (none runs past the tune's end into padding)."""
    write_synthetic(tmp_path, n_tunes=1, seed=4, min_frames=200, max_frames=200)
    tunes = load_index(tmp_path)
    shard = tmp_path / "shards" / "synthetic.npy"
    data = np.load(shard)
    data[:120] = 0                                # 120 silent frames, then 80 of music
    np.save(shard, data)
    trim = WindowSampler(FrameStore(tmp_path), tunes, ("any",), 32, trim_silence=True)
    b = trim.sample(np.random.default_rng(0), 200)
    assert b.mask.all()
