import json

import pytest

from sidlive.commands import bench as bench_cmd
from sidlive.measure import bench


def test_render_figures_json(capsys):
    assert bench_cmd.main(["--json", "--quick", "--only", "render"]) == 0
    out = json.loads(capsys.readouterr().out)
    fig = out["render"]
    if "unavailable" in fig:
        pytest.skip(fig["unavailable"])
    assert set(fig) >= {"realtime_factor", "audio_s", "wall_s", "chip", "rate_hz", "fixture"}
    assert fig["realtime_factor"] > 0 and fig["audio_s"] > 4.9 and fig["wall_s"] > 0
    assert fig["rate_hz"] == 48_000


def test_dump_figures_or_reason():
    fig = bench.run(["dump"], quick=True)["dump"]
    if "unavailable" in fig:
        assert isinstance(fig["unavailable"], str) and fig["unavailable"]
    else:
        assert fig["frames_per_s"] > 0 and fig["frames"] > 0 and fig["tunes"]


def test_text_report_and_registry(capsys):
    report = bench.format_report({"render": {"realtime_factor": 20.0, "audio_s": 60.0, "wall_s": 3.0,
                                             "fixture": "goattracker:dojo", "chip": "6581", "rate_hz": 48_000},
                                  "dump": {"unavailable": "no module"},
                                  "engine": {"frames_per_s": 1234.5}})
    assert "render: 20.0x real time" in report
    assert "dump: unavailable (no module)" in report
    assert "engine: frames_per_s 1234.5" in report
    assert {"render", "dump"} <= set(bench.BENCHMARKS)
    with pytest.raises(ValueError, match="already registered"):
        bench.benchmark("render")(lambda quick=False: {})
    assert bench_cmd.main(["--only", "nope"]) == 2
    assert "unknown benchmark 'nope'" in capsys.readouterr().err


def test_registered_benchmark_runs(monkeypatch):
    monkeypatch.setitem(bench.BENCHMARKS, "toy", lambda quick=False: {"things_per_s": 2.0 if quick else 1.0})
    assert bench.run(["toy"], quick=True) == {"toy": {"things_per_s": 2.0}}

    def broken(quick=False):
        raise bench.Unavailable("needs a GPU")
    monkeypatch.setitem(bench.BENCHMARKS, "gpu", broken)
    assert bench.run(["gpu"]) == {"gpu": {"unavailable": "needs a GPU"}}
