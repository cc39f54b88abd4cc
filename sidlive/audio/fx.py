"""Effects with pyo: a chain described in presets/fx/*.toml, live inside the daemon's
audio callback (pyo's embedded server, `FxHost`) and offline (`sidlive render --fx`,
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

import builtins
import ctypes
import dataclasses
import os
import time
from pathlib import Path

import numpy as np

from sidlive.audio.wav import read_wav
from sidlive.paths import FX_DIR
from sidlive.tomldoc import parse_toml, read_text

# type -> param -> (lo, hi, default): units are in the names
EFFECTS: dict[str, dict[str, tuple[float, float, float]]] = {
    "reverb": {"size": (0.0, 1.0, 0.6), "damp": (0.0, 1.0, 0.5), "mix": (0.0, 1.0, 0.25)},
    "delay": {"time_ms": (1.0, 2000.0, 375.0), "feedback": (0.0, 0.95, 0.4), "mix": (0.0, 1.0, 0.3)},
    "chorus": {"depth": (0.0, 5.0, 1.0), "feedback": (0.0, 1.0, 0.25), "mix": (0.0, 1.0, 0.5)},
    "eq": {"freq_hz": (20.0, 20000.0, 1000.0), "q": (0.1, 20.0, 1.0), "gain_db": (-24.0, 24.0, 0.0)},
    "filter": {"cutoff_hz": (20.0, 20000.0, 8000.0), "q": (0.5, 20.0, 0.707)},
}
RAMP_S = 0.02          # parameter changes glide over 20 ms (no zipper noise)
MAX_DELAY_S = 2.1


class FxError(ValueError):
    """A bad effects preset or value; the message names the file, line and field."""


def param_name(kind: str, key: str) -> str:
    """Live control name of an effect parameter: fx_<type>_<param>."""
    return f"fx_{kind}_{key}"


@dataclasses.dataclass(frozen=True)
class FxChain:
    """An effects preset: its name, the effects in order with their starting values, and its source."""
    name: str
    effects: tuple[tuple[str, dict[str, float]], ...]   # (type, {param: value}) in order
    source: str = ""

    def values(self) -> dict[str, float]:
        """Live control name -> starting value."""
        return {param_name(k, p): v for k, ps in self.effects for p, v in ps.items()}


def load_chain(path: str | Path) -> FxChain:
    """Read and check an effects preset file; FxError names the problem."""
    return parse_chain(read_text(path, FxError), str(path))


def parse_chain(text: str, source: str = "<string>") -> FxChain:
    """Parse and check an effects preset's TOML text (defaults filled in); FxError names the problem."""
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
        if not isinstance(kind, str) or kind not in EFFECTS:
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
    """The shipped effects presets (presets/fx/*.toml), sorted."""
    return sorted(FX_DIR.glob("*.toml"))


def find_chain(spec: str | Path) -> FxChain:
    """A preset name (presets/fx/NAME.toml) or a .toml path -> FxChain."""
    path = Path(spec)
    if path.suffix.lower() != ".toml" and not path.exists():
        path = FX_DIR / f"{spec}.toml"
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
        import pyo  # pyo loads its audio libraries at import: only where effects are used
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


class FxHost:
    """The chain live, inside our own audio callback: pyo's embedded server (no JACK client
    of its own, no thread of its own). `process(block)` runs on the audio thread: the
    block goes into pyo's input buffer, pyo computes it (a direct call into its C
    callback that keeps the GIL the callback already holds: nothing to wait for) and the
    wet block comes back in place. Zero added latency, the same on every output (JACK,
    ALSA, the null output), no second client for JACK to schedule. `set(name, value)`
    from the control thread lands between two blocks (both sides hold the GIL). `close()`
    once the stream has stopped; twice is safe."""

    def __init__(self, chain: FxChain, rate_hz: int = 48_000, block_frames: int = 256, bypass: bool = True):
        pyo = import_pyo()
        if not 16 <= block_frames <= 8192:
            raise FxError(f"effects block_frames: {block_frames} is out of range 16..8192")
        self.chain, self.closed = chain, False
        self.buffer_frames = bs = int(block_frames)
        self.server = pyo.Server(sr=rate_hz, nchnls=1, ichnls=1, buffersize=bs, duplex=1,
                                 audio="embedded", verbosity=1)
        self.server.deactivateMidi()
        self.server.boot()
        if not self.server.getIsBooted():
            raise FxError("effects: pyo's embedded server did not boot")
        self.input = pyo.Input(chnl=0)
        self.graph = FxGraph(pyo, chain, self.input, bypass=bypass)
        self.graph.out.out()
        self.server.start()
        sample = ctypes.c_double if hasattr(builtins, "pyo_use_double") else ctypes.c_float  # pyo's MYFLT
        self._in = np.ctypeslib.as_array((sample * bs).from_address(int(self.server.getInputAddr(), 16)))
        self._out = np.ctypeslib.as_array((ctypes.c_float * bs).from_address(int(self.server.getOutputAddr(), 16)))
        # PYFUNCTYPE: the call keeps the GIL (a CFUNCTYPE call would drop it and pyo would wait to take it back)
        self._run = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_void_p)(int(self.server.getEmbedICallbackAddr(), 16))
        self._arg = ctypes.c_void_p(int(self.server.getServerAddr(), 16))
        # Counters (single writer: the audio thread).
        self.blocks = 0
        self.dry_blocks = 0            # blocks not a multiple of buffer_frames: passed on dry, counted
        self.time_s = 0.0
        self.max_s = 0.0

    def process(self, block) -> None:
        """Audio thread: the float32 block in place, dry -> wet. Allocates no arrays."""
        if self.closed:
            return
        t0 = time.perf_counter()
        n, bs = len(block), self.buffer_frames
        if n == bs:
            np.copyto(self._in, block)
            self._run(self._arg)
            np.copyto(block, self._out)
        elif n % bs == 0:
            for k in range(0, n, bs):
                np.copyto(self._in, block[k:k + bs])
                self._run(self._arg)
                np.copyto(block[k:k + bs], self._out)
        else:
            self.dry_blocks += 1
            return
        dt = time.perf_counter() - t0
        self.blocks += 1
        self.time_s += dt
        if dt > self.max_s:
            self.max_s = dt

    def stats(self) -> dict:
        """Chain name, block counts and processing time per block (mean and max, ms)."""
        return {"chain": self.chain.name, "blocks": self.blocks, "dry_blocks": self.dry_blocks,
                "ms_per_block": round(self.time_s / max(self.blocks, 1) * 1e3, 4),
                "max_ms": round(self.max_s * 1e3, 3)}

    def set(self, name: str, value) -> bool:
        """Set fx_bypass or one of the chain's fx_* parameters (False: not ours)."""
        return self.graph.set(name, value)

    def close(self) -> None:
        """After the stream has stopped (the callback must not be inside `process`)."""
        if self.closed:
            return
        self.closed = True
        self.server.stop()
        self.server.shutdown()
