import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.config import ModelConfig
from training.config import TrainConfig, resolve, to_toml
from training.dataset import write_synthetic
from training.model import load_checkpoint
from training.train import lr_at, main, train

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "training" / "configs" / "tiny.toml"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("synth")
    write_synthetic(d, n_tunes=20, seed=0, min_frames=30, max_frames=200)
    return d


def _tiny(data, run_dir, **kw):
    return resolve(TINY, overrides={"data_dir": str(data), "run_dir": str(run_dir)} | kw)


def test_resolve_order_and_errors(tmp_path):
    m, t = resolve()
    assert m == ModelConfig() and t == TrainConfig()
    m, t = resolve(TINY, flags=["--lr", "0.01", "--d_global=64", "--rotate-voices", "false"])
    assert t.lr == 0.01 and m.d_global == 64 and t.rotate_voices is False and m.n_layers_global == 2
    with pytest.raises(ValueError, match=r"unknown config key 'bogus'; allowed keys: .*batch_windows"):
        resolve(flags=["--bogus", "1"])
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nd_globl = 3\n")
    with pytest.raises(ValueError, match=r"bad.toml \[model\]: unknown config key 'd_globl'"):
        resolve(bad)
    with pytest.raises(ValueError, match=r"key 'max_steps': cannot read 'many' as int"):
        resolve(flags=["--max_steps", "many"])
    with pytest.raises(ValueError, match="needs a value"):
        resolve(flags=["--lr"])
    with pytest.raises(ValueError, match="exceeds context_frames"):
        resolve(flags=["--window_frames", "600"])
    # the saved config reads back to the same values
    m, t = resolve(TINY, flags=["--composers", "any,Rob Hubbard"])
    (tmp_path / "r.toml").write_text(to_toml(m, t))
    assert resolve(tmp_path / "r.toml") == (m, t)


def test_default_config_file_resolves():
    m, t = resolve(REPO / "training" / "configs" / "default.toml")
    assert m.context_frames >= 512 and t.window_frames >= 512


def test_lr_schedule():
    t = TrainConfig(lr=1.0, warmup_steps=10, max_steps=110, min_lr_frac=0.1)
    assert lr_at(0, t) == pytest.approx(0.1) and lr_at(9, t) == pytest.approx(1.0)
    assert lr_at(10, t) == pytest.approx(1.0) and lr_at(110, t) == pytest.approx(0.1)
    assert lr_at(60, t) == pytest.approx(0.55)


def test_run_writes_outputs_and_resume_is_exact(data, tmp_path):
    m, t = _tiny(data, tmp_path / "a", max_steps=4)
    train(m, t, log=lambda s: None)
    run = tmp_path / "a"
    for name in ("config.toml", "curve.jsonl", "baseline.npz", "last.pt", "best.pt", "summary.json"):
        assert (run / name).is_file(), name
    curve = [json.loads(x) for x in (run / "curve.jsonl").read_text().splitlines()]
    assert [c["step"] for c in curve] == [1, 2, 3, 4]
    assert {"step", "frames", "wall_s", "train_bits_per_frame", "val_bits_per_frame"} <= set(curve[0])
    assert curve[2]["val_bits_per_frame"] is not None and curve[0]["val_bits_per_frame"] is None
    assert curve[-1]["frames"] == 4 * t.batch_windows * t.window_frames
    model, ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["step"] == 4 and ckpt["model_config"]["composers"][0] == "any"
    assert set(ckpt["model_config"]["composers"]) == {"any", "Alpha", "Beta"}
    assert resolve(run / "config.toml")[1].max_steps == 4
    # 2 steps, then resume to 4: same weights as 4 straight steps
    m2, t2 = _tiny(data, tmp_path / "b", max_steps=2)
    train(m2, t2, log=lambda s: None)
    m2, t2 = _tiny(data, tmp_path / "b", max_steps=4)
    train(m2, t2, log=lambda s: None)
    resumed, _ = load_checkpoint(tmp_path / "b" / "last.pt")
    for (k, a), b in zip(model.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    # different seed, different weights
    m3, t3 = _tiny(data, tmp_path / "c", max_steps=4, seed=99)
    train(m3, t3, log=lambda s: None)
    other, _ = load_checkpoint(tmp_path / "c" / "last.pt")
    assert not torch.equal(other.in_emb.weight, model.in_emb.weight)


def test_training_lowers_loss(data, tmp_path):
    m, t = _tiny(data, tmp_path / "r", max_steps=40, lr=1e-2, warmup_steps=5, val_every_steps=40)
    s = train(m, t, log=lambda s: None)
    curve = [json.loads(x) for x in (tmp_path / "r" / "curve.jsonl").read_text().splitlines()]
    first = np.mean([c["train_bits_per_frame"] for c in curve[:5]])
    last = np.mean([c["train_bits_per_frame"] for c in curve[-5:]])
    assert last < 0.8 * first
    assert s["val_bits_per_frame"] < s["baseline_val_bits_per_frame"] * 1.5


def test_train_puts_back_the_callers_signal_handlers(data, tmp_path):
    """A library caller (or a test run) keeps its own SIGTERM/SIGINT handlers after train(); a
    forked prefetch worker must not inherit the trainer's graceful-stop handler (it would ignore
    Pool.terminate and hang the join)."""
    def mine(*_):
        pass

    before = {sig: signal.signal(sig, mine) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        m, t = _tiny(data, tmp_path / "r", max_steps=3, val_every_steps=3, loader_workers=1)
        train(m, t, log=lambda s: None)
        assert signal.getsignal(signal.SIGTERM) is mine and signal.getsignal(signal.SIGINT) is mine
    finally:
        for sig, h in before.items():
            signal.signal(sig, h)


def test_cli_rejects_unknown_key(capsys):
    assert main(["--config", str(TINY), "--nope", "1"]) == 2
    assert "unknown config key 'nope'" in capsys.readouterr().err


def test_ddp_two_cpu_processes(data, tmp_path):
    """torchrun with 2 gloo processes: trains, rank 0 writes the checkpoint, frames count both ranks."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "training.train", "--config", str(TINY), "--data_dir", str(data), "--run_dir", str(tmp_path / "ddp"),
           "--max_steps", "2", "--device", "cpu"]
    r = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    _, ckpt = load_checkpoint(tmp_path / "ddp" / "last.pt")
    assert ckpt["step"] == 2 and ckpt["frames_seen"] == 2 * 2 * 2 * 32


def test_sigterm_stops_gracefully_with_a_checkpoint(data, tmp_path):
    """kill -TERM mid-run: the trainer finishes the step, validates, checkpoints and writes its summary."""
    import signal
    import time
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    run = tmp_path / "sig"
    cmd = [sys.executable, "-m", "training.train", "--config", str(TINY), "--data_dir", str(data),
           "--run_dir", str(run), "--max_steps", "100000", "--device", "cpu", "--log_every_steps", "1"]
    p = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        curve = run / "curve.jsonl"
        while not (curve.exists() and curve.read_text().count("\n") >= 2):
            assert p.poll() is None and time.monotonic() < deadline, "training did not start"
            time.sleep(0.2)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err[-2000:]
    assert "stop requested" in out + err
    summary = json.loads((run / "summary.json").read_text())
    _, ckpt = load_checkpoint(run / "last.pt")
    assert 2 <= ckpt["step"] == summary["step"] < 100000
