"""The live ASID feed: every frame the audio callback starts goes out as an ASID update, in
step with the speakers (`sidlive live --asid PORT`).

The audio callback logs each frame it starts, with the time it will be heard
(`AudioCallback.played`, `played_dac`, `played_n`; no lock, single writer). This thread
polls that log every `poll_s` and sends a frame once its sound time minus `lead_s` has
come, so a SID chip on the port and the speakers play together (lead_s: the MIDI and
hardware delay to remove, default 0); AsidOut resends all 25 registers every second. A
reader more than the log's length behind (82 s) counts the frames it lost. Voice mutes act on the chip too: a muted voice is sent with
its waveform bits ($04/$0B/$12 bits 4-7) cleared, so its oscillator goes silent while
gate, sync and ring bits stay as played (the envelope runs on and unmuting resumes
mid-note, as the renderer's mute does).
"""
from __future__ import annotations

import threading
import time

import numpy as np

from sidlive.frames import CONTROL_REGS, NUM_REGS
from sidlive.live.callback import N_PLAYED

WAVEFORM_BITS = 0xF0


def mute_row(row: np.ndarray, voice_on, out: np.ndarray) -> np.ndarray:
    """`row` with the waveform bits of the muted voices cleared, into `out`."""
    np.copyto(out, row)
    for v in range(3):
        if not voice_on[v]:
            out[CONTROL_REGS[v]] &= 0xFF ^ WAVEFORM_BITS
    return out


class AsidFeed:
    """Sends the audio callback's played frames to `out` (an AsidOut, or anything with send_frame)."""

    def __init__(self, audio, out, *, lead_s: float = 0.0, poll_s: float = 0.002):
        if not 0.0 <= lead_s <= 1.0:
            raise ValueError(f"ASID lead_s must be in 0..1 s, got {lead_s}")
        self.audio = audio
        self.out = out
        self.lead_s = float(lead_s)
        self.poll_s = float(poll_s)
        self.sent_frames = 0
        self.lost_frames = 0
        self.late_ms_max = 0.0
        self.error: BaseException | None = None
        self._next = audio.played_n
        self._row = np.zeros(NUM_REGS, np.uint8)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "AsidFeed":
        """Start the feed thread."""
        self._thread = threading.Thread(target=self._run, name="sidlive-asid", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.poll_s):
                self.pump(time.perf_counter())
        except BaseException as e:  # noqa: BLE001 - the daemon's watchdog reports it
            self.error = e

    def pump(self, now: float, flush: bool = False) -> int:
        """Send every logged frame whose time has come (flush: every logged frame);
        returns how many were sent."""
        e = self.audio
        sent = 0
        while True:
            n = e.played_n
            if n - self._next > N_PLAYED:          # fell behind the log: skip what was overwritten
                self.lost_frames += n - N_PLAYED - self._next
                self._next = n - N_PLAYED
            if self._next >= n:
                break
            j = self._next % N_PLAYED
            due = float(e.played_dac[j]) - self.lead_s
            if due > now and not flush:
                break
            mute_row(e.played[j], e.voice_on, self._row)
            if e.played_n - self._next > N_PLAYED:   # overwritten while we copied it
                continue
            self.out.send_frame(self._row)
            if not flush:
                self.late_ms_max = max(self.late_ms_max, (now - due) * 1e3)
            self._next += 1
            sent += 1
        self.sent_frames += sent
        return sent

    def stop(self) -> None:
        """Stop the thread, send every frame played (the output has stopped: all of them
        are out), close the port (twice is safe)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
            self.pump(time.perf_counter(), flush=True)
        self.out.close()

    def stats(self) -> dict:
        """Port name, frames sent and lost, bytes sent and the latest a frame went out (ms)."""
        return {"port": getattr(self.out, "name", None), "frames": self.sent_frames, "lost": self.lost_frames,
                "bytes": getattr(self.out, "sent_bytes", None), "late_ms_max": round(self.late_ms_max, 2)}
