"""Recorder: files of a clean take, visible drops, kill -9 survival and `sidlive recover`."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from sidlive.audio.recording import Recorder, session_paths
from sidlive.audio.recover import RecoverError, recover_regs, recover_wav
from sidlive.audio.wav import read_wav
from sidlive.commands.recover import main as recover_main
from sidlive.frames import CANON_MASK, NUM_REGS, load_regs

ROOT = Path(__file__).resolve().parents[3]
BLOCK = 256


def block(k: int) -> np.ndarray:
    """Block k of a known signal: sample n is ((n * 37) % 65535 - 32767) / 32767."""
    n = np.arange(k * BLOCK, (k + 1) * BLOCK, dtype=np.int64)
    return (((n * 37) % 65535 - 32767) / 32767.0).astype(np.float32)


def pcm(n_samples: int) -> np.ndarray:
    n = np.arange(n_samples, dtype=np.int64)
    return ((n * 37) % 65535 - 32767).astype(np.int16)


def row(k: int) -> np.ndarray:
    return ((np.arange(NUM_REGS) * 11 + k * 3) % 256).astype(np.uint8) & CANON_MASK


def test_clean_take_writes_wav_regs_and_control_log(tmp_path):
    base = tmp_path / "take"
    with Recorder(base, meta={"chip": "8580", "title": "jam"}) as rec:
        for k in range(40):
            assert rec.write_block(block(k))
            if k % 4 == 0:
                assert rec.write_frame(row(k // 4))
            if k == 20:
                rec.log_control("temperature", 0.8)
        rec.log_control("mute_2", True)
    stats = rec.close()  # closing twice is safe
    paths = session_paths(base)
    samples, rate = read_wav(paths["wav"])
    assert rate == 48_000 and np.array_equal(samples, pcm(40 * BLOCK))
    frames = load_regs(paths["regs"])
    assert not paths["regs_part"].exists()
    assert frames.chip == "8580" and frames.title == "jam"
    assert np.array_equal(frames.regs, np.stack([row(i) for i in range(10)]))
    lines = [json.loads(x) for x in paths["log"].read_text().splitlines()]
    assert [(x["control"], x["value"]) for x in lines] == [("temperature", 0.8), ("mute_2", True)]
    assert lines[0]["t_s"] == pytest.approx(21 * BLOCK / 48_000)
    assert stats["dropped_blocks"] == 0 and stats["samples_written"] == 40 * BLOCK


def test_writer_falling_behind_drops_blocks_visibly(tmp_path, caplog):
    base = tmp_path / "slow"
    rec = Recorder(base, ring_seconds=0.001)  # the smallest rings: 4 blocks, 16 frames
    for k in range(10):  # the writer is not running yet: it is "behind"
        rec.write_block(block(k))
    for k in range(20):
        rec.write_frame(row(k))
    assert rec.dropped_blocks == 6 and rec.dropped_frames == 4
    rec.start()
    rec.write_block(block(10))  # may drop too if the writer has not drained yet
    stats = rec.close()
    assert stats["dropped_blocks"] >= 6 and stats["dropped_frames"] == 4
    assert "writer fell behind" in caplog.text
    samples, _ = read_wav(session_paths(base)["wav"])
    assert len(samples) == 11 * BLOCK  # the timeline is kept: drops are silence
    assert np.array_equal(samples[:4 * BLOCK], pcm(4 * BLOCK))
    assert not samples[4 * BLOCK:10 * BLOCK].any()
    regs = load_regs(session_paths(base)["regs"]).regs
    assert len(regs) == 20 and np.array_equal(regs[16:], np.stack([row(15)] * 4))  # held frame
    log = [json.loads(x) for x in session_paths(base)["log"].read_text().splitlines()]
    assert ("recorder.dropped_frames", 4) in [(x["control"], x["value"]) for x in log]


def test_refuses_to_overwrite(tmp_path):
    base = tmp_path / "t"
    session_paths(base)["wav"].write_bytes(b"x")
    with pytest.raises(FileExistsError, match="t.wav"):
        Recorder(base).start()


CHILD = r"""
import sys, time
import numpy as np
sys.path.insert(0, {root!r})
from tests_child_support import block, row
from sidlive.audio.recording import Recorder
rec = Recorder({base!r}).start()  # default header_interval_s (0.5 s)
k = 0
while True:
    rec.write_block(block(k))
    if k % 4 == 0:
        rec.write_frame(row(k // 4))
    k += 1
    if k % 32 == 0:
        s = rec.stats()
        print(s["header_samples"], s["frames_header"], s["dropped_blocks"], flush=True)
        time.sleep(0.04)  # about 4x real time
"""


def test_kill_9_leaves_a_valid_wav_and_recoverable_frames(tmp_path):
    support = tmp_path / "tests_child_support.py"
    support.write_text(f"import numpy as np\nfrom sidlive.frames import CANON_MASK, NUM_REGS\nBLOCK = {BLOCK}\n"
                       f"exec({_source(block)!r})\nexec({_source(row)!r})\n")
    base = tmp_path / "killed"
    code = CHILD.format(root=str(tmp_path), base=str(base))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        header_samples = header_frames = dropped = 0
        extra_lines = 3  # once the headers count >= 1 s and 40 frames, let more data follow
        for line in proc.stdout:
            h_samples, h_frames, dropped = map(int, line.split())
            if header_samples >= 48_000 and header_frames >= 40:
                extra_lines -= 1
                if extra_lines == 0:
                    break
            else:
                header_samples, header_frames = h_samples, h_frames
        assert header_samples >= 48_000, "the child never updated its headers"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    paths = session_paths(base)
    with wave.open(str(paths["wav"])) as w:  # valid as left: no repair needed
        n_header = w.getnframes()
        assert (w.getframerate(), w.getsampwidth(), w.getnchannels()) == (48_000, 2, 1)
        data = np.frombuffer(w.readframes(n_header), "<i2")
    assert n_header >= header_samples
    if dropped == 0:  # (a loaded machine may make the writer drop; then gaps are silence)
        assert np.array_equal(data, pcm(n_header))
    assert paths["regs_part"].exists() and not paths["regs"].exists()

    assert recover_main([str(base)]) == 0
    samples, _ = read_wav(paths["wav"])
    assert len(samples) >= n_header and np.array_equal(samples[:n_header], data)
    frames = load_regs(paths["regs"])
    assert len(frames) >= header_frames
    if dropped == 0:
        assert np.array_equal(frames.regs, np.stack([row(i) for i in range(len(frames))]))
    assert recover_main([str(base)]) == 0  # idempotent: already complete


def _source(fn) -> str:
    import inspect
    return inspect.getsource(fn)


def test_recover_errors_name_the_file(tmp_path):
    bad = tmp_path / "x.regs.part"
    bad.write_bytes(b"NOPE" + bytes(12))
    with pytest.raises(RecoverError, match=r"x.regs.part: offset 0: magic"):
        recover_regs(bad)
    not_wav = tmp_path / "y.wav"
    not_wav.write_bytes(b"RIFX" + bytes(40))
    with pytest.raises(RecoverError, match="y.wav: offset 0: not a RIFF/WAVE"):
        recover_wav(not_wav)
    assert recover_main([str(tmp_path / "nothing")]) == 1


def test_recover_wav_leaves_complete_files_alone(tmp_path):
    path = tmp_path / "ok.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm(1000).tobytes())
    with open(path, "ab") as f:  # a trailing LIST chunk after the data
        f.write(b"LIST" + (6).to_bytes(4, "little") + b"INFOab")
    before = path.read_bytes()
    assert recover_wav(path) == (1000, False)
    assert path.read_bytes() == before


@pytest.mark.parametrize("via_wav", [False, True], ids=["base-name", "wav-name"])
def test_recover_fixes_lagging_headers_and_cuts_partial_data(tmp_path, via_wav):
    base = tmp_path / "lag"
    rec = Recorder(base).start()
    for k in range(8):
        rec.write_block(block(k))
        rec.write_frame(row(k))
    rec.close()
    paths = session_paths(base)
    # Simulate a crash between header updates: more data on disk than the headers count,
    # each ending in a partial sample / row / log line.
    wav = paths["wav"].read_bytes()
    extra = pcm(9 * BLOCK)[8 * BLOCK:].tobytes()
    paths["wav"].write_bytes(wav + extra + b"\x01")
    part = paths["regs"].rename(paths["regs_part"])
    with open(part, "ab") as f:
        f.write(row(8).tobytes() + row(9).tobytes()[:10])
    with open(paths["log"], "a") as f:
        f.write('{"t_s": 1.0, "control": "top_p", "value": 0.5}\n{"t_s": 1.1, "cont')
    assert read_wav(paths["wav"])[0].shape[0] == 8 * BLOCK  # still valid, counts the old data

    assert recover_main([str(paths["wav"] if via_wav else base)]) == 0   # the README's form: NAME.wav
    samples, _ = read_wav(paths["wav"])
    assert np.array_equal(samples, pcm(9 * BLOCK))
    assert paths["wav"].stat().st_size == 44 + 9 * BLOCK * 2
    frames = load_regs(paths["regs"])
    assert np.array_equal(frames.regs, np.stack([row(i) for i in range(9)]))
    lines = paths["log"].read_text().splitlines()
    assert json.loads(lines[-1])["control"] == "top_p"
    assert recover_main([str(paths["regs_part"])]) == 0  # any file of the take names the take: all complete
    assert recover_main([str(tmp_path / "gone.regs.part")]) == 1   # no take there: reported, not raised
