"""`sidlive recover`: finish recordings left behind by a crash or kill -9.

    sidlive recover takes/jam1              # jam1.wav, jam1.regs.part, jam1.controls.jsonl
    sidlive recover takes/jam1.regs.part takes/jam1.wav

WAV: the RIFF and data sizes are set to the whole samples on disk (the header of a killed
take counts the audio up to its last update, at most a second old). Frames: the
.regs.part's count is set to the complete 25-byte rows on disk, a partial row is cut,
and the file is renamed to .regs. Control log: a partial last line is cut.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

from sidlive.audio.recording import PART_SUFFIX, REGS_COUNT_OFFSET, REGS_HEADER, session_paths
from sidlive.frames import NUM_REGS, REGS_MAGIC, REGS_VERSION, load_regs


class RecoverError(ValueError):
    """A file cannot be recovered; the message names the file, the offset and the problem."""


def recover_wav(path: str | Path) -> tuple[int, bool]:
    """Fix a WAV whose data chunk is last. Returns (sample frames, whether it changed)."""
    path = Path(path)
    with open(path, "r+b") as f:
        blob = f.read(4096)
        size = f.seek(0, os.SEEK_END)
        if len(blob) < 12 or blob[:4] != b"RIFF" or blob[8:12] != b"WAVE":
            raise RecoverError(f"{path}: offset 0: not a RIFF/WAVE file")
        off, align, data_off, claimed = 12, None, None, 0
        while off + 8 <= len(blob):
            cid, csize = blob[off:off + 4], struct.unpack_from("<I", blob, off + 4)[0]
            if cid == b"fmt ":
                if off + 22 > len(blob):
                    raise RecoverError(f"{path}: offset {off}: fmt chunk is cut short")
                align = struct.unpack_from("<H", blob, off + 20)[0]
            if cid == b"data":
                data_off, claimed = off + 8, csize
                break
            off += 8 + csize + (csize & 1)
        if align is None or align == 0 or data_off is None:
            raise RecoverError(f"{path}: no fmt chunk with a block alignment before the data chunk")
        end = data_off + claimed
        if end < size and _chunk_follows(f, end, size):
            return claimed // align, False  # complete file with chunks after the data
        data_bytes = (size - data_off) // align * align
        changed = data_bytes != claimed or data_off + data_bytes != size
        if changed:
            f.truncate(data_off + data_bytes)
            f.seek(4)
            f.write(struct.pack("<I", data_off + data_bytes - 8))
            f.seek(data_off - 4)
            f.write(struct.pack("<I", data_bytes))
    return data_bytes // align, changed


def _chunk_follows(f, off: int, size: int) -> bool:
    """True when chunks with ASCII ids tile [off, size) exactly (a complete WAV with
    chunks after its data), rather than unaccounted samples."""
    while off < size:
        off += off & 1
        f.seek(off)
        head = f.read(8)
        if len(head) < 8 or not all(32 <= c < 127 for c in head[:4]):
            return False
        off += 8 + struct.unpack("<I", head[4:])[0]
    return off == size or off == size + 1


def recover_regs(part: str | Path, force: bool = False) -> tuple[Path, int]:
    """Finalise a .regs.part into .regs. Returns (new path, frames)."""
    part = Path(part)
    if not part.name.endswith(".regs" + PART_SUFFIX):
        raise RecoverError(f"{part}: expected a name ending in .regs{PART_SUFFIX}")
    final = part.with_name(part.name[: -len(PART_SUFFIX)])
    if final.exists() and not force:
        raise RecoverError(f"{final}: exists; pass --force to replace it")
    with open(part, "r+b") as f:
        head = f.read(REGS_HEADER.size)
        if len(head) < REGS_HEADER.size:
            raise RecoverError(f"{part}: {len(head)} bytes, shorter than the {REGS_HEADER.size}-byte header")
        magic, version, _flags, _n, meta_len = REGS_HEADER.unpack(head)
        if magic != REGS_MAGIC:
            raise RecoverError(f"{part}: offset 0: magic is {magic!r}, expected {REGS_MAGIC!r}")
        if version != REGS_VERSION:
            raise RecoverError(f"{part}: offset 4: version {version}, expected {REGS_VERSION}")
        size = f.seek(0, os.SEEK_END)
        body = REGS_HEADER.size + meta_len
        if size < body:
            raise RecoverError(f"{part}: metadata ends at offset {body} but the file has {size} bytes")
        n = (size - body) // NUM_REGS
        f.truncate(body + n * NUM_REGS)
        f.seek(REGS_COUNT_OFFSET)
        f.write(struct.pack("<I", n))
    load_regs(part)  # raises FramesFormatError naming the file if anything else is wrong
    os.replace(part, final)
    return final, n


def recover_log(path: str | Path) -> int:
    """Cut a partial last line from a JSON-lines log. Returns the complete lines."""
    path = Path(path)
    data = path.read_bytes()
    keep = data.rfind(b"\n") + 1
    if keep != len(data):
        with open(path, "r+b") as f:
            f.truncate(keep)
    return data[:keep].count(b"\n")


TAKE_SUFFIXES = (".regs" + PART_SUFFIX, ".controls.jsonl", ".wav", ".regs")


def take_base(target: str | Path) -> Path:
    """The base name of a take from the base itself or any of its files."""
    target = Path(target)
    for suffix in TAKE_SUFFIXES:
        if target.name.endswith(suffix) and len(target.name) > len(suffix):
            return target.with_name(target.name[:-len(suffix)])
    return target


def recover(target: str | Path, force: bool = False) -> list[str]:
    """Finish every file of a take given its base name or any one of its files; one line per file."""
    paths = session_paths(take_base(target))
    done = []
    if paths["wav"].exists():
        n, changed = recover_wav(paths["wav"])
        done.append(f"{paths['wav']}: {n} samples ({'header fixed' if changed else 'already complete'})")
    if paths["regs_part"].exists():
        final, n = recover_regs(paths["regs_part"], force)
        done.append(f"{final}: {n} frames (finished from {paths['regs_part'].name})")
    elif paths["regs"].exists():
        done.append(f"{paths['regs']}: already complete")
    if paths["log"].exists():
        done.append(f"{paths['log']}: {recover_log(paths['log'])} control log lines")
    if not done:
        raise RecoverError(f"{target}: no recording files (.wav, .regs{PART_SUFFIX}, .controls.jsonl) found")
    return done
