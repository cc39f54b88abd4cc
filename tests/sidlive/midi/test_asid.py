"""ASID: SysEx layout, encode/decode round trip, and a real JACK MIDI port."""
from __future__ import annotations

import time

import numpy as np
import pytest

from sidlive.frames import NUM_REGS
from sidlive.midi.asid import (START_MESSAGE, STOP_MESSAGE, AsidEncoder, AsidOut, bandwidth, decode_asid,
                               encode_frames, send_paced, text_message, update_message)
from sidlive.midi.inputs import MidiPortError
from tests.sidlive.conftest import jack_receiver


def frames_with_holds(n: int, seed: int) -> np.ndarray:
    """(n, 25) uint8: random walks over random registers, many unchanged frames, values with bit 7."""
    rng = np.random.default_rng(seed)
    regs = np.zeros((n, NUM_REGS), np.uint8)
    cur = rng.integers(0, 256, NUM_REGS).astype(np.uint8)
    for k in range(n):
        if rng.random() < 0.6:
            for r in rng.integers(0, NUM_REGS, int(rng.integers(1, 8))):
                cur[r] = rng.integers(0, 256)
        regs[k] = cur
    return regs


def test_first_update_carries_all_registers_in_asid_order():
    frame = np.arange(NUM_REGS, dtype=np.uint8) + 0x70  # $70..$88: ids of $10+ have bit 7 set
    msg = AsidEncoder().encode(frame)
    order = (0x00, 0x01, 0x02, 0x03, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0C, 0x0D, 0x0E, 0x0F,
             0x10, 0x11, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x04, 0x0B, 0x12)   # ../shared/ASID.md
    values = [0x70 + r for r in order]
    msbs = [0, 0, 0, 0]
    for i, v in enumerate(values):
        if v & 0x80:
            msbs[i // 7] |= 1 << (i % 7)
    assert msg == bytes([0xF0, 0x2D, 0x4E, 0x7F, 0x7F, 0x7F, 0x0F] + msbs + [v & 0x7F for v in values] + [0xF7])
    assert len(msg) == 12 + 25


def test_next_update_carries_only_changes():
    enc = AsidEncoder()
    a = np.zeros(NUM_REGS, np.uint8)
    enc.encode(a)
    b = a.copy()
    b[0x04] = 0x41   # control 1: id 22 -> m3 bit 1
    b[0x16] = 0xC8   # cutoff hi: id 19 -> m2 bit 5, bit 7 set
    assert enc.encode(b) == bytes([0xF0, 0x2D, 0x4E, 0, 0, 0x20, 0x02, 0, 0, 0x20, 0, 0x48, 0x41, 0xF7])
    assert enc.encode(b) == b""                       # nothing changed: nothing sent
    enc.send_unchanged = True
    assert enc.encode(b) == bytes([0xF0, 0x2D, 0x4E] + [0] * 8 + [0xF7])
    enc.reset()
    assert len(enc.encode(b)) == 12 + 25


def test_round_trip_every_frame():
    regs = frames_with_holds(3000, seed=1)
    msgs = encode_frames(regs, send_unchanged=True)
    stream = START_MESSAGE + b"".join(msgs) + text_message("hi") + STOP_MESSAGE
    np.testing.assert_array_equal(decode_asid(stream), regs)


def test_round_trip_changes_only():
    regs = frames_with_holds(2000, seed=2)
    msgs = encode_frames(regs)
    sent = np.array([len(m) > 0 for m in msgs])
    assert 0 < sent.sum() < len(regs)  # unchanged frames send nothing
    np.testing.assert_array_equal(decode_asid(b"".join(msgs)), regs[sent])
    changed = np.ones(len(regs), bool)
    changed[1:] = (regs[1:] != regs[:-1]).any(axis=1)
    np.testing.assert_array_equal(sent, changed)


def test_second_control_write_ids_25_to_27():
    # id 22 ($04) = $41, then id 25 (a second write to $04 in the frame) = $40: $40 stays
    msg = update_message([(22, 0x41), (25, 0x40), (27, 0x81)])
    frame = decode_asid(msg)[0]
    assert frame[0x04] == 0x40 and frame[0x12] == 0x81 and frame.sum() == 0x40 + 0x81


@pytest.mark.parametrize("stream, pattern", [
    (b"\xF0\x2D\x4E\x00", "offset 0: SysEx message without its \\$F7 end"),
    (b"\x90\x40\x40", "offset 0: byte \\$90 outside a SysEx message"),
    (b"\xF0\x43\x4E\xF7", "offset 0: not an ASID message"),
    (START_MESSAGE + b"\xF0\x2D\x4E\x01\x00\x00\x00\x00\x00\x00\x00\xF7",
     "offset 4: masks name 1 registers but 0 data bytes follow"),
    (b"\xF0\x2D\x4E\x01\x00\xF7", "offset 0: update has 2 bytes before"),
    (b"\xF0\x2D\x4E\x01\x00\x00\x00\x00\x00\x00\x00\x90\xF7", "offset 11: status byte \\$90 inside"),
])
def test_malformed_streams_name_the_offset(stream, pattern):
    with pytest.raises(ValueError, match=pattern):
        decode_asid(stream)


def test_bandwidth_against_midi_din():
    regs = np.zeros((100, NUM_REGS), np.uint8)
    regs[::2, 0] = 1  # register $00 changes every frame: 13 bytes each, first frame 37
    bw = bandwidth(regs, 50.125)
    assert bw["max"] == 37 and bw["p99"] >= 13 and bw["mean"] == pytest.approx((37 + 99 * 13) / 100)
    assert bw["din_bytes_per_frame"] == pytest.approx(3125 / 50.125)


class _Recorder:
    """Stands in for the MIDI port: keeps what send_frame is given."""

    def __init__(self):
        self.frames = []
        self.enc = AsidEncoder()

    def send_frame(self, row):
        self.frames.append(np.array(row))
        return len(self.enc.encode(row))


def test_send_paced_sends_every_frame_in_order_and_stops_on_request():
    import threading

    regs = frames_with_holds(30, seed=5)
    rec = _Recorder()
    assert send_paced(rec, regs, 2000.0) == 30
    np.testing.assert_array_equal(np.array(rec.frames), regs)
    stop = threading.Event()
    stop.set()
    assert send_paced(_Recorder(), regs, 50.0, stop=stop) == 0
    with pytest.raises(ValueError, match="frame_rate_hz must be > 0"):
        send_paced(rec, regs, 0)


def test_unknown_port_is_refused_with_the_list(jack):
    with pytest.raises(MidiPortError, match="no single MIDI output port matches 'no-such-port-xyz'; available"):
        AsidOut("no-such-port-xyz", api="jack")


def test_named_port_over_jack(jack, wait):
    """AsidOut connected by name to another client's JACK MIDI input."""
    got: list[bytes] = []
    rx = jack_receiver("asid-named", got)
    try:
        out = AsidOut("asid-named", api="jack", refresh_s=0)
        try:
            assert out.name.startswith("asid-named")
            _sync(out, got)
            regs = frames_with_holds(20, seed=4)
            _send_lockstep(out, regs, got, wait)
            np.testing.assert_array_equal(decode_asid(b"".join(got)), regs[_changed(regs)])
        finally:
            out.close()
    finally:
        rx.close_port()
        rx.delete()


def _changed(regs: np.ndarray) -> np.ndarray:
    changed = np.ones(len(regs), bool)
    changed[1:] = (regs[1:] != regs[:-1]).any(axis=1)
    return changed


def _send_lockstep(out: AsidOut, regs: np.ndarray, got: list, wait) -> int:
    """send_frame each frame and wait for its update to arrive; returns bytes sent. The
    test's jackd runs without realtime priority on a shared machine: an xrun ("client was
    not finished") can lose a cycle's MIDI, so an update that has not arrived within 2 s is
    sent again (at most twice)."""
    expected = AsidEncoder()
    sent = 0
    for row in regs:
        msg = expected.encode(row)
        before = len(got)
        assert out.send_frame(row) == len(msg)
        sent += len(msg)
        for _ in range(2):
            if not msg or wait(lambda: len(got) > before, timeout_s=2.0):
                break
            out.send_raw(msg)
        assert not msg or len(got) > before, f"update {msg.hex()} never arrived"
    return sent


def _sync(out: AsidOut, got: list) -> None:
    """A new JACK connection carries messages a few periods after it is made: send display
    text until one arrives, then clear what came."""
    deadline = time.monotonic() + 5
    while not any(m[2:3] == b"\x4F" for m in got) and time.monotonic() < deadline:
        out.send_text("sync")
        time.sleep(0.01)
    assert any(m[2:3] == b"\x4F" for m in got), "no message crossed the JACK connection"
    n = -1
    while n != len(got):  # until the pings still in flight have landed
        n = len(got)
        time.sleep(0.1)
    got.clear()


def test_asid_over_a_jack_midi_port(jack, wait):
    """AsidOut's virtual JACK port -> an rtmidi JACK input -> decode_asid == frames."""
    regs = frames_with_holds(120, seed=3)
    got: list[bytes] = []
    with AsidOut("virtual", api="jack", refresh_s=0) as out:
        assert out.name == "sidlive:asid"
        rx = jack_receiver("asid-rx", got, source="sidlive:asid")
        try:
            _sync(out, got)
            sent = _send_lockstep(out, regs, got, wait)
            out.close()  # sends stop
            assert wait(lambda: got and got[-1] == STOP_MESSAGE), f"stop never arrived; got {len(got)} messages"
        finally:
            rx.close_port()
            rx.delete()
    out.close()  # twice is safe
    assert out.send_frame(regs[0] ^ 1) == 0  # closed: nothing sent
    stream = b"".join(got)
    assert len(stream) == sent + len(STOP_MESSAGE)
    np.testing.assert_array_equal(decode_asid(stream), regs[_changed(regs)])


def _collapse(regs: np.ndarray) -> np.ndarray:
    return regs[_changed(regs)]


def _tail_matches(got: list, regs: np.ndarray) -> int:
    """From the first update with all 25 registers on, the decoded stream is the frames'
    tail (changes only; a refresh repeats a state). Returns the states matched."""
    updates = [m for m in got if m[2:3] == b"\x4E"]
    full = [i for i, m in enumerate(updates) if sum(bin(b).count("1") for b in m[3:7]) == NUM_REGS]
    assert full, f"no update with all 25 registers among {len(updates)} updates"
    decoded = _collapse(decode_asid(b"".join(updates[full[0]:])))
    want = _collapse(regs)
    np.testing.assert_array_equal(decoded, want[len(want) - len(decoded):])
    return len(decoded)


def test_refresh_resends_every_register(jack, wait):
    got: list[bytes] = []
    rx = jack_receiver("asid-refresh", got)
    try:
        out = AsidOut("asid-refresh", api="jack", refresh_s=0.2)
        try:
            _sync(out, got)
            row = frames_with_holds(1, seed=5)[0]
            assert out.send_frame(row) == 12 + NUM_REGS     # the first update after a while: all of them
            assert out.send_frame(row) == 0                 # unchanged within refresh_s: nothing
            time.sleep(0.25)
            assert out.send_frame(row) == 12 + NUM_REGS     # refresh due
            assert wait(lambda: len(got) >= 2)
        finally:
            out.close()
    finally:
        rx.close_port()
        rx.delete()
    with pytest.raises(ValueError, match="refresh_s must be in 0..3600 s, got -1"):
        AsidOut("asid-refresh", api="jack", refresh_s=-1)


@pytest.mark.parametrize("audio", [True, False], ids=["with-audio", "asid-only"])
def test_play_streams_the_frames_as_asid(jack, wait, tmp_path, capsys, audio):
    """`sidlive play IN --asid PORT`: beside the JACK audio, or alone when there is no device."""
    from sidlive.audio.jackserver import portaudio_jack_device
    from sidlive.commands import play as play_cmd
    from sidlive.frames import Frames, canonicalize, save

    dev = portaudio_jack_device("output") if audio else "no-such-device-xyz"
    if dev is None:
        pytest.skip("PortAudio here has no JACK host API")
    regs = canonicalize(frames_with_holds(100, seed=6))   # 2 s
    regs[:, 0x0B] = 0x41                               # voice 2: pulse + gate, muted below
    save(Frames(regs, title="asid play"), tmp_path / "in.regs")
    got: list[bytes] = []
    rx = jack_receiver("asid-play", got)
    try:
        assert play_cmd.main([str(tmp_path / "in.regs"), "--device", str(dev), "--asid", "asid-play",
                          "--mute", "2"]) == 0
        assert wait(lambda: got and got[-1] == STOP_MESSAGE, timeout_s=3), "stop never arrived"
    finally:
        rx.close_port()
        rx.delete()
    out = capsys.readouterr()
    assert "ASID out: asid-play" in out.out and ("ASID port only" in out.err) == (not audio)
    sent = regs.copy()
    sent[:, 0x0B] = 0x01                               # muted voice: waveform bits cleared
    assert _tail_matches(got, sent) >= len(_collapse(sent)) - 55   # all but at most the first second
