"""CPU steal time: parsing /proc/stat, the summary set against events, the sampler."""
from __future__ import annotations

import os

import pytest

from sidlive.measure.steal import StealMonitor, read_cpu_jiffies, steal_summary


def test_read_cpu_jiffies_takes_the_eighth_column(tmp_path):
    p = tmp_path / "stat"
    p.write_text("cpu  100 5 20 1000 3 0 2 7 0 0\ncpu0 50 2 10 500 1 0 1 3 0 0\n")
    assert read_cpu_jiffies(str(p)) == (7, 100 + 5 + 20 + 1000 + 3 + 0 + 2 + 7)
    p.write_text("intr 1 2 3\n")
    assert read_cpu_jiffies(str(p)) is None
    assert read_cpu_jiffies(str(tmp_path / "missing")) is None


def test_summary_counts_steal_and_the_events_beside_it():
    # 10 intervals of 1 s, 200 jiffies each (2 CPUs at 100 Hz); steal in intervals 3 (5 jiffies) and 7 (30)
    steal = [0, 0, 0, 0, 5, 5, 5, 5, 35, 35, 35]
    samples = [(float(t), steal[t], 200 * t) for t in range(11)]
    s = steal_summary(samples, event_times=[3.5, 7.2, 0.2, 5.9], hz=100)
    assert s["available"] and s["steal_s"] == 0.35 and s["steal_percent"] == round(100 * 35 / 2000, 2)
    assert s["intervals"] == 10 and s["intervals_with_steal"] == 2 and s["worst_interval_steal_ms"] == 300.0
    # windows [2, 5] and [6, 9]: 3.5 and 7.2 fall in, 0.2 and 5.9 do not; they cover 6 of 10 s
    assert s["events"] == 4 and s["events_near_steal"] == 2 and s["time_near_steal_percent"] == 60.0
    assert steal_summary(samples[:1]) == {"available": False}
    quiet = steal_summary([(float(t), 9, 200 * t) for t in range(5)], event_times=[1.0])
    assert quiet["steal_s"] == 0.0 and quiet["events_near_steal"] == 0 and quiet["time_near_steal_percent"] == 0.0


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="no /proc/stat on this system")
def test_monitor_samples_the_real_proc_stat():
    mon = StealMonitor(interval_s=0.05).start()
    import time
    time.sleep(0.3)
    mon.stop()
    mon.stop()                                       # twice is safe
    s = mon.summary([])
    assert s["available"] and s["intervals"] >= 3 and s["steal_s"] >= 0.0
    with pytest.raises(ValueError, match="interval_s: 0.001 is out of range 0.05..10"):
        StealMonitor(interval_s=0.001)
