"""The pointer design (training/pointer.py): exact, normalized distributions; candidates in the
training data equal the scorer's whole-tune ones; a warm start copies what matches."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.candidates import tune_candidates, tune_matches
from engine.config import ModelConfig
from tests.conftest import TINY, patterned
from training.dataset import FrameStore, WindowSampler, load_index, write_synthetic
from training.model import SidModel
from training.pointer import Cands
from training.warmstart import warm_start


def _model(seed=3, **kw) -> SidModel:
    torch.manual_seed(seed)
    m = SidModel(ModelConfig(**(TINY | {"pointer": True, "init_std": 0.3} | kw)))
    with torch.no_grad():   # a model that uses every path: non-zero scales, token and gate weights
        m.cand_scale.normal_(0, 0.3)
        m.hit_emb.normal_(0, 0.3)
        m.gate_w.normal_(0, 0.5)
    return m.eval()


def _cands(seq: np.ndarray) -> Cands:
    vals, valid, bucket = tune_candidates(seq)
    _, gb = tune_matches(seq)
    return Cands.from_numpy(vals[None], valid[None], bucket[None], gb[None, :-1])


def test_every_step_is_a_normalized_distribution():
    """Summing p over the 256 values of a register, the earlier registers of the frame fixed
    (they shape the features and the decoder's tokens), gives 1, at several steps."""
    m = _model()
    seq = patterned(60, seed=2)
    c = _cands(seq)
    frames = torch.as_tensor(seq.astype(np.int64))[None]
    t = 41   # predict frame t+1 from 0..t
    fr = frames[:, :t + 2].clone()
    cc = Cands(c.vals[:, :t + 1], c.valid[:, :t + 1], c.bucket[:, :t + 1], c.gbucket[:, :t + 1])
    for k in (0, 5, 21, 24):   # steps in write order
        reg = m.cfg.write_order[k]
        batch = fr.repeat(256, 1, 1)
        batch[:, -1, reg] = torch.arange(256)
        with torch.no_grad():
            lp = m(batch, torch.zeros(256, dtype=torch.long), Cands(*(x.repeat(256, *[1] * (x.ndim - 1)) for x in
                                                                       (cc.vals, cc.valid, cc.bucket, cc.gbucket))))
        total = float(torch.exp2(lp[:, -1, reg].double()).sum())
        assert abs(total - 1.0) < 1e-4, (k, total)


def test_candidates_make_repetition_cheap_and_need_the_inputs():
    m = _model(seed=4)
    seq = patterned(300, seed=5)
    frames = torch.as_tensor(seq.astype(np.int64))[None]
    with torch.no_grad():
        bits = -m(frames, torch.zeros(1, dtype=torch.long), _cands(seq)).sum(-1)[0]
    assert torch.isfinite(bits).all()
    with pytest.raises(ValueError, match="needs the candidates"):
        m(frames, torch.zeros(1, dtype=torch.long))


def test_sampler_candidates_equal_whole_tune_candidates(tmp_path):
    write_synthetic(tmp_path, n_tunes=6, seed=1, min_frames=80, max_frames=200)
    tunes = load_index(tmp_path)
    store = FrameStore(tmp_path)
    s = WindowSampler(store, tunes, ("any",), 32, candidates=True)
    tune = tunes[2]
    start = 17
    vals, valid, bucket, gb = s.window_cands(tune, start, 0, 0)
    seq = np.concatenate([np.zeros((1, 25), np.uint8), store.frames(tune)])
    v2, ok2, b2 = tune_candidates(seq)
    _, g2 = tune_matches(seq)
    n = min(32, len(seq) - 1 - start)
    assert np.array_equal(vals[:n], v2[start:start + n]) and np.array_equal(valid[:n], ok2[start:start + n])
    assert np.array_equal(bucket[:n], b2[start:start + n]) and np.array_equal(gb[:n], g2[start:start + n])
    # the same windows as without candidates (same draws), plus the candidates
    a = WindowSampler(store, tunes, ("any",), 32, rotate=True).sample(np.random.default_rng(7), 3)
    b = WindowSampler(store, tunes, ("any",), 32, rotate=True, candidates=True).sample(np.random.default_rng(7), 3)
    assert np.array_equal(a.frames, b.frames) and a.cand is None and b.cand[0].shape == (3, 32, 8, 25)


def test_warm_start_copies_matching_tensors():
    old = SidModel(ModelConfig(**TINY))
    new = _model()
    msg = warm_start(new, old.export_state(), "old")
    assert "fresh: cand_scale, len_emb, cand_feat, hit_emb, gate_w, gate_b" in msg
    assert torch.equal(new.in_emb.weight, old.in_emb.weight) and torch.equal(new.g[0].wq.weight, old.g[0].wq.weight)
