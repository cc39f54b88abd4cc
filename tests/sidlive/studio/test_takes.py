"""Takes: the recipe's checks, running it on the real engine (the shipped model), the library
(SQLite + files: records, search, star, rename, delete, recovery after a crash) and the
promise that a stored take remakes bit for bit."""
from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from engine.weights import load_model
from sidlive.frames import Frames, load
from sidlive.paths import DEFAULT_MODEL, LOOPS_DIR
from sidlive.studio.library import Library, NotFound, default_root
from sidlive.studio.models import file_digest
from sidlive.studio.spec import SEED_MAX, SpecError, TakeSpec, check_spec, forced_mask, run_spec

PROMPT = load(LOOPS_DIR / "dojo.regs").regs


@pytest.fixture(scope="module")
def model():
    return load_model(DEFAULT_MODEL)


def spec(**kw) -> TakeSpec:
    base = dict(model_path=str(DEFAULT_MODEL), model_digest=file_digest(DEFAULT_MODEL), seed=7, frames=120,
                prompt=PROMPT[:100])
    base.update(kw)
    return base.pop("cls", TakeSpec)(**base)


COMPOSERS = ("any", "Rob Hubbard")


@pytest.mark.parametrize("change, words", [
    (dict(temperature=9.0), ["field temperature", "9.0", "0.1..2"]),
    (dict(top_k=300), ["field top_k", "0..256"]),
    (dict(top_p=0.0), ["field top_p", "0.05..1"]),
    (dict(repetition=-1.0), ["field repetition", "0..2"]),
    (dict(seed=-1), ["field seed", f"0..{SEED_MAX}"]),
    (dict(seed=SEED_MAX + 1), ["field seed"]),
    (dict(frames=0), ["field length", "1..30075"]),
    (dict(composer="Nobody"), ["field composer", "Nobody", "any, Rob Hubbard"]),
    (dict(chip="6582"), ["field chip", "6581, 8580"]),
    (dict(keep_voices=(4,)), ["field keep_voices", "1..3"]),
    (dict(keep_voices=(1,)), ["field keep_voices", "needs a prompt"]),
    (dict(prompt=np.zeros((3100, 25), np.uint8)), ["field prompt", "3100 frames", "60 s"]),
])
def test_bad_settings_name_the_field_and_the_range(change, words):
    with pytest.raises(SpecError) as e:
        check_spec(spec(**change), COMPOSERS)
    for w in words:
        assert w in str(e.value), str(e.value)


def test_a_recipe_makes_the_same_frames_however_it_is_chunked(model):
    s = check_spec(spec(frames=150, composer="any"), model.cfg.composers)
    a, _ = run_spec(s, model)
    b, _ = run_spec(s, model, chunks=(1, 37))
    seen = []
    c, engine_s = run_spec(s, model, on_frames=seen.append)
    assert np.array_equal(a, b) and np.array_equal(a, c) and engine_s > 0
    assert np.array_equal(np.concatenate(seen), a) and len(seen[0]) == 16
    other, _ = run_spec(s.with_arrays(seed=8), model)
    assert not np.array_equal(a, other)


def test_kept_voices_replay_the_prompt_in_phase(model):
    s = check_spec(spec(frames=130, keep_voices=(1, 3), keep=PROMPT[:50], head=PROMPT[:7]), model.cfg.composers)
    out, _ = run_spec(s, model)
    mask = forced_mask((1, 3))
    want = PROMPT[:50][(7 + np.arange(130)) % 50]        # output frame i keeps keep[i % len(keep)]
    assert np.array_equal(out[:, mask], want[:, mask])
    assert not np.array_equal(out[:, 7:14], want[:, 7:14])   # voice 2 is the model's own


def test_library_round_trip_search_and_a_bit_identical_remake(tmp_path, model):
    lib = Library(tmp_path / "lib")
    s = check_spec(spec(frames=90, seed=123456789, composer="any"), model.cfg.composers)
    tid = lib.create_take(s, name="dojo  first\ttake", kind="new", model_name="default", source="dojo 0-2 s")
    t = lib.take(tid)
    assert t["status"] == "queued" and t["name"] == "dojo first take" and t["group_id"] == tid
    assert t["settings"]["prompt_frames"] == 100 and t["settings"]["model_digest"] == s.model_digest
    regs, _ = run_spec(s, model)
    lib.set_status(tid, "running")
    lib.finish_take(tid, Frames(regs=regs), b"RIFF....", {"engine_s": 0.1, "render_s": 0.2, "encode_s": 0.0})
    assert lib.take(tid)["status"] == "done" and lib.wav_path(tid).read_bytes() == b"RIFF...."
    again, _ = run_spec(lib.spec(tid), model)                  # the recipe read back from disk
    assert np.array_equal(again, lib.take_frames(tid).regs)
    other = lib.create_take(s.with_arrays(seed=5), name="second", kind="variation", model_name="default",
                            group_id=tid)
    lib.update_take(other, starred=True, name="renamed")
    assert [x["id"] for x in lib.takes()] == [other, tid]
    assert [x["id"] for x in lib.takes(starred=True)] == [other]
    assert [x["id"] for x in lib.takes(seed=123456789)] == [tid]
    assert [x["id"] for x in lib.takes(text="dojo")] == [tid]
    assert lib.takes(composer="Rob Hubbard") == [] and lib.composers() == ["any"]
    lib.delete_take(other)
    assert not lib.take_dir(other).exists()
    with pytest.raises(NotFound, match="no take 99"):
        lib.take(99)
    with pytest.raises(ValueError, match="field name"):
        lib.update_take(tid, name="   ")
    lib.close()


def test_a_crash_leaves_a_library_that_opens_with_the_unfinished_takes_interrupted(tmp_path):
    lib = Library(tmp_path)
    s = spec(frames=10)
    done = lib.create_take(s, name="done", kind="new", model_name="m")
    lib.finish_take(done, Frames(regs=np.zeros((10, 25), np.uint8)), b"wav", {})
    running = lib.create_take(s, name="running", kind="new", model_name="m")
    lib.set_status(running, "running")
    queued = lib.create_take(s, name="queued", kind="new", model_name="m")
    (tmp_path / "takes" / "77").mkdir()                        # a folder whose row never committed
    (lib.take_dir(done) / "take.wav.part").write_bytes(b"half")
    # no close(): the process is gone
    lib2 = Library(tmp_path)
    assert sorted(lib2.interrupted) == [running, queued]
    assert [lib2.take(i)["status"] for i in (done, running, queued)] == ["done", "interrupted", "interrupted"]
    assert "regenerate" in lib2.take(running)["error"]
    assert not (tmp_path / "takes" / "77").exists() and not (lib2.take_dir(done) / "take.wav.part").exists()
    assert lib2.spec(running).seed == 7                        # the recipe is intact: it can be finished
    (lib2.take_dir(queued) / "prompt.regs").write_bytes((lib2.take_dir(queued) / "keep.regs").read_bytes())
    with pytest.raises(RuntimeError, match="prompt.regs does not match the digest"):
        lib2.spec(queued)
    con = sqlite3.connect(tmp_path / "library.sqlite3")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert json.loads(con.execute("SELECT settings FROM takes WHERE id=?", (done,)).fetchone()[0])["seed"] == 7


def test_the_library_lives_in_the_users_data_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_root() == tmp_path / "sidlive" / "studio"
    assert Library().root == tmp_path / "sidlive" / "studio"
