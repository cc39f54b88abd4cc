"""The outside world of a `sidlive live` session: the audio output, OSC in, ASID out and the
effects chain, and the watchdog over them (the control thread calls `check` every 0.25 s:
an output whose JACK server died is replaced by the null output, so a recording goes on).
"""
from __future__ import annotations

import os
import time

from sidlive.audio.fx import FxError, FxHost
from sidlive.audio.outputs import NullOutput, StreamOutput, find_device
from sidlive.control.osc import OscServer
from sidlive.live.asidfeed import AsidFeed
from sidlive.midi.asid import AsidOut
from sidlive.midi.inputs import MidiPortError


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


class Ports:
    """Output, OSC, ASID and effects of one session, opened on request and closed by the
    daemon; `audio` is the session's AudioCallback, `post` queues a control event."""

    def __init__(self, cfg, audio, controls, recorder, post, message):
        self.cfg, self.audio, self.controls, self.recorder = cfg, audio, controls, recorder
        self.post, self.message = post, message
        self.output = None
        self.output_switches = 0
        self.jack_died = False
        self.osc = None
        self.asid = None
        self.fx = None                 # FxHost while effects run
        self._stall_warned = False

    def open_output(self):
        """The audio output for --audio (the null output when there is none and a recording runs)."""
        cfg, cb = self.cfg, self.audio.callback
        if cfg.audio == "null":
            self.output = NullOutput(cb, cfg.rate_hz, cfg.block_frames)
            return self.output
        try:
            dev, name, channels = find_device(cfg.audio)
            self.output = StreamOutput(cb, dev, cfg.rate_hz, cfg.block_frames, channels, name)
        except Exception as err:  # noqa: BLE001 - PortAudio errors come in several types
            if self.recorder is None:
                raise NoAudioDevice(f"{err}; with --record the session runs on the null output") from None
            self.message(f"{err}: running on the null output (recording to {self.recorder.paths['wav']})")
            self.output = NullOutput(cb, cfg.rate_hz, cfg.block_frames)
        return self.output

    def start_output(self) -> None:
        """Start the output; if it refuses and a recording runs, go on with the null output."""
        try:
            self.output.start()
        except Exception as err:  # noqa: BLE001 - PortAudio refuses to start in several ways
            if self.recorder is None:
                raise NoAudioDevice(f"audio output {self.output.name} would not start ({err})") from None
            self.message(f"audio output {self.output.name} would not start ({err}): running on the null output")
            self.output = NullOutput(self.audio.callback, self.cfg.rate_hz, self.cfg.block_frames).start()

    def stop_output(self) -> None:
        """Stop the output (first on stop: no callback runs inside the chain afterwards)."""
        if self.output is not None:
            self.output.stop()

    def open_asid(self) -> None:
        """ASID out (--asid): every played frame to a real SID, in step with the speakers."""
        if self.cfg.asid in (None, "none"):
            return
        if not 0.0 <= self.cfg.asid_lead_s <= 1.0:
            raise LiveError(f"--asid-lead-ms: {self.cfg.asid_lead_s * 1e3:g} is outside 0..1000")
        try:
            out = AsidOut(self.cfg.asid)
        except (MidiPortError, OSError, ImportError) as e:
            raise LiveError(f"--asid: {e}") from None
        self.asid = AsidFeed(self.audio, out, lead_s=self.cfg.asid_lead_s)
        self.message(f"ASID out: {out.name}")

    def stop_asid(self) -> None:
        """Send what has played, then ASID stop (skipped when JACK died: the port is gone)."""
        if self.asid is not None and not self.jack_died:
            self.asid.stop()

    def open_fx(self, chain) -> None:
        """The effects chain inside the audio callback (pyo's embedded server), on any
        output; if pyo fails the session plays dry and says so."""
        try:
            self.fx = FxHost(chain, self.cfg.rate_hz, self.cfg.block_frames, bypass=self.controls.state.fx_bypass)
        except (FxError, OSError) as e:
            self.message(f"effects {chain.name!r}: {e}; playing dry")
            return
        self.audio.fx = self.fx
        state = "bypassed (fx_bypass 0 turns it on)" if self.controls.state.fx_bypass else "on"
        self.message(f"effects {chain.name!r} in the audio callback "
                     f"({' > '.join(k for k, _ in chain.effects)}): {state}")

    def close_fx(self) -> None:
        """Close the effects host (after the output has stopped)."""
        if self.fx is not None:
            self.fx.close()

    def open_osc(self) -> None:
        """OSC in on cfg.osc_host:osc_port (None: no OSC); a busy port is reported, not fatal."""
        if self.cfg.osc_port is None:
            return
        try:
            self.osc = OscServer(self.post, self.cfg.osc_host, self.cfg.osc_port).start()
        except OSError as e:
            self.message(f"OSC: cannot listen on {self.cfg.osc_host}:{self.cfg.osc_port} ({e}); no OSC")

    def close_osc(self) -> None:
        """Stop the OSC server."""
        if self.osc is not None:
            self.osc.close()

    def check(self) -> None:
        """The watchdog over the output and the ASID feed (the control thread, every 0.25 s)."""
        out = self.output
        stall_s = time.perf_counter() - self.audio.last_callback_perf if self.audio.blocks else 0.0
        if isinstance(out, StreamOutput):
            if not out.active or stall_s > STALL_SWITCH_S:
                why = "stream stopped" if not out.active else f"no audio callback for {stall_s:.1f} s"
                self.switch_to_null(f"audio output {out.name}: {why} (JACK server gone?)")
            elif stall_s > 1.0 and not self._stall_warned:
                self._stall_warned = True
                self.message(f"audio output {out.name}: no callback for {stall_s:.1f} s")
            elif stall_s < 0.1:
                self._stall_warned = False
        elif isinstance(out, NullOutput) and out.error is not None:
            self.message(f"null output failed: {out.error}")
            out.error = None
        if self.asid is not None and self.asid.error is not None:
            self.message(f"ASID out stopped: {self.asid.error}")
            self.asid.error = None

    def switch_to_null(self, why: str) -> None:
        """Abandon a dead output for the null output; a recording goes on."""
        old = self.output
        old.abandon()
        self.jack_died = self.jack_died or "jack" in old.name.lower()
        time.sleep(0.05)   # a callback already under way finishes before the null thread starts
        self.output = NullOutput(self.audio.callback, self.cfg.rate_hz, self.cfg.block_frames).start()
        self.output_switches += 1
        if self.cfg.rt_priority > 0:
            set_realtime([self.output._thread.native_id], self.cfg.rt_priority)
        rec = f"; recording goes on to {self.recorder.paths['wav']}" if self.recorder is not None else ""
        self.message(f"{why}: switched to the null output{rec}")
