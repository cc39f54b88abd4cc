"""Lock-free single-producer/single-consumer rings for the live daemon.

`FrameRing` carries register frames from the generator thread (producer) to the audio
callback (consumer) and supports rollback: dropping the unplayed lookahead so that a
control change is heard at once. `BlockRing` carries fixed-size blocks (audio samples,
frame rows) from the audio callback (producer) to a writer thread (consumer).

Both rely on CPython semantics: a store to an attribute or a numpy element is atomic with
respect to other threads, and a store made before another is seen before it. Positions
are absolute, monotonically increasing Python ints; slot = position % capacity. Each
counter has exactly one writer. The consumer side never blocks, takes no lock and
allocates no array (it copies into a caller-owned row).

FrameRing rollback protocol (epochs)
------------------------------------
Positions < `write` hold published frames; the consumer plays positions `read`, `read+1`,
... Rollback must decide exactly which positions were played with old content, without a
compare-and-swap. The consumer decides; the producer adopts:

1. Producer `request_rollback(pos)`: publishes `_req = (n, pos)` (one reference store),
   n = a new epoch. From now until step 3 it pushes nothing and leaves `write` alone.
2. Consumer, at its next `pop_into`: sees a request it has not answered, computes
   `cut = min(max(pos, read), write)` and publishes `_ack = (n, cut)`. While the producer
   has not adopted epoch n (`_pub_epoch != n`) the consumer plays only positions < cut.
3. Producer `rollback_done()`: sees `_ack[0] == n`, sets `write = cut`, then
   `_pub_epoch = n`, and resumes pushing new frames at position `cut`.

So every position < cut is played with its old frame and every position >= cut with a
frame generated after the rollback; nothing is replayed or skipped. The producer only
writes a slot at position p >= write with p - read < capacity; the consumer only reads
positions < its limit <= write, and read <= cut; they never touch the same slot at once,
so no half-written frame is read even if the producer fills slots without the GIL
(`reserve()` + numba kernel + `commit()`).
"""
from __future__ import annotations

import time

import numpy as np

from sidlive.frames import NUM_REGS


class FrameRing:
    """SPSC ring of (25,) uint8 register frames with rollback (see module docstring)."""

    def __init__(self, capacity_frames: int):
        if not isinstance(capacity_frames, int) or not 2 <= capacity_frames <= 1 << 20:
            raise ValueError(f"capacity_frames must be an int in 2..{1 << 20}, got {capacity_frames!r}")
        self.capacity_frames = capacity_frames
        self._buf = np.zeros((capacity_frames, NUM_REGS), dtype=np.uint8)  # (cap, 25)
        self._rows = [self._buf[i] for i in range(capacity_frames)]  # preallocated row views
        # Producer-owned.
        self._write = 0
        self._req = (0, 0)  # (epoch, requested cut position)
        self._pub_epoch = 0  # epoch whose frames `_write` counts
        self.rollbacks = 0
        self.dropped_frames = 0  # unplayed frames discarded by rollbacks
        # Consumer-owned.
        self._read = 0
        self._ack = (0, 0)  # (epoch, cut)
        self.underruns = 0  # pops that found nothing to play

    # ------------------------------------------------------------------ both sides
    @property
    def read_pos(self) -> int:
        """Frames consumed so far: the playhead, as an absolute frame position."""
        return self._read

    @property
    def write_pos(self) -> int:
        """Frames published so far (producer's view; lowered by a completed rollback)."""
        return self._write

    @property
    def lookahead_frames(self) -> int:
        """Published frames not yet played."""
        return max(0, self._write - self._read)

    # ------------------------------------------------------------------ producer
    @property
    def rollback_pending(self) -> bool:
        """True from request_rollback until rollback_done adopts the consumer's cut."""
        return self._pub_epoch != self._req[0]

    def space(self) -> int:
        """Frames the producer may push now (0 while a rollback is pending)."""
        if self.rollback_pending:
            return 0
        return self.capacity_frames - (self._write - self._read)

    def reserve(self) -> np.ndarray | None:
        """The (25,) uint8 slot for the next frame, or None when full or rolling back.

        Fill it completely, then `commit()`. The consumer does not read it before then."""
        if self.space() <= 0:
            return None
        return self._rows[self._write % self.capacity_frames]

    def commit(self) -> int:
        """Publish the reserved slot; returns the frame's position."""
        pos = self._write
        self._write = pos + 1
        return pos

    def push(self, frame: np.ndarray) -> bool:
        """Copy one (25,) frame in; False (nothing written) when full or rolling back."""
        slot = self.reserve()
        if slot is None:
            return False
        np.copyto(slot, frame, casting="unsafe")
        self.commit()
        return True

    def request_rollback(self, pos: int) -> int:
        """Ask to drop every unplayed frame at positions >= pos; returns the epoch.

        Pushing stops until `rollback_done()` returns the cut. A second request while one
        is pending replaces it."""
        if not isinstance(pos, int) or pos < 0:
            raise ValueError(f"rollback position must be an int >= 0, got {pos!r}")
        epoch = max(self._req[0], self._pub_epoch) + 1
        self._req = (epoch, pos)
        return epoch

    def rollback_done(self) -> int | None:
        """Complete a pending rollback if the consumer has answered.

        Returns the cut position (the first position the producer must now generate,
        also when no rollback was pending), or None while still waiting."""
        epoch = self._req[0]
        if self._pub_epoch == epoch:
            return self._write
        ack_epoch, cut = self._ack
        if ack_epoch != epoch:
            return None
        self.dropped_frames += self._write - cut
        self._write = cut
        self._pub_epoch = epoch
        self.rollbacks += 1
        return cut

    def truncate_to(self, pos: int, timeout_s: float = 0.1, poll_s: float = 0.0005) -> int | None:
        """Rollback and wait (sleeping, producer thread only) for the consumer's answer.

        Returns the cut: frames from the cut on must be regenerated; frames before it are
        (or will be) played as they were. pos <= read_pos drops all unplayed frames.
        Returns None after timeout_s if no pop happened (stream stopped); the request stays
        pending and `rollback_done()` completes it later."""
        self.request_rollback(pos)
        deadline = time.monotonic() + timeout_s
        while True:
            cut = self.rollback_done()
            if cut is not None or time.monotonic() >= deadline:
                return cut
            time.sleep(poll_s)

    # ------------------------------------------------------------------ consumer
    def service(self) -> tuple[int, int]:
        """Answer a pending rollback request without taking a frame (step 2 above); returns
        the current answer. The audio callback calls it once per block, so a rollback
        completes within one block rather than at the next frame boundary."""
        req = self._req
        ack = self._ack
        if req[0] != ack[0]:
            read = self._read
            write = self._write
            cut = req[1] if req[1] > read else read
            if cut > write:
                cut = write
            ack = (req[0], cut)
            self._ack = ack
        return ack

    def pop_into(self, out_row: np.ndarray) -> bool:
        """Copy the next frame into out_row ((25,) uint8). False on an empty ring (an
        underrun is counted; out_row is left as it was, so the caller holds the last
        register state). Never blocks; allocates nothing but a tuple on a rollback."""
        ack = self.service()
        read = self._read
        limit = self._write if self._pub_epoch == ack[0] else ack[1]
        if read >= limit:
            self.underruns += 1
            return False
        np.copyto(out_row, self._rows[read % self.capacity_frames])
        self._read = read + 1
        return True

    def clear(self) -> None:
        """Drop everything and restart at position 0. Only while no consumer runs."""
        self._read = 0
        self._write = 0
        self._req = (0, 0)
        self._ack = (0, 0)
        self._pub_epoch = 0


class BlockRing:
    """SPSC ring of fixed-shape blocks, each tagged with an int (e.g. its start sample).

    Producer (audio callback): `push(data, tag)` copies data into the next slot or, when
    the ring is full, counts a drop and returns False; it never waits. Consumer (writer
    thread): `pending()`, `peek(i)`, `release(n)`."""

    def __init__(self, n_slots: int, slot_shape: tuple[int, ...], dtype=np.float32):
        if not isinstance(n_slots, int) or n_slots < 1:
            raise ValueError(f"n_slots must be an int >= 1, got {n_slots!r}")
        self.n_slots = n_slots
        self._buf = np.zeros((n_slots, *slot_shape), dtype=dtype)  # (n_slots, *slot_shape)
        self._slots = [self._buf[i] for i in range(n_slots)]
        self._len = np.zeros(n_slots, dtype=np.int64)  # valid leading length per slot
        self._tag = np.zeros(n_slots, dtype=np.int64)
        self._write = 0  # producer
        self._read = 0  # consumer
        self.dropped = 0  # producer: pushes refused because the ring was full

    def push(self, data: np.ndarray, tag: int) -> bool:
        """Copy data (leading length <= slot length) into the next slot. Producer only.
        False, counting a drop, when the ring is full or data is longer than a slot."""
        w = self._write
        if w - self._read >= self.n_slots:
            self.dropped += 1
            return False
        s = w % self.n_slots
        n = len(data)
        slot = self._slots[s]
        if n > len(slot):  # larger than the ring was built for: dropped, never raised
            self.dropped += 1
            return False
        if n == len(slot):
            np.copyto(slot, data, casting="unsafe")
        else:
            np.copyto(slot[:n], data, casting="unsafe")
        self._len[s] = n
        self._tag[s] = tag
        self._write = w + 1
        return True

    def pending(self) -> int:
        """Blocks ready for the consumer."""
        return self._write - self._read

    def peek(self, i: int) -> tuple[np.ndarray, int]:
        """The i-th pending block (a view of its valid part) and its tag. Consumer only."""
        s = (self._read + i) % self.n_slots
        return self._slots[s][: int(self._len[s])], int(self._tag[s])

    def release(self, n: int) -> None:
        """Hand n consumed slots back to the producer. Consumer only."""
        if not 0 <= n <= self.pending():
            raise ValueError(f"release({n}): only {self.pending()} blocks are pending")
        self._read += n
