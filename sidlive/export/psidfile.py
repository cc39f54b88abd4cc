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

import dataclasses
import math
import sys
from pathlib import Path

from sidlive.c64.psid import build_psid
from sidlive.export.encode import encode_best
from sidlive.export.player import LOAD_ADDR, MAX_SUBTUNES, RAM_END, build_player
from sidlive.frames import NTSC_CLOCK_HZ, NTSC_FRAME_CYCLES, PAL_FRAME_RATE_HZ, Frames

TEXT_BYTES = 32
RATES_HZ = {"PAL": PAL_FRAME_RATE_HZ, "NTSC": NTSC_CLOCK_HZ / NTSC_FRAME_CYCLES}
CLOCK_FLAGS = {"PAL": 0x04, "NTSC": 0x08}  # PSID v2 flags bits 2-3
CHIP_FLAGS = {"6581": 0x10, "8580": 0x20}  # bits 4-5


class ExportError(ValueError):
    """Frames that cannot become a .sid (too long, mixed clocks, bad frame rate)."""


@dataclasses.dataclass
class ExportResult:
    """What an export wrote: path, subtunes, frames per subtune, sizes, addresses and text fields."""
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
        """Frame data bytes per exported frame (all subtunes together)."""
        return self.data_bytes / max(1, sum(self.frames))

    @property
    def free_bytes(self) -> int:
        """Bytes left between the end of the image and RAM_END."""
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


# --------------------------------------------------------------------------- CLI
