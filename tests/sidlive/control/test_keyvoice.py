"""The keyboard-played voice: notes -> registers, the controller map's [keyboard], the
live overlay and forcing, and the model jamming around it."""
from __future__ import annotations

import json
import re

import mido
import pytest

from sidlive.control.keyvoice import KeyboardConfig, KeyboardConfigError, KeyVoice, NoteEvent, frames_for, note_event
from sidlive.frames import freq_reg_to_note, note_to_freq_reg
from sidlive.control.maps import ControllerMapError, MidiMapper, dump_map, parse_map
from sidlive.control.osc import OscError, message_to_event

MAP = 'name = "k"\nchannel = 1\n[[button]]\nnote = 36\nparam = "reseed"\n\n[keyboard]\nchannel = 2\nvoice = 3\n'


def test_note_to_pal_frequency_register():
    assert note_to_freq_reg(69) == round(440 * 2 ** 24 / 985_248) == 7493
    assert note_to_freq_reg(57) == round(220 * 2 ** 24 / 985_248)
    assert note_to_freq_reg(127) == 0xFFFF        # clamped: above the SID's 3.9 kHz top
    assert abs(freq_reg_to_note(note_to_freq_reg(60)) - 60) < 0.01 and freq_reg_to_note(0) == float("-inf")
    assert list(note_to_freq_reg([57, 69])) == [note_to_freq_reg(57), 7493]
    assert note_to_freq_reg(0) == round(8.1758 * 2 ** 24 / 985_248)


def test_attack_retrigger_legato_and_release():
    kv = KeyVoice(KeyboardConfig(channel=1, voice=2, waveform="saw", attack=1, decay=2, release=3,
                                 pulse_width=0.25))
    b = 7
    assert kv.mask.nonzero()[0].tolist() == list(range(7, 14))
    kv.note_on(45, 127)
    s = kv.snapshot()
    assert s.first is s.steady and s.note == 45
    freq = note_to_freq_reg(45)
    assert list(s.steady[b:b + 7]) == [freq & 255, freq >> 8, 0x00, 0x04, 0x21, 0x12, 0xF3]
    assert not s.steady[~kv.mask].any()
    kv.note_on(48, 64)                              # struck while the gate is on: a new attack
    s = kv.snapshot()
    assert s.first[b + 4] == 0x20 and s.steady[b + 4] == 0x21          # gate off for one frame
    assert s.first[b] == note_to_freq_reg(48) & 255                    # already at the new pitch
    assert s.steady[b + 6] >> 4 == round(64 / 127 * 15)                # velocity -> sustain
    kv.note_off(48)                                 # back to 45, still held: legato
    s = kv.snapshot()
    assert s.note == 45 and s.first is s.steady and s.steady[b + 4] == 0x21
    kv.note_off(40)                                 # not held: nothing
    assert kv.snapshot().note == 45
    kv.note_off(45)
    s = kv.snapshot()
    assert s.note is None and s.steady[b + 4] == 0x20 and s.steady[b] == freq & 255   # release at pitch
    kv.note_on(50, 100)                             # gate was off: no gate-off frame needed
    assert kv.snapshot().first[b + 4] == 0x21
    kv.note_on(52, 0)                               # velocity 0 is a note off (not held: nothing)
    kv.all_off()
    assert kv.snapshot().steady[b + 4] == 0x20 and kv.notes_played == 3


def test_fixed_sustain_and_transpose():
    kv = KeyVoice(KeyboardConfig(channel=1, voice=1, velocity="none", sustain=7, transpose_semitones=-12))
    kv.note_on(69, 10)
    s = kv.snapshot()
    assert s.steady[6] >> 4 == 7 and int(s.steady[0]) | int(s.steady[1]) << 8 == note_to_freq_reg(57)


@pytest.mark.parametrize("kw, msg", [
    ({"voice": 4}, "keyboard.voice: 4 is out of range 1..3"),
    ({"channel": 0}, "keyboard.channel: 0 is out of range 1..16"),
    ({"attack": 16}, "keyboard.attack: 16 is out of range 0..15"),
    ({"pulse_width": 1.5}, "keyboard.pulse_width: 1.5 is out of range 0.0..1.0"),
    ({"waveform": "square"}, "keyboard.waveform: 'square' is not one of triangle, saw, pulse, noise"),
    ({"velocity": "volume"}, "keyboard.velocity: 'volume' is not one of sustain, none"),
    ({"transpose_semitones": 2.5}, "keyboard.transpose_semitones: 2.5 is not a whole number"),
])
def test_bad_settings_name_field_and_range(kw, msg):
    with pytest.raises(KeyboardConfigError, match=msg.replace(".", r"\.").replace("(", r"\(")):
        KeyboardConfig(**kw)


def test_offline_frames_match_the_live_overlay():
    cfg = KeyboardConfig(channel=1, voice=1)
    mask, fr = frames_for(cfg, [(2, "on", 40, 100), (5, "on", 42, 100), (8, "off", 42, 0), (8, "off", 40, 0)], 10)
    gate = fr[:, 4] & 1
    assert gate.tolist() == [0, 0, 1, 1, 1, 0, 1, 1, 0, 0]        # frame 5: the retrigger's gate-off frame
    assert (fr[5, :2] == fr[6, :2]).all() and fr[5, 0] == note_to_freq_reg(42) & 255
    assert mask.sum() == 7


def test_controller_map_keyboard_table_and_mapper():
    m = parse_map(MAP)
    assert m.keyboard == KeyboardConfig(channel=2, voice=3)
    assert parse_map(dump_map(m)) == m
    mapper = MidiMapper(m)
    assert mapper.handle(mido.Message("note_on", channel=1, note=45, velocity=90)) == [NoteEvent(45, 90, "midi:k")]
    assert mapper.handle(mido.Message("note_off", channel=1, note=45)) == [NoteEvent(45, 0, "midi:k")]
    assert mapper.handle(mido.Message("note_on", channel=0, note=36, velocity=90))[0].name == "reseed"
    assert mapper.handle(mido.Message("note_on", channel=2, note=45, velocity=90)) == []


@pytest.mark.parametrize("text, line, problem", [
    (MAP.replace("voice = 3", "voice = 5"), 9, "keyboard.voice: 5 is out of range 1..3"),
    (MAP + "octave = 1\n", 10, "keyboard.octave: unknown key"),
    (MAP.replace("channel = 2\n", ""), 7, "keyboard: missing channel"),
    (MAP.replace("channel = 2", "channel = 1"), 4, "button[0].note: note 36 on channel 1 is the keyboard's"),
    ('name = "k"\nkeyboard = 3\n', 2, "keyboard: must be a table"),
])
def test_bad_keyboard_tables_name_line_and_field(text, line, problem):
    with pytest.raises(ControllerMapError, match=rf"^m\.toml: line {line}: {re.escape(problem)}"):
        parse_map(text, "m.toml")


def test_osc_note():
    assert message_to_event("/sidlive/note", (45, 100)) == NoteEvent(45, 100, "osc")
    for args, msg in (((45,), "note takes a note"), ((128, 1), "note: 128 is out of range 0..127"),
                      ((1, 1.5), "velocity: 1.5 is out of range")):
        with pytest.raises(OscError, match=msg):
            message_to_event("/sidlive/note", args)
    with pytest.raises(ValueError, match="velocity: -1 is out of range 0..127"):
        note_event(1, -1)


def test_live_keyboard_voice_is_played_forced_and_recorded(model_path, tmp_path, wait):
    """Notes into a live session: the take holds the keyboard voice's registers verbatim
    from the frame the note was heard, the other voices stay the model's, and the
    generator forces the same registers."""
    from sidlive.frames import load_regs
    from tests.sidlive.live.test_daemon import _daemon

    cmap = tmp_path / "kb.toml"
    cmap.write_text(MAP.replace("voice = 3", "voice = 2\nwaveform = \"saw\"\nattack = 2"))
    d, msgs = _daemon(model_path, tmp_path, controller=cmap, midi="dummy", record=tmp_path / "set.wav")
    d.start()
    try:
        assert wait(lambda: d.audio.frames_played > 20, timeout_s=15)
        d.hub.midi.feed([0x91, 45, 100])                 # channel 2: the keyboard
        assert wait(lambda: d.hub.key_events, timeout_s=5)
        n0 = d.audio.frames_played
        assert wait(lambda: d.audio.frames_played > n0 + 30, timeout_s=15)
        d.hub.midi.feed([0x91, 48, 120])                 # retrigger
        assert wait(lambda: len(d.hub.key_events) >= 2, timeout_s=5)
        n0 = d.audio.frames_played
        assert wait(lambda: d.audio.frames_played > n0 + 20, timeout_s=15)
        d.hub.midi.feed([0x81, 48, 0])                   # legato back to 45
        d.hub.midi.feed([0x81, 45, 0])                   # release
        assert wait(lambda: len(d.hub.key_events) >= 3, timeout_s=5)
        assert wait(lambda: d.audio.frames_played > 150, timeout_s=20)
        forced = d.genthread.gen.settings
    finally:
        st = d.stop()
    assert st["keyboard"] == {"voice": 2, "channel": 2, "notes": 2, "dropped": 0}
    lat = st["latency"]
    assert lat["keyboard_notes"] >= 3 and lat["keyboard_note_ms_p95"] is not None
    regs = load_regs(tmp_path / "set.regs").regs
    freq = regs[:, 7].astype(int) | regs[:, 8].astype(int) << 8
    ctrl = regs[:, 11]
    heard = [ev[5] for ev in d.hub.key_events]           # sample where each snapshot's first frame starts
    from sidlive.audio.renderer import frame_sample_boundary
    f_of = [next(k for k in range(len(regs) + 1) if frame_sample_boundary(k, 48_000, 19_656, 985_248) >= h)
            for h in heard]
    a, b, c = f_of[0], f_of[1], f_of[-1]
    assert (freq[a:b] == note_to_freq_reg(45)).all() and (ctrl[a:b] == 0x21).all()
    assert ctrl[b] == 0x20 and freq[b] == note_to_freq_reg(48)          # gate-off frame, new pitch
    assert (ctrl[b + 1:c] == 0x21).all() and (regs[b + 1:b + 20, 13] >> 4 == round(120 / 127 * 15)).all()
    assert (ctrl[c:] == 0x20).all() and (freq[c:] == note_to_freq_reg(45)).all()   # released at the held pitch
    assert (regs[a:, 12] == 0x29).all() and (regs[a:b, 13] >> 4 == round(100 / 127 * 15)).all()
    assert forced["forced"][7:14].all() and not forced["forced"][:7].any()
    log = [json.loads(x) for x in (tmp_path / "set.controls.jsonl").read_text().splitlines()]
    assert [r["value"] for r in log if r["control"] == "note"][:2] == [{"note": 45, "velocity": 100},
                                                                        {"note": 48, "velocity": 120}]


def test_jam_report_forces_the_bassline_verbatim(model_path):
    from training.jam import bassline_events, main, run_jam
    ev = bassline_events(100)
    assert ev[0] == (0, "on", 33, 100) and ev[1] == (9, "off", 33, 0) and ev[2] == (12, "on", 45, 120)
    rep = run_jam(model_path, n=2, seconds=3.0, voice=2)
    assert rep["forced_verbatim"] is True
    assert rep["keyboard_voice_onsets_per_s"] > 3.5          # 4.2 notes/s, less the first
    o = rep["other_voices_onsets_per_s"]
    assert o["free"] >= 0 and o["jam"] >= 0 and set(rep["silent_share"]) == {"free", "jam"}
    assert main([str(model_path), "--n", "1", "--seconds", "1", "--json"]) == 0
    assert main([str(model_path) + ".missing", "--n", "1"]) == 1


def test_keyboard_off_hands_the_voice_back_and_panic_releases(model_path, tmp_path, wait):
    from sidlive.control.params import ControlEvent
    from tests.sidlive.live.test_daemon import _daemon

    cmap = tmp_path / "kb.toml"
    cmap.write_text(MAP)
    d, msgs = _daemon(model_path, tmp_path, controller=cmap, midi="dummy")
    d.start()
    try:
        assert d.audio.keys is None and d.genthread.forced is None     # free until the first note
        d.post(NoteEvent(60, 100, "osc"))
        assert wait(lambda: d.audio.keys is not None and d.audio.keys.note == 60)
        assert wait(lambda: d.genthread._forced_applied is d.audio.keys)
        d.post(ControlEvent("panic", op="trigger"))
        assert wait(lambda: d.audio.keys is not None and d.audio.keys.note is None)
        d.post(ControlEvent("keyboard", False))
        assert wait(lambda: d.audio.keys is None and d.genthread.forced is None)
        d.post(NoteEvent(62, 100, "osc"))
        assert wait(lambda: d.hub.notes_dropped == 1)
        d.post(ControlEvent("keyboard", True))
        assert wait(lambda: d.audio.keys is not None and d.audio.keys.note is None)
    finally:
        st = d.stop()
    assert st["keyboard"]["notes"] == 1 and st["keyboard"]["dropped"] == 1
