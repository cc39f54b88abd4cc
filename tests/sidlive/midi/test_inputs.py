"""MIDI input: the dummy backend, and real JACK MIDI ports through python-rtmidi."""
from __future__ import annotations

import threading

import mido
import pytest

from sidlive.audio.jackserver import jack_running
from sidlive.commands import learn as learn_cmd
from sidlive.control.maps import MidiMapper, load_map, preset_paths
from sidlive.control.params import Controls
from sidlive.midi.inputs import (DummyMidiInput, MidiPortError, RtMidiInput, choose_api, list_input_ports, match_port,
                                 open_input)

NANO = next(p for p in preset_paths() if p.stem == "korg_nanokontrol2")


def test_dummy_parses_counts_garbage_and_closes_twice():
    port = open_input("dummy")
    assert isinstance(port, DummyMidiInput)
    port.feed([0xB0, 16, 64])
    port.feed(b"\x01\x02\x03")
    port.feed([0x90, 60])  # truncated note on
    port.send(mido.Message("note_on", note=60, velocity=1))
    msgs = port.drain()
    assert [m.type for m in msgs] == ["control_change", "note_on"]
    assert port.stats()["garbage"] == 2 and port.stats()["received"] == 4
    port.close()
    port.close()
    port.feed([0xB0, 1, 1])  # after close: ignored
    assert port.drain() == [] and not port.connected


def test_dummy_queue_overflow_is_counted():
    port = DummyMidiInput(queue_max=8)
    for i in range(20):
        port.feed([0xB0, 1, i])
    msgs = port.drain()
    assert port.overflows == 12
    assert [m.value for m in msgs] == list(range(12, 20))  # the newest survive


def test_match_port():
    names = ["a2j:nanoKONTROL2 [20] (capture): nanoKONTROL2 MIDI 1", "sidlive:midi_in", "x:nano"]
    assert match_port("sidlive:midi_in", names) == "sidlive:midi_in"
    assert match_port("KONTROL2", names) == names[0]
    assert match_port("nano", names) is None  # ambiguous
    assert match_port("launch", names) is None


def test_choose_api():
    assert choose_api("alsa") == "alsa" and choose_api("jack") == "jack"
    assert choose_api("auto") == ("jack" if jack_running() else "alsa")
    with pytest.raises(ValueError, match="auto, jack or alsa"):
        choose_api("coreaudio")


def test_virtual_port_feeds_the_mapper_over_jack(jack, jack_midi_out, wait):
    assert choose_api() == "jack"
    with open_input("virtual") as port:
        assert port.name == "sidlive:midi_in" and port.connected
        out = jack_midi_out("sidlive:midi_in")
        jack_midi_out.sync(out, port)
        out.send_message([0xB0, 16, 127])  # knob 1 -> temperature
        out.send_message([0xB0, 48, 127])  # M1 pressed
        out.send_message([0xB0, 48, 0])  # M1 released
        out.send_message([0x01, 0x02, 0x03])  # garbage bytes
        out.send_message([0xB0, 123, 0])  # all notes off -> panic
        got = []
        assert wait(lambda: got.extend(port.drain()) or len(got) >= 4), f"received {got}"
        assert port.garbage == 1
        mapper = MidiMapper(load_map(NANO))
        controls = Controls()
        for msg in got:
            controls.apply(mapper.handle(msg))
        assert controls.state.temperature == pytest.approx(2.0)
        assert controls.state.mute_1 is True and controls.state.panic == 1
    assert not port.connected
    port.close()  # twice is safe


def test_named_port_unplug_and_replug(jack, jack_midi_out, wait):
    fake = jack_midi_out(None, client="fakectl")  # a "controller" with output port fakectl:out
    assert wait(lambda: "fakectl:out" in list_input_ports())
    port = RtMidiInput("fakectl")
    try:
        assert port.name == "fakectl:out"
        jack_midi_out.sync(fake, port)
        fake.send_message([0xB0, 7, 1])
        assert wait(lambda: port._q), "nothing arrived from fakectl"
        assert [m.value for m in port.drain()] == [1]
        jack_midi_out.unplug(fake)
        assert wait(lambda: not port.check()) is not None and port.disconnects == 1
        fake2 = jack_midi_out(None, client="fakectl")  # plugged back in: a new client
        assert wait(lambda: port.check()) and port.reconnects == 1 and port.name == "fakectl:out"
        jack_midi_out.sync(fake2, port)
        fake2.send_message([0xB0, 7, 2])
        assert wait(lambda: port._q)
        assert [m.value for m in port.drain()] == [2]
    finally:
        port.close()
        port.close()


def test_unknown_port_lists_what_exists(jack):
    with pytest.raises(MidiPortError, match="no single input port matches 'no-such-controller'"):
        open_input("no-such-controller")


def test_learn_command_over_jack(jack, jack_midi_out, wait, tmp_path, capsys):
    path = tmp_path / "learned.toml"
    rc = []
    t = threading.Thread(target=lambda: rc.append(learn_cmd.main(
        ["--controller", str(path), "--midi", "virtual", "--timeout", "20", "solo_2"])))
    t.start()
    try:
        out = jack_midi_out("sidlive:midi_in")
        # Repeat the press until learn returns: a message sent before the new JACK
        # connection is active is lost, and learn binds only the first one it sees.
        while t.is_alive() and wait(lambda: not t.is_alive(), timeout_s=0.05) is None:
            out.send_message([0x92, 40, 100])  # note 40 on channel 3
    finally:
        t.join(timeout=25)
    assert rc == [0]
    assert "bound note 40 (channel 3) to solo_2" in capsys.readouterr().out
    m = load_map(path)
    assert [(b.note, b.param, b.mode) for b in m.buttons] == [(40, "solo_2", "toggle")]
