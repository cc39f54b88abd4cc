"""PSID/RSID file loader: header fields, program bytes, and whether we can play it.

Layout (big-endian, offsets in the file):
  $00 magic "PSID"|"RSID"   $04 version 1-4        $06 dataOffset ($76 v1, $7C v2+)
  $08 loadAddress           $0A initAddress        $0C playAddress
  $0E songs 1-256           $10 startSong 1-songs  $12 speed (u32; bit i: subtune i+1
                                                        is CIA-timed; subtunes > 32 use bit 31)
  $16 name, $36 author, $56 released: 32 bytes each, Windows-1252, NUL-padded
  v2+: $76 flags (bit 0 MUS, bits 2-3 clock, bits 4-5 SID model, 6-7 / 8-9 2nd / 3rd model)
       $78 startPage  $79 pageLength  $7A secondSIDAddress (v3+)  $7B thirdSIDAddress (v4)
A loadAddress of 0 means the first two data bytes hold it (little-endian); an
initAddress of 0 means init = load address. A playAddress of 0 means init installs its
own interrupt handler.

`load_psid(path)` / `parse_psid(blob, name)` return a `PsidTune`; malformed files raise
`PsidFormatError` naming the file, the field (with its offset), the value and the allowed
range. RSID, MUS and multi-SID tunes parse fine; `tune.unsupported()` says why we cannot
dump them and `require_supported()` raises `UnsupportedTune` with that reason.
"""
from __future__ import annotations

import dataclasses
import hashlib
import struct
from pathlib import Path

V1_HEADER_BYTES = 0x76
V2_HEADER_BYTES = 0x7C
MAX_SONGS = 256
CLOCK_NAMES = ("unknown", "PAL", "NTSC", "any")  # flags bits 2-3
CHIP_NAMES = ("unknown", "6581", "8580", "any")  # flags bits 4-5

_FIXED = struct.Struct(">4sHHHHHHHI")  # magic .. speed, offsets $00-$15


class PsidFormatError(ValueError):
    """A .sid file is malformed; the message names the file, field, value and allowed range."""


class UnsupportedTune(ValueError):
    """A well-formed tune we cannot dump (RSID, MUS, multi-SID); message starts 'not supported:'."""


@dataclasses.dataclass(frozen=True)
class PsidTune:
    """A parsed PSID/RSID file: header fields (effective addresses), the file's MD5 and the program bytes."""
    path: str
    magic: str  # "PSID" | "RSID"
    version: int
    data_offset: int
    load_addr: int  # effective (from the data when the header field is 0)
    init_addr: int  # effective (load address when the header field is 0)
    play_addr: int  # 0: init installs its own IRQ
    songs: int
    start_song: int  # 1-based
    speed_bits: int
    title: str
    author: str
    released: str
    flags: int
    clock: str  # "unknown" | "PAL" | "NTSC" | "any"
    chip: str  # "unknown" | "6581" | "8580" | "any"
    start_page: int
    page_length: int
    second_sid_addr: int  # $Dxx0 or 0
    third_sid_addr: int  # $Dxx0 or 0
    md5: str  # of the whole file, as HVSC's Songlengths.md5 keys it
    data: bytes = dataclasses.field(repr=False)  # program bytes, without the load-address prefix

    @property
    def is_rsid(self) -> bool:
        """True for an RSID tune."""
        return self.magic == "RSID"

    @property
    def is_mus(self) -> bool:
        """True for a MUS tune (Compute!'s Sidplayer data: PSID v2+ with flag bit 0)."""
        return self.magic == "PSID" and self.version >= 2 and bool(self.flags & 1)

    @property
    def n_sids(self) -> int:
        """How many SID chips the tune uses (1 to 3)."""
        return 1 + bool(self.second_sid_addr) + bool(self.third_sid_addr)

    @property
    def end_addr(self) -> int:
        """Last address the program occupies."""
        return self.load_addr + len(self.data) - 1

    def speed_cia(self, subtune: int) -> bool:
        """True when 1-based `subtune` is CIA-timed (speed bit set), False for VBI (50 Hz)."""
        if not 1 <= subtune <= self.songs:
            raise ValueError(f"{self.path}: subtune {subtune} out of range 1..{self.songs}")
        bit = min(subtune - 1, 31)
        return bool((self.speed_bits >> bit) & 1)

    def frames_clock(self) -> str:
        """The clock to emulate: NTSC only for NTSC-only tunes, else PAL."""
        return "NTSC" if self.clock == "NTSC" else "PAL"

    def frames_chip(self) -> str:
        """The chip to render with: 8580 only for 8580-only tunes, else 6581."""
        return "8580" if self.chip == "8580" else "6581"

    def unsupported(self) -> str | None:
        """Why this tune cannot be dumped by the PSID player, or None when it can."""
        if self.is_rsid:
            return (f"not supported: RSID tune {self.path} (needs a full C64 with real "
                    "interrupts/KERNAL; only PSID is dumped)")
        if self.is_mus:
            return f"not supported: MUS tune {self.path} (Compute!'s Sidplayer data, needs a MUS player)"
        if self.n_sids > 1:
            addrs = ", ".join(f"${a:04X}" for a in (self.second_sid_addr, self.third_sid_addr) if a)
            return f"not supported: {self.n_sids}-SID tune {self.path} (extra SID at {addrs})"
        return None

    def require_supported(self) -> "PsidTune":
        """The tune itself, or UnsupportedTune saying why it cannot be dumped."""
        reason = self.unsupported()
        if reason:
            raise UnsupportedTune(reason)
        return self


def load_psid(path: str | Path) -> PsidTune:
    """Read and parse a .sid file."""
    path = Path(path)
    return parse_psid(path.read_bytes(), str(path))


def _decode_text(raw: bytes) -> str:
    raw = raw.split(b"\0", 1)[0]
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError:  # the 5 bytes cp1252 leaves undefined
        return raw.decode("latin-1")


def _sid_addr(byte: int) -> int:
    """PSID v3/v4 extra-SID byte -> $Dxx0 address; 0 (absent) for 0 or an invalid value.

    Valid: even values $42-$7E ($D420-$D7E0) and $E0-$FE ($DE00-$DFE0); the format says
    an invalid value means no extra SID.
    """
    if byte % 2 == 0 and (0x42 <= byte <= 0x7E or 0xE0 <= byte <= 0xFE):
        return 0xD000 | (byte << 4)
    return 0


def parse_psid(blob: bytes, name: str = "<bytes>") -> PsidTune:
    """Parse a PSID/RSID file's bytes. `name` is used in error messages."""
    def bad(field: str, off: int, value, allowed: str) -> PsidFormatError:
        return PsidFormatError(f"{name}: {field} (offset ${off:02X}) is {value}, allowed {allowed}")

    size = len(blob)
    if size < 4 or blob[:4] not in (b"PSID", b"RSID"):
        raise bad("magic", 0, repr(bytes(blob[:4])), "b'PSID' or b'RSID'")
    if size < V1_HEADER_BYTES:
        raise PsidFormatError(
            f"{name}: file is {size} bytes, shorter than the {V1_HEADER_BYTES}-byte PSID v1 header")
    magic, version, data_offset, load_field, init_field, play, songs, start_song, speed = \
        _FIXED.unpack_from(blob, 0)
    magic = magic.decode("ascii")
    if not 1 <= version <= 4:
        raise bad("version", 0x04, version, "1..4")
    if magic == "RSID" and version < 2:
        raise bad("version", 0x04, version, "2..4 for RSID")
    header_bytes = V1_HEADER_BYTES if version == 1 else V2_HEADER_BYTES
    if size < header_bytes:
        raise PsidFormatError(
            f"{name}: file is {size} bytes, shorter than the {header_bytes}-byte PSID v{version} header")
    if not header_bytes <= data_offset <= size:
        raise bad("dataOffset", 0x06, f"${data_offset:04X}",
                  f"${header_bytes:04X}..${size:04X} (header size..file size)")
    if not 1 <= songs <= MAX_SONGS:
        raise bad("songs", 0x0E, songs, f"1..{MAX_SONGS}")
    if not 1 <= start_song <= songs:
        raise bad("startSong", 0x10, start_song, f"1..{songs} (songs)")

    data = blob[data_offset:]
    load = load_field
    if load == 0:
        if len(data) < 2:
            raise PsidFormatError(
                f"{name}: loadAddress (offset $08) is 0, so the data (offset ${data_offset:04X}) must "
                f"start with a 2-byte load address, but it is {len(data)} bytes")
        load = data[0] | (data[1] << 8)
        data = data[2:]
    if not data:
        raise PsidFormatError(f"{name}: no program data after offset ${data_offset:04X}; allowed 1..65536 bytes")
    if load + len(data) - 1 > 0xFFFF:
        raise PsidFormatError(
            f"{name}: data runs past $FFFF: {len(data)} bytes loaded at ${load:04X} end at "
            f"${load + len(data) - 1:05X}; allowed end <= $FFFF")
    init = init_field or load

    flags = start_page = page_length = 0
    second = third = 0
    if version >= 2:
        flags, start_page, page_length = struct.unpack_from(">HBB", blob, 0x76)
        if version >= 3:
            second = _sid_addr(blob[0x7A])
        if version >= 4 and second:
            third = _sid_addr(blob[0x7B])
            if third == second:
                third = 0

    return PsidTune(
        path=name, magic=magic, version=version, data_offset=data_offset,
        load_addr=load, init_addr=init, play_addr=play, songs=songs, start_song=start_song,
        speed_bits=speed,
        title=_decode_text(blob[0x16:0x36]), author=_decode_text(blob[0x36:0x56]),
        released=_decode_text(blob[0x56:0x76]),
        flags=flags, clock=CLOCK_NAMES[(flags >> 2) & 3], chip=CHIP_NAMES[(flags >> 4) & 3],
        start_page=start_page, page_length=page_length,
        second_sid_addr=second, third_sid_addr=third,
        md5=hashlib.md5(blob).hexdigest(), data=bytes(data),
    )


def build_psid(data: bytes, *, load_addr: int, init_addr: int, play_addr: int, songs: int = 1,
               start_song: int = 1, speed_bits: int = 0, title: str = "", author: str = "",
               released: str = "", version: int = 2, flags: int = 0x14, magic: bytes = b"PSID",
               second_sid: int = 0, third_sid: int = 0, embed_load_addr: bool = False) -> bytes:
    """Build a PSID file (tests, and exporting frames as a playable tune).

    `flags` default $14: PAL, 6581. With `embed_load_addr` the header's loadAddress is 0
    and the program starts with its load address.
    """
    header_bytes = V1_HEADER_BYTES if version == 1 else V2_HEADER_BYTES
    head = _FIXED.pack(magic, version, header_bytes, 0 if embed_load_addr else load_addr,
                       init_addr, play_addr, songs, start_song, speed_bits)
    for s in (title, author, released):
        head += s.encode("cp1252")[:32].ljust(32, b"\0")
    if version >= 2:
        head += struct.pack(">HBBBB", flags, 0, 0, second_sid, third_sid)
    body = (struct.pack("<H", load_addr) if embed_load_addr else b"") + bytes(data)
    return head + body


# sidlive's .sid export marks its image with this, then the subtune count and the frame counts
# (lo bytes, then hi bytes): the dumper plays an export for as long as it holds frames.
LENGTH_MARK = b"SIDLIVE-FRAMES"


def exported_frames(image: bytes, subtune: int) -> int | None:
    """Frames of 1-based `subtune` when `image` (a PSID's program) is a sidlive export, else None."""
    i = image.find(LENGTH_MARK)
    if i < 0:
        return None
    j = i + len(LENGTH_MARK)
    n = image[j] if j < len(image) else 0
    if not 1 <= subtune <= n or j + 1 + 2 * n > len(image):
        return None
    return image[j + subtune] | (image[j + n + subtune] << 8)
