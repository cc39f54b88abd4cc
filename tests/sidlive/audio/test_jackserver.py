"""A real audio stream: sounddevice on a JACK dummy server, fed through FrameRing with
rollbacks racing the callback, recorded by Recorder from inside the callback."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from sidlive.audio.jackserver import JackServer, jack_running, jackd_path, portaudio_jack_device
from sidlive.audio.recording import Recorder, session_paths
from sidlive.audio.ring import FrameRing
from sidlive.audio.wav import read_wav
from sidlive.frames import NUM_REGS, PAL_FRAME_RATE_HZ, load_regs

RATE_HZ = 48_000
BLOCK = 256


def frame(pos: int, epoch: int) -> np.ndarray:
    row = np.zeros(NUM_REGS, np.uint8)
    row[:4] = np.frombuffer(pos.to_bytes(4, "little"), np.uint8)
    row[4] = epoch % 256
    row[5:] = (pos + epoch) % 256
    return row


@pytest.fixture(scope="module")
def sd(jack):
    import sounddevice

    if portaudio_jack_device() is None:
        pytest.skip("this PortAudio build has no JACK host API (libportaudio2 without JACK)")
    return sounddevice


def test_private_server_is_up_and_named(jack):
    assert jack.running and jack_running(jack.name) and jack.name.startswith("sidlive-")
    assert not jack_running(jack.name + "-not-there")


def test_server_start_stop_twice_is_safe():
    if jackd_path() is None:
        pytest.skip("jackd is not installed (Debian package jackd2)")
    server = JackServer(period_frames=128).start()
    name = server.name
    assert jack_running(name)
    server.stop()
    server.stop()
    assert not jack_running(name) and not server.running


def test_output_stream_runs_in_256_sample_blocks(sd, wait):
    blocks, sizes, statuses = [0], set(), []

    def callback(outdata, frames, time_info, status):
        blocks[0] += 1
        sizes.add(frames)
        if status:
            statuses.append(str(status))
        outdata.fill(0)

    with sd.OutputStream(device=portaudio_jack_device(), samplerate=RATE_HZ, blocksize=BLOCK,
                         channels=1, dtype="float32", callback=callback) as stream:
        assert stream.samplerate == RATE_HZ and stream.blocksize == BLOCK
        assert wait(lambda: blocks[0] >= 188, timeout_s=15), f"only {blocks[0]} blocks arrived"
    assert sizes == {BLOCK}


def test_callback_plays_ring_frames_at_frame_rate_with_rollbacks(sd, wait, tmp_path):
    """The producer keeps a 3-frame lookahead and rolls back every ~15 frames; the callback
    pops a frame each 48000 / 50.1245 samples, writes the block and the frame to a Recorder.
    Every played position must be the newest generation for it, in order, no gaps."""
    ring = FrameRing(8)
    rec = Recorder(tmp_path / "live", rate_hz=RATE_HZ, block_frames=BLOCK).start()
    samples_per_frame = RATE_HZ / PAL_FRAME_RATE_HZ
    state = {"next_frame_at": 0.0, "sample": 0, "blocks": 0}
    current = np.zeros(NUM_REGS, np.uint8)
    played = []
    target_frames = 150

    def callback(outdata, frames, time_info, status):
        s0 = state["sample"]
        while state["next_frame_at"] < s0 + frames:  # frame boundaries inside this block
            if ring.pop_into(current):
                rec.write_frame(current)
                played.append(ring.read_pos - 1)
            state["next_frame_at"] += samples_per_frame
        outdata[:, 0] = current[5] / 255.0  # a level derived from the playing frame
        rec.write_block(outdata[:, 0])
        state["sample"] = s0 + frames
        state["blocks"] += 1

    cuts = [(0, 0)]
    stop = threading.Event()

    errors = []

    def producer():
        try:
            produce()
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    def produce():
        epoch, pos, made = 0, 0, 0
        while not stop.is_set():
            if made and made % 15 == 0:
                cut = ring.truncate_to(ring.read_pos + 1, timeout_s=2.0)
                assert cut is not None
                epoch += 1
                cuts.append((epoch, cut))
                pos = cut
                made += 1
                continue
            if ring.lookahead_frames >= 3 or not ring.push(frame(pos, epoch)):
                stop.wait(0.002)
                continue
            pos += 1
            made += 1

    worker = threading.Thread(target=producer, daemon=True)
    worker.start()
    try:
        with sd.OutputStream(device=portaudio_jack_device(), samplerate=RATE_HZ, blocksize=BLOCK,
                             channels=1, dtype="float32", callback=callback):
            assert wait(lambda: len(played) >= target_frames or errors, timeout_s=30), f"played {len(played)}"
    finally:
        stop.set()
        worker.join(timeout=5)
    stats = rec.close()
    assert not errors, errors
    assert len(cuts) > 3
    positions = played[:]
    assert positions == list(range(positions[0], positions[0] + len(positions))) and positions[0] == 0
    recorded = load_regs(session_paths(tmp_path / "live")["regs"]).regs  # bytes 0-4 are canonical as is
    assert len(recorded) == len(positions)
    if stats["dropped_frames"] == 0:
        for pos, row in zip(positions, recorded):
            epoch = max(e for e, c in cuts if c <= pos)
            assert int.from_bytes(row[:4].tobytes(), "little") == pos
            assert row[4] == epoch % 256, f"position {pos} played an old generation"
    samples, _ = read_wav(session_paths(tmp_path / "live")["wav"])
    assert len(samples) == state["blocks"] * BLOCK  # the timeline holds even if blocks dropped
    assert stats["samples_in"] == state["blocks"] * BLOCK


def test_xruns_name_the_late_client(jack, sd):
    """A callback that overruns its period: JACK blames the PortAudio client, and
    PortAudio flags it to the stream as an output underflow."""
    import time

    flagged = []

    def late(out, frames, time_info, status):
        flagged.append(bool(status.output_underflow))
        out.fill(0)
        if len(flagged) in (20, 40):
            time.sleep(0.05)             # ten periods late

    before = jack.xruns()
    with sd.OutputStream(samplerate=RATE_HZ, blocksize=BLOCK, channels=1, dtype="float32",
                         device=portaudio_jack_device(), callback=late):
        deadline = time.monotonic() + 5
        while len(flagged) < 80 and time.monotonic() < deadline:
            time.sleep(0.05)
    after = jack.xruns()
    blamed = {k: v - before.get(k, 0) for k, v in after.items() if v > before.get(k, 0)}
    assert any(name.startswith("PortAudio") for name in blamed), (blamed, jack.log_tail())
    assert any(flagged)
