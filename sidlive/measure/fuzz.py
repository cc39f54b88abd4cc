"""The bad-input campaign: malformed files and messages, as a hostile or careless user makes
them, against every reader and the commands that read them.

    python -m sidlive.measure.fuzz --cases 1000 [--seed 1] [--command-every 10] [--json OUT]

Each case mutates a good input (a .regs or .txt frames file, a .sidm model, a PSID tune, a
controller map, an effects preset, an OSC message): bytes changed, cut or added, one field
given a hostile value (wrong type, out of range, NaN, nested 100,000 deep...) with the
file's lengths and digest redone where a user could redo them. The reader's check
(sidlive/measure/fuzzcheck.py) then says ok or error; every --command-every'th file case
also runs the commands that read it (`sidlive render/export/score/generate`, a subprocess
each, as a user runs them): exit 0 must come with a right output, any other exit with one
line on stderr. Counted per target: ok, error, traceback, hang, wrong (exit 0 or a result
with wrong or shortened output). The campaign passes with 0 tracebacks, hangs and wrongs.
"""
from __future__ import annotations

import argparse
import json
import logging
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

import numpy as np

from engine.config import ModelConfig
from engine.sidm import HEADER, HEADER_V1, digest
from sidlive.c64.psid import build_psid
from sidlive.frames import Frames, save
from sidlive.measure import fuzzcheck as fc
from sidlive.measure.enginebench import random_model
from sidlive.paths import CONTROLLERS_DIR, FX_DIR

TARGETS = ("regs", "txt", "sidm", "psid", "map", "fx", "osc")
HANG_S = 20.0
TINY = dict(context_frames=16, d_global=32, n_layers_global=2, n_heads_global=2, mlp_mult_global=2, d_local=16,
            n_layers_local=2, n_heads_local=2, mlp_mult_local=2, d_readout=32, composers=("any", "Rob Hubbard"))
# counter tune: init $1000 (LDA #0, STA $FB, LDA #$0F, STA $D418, RTS), play $100A (INC/LDA $FB, STA $D400, RTS)
TUNE = bytes([0xA9, 0, 0x85, 0xFB, 0xA9, 0x0F, 0x8D, 0x18, 0xD4, 0x60, 0xE6, 0xFB, 0xA5, 0xFB, 0x8D, 0, 0xD4, 0x60])


def deep(n: int) -> str:
    """JSON text of n nested lists."""
    return "[" * n + "]" * n


HOSTILE_JSON = [0, -4, 1.5, -1.0, 1e308, 3e38, float("nan"), float("inf"), True, False, None, "", "50.1245",
                "x" * 2000, [], [1, "a"], {}, {"a": [1]}, 2 ** 64, -2 ** 63, "PAL", "8580", "any", [["any"]]]
HOSTILE_TOML = ['["pulse"]', "{ a = 1 }", "3", "-1", "0", "1e400", "nan", "-inf", '"x"', "true", "1979-05-27",
                "[[[]]]", '"' + "é" * 40 + '"', "99999999999999999999999", "0x10", '"\\u0000"', "[1, 2.5]",
                "[" * 3000 + "]" * 3000, "{ " + "a = { " * 50 + "b = 1" + " }" * 51, '"delay"', '"pulse"', "127"]
OSC_VALUES = [0, 1, -1, 127, 128, 2 ** 31 - 1, 0.5, -0.0, 1e300, float("nan"), float("inf"), True, False, None, "",
              "1", "call_response", "x" * 65_536, b"\x00\xff", [1, 2], "0.8", " nan "]


def pick(rng, items):
    """One item of a list, chosen by rng."""
    return items[int(rng.integers(len(items)))]


def edit_bytes(blob: bytes, rng, start: int = 0) -> bytes:
    """blob with 1-4 bytes changed at or after start, or cut short, or with bytes added."""
    b = bytearray(blob)
    how = int(rng.integers(6))
    if how == 4 and len(b) > start:
        return bytes(b[:int(rng.integers(start, len(b)))])
    if how == 5:
        return bytes(b) + rng.integers(0, 256, int(rng.integers(1, 64))).astype(np.uint8).tobytes()
    for _ in range(1 + how % 4):
        if len(b) > start:
            b[int(rng.integers(start, len(b)))] = int(rng.integers(256))
    return bytes(b)


# ---------------------------------------------------------------------------- cases

def regs_case(rng, d: Path) -> Path:
    """A .regs file with a hostile metadata field (lengths fixed) or changed bytes."""
    fr = Frames(regs=fc.canonicalize(rng.integers(0, 256, (int(rng.integers(1, 60)), 25)).astype(np.uint8)),
                title="t", author="Rob Hubbard", extra={"speed": "vbi"})
    p = d / "case.regs"
    save(fr, p)
    if rng.random() < 0.6:
        meta = fr.meta()
        meta[pick(rng, list(meta) + ["bogus"])] = pick(rng, HOSTILE_JSON)
        text = json.dumps(meta)
        if rng.random() < 0.15:
            text = '{"extra": {"x": ' + deep(int(pick(rng, [40, 1000, 100_000]))) + "}}"
        m = text.encode()
        p.write_bytes(struct.pack("<4sHHII", b"SLRG", 1, 0, len(fr), len(m)) + m + fr.regs.tobytes())
    else:
        p.write_bytes(edit_bytes(p.read_bytes(), rng))
    return p


def txt_case(rng, d: Path) -> Path:
    """A .txt file with characters changed, added or removed, lines joined, split or ended early."""
    rows = rng.integers(0, 256, (int(rng.integers(1, 30)), 25)).astype(np.uint8)
    lines = ["".join(f"{b:02X}" for b in r) for r in rows] + ["<end>"]
    for _ in range(int(rng.integers(1, 4))):
        i = int(rng.integers(len(lines)))
        s, j = lines[i], int(rng.integers(len(lines[i]) + 1))
        c = pick(rng, [" ", "  ", "\t", "g", "é", "\x00", "\r", "\x0c", "<end>", "0", "00", "", "\n", "-1"])
        how = int(rng.integers(4))
        lines[i] = s[:j] + c + s[j + (how == 0):] if how < 2 else lines[i]
        if how == 2 and i + 1 < len(lines):
            lines[i:i + 2] = [lines[i] + lines[i + 1]]
        elif how == 3:
            lines.insert(i, pick(rng, ["", "  ", "<end>", lines[i][:48]]))
    p = d / "case.txt"
    p.write_bytes("\n".join(lines).encode("utf-8"))
    return p


def resigned(blob: bytearray) -> bytes:
    """A version-2 .sidm with its digest redone, as a user with the format description can."""
    fixed = bytes(blob[:HEADER_V1.size])
    return fixed + digest(fixed, bytes(blob[HEADER.size:])) + bytes(blob[HEADER.size:])


def sidm_case(rng, d: Path, base: Path) -> tuple[Path, bytes | None]:
    """(a model file, the bytes it must equal to be taken: None when its digest was redone)."""
    blob = base.read_bytes()
    p = d / "case.sidm"
    how = int(rng.integers(4))
    if how == 0:
        p.write_bytes(edit_bytes(blob, rng, start=4))
        return p, blob
    _, _, _, _, json_len, n = HEADER_V1.unpack_from(blob, 0)
    head = json.loads(blob[HEADER.size:HEADER.size + json_len])
    if how == 3:                       # a weight value poked (a scale or a float32 vector element)
        b = bytearray(blob)
        start = HEADER.size + json_len + (-(HEADER.size + json_len)) % 16
        off = start + 4 * int(rng.integers((len(blob) - start) // 4))
        struct.pack_into("<f", b, off, pick(rng, [np.nan, np.inf, -np.inf, 3e38, -1e30, 1e4, 0.0]))
        p.write_bytes(resigned(b))
        return p, None
    if how == 1:
        head["config"][pick(rng, list(head["config"]) + ["bogus"])] = pick(rng, HOSTILE_JSON)
    else:
        head["meta"] = pick(rng, HOSTILE_JSON + [{"baseline": pick(rng, HOSTILE_JSON)},
                                                 {"mixture": pick(rng, HOSTILE_JSON)},
                                                 {"baseline": {"change_p": [0.5] * 25, "hist": [[0.5] * 256] * 25}}])
    text = json.dumps(head).encode()
    tail = blob[HEADER.size + json_len + (-(HEADER.size + json_len)) % 16:]
    body = text + b"\0" * ((-(HEADER.size + len(text))) % 16) + tail
    fixed = HEADER_V1.pack(b"SIDM", 2, 0, HEADER.size + len(body), len(text), n)
    p.write_bytes(fixed + digest(fixed, body) + body)
    return p, None


def psid_case(rng, d: Path) -> Path:
    """The counter tune with header fields set to random values, or bytes changed or cut."""
    blob = bytearray(build_psid(TUNE, load_addr=0x1000, init_addr=0x1000, play_addr=0x100A, songs=3))
    if rng.random() < 0.6:
        for _ in range(int(rng.integers(1, 3))):
            off = pick(rng, [4, 6, 8, 10, 12, 14, 16, 0x76, 0x78, 0x7A])
            struct.pack_into(">H", blob, off, int(pick(rng, [0, 1, 2, 5, 0xD400, 0xFFFF, 0x1000, 0x7C, 0x76,
                                                             int(rng.integers(0x10000))])))
        if rng.random() < 0.3:
            struct.pack_into(">I", blob, 18, int(rng.integers(1 << 32)))
        data = bytes(blob)
    else:
        data = edit_bytes(bytes(blob), rng)
    p = d / "case.sid"
    p.write_bytes(data)
    return p


def toml_case(rng, texts: list[str]) -> str:
    """A shipped map or preset with a value made hostile, a line dropped or added, or nesting."""
    lines = pick(rng, texts).splitlines()
    how = int(rng.integers(5))
    keyed = [i for i, s in enumerate(lines) if "=" in s and not s.lstrip().startswith("#")]
    i = pick(rng, keyed) if keyed else 0
    if how <= 2 and keyed:
        lines[i] = lines[i].split("=", 1)[0] + "= " + pick(rng, HOSTILE_TOML)
    elif how == 3:
        lines.insert(int(rng.integers(len(lines) + 1)), pick(rng, ["[keyboard]", "[[knob]]", "[[effect]]", "channel = 2",
                                                                   'waveform = ["pulse"]', 'type = ["delay"]', "x = "]))
    elif lines:
        del lines[int(rng.integers(len(lines)))]
    return "\n".join(lines) + "\n"


def osc_case(rng) -> tuple:
    """(address, args) of a hostile OSC message."""
    from_params = "/sidlive/" + pick(rng, list(fc.PARAMS) + ["mute", "solo", "note", "tempo", ""])
    address = pick(rng, [from_params] * 4 + ["/other/x", "/sidlive/" + "x" * 65_536, "", "sidlive/top_k"])
    return address, tuple(pick(rng, OSC_VALUES) for _ in range(pick(rng, [0, 1, 1, 1, 1, 2, 3])))


# ---------------------------------------------------------------------------- commands

def judge(argv: list[str], taken: bool, output_ok, stdout: Path | None = None, timeout_s: float = 300.0) -> str:
    """Run `python -m sidlive ARGV` (this interpreter, as a user runs it; stdout saved to
    `stdout`) and judge it: exit 0 needs a taken input and output_ok(); any other exit one
    line on stderr (warnings aside) and no traceback."""
    try:
        r = subprocess.run([sys.executable, "-m", "sidlive", *argv], capture_output=True, text=True,
                           errors="replace", timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return "hang"
    if stdout is not None:
        stdout.write_text(r.stdout)
    if r.returncode == 0:
        return "ok" if taken and output_ok() else "wrong"
    if "Traceback" in r.stderr:
        return "traceback"
    lines = [s for s in r.stderr.splitlines() if s.strip() and "warning:" not in s]
    return "error" if len(lines) == 1 else "wrong"


def command_outcomes(target: str, path: Path, verdict: str, d: Path, tune: Path, turn: int) -> list[tuple[str, str]]:
    """(command, outcome) for the commands that read this case's file; `verdict` is the reader's."""
    taken = verdict == "ok"
    wav, sid, regs, report = d / "o.wav", d / "o.sid", d / "g.regs", d / "score.json"
    for old in (wav, sid, regs, report):
        old.unlink(missing_ok=True)
    if target in ("regs", "txt"):
        return [("render", judge(["render", str(path), "-o", str(wav), "--seconds", "1"], taken,
                                 lambda: wav.stat().st_size > 44)),
                ("export", judge(["export", str(path), "-o", str(sid)], taken,
                                 lambda: fc.check_psid(sid.read_bytes()) == "ok"))]
    if target == "psid":
        return [("render", judge(["render", str(path), "-o", str(wav), "--seconds", "0.2"], taken,
                                 lambda: wav.stat().st_size > 44))]
    if target != "sidm":
        return []

    def scored() -> bool:
        bits = json.loads(report.read_text())["mean"]["bits_per_frame"].values()
        return all(np.isfinite(b) and b > 0 for b in bits)

    torch_path = ["--torch"] if turn % 2 else []
    return [("score" + " --torch" * bool(torch_path),
             judge(["score", str(path), str(tune), "--json", *torch_path], taken, scored, stdout=report)),
            ("generate", judge(["generate", "--model", str(path), "--frames", "20", "-o", str(regs)], taken,
                               lambda: len(fc.load(regs)) == 20))]


# ---------------------------------------------------------------------------- the campaign

class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


def run_case(target: str, rng, d: Path, base: dict) -> tuple[str, str, Path | None]:
    """(outcome, detail, the file the case wrote or None) of one case of a target."""
    path = None
    t0 = time.monotonic()
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(int(HANG_S))
    try:
        if target == "regs":
            path = regs_case(rng, d)
            verdict = fc.check_frames(path)
        elif target == "txt":
            path = txt_case(rng, d)
            verdict = fc.check_frames(path)
        elif target == "sidm":
            path, pristine = sidm_case(rng, d, base["model"])
            verdict = fc.check_sidm(path, pristine)
        elif target == "psid":
            path = psid_case(rng, d)
            verdict = fc.check_psid(path.read_bytes(), path.name)
            if verdict == "ok":
                verdict = fc.check_tune(path)
        elif target in ("map", "fx"):
            text = toml_case(rng, base[target])
            verdict = (fc.check_map if target == "map" else fc.check_chain)(text, "case.toml")
        else:
            verdict = fc.check_osc(*osc_case(rng))
    except _Hang:
        return "hang", f"over {HANG_S:g} s", path
    except fc.Wrong as e:
        return "wrong", str(e)[:300], path
    except Exception:  # noqa: BLE001 - a reader's own failure is what the campaign counts
        return "traceback", traceback.format_exc(limit=-3)[-600:], path
    finally:
        signal.alarm(0)
    if time.monotonic() - t0 > HANG_S:
        return "hang", f"{time.monotonic() - t0:.1f} s", path
    return verdict, "", path


def campaign(cases: int, seed: int, command_every: int, keep: Path | None = None, log=print) -> dict:
    """Run `cases` cases round-robin over TARGETS; counts per target and command, and the
    failures (their inputs copied to `keep` when given)."""
    rng = np.random.default_rng(seed)
    counts: dict[str, Counter] = {}
    examples: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="sidlive-fuzz-") as tmp:
        d = Path(tmp)
        model = random_model(d / "base.sidm", ModelConfig(**TINY), seed=seed)
        tune = d / "tune.regs"
        save(Frames(regs=fc.canonicalize(rng.integers(0, 256, (30, 25)).astype(np.uint8)), author="Rob Hubbard"), tune)
        base = {"model": model, "map": [p.read_text() for p in sorted(CONTROLLERS_DIR.glob("*.toml"))],
                "fx": [p.read_text() for p in sorted(FX_DIR.glob("*.toml"))]}
        t0 = time.monotonic()
        for i in range(cases):
            target = TARGETS[i % len(TARGETS)]
            outcome, detail, path = run_case(target, rng, d, base)
            results = [(target, outcome, detail)]
            if command_every and path is not None and (i // len(TARGETS)) % command_every == 0:
                results += [(f"{target}:{c}", o, "") for c, o in
                            command_outcomes(target, path, outcome, d, tune, i // len(TARGETS))]
            for name, o, det in results:
                counts.setdefault(name, Counter())[o] += 1
                if o in ("traceback", "hang", "wrong") and len(examples) < 100:
                    if keep is not None and path is not None:
                        keep.mkdir(parents=True, exist_ok=True)
                        (keep / f"case{i}-{name.replace(':', '-').replace(' ', '')}{path.suffix}").write_bytes(
                            path.read_bytes())
                    examples.append({"case": i, "target": name, "outcome": o, "detail": det})
            if log and (i + 1) % 100 == 0:
                bad = sum(c[k] for c in counts.values() for k in ("traceback", "hang", "wrong"))
                log(f"{i + 1}/{cases} cases, {bad} failures, {time.monotonic() - t0:.0f} s")
    totals = Counter()
    for c in counts.values():
        totals.update(c)
    return {"cases": cases, "seed": seed, "counts": {k: dict(v) for k, v in sorted(counts.items())},
            "totals": dict(totals), "examples": examples, "seconds": round(time.monotonic() - t0, 1)}


def main(argv: list[str] | None = None) -> int:
    """Command line: run the campaign, print the counts; exit 1 when anything failed."""
    ap = argparse.ArgumentParser(prog="python -m sidlive.measure.fuzz", description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=1000, help="malformed inputs to try (default 1000)")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument("--command-every", type=int, default=10, metavar="N",
                    help="also run the commands on every N-th case of each file target (0: never; default 10)")
    ap.add_argument("--json", type=Path, default=None, help="write the report here too")
    ap.add_argument("--keep", type=Path, default=None, metavar="DIR", help="copy the inputs that failed here")
    args = ap.parse_args(argv)
    logging.getLogger("sidlive.control.osc").setLevel(logging.ERROR)   # the OSC cases' drops: counted, not shown
    rep = campaign(args.cases, args.seed, args.command_every, args.keep,
                   log=lambda s: print(s, file=sys.stderr, flush=True))
    for name, c in rep["counts"].items():
        print(f"{name:<22} " + "  ".join(f"{k} {c.get(k, 0)}" for k in ("ok", "error", "traceback", "hang", "wrong")))
    t = rep["totals"]
    print(f"{rep['cases']} cases in {rep['seconds']:.0f} s: {t.get('traceback', 0)} tracebacks, "
          f"{t.get('hang', 0)} hangs, {t.get('wrong', 0)} wrong outputs")
    for ex in rep["examples"][:10]:
        print(f"  case {ex['case']} {ex['target']}: {ex['outcome']}: {ex['detail'][:300]}")
    if args.json is not None:
        args.json.write_text(json.dumps(rep, indent=1) + "\n", encoding="utf-8")
    return 1 if any(t.get(k) for k in ("traceback", "hang", "wrong")) else 0


if __name__ == "__main__":
    sys.exit(main())
