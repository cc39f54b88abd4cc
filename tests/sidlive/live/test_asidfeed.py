"""The live ASID feed: played frames -> ASID updates in step with the speakers."""
from __future__ import annotations

import numpy as np
import pytest

from sidlive.frames import NUM_REGS, load_regs
from sidlive.live.asidfeed import AsidFeed, mute_row
from sidlive.live.callback import N_PLAYED
from sidlive.midi.asid import STOP_MESSAGE, AsidEncoder, decode_asid


class Collector:
    """Frames handed to the feed's port, encoded as AsidOut would send them."""

    def __init__(self):
        self.enc = AsidEncoder()
        self.stream = bytearray()
        self.frames: list[np.ndarray] = []
        self.closed = 0

    def send_frame(self, frame) -> int:
        self.frames.append(np.array(frame))
        msg = self.enc.encode(frame)
        self.stream += msg
        return len(msg)

    def close(self) -> None:
        self.closed += 1


class PlayedLog:
    """The AudioCallback's played-frame log, written as the audio callback writes it."""

    def __init__(self):
        self.played = np.zeros((N_PLAYED, NUM_REGS), np.uint8)
        self.played_dac = np.zeros(N_PLAYED)
        self.played_n = 0
        self.voice_on = [True, True, True]

    def play(self, row, dac: float) -> None:
        j = self.played_n % N_PLAYED
        self.played[j] = row
        self.played_dac[j] = dac
        self.played_n += 1


def test_frames_are_sent_when_heard_minus_the_lead():
    log, out = PlayedLog(), Collector()
    feed = AsidFeed(log, out, lead_s=0.01)
    rows = np.arange(5 * NUM_REGS, dtype=np.uint8).reshape(5, NUM_REGS)
    for k, row in enumerate(rows):
        log.play(row, dac=1.0 + 0.02 * k)
    assert feed.pump(0.98) == 0            # first due at 0.99
    assert feed.pump(0.995) == 1
    assert feed.pump(1.031) == 2           # 1.01 and 1.03 - 0.01
    assert feed.pump(2.0) == 2
    np.testing.assert_array_equal(np.array(out.frames), rows)
    np.testing.assert_array_equal(decode_asid(bytes(out.stream)), rows)
    assert feed.stats()["frames"] == 5 and feed.lost_frames == 0


def test_a_feed_far_behind_counts_what_it_lost():
    log, out = PlayedLog(), Collector()
    feed = AsidFeed(log, out)
    for k in range(N_PLAYED + 10):
        log.play(np.full(NUM_REGS, k % 256, np.uint8), dac=0.0)
    assert feed.pump(1.0) == N_PLAYED
    assert feed.lost_frames == 10
    assert out.frames[0][0] == 10 % 256


def test_muted_voices_lose_their_waveform_bits_only():
    row = np.zeros(NUM_REGS, np.uint8)
    row[[0x04, 0x0B, 0x12]] = 0x41, 0x15, 0x81   # pulse+gate, triangle+ring+gate, noise+gate
    out = mute_row(row, (True, False, False), np.zeros(NUM_REGS, np.uint8))
    assert list(out[[0x04, 0x0B, 0x12]]) == [0x41, 0x05, 0x01]
    assert row[0x0B] == 0x15                      # the played frame is untouched
    log, col = PlayedLog(), Collector()
    feed = AsidFeed(log, col)
    log.voice_on = [True, True, False]
    log.play(row, 0.0)
    feed.pump(1.0)
    assert col.frames[0][0x12] == 0x01 and col.frames[0][0x04] == 0x41


def test_bad_lead_is_refused():
    with pytest.raises(ValueError, match="lead_s must be in 0..1 s, got 2"):
        AsidFeed(PlayedLog(), Collector(), lead_s=2)


def test_live_session_streams_what_it_plays_as_asid(jack, model_path, tmp_path, wait):
    """sidlive live --asid virtual on JACK: an rtmidi JACK input receives the SysEx, and
    decoded it is the recorded take (frames with a change, in order)."""
    from tests.sidlive.conftest import jack_receiver
    from tests.sidlive.live.test_daemon import _daemon

    got: list[bytes] = []
    d, msgs = _daemon(model_path, tmp_path, asid="virtual", record=tmp_path / "set.wav")
    d.start()
    rx = None
    try:
        rx = jack_receiver("asid-live-rx", got, source="sidlive:asid")
        assert wait(lambda: got, timeout_s=5), "no ASID message crossed the JACK connection"
        assert wait(lambda: d.audio.frames_played > 150, timeout_s=20)
    finally:
        st = d.stop()
        assert rx is not None and wait(lambda: got and got[-1] == STOP_MESSAGE, timeout_s=3), "stop never arrived"
        if rx is not None:
            rx.close_port()
            rx.delete()
    assert st["asid"]["port"] == "sidlive:asid" and st["asid"]["lost"] == 0
    assert st["asid"]["frames"] == st["recording"]["frames_written"]
    regs = load_regs(tmp_path / "set.regs").regs
    # The receiver joined after the first messages: from the first update with all 25
    # registers (the start or a refresh) on, the decoded stream must be the take's tail.
    updates = [m for m in got if m[2:3] == b"\x4E"]
    full = [i for i, m in enumerate(updates) if sum(bin(b).count("1") for b in m[3:7]) == NUM_REGS]
    assert full, f"no update with all 25 registers among {len(updates)}"
    decoded = _collapse(decode_asid(b"".join(updates[full[0]:])))
    take = _collapse(regs)
    assert len(decoded) >= len(take) // 2, (len(decoded), len(take))
    np.testing.assert_array_equal(decoded, take[len(take) - len(decoded):])


def _collapse(regs: np.ndarray) -> np.ndarray:
    """Rows that differ from the row before (a refresh repeats a state)."""
    keep = np.ones(len(regs), bool)
    keep[1:] = (regs[1:] != regs[:-1]).any(axis=1)
    return regs[keep]
