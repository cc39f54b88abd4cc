"""FrameRing (generator -> audio callback, with rollback) and BlockRing (callback -> writer)."""
from __future__ import annotations

import random
import sys
import threading

import numpy as np
import pytest

from sidlive.audio.ring import BlockRing, FrameRing
from sidlive.frames import NUM_REGS


def frame(pos: int, epoch: int = 0) -> np.ndarray:
    """Bytes 0-3: position, 4-5: epoch, 6-24: derived from both, so a torn copy shows."""
    row = np.empty(NUM_REGS, np.uint8)
    row[:4] = np.frombuffer(int(pos).to_bytes(4, "little"), np.uint8)
    row[4:6] = np.frombuffer(int(epoch).to_bytes(2, "little"), np.uint8)
    row[6:] = (np.arange(6, NUM_REGS) * 7 + pos * 13 + epoch * 101) % 256
    return row


def decode(row: np.ndarray) -> tuple[int, int] | None:
    """(position, epoch) of an intact frame(), None for a torn one."""
    pos = int.from_bytes(row[:4].tobytes(), "little")
    epoch = int.from_bytes(row[4:6].tobytes(), "little")
    return (pos, epoch) if np.array_equal(row, frame(pos, epoch)) else None


def test_push_pop_in_order_and_capacity():
    ring = FrameRing(4)
    out = np.zeros(NUM_REGS, np.uint8)
    for i in range(4):
        assert ring.push(frame(i))
    assert not ring.push(frame(4))  # full
    assert ring.space() == 0 and ring.lookahead_frames == 4
    for i in range(4):
        assert ring.pop_into(out)
        assert np.array_equal(out, frame(i))
    assert ring.read_pos == 4 and ring.underruns == 0


def test_underrun_holds_last_frame_and_counts():
    ring = FrameRing(3)
    out = np.zeros(NUM_REGS, np.uint8)
    assert not ring.pop_into(out)
    ring.push(frame(0))
    assert ring.pop_into(out)
    held = out.copy()
    assert not ring.pop_into(out) and not ring.pop_into(out)
    assert ring.underruns == 3
    assert np.array_equal(out, held)


def test_reserve_commit_wraps_around():
    ring = FrameRing(3)
    out = np.zeros(NUM_REGS, np.uint8)
    for i in range(10):
        slot = ring.reserve()
        slot[:] = frame(i)
        assert ring.commit() == i
        assert ring.pop_into(out) and np.array_equal(out, frame(i))
    assert ring.write_pos == ring.read_pos == 10


def test_rollback_keeps_frames_before_the_cut():
    ring = FrameRing(8)
    out = np.zeros(NUM_REGS, np.uint8)
    for i in range(6):
        ring.push(frame(i))
    for _ in range(2):
        ring.pop_into(out)
    ring.request_rollback(3)  # keep frame 2 (playing next) ... drop 3, 4, 5
    assert ring.rollback_pending and ring.rollback_done() is None
    assert not ring.push(frame(99)) and ring.reserve() is None  # refused while pending
    assert ring.pop_into(out) and np.array_equal(out, frame(2))  # the consumer answers here
    assert not ring.pop_into(out)  # nothing below the cut remains
    assert ring.rollback_done() == 3
    assert ring.dropped_frames == 3 and ring.rollbacks == 1
    for i in range(3, 5):
        assert ring.push(frame(i, epoch=1))
    for i in range(3, 5):
        assert ring.pop_into(out) and np.array_equal(out, frame(i, epoch=1))


@pytest.mark.parametrize("requested, expected_cut", [(0, 4), (4, 4), (6, 6), (50, 9)])
def test_rollback_cut_is_clamped_to_playhead_and_write(requested, expected_cut):
    ring = FrameRing(16)
    out = np.zeros(NUM_REGS, np.uint8)
    for i in range(9):
        ring.push(frame(i))
    for _ in range(4):
        ring.pop_into(out)
    ring.request_rollback(requested)
    ring.pop_into(out)  # the consumer computes the cut before playing
    assert ring.rollback_done() == expected_cut
    assert ring.write_pos == expected_cut


def test_truncate_to_times_out_without_consumer_then_completes():
    ring = FrameRing(4)
    for i in range(3):
        ring.push(frame(i))
    assert ring.truncate_to(0, timeout_s=0.01) is None
    assert ring.rollback_pending
    ring.pop_into(np.zeros(NUM_REGS, np.uint8))
    assert ring.rollback_done() == 0 and not ring.rollback_pending
    assert ring.rollback_done() == 0  # idempotent when nothing is pending


def test_bad_arguments():
    with pytest.raises(ValueError, match="capacity_frames"):
        FrameRing(1)
    with pytest.raises(ValueError, match="rollback position"):
        FrameRing(4).request_rollback(-1)


def test_two_threads_hammering_with_rollbacks():
    """Producer writes frames byte by byte (so a torn read would show) and rolls back at
    random; the consumer pops in a tight loop. Every played position must appear once, in
    order, untorn, with the epoch that was current for it after the last cut below it."""
    n_target = 2000
    ring = FrameRing(5)
    cuts = [(0, 0)]  # (epoch, cut) as the producer learned them
    played = []
    stop = threading.Event()
    rng = random.Random(1234)

    errors = []

    def producer():
        try:
            produce()
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)
            stop.set()

    def produce():
        epoch = 0
        pos = 0
        while not stop.is_set():
            if rng.random() < 0.04 and ring.read_pos > 0:
                cut = ring.truncate_to(ring.read_pos + rng.randrange(0, 3), timeout_s=5.0)
                if cut is None and stop.is_set():
                    return   # the consumer had its 2,000 frames and left: no one to answer
                assert cut is not None
                epoch += 1
                cuts.append((epoch, cut))
                pos = cut
                continue
            slot = ring.reserve()
            if slot is None:
                continue
            data = frame(pos, epoch)
            for j in range(NUM_REGS):  # deliberately slow, interleavable writes
                slot[j] = data[j]
            assert ring.commit() == pos
            pos += 1

    def consumer():
        out = np.zeros(NUM_REGS, np.uint8)
        while len(played) < n_target and not stop.is_set():
            if ring.pop_into(out):
                played.append((ring.read_pos - 1, out.tobytes()))
        stop.set()

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        threads = [threading.Thread(target=producer, daemon=True), threading.Thread(target=consumer, daemon=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads)
    finally:
        stop.set()
        sys.setswitchinterval(old)
    assert not errors, errors

    assert len(cuts) > 20, "too few rollbacks to exercise the protocol"
    for i, (pos, raw) in enumerate(played):
        assert pos == i, f"position {pos} played as the {i}th frame (a skip or a replay)"
        got = decode(np.frombuffer(raw, np.uint8))
        assert got is not None, f"frame at position {pos} is torn: {raw.hex()}"
        expected_epoch = max(e for e, c in cuts if c <= pos)
        assert got == (pos, expected_epoch), f"position {pos}: played epoch {got[1]}, expected {expected_epoch}"
    assert ring.rollbacks == len(cuts) - 1


def test_block_ring_push_peek_release_and_drops():
    ring = BlockRing(3, (4,), np.float32)
    assert ring.push(np.array([1, 2, 3, 4], np.float32), tag=0)
    assert ring.push(np.array([5, 6], np.float32), tag=4)  # a short block
    assert ring.push(np.ones(4, np.float32), tag=6)
    assert not ring.push(np.ones(4, np.float32), tag=10)  # full
    assert not ring.push(np.ones(5, np.float32), tag=10)  # longer than a slot
    assert ring.dropped == 2 and ring.pending() == 3
    block, tag = ring.peek(1)
    assert tag == 4 and block.tolist() == [5.0, 6.0]
    ring.release(2)
    assert ring.pending() == 1 and ring.peek(0)[1] == 6
    with pytest.raises(ValueError, match="pending"):
        ring.release(2)
    assert ring.push(np.zeros(4, np.float32), tag=10)  # space again after release
