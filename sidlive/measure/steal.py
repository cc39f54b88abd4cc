"""What the machine took from us while a soak ran: CPU steal time (the hypervisor running
another guest on our virtual CPUs, /proc/stat's 8th column), sampled every half second,
so a soak's underruns can be set against the moments the VM was not ours.

    mon = StealMonitor().start()
    ...                                    # the soak
    mon.stop()
    mon.summary(event_times=[...])         # perf_counter times of the underruns
"""
from __future__ import annotations

import os
import threading
import time

STAT = "/proc/stat"


def read_cpu_jiffies(path: str = STAT) -> tuple[int, int] | None:
    """(steal, total) jiffies over all CPUs since boot; None where there is no /proc/stat."""
    try:
        with open(path, "rb") as f:
            line = f.readline().split()
    except OSError:
        return None
    if not line or line[0] != b"cpu" or len(line) < 9:
        return None
    values = [int(v) for v in line[1:9]]     # user nice system idle iowait irq softirq steal
    return values[7], sum(values)


def steal_summary(samples: list[tuple[float, int, int]], event_times=(), hz: int = 100,
                  threshold_jiffies: int = 1) -> dict:
    """samples: (perf time, steal, total) in time order. Steal over the run; the sampling
    intervals that had any; how many events fell in (or next to) such an interval, and how
    much of the run those windows cover (the share of events chance alone would put there)."""
    if len(samples) < 2:
        return {"available": False}
    t0, s0, c0 = samples[0]
    t1, s1, c1 = samples[-1]
    spans = []                               # (start, end, steal jiffies) per interval
    for (ta, sa, _), (tb, sb, _) in zip(samples, samples[1:]):
        spans.append((ta, tb, sb - sa))
    stolen = [(a, b) for a, b, s in spans if s >= threshold_jiffies]
    step = (t1 - t0) / len(spans)
    windows = [(max(t0, a - step), min(t1, b + step)) for a, b in stolen]
    near = sum(1 for t in event_times if any(a <= t <= b for a, b in windows))
    covered, end = 0.0, t0                   # the windows' union: what chance alone would give
    for a, b in windows:                     # (in time order)
        if b > end:
            covered += b - max(a, end)
            end = b
    return {"available": True, "seconds": round(t1 - t0, 1),
            "steal_s": round((s1 - s0) / hz, 2),                       # CPU-seconds, all CPUs together
            "steal_percent": round(100.0 * (s1 - s0) / max(c1 - c0, 1), 2),
            "intervals": len(spans), "intervals_with_steal": len(stolen),
            "worst_interval_steal_ms": round(max(s for _, _, s in spans) * 1e3 / hz, 1),
            "events": len(list(event_times)), "events_near_steal": near,
            "time_near_steal_percent": round(100.0 * covered / max(t1 - t0, 1e-9), 1)}


class StealMonitor:
    """A sampling thread (2 reads of /proc/stat a second; no real-time priority)."""

    def __init__(self, interval_s: float = 0.5, path: str = STAT):
        if not 0.05 <= interval_s <= 10.0:
            raise ValueError(f"steal monitor interval_s: {interval_s} is out of range 0.05..10")
        self.interval_s, self.path = interval_s, path
        self.samples: list[tuple[float, int, int]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def _sample(self) -> None:
        r = read_cpu_jiffies(self.path)
        if r is not None:
            self.samples.append((time.perf_counter(), r[0], r[1]))

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def start(self) -> "StealMonitor":
        """Take a first sample and start the sampling thread."""
        self._sample()
        self._thread = threading.Thread(target=self._run, name="sidlive-steal", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the sampling thread and take a last sample."""
        if self._thread is not None and not self._stop.is_set():
            self._stop.set()
            self._thread.join()
            self._sample()

    def summary(self, event_times=()) -> dict:
        """steal_summary of the samples taken, with event_times set against them."""
        return steal_summary(self.samples, event_times, self.hz)
