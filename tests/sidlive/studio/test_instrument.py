"""Sending to the instrument: the page's knobs become OSC messages a running `sidlive live`
applies like a MIDI controller's, and a fragment becomes the daemon's prompt loop (a real
LiveDaemon on the null output, the shipped model, its OSC server)."""
from __future__ import annotations

import time

import numpy as np
import pytest

from sidlive.control.osc import OscServer
from sidlive.control.params import PARAMS, Controls
from sidlive.frames import load
from sidlive.live.daemon import LiveConfig, LiveDaemon
from sidlive.paths import DEFAULT_MODEL, LOOPS_DIR
from sidlive.studio.instrument import Instrument, InstrumentError, loop_stem


def wait_for(pred, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


def test_knobs_arrive_as_the_daemons_controls(tmp_path):
    controls = Controls()
    srv = OscServer(controls.post, port=0)
    srv.start()
    try:
        inst = Instrument("127.0.0.1", srv.port, tmp_path)
        inst.send_unit("temperature", 1.0)
        inst.send_unit("repetition", 0.25)
        inst.send("reseed")
        inst.send("mute_2", True)
        assert wait_for(lambda: srv.accepted == 4)
        controls.apply_pending()
        st = controls.state
        assert st.temperature == pytest.approx(PARAMS["temperature"].hi) and st.repetition == pytest.approx(0.5)
        assert st.reseed == 1 and st.mute_2 is True
        with pytest.raises(InstrumentError, match=r"temperature: temperature: 9.0 is out of range 0.1..2"):
            inst.send("temperature", 9.0)
        with pytest.raises(InstrumentError, match="field unit: 1.5 is out of range 0..1"):
            inst.send_unit("temperature", 1.5)
        with pytest.raises(InstrumentError, match="not one of the studio's live controls"):
            inst.send("volume_db", -3)
        assert srv.dropped == 0          # nothing bad went out
    finally:
        srv.close()


def test_a_fragment_becomes_the_running_daemons_loop(tmp_path):
    loops = tmp_path / "loops"
    loops.mkdir()
    d = LiveDaemon(LiveConfig(model=DEFAULT_MODEL, audio="null", midi="none", osc_port=0, rt_priority=0,
                              loops_dir=loops), on_message=lambda m: None).start()
    try:
        assert wait_for(lambda: d.audio.frames_played > 5, 30)
        inst = Instrument("127.0.0.1", d.ports.osc.port, loops)
        frag = load(LOOPS_DIR / "sanction.regs").regs[:150]
        with pytest.raises(InstrumentError, match=r"2..16 s .*the selection is 0.60 s"):
            inst.send_loop(frag[:30], "too short", source="test")
        r = inst.send_loop(frag, "studio take 3 / 0-3 s", source="sidlive studio: take 3", wait_s=1.3)
        assert r["index"] == 0 and r["name"] == loop_stem("studio take 3 / 0-3 s")
        assert wait_for(lambda: d.controls.state.loop == 0 and d.genthread.primes >= 1, 15)
        lp = d.library.get(0)
        assert np.array_equal(lp.regs, frag) and lp.source == "sidlive studio: take 3"
        inst.send_unit("temperature", 0.0)
        assert wait_for(lambda: d.controls.state.temperature == pytest.approx(PARAMS["temperature"].lo))
    finally:
        d.stop()
