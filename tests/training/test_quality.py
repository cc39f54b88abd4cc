"""quality_report end to end on a tiny dataset, and `python -m training.quality` on a tiny model."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sidlive.frames import PAL_FRAME_RATE_HZ
from training.census import TECHNIQUE_KEYS, census
from training.novelty import NoveltyIndex
from training.quality import format_report, main, quality_report

FPS = PAL_FRAME_RATE_HZ


def synth_tune(rng: np.random.Generator, n: int) -> np.ndarray:
    """Stationary toy music: a lead arpeggiated every 4th note, a PWM-swept bass through a
    swept low-pass filter, noise drums every other note. Notes last 12 frames."""
    r = np.zeros((n, 25), np.uint8)
    r[:, 0x17] = 0x02  # voice 2 through the filter
    r[:, 0x18] = 0x1F  # low pass, volume 15
    scale = 0x0800 * 2 ** (np.array([0, 2, 4, 5, 7, 9, 11]) / 12)
    for note in range(0, -(-n // 12)):
        root = scale[rng.integers(0, 7)]
        for k in range(12):
            t = note * 12 + k
            if t >= n:
                break
            f1 = int(root * (1, 1.26, 1.5)[t % 3]) if note % 4 == 3 else int(root)
            r[t, 0:7] = [f1 & 255, f1 >> 8, 0, 8, 0x41 if k < 10 else 0x40, 0x09, 0x88]
            pw = 0x200 + (t % 96) * 24
            f2 = 0x0400 + 0x80 * (note % 4)
            r[t, 7:14] = [f2 & 255, f2 >> 8, pw & 255, pw >> 8, 0x41 if k < 11 else 0x40, 0x00, 0xA9]
            fc = 200 + 10 * (t % 120)
            r[t, 0x15], r[t, 0x16] = fc & 7, fc >> 3
            drum = k < 2 and note % 2 == 0
            r[t, 14:21] = [0, 0x28, 0, 0, 0x81 if drum else 0x80, 0x00, 0x04]
    return r


@pytest.fixture(scope="module")
def tunes():
    rng = np.random.default_rng(5)
    return [synth_tune(rng, 1600) for _ in range(6)]


def replay_generator(tunes):
    """Plays the real continuation of whichever tune the prompt was cut from."""
    def generate(prompt, n_frames, seed, temperature, composer):
        for t in tunes:
            for s in range(len(t) - len(prompt) - n_frames + 1):
                if np.array_equal(t[s:s + len(prompt)], prompt):
                    return t[s + len(prompt):s + len(prompt) + n_frames].copy()
        raise AssertionError("prompt not found in any tune")
    return generate


def test_synth_tunes_use_every_technique(tunes):
    c = census(tunes)
    assert all(c[k] > 0 for k in TECHNIQUE_KEYS), {k: c[k] for k in TECHNIQUE_KEYS}
    assert c["silent_share"] < 0.05


def test_replayed_real_frames_copy_verbatim_and_match_the_census(tunes):
    prompts = [t[100 * i:100 * i + 50] for i, t in enumerate(tunes)]
    index = NoveltyIndex.from_sequences(tunes, [f"T{i}.sid" for i in range(len(tunes))])
    rep = quality_report(replay_generator(tunes), prompts, tunes, index, n=6, seconds=20.0)
    n_frames = round(20 * FPS)
    assert rep["frames_per_generation"] == n_frames
    for i, g in enumerate(rep["generations"]):
        assert g["novelty"]["frames"] == n_frames
        assert (g["novelty"]["path"], g["novelty"]["tune_offset"]) == (f"T{i}.sid", 100 * i + 50)
    assert rep["novelty"]["frames"] == n_frames
    assert all(r["within"] and abs(r["ratio"] - 1) < 0.2 for r in rep["comparison"] if r["key"] in TECHNIQUE_KEYS)
    t = rep["targets"]
    assert t["census_within_50pct"] and t["silent_below_5pct"] and t["no_loop_collapse"]
    assert t["verbatim_at_most_200_frames"] is False and rep["pass"] is False
    text = format_report(rep)
    assert "arpeggio_share" in text and f"{n_frames} frames" in text


def test_a_stuck_generator_fails_silence_and_loop_targets(tunes):
    def silent(prompt, n_frames, seed, temperature, composer):
        return np.zeros((n_frames, 25), np.uint8)
    rep = quality_report(silent, [tunes[0][:10]], tunes, None, n=2, seconds=25.0)
    assert rep["silent_share"] == 1.0 and rep["loop_collapses"] == 2
    assert rep["generations"][0]["loop_collapse"] == {"collapsed": True, "period_frames": 1, "start_frame": 0}
    assert rep["targets"]["silent_below_5pct"] is False and rep["targets"]["no_loop_collapse"] is False
    assert rep["targets"]["verbatim_at_most_200_frames"] is None and rep["novelty"] is None
    assert rep["empty_start"]["never"] == 2 and rep["targets"]["sound_within_0_5s_from_empty"] is False
    assert rep["self_repetition"]["generated"] > 0.95 and rep["targets"]["self_repetition_within_50pct"] is False


def test_self_repetition_counts_the_generated_frames_after_a_repeated_context(tunes):
    phrase = tunes[0][:64]

    def looper(prompt, n_frames, seed, temperature, composer):
        return np.resize(phrase, (n_frames, 25)) if len(prompt) else np.resize(tunes[1], (n_frames, 25))
    rep = quality_report(looper, [phrase], tunes, None, n=1, seconds=64 * 3 / 50.1245)
    # a 64-frame period: every 32-frame context from frame 96 on recurs (frames 64..95 straddle the first pass)
    assert rep["generations"][0]["self_repetition"] == pytest.approx((192 - 32) / 192)
    assert 0 < rep["self_repetition"]["real"] < 1


def test_seeds_temperature_and_composer_reach_the_generator(tunes):
    calls = []

    def gen(prompt, n_frames, seed, temperature, composer):
        calls.append((len(prompt), n_frames, seed, temperature, composer))
        return np.random.default_rng(seed).integers(0, 256, (n_frames, 25), dtype=np.uint8)
    rep = quality_report(gen, [tunes[0][:10], tunes[1][:20]], tunes[:1], None, n=3, seconds=1.0,
                         temperature=0.8, seeds=[5, 6, 7], composers=["A", None, "B"])
    assert calls[:3] == [(10, 50, 5, 0.8, "A"), (20, 50, 6, 0.8, None), (10, 50, 7, 0.8, "B")]
    assert calls[3:] == [(0, 100, 5, 0.8, None), (0, 100, 6, 0.8, None), (0, 100, 7, 0.8, None)]  # empty starts
    assert [g["prompt"] for g in rep["generations"]] == [0, 1, 0]


def test_bad_generator_output_is_named(tunes):
    def bad(prompt, n_frames, seed, temperature, composer):
        return np.zeros((n_frames - 1, 25), np.uint8)
    with pytest.raises(ValueError, match=r"generation 0 \(seed 1000\).*expected \(50, 25\) uint8"):
        quality_report(bad, [tunes[0][:5]], tunes, None, n=1, seconds=1.0)
    with pytest.raises(ValueError, match=r"prompts\[0\]"):
        quality_report(bad, [np.zeros((5, 24), np.uint8)], tunes, None, n=1, seconds=1.0)
    with pytest.raises(ValueError, match="real_tunes"):
        quality_report(bad, [tunes[0][:5]], [], None, n=1, seconds=1.0)


def write_dataset(root, tunes):
    """md5s chosen so that the trainer's split (500 permille, seed 1337) holds back tunes 0-2."""
    from training.dataset import is_validation
    val = [m for m in (f"{i:032x}" for i in range(1000)) if is_validation(m, 500, 1337)]
    train = [m for m in (f"{i:032x}" for i in range(1000)) if not is_validation(m, 500, 1337)]
    md5s = sorted(val[:3]) + train[:3]
    (root / "shards").mkdir(parents=True)
    np.save(root / "shards" / "shard-0.npy", np.concatenate(tunes))
    lines, off = [], 0
    for i, t in enumerate(tunes):
        lines.append(json.dumps({"path": f"T{i}.sid", "md5": md5s[i], "author": f"Composer {i % 2}",
                                 "frames": len(t), "status": "ok", "shard": "shards/shard-0.npy", "offset": off}))
        off += len(t)
    (root / "index.jsonl").write_text("\n".join(lines) + "\n")


def tiny_model_file(tmp_path, kind, train_config=None):
    torch = pytest.importorskip("torch")
    from engine.config import ModelConfig
    from training.export import export_model
    from training.model import SidModel
    torch.manual_seed(0)
    cfg = ModelConfig(composers=("any", "Composer 0"), context_frames=16, d_global=16, n_layers_global=1,
                      n_heads_global=2, d_local=16, n_layers_local=1, n_heads_local=2, d_readout=16)
    model = SidModel(cfg)
    path = tmp_path / f"tiny.{kind}"
    if kind == "sidm":
        export_model(model, path, log=lambda *a: None)  # int8 rows, as the engine needs
    else:
        torch.save({"format": "sidlive-ckpt", "model_config": cfg.to_dict(), "model": model.state_dict(),
                    "train_config": train_config or {}}, path)
    return path


def test_engine_and_torch_backends_agree(tmp_path, tunes):
    from training.quality import load_generator
    model = tiny_model_file(tmp_path, "sidm")
    engine, torch_ref = load_generator(model, backend="engine"), load_generator(model, backend="torch")
    prompt = tunes[0][:20]
    a = engine(prompt, 40, 7, None, "Composer 0")
    assert a.shape == (40, 25) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, torch_ref(prompt, 40, 7, None, "Composer 0"))
    np.testing.assert_array_equal(engine(tunes[1][:5], 10, 8, 0.5, None), torch_ref(tunes[1][:5], 10, 8, 0.5, None))
    np.testing.assert_array_equal(engine(prompt, 40, 7, None, "Composer 0"), a)  # each call starts afresh
    with pytest.raises(ValueError, match="the engine runs .sidm exports"):
        load_generator(tiny_model_file(tmp_path, "pt"), backend="engine")


@pytest.mark.parametrize("kind", ["sidm", "pt"])
def test_main_runs_a_tiny_model_end_to_end(tmp_path, tunes, capsys, kind):
    data = tmp_path / "data"
    write_dataset(data, tunes)
    model = tiny_model_file(tmp_path, kind, {"data_dir": str(data), "val_permille": 500, "seed": 1337})
    # a .sidm carries no trainer settings: name the dataset and split; a .pt checkpoint has them
    split = ["--data", str(data), "--val-permille", "500"] if kind == "sidm" else []
    args = [str(model), *split, "--json", "--n", "2", "--seconds", "0.3", "--prompt-seconds", "0.2",
            "--prompt-start-seconds", "1", "--real-tunes", "3", "--novelty-cache", str(tmp_path / "nov.npz")]
    rc = main(args)
    rep = json.loads(capsys.readouterr().out)
    assert rc == (0 if rep["pass"] else 1)
    assert (rep["data"], rep["val_permille"], rep["split_seed"]) == (str(data), 500, 1337)
    assert rep["n"] == 2 and rep["frames_per_generation"] == 15 and rep["real_tunes"] == 3
    assert rep["prompt_tunes"] == ["T0.sid", "T1.sid"]  # validation tunes only (md5 order)
    assert [g["composer"] for g in rep["generations"]] == ["Composer 0", "Composer 1"]
    assert {r["key"] for r in rep["comparison"]} >= set(TECHNIQUE_KEYS)
    assert all(0 <= g["novelty"]["frames"] <= 15 for g in rep["generations"])
    assert (tmp_path / "nov.npz").is_file()
    assert main(args) == rc  # again, from the cached index: same seeds, same report

    def strip(gens):
        return [{k: v for k, v in g.items() if k != "generate_s"} for g in gens]
    assert strip(json.loads(capsys.readouterr().out)["generations"]) == strip(rep["generations"])


def test_main_rejects_a_dataset_without_a_split(tmp_path, tunes, capsys):
    write_dataset(tmp_path / "data", tunes)
    model = tiny_model_file(tmp_path, "sidm")
    rc = main([str(model), "--data", str(tmp_path / "data"), "--val-permille", "0"])
    assert rc == 2 and "need validation and training tunes" in capsys.readouterr().err


def test_main_names_a_bad_checkpoint(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main([str(bad)]) == 2                 # bad input: exit 2 with one line, no traceback
    assert "bad.pt: cannot read as a PyTorch checkpoint" in capsys.readouterr().err


def test_main_names_a_sampling_setting_out_of_range(tmp_path, capsys):
    model = tiny_model_file(tmp_path, "sidm")
    for flag, value, words in (("--max-silence-s", "-1", "max_silence_s must be in 0..60"),
                               ("--repetition", "9", "repetition must be in 0..4")):
        assert main([str(model), flag, value]) == 2
        assert words in capsys.readouterr().err
