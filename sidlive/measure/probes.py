"""The soak's MIDI side: a flood of controller messages over every control of a map, and latency probes from a MIDI message to the first sample it changes."""
from __future__ import annotations

import random
import time

import numpy as np

from sidlive.control.params import ControlEvent


def flood_messages(cmap, n_loops: int, rng: random.Random):
    """An endless stream of raw MIDI messages over every binding of the map (and notes
    for its keyboard voice)."""
    ch = max(cmap.channel, 1) - 1
    binds = [("knob", k) for k in cmap.knobs] + [("button", b) for b in cmap.buttons]
    if cmap.program_change:
        binds.append(("program", None))
    if cmap.keyboard is not None:
        binds.append(("keys", None))
    while True:
        kind, b = rng.choice(binds)
        c = (b.channel - 1) if b is not None and b.channel else ch
        if kind == "keys":
            note, kc = rng.randrange(28, 60), cmap.keyboard.channel - 1
            yield [0x90 | kc, note, rng.randrange(1, 128)]
            yield [0x80 | kc, note, 0]
        elif kind == "knob":
            yield [0xB0 | c, b.cc, rng.randrange(128)]
        elif kind == "program":
            yield [0xC0 | ch, rng.randrange(n_loops + 1)]
        elif b.cc is not None:
            yield [0xB0 | c, b.cc, 127]
            yield [0xB0 | c, b.cc, 0]
        else:
            yield [0x90 | c, b.note, 100]
            yield [0x80 | c, b.note, 0]


def _binding(cmap, param: str):
    for b in list(cmap.knobs) + list(cmap.buttons):
        if b.param == param:
            return b
    raise ValueError(f"controller map {cmap.name!r} binds no {param!r}; the latency probes need it")


def _press(b, ch: int) -> list[list[int]]:
    c = (b.channel - 1) if b.channel else ch
    if b.cc is not None:
        return [[0xB0 | c, b.cc, 127], [0xB0 | c, b.cc, 0]]
    return [[0x90 | c, b.note, 100], [0x80 | c, b.note, 0]]


def _probe_latency(daemon, kind: str, t_send: float, param: str) -> dict | None:
    """MIDI send -> control published -> first changed sample (DAC time), ms. A mute is
    heard from the first renderer mute of voice 1 after the send, whichever thread made it
    (the audio callback's MIDI lane, before any state is published, or a published state);
    its `midi_to_control_ms` is when the audio callback applied it."""
    if kind == "mute":
        out_s = daemon.audio.dac_offset_s
        ev = next((e for e in list(daemon.hub.renderer_events) if e[1] == 2 and e[2] == 1 and e[6] - out_s >= t_send), None)
        if ev is None:
            return None
        applied = ev[6] - out_s - (ev[5] - ev[7]) / daemon.cfg.rate_hz   # the callback's block start
        return {"midi_to_control_ms": (applied - t_send) * 1e3, "control_to_sound_ms": (ev[6] - applied) * 1e3,
                "total_ms": (ev[6] - t_send) * 1e3, "to_rendered_sample_ms": (ev[6] - out_s - t_send) * 1e3,
                "by_lane": ev[0] < 0}
    pub = next(((seq, t) for seq, t, names in list(daemon.hub.publish_log) if t >= t_send and param in names), None)
    if pub is None:
        return None
    seq, t_pub = pub
    heard = None
    if kind == "note":
        ev = next((e for e in list(daemon.hub.key_events) if e[0] >= seq), None)
        heard = ev[6] if ev else None
    else:
        rb = next(((s, cut) for s, cut, _ in list(daemon.genthread.rollback_log) if s >= seq), None)
        heard = daemon.audio.frame_sound_time(rb[1]) if rb else None
    if heard is None:
        return None
    out_s = daemon.audio.dac_offset_s   # the device's output buffer (JACK: periods x period size)
    return {"midi_to_control_ms": (t_pub - t_send) * 1e3, "control_to_sound_ms": (heard - t_pub) * 1e3,
            "total_ms": (heard - t_send) * 1e3, "to_rendered_sample_ms": (heard - out_s - t_send) * 1e3}


def _summary(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    a = np.asarray(values)
    return {"n": len(a), "p50": round(float(np.percentile(a, 50)), 2), "p95": round(float(np.percentile(a, 95)), 2),
            "max": round(float(a.max()), 2)}


def measure_latency(daemon, out, cmap, probes: int, rng: random.Random, log=print) -> dict:
    """Send latency probes (knob, reseed, mute, keyboard note) over MIDI out; latency figures per kind."""
    ch = max(cmap.channel, 1) - 1
    temp, reseed, mute = _binding(cmap, "temperature"), _binding(cmap, "reseed"), _binding(cmap, "mute_1")
    results = {"temperature": [], "reseed": [], "mute": []}
    kinds = ("temperature", "reseed", "mute")
    if cmap.keyboard is not None:                  # the keyboard voice: note on -> first frame playing it
        results["note"] = []
        kinds += ("note",)
    pending = []
    for name in ("solo_1", "solo_2", "solo_3", "mute_1", "mute_2", "mute_3"):   # after the flood: all voices on
        daemon.post(ControlEvent(name, False, source="soak"))
    daemon.post(ControlEvent("loop", -1, source="soak"))
    time.sleep(0.3)
    for i in range(probes):
        for kind in kinds:
            time.sleep(0.2 + 0.1 * rng.random())
            if kind == "temperature":
                msgs, param = [[0xB0 | ((temp.channel - 1) if temp.channel else ch), temp.cc, 40 + 50 * (i % 2)]], \
                    "temperature"
            elif kind == "reseed":
                msgs, param = _press(reseed, ch), "reseed"
            elif kind == "note":
                kc, note = cmap.keyboard.channel - 1, 36 + (i % 24)
                msgs, param = [[0x90 | kc, note, 100]], "note"    # struck while the last sounds: a new attack
            else:
                msgs, param = _press(mute, ch), "mute_1"
            t_send = time.perf_counter()
            for m in msgs:
                out.send_message(m)
            pending.append((kind, t_send, param))
    time.sleep(0.3)
    lost = 0
    for kind, t_send, param in pending:
        r = _probe_latency(daemon, kind, t_send, param)
        if r is None:
            lost += 1
        else:
            results[kind].append(r)
    fig = {"probes_unmatched": lost, "device_output_latency_ms": round(daemon.audio.dac_offset_s * 1e3, 2),
           "mutes_by_midi_lane": sum(1 for r in results["mute"] if r.get("by_lane"))}
    for kind, rows in results.items():
        fig[kind] = {k: _summary([r[k] for r in rows]) for k in ("total_ms", "midi_to_control_ms",
                                                                   "control_to_sound_ms", "to_rendered_sample_ms")}
    return fig


def flood(out, messages, rate_hz: float, seconds: float) -> int:
    """Send messages at rate_hz for seconds (no bursts when behind); returns how many were sent."""
    if rate_hz <= 0:
        time.sleep(seconds)
        return 0
    period = 1.0 / rate_hz
    t_end = time.perf_counter() + seconds
    t_next = time.perf_counter()
    sent = 0
    while True:
        now = time.perf_counter()
        if now >= t_end:
            return sent
        if now < t_next:
            time.sleep(min(t_next - now, 0.005))
            continue
        out.send_message(next(messages))
        sent += 1
        t_next += period
        if now - t_next > 0.05:   # fell behind (busy machine): don't burst
            t_next = now
