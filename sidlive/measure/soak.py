"""Soak and latency measurements of `sidlive live` (the live instrument's acceptance figures).

    python -m sidlive.measure.soak --minutes 10 [--model M|random] [--cc-rate 500] [--probes 40] [--fx NAME]
    python -m sidlive.measure.soak --minutes 10 --baseline   (an empty callback: the machine's own underruns)
    sidlive bench --only soak            (bench registry: `bench_soak`)

One run, all real parts: a private JACK dummy server (realtime unless --no-realtime),
the daemon (LiveDaemon) on a sounddevice stream on it, a JACK MIDI output port
("sidlive-soak:out") that the daemon opens by name, recording on.
 1. soak: for the given time, a flood of `cc_rate_hz` MIDI messages over every control
    the controller map binds (knobs: random values; buttons: press/release; program
    changes over the loops). Figures: PortAudio output_underflow count, ring underruns,
    callback p50/p99/max vs half the block period, process CPU %, MIDI in/lost, JACK's
    xruns by the client it blamed, and the VM's CPU steal time over the run with how many
    underruns fell next to it (`vm_steal`, steal.py).
 2. latency: `probes` each of temperature (knob), reseed and mute (buttons), one every
    ~0.25 s, flood off. From the MIDI send (perf_counter) to the first sample of the first
    frame generated after the resulting rollback (temperature, reseed) or of the first
    step rendered with the mute applied, at its DAC time from the stream's time info
    (`total_ms`), and to when that sample is rendered into the device's buffer
    (`to_rendered_sample_ms`: the DAC time less the output latency the device reports).
 3. replay: the recorded WAV against an offline render of the recorded frames with the
    logged mutes/panics replayed at their samples (`replay_take`), next to the noise
    floor of two offline renders (pyresidfp instances differ by a few LSB).
 4. launch: seconds from process start to the first frame sounding, for
    `python -m sidlive.commands.live --headless --audio null` (second of two runs: warm caches).
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import rtmidi

from sidlive.audio.jackserver import JackServer, jackd_path, portaudio_jack_device
from sidlive.control.maps import load_map
from sidlive.live.daemon import LiveConfig, LiveDaemon
from sidlive.measure.enginebench import random_model
from sidlive.measure.registry import Unavailable, benchmark
from sidlive.measure.steal import StealMonitor
from sidlive.paths import CONTROLLERS_DIR, DEFAULT_MODEL, LOOPS_DIR, REPO_ROOT
from sidlive.measure.probes import flood, flood_messages, measure_latency
from sidlive.measure.replay import compare_take, panic_silence

DEFAULT_CONTROLLER = CONTROLLERS_DIR / "korg_nanokontrol2.toml"
SOAK_PORT = "sidlive-soak"


# ---------------------------------------------------------------------------- replay


# ---------------------------------------------------------------------------- MIDI flood


# ---------------------------------------------------------------------------- latency


# ---------------------------------------------------------------------------- the run

def soak(seconds: float, *, model: str | Path | None = None, controller: str | Path = DEFAULT_CONTROLLER,
         cc_rate_hz: float = 500.0, probes: int = 30, out_dir: str | Path | None = None, realtime: bool = True,
         lookahead_frames: int = 3, seed: int = 1, replay: bool = True, launch: bool = True, fx: str | None = None,
         load_cores: int = 0, log=print) -> dict:
    """Run the soak, latency and replay measurements; returns the figures (see module doc).
    load_cores: that many busy-looping processes run beside it (a loaded machine)."""
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(load_cores)]
    try:
        fig = _soak(seconds, model=model, controller=controller, cc_rate_hz=cc_rate_hz, probes=probes,
                    out_dir=out_dir, realtime=realtime, lookahead_frames=lookahead_frames, seed=seed, replay=replay,
                    launch=launch, fx=fx, log=log)
    finally:
        for b in busy:
            b.kill()
            b.wait()
    fig["load_cores"] = load_cores
    return fig


def _soak(seconds: float, *, model, controller, cc_rate_hz, probes, out_dir, realtime, lookahead_frames, seed,
          replay, launch, fx, log) -> dict:
    model = Path(model) if model is not None else DEFAULT_MODEL
    tmp = Path(tempfile.mkdtemp(prefix="sidlive-soak-"))
    out_dir = Path(out_dir) if out_dir is not None else tmp
    loops_dir = tmp / "loops"   # captures land here, not in presets/
    shutil.copytree(LOOPS_DIR, loops_dir, ignore=shutil.ignore_patterns("*.md"))
    cmap = load_map(controller)
    rng = random.Random(seed)
    messages: list[str] = []
    server = JackServer(realtime=realtime).start()
    server.activate()
    out = rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK, name=SOAK_PORT)
    out.open_virtual_port("out")   # before the daemon's stream: a client joining later causes an xrun
    daemon = None
    try:
        cfg = LiveConfig(model=model, controller=Path(controller), loops_dir=loops_dir,
                         record=out_dir / "soak", audio="jack", midi=f"{SOAK_PORT}:out", osc_port=None,
                         lookahead_frames=lookahead_frames, seed=seed, fx=fx, fx_on=fx is not None)
        daemon = LiveDaemon(cfg, on_message=messages.append).start()
        deadline = time.monotonic() + 10
        while not daemon.audio.first_frame_dac and time.monotonic() < deadline:
            time.sleep(0.01)
        log(f"soak: {seconds:g} s, {cc_rate_hz:g} MIDI messages/s over {len(cmap.knobs) + len(cmap.buttons)} "
            f"controls of {cmap.name}; model {model}")
        e = daemon.audio
        base = {"blocks": e.blocks, "au": e.audio_underruns, "ru": daemon.ring.underruns, "xr": server.xruns()}
        steal = StealMonitor().start()
        c0, t0 = time.process_time(), time.perf_counter()
        sent = flood(out, flood_messages(cmap, len(daemon.library.loops), rng), cc_rate_hz, seconds)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        steal.stop()
        block_s = cfg.block_frames / cfg.rate_hz
        under_t = [t0 + (int(b) - base["blocks"]) * block_s for b in e.underrun_blocks
                   if b >= base["blocks"]]       # the engine logs the first 64: vm_steal's `events`
        fig = {"model": str(model), "seconds": round(wall, 1), "fx": daemon.ports.fx.chain.name if daemon.ports.fx else None,
               "controller": cmap.name, "cc_rate_hz": cc_rate_hz,
               "midi_sent": sent, "realtime_jack": realtime, "block_frames": cfg.block_frames,
               "half_block_ms": round(cfg.block_frames / cfg.rate_hz * 500, 3),
               "blocks": e.blocks - base["blocks"], "audio_underruns": e.audio_underruns - base["au"],
               "ring_underruns": daemon.ring.underruns - base["ru"], "cpu_percent": round(100 * cpu / wall, 1),
               "underrun_blocks": [int(b) - base["blocks"] for b in e.underrun_blocks if b >= 0][:16],
               "jack_xruns_by_client": _since(server.xruns(), base["xr"]),
               "vm_steal": steal.summary(under_t),
               "controls_published": len(daemon.hub.publish_log), "rollbacks": daemon.ring.rollbacks}
        fig["latency"] = measure_latency(daemon, out, cmap, probes, rng, log) if probes else None
    finally:
        stats = daemon.stop() if daemon is not None else None
        out.close_port()
        out.delete()
        server.deactivate()
        server.stop()
    fig.update({k: stats[k] for k in ("callback_ms_p50", "callback_ms_p99", "callback_ms_p999", "callback_ms_max",
                                      "generator_fps", "loop_primes", "loop_primes_abandoned", "rt_threads",
                                      "midi", "recording", "events_lost", "controls_rejected", "fx")})
    fig["session_audio_underruns"] = stats["audio_underruns"]
    fig["session_ring_underruns"] = stats["ring_underruns"]
    fig["messages"] = len(messages)
    fig["message_sample"] = sorted(set(messages))[:5]
    if replay:
        fig["replay"] = compare_take(out_dir / "soak")
        fig["panic"] = panic_silence(out_dir / "soak")   # silence 10 ms after each panic
    if launch:
        fig["launch"] = launch_time(model)
    fig["take"] = str(out_dir / "soak")
    return fig


def _since(now: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in now.items() if v - before.get(k, 0)}


def launch_time(model: str | Path, runs: int = 2) -> dict:
    """Seconds from process start to the first frame sounding (null output), warm caches:
    the last of `runs` launches of `python -m sidlive.commands.live --headless`."""
    empty = Path(tempfile.mkdtemp(prefix="sidlive-noloops-"))
    cmd = [sys.executable, "-m", "sidlive.commands.live", "--model", str(model), "--headless", "--audio", "null",
           "--midi", "none", "--no-osc", "--seconds", "1", "--loops", str(empty)]
    first = None
    for _ in range(runs):
        t0 = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
        wall = time.perf_counter() - t0
        if res.returncode != 0:
            return {"error": res.stderr.strip()[-500:]}
        first = json.loads(res.stdout.strip().splitlines()[-1])["first_audio_s"]
    return {"first_audio_s": first, "process_wall_s": round(wall, 2), "command": " ".join(cmd[1:])}


def empty_callback_baseline(seconds: float, realtime: bool = True, block_frames: int = 256) -> dict:
    """The machine's own underruns: a sounddevice stream whose callback only writes zeros,
    on a private JACK dummy server set up as the soak's, for `seconds`."""
    import sounddevice as sd  # loads PortAudio: optional, so rendering and recording work without it

    server = JackServer(realtime=realtime, period_frames=block_frames).start()
    server.activate()
    st = {"blocks": 0, "audio_underruns": 0, "t": []}

    def callback(out, frames, time_info, status):
        if status.output_underflow:
            st["audio_underruns"] += 1
            st["t"].append(time.perf_counter())
        out.fill(0)
        st["blocks"] += 1

    try:
        dev = portaudio_jack_device()
        if dev is None:
            raise RuntimeError("PortAudio here has no JACK host API")
        stream = sd.OutputStream(samplerate=48_000, blocksize=block_frames, channels=1, dtype="float32",
                                 latency="low", device=dev, callback=callback)
        stream.start()
        time.sleep(1.0)
        blocks0, under0, xr0 = st["blocks"], st["audio_underruns"], server.xruns()   # after start-up
        steal = StealMonitor().start()
        time.sleep(seconds)
        steal.stop()
        res = {"blocks": st["blocks"] - blocks0, "audio_underruns": st["audio_underruns"] - under0,
               "jack_xruns_by_client": _since(server.xruns(), xr0),
               "vm_steal": steal.summary(st["t"][under0:])}
        stream.stop()
        stream.close()
    finally:
        server.deactivate()
        server.stop()
    return {"baseline": "empty callback", "seconds": seconds, "realtime_jack": realtime, **res}


def _random_model(path: Path) -> Path:
    return random_model(path)


@benchmark("soak")
def bench_soak(quick: bool = False, minutes: float | None = None, model: str | Path | None = None,
               fx: str | None = None) -> dict:
    """Soak + latency + replay on the default model (or a random default-config one)."""
    if jackd_path() is None:
        raise Unavailable("jackd is not installed (Debian package jackd2)")
    minutes = minutes if minutes is not None else (0.25 if quick else 10.0)
    with tempfile.TemporaryDirectory() as d:
        if model is None:
            default = DEFAULT_MODEL
            model = default if default.is_file() else _random_model(Path(d) / "random-default.sidm")
        return soak(minutes * 60, model=model, probes=10 if quick else 40, fx=fx, log=lambda s: None)


def main(argv: list[str] | None = None) -> int:
    """Command line of the soak (or --baseline): print the figures as JSON; returns the exit status."""
    ap = argparse.ArgumentParser(prog="python -m sidlive.measure.soak", description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="flood phase length (default 10)")
    ap.add_argument("--model", default=None, help="a .sidm, or 'random' (default-config random weights); "
                                                  "default presets/models/default.sidm")
    ap.add_argument("--controller", type=Path, default=DEFAULT_CONTROLLER)
    ap.add_argument("--cc-rate", type=float, default=500.0, help="MIDI messages per second (default 500)")
    ap.add_argument("--probes", type=int, default=40, help="latency probes of each kind (default 40)")
    ap.add_argument("--out", type=Path, default=None, help="keep the take here (default: a temp folder)")
    ap.add_argument("--no-realtime", action="store_true", help="run jackd without realtime scheduling")
    ap.add_argument("--no-replay", action="store_true")
    ap.add_argument("--no-launch", action="store_true")
    ap.add_argument("--fx", default=None, help="run with this effects chain on (presets/fx name or .toml)")
    ap.add_argument("--load-cores", type=int, default=0, help="busy-looping processes beside it (a loaded machine)")
    ap.add_argument("--baseline", action="store_true", help="no daemon: count the underruns of an empty callback "
                                                            "on the same JACK setup for --minutes (the machine's own)")
    args = ap.parse_args(argv)
    if args.baseline:
        print(json.dumps(empty_callback_baseline(args.minutes * 60, realtime=not args.no_realtime), indent=1))
        return 0
    with tempfile.TemporaryDirectory() as d:
        model = args.model
        if model == "random":
            model = _random_model(Path(d) / "random-default.sidm")
        try:
            fig = soak(args.minutes * 60, model=model, controller=args.controller, cc_rate_hz=args.cc_rate,
                       probes=args.probes, out_dir=args.out, realtime=not args.no_realtime,
                       replay=not args.no_replay, launch=not args.no_launch, fx=args.fx, load_cores=args.load_cores,
                       log=lambda s: print(s, file=sys.stderr, flush=True))
        except Exception as e:  # noqa: BLE001 - a measuring command reports and fails
            print(f"sidlive soak: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
    print(json.dumps(fig, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
