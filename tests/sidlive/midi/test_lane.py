"""The audio thread's MIDI lane: mute/solo at once, the same as the control path."""
import random
import time

import pytest

from sidlive.control.maps import MidiMapper, parse_map
from sidlive.control.params import Controls
from sidlive.live.callback import LANE_SEQ
from sidlive.midi.inputs import DummyMidiInput
from sidlive.midi.lane import MidiLane, lane_table, voices_on

MAP = """
name = "lane test"
channel = 1
[[knob]]
cc = 20
param = "solo_3"
[[knob]]
cc = 21
param = "temperature"
[[button]]
cc = 30
param = "mute_1"
mode = "toggle"
[[button]]
cc = 31
param = "mute_2"
mode = "momentary"
[[button]]
note = 40
param = "solo_1"
mode = "toggle"
[[button]]
note = 41
param = "mute_3"
channel = 3
mode = "momentary"
[[button]]
cc = 32
param = "reseed"
[keyboard]
channel = 2
voice = 1
"""


class Voices:
    """What the lane asks of the engine."""

    def __init__(self):
        self.on = (True, True, True)

    def lane_voices(self, on):
        self.on = tuple(on)


def _random_message(rng):
    kind = rng.random()
    ch = rng.choice([0, 0, 0, 1, 2, 5])
    if kind < 0.5:
        return [0xB0 | ch, rng.choice([20, 21, 30, 31, 32, 120, 7]), rng.choice([0, 1, 63, 64, 100, 127])]
    if kind < 0.9:
        return [rng.choice([0x80, 0x90]) | ch, rng.choice([40, 41, 42]), rng.choice([0, 1, 100])]
    return rng.choice([[0xC0, 3], [0xF8], [0xB0, 200, 1], [0xB0, 30], b"\x90\x28\x7f", [0x90, 40, 128]])


@pytest.mark.parametrize("seed", range(5))
def test_lane_agrees_with_mapper_and_controls_on_random_midi(seed):
    """Feed one random stream to both: after every message the lane's voices are the
    ControlState's voice_on that the control thread computes from the same messages."""
    rng = random.Random(seed)
    mapper = MidiMapper(parse_map(MAP, "lane.toml"))
    controls = Controls()
    port = DummyMidiInput(poll=True)
    lane = MidiLane(port, lane_table(mapper), controls.state)
    eng = Voices()
    for _ in range(600):
        port.feed(_random_message(rng))
        lane.pump(eng)
        for msg in port.drain():
            for ev in mapper.handle(msg):
                if hasattr(ev, "op"):
                    controls.post(ev)
        controls.apply_pending()
        assert voices_on(lane.flags) == controls.state.voice_on
        assert eng.on == controls.state.voice_on or lane.acted == 0
    assert lane.acted > 50 and lane.taken == 600


def test_table_follows_the_map_resolution():
    mapper = MidiMapper(parse_map(MAP, "lane.toml"))
    table = lane_table(mapper)
    keys = {(k >> 7, k & 0x7F) for k in table}
    assert (0xB0, 30) in keys and (0xB0, 31) in keys and (0xB0, 20) in keys
    assert (0xB0, 21) not in keys and (0xB0, 32) not in keys      # temperature, reseed: control thread
    assert (0x90, 40) in keys and (0x80, 40) in keys
    assert (0x91, 40) not in keys                                 # channel 2 is the keyboard
    assert (0x92, 41) in keys and (0x90, 41) not in keys          # bound on channel 3 only
    assert lane_table(None) == {}


def test_garbage_never_raises_and_still_reaches_the_control_thread():
    mapper = MidiMapper(parse_map(MAP, "lane.toml"))
    port = DummyMidiInput(poll=True)
    lane = MidiLane(port, lane_table(mapper))
    for junk in ([], [0xB0], "abc", [0xB0, -1, 5], [0xB0, 30, 300], [None, 1, 2], b"\xb0\x1e", [0xB0, 30, 127, 1]):
        port.feed(junk)
    lane.pump(Voices())
    assert lane.taken == 8 and lane.acted == 0 and port.pending() == 8
    assert port.drain() == [] and port.garbage == 8


def _daemon(model_path, tmp_path):
    from sidlive.live.daemon import LiveConfig, LiveDaemon
    m = tmp_path / "map.toml"
    m.write_text(MAP)
    cfg = LiveConfig(model=model_path, osc_port=None, controller=m, midi="dummy", audio="null", rt_priority=0,
                     record=tmp_path / "set.wav")
    return LiveDaemon(cfg, on_message=lambda s: None)


def test_mute_acts_in_the_audio_callback_and_the_state_follows(model_path, tmp_path, wait):
    """In a session the audio callback's lane mutes voice 1 (its event has no published
    state behind it), the control thread's state follows, the take logs the mute, and a
    mute from elsewhere (OSC/keys: a posted event) still arrives through the state."""
    from sidlive.control.params import ControlEvent
    d = _daemon(model_path, tmp_path)
    d.start()
    try:
        assert wait(lambda: d.audio.frames_played > 20, timeout_s=10)
        d.hub.midi.feed([0xB0, 30, 127])                       # toggle: mute voice 1
        assert wait(lambda: 1 in d.audio.renderer.muted_voices)
        assert wait(lambda: d.controls.state.mute_1)
        assert wait(lambda: any(e[1] == 2 and e[2] == 1 for e in d.hub.renderer_events))
        first = next(e for e in d.hub.renderer_events if e[1] == 2 and e[2] == 1)
        assert first[0] == LANE_SEQ and first[3] == 1
        d.hub.midi.feed([0xB0, 30, 0])                         # release of a toggle: nothing
        d.hub.midi.feed([0x90, 40, 100])                       # solo voice 1 (muted): only... none sounds
        assert wait(lambda: d.controls.state.solo_1)
        assert wait(lambda: d.audio.renderer.muted_voices == {1, 2, 3})
        d.post(ControlEvent("mute_1", False, source="test"))   # not MIDI: through the state
        assert wait(lambda: d.audio.renderer.muted_voices == {2, 3})
        assert wait(lambda: d.audio.lane.flags == [False, False, False, True, False, False])
        d.hub.midi.feed([0x90, 40, 100])                       # solo off again: all sound
        assert wait(lambda: d.audio.renderer.muted_voices == set())
        time.sleep(0.2)
        assert d.controls.state.voice_on == (True, True, True)
    finally:
        stats = d.stop()
    assert stats["ring_underruns"] == 0
    import json

    from sidlive.measure.replay import compare_take
    logged = [json.loads(line) for line in (tmp_path / "set.controls.jsonl").read_text().splitlines()]
    mutes = [r for r in logged if r.get("control") == "renderer.mute"]
    assert len(mutes) >= 6 and mutes[0]["value"]["seq"] == LANE_SEQ
    cmp = compare_take(tmp_path / "set")          # the lane's mutes replay onto the take
    assert cmp["live_vs_offline"]["max_abs"] <= max(4 * cmp["offline_vs_offline"]["max_abs"], 256)
