"""`sidlive generate` (sidlive/live/offline.py main) on a tiny model."""
from __future__ import annotations

import numpy as np
import pytest

from engine.generator import Generator
from sidlive.audio.wav import read_wav
from sidlive.c64.psid import build_psid
from sidlive.commands import generate as gen_cli
from sidlive.control.params import SAMPLING_DEFAULTS
from sidlive.frames import Frames, load, save
from sidlive.live import offline
from tests.conftest import walk

# init: LDA #0 ; STA $FB ; LDA #$0F ; STA $D418 ; RTS
# play: INC $FB ; LDA $FB ; STA $D400 ; RTS  (a counter in voice 1's frequency low byte)
INIT = bytes([0xA9, 0x00, 0x85, 0xFB, 0xA9, 0x0F, 0x8D, 0x18, 0xD4, 0x60])
PLAY = bytes([0xE6, 0xFB, 0xA5, 0xFB, 0x8D, 0x00, 0xD4, 0x60])


def test_regs_txt_and_wav_outputs(tmp_path, tiny_np, capsys):
    prompt = tmp_path / "p.regs"
    save(Frames(regs=walk(300, seed=2)), prompt)
    out = tmp_path / "o.regs"
    args = ["--model", str(tiny_np), "--frames", "40", "--temp", "0.9", "--top-k", "20", "--seed", "7391738265",
            "--prompt", str(prompt), "--prompt-seconds", "2", "--composer", "Rob Hubbard", "-o", str(out)]
    assert gen_cli.main(args) == 0
    assert "wrote" in capsys.readouterr().out
    got = load(out)
    assert len(got) == 40 and got.extra["seed"] == 7391738265 and got.author == "Rob Hubbard"
    g = Generator(tiny_np, temperature=0.9, top_k=20, top_p=SAMPLING_DEFAULTS["top_p"], seed=7391738265,
                  composer="Rob Hubbard", log=None)   # top_p: the default every command shares
    g.prime(load(prompt).regs[:100])  # 2 s = 100 frames
    np.testing.assert_array_equal(got.regs, Frames(regs=g.generate(40)).regs)
    assert gen_cli.main(args[:-1] + [str(tmp_path / "o.txt"), "--with-prompt"]) == 0
    both = load(tmp_path / "o.txt")
    assert len(both) == 140
    np.testing.assert_array_equal(both.regs[100:], got.regs)
    wav = tmp_path / "o.wav"
    assert gen_cli.main(["--model", str(tiny_np), "--frames", "25", "-o", str(wav)]) == 0
    samples, rate = read_wav(wav)
    assert rate == 48_000 and abs(len(samples) - 25 * 48_000 / 50.1245) < 1000


def test_sid_prompt(tmp_path, tiny_np):
    sid = tmp_path / "counter.sid"
    sid.write_bytes(build_psid(INIT + PLAY, load_addr=0x1000, init_addr=0x1000, play_addr=0x1000 + len(INIT),
                               songs=1, start_song=1, speed_bits=0, title="Counter", author="Test",
                               released="2024"))
    out = tmp_path / "o.regs"
    assert gen_cli.main(["--model", str(tiny_np), "--frames", "10", "--prompt", str(sid), "--prompt-seconds", "1",
                         "--with-prompt", "-o", str(out)]) == 0
    fr = load(out)
    assert len(fr) == 50 + 10
    assert (np.diff(fr.regs[:50, 0].astype(int)) % 256 == 1).all()


@pytest.mark.parametrize("args,message", [
    (["--frames", "5", "-o", "x.regs"], "presets/models/default.sidm does not exist"),
    (["--model", "MODEL", "--frames", "5", "-o", "x.mp3"], "output extension '.mp3'"),
    (["--model", "MODEL", "--frames", "5", "--temp", "-1", "-o", "x.regs"], "temperature must be"),
    (["--model", "MODEL", "--frames", "5", "--composer", "Nobody", "-o", "x.regs"],
     "'Nobody' is not one of the model's composers: any, Rob Hubbard"),
    (["--model", "MODEL", "--frames", "5", "--prompt", "nope.txt", "-o", "x.regs"], "nope.txt: no such prompt file"),
    (["--model", "MODEL", "--frames", "5", "--prompt", "p.wav", "-o", "x.regs"], "prompt extension '.wav'"),
    (["--model", "bad.sidm", "--frames", "5", "-o", "x.regs"], "bad.sidm: field 'magic' at offset 0"),
])
def test_errors_name_the_problem(tmp_path, tiny_np, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(offline, "DEFAULT_MODEL", tmp_path / "presets" / "models" / "default.sidm")
    (tmp_path / "bad.sidm").write_bytes(b"JUNK" + bytes(40))
    (tmp_path / "p.wav").write_bytes(b"")
    args = [str(tiny_np) if a == "MODEL" else a for a in args]
    assert gen_cli.main(args) == 1
    assert message in capsys.readouterr().err


def test_generate_and_live_sample_with_the_same_defaults(tiny_np, tmp_path, monkeypatch):
    from sidlive.control.params import ControlState
    seen = {}

    def spy(out_path, **kw):
        seen.update(kw)
        raise ValueError("stop here")
    monkeypatch.setattr(gen_cli, "generate_file", spy)
    assert gen_cli.main(["--model", str(tiny_np), "-o", str(tmp_path / "x.regs")]) == 1
    live = ControlState()
    assert {k: seen[k] for k in ("temperature", "top_k", "top_p", "repetition")} == SAMPLING_DEFAULTS == \
        {"temperature": live.temperature, "top_k": live.top_k, "top_p": live.top_p, "repetition": live.repetition}
