"""Hostile TOML (controller maps with [keyboard], effects presets): wrong types are a
one-line error naming the file, line and field; nesting too deep for the parser is an
error of the file's own type, not a RecursionError; `live` reports both."""
from __future__ import annotations

import pytest

from sidlive.audio.fx import FxError, parse_chain
from sidlive.commands import live
from sidlive.control.maps import ControllerMapError, parse_map
from sidlive.tomldoc import parse_toml

MAP = 'name = "k"\n[keyboard]\nchannel = 2\n'
FX = 'name = "f"\n[[effect]]\ntype = "delay"\n'
DEEP = "x = " + "[" * 3000 + "]" * 3000 + "\n"


@pytest.mark.parametrize("key, value", [("waveform", '["pulse"]'), ("velocity", '["none"]'),
                                        ("waveform", "{ a = 1 }"), ("velocity", "3")])
def test_keyboard_fields_of_the_wrong_type(key, value):
    with pytest.raises(ControllerMapError, match=rf"k.toml: line 4: keyboard.{key}: .* is not one of") as e:
        parse_map(MAP + f"{key} = {value}\n", "k.toml")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("value", ['["delay"]', "{ kind = 1 }", "5"])
def test_effect_type_of_the_wrong_type(value):
    with pytest.raises(FxError, match=r"f.toml: line 3: effect\[0\].type: .* is not one of reverb"):
        parse_chain(FX.replace('"delay"', value), "f.toml")


def test_nesting_too_deep_is_an_error_of_the_files_type():
    with pytest.raises(ControllerMapError, match=r"deep.toml: nested too deeply"):
        parse_map(DEEP, "deep.toml")
    with pytest.raises(FxError, match=r"deep.toml: nested too deeply"):
        parse_chain(DEEP, "deep.toml")
    with pytest.raises(KeyError, match=r"deep.toml: nested too deeply"):
        parse_toml(DEEP, "deep.toml", KeyError)


def test_live_reports_a_deep_controller_map_and_fx_preset(tmp_path, capsys, tiny_np):
    deep = tmp_path / "deep.toml"
    deep.write_text(DEEP)
    common = ["--model", str(tiny_np), "--headless", "--audio", "null", "--no-osc", "--seconds", "0.1"]
    assert live.main(common + ["--midi", "dummy", "--controller", str(deep)]) == live.SETUP_EXIT
    assert live.main(common + ["--midi", "none", "--fx", str(deep)]) == live.SETUP_EXIT
    err = [line for line in capsys.readouterr().err.splitlines() if "deep.toml" in line]
    assert len(err) == 2 and all("nested too deeply" in line for line in err), err


def test_live_refuses_a_controller_map_without_midi(tmp_path, capsys, tiny_np):
    good = tmp_path / "map.toml"
    good.write_text('name = "m"\n')
    argv = ["--model", str(tiny_np), "--headless", "--audio", "null", "--no-osc", "--seconds", "0.1",
            "--midi", "none", "--controller", str(good)]
    assert live.main(argv) == live.SETUP_EXIT
    err = capsys.readouterr().err
    assert "--controller" in err and "map.toml" in err and "--midi none" in err
