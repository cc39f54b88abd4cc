"""The outside world of a `sidlive live` session (mixed into session.LiveDaemon): opening
the audio output, MIDI in, OSC and ASID out; the controller map; loop capture; and the
watchdog the control thread runs every 0.25 s (MIDI port replugged, JACK gone -> the null
output so a recording goes on) and every second (controller map and loops folder reloaded
when their files change; a missing or bad file is reported and the previous one stays).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from sidlive.audio.fx import FxError, FxHost
from sidlive.audio.outputs import NullOutput, StreamOutput, find_device
from sidlive.control.maps import ControllerMapError, MidiMapper, load_map
from sidlive.control.osc import OscServer
from sidlive.frames import PAL_FRAME_RATE_HZ
from sidlive.live.asidfeed import AsidFeed
from sidlive.live.loops import LoopError, capture
from sidlive.midi.asid import AsidOut
from sidlive.midi.inputs import MidiPortError, open_input
from sidlive.midi.lane import MidiLane, lane_table


class LiveError(RuntimeError):
    """The session cannot start (missing model, bad map...); the message says what to do."""


class NoAudioDevice(LiveError):
    """No audio output and no --record to run on the null output."""


STALL_SWITCH_S = 5.0   # a stream still 'active' but silent this long counts as dead


def set_realtime(native_ids, priority: int) -> int:
    """SCHED_FIFO at `priority` for these threads (Linux tids), where permitted. A thread
    holding the GIL then is not preempted by other programs while the audio callback waits
    for it (priority inversion through the GIL). Returns how many were raised."""
    done = 0
    for tid in native_ids:
        try:
            os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(priority))
            done += 1
        except (OSError, AttributeError):
            pass
    return done


class SessionIO:
    """Ports, files and the watchdog of LiveDaemon (uses its cfg, engine, recorder, ...)."""

    def _open_output(self):
        cfg, e = self.cfg, self.engine
        if cfg.audio == "null":
            return NullOutput(e.callback, cfg.rate_hz, cfg.block_frames)
        try:
            dev, name, channels = find_device(cfg.audio)
            return StreamOutput(e.callback, dev, cfg.rate_hz, cfg.block_frames, channels, name)
        except Exception as err:  # noqa: BLE001 - PortAudio errors come in several types
            if self.recorder is None:
                raise NoAudioDevice(f"{err}; with --record the session runs on the null output") from None
            self.message(f"{err}: running on the null output (recording to {self.recorder.paths['wav']})")
            return NullOutput(e.callback, cfg.rate_hz, cfg.block_frames)

    def _open_midi(self, startup: bool = False) -> None:
        spec = self.cfg.midi
        if spec in (None, "none") or self.midi is not None:
            return
        try:
            self.midi = open_input(spec, poll=True)   # the audio callback takes the messages (midilane.py)
            self.engine.lane = MidiLane(self.midi, lane_table(self.mapper), self.controls.state, self._wake)
            self.message(f"MIDI in: {self.midi.name}")
        except (OSError, ImportError) as e:
            if startup:
                self.message(f"{e}; playing on, will look for the port again")

    def _open_asid(self) -> None:
        if self.cfg.asid in (None, "none"):
            return
        if not 0.0 <= self.cfg.asid_lead_s <= 1.0:
            raise LiveError(f"--asid-lead-ms: {self.cfg.asid_lead_s * 1e3:g} is outside 0..1000")
        try:
            out = AsidOut(self.cfg.asid)
        except (MidiPortError, OSError, ImportError) as e:
            raise LiveError(f"--asid: {e}") from None
        self.asid = AsidFeed(self.engine, out, lead_s=self.cfg.asid_lead_s)
        self.message(f"ASID out: {out.name}")

    def _open_fx(self) -> None:
        """The effects chain inside the audio callback (pyo's embedded server), on any
        output; if pyo fails the session plays dry and says so."""
        chain = self.fx_chain
        try:
            self.fx = FxHost(chain, self.cfg.rate_hz, self.cfg.block_frames, bypass=self.controls.state.fx_bypass)
        except (FxError, OSError) as e:
            self.message(f"effects {chain.name!r}: {e}; playing dry")
            return
        self.engine.fx = self.fx
        state = "bypassed (fx_bypass 0 turns it on)" if self.controls.state.fx_bypass else "on"
        self.message(f"effects {chain.name!r} in the audio callback "
                     f"({' > '.join(k for k, _ in chain.effects)}): {state}")

    def _open_osc(self) -> None:
        if self.cfg.osc_port is None:
            return
        try:
            self.osc = OscServer(self.post, self.cfg.osc_host, self.cfg.osc_port).start()
        except OSError as e:
            self.message(f"OSC: cannot listen on {self.cfg.osc_host}:{self.cfg.osc_port} ({e}); no OSC")

    def _load_map(self, path: Path, startup: bool = False) -> None:
        self._map_path = path
        try:
            self._map_mtime = path.stat().st_mtime_ns
            cmap = load_map(path)
        except (OSError, ControllerMapError) as e:
            text = f"controller map {path}: {e.strerror}" if isinstance(e, OSError) else str(e)
            if startup:
                raise LiveError(text) from None
            self.message(f"{text}; keeping the previous map")
            return
        self.mapper = MidiMapper(cmap)
        lane = getattr(getattr(self, "engine", None), "lane", None)
        if lane is not None:
            lane.table = lane_table(self.mapper)   # one reference: the audio thread's next pump uses it
        if not startup:
            self.set_keyboard(cmap.keyboard)
            self.message(f"controller map reloaded: {cmap.name} ({path})")

    def _capture(self) -> None:
        now = time.monotonic()
        if now - self._last_capture < 1.0:
            return
        self._last_capture = now
        if self.cfg.loops_dir is None:
            self.message("capture: no loops folder (--loops)")
            return
        read = self.ring.read_pos
        n = min(int(round(self.cfg.capture_seconds * PAL_FRAME_RATE_HZ)), read, len(self.genthread.hist) - 64)
        hist = self.genthread.hist
        regs = hist[np.arange(read - n, read) % len(hist)]
        try:
            lp = capture(regs, self.cfg.loops_dir, chip=self.cfg.chip)
        except (LoopError, OSError) as e:
            self.message(str(e) if str(e).startswith("capture") else f"capture: {e}")
            return
        self.library.refresh()
        self.message(f"captured {lp.seconds:.1f} s as loop {lp.name} ({lp.path})")

    def _checks(self) -> None:
        if self.midi is not None:
            self.midi.check()
        elif self.cfg.midi not in (None, "none", "virtual", "dummy"):
            self._open_midi()
        out = self.output
        stall_s = time.perf_counter() - self.engine.last_callback_perf if self.engine.blocks else 0.0
        if isinstance(out, StreamOutput):
            if not out.active or stall_s > STALL_SWITCH_S:
                why = "stream stopped" if not out.active else f"no audio callback for {stall_s:.1f} s"
                self._switch_to_null(f"audio output {out.name}: {why} (JACK server gone?)")
            elif stall_s > 1.0 and not self._stall_warned:
                self._stall_warned = True
                self.message(f"audio output {out.name}: no callback for {stall_s:.1f} s")
            elif stall_s < 0.1:
                self._stall_warned = False
        elif isinstance(out, NullOutput) and out.error is not None:
            self.message(f"null output failed: {out.error}")
            out.error = None
        if self.genthread.error is not None:
            self.message(f"generator: {self.genthread.error}")
            self.genthread.error = None
        if self.asid is not None and self.asid.error is not None:
            self.message(f"ASID out stopped: {self.asid.error}")
            self.asid.error = None

    def _switch_to_null(self, why: str) -> None:
        old = self.output
        old.abandon()
        self.jack_died = self.jack_died or "jack" in old.name.lower()
        time.sleep(0.05)   # a callback already under way finishes before the null thread starts
        self.output = NullOutput(self.engine.callback, self.cfg.rate_hz, self.cfg.block_frames).start()
        self.output_switches += 1
        if self.cfg.rt_priority > 0:
            set_realtime([self.output._thread.native_id], self.cfg.rt_priority)
        rec = f"; recording goes on to {self.recorder.paths['wav']}" if self.recorder is not None else ""
        self.message(f"{why}: switched to the null output{rec}")

    def _reload(self, force: bool = False) -> None:
        if self.cfg.midi not in (None, "none"):
            path = self._map_path
            try:
                mtime = path.stat().st_mtime_ns
            except OSError:
                mtime = None
            if force or mtime != self._map_mtime:
                if mtime is None:
                    self._map_mtime = None
                    self.message(f"controller map {path}: missing; keeping the previous map")
                else:
                    self._load_map(path)
        before = self.library.version
        for err in self.library.refresh(force):
            self.message(err)
        if self.library.version != before:
            self._publish([("loops_reloaded", self.library.version)])
