"""Piano-roll data: pitch from the frequency registers at the PAL clock, waveform, gate,
onsets, the envelope's release tail, the filter cutoff; pieces of a growing run join exactly."""
from __future__ import annotations

import numpy as np
import pytest

from sidlive.frames import NTSC_CLOCK_HZ, PAL_CLOCK_HZ, load, note_to_freq_reg
from sidlive.paths import LOOPS_DIR
from sidlive.studio.roll import pitch_centi, roll_data, roll_piece


def test_pitch_is_the_register_at_the_pal_clock():
    # f = reg * 985248 / 2^24: 7493 -> 440.03 Hz (A4), 7938 -> 466.1 Hz (A#4); 0 -> no pitch
    assert pitch_centi(np.array([7493, 7938, 0])).tolist() == [6900, 7000, -1]
    reg = note_to_freq_reg(np.arange(24, 100))
    assert np.all(np.abs(pitch_centi(reg) - np.arange(24, 100) * 100) <= 8)   # rounding of the register only
    ntsc = pitch_centi(np.array([7493]), NTSC_CLOCK_HZ)[0]
    assert ntsc == round((69 + 12 * np.log2(7493 * NTSC_CLOCK_HZ / 2 ** 24 / 440)) * 100) and ntsc > 6900
    assert PAL_CLOCK_HZ == 985_248


def _note(regs, t0, t1, voice, reg, ctrl, ad=0x00, sr=0xF0):
    b = 7 * (voice - 1)
    regs[t0:t1, b], regs[t0:t1, b + 1] = reg & 0xFF, reg >> 8
    regs[t0:t1, b + 4], regs[t0:t1, b + 5], regs[t0:t1, b + 6] = ctrl, ad, sr


def test_waveform_gate_onsets_release_and_cutoff():
    regs = np.zeros((60, 25), np.uint8)
    _note(regs, 0, 10, 1, 7493, 0x41, sr=0xF8)       # pulse, gate on; release nibble 8 (300 ms)
    _note(regs, 10, 30, 1, 7493, 0x40, sr=0xF8)      # gate off: the release tail
    _note(regs, 5, 20, 2, 3746, 0x11)                # triangle, an octave lower
    _note(regs, 20, 25, 2, 3746, 0x10)
    _note(regs, 25, 30, 2, 3746, 0x11)               # a second onset
    _note(regs, 0, 60, 3, 1000, 0x89)                # noise with the test bit: silent
    regs[:, 21], regs[:, 22], regs[:, 23] = 5, 0x80, 0x31   # cutoff 0x80 << 3 | 5 = 1029, voice 1 routed
    r = roll_data(regs)
    v1, v2, v3 = r["voices"]
    assert v1["pitch"][0] == 6900 and v1["wave"][0] == 4 and v1["gate"][:11] == [1] * 10 + [0]
    assert v1["onsets"] == [0] and v2["onsets"] == [5, 25] and v3["onsets"] == [0]   # gated, though silent
    assert v2["pitch"][5] == 5700 and v2["wave"][5] == 1
    assert v3["wave"] == [0] * 60                    # the test bit silences the voice
    assert v1["level"][9] == 15                      # sustain 15
    tail = v1["level"][10:30]
    assert tail[0] > 0 and all(a >= b for a, b in zip(tail, tail[1:])) and tail[-1] < tail[0]
    assert r["cutoff"][0] == 1029 and r["route"][0] == 1 and r["resonance"][0] == 3


def test_pieces_join_exactly():
    regs = load(LOOPS_DIR / "dojo.regs").regs
    whole = roll_data(regs)
    first = roll_piece(regs, 0, 77)
    second = roll_data(regs[77:], start=77, before=regs[76], state=first["state"])
    assert roll_piece(regs, 77, len(regs)) == second
    for i in range(3):
        for k in ("pitch", "wave", "gate", "level"):
            assert first["voices"][i][k] + second["voices"][i][k] == whole["voices"][i][k]
        assert first["voices"][i]["onsets"] + second["voices"][i]["onsets"] == whole["voices"][i]["onsets"]
    assert first["cutoff"] + second["cutoff"] == whole["cutoff"]


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="roll frames"):
        roll_data(np.zeros((3, 24), np.uint8))
    with pytest.raises(ValueError, match="clock must be one of PAL, NTSC"):
        roll_data(np.zeros((3, 25), np.uint8), clock="SECAM")
    with pytest.raises(ValueError, match=r"frames 5\.\.9 are outside 0\.\.3"):
        roll_piece(np.zeros((3, 25), np.uint8), 5, 9)
