"""Effects with pyo: a chain described in presets/fx/*.toml, live beside the daemon (a pyo
JACK client between our output and the speakers) and offline (`sidlive render --fx`,
pyo's offline server). See docs/fx.md.

    name = "Dub"
    [[effect]]
    type = "delay"          # reverb | delay | chorus | eq | filter, each at most once
    time_ms = 375
    feedback = 0.45
    mix = 0.3

Every effect parameter is a live control named fx_<type>_<param> (fx_delay_time_ms,
fx_reverb_mix, ...; units in the names, ranges in EFFECTS), so a controller map's knob or
OSC drives it like any other; `fx_bypass` (default on: bypassed) switches the chain in and
out with a 20 ms crossfade. The preset gives the starting values and the order.
"""
from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

from sidlive.tomldoc import parse_toml, read_text

# type -> param -> (lo, hi, default): units are in the names
EFFECTS: dict[str, dict[str, tuple[float, float, float]]] = {
    "reverb": {"size": (0.0, 1.0, 0.6), "damp": (0.0, 1.0, 0.5), "mix": (0.0, 1.0, 0.25)},
    "delay": {"time_ms": (1.0, 2000.0, 375.0), "feedback": (0.0, 0.95, 0.4), "mix": (0.0, 1.0, 0.3)},
    "chorus": {"depth": (0.0, 5.0, 1.0), "feedback": (0.0, 1.0, 0.25), "mix": (0.0, 1.0, 0.5)},
    "eq": {"freq_hz": (20.0, 20000.0, 1000.0), "q": (0.1, 20.0, 1.0), "gain_db": (-24.0, 24.0, 0.0)},
    "filter": {"cutoff_hz": (20.0, 20000.0, 8000.0), "q": (0.5, 20.0, 0.707)},
}
PRESETS_DIR = Path(__file__).resolve().parent.parent / "presets" / "fx"
RAMP_S = 0.02          # parameter changes glide over 20 ms (no zipper noise)
MAX_DELAY_S = 2.1


class FxError(ValueError):
    """A bad effects preset or value; the message names the file, line and field."""


def param_name(kind: str, key: str) -> str:
    return f"fx_{kind}_{key}"


@dataclasses.dataclass(frozen=True)
class FxChain:
    name: str
    effects: tuple[tuple[str, dict[str, float]], ...]   # (type, {param: value}) in order
    source: str = ""

    def values(self) -> dict[str, float]:
        """Live control name -> starting value."""
        return {param_name(k, p): v for k, ps in self.effects for p, v in ps.items()}


def load_chain(path: str | Path) -> FxChain:
    return parse_chain(read_text(path, FxError), str(path))


def parse_chain(text: str, source: str = "<string>") -> FxChain:
    doc, where = parse_toml(text, source, FxError)

    def err(i, key, problem):
        return where.error("effect" if i is not None else None, i, key, problem)

    for key in doc:
        if key not in ("name", "effect"):
            raise err(None, key, "unknown key; allowed: effect, name")
    name = doc.get("name")
    if not isinstance(name, str) or not name.strip():
        raise err(None, "name", "must be a non-empty string")
    tables = doc.get("effect", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise err(None, "effect", "must be an array of tables: write [[effect]]")
    effects, seen = [], set()
    for i, t in enumerate(tables):
        kind = t.get("type")
        if kind not in EFFECTS:
            raise err(i, "type", f"{kind!r} is not one of {', '.join(EFFECTS)}")
        if kind in seen:
            raise err(i, "type", f"{kind} is already in the chain (each effect at most once)")
        seen.add(kind)
        values = {}
        for key, v in t.items():
            if key == "type":
                continue
            if key not in EFFECTS[kind]:
                raise err(i, key, f"unknown key; {kind} has: {', '.join(EFFECTS[kind])}")
            lo, hi, _ = EFFECTS[kind][key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
                raise err(i, key, f"{v!r} is out of range {lo:g}..{hi:g}")
            values[key] = float(v)
        effects.append((kind, {p: values.get(p, d) for p, (_lo, _hi, d) in EFFECTS[kind].items()}))
    return FxChain(name=name, effects=tuple(effects), source=source)


def preset_paths() -> list[Path]:
    return sorted(PRESETS_DIR.glob("*.toml"))


def find_chain(spec: str | Path) -> FxChain:
    """A preset name (presets/fx/NAME.toml) or a .toml path -> FxChain."""
    path = Path(spec)
    if path.suffix.lower() != ".toml" and not path.exists():
        path = PRESETS_DIR / f"{spec}.toml"
        if not path.is_file():
            names = ", ".join(p.stem for p in preset_paths())
            raise FxError(f"--fx {spec!r}: no such preset; presets: {names}, or give a .toml file")
    if not path.is_file():
        raise FxError(f"--fx {path}: no such file")
    return load_chain(path)


def import_pyo():
    """pyo, imported quietly (no wxPython banner); FxError when it is missing."""
    os.environ.setdefault("PYO_GUI_WX", "0")
    try:
        import pyo
    except ImportError as e:
        raise FxError(f"effects need pyo (pip install pyo): {e}") from None
    return pyo


class FxGraph:
    """The chain as pyo objects over `src`; `set(name, value)` glides a live control."""

    def __init__(self, pyo, chain: FxChain, src, bypass: bool = True):
        self.chain = chain
        self.sigs: dict[str, object] = {}
        x = src
        for kind, values in chain.effects:
            s = {p: self._sig(pyo, param_name(kind, p), v) for p, v in values.items()}
            x = getattr(self, f"_{kind}")(pyo, x, s)
        self.wet_amount = pyo.SigTo(0.0 if bypass else 1.0, time=RAMP_S, init=0.0 if bypass else 1.0)
        self.out = src * (1 - self.wet_amount) + x * self.wet_amount
        self._keep = [src, x]

    def _sig(self, pyo, name, value):
        scale = 1e-3 if name.endswith("_ms") else 1.0
        sig = pyo.SigTo(value * scale, time=RAMP_S, init=value * scale)
        self.sigs[name] = (sig, scale)
        return sig

    @staticmethod
    def _reverb(pyo, x, s):
        return pyo.Freeverb(x, size=s["size"], damp=s["damp"], bal=s["mix"])

    @staticmethod
    def _delay(pyo, x, s):
        d = pyo.Delay(x, delay=s["time_ms"], feedback=s["feedback"], maxdelay=MAX_DELAY_S)
        return x * (1 - s["mix"]) + d * s["mix"]

    @staticmethod
    def _chorus(pyo, x, s):
        return pyo.Chorus(x, depth=s["depth"], feedback=s["feedback"], bal=s["mix"])

    @staticmethod
    def _eq(pyo, x, s):
        return pyo.EQ(x, freq=s["freq_hz"], q=s["q"], boost=s["gain_db"], type=0)

    @staticmethod
    def _filter(pyo, x, s):
        return pyo.Biquad(x, freq=s["cutoff_hz"], q=s["q"], type=0)

    def set(self, name: str, value) -> bool:
        """A live control: fx_bypass or one of this chain's fx_* parameters (False: not ours)."""
        if name == "fx_bypass":
            self.wet_amount.value = 0.0 if value else 1.0
            return True
        if name in self.sigs:
            sig, scale = self.sigs[name]
            sig.value = float(value) * scale
            return True
        return False


def render_fx(dry_wav: str | Path, out_wav: str | Path, chain: FxChain, tail_s: float = 2.0,
              controls: dict | None = None) -> dict:
    """Run the chain over a WAV with pyo's offline server (not bypassed); returns the
    seconds written and the CPU seconds the effects took."""
    from sidlive.wav import read_wav
    if not 0.0 <= tail_s <= 30.0:
        raise FxError(f"fx tail_s: {tail_s} is out of range 0..30 s")
    samples, rate = read_wav(dry_wav)
    dur = len(samples) / rate + tail_s
    pyo = import_pyo()
    s = pyo.Server(sr=rate, nchnls=1, duplex=0, audio="offline", verbosity=1)
    s.deactivateMidi()
    s.boot()
    try:
        s.recordOptions(dur=dur, filename=str(out_wav), fileformat=0, sampletype=0)
        src = pyo.SfPlayer(str(dry_wav), loop=False)
        graph = FxGraph(pyo, chain, src, bypass=False)
        for name, value in (controls or {}).items():
            graph.set(name, value)
        graph.out.out()
        c0, t0 = time.process_time(), time.perf_counter()
        s.start()              # offline: blocks until dur is written
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    finally:
        s.shutdown()
    return {"out": str(out_wav), "fx": chain.name, "audio_s": dur, "fx_cpu_s": cpu, "fx_wall_s": wall,
            "fx_realtime_factor": dur / max(cpu, 1e-9)}


def _jack(*args: str) -> str:
    import subprocess
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=5.0)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise FxError(f"effects: {args[0]} failed ({e}); the JACK tools come with jackd2") from None
    if r.returncode != 0:
        raise FxError(f"effects: {' '.join(args)} failed: {(r.stderr or r.stdout).strip()}")
    return r.stdout


def jack_connections() -> dict[str, list[str]]:
    """port -> the ports it is connected to (jack_lsp -c)."""
    out: dict[str, list[str]] = {}
    port = None
    for line in _jack("jack_lsp", "-c").splitlines():
        if line.startswith((" ", "\t")):
            if port is not None:
                out[port].append(line.strip())
        elif line.strip():
            port = line.strip()
            out[port] = []
    return out


class FxHost:
    """The chain live: pyo as its own JACK client (`sidlive-fx`) between our stream's
    outputs (PortAudio:out_*) and the ports they were connected to (the speakers). pyo
    processes in its own JACK thread, in the same JACK cycle as our callback (it follows
    it in the graph), so it adds no latency and never runs inside our callback.
    `set(name, value)` from the control thread; `close()` twice is safe and puts the
    direct connections back."""

    def __init__(self, chain: FxChain, rate_hz: int = 48_000, block_frames: int = 256, bypass: bool = True,
                 client: str = "sidlive-fx", source_prefix: str = "PortAudio:out_"):
        pyo = import_pyo()
        self.chain, self.client, self.source_prefix = chain, client, source_prefix
        self.routes: list[tuple[str, str]] = []
        self.closed = False
        self.server = pyo.Server(sr=rate_hz, nchnls=2, ichnls=1, buffersize=block_frames, duplex=1,
                                 audio="jack", jackname=client, verbosity=1)
        self.server.setJackAuto(False, False)
        self.server.deactivateMidi()
        self.server.boot()
        if not self.server.getIsBooted():
            raise FxError("effects: pyo could not join the JACK server")
        self.input = pyo.Input(chnl=0)
        self.graph = FxGraph(pyo, chain, self.input, bypass=bypass)
        self.output = pyo.Mix(self.graph.out, voices=2).out()
        self.server.start()

    def route(self) -> list[tuple[str, str]]:
        """Reroute: each PortAudio:out_k -> speaker connection goes through the chain
        (out_0 into the chain's input; the chain's outputs to those speakers)."""
        conns = jack_connections()
        ours = sorted(p for p in conns if p.startswith(self.source_prefix))
        if not ours:
            raise FxError(f"effects: no JACK output ports {self.source_prefix}* to route through {self.client}")
        targets = [t for p in ours for t in conns[p]]
        for p in ours:
            for t in conns[p]:
                _jack("jack_disconnect", p, t)
        self.routes = [(p, t) for p in ours for t in conns[p]]
        _jack("jack_connect", ours[0], f"{self.client}:input_1")
        for k, t in enumerate(dict.fromkeys(targets)):
            _jack("jack_connect", f"{self.client}:output_{k % 2 + 1}", t)
        return self.routes

    def set(self, name: str, value) -> bool:
        return self.graph.set(name, value)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            for p, t in self.routes:       # the direct connections back
                try:
                    _jack("jack_connect", p, t)
                except FxError:
                    pass
        finally:
            self.server.stop()
            self.server.shutdown()
