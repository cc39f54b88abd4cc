"""Figures of a running `sidlive live` session (a LiveDaemon `d`): counters the view
reads ten times a second, knob-to-sound latencies, and the --headless exit line.
"""
from __future__ import annotations

import os
import time

import numpy as np


def process_start_perf() -> float:
    """perf_counter() value at this process's start (Linux /proc; 10 ms resolution)."""
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return time.perf_counter() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return float("nan")


def _pct(values, q) -> float | None:
    return round(float(np.percentile(values, q)), 2) if len(values) else None


def latency_figures(d) -> dict:
    """Control applied -> first sample heard (DAC time), ms: generator changes (first
    regenerated frame), renderer changes (mute/solo/panic) and keyboard notes (the first
    frame that plays the note)."""
    t_pub = {seq: t for seq, t, _ in d.hub.publish_log}
    gen = []
    for seq, cut, _ in list(d.genthread.rollback_log):
        heard = d.audio.frame_sound_time(cut)
        if heard is not None and seq in t_pub:
            gen.append((heard - t_pub[seq]) * 1e3)
    ren = [(ev[6] - t_pub[ev[0]]) * 1e3 for ev in list(d.hub.renderer_events) if ev[0] in t_pub]
    key = [(ev[6] - t_pub[ev[0]]) * 1e3 for ev in list(d.hub.key_events) if ev[0] in t_pub]
    return {"generator_change_ms_p50": _pct(gen, 50), "generator_change_ms_p95": _pct(gen, 95),
            "generator_changes": len(gen), "renderer_change_ms_p50": _pct(ren, 50),
            "renderer_change_ms_p95": _pct(ren, 95), "renderer_changes": len(ren),
            "keyboard_note_ms_p50": _pct(key, 50), "keyboard_note_ms_p95": _pct(key, 95), "keyboard_notes": len(key),
            "output_latency_ms": round(d.audio.dac_offset_s * 1e3, 2),
            "lookahead_frames": d.controls.state.lookahead_frames}

def counters(d) -> dict:
    """Cheap running figures (the view asks ten times a second)."""
    e, g = d.audio, d.genthread
    wall = max(time.perf_counter() - d.started_perf, 1e-9)
    return {"seconds": round(e.samples / d.cfg.rate_hz, 3), "frames_played": e.frames_played,
            "audio_underruns": e.audio_underruns, "ring_underruns": d.ring.underruns,
            "rollbacks": d.ring.rollbacks, "loop_primes": g.primes,
            "loop_primes_abandoned": g.primes_abandoned,
            "generator_frames": g.frames_generated,
            "generator_fps": round(g.frames_generated / g.busy_s, 1) if g.busy_s else None,
            "callback_ms_p50": e.callback_percentile_ms(50), "callback_ms_p99": e.callback_percentile_ms(99),
            "callback_ms_p999": e.callback_percentile_ms(99.9),
            "callback_ms_max": round(e.cb_max_s * 1e3, 3),
            "block_ms": round(d.cfg.block_frames / d.cfg.rate_hz * 1e3, 3),
            "cpu_percent": round(100.0 * (time.process_time() - d.started_cpu) / wall, 1)}

def stats(d, rec: dict | None = None) -> dict:
    """Everything, for the exit line: counters, latency figures, subsystems."""
    e = d.audio
    first = e.first_frame_dac - process_start_perf() if e.first_frame_dac else None
    return {**counters(d), "first_audio_s": round(first, 3) if first is not None else None,
            "latency": latency_figures(d), "output": getattr(d.ports.output, "name", None),
            "output_switches": d.ports.output_switches, "jack_died": d.ports.jack_died, "rt_threads": d.rt_threads,
            "midi": d.hub.midi.stats() if d.hub.midi is not None else None,
            "osc": d.ports.osc.stats() if d.ports.osc is not None else None,
            "keyboard": ({"voice": d.hub.keyvoice.cfg.voice, "channel": d.hub.keyvoice.cfg.channel,
                          "notes": d.hub.keyvoice.notes_played, "dropped": d.hub.notes_dropped}
                         if d.hub.keyvoice is not None else None),
            "asid": d.ports.asid.stats() if d.ports.asid is not None else None,
            "fx": ({**d.ports.fx.stats(), "bypass": d.controls.state.fx_bypass}
                   if d.ports.fx is not None else None),
            "controls_rejected": d.controls.rejected, "events_lost": d.hub.events_lost,
            "recording": rec, "messages": len(d.messages), "seed": d.cfg.seed}
