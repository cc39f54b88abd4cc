"""Controller maps: shipped presets, loader errors, save/load round trip, MidiMapper, learn."""
from __future__ import annotations

import itertools

import mido
import pytest

from sidlive.control.maps import (ControllerMap, ControllerMapError, MidiMapper, dump_map, load_map, parse_map,
                                  preset_paths, save_map)
from sidlive.control.params import PARAMS, ControlEvent, Controls
from sidlive.midi.inputs import DummyMidiInput
from sidlive.midi.learn import LearnError, learn, learn_binding

PRESETS = {p.stem: p for p in preset_paths()}


def cc(control, value, channel=1):
    return mido.Message("control_change", channel=channel - 1, control=control, value=value)


def note(n, velocity=100, channel=1):
    return mido.Message("note_on", channel=channel - 1, note=n, velocity=velocity)


def all_messages(channels=(1, 9, 16)):
    """Every CC (3 values), note on/off and program change on a few channels."""
    for ch in channels:
        for c, v in itertools.product(range(128), (0, 64, 127)):
            yield cc(c, v, ch)
        for n in range(128):
            yield note(n, 100, ch)
            yield mido.Message("note_off", channel=ch - 1, note=n)
        for prog in (0, 5, 127):
            yield mido.Message("program_change", channel=ch - 1, program=prog)


def test_shipped_presets():
    assert {"korg_nanokontrol2", "akai_midimix", "novation_launch_control_xl", "generic"} <= set(PRESETS)
    for path in PRESETS.values():
        m = load_map(path)
        bound = {k.param for k in m.knobs} | {b.param for b in m.buttons}
        for required in ("temperature", "reseed", "mute_1", "mute_2", "mute_3", "solo_1", "solo_2",
                         "solo_3", "capture_loop", "next_loop", "prev_loop", "panic"):
            assert required in bound, f"{path.name} does not bind {required}"
        assert m.program_change == "loop"


def test_nanokontrol2_factory_layout():
    mapper = MidiMapper(load_map(PRESETS["korg_nanokontrol2"]))
    assert mapper.handle(cc(16, 127)) == [ControlEvent("temperature", 2.0, "set", "midi:Korg nanoKONTROL2")]
    assert [e.name for e in mapper.handle(cc(48, 127))] == ["mute_1"]  # M1
    assert [e.name for e in mapper.handle(cc(33, 127))] == ["solo_2"]  # S2
    assert mapper.handle(cc(16, 127, channel=2)) == []  # the map listens on channel 1


@pytest.mark.parametrize("stem", sorted(PRESETS))
def test_round_trip_drives_the_same_parameters(stem, tmp_path):
    original = load_map(PRESETS[stem])
    saved = tmp_path / "saved.toml"
    save_map(original, saved)
    again = load_map(saved)
    assert again == original
    a, b = MidiMapper(original), MidiMapper(again)
    driven = set()
    for msg in all_messages():
        ea, eb = a.handle(msg), b.handle(msg)
        assert ea == eb, msg
        driven |= {e.name for e in ea}
    assert driven == {k.param for k in original.knobs} | {x.param for x in original.buttons} | {"loop", "panic"}


def test_knob_range_curve_and_channel_override():
    m = parse_map('name = "t"\nchannel = 3\n[[knob]]\ncc = 10\nparam = "top_p"\nmin = 0.5\nmax = 0.9\n'
                  '[[knob]]\ncc = 11\nparam = "temperature"\ncurve = "log"\nchannel = 4\n')
    mapper = MidiMapper(m)
    assert mapper.handle(cc(10, 0, 3))[0].value == pytest.approx(0.5)
    assert mapper.handle(cc(10, 127, 3))[0].value == pytest.approx(0.9)
    log_mid = mapper.handle(cc(11, 64, 4))[0].value
    assert log_mid == pytest.approx(PARAMS["temperature"].from_unit(64 / 127, curve="log"))
    assert mapper.handle(cc(11, 64, 3)) == []


def test_buttons_toggle_momentary_trigger_and_choice():
    m = parse_map('name = "t"\n'
                  '[[button]]\nnote = 1\nparam = "mute_1"\nmode = "toggle"\n'
                  '[[button]]\ncc = 2\nparam = "mute_2"\nmode = "momentary"\n'
                  '[[button]]\nnote = 3\nparam = "reseed"\n'
                  '[[button]]\ncc = 4\nparam = "loop_mode"\nmode = "momentary"\n')
    mapper = MidiMapper(m)
    controls = Controls()
    press, release = note(1), mido.Message("note_off", note=1)
    assert mapper.handle(press) == [ControlEvent("mute_1", None, "toggle", "midi:t")]
    assert mapper.handle(release) == [] and mapper.handle(note(1, velocity=0)) == []
    controls.apply(mapper.handle(press) + mapper.handle(release) + mapper.handle(press))
    assert controls.state.mute_1 is False  # two presses: off again
    controls.apply(mapper.handle(cc(2, 127)))
    assert controls.state.mute_2 is True
    controls.apply(mapper.handle(cc(2, 0)))
    assert controls.state.mute_2 is False
    controls.apply(mapper.handle(note(3)) + mapper.handle(mido.Message("note_off", note=3)))
    assert controls.state.reseed == 1
    assert mapper.handle(cc(4, 127))[0].value == "call_response"
    assert mapper.handle(cc(4, 0))[0].value == "prime"


def test_panic_ccs_program_change_and_unmapped():
    mapper = MidiMapper(load_map(PRESETS["generic"]))
    for control in (120, 123):
        assert [e.name for e in mapper.handle(cc(control, 0, 5))] == ["panic"]
    assert mapper.handle(mido.Message("program_change", channel=2, program=7)) == \
        [ControlEvent("loop", 7, "set", "midi:Generic")]
    assert mapper.handle(mido.Message("clock")) == []
    assert mapper.handle(mido.Message("pitchwheel", pitch=100)) == []
    assert mapper.stats()["ignored"] == 2 and mapper.stats()["mapped"] == 3


@pytest.mark.parametrize("junk", [b"\x01\x02", [0x90, 60], [0xB0, 7, 200], [], "text", None, 42,
                                  [0xB0, 7, 64, 1]])
def test_mapper_drops_and_counts_malformed_input(junk):
    mapper = MidiMapper(load_map(PRESETS["generic"]))
    assert mapper.handle(junk) == []
    assert mapper.malformed == 1 and mapper.received == 1
    assert mapper.handle(bytes([0xB0, 1, 127]))[0].name == "temperature"  # raw bytes work


BAD_MAPS = [
    ('name = "x"\nchannel = 17\n', 2, "channel", "17 is out of range 0..16"),
    ('name = "x"\n[[knob]]\ncc = 1\nparam = "top_p"\n\n[[knob]]\ncc = 130\nparam = "top_k"\n',
     7, "knob[1].cc", "130 is out of range 0..119"),
    ('name = "x"\n[[knob]]\ncc = 121\nparam = "top_p"\n', 3, "knob[0].cc", "channel mode"),
    ('name = "x"\n[[knob]]\ncc = 1\nparam = "temperature"\nmin = 5\n', 5, "knob[0].min",
     "5 is out of temperature's range 0.1..2"),
    ('name = "x"\n[[knob]]\ncc = 1\nparam = "temperature"\ncurve = "sine"\n', 5, "knob[0].curve",
     "'sine' is not one of"),
    ('name = "x"\n[[knob]]\ncc = 1\nparam = "tempo"\n', 4, "knob[0].param", "'tempo' is not a parameter"),
    ('name = "x"\n[[button]]\nnote = 1\nparam = "temperature"\n', 4, "button[0].param",
     "a button drives toggle, choice, trigger"),
    ('name = "x"\n[[button]]\nnote = 1\nparam = "mute_1"\nmode = "latch"\n', 5, "button[0].mode",
     "'latch' is not one of"),
    ('name = "x"\n[[button]]\nnote = 1\ncc = 2\nparam = "mute_1"\n', 2, "button[0]", "exactly one of cc or note"),
    ('name = "x"\n[[button]]\nnote = 128\nparam = "mute_1"\n', 3, "button[0].note", "out of range 0..127"),
    ('name = "x"\n[[button]]\nnote = 1\nparam = "mute_1"\ncolour = 2\n', 5, "button[0].colour", "unknown key"),
    ('name = "x"\nbogus = 1\n', 2, "bogus", "unknown key"),
    ('channel = 1\n', 1, "name", "non-empty string"),
    ('name = "x"\nprogram_change = "temperature"\n', 2, "program_change", "not an integer parameter"),
    ('name = "x"\n[[knob]]\ncc = 3\nparam = "top_p"\n[[button]]\ncc = 3\nparam = "mute_1"\n', 6,
     "button[0].cc", "already bound by knob[0]"),
    ('name = "x"\nknob = 3\n', 2, "knob", "array of tables"),
]


@pytest.mark.parametrize("text, line, field, problem", BAD_MAPS)
def test_loader_errors_name_file_line_and_field(tmp_path, text, line, field, problem):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ControllerMapError) as e:
        load_map(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: line {line}: {field}: "), msg
    assert problem in msg


def test_loader_reports_toml_syntax_errors_with_position(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text('name = "x\n')
    with pytest.raises(ControllerMapError, match=r"broken.toml: .*line 1"):
        load_map(path)


def test_dump_is_loadable_text():
    m = ControllerMap(name='quote " and \\ backslash', channel=2)
    assert parse_map(dump_map(m)) == m


def test_learn_binding_rules():
    base = ControllerMap(name="t", channel=0)
    m = learn_binding(base, "temperature", cc(20, 5))
    assert [(k.cc, k.param) for k in m.knobs] == [(20, "temperature")]
    m = learn_binding(m, "mute_2", cc(20, 127))  # the same control is rebound, now a button
    assert m.knobs == () and [(b.cc, b.param, b.mode) for b in m.buttons] == [(20, "mute_2", "toggle")]
    m = learn_binding(m, "reseed", note(36))
    assert (m.buttons[-1].note, m.buttons[-1].mode) == (36, "momentary")
    with pytest.raises(LearnError, match="move a knob or fader"):
        learn_binding(m, "top_p", note(37))
    with pytest.raises(LearnError, match="not a control movement"):
        learn_binding(m, "top_p", cc(123, 0))
    on_ch1 = ControllerMap(name="t", channel=1)
    assert learn_binding(on_ch1, "top_k", cc(5, 1, channel=3)).knobs[0].channel == 3
    assert learn_binding(on_ch1, "top_k", cc(5, 1, channel=1)).knobs[0].channel is None


def test_learn_writes_the_map_from_a_port(tmp_path):
    path = tmp_path / "mine.toml"
    port = DummyMidiInput()
    port.feed([0xF8])  # clock: not a control movement
    port.feed([0x80, 60, 0])  # note off: neither
    port.feed([0xB1, 21, 90])  # CC 21 on channel 2
    result = learn("top_p", path, port=port, timeout_s=2.0)
    assert result is not None
    m = load_map(path)
    assert [(k.cc, k.param) for k in m.knobs] == [(21, "top_p")]
    assert MidiMapper(m).handle(cc(21, 127, channel=2))[0] == ControlEvent("top_p", 1.0, "set", "midi:Learned")
    assert learn("top_k", path, port=DummyMidiInput(), timeout_s=0.05) is None


def test_every_shipped_map_has_a_repetition_knob():
    for path in preset_paths():
        cmap = load_map(path)
        assert any(k.param == "repetition" for k in cmap.knobs), path.name
