"""The soak/latency measurement on real parts (a short run: the 10-minute one is
`python -m sidlive.measure.soak --minutes 10`). No timing is asserted: only that every figure is
measured and that what was sent arrived and was recorded faithfully."""
from __future__ import annotations

import random

import pytest

from sidlive.audio.jackserver import jackd_path, portaudio_jack_device
from sidlive.control.maps import MidiMapper, load_map


def test_flood_covers_every_mapped_control():
    from sidlive.measure.probes import flood_messages
    from sidlive.measure.soak import DEFAULT_CONTROLLER
    cmap = load_map(DEFAULT_CONTROLLER)
    mapper = MidiMapper(cmap)
    gen = flood_messages(cmap, 5, random.Random(0))
    seen = {ev.name for _ in range(3000) for ev in mapper.handle(next(gen))}
    assert seen == {b.param for b in cmap.knobs} | {b.param for b in cmap.buttons} | {"loop"}
    assert mapper.malformed == 0


def test_short_soak_measures_everything(model_path, tmp_path):
    if jackd_path() is None:
        pytest.skip("jackd is not installed (Debian package jackd2)")
    from sidlive.measure.soak import soak
    fig = soak(10, model=model_path, probes=4, out_dir=tmp_path, launch=False, log=lambda s: None)
    if fig.get("blocks", 0) == 0 and portaudio_jack_device() is None:
        pytest.skip("this PortAudio build has no JACK host API")
    assert fig["blocks"] > 1000 and fig["midi_sent"] > 1000
    midi = fig["midi"]
    assert midi["overflows"] == 0 and midi["garbage"] == 0 and midi["received"] >= fig["midi_sent"]
    assert fig["controls_published"] > 100 and fig["rollbacks"] > 10 and fig["events_lost"] == 0
    for key in ("audio_underruns", "ring_underruns", "cpu_percent", "callback_ms_p99", "callback_ms_max",
                "generator_fps", "half_block_ms"):
        assert fig[key] is not None, key
    lat = fig["latency"]
    assert lat["probes_unmatched"] == 0
    for kind in ("temperature", "reseed", "mute"):
        total = lat[kind]["total_ms"]
        assert total["n"] == 4 and 0 < total["p50"] <= total["max"]
        assert lat[kind]["midi_to_control_ms"]["p50"] < total["p50"]
    rec = fig["recording"]
    assert rec["dropped_blocks"] == 0 and rec["dropped_frames"] == 0 and rec["samples_written"] == rec["samples_in"]
    rep = fig["replay"]
    assert rep["samples"] == rec["samples_written"]
    assert rep["live_vs_offline"]["max_abs"] <= max(4 * rep["offline_vs_offline"]["max_abs"], 256)
    assert rep["live_vs_offline"]["rms_diff_db"] < -50
    pan = fig["panic"]            # the flood presses panic too: each one silent within 10 ms
    assert pan["panics"] >= 1 and pan["worst_dbfs"] < -60, pan


def test_soak_is_a_bench_plugin():
    from sidlive.measure import bench, soak
    assert bench.BENCHMARKS["soak"] is soak.bench_soak


def test_empty_callback_baseline_counts_blocks(jack):
    from sidlive.audio.jackserver import portaudio_jack_device
    from sidlive.measure.soak import empty_callback_baseline
    if portaudio_jack_device() is None:
        pytest.skip("PortAudio here has no JACK host API")
    fig = empty_callback_baseline(1.0, realtime=False)
    assert fig["baseline"] == "empty callback" and fig["blocks"] > 0
    assert 0 <= fig["audio_underruns"] <= fig["blocks"]


def test_soak_under_load_runs_busy_processes_and_stops_them(model_path, tmp_path, monkeypatch):
    """--load-cores N: N busy loops run beside the soak (a loaded machine) and are gone afterwards."""
    import subprocess
    if jackd_path() is None:
        pytest.skip("jackd is not installed (Debian package jackd2)")
    from sidlive.measure import soak as soak_mod
    started = []
    real_popen = subprocess.Popen

    def popen(*a, **kw):
        p = real_popen(*a, **kw)
        started.append(p)
        return p
    monkeypatch.setattr(soak_mod.subprocess, "Popen", popen)
    fig = soak_mod.soak(3, model=model_path, probes=0, out_dir=tmp_path, launch=False, replay=False, load_cores=1,
                        log=lambda s: None)
    busy = [p for p in started if p.args[-1] == "while True: pass"]
    assert fig["load_cores"] == 1 and len(busy) == 1 and all(p.poll() is not None for p in busy)
