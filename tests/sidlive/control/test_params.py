"""The parameter registry, ControlState snapshots and the Controls hand-over."""
from __future__ import annotations

import threading

import pytest

from sidlive.control.params import (CURVES, KINDS, PARAMS, TARGETS, ControlError, ControlEvent, Controls,
                                    ControlState, Update, describe, param)

REQUIRED = {
    # name: (kind, target, rollback)
    "temperature": ("continuous", "generator", True),
    "top_p": ("continuous", "generator", True),
    "top_k": ("integer", "generator", True),
    "repetition": ("continuous", "generator", True),
    "lookahead_frames": ("integer", "generator", False),
    "volume_db": ("continuous", "renderer", False),
    "composer": ("integer", "generator", True),
    "reseed": ("trigger", "generator", True),
    "mute_1": ("toggle", "renderer", False), "mute_2": ("toggle", "renderer", False),
    "mute_3": ("toggle", "renderer", False), "solo_1": ("toggle", "renderer", False),
    "solo_2": ("toggle", "renderer", False), "solo_3": ("toggle", "renderer", False),
    "capture_loop": ("trigger", "loops", False),
    "next_loop": ("trigger", "loops", True), "prev_loop": ("trigger", "loops", True),
    "loop": ("integer", "loops", True),
    "loop_mode": ("choice", "loops", True),
    "panic": ("trigger", "renderer", True),
    "keyboard": ("toggle", "daemon", False),
    "fx_bypass": ("toggle", "fx", False),
    **{f"fx_{kind}_{key}": ("continuous", "fx", False) for kind, keys in {
        "reverb": ("size", "damp", "mix"), "delay": ("time_ms", "feedback", "mix"),
        "chorus": ("depth", "feedback", "mix"), "eq": ("freq_hz", "q", "gain_db"),
        "filter": ("cutoff_hz", "q")}.items() for key in keys},
}


def test_registry_has_every_parameter_with_its_role():
    assert set(PARAMS) == set(REQUIRED)
    for name, (kind, target, rollback) in REQUIRED.items():
        p = PARAMS[name]
        assert (p.kind, p.target, p.rollback) == (kind, target, rollback), name
        assert p.kind in KINDS and p.target in TARGETS and p.curve in CURVES
    assert (PARAMS["temperature"].lo, PARAMS["temperature"].hi) == (0.1, 2.0)
    assert PARAMS["lookahead_frames"].default == 3 and PARAMS["lookahead_frames"].unit == "frames"
    assert PARAMS["loop_mode"].choices == ("prime", "call_response")
    for p in PARAMS.values():  # every default is valid
        assert p.validate(p.default) == p.default


@pytest.mark.parametrize("name, value, fragment", [
    ("temperature", 3.0, "temperature: 3.0 is out of range 0.1..2"),
    ("temperature", float("nan"), "temperature: nan is out of range"),
    ("top_p", "lots", "top_p: 'lots' is out of range 0.05..1"),
    ("top_k", 2.5, "top_k: 2.5 is not a whole number"),
    ("lookahead_frames", 0, "lookahead_frames: 0 is out of range 1..25 frames"),
    ("volume_db", True, "volume_db: True is out of range -48..6 dB"),
    ("mute_1", 2, "mute_1: 2 is out of range 0 | 1"),
    ("loop_mode", "jam", "loop_mode: 'jam' is out of range prime | call_response"),
    ("loop_mode", 2, "loop_mode: 2 is out of range"),
    ("reseed", -1, "reseed: a trigger's count must be an int >= 0"),
])
def test_validation_errors_name_parameter_value_and_range(name, value, fragment):
    with pytest.raises(ControlError) as e:
        PARAMS[name].validate(value)
    assert fragment in str(e.value)


def test_validation_coerces_accepted_forms():
    assert PARAMS["top_k"].validate(12.0) == 12 and isinstance(PARAMS["top_k"].validate(12.0), int)
    assert PARAMS["temperature"].validate("0.5") == 0.5
    assert PARAMS["mute_2"].validate("on") is True and PARAMS["mute_2"].validate(0) is False
    assert PARAMS["loop_mode"].validate(1) == "call_response"


def test_unknown_parameter():
    with pytest.raises(ControlError, match="unknown parameter 'tempo'"):
        param("tempo")
    with pytest.raises(ControlError, match="unknown parameter"):
        ControlState({"tempo": 1})


def test_state_is_immutable_and_replace_validates():
    s = ControlState()
    with pytest.raises(AttributeError):
        s.temperature = 1.0
    t = s.replace(temperature=1.5)
    assert s.temperature == 1.0 and t.temperature == 1.5 and t["temperature"] == 1.5
    with pytest.raises(ControlError, match="temperature"):
        s.replace(temperature=5)
    assert s == ControlState() and s != t and hash(s) == hash(ControlState())


def test_voice_on_from_mute_and_solo_and_gain():
    s = ControlState()
    assert s.voice_on == (True, True, True) and s.gain == pytest.approx(1.0)
    assert s.replace(mute_2=True).voice_on == (True, False, True)
    assert s.replace(solo_3=True).voice_on == (False, False, True)
    assert s.replace(solo_1=True, solo_3=True, mute_3=True).voice_on == (True, False, False)
    assert s.replace(volume_db=-6.0).gain == pytest.approx(0.501187, rel=1e-5)


def test_apply_ops():
    s = ControlState()
    s1, v = s.apply(ControlEvent("mute_1", op="toggle"))
    assert v is True and s1.mute_1 and not s.mute_1
    s2, v = s1.apply(ControlEvent("loop_mode", op="toggle"))
    assert v == "call_response"
    s3, v = s2.apply(ControlEvent("reseed", op="trigger"))
    s3, v = s3.apply(ControlEvent("reseed"))  # set without a value fires too
    assert v == 2 and s3.reseed == 2
    same, _ = s3.apply(ControlEvent("reseed", 0))  # a button release: nothing fires
    assert same is s3
    same, _ = s3.apply(ControlEvent("temperature", s3.temperature))
    assert same is s3  # no change, no new snapshot
    with pytest.raises(ControlError, match="cannot toggle a continuous"):
        s.apply(ControlEvent("temperature", op="toggle"))
    with pytest.raises(ControlError, match="not a trigger"):
        s.apply(ControlEvent("mute_1", op="trigger"))
    with pytest.raises(ControlError, match="unknown op"):
        s.apply(ControlEvent("mute_1", 1, op="nudge"))


@pytest.mark.parametrize("curve", CURVES)
def test_curves_span_the_range_monotonically_and_invert(curve):
    p = PARAMS["temperature"]
    xs = [i / 20 for i in range(21)]
    values = [p.from_unit(x, curve=curve) for x in xs]
    assert values[0] == pytest.approx(0.1) and values[-1] == pytest.approx(2.0)
    assert all(a < b for a, b in zip(values, values[1:]))
    for x, v in zip(xs, values):
        assert p.to_unit(v, curve=curve) == pytest.approx(x, abs=1e-9)
    sub = [p.from_unit(x, 0.5, 1.0, curve) for x in (0.0, 1.0)]
    assert sub == pytest.approx([0.5, 1.0])


def test_exp_and_log_curves_bend_opposite_ways():
    p = PARAMS["top_p"]
    mid = {c: p.from_unit(0.5, curve=c) for c in CURVES}
    assert mid["exp"] < mid["linear"] < mid["log"]


def test_from_unit_for_integer_choice_and_toggle():
    assert PARAMS["top_k"].from_unit(1.0) == 256 and PARAMS["top_k"].from_unit(0.0) == 0
    assert isinstance(PARAMS["composer"].from_unit(0.37), int)
    assert PARAMS["loop_mode"].from_unit(0.2) == "prime"
    assert PARAMS["loop_mode"].from_unit(1.0) == "call_response"
    assert PARAMS["mute_1"].from_unit(0.6) is True
    with pytest.raises(ControlError, match="no knob range"):
        PARAMS["reseed"].from_unit(0.5)


def test_controls_apply_swaps_one_reference_and_reports():
    c = Controls()
    before = c.state
    u = c.apply([ControlEvent("temperature", 1.2), ControlEvent("mute_3", op="toggle"),
                 ControlEvent("top_p", 7), "not an event"])
    assert isinstance(u, Update)
    assert u.changes == [("temperature", 1.2), ("mute_3", True)]
    assert len(u.errors) == 2 and "top_p: 7 is out of range" in u.errors[0]
    assert c.rejected == 2
    assert u.rollback and u.targets == {"generator", "renderer"}
    assert c.state is not before and before.temperature == 1.0  # the old snapshot is untouched
    u2 = c.apply([ControlEvent("volume_db", -3.0)])
    assert not u2.rollback and u2.targets == {"renderer"}
    assert c.apply([]).changes == [] and c.state.volume_db == -3.0


def test_post_from_many_threads_then_apply_pending():
    c = Controls()

    def spam():
        for _ in range(500):
            c.post(ControlEvent("reseed", op="trigger"))

    threads = [threading.Thread(target=spam) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = 0
    while True:
        u = c.apply_pending(max_events=300)
        if not u.changes:
            break
        total += len(u.changes)
    assert total == 2000 and c.state.reseed == 2000


def test_describe_lists_every_parameter():
    rows = describe()
    assert [r["name"] for r in rows] == list(PARAMS)
    assert all(r["doc"] and r["range"] for r in rows)
