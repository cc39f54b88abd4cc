"""Fixtures for the live-daemon tests: a private JACK dummy server and JACK MIDI ports.

`jack` starts `jackd -n sidlive-<pid>-<n> --no-realtime -d dummy -r 48000 -p 256` once per
test module (a timer-paced audio device with no sound card, plus JACK MIDI), points this
process at it (JACK_DEFAULT_SERVER, PortAudio re-initialised) and stops it afterwards,
restoring the environment. Tests skip with the reason when jackd is not installed.
`jack_midi_out` opens rtmidi JACK output ports (the "controller" side of a test).
"""
from __future__ import annotations

import time

import pytest

from sidlive.audio.jackserver import JackError, JackServer, jackd_path


@pytest.fixture(scope="module")
def jack():
    if jackd_path() is None:
        pytest.skip("jackd is not installed (Debian package jackd2): JACK audio/MIDI tests need it")
    server = JackServer(rate_hz=48_000, period_frames=256)
    try:
        server.start()
    except JackError as e:
        pytest.skip(f"jackd would not start here: {e}")
    server.activate()
    try:
        yield server
    finally:
        server.deactivate()
        server.stop()


def wait_for(predicate, timeout_s: float = 5.0, poll_s: float = 0.01):
    """Poll until predicate() is truthy (returned) or the deadline passes (None)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    return None


def jack_receiver(name: str, got: list, source: str | None = None):
    """An rtmidi JACK input (SysEx kept) that appends each message's bytes to `got`: a
    virtual port `name:in`, or (source given) connected to the output port named so."""
    import rtmidi

    rx = rtmidi.MidiIn(rtapi=rtmidi.API_UNIX_JACK, name=name)
    rx.ignore_types(sysex=False, timing=True, active_sense=True)
    rx.set_callback(lambda ev, _=None: got.append(bytes(ev[0])))
    if source is None:
        rx.open_virtual_port("in")
        return rx
    port = wait_for(lambda: next((p for p in rx.get_ports() if source in p), None))
    if port is None:
        ports = rx.get_ports()
        rx.delete()
        raise AssertionError(f"no JACK port {source} among {ports}")
    rx.open_port(rx.get_ports().index(port))
    return rx


class JackMidiOuts:
    """Opens rtmidi JACK outputs: connected to the input port matching `target`, or (target
    None) a virtual output port `client:out`, like a controller. `unplug(out)` deletes one."""

    def __init__(self):
        import rtmidi

        self._rtmidi = rtmidi
        self.opened = []

    def __call__(self, target: str | None, client: str = "tester"):
        from sidlive.midi.inputs import match_port

        out = self._rtmidi.MidiOut(rtapi=self._rtmidi.API_UNIX_JACK, name=client)
        self.opened.append(out)
        if target is None:
            out.open_virtual_port("out")
            return out
        name = wait_for(lambda: match_port(target, out.get_ports()))
        assert name, f"no JACK MIDI input port matching {target!r}; ports: {out.get_ports()}"
        out.open_port(out.get_ports().index(name))
        return out

    @staticmethod
    def sync(out, port, timeout_s: float = 5.0) -> None:
        """Wait until the JACK connection out -> port carries messages: a new connection
        becomes active a few process cycles after jack_connect returns, and a message sent
        before that is lost. Sends an unmapped note-off (channel 16, note 0) every 10 ms
        until one arrives at `port` (a sidlive MidiInput); drains it; resets the count."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            out.send_message([0x8F, 0, 0])
            time.sleep(0.01)
            if any(m.type == "note_off" and m.channel == 15 for m in port.drain()):
                time.sleep(0.02)
                port.drain()
                port.received = port.garbage = 0
                return
        raise AssertionError(f"no message reached {port.name} within {timeout_s} s")

    def unplug(self, out) -> None:
        self.opened.remove(out)
        out.close_port()
        out.delete()  # the JACK client goes away with its port

    def close_all(self) -> None:
        while self.opened:
            self.unplug(self.opened[-1])


@pytest.fixture
def jack_midi_out(jack):
    outs = JackMidiOuts()
    yield outs
    outs.close_all()


@pytest.fixture
def wait():
    """`wait(predicate, timeout_s=5.0)`: poll until truthy; returns the value or None."""
    return wait_for
