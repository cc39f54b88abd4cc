"""OSC control: message translation, a real UDP server, and docs/osc.md coverage."""
from __future__ import annotations

import logging
import re
import socket
from pathlib import Path

import pytest
from pythonosc.udp_client import SimpleUDPClient

from sidlive.control import osc
from sidlive.control.osc import OscError, OscServer, message_to_event
from sidlive.control.params import PARAMS, ControlEvent, Controls

DOC = Path(__file__).resolve().parents[3] / "docs" / "osc.md"


@pytest.mark.parametrize("address, args, event", [
    ("/sidlive/temperature", (0.8,), ControlEvent("temperature", 0.8, "set", "osc")),
    ("/sidlive/top_k", (12,), ControlEvent("top_k", 12, "set", "osc")),
    ("/sidlive/mute", (2, 1), ControlEvent("mute_2", True, "set", "osc")),
    ("/sidlive/solo", (3,), ControlEvent("solo_3", None, "toggle", "osc")),
    ("/sidlive/mute_1", (0,), ControlEvent("mute_1", False, "set", "osc")),
    ("/sidlive/mute_1", (), ControlEvent("mute_1", None, "toggle", "osc")),
    ("/sidlive/reseed", (), ControlEvent("reseed", None, "trigger", "osc")),
    ("/sidlive/reseed", (1.0,), ControlEvent("reseed", True, "set", "osc")),
    ("/sidlive/panic", (0,), ControlEvent("panic", False, "set", "osc")),
    ("/sidlive/loop_mode", ("call_response",), ControlEvent("loop_mode", "call_response", "set", "osc")),
    ("/sidlive/loop_mode", (), ControlEvent("loop_mode", None, "toggle", "osc")),
    ("/sidlive/loop", (5,), ControlEvent("loop", 5, "set", "osc")),
])
def test_message_to_event(address, args, event):
    assert message_to_event(address, args) == event


@pytest.mark.parametrize("address, args, fragment", [
    ("/sidlive/temperature", (3.0,), "temperature: 3.0 is out of range 0.1..2"),
    ("/sidlive/temperature", (), "needs a value"),
    ("/sidlive/temperature", (1, 2), "at most one argument"),
    ("/sidlive/mute", (4, 1), "voice 4 is out of range 1..3"),
    ("/sidlive/mute", (), "takes a voice"),
    ("/sidlive/mute", (1, 5), "mute_1: 5 is out of range"),
    ("/sidlive/tempo", (1,), "unknown parameter 'tempo'"),
    ("/other/temperature", (1,), "unknown address"),
    ("/sidlive/reseed", ("now",), "trigger argument must be a number"),
])
def test_bad_messages_raise_oscerror(address, args, fragment):
    with pytest.raises(OscError) as e:
        message_to_event(address, args)
    assert fragment in str(e.value)


def test_server_applies_good_messages_and_counts_bad_ones(wait, caplog):
    controls = Controls()
    caplog.set_level(logging.WARNING, logger="sidlive.control.osc")
    with OscServer(controls.post, port=0) as server:
        assert server.port > 0
        client = SimpleUDPClient("127.0.0.1", server.port)
        client.send_message("/sidlive/temperature", 0.5)
        client.send_message("/sidlive/mute", [2, 1])
        client.send_message("/sidlive/reseed", [])
        client.send_message("/sidlive/temperature", 9.0)  # out of range
        client.send_message("/sidlive/nope", 1)  # unknown
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.sendto(b"\x00garbage", ("127.0.0.1", server.port))  # not OSC at all
        client.send_message("/sidlive/loop_mode", "call_response")
        assert wait(lambda: server.accepted == 4 and server.dropped == 3)
        assert server.stats() == {"received": 7, "accepted": 4, "dropped": 3, "dropped_unlogged": 0}   # the garbage packet too
    update = controls.apply_pending()
    assert update.changes == [("temperature", 0.5), ("mute_2", True), ("reseed", 1),
                              ("loop_mode", "call_response")]
    assert update.errors == []
    warnings = [r.getMessage() for r in caplog.records]
    assert any("temperature: 9.0 is out of range" in w for w in warnings)
    assert any("not an OSC packet" in w for w in warnings)
    server.close()  # twice is safe


def test_a_failing_post_is_dropped_not_raised(wait):
    def post(event):
        raise RuntimeError("queue gone")

    with OscServer(post, port=0) as server:
        SimpleUDPClient("127.0.0.1", server.port).send_message("/sidlive/reseed", [])
        assert wait(lambda: server.dropped == 1)
        SimpleUDPClient("127.0.0.1", server.port).send_message("/sidlive/reseed", [])
        assert wait(lambda: server.dropped == 2)  # the server thread is still alive


def test_docs_cover_every_parameter():
    text = DOC.read_text(encoding="utf-8")
    documented = set(re.findall(r"`/sidlive/(\w+)", text))
    assert set(PARAMS) <= documented, sorted(set(PARAMS) - documented)
    assert {"mute", "solo"} <= documented


def test_dropped_messages_are_logged_rate_limited_and_truncated(caplog, monkeypatch):
    caplog.set_level(logging.WARNING, logger="sidlive.control.osc")
    clock = [1000.0]
    monkeypatch.setattr("sidlive.control.osc.time.monotonic", lambda: clock[0])
    server = OscServer(lambda event: None)
    huge = "/sidlive/" + "x" * 65_536
    for i in range(5_000):                      # a flood in one second
        server._on_message(huge, ("y" * 65_536,))
    clock[0] += 1.5                             # the next second: one line says how many went unlogged
    server._on_message("/sidlive/temperature", (9.0,))
    lines = [r.getMessage() for r in caplog.records]
    assert server.dropped == 5_001 and len(lines) <= 2 * osc.LOG_PER_SECOND + 2
    assert max(map(len, lines)) <= 400
    assert server.stats() == {"received": 5_001, "accepted": 0, "dropped": 5_001,
                              "dropped_unlogged": 5_000 - osc.LOG_PER_SECOND}
    assert any(f"{5_000 - osc.LOG_PER_SECOND} more dropped messages not logged" in line for line in lines)
    assert "temperature: 9.0 is out of range" in lines[-1]
