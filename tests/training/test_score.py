import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sidlive.frames import Frames, save
from tests.conftest import patterned
from training.baseline import ChangeModel
from training.config import resolve
from training.dataset import FrameStore, load_index, write_synthetic
from training.model import load_checkpoint
from training.score import format_table, main, score_files
from training.scorers import TorchScorer
from training.train import train

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("score")
    write_synthetic(d / "data", n_tunes=20, seed=4, min_frames=40, max_frames=300)
    m, t = resolve(REPO / "training/configs/tiny.toml",
                   overrides={"data_dir": str(d / "data"), "run_dir": str(d / "run"), "max_steps": 3})
    train(m, t, log=lambda s: None)
    store = FrameStore(d / "data")
    tunes = load_index(d / "data")
    files = []
    for i, ext in ((0, ".regs"), (1, ".txt")):
        p = d / f"tune{i}{ext}"
        save(Frames(regs=store.frames(tunes[i]), author="Alpha"), p)
        files.append(p)
    return d / "run" / "last.pt", files


def test_change_model_fit_and_normalization():
    rng = np.random.default_rng(0)
    seq = np.zeros((5000, 25), np.uint8)
    for t in range(1, 5000):
        seq[t] = seq[t - 1]
        if rng.random() < 0.3:
            seq[t, 0] = rng.choice([10, 20])
    cm = ChangeModel.fit([seq])
    assert cm.change_p[0] == pytest.approx(0.3 * 0.5, abs=0.03)  # half the draws repeat the value
    assert cm.change_p[5] < 1e-3
    assert cm.hist[0, 10] > 0.4 and cm.hist[0, 20] > 0.4 and cm.hist[0, 30] < 0.001
    prev = np.full((256, 25), 20, np.uint8)
    cur = prev.copy()
    cur[:, 0] = np.arange(256)
    p = 2.0 ** cm.pair_logprobs(prev, cur)[:, 0]
    assert p.sum() == pytest.approx(1.0)
    assert cm.logprobs(np.zeros((3, 25), np.uint8))[:, 1:].sum() > -0.1  # registers that never change cost ~0


def test_score_files_sums(trained, tmp_path):
    _, files = trained
    cm = ChangeModel.fit([np.load(files[0].parent / "data/shards/synthetic.npy")])
    rep = score_files({"baseline": cm}, files)
    f0 = rep["files"][0]
    assert f0["composer"] == "Alpha"
    assert f0["bits_per_frame"]["baseline"] == pytest.approx(sum(f0["bits_per_register"]["baseline"]))
    frames = [f["frames"] for f in rep["files"]]
    want = sum(f["bits_per_frame"]["baseline"] * n for f, n in zip(rep["files"], frames)) / sum(frames)
    assert rep["mean"]["bits_per_frame"]["baseline"] == pytest.approx(want)
    assert "$D418" in format_table(rep)


def test_torch_scorer_windows(trained):
    ckpt, _ = trained
    model, _ = load_checkpoint(ckpt)
    sc = TorchScorer(model)
    C = model.cfg.context_frames
    rng = np.random.default_rng(1)
    regs = rng.integers(0, 256, (3 * C + 5, 25)).astype(np.uint8)
    lp = sc.logprobs(regs, "Alpha")
    assert lp.shape == regs.shape and np.isfinite(lp).all() and (lp <= 0).all()
    seq = np.concatenate([np.zeros((1, 25), np.uint8), regs]).astype(np.int64)
    comp = torch.tensor([model.cfg.composer_index("Alpha")])
    with torch.no_grad():
        first = model(torch.as_tensor(seq[:C + 1][None]), comp)[0].numpy()
        # target C+3 is scored in the window of inputs C/2 .. 3C/2-1
        a = C // 2
        win = model(torch.as_tensor(seq[a:a + C + 1][None]), comp)[0].numpy()
    np.testing.assert_allclose(lp[:C], first, atol=1e-5)
    np.testing.assert_allclose(lp[C + 3], win[C + 3 - a], atol=1e-5)


def test_cli_table_and_json(trained, capsys):
    ckpt, files = trained
    assert main([str(ckpt), *map(str, files)]) == 0
    out = capsys.readouterr().out
    assert "baseline" in out and "all (frame-weighted)" in out and files[1].name in out
    assert main([str(ckpt), str(files[0]), "--composer", "Beta", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["files"][0]["composer"] == "Beta"
    assert set(rep["mean"]["bits_per_frame"]) == {"model", "baseline"}
    assert len(rep["mean"]["bits_per_register"]["model"]) == 25


def test_cli_errors(trained, capsys, tmp_path):
    ckpt, files = trained
    assert main([str(ckpt), str(files[0]), "--composer", "Nobody"]) == 2
    assert "not one of the model's composers" in capsys.readouterr().err
    (tmp_path / "bad.txt").write_text("XYZ\n")
    assert main([str(ckpt), str(tmp_path / "bad.txt")]) == 2
    assert "bad.txt: line 1" in capsys.readouterr().err
    assert main([str(tmp_path / "none.pt"), str(files[0])]) == 2


def test_cli_scores_a_sid_file(trained, hvsc, capsys):
    ckpt, _ = trained
    tune = next(p for p in sorted(hvsc.glob("MUSICIANS/*/*/*.sid")) if p.read_bytes()[:4] == b"PSID")
    assert main([str(ckpt), str(tune), "--seconds", "2", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["files"][0]["frames"] == 100 and rep["mean"]["bits_per_frame"]["model"] > 0


@pytest.fixture(scope="module")
def trained_pointer(tmp_path_factory):
    """A tiny pointer model trained 3 steps, exported (with its data dir for the mixture fit)."""
    d = tmp_path_factory.mktemp("score_ptr")
    write_synthetic(d / "data", n_tunes=20, seed=5, min_frames=60, max_frames=300)
    m, t = resolve(REPO / "training/configs/tiny.toml",
                   overrides={"data_dir": str(d / "data"), "run_dir": str(d / "run"), "max_steps": 3, "pointer": True})
    train(m, t, log=lambda s: None)
    from training.export import export
    export(d / "run" / "last.pt", d / "p.sidm", log=None)
    p = d / "tune.regs"
    phrase = patterned(100, seed=3)
    save(Frames(regs=np.concatenate([phrase[:64]] * 5 + [phrase]), author="Alpha"), p)   # a phrase played 5 times
    return d, p


def test_score_a_pointer_model_with_the_mixture_and_frame_kinds(trained_pointer, capsys):
    d, tune = trained_pointer
    assert main([str(d / "p.sidm"), str(tune), "--fit-mixture", str(d / "data"), "--fit-tunes", "4",
                 "--save-mixture", str(d / "w.npz"), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    m = rep["mean"]
    assert set(m["bits_per_frame"]) == {"model", "baseline", "mixture"}
    assert sum(m["kind_frames"][k] for k in ("frame_match", "other")) == m["frames"]
    assert m["bits_by_kind"]["model"]["frame_match"] < m["bits_by_kind"]["model"]["other"]   # synthetic tunes repeat
    # the engine and PyTorch agree on the same file; the saved weights score the same
    assert main([str(d / "run" / "last.pt"), str(tune), "--mixture", str(d / "w.npz"), "--json"]) == 0
    torch_rep = json.loads(capsys.readouterr().out)["mean"]["bits_per_frame"]
    assert torch_rep["model"] == pytest.approx(m["bits_per_frame"]["model"], rel=0.05)
    assert torch_rep["mixture"] == pytest.approx(m["bits_per_frame"]["mixture"], rel=0.05)
    # the mixture over another model
    assert main([str(d / "p.sidm"), str(tune), "--mixture-of", str(d / "p.sidm"), "--mixture", str(d / "w.npz")]) == 0
    assert "mixture:p" in capsys.readouterr().out
