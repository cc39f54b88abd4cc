"""What a reader must do with any input, hostile or careless: return a right result or raise
its documented error, one line naming the file; nothing else. One check per reader, shared
by the property tests (tests/*/test_*_fuzz.py) and the long campaign (sidlive.measure.fuzz).

Each `check_*` returns "ok" (a result, and the result is right) or "error" (the documented
error, one line, naming the file). A result that is wrong raises `Wrong`; any other
exception is the reader's own failure and propagates as it is.
"""
from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np

from engine.config import normalize_composer
from engine.generator import Generator
from engine.sidm import SidmFormatError
from engine.weights import load_model
from sidlive.audio.fx import EFFECTS, FxError, parse_chain
from sidlive.c64.dump import DumpError, frame_rate_hz
from sidlive.c64.load import load_tune
from sidlive.c64.psid import MAX_SONGS, PsidFormatError, UnsupportedTune, parse_psid
from sidlive.control.keyvoice import NoteEvent
from sidlive.control.maps import ControllerMapError, MidiMapper, dump_map, parse_map
from sidlive.control.osc import OscError, OscServer, message_to_event
from sidlive.control.params import PARAMS, ControlEvent
from sidlive.frames import NUM_REGS, TXT_END, FramesFormatError, canonicalize, load

HEX = frozenset("0123456789abcdefABCDEF")


class Wrong(AssertionError):
    """An input was taken and the result is wrong: the 'exit 0 with wrong output' kind of failure."""


def one_line(e: Exception, name: str) -> str:
    """'error' when e's message is one line that names `name`; Wrong otherwise."""
    msg = str(e)
    if not msg.strip() or "\n" in msg or "\r" in msg:
        raise Wrong(f"{type(e).__name__} message is not one line: {msg[:300]!r}")
    if name not in msg:
        raise Wrong(f"{type(e).__name__} message does not name {name!r}: {msg[:300]!r}")
    return "error"


# ---------------------------------------------------------------------------- frames files

def meta_wrong(meta: dict) -> str | None:
    """What is wrong with a Frames' metadata by the format's rules (checked here, apart from the
    reader's own checks), or None."""
    rate = meta["frame_rate_hz"]
    if not (isinstance(rate, float) and 1.0 <= rate <= 1000.0):
        return f"frame_rate_hz {rate!r}"
    if meta["clock"] not in ("PAL", "NTSC") or meta["chip"] not in ("6581", "8580"):
        return f"clock {meta['clock']!r} chip {meta['chip']!r}"
    if not all(isinstance(meta[k], str) for k in ("title", "author", "source")) or not isinstance(meta["extra"], dict):
        return "a text field that is not a string, or extra not an object"
    return None


def txt_rows(text: str) -> np.ndarray | None:
    """The frames a .txt text holds by the format's rule (one line of 50 hex digits per frame,
    blank lines skipped, `<end>` ends it), or None when a line breaks the rule."""
    rows = []
    for line in text.splitlines():
        s = line.strip()
        if not s:
            continue
        if s == TXT_END:
            break
        if len(s) != 2 * NUM_REGS or not set(s) <= HEX:
            return None
        rows.append([int(s[i:i + 2], 16) for i in range(0, len(s), 2)])
    return np.array(rows, np.uint8).reshape(-1, NUM_REGS)


def regs_parts(blob: bytes) -> tuple[dict, np.ndarray] | None:
    """(metadata, frames) a .regs file holds by its header, or None when its sizes, version or
    metadata are not a well-formed .regs file."""
    if len(blob) < 16:
        return None
    magic, version, _flags, n, meta_len = struct.unpack_from("<4sHHII", blob, 0)
    if magic != b"SLRG" or version != 1 or len(blob) != 16 + meta_len + 25 * n:
        return None
    try:
        meta = json.loads(blob[16:16 + meta_len].decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    return meta, np.frombuffer(blob, np.uint8, 25 * n, 16 + meta_len).reshape(n, NUM_REGS)


def check_frames(path: str | Path) -> str:
    """load(path) of a .regs or .txt file: frames exactly as the file says, or FramesFormatError."""
    path = Path(path)
    try:
        fr = load(path)
    except FramesFormatError as e:
        return one_line(e, path.name)
    if fr.regs.dtype != np.uint8 or fr.regs.shape != (len(fr), NUM_REGS):
        raise Wrong(f"regs {fr.regs.dtype} {fr.regs.shape}")
    if meta_wrong(fr.meta()) is not None:
        raise Wrong(f"metadata taken with {meta_wrong(fr.meta())}")
    blob = path.read_bytes()
    if path.suffix.lower() == ".txt":
        want = txt_rows(blob.decode("ascii", errors="replace"))
    else:
        parts = regs_parts(blob)
        want = parts[1] if parts is not None and isinstance(parts[0], dict) else None
        got = fr.meta()
        if want is not None and any(k not in got or got[k] != v for k, v in parts[0].items()):
            raise Wrong(f"metadata read as {str(got)[:200]}, the file says {str(parts[0])[:200]}")
    if want is None:
        raise Wrong("a file that breaks the format was taken")
    if not np.array_equal(fr.regs, canonicalize(want)):
        raise Wrong(f"{len(fr)} frames read, the file holds {len(want)} (or other values)")
    json.dumps(fr.meta())                      # what the commands do with what they read
    fr.slice(0, 1), normalize_composer(fr.author)
    if not math.isfinite(fr.seconds):
        raise Wrong(f"seconds {fr.seconds}")
    return "ok"


# ---------------------------------------------------------------------------- .sidm

def check_sidm(path: str | Path, pristine: bytes | None = None) -> str:
    """load_model(path): a model whose outputs are finite probabilities, or SidmFormatError.
    pristine: the file's bytes as exported; a file that differs from them (its digest not
    redone) must be refused."""
    path = Path(path)
    try:
        m = load_model(path)
    except SidmFormatError as e:
        return one_line(e, path.name)
    if pristine is not None and path.read_bytes() != pristine:
        raise Wrong("a changed file was taken although its digest was not redone")
    g = Generator(m, max_rollback_frames=1, log=None)
    g.prime(np.zeros((1, NUM_REGS), np.uint8))
    rng = np.random.default_rng(0)
    lp = g.teacher_logprobs(canonicalize(rng.integers(0, 256, (6, NUM_REGS)).astype(np.uint8)))
    if not (np.isfinite(lp).all() and (lp <= 1e-6).all()):
        raise Wrong(f"teacher-forced log-probabilities not finite and <= 0: {lp.min()}..{lp.max()}")
    g.reset()
    out = g.generate(4)
    if out.shape != (4, NUM_REGS) or out.dtype != np.uint8:
        raise Wrong(f"generated {out.dtype} {out.shape}")
    return "ok"


# ---------------------------------------------------------------------------- PSID

def check_psid(blob: bytes, name: str = "t.sid") -> str:
    """parse_psid: header fields in their ranges, or PsidFormatError."""
    try:
        t = parse_psid(blob, name)
    except PsidFormatError as e:
        return one_line(e, name)
    if not (1 <= t.version <= 4 and 1 <= t.songs <= MAX_SONGS and 1 <= t.start_song <= t.songs):
        raise Wrong(f"version {t.version}, songs {t.songs}, startSong {t.start_song}")
    if not (t.data and 0 <= t.load_addr and t.end_addr <= 0xFFFF and 0 <= t.init_addr <= 0xFFFF
            and 0 <= t.play_addr <= 0xFFFF and t.data_offset <= len(blob)):
        raise Wrong(f"load ${t.load_addr:X}..${t.end_addr:X}, init ${t.init_addr:X}, play ${t.play_addr:X}")
    return "ok"


def check_tune(path: str | Path, seconds: float = 0.2) -> str:
    """load_tune of a .sid for `seconds`: that many frames of a dump that ran to the end, or
    PsidFormatError, UnsupportedTune or DumpError."""
    path = Path(path)
    try:
        fr = load_tune(path, seconds)
    except (PsidFormatError, UnsupportedTune, DumpError) as e:
        return one_line(e, path.name)
    want = max(1, round(seconds * frame_rate_hz(fr.clock)))
    if len(fr) != want or fr.extra.get("status") != "ok" or meta_wrong(fr.meta()) is not None:
        raise Wrong(f"{len(fr)} frames (want {want}), status {fr.extra.get('status')}")
    return "ok"


# ---------------------------------------------------------------------------- TOML

def check_map(text: str, name: str = "m.toml") -> str:
    """parse_map: a map within every range that saves and reads back the same, or ControllerMapError."""
    try:
        cmap = parse_map(text, name)
    except ControllerMapError as e:
        return one_line(e, name)
    if not 0 <= cmap.channel <= 16 or not all(0 <= k.cc <= 119 and k.param in PARAMS for k in cmap.knobs):
        raise Wrong(f"channel {cmap.channel} or a knob out of range")
    for k in cmap.knobs:
        p = PARAMS[k.param]
        if any(v is not None and not p.lo <= v <= p.hi for v in (k.min, k.max)):
            raise Wrong(f"knob cc {k.cc}: min/max {k.min}/{k.max} outside {p.range_text()}")
    if parse_map(dump_map(cmap), name) != cmap:
        raise Wrong("the map does not read back as itself")
    mapper = MidiMapper(cmap)
    for msg in ([0xB0, 16, 64], [0x90, 60, 100], [0xC0, 3], [0xB1, 7, 127]):
        mapper.handle(msg)
    return "ok"


def check_chain(text: str, name: str = "f.toml") -> str:
    """parse_chain: effects each at most once with every value finite and in range, or FxError."""
    try:
        chain = parse_chain(text, name)
    except FxError as e:
        return one_line(e, name)
    kinds = [k for k, _ in chain.effects]
    if len(set(kinds)) != len(kinds) or not isinstance(chain.name, str):
        raise Wrong(f"effects {kinds}")
    for kind, values in chain.effects:
        for key, v in values.items():
            lo, hi, _ = EFFECTS[kind][key]
            if not (isinstance(v, float) and lo <= v <= hi):
                raise Wrong(f"{kind}.{key} = {v!r}, allowed {lo}..{hi}")
    return "ok"


# ---------------------------------------------------------------------------- OSC

def check_osc(address, args: tuple) -> str:
    """message_to_event: an event whose value is already valid, or OscError; the server's handler
    never raises on it."""
    server = OscServer(lambda event: None)
    server._on_message(address, args)           # counts and logs, never raises
    if server.accepted + server.dropped != 1:
        raise Wrong(f"handler counted {server.stats()}")
    try:
        ev = message_to_event(address, args)
    except OscError as e:
        return one_line(e, "")
    if isinstance(ev, NoteEvent):
        if not (0 <= ev.note <= 127 and 0 <= ev.velocity <= 127):
            raise Wrong(f"note {ev}")
        return "ok"
    if not isinstance(ev, ControlEvent) or ev.name not in PARAMS:
        raise Wrong(f"event {ev!r}")
    p = PARAMS[ev.name]
    if ev.op == "set" and p.kind != "trigger" and p.validate(ev.value) != ev.value:
        raise Wrong(f"{ev.name} set to {ev.value!r}, not a valid value")
    return "ok"
