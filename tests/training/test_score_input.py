"""`sidlive score` on hostile models and frames files: the engine and PyTorch paths read a
.sidm through the same checks, the stored baseline and mixture are checked where they are
read, and a bad file is a one-line error (exit 2), never nan bits with exit 0."""
from __future__ import annotations

import json

import numpy as np
import pytest

from engine.config import ModelConfig
from sidlive.frames import Frames, save
from tests.conftest import TINY, walk
from tests.engine.test_sidm_input import arrays_of, write
from tests.sidlive.test_frames_input import regs_file
from training.baseline import ChangeModel
from training.export import model_from_sidm
from training.score import main

BASE = ChangeModel(np.full(25, 0.2), np.full((25, 256), 1 / 256)).to_dict()


@pytest.fixture(scope="module")
def tune(tmp_path_factory):
    p = tmp_path_factory.mktemp("tune") / "t.regs"
    save(Frames(regs=walk(40, seed=1), author="Rob Hubbard"), p)
    return p


def scored(capsys, argv) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err.strip()


def hostile(tmp_path, case: str):
    cfg = ModelConfig(**TINY)
    a = arrays_of(cfg)
    if case == "nan scale":
        a["g0.wq"][5, 0] = np.nan
        return write(tmp_path / "m.sidm", **{"g0.wq": a["g0.wq"]}), "tensor 'g0.wq'"
    if case == "inf scale":
        a["ro_out"][0, 0] = np.inf
        return write(tmp_path / "m.sidm", ro_out=a["ro_out"]), "tensor 'ro_out'"
    if case == "nan norm":
        return write(tmp_path / "m.sidm", g_norm=np.full(32, np.nan, np.float32)), "tensor 'g_norm'"
    if case == "huge value":
        a["val_emb"][7, 1] = 3e38
        return write(tmp_path / "m.sidm", val_emb=a["val_emb"]), "tensor 'val_emb'"
    if case == "huge bias":
        return write(tmp_path / "m.sidm", copy_bonus=np.full(25, 3e38, np.float32)), "tensor 'copy_bonus'"
    if case == "negative eps":
        return write(tmp_path / "m.sidm", {"norm_eps": -1.0}), "norm_eps"
    raise AssertionError(case)


CASES = ["nan scale", "inf scale", "nan norm", "huge value", "huge bias", "negative eps"]


@pytest.mark.parametrize("torch_path", [False, True], ids=["engine", "torch"])
@pytest.mark.parametrize("case", CASES)
def test_bad_weights_are_refused_on_both_paths(tmp_path, capsys, tune, case, torch_path):
    model, fragment = hostile(tmp_path, case)
    rc, out, err = scored(capsys, [str(model), str(tune), "--json"] + ["--torch"] * torch_path)
    assert rc == 2 and out == "", out
    assert err.startswith("score: ") and "m.sidm" in err and fragment in err and len(err.splitlines()) == 1, err


def test_the_torch_path_reads_through_the_engine_checks(tmp_path):
    model, _ = hostile(tmp_path, "nan norm")
    with pytest.raises(ValueError, match=r"m.sidm: tensor 'g_norm': element 0 is nan"):
        model_from_sidm(model)


@pytest.mark.parametrize("meta, field", [
    ({"baseline": 5}, "meta.baseline"), ({"baseline": {}}, "meta.baseline"),
    ({"baseline": {"change_p": BASE["change_p"]}}, "meta.baseline"),
    ({"baseline": BASE | {"change_p": [float("nan")] * 25}}, "meta.baseline"),
    ({"baseline": BASE | {"hist": [[0.5] * 256] * 25}}, "meta.baseline"),
    ({"mixture": 7}, "meta.mixture"), ({"mixture": {"log_model": [0] * 25}}, "meta.mixture"),
])
def test_stored_baseline_and_mixture_are_checked(tmp_path, capsys, tune, meta, field):
    model = write(tmp_path / "b.sidm", meta=meta)
    rc, out, err = scored(capsys, [str(model), str(tune)])
    assert rc == 2 and f"b.sidm: field '{field}'" in err and len(err.splitlines()) == 1, err


def test_a_good_stored_baseline_scores(tmp_path, capsys, tune):
    model = write(tmp_path / "g.sidm", meta={"baseline": BASE})
    rc, out, _ = scored(capsys, [str(model), str(tune), "--json"])
    assert rc == 0
    bits = json.loads(out)["mean"]["bits_per_frame"]
    assert set(bits) == {"model", "baseline"} and all(np.isfinite(v) and v > 0 for v in bits.values())


@pytest.mark.parametrize("author", [5, ["Rob Hubbard"], {"a": 1}])
def test_frames_with_a_non_string_author_are_refused(tmp_path, capsys, author):
    model = write(tmp_path / "g.sidm")
    f = regs_file(tmp_path / "a.regs", json.dumps({"author": author}).encode(), n=5)
    rc, out, err = scored(capsys, [str(model), str(f)])
    assert rc == 2 and "a.regs: metadata field 'author'" in err and len(err.splitlines()) == 1, err
