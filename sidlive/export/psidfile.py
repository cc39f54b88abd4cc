"""`sidlive export`: register frames to a PSID v2 .sid that plays on a C64 and in SID players.

    sidlive export IN.regs|IN.txt [IN2 ...] -o OUT.sid [--title T] [--author A]
                   [--released R] [--loop] [--seconds S]
    sidlive export check [HVSC_ROOT] [--n 20] [--seconds 60] [--seed 0] [--json FILE]

Each input becomes a subtune (1..64). The file carries a 6510 player written in this
project (sidlive/export/player.py, assembled by sidlive/export/assembler.py) and the frames as
delta-compressed register streams; play is called once per video frame (VBI speed, PSID
speed bit 0; the PAL/NTSC and 6581/8580 flags follow the frames) and writes all 25
registers, so a dump of the .sid gives back the input frames exactly. At the end of a
subtune the player writes 0 to every register (silence) and idles; --loop plays it again
from the start instead. Title, author and released come from the options, else the
frames' metadata; each is cut to 32 bytes of Latin-1 (warning). Player, tables and data
must fit $0800-$CFFF: a longer song is refused, naming the longest length that fits.

`check` is the acceptance run: a seeded sample of HVSC tunes, each dumped, exported,
dumped again (must be equal), rendered by sidplayfp and correlated with `sidlive render`
of the frames, plus bytes per frame of the export and of ASID (docs/sid-export.md).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path

import numpy as np

from sidlive.frames import NTSC_CLOCK_HZ, NTSC_FRAME_CYCLES, PAL_FRAME_RATE_HZ, Frames, FramesFormatError, load
from sidlive.export.player import LOAD_ADDR, MAX_SUBTUNES, RAM_END, build_player, encode_best

TEXT_BYTES = 32
RATES_HZ = {"PAL": PAL_FRAME_RATE_HZ, "NTSC": NTSC_CLOCK_HZ / NTSC_FRAME_CYCLES}
CLOCK_FLAGS = {"PAL": 0x04, "NTSC": 0x08}  # PSID v2 flags bits 2-3
CHIP_FLAGS = {"6581": 0x10, "8580": 0x20}  # bits 4-5


class ExportError(ValueError):
    """Frames that cannot become a .sid (too long, mixed clocks, bad frame rate)."""


@dataclasses.dataclass
class ExportResult:
    path: str
    subtunes: int
    frames: list  # frames per subtune
    data_bytes: int  # the frame data (without player and tables)
    image_bytes: int  # player + tables + data, loaded at load_addr
    load_addr: int
    init_addr: int
    play_addr: int
    title: str
    author: str
    released: str

    @property
    def bytes_per_frame(self) -> float:
        return self.data_bytes / max(1, sum(self.frames))

    @property
    def free_bytes(self) -> int:
        return RAM_END - self.load_addr - self.image_bytes


def psid_text(value: str, field: str, warn=None) -> str:
    """A PSID text field: Latin-1 printable characters only ('?' for others), at most 32 bytes."""
    value = str(value or "")
    clean = "".join(c if (" " <= c <= "~" or "\xa0" <= c <= "\xff") else "?" for c in value)
    if clean != value and warn:
        warn(f"{field}: characters outside printable Latin-1 replaced by '?': {value!r}")
    if len(clean) > TEXT_BYTES:
        if warn:
            warn(f"{field}: {len(clean)} characters, cut to the {TEXT_BYTES} a .sid holds: {clean[:TEXT_BYTES]!r}")
        clean = clean[:TEXT_BYTES]
    return clean


def _check_frames(frames_list: list[Frames]) -> str:
    if not 1 <= len(frames_list) <= MAX_SUBTUNES:
        raise ExportError(f"{len(frames_list)} inputs; a .sid export holds 1..{MAX_SUBTUNES} subtunes")
    clock = frames_list[0].clock
    for i, fr in enumerate(frames_list):
        name = fr.source or f"input {i + 1}"
        if fr.clock != clock:
            raise ExportError(f"{name}: clock {fr.clock}, but the first input is {clock}; one .sid has one clock")
        if abs(fr.frame_rate_hz - RATES_HZ[fr.clock]) > 0.01:
            raise ExportError(f"{name}: frame rate {fr.frame_rate_hz:.3f} Hz; the player runs one frame per "
                              f"{fr.clock} video frame ({RATES_HZ[fr.clock]:.3f} Hz)")
        if not 1 <= len(fr) <= 0xFFFF:
            raise ExportError(f"{name}: {len(fr)} frames; a subtune holds 1..65535")
    return clock


def build_sid(frames_list: list[Frames], *, title: str, author: str, released: str,
              loop: bool = False) -> tuple[bytes, dict]:
    """The .sid file bytes and what went in (addresses, sizes). Raises ExportError when the
    song does not fit C64 RAM."""
    from sidlive.c64.psid import build_psid

    clock = _check_frames(frames_list)
    enc = encode_best([fr.regs for fr in frames_list])
    prog, image = build_player(enc, loop=loop)
    end = LOAD_ADDR + len(image)
    if end > RAM_END:
        raise ExportError(_too_long_message(frames_list, enc.size(), end - LOAD_ADDR - enc.size()))
    flags = CLOCK_FLAGS[clock] | CHIP_FLAGS[frames_list[0].chip]
    blob = build_psid(image, load_addr=LOAD_ADDR, init_addr=prog.symbols["init"],
                      play_addr=prog.symbols["play"], songs=len(frames_list), start_song=1,
                      speed_bits=0, title=title, author=author, released=released, version=2,
                      flags=flags)
    info = dict(data_bytes=enc.size(), image_bytes=len(image), load_addr=LOAD_ADDR,
                init_addr=prog.symbols["init"], play_addr=prog.symbols["play"])
    return blob, info


def longest_fit(frames_list: list[Frames]) -> int:
    """The most frames of the last input that fit C64 RAM with the others whole (0: none).
    Searched with fewer copy-length trials than the export uses (faster; the export can
    only come out smaller, so the answer always fits)."""
    def fits(n: int) -> bool:
        if n == 0:
            return True
        regs = [fr.regs for fr in frames_list[:-1]] + [frames_list[-1].regs[:n]]
        prog, image = build_player(encode_best(regs, min_lens=(4, 8, 16)))
        return LOAD_ADDR + len(image) <= RAM_END

    lo, hi = 0, len(frames_list[-1])
    while lo < hi:  # invariant: fits(lo); the answer is < hi + 1
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


def _too_long_message(frames_list: list[Frames], data_bytes: int, player_bytes: int) -> str:
    last = frames_list[-1]
    rate = last.frame_rate_hz
    fit = longest_fit(frames_list)
    room = RAM_END - LOAD_ADDR - player_bytes
    which = "" if len(frames_list) == 1 else f" (last input, {last.source or 'subtune ' + str(len(frames_list))})"
    return (f"{len(last)} frames ({len(last) / rate:.1f} s){which} encode to {data_bytes} bytes of frame data; "
            f"C64 RAM ${LOAD_ADDR:04X}-${RAM_END - 1:04X} has room for {room} after the {player_bytes}-byte "
            f"player: the longest that fits is {fit} frames ({fit / rate:.1f} s); "
            f"export that with --seconds {math.floor(fit / rate * 10) / 10:.1f}")


def export_frames(frames: Frames | list[Frames], path: str | Path, *, title: str | None = None,
                  author: str | None = None, released: str | None = None, loop: bool = False,
                  warn=None) -> ExportResult:
    """Write `frames` (one Frames, or a list: one subtune each) as a PSID v2 .sid at `path`.

    title/author/released default to the first input's metadata (title, author,
    extra["released"]). warn(msg) receives warnings (text cut to 32 bytes, ...); default
    stderr. Raises ExportError (too long for C64 RAM, mixed clocks, bad frame rate).
    """
    if warn is None:
        def warn(msg):
            print(f"sidlive export: warning: {msg}", file=sys.stderr)
    frames_list = [frames] if isinstance(frames, Frames) else list(frames)
    if not frames_list:
        raise ExportError("nothing to export: no frames given")
    first = frames_list[0]
    texts = {
        "title": psid_text(first.title if title is None else title, "title", warn),
        "author": psid_text(first.author if author is None else author, "author", warn),
        "released": psid_text(first.extra.get("released", "") if released is None else released,
                              "released", warn),
    }
    chips = {fr.chip for fr in frames_list}
    if len(chips) > 1:
        warn(f"inputs are for chips {sorted(chips)}; the .sid is marked {first.chip}")
    blob, info = build_sid(frames_list, loop=loop, **texts)
    Path(path).write_bytes(blob)
    return ExportResult(path=str(path), subtunes=len(frames_list), frames=[len(f) for f in frames_list],
                        **info, **texts)


# --------------------------------------------------------------------------- check

def check_tune(sid_path: Path, seconds: float, tmp_dir: Path, rate_hz: int = 48_000,
               delay_cycles: int | None = None) -> dict:
    """Dump -> export -> dump again (must be equal) -> sidplayfp vs sidlive render.

    sidplayfp's samples are read at reSIDfp's true rate (`resid_rate_ratio`: its WAV runs
    2.2e-4 slow, 13 ms over 60 s) where they are compared with `sidlive render`, as the
    sound check does; corr_export_raw is the same correlation without that (for reference).
    delay_cycles: sidplayfp's power-on delay (None: its random one)."""
    from sidlive.midi.asid import bandwidth
    from sidlive.measure.soundcheck import envelope_alignment, resid_rate_ratio, sidplayfp_render
    from sidlive.frames import canonicalize
    from sidlive.audio.renderer import render
    from sidlive.c64.dump import dump_tune

    frames = dump_tune(sid_path, seconds=seconds)
    if frames.extra.get("status") != "ok":
        raise ExportError(f"{sid_path}: the dump ended early ({frames.extra.get('status')})")
    out = tmp_dir / "export.sid"
    res = export_frames(frames, out, warn=lambda m: None)
    secs = len(frames) / frames.frame_rate_hz
    again = dump_tune(out, seconds=secs)
    exact = len(again) == len(frames) and np.array_equal(canonicalize(again.regs), frames.regs)
    ours = render(frames, rate_hz=rate_hz)
    exported = sidplayfp_render(out, secs, subtune=1, chip=frames.chip, rate_hz=rate_hz,
                                delay_cycles=delay_cycles)
    original = sidplayfp_render(sid_path, secs, subtune=frames.extra["subtune"], chip=frames.chip,
                                rate_hz=rate_hz, delay_cycles=delay_cycles)
    sp_rate_hz = rate_hz * resid_rate_ratio(rate_hz)
    r_exp, lag_exp = envelope_alignment(ours, exported, rate_hz, b_rate_hz=sp_rate_hz)
    r_raw, _ = envelope_alignment(ours, exported, rate_hz)
    r_orig, _ = envelope_alignment(ours, original, rate_hz, b_rate_hz=sp_rate_hz)
    r_pp, _ = envelope_alignment(original, exported, rate_hz)
    asid = bandwidth(frames.regs, frames.frame_rate_hz)
    return {"frames": len(frames), "exact": bool(exact), "data_bytes": res.data_bytes,
            "bytes_per_frame": round(res.bytes_per_frame, 3), "corr_export": round(r_exp, 4),
            "corr_export_raw": round(r_raw, 4), "lag_ms": lag_exp, "corr_original": round(r_orig, 4),
            "corr_sidplayfp": round(r_pp, 4),
            "asid_mean": round(asid["mean"], 2), "asid_p99": asid["p99"], "asid_max": asid["max"],
            "chip": frames.chip}


def check(hvsc_root: Path, n: int = 20, seconds: float = 60.0, seed: int = 0, log=print,
          delay_cycles: int | None = None) -> list[dict]:
    """check_tune on the first n dumpable tunes of sidlive.measure.soundcheck.pick_tunes(root, n, seed)."""
    import tempfile

    from sidlive.measure.soundcheck import pick_tunes
    from sidlive.c64.psid import load_psid

    rows = []
    with tempfile.TemporaryDirectory(prefix="sidlive-export-check-") as tmp:
        for path in pick_tunes(hvsc_root, n, seed):
            if len(rows) >= n:
                break
            try:
                if load_psid(path).unsupported():
                    continue
                row = check_tune(path, seconds, Path(tmp), delay_cycles=delay_cycles)
            except Exception as e:  # a tune the dumper or sidplayfp refuses is listed, not fatal
                log(f"skip {path.relative_to(hvsc_root)}: {type(e).__name__}: {e}")
                continue
            row["path"] = str(path.relative_to(hvsc_root))
            rows.append(row)
            log(_row_text(row))
    return rows


def _row_text(r: dict) -> str:
    return (f"{'yes' if r['exact'] else 'NO':>5} {r['bytes_per_frame']:6.2f} {r['corr_export']:7.3f} "
            f"{r['corr_export_raw']:7.3f} {r['corr_original']:7.3f} {r['corr_sidplayfp']:7.3f} "
            f"{r['asid_mean']:6.1f} {r['asid_p99']:5.0f}  {r['path']}")


def check_main(argv: list[str]) -> int:
    import json

    from sidlive.paths import hvsc_root
    ap = argparse.ArgumentParser(prog="sidlive export check", description="round trip and sound check of .sid export")
    ap.add_argument("hvsc", nargs="?", type=Path, default=None, help="HVSC C64Music folder (default ../shared)")
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    ap.add_argument("--delay", type=int, default=None, metavar="CYCLES",
                    help="sidplayfp's power-on delay, 0..8191 (default: its random one)")
    args = ap.parse_args(argv)
    if args.delay is not None and not 0 <= args.delay <= 8191:
        print(f"sidlive export check: --delay must be in 0..8191, got {args.delay}", file=sys.stderr)
        return 2
    root = args.hvsc or hvsc_root()
    if root is None or not Path(root).is_dir():
        print("sidlive export check: no HVSC folder (give one, or put ../shared beside the checkout)", file=sys.stderr)
        return 2
    print("exact B/frame corr_exp exp_raw corr_orig sp_vs_sp asid_B p99  path  (corr: envelope vs sidlive "
          "render; exp_raw: sidplayfp's samples not rate-corrected)")
    rows = check(Path(root), args.n, args.seconds, args.seed, delay_cycles=args.delay)
    if rows:
        bpf = [r["bytes_per_frame"] for r in rows]
        ce = [r["corr_export"] for r in rows]
        cr = [r["corr_export_raw"] for r in rows]
        am = [r["asid_mean"] for r in rows]
        print(f"{sum(r['exact'] for r in rows)}/{len(rows)} exact; bytes/frame mean {np.mean(bpf):.2f} worst "
              f"{max(bpf):.2f}; corr_export median {np.median(ce):.3f} min {min(ce):.3f}, >= 0.95: "
              f"{sum(c >= 0.95 for c in ce)}/{len(rows)} (raw time base: median {np.median(cr):.3f} min "
              f"{min(cr):.3f}, {sum(c >= 0.95 for c in cr)}/{len(rows)}); ASID bytes/frame mean "
              f"{np.mean(am):.1f}, p99 max "
              f"{max(r['asid_p99'] for r in rows):.0f} (MIDI DIN: {3125 / PAL_FRAME_RATE_HZ:.1f} per frame)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0 if rows and all(r["exact"] for r in rows) else 1


# --------------------------------------------------------------------------- CLI

def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="sidlive export", description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="+", type=Path, help="frames files (.regs/.txt); each one a subtune")
    ap.add_argument("-o", "--output", type=Path, required=True, help="output .sid file")
    ap.add_argument("--title", default=None, help="title (default: the frames' metadata)")
    ap.add_argument("--author", default=None, help="author (default: the frames' metadata)")
    ap.add_argument("--released", default=None, help="released line, e.g. '2025 sidlive' (default: metadata)")
    ap.add_argument("--loop", action="store_true", help="loop each subtune instead of ending in silence")
    ap.add_argument("--seconds", type=float, default=None, help="export at most this many seconds of each input")
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "check":
        return check_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.output.suffix.lower() != ".sid":
        print(f"sidlive export: -o {args.output}: the output must be a .sid file", file=sys.stderr)
        return 2
    if args.seconds is not None and not args.seconds > 0:
        print(f"sidlive export: --seconds must be > 0, got {args.seconds}", file=sys.stderr)
        return 2
    try:
        frames_list = []
        for p in args.inputs:
            fr = load(p)
            if not fr.source:
                fr.source = str(p)
            if args.seconds is not None:
                fr = fr.slice(0, max(1, int(round(args.seconds * fr.frame_rate_hz))))
            if len(fr) == 0:
                raise ExportError(f"{p}: no frames")
            frames_list.append(fr)
        res = export_frames(frames_list, args.output, title=args.title, author=args.author,
                            released=args.released, loop=args.loop)
    except (OSError, FramesFormatError, ExportError) as e:
        print(f"sidlive export: {e}", file=sys.stderr)
        return 1
    total = sum(res.frames)
    rate = frames_list[0].frame_rate_hz
    print(f"wrote {res.path}: {res.subtunes} subtune{'s' * (res.subtunes > 1)}, {total} frames "
          f"({total / rate:.1f} s), {res.data_bytes} bytes of frame data = {res.bytes_per_frame:.2f} "
          f"bytes/frame; image ${res.load_addr:04X}-${res.load_addr + res.image_bytes - 1:04X} "
          f"({res.free_bytes} bytes free below ${RAM_END:04X})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
