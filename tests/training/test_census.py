"""The technique census and loop-collapse detection on hand-built frame sequences."""
from __future__ import annotations

import math

import numpy as np
import pytest

from sidlive.frames import PAL_FRAME_RATE_HZ
from engine.silence import silent_frames
from training.census import CENSUS_KEYS, census, compare_census
from training.repetition import longest_repeat, loop_collapse

FPS = PAL_FRAME_RATE_HZ
GATE, TRI, SAW, PULSE, NOISE, TEST = 0x01, 0x10, 0x20, 0x40, 0x80, 0x08


def blank(n: int, volume: int = 15) -> np.ndarray:
    r = np.zeros((n, 25), np.uint8)
    r[:, 0x18] = volume
    return r


def put(r, v, t, *, freq=None, pw=None, ctrl=None, ad=None, sr=None):
    b = 7 * v
    if freq is not None:
        r[t, b], r[t, b + 1] = freq & 0xFF, freq >> 8
    if pw is not None:
        r[t, b + 2], r[t, b + 3] = pw & 0xFF, pw >> 8
    if ctrl is not None:
        r[t, b + 4] = ctrl
    if ad is not None:
        r[t, b + 5] = ad
    if sr is not None:
        r[t, b + 6] = sr


def held_note(n=500, v=0, freq=0x1000, ctrl=PULSE | GATE):
    r = blank(n)
    for t in range(n):
        put(r, v, t, freq=freq, pw=0x800, ctrl=ctrl, ad=0x00, sr=0xF0)
    return r


# ---------------------------------------------------------------------------- arpeggios

@pytest.mark.parametrize("hold", [1, 2])
def test_arpeggio_three_pitches_two_seconds(hold):
    r = held_note(500)
    seq = [0x1000, 0x1430, 0x1800]  # root, major third, fifth
    arp_frames = round(2 * FPS)  # 100 frames
    for i, t in enumerate(range(200, 200 + arp_frames)):
        put(r, 0, t, freq=seq[(i // hold) % 3])
    c = census(r)
    assert c["counts"]["arpeggio_frames"] == [arp_frames, 0, 0]
    assert c["per_voice"]["arpeggio_share"][0] == pytest.approx(arp_frames / 500)
    assert c["arpeggio_share"] == pytest.approx(arp_frames / 500 / 3)


def test_no_arpeggio_for_vibrato_held_note_or_slow_steps():
    r = held_note(400)
    vib = [0x1000, 0x1010, 0x1000, 0x0FF0]  # periodic but < one semitone
    for t in range(400):
        put(r, 0, t, freq=vib[t % 4])
    slow = held_note(400, v=1)  # pitches held 3 frames each: notes, not an arpeggio
    for t in range(400):
        put(slow, 1, t, freq=(0x1000, 0x1800)[(t // 3) % 2])
    assert census(r)["counts"]["arpeggio_frames"] == [0, 0, 0]
    assert census(slow)["counts"]["arpeggio_frames"] == [0, 0, 0]
    assert census(held_note(400))["counts"]["arpeggio_frames"] == [0, 0, 0]


def test_arpeggio_needs_gate():
    r = held_note(300, ctrl=PULSE)  # waveform without gate: not sounding
    for t in range(300):
        put(r, 0, t, freq=(0x1000, 0x1800)[t % 2])
    assert census(r)["counts"]["arpeggio_frames"] == [0, 0, 0]


# ---------------------------------------------------------------------------- PWM sweeps

def test_pwm_sweep_counted_once_with_its_frames():
    r = held_note(200, v=1)
    for t in range(200):
        put(r, 1, t, pw=0x800 + 16 * min(max(t - 19, 0), 50))  # moves on frames 20..69
    c = census(r)
    assert c["counts"]["pwm_sweeps"] == [0, 1, 0]
    assert c["counts"]["pwm_sweep_frames"] == [0, 51, 0]  # frame 19 (start value) .. 69
    assert c["pwm_sweep_share"] == pytest.approx(51 / 200 / 3)


def test_pwm_sweep_every_other_frame_and_ping_pong():
    r = held_note(200)
    for t in range(200):
        put(r, 0, t, pw=0x400 + 32 * (t // 2))  # a move every 2nd frame: one hold step allowed
    assert census(r)["counts"]["pwm_sweeps"] == [1, 0, 0]
    pp = held_note(200)
    for t in range(200):
        put(pp, 0, t, pw=0x400 + 20 * (t % 40 if t % 80 < 40 else 40 - t % 40))
    c = census(pp)["counts"]
    assert c["pwm_sweeps"][0] == 5  # up 40, down 40, up, down, up (the last 40 frames)


def test_pwm_not_counted_short_or_without_pulse_or_with_long_holds():
    short = held_note(100)
    for t in range(100):
        put(short, 0, t, pw=0x800 + 16 * min(max(t - 9, 0), 8))  # 9 frames of movement
    nopulse = held_note(100, ctrl=SAW | GATE)
    for t in range(100):
        put(nopulse, 0, t, pw=0x100 + 16 * t)
    stepped = held_note(100)
    for t in range(100):
        put(stepped, 0, t, pw=0x100 + 64 * (t // 4))  # 3 holds between moves
    for r in (short, nopulse, stepped):
        assert census(r)["counts"]["pwm_sweeps"] == [0, 0, 0]


# ---------------------------------------------------------------------------- drums

def test_noise_bursts_are_drums_long_noise_is_not():
    n = 500
    r = blank(n)
    hits = 0
    for t in range(n):
        put(r, 2, t, freq=0x2000, ctrl=NOISE, ad=0x00, sr=0x00)
    for t0 in range(10, n - 10, 25):  # 2 gated noise frames, then released noise
        put(r, 2, t0, ctrl=NOISE | GATE)
        put(r, 2, t0 + 1, ctrl=NOISE | GATE)
        hits += 1
    c = census(r)
    assert c["counts"]["drums"] == [0, 0, hits]
    assert c["per_voice"]["drums_per_s"][2] == pytest.approx(hits / (n / FPS))
    pad = held_note(200, v=2, ctrl=NOISE | GATE)
    put(pad, 2, 0, ctrl=0)  # one noise pad from frame 1 to the end: not a drum
    assert census(pad)["counts"]["drums"] == [0, 0, 0]


def test_pitch_down_sweep_into_noise_is_a_drum():
    r = blank(100)
    for t, f in zip(range(20, 24), (0x3000, 0x2000, 0x1400, 0x0C00)):  # a falling kick
        put(r, 0, t, freq=f, pw=0x800, ctrl=PULSE | GATE)
    for t in range(24, 40):  # then 16 frames of gated noise (too long for a burst)
        put(r, 0, t, freq=0x0800, ctrl=NOISE | GATE)
    assert census(r)["counts"]["drums"] == [1, 0, 0]
    gentle = r.copy()
    for t, f in zip(range(20, 24), (0x1000, 0x0F80, 0x0F00, 0x0E80)):  # < 7 semitones
        put(gentle, 0, t, freq=f)
    assert census(gentle)["counts"]["drums"] == [0, 0, 0]


# ---------------------------------------------------------------------------- filter

def test_filter_sweep_needs_routing_and_mode():
    r = held_note(120)
    r[:, 0x17] = 0x01  # voice 1 through the filter
    r[:, 0x18] = 0x1F  # low pass, volume 15
    for t in range(120):
        fc = 100 + 8 * min(max(t - 30, 0), 30)  # rises on frames 31..60
        r[t, 0x15], r[t, 0x16] = fc & 7, fc >> 3
    c = census(r)["counts"]
    assert (c["filter_sweeps"], c["filter_sweep_frames"]) == (1, 31)
    unrouted = r.copy()
    unrouted[:, 0x17] = 0x00
    nomode = r.copy()
    nomode[:, 0x18] = 0x0F
    assert census(unrouted)["counts"]["filter_sweeps"] == 0
    assert census(nomode)["counts"]["filter_sweeps"] == 0


# ---------------------------------------------------------------------------- silence, onsets

def test_silence_definitions():
    assert census(np.zeros((300, 25), np.uint8))["silent_share"] == 1.0
    assert census(held_note(300))["silent_share"] == 0.0
    quiet = held_note(300)
    quiet[:, 0x18] = 0  # volume 0
    assert census(quiet)["silent_share"] == 1.0
    test_bit = held_note(300, ctrl=PULSE | GATE | TEST)
    assert census(test_bit)["silent_share"] == 1.0
    v3off = held_note(300, v=2)
    v3off[:, 0x18] = 0x8F
    assert census(v3off)["silent_share"] == 1.0
    filtered_no_mode = held_note(300)
    filtered_no_mode[:, 0x17] = 0x01
    assert census(filtered_no_mode)["silent_share"] == 1.0


def test_release_tail_counts_as_sound_until_the_envelope_dies():
    fast, slow = held_note(300), held_note(300)
    for t in range(100, 300):
        put(fast, 0, t, ctrl=PULSE, sr=0xF0)  # release rate 0: 6 ms
        put(slow, 0, t, ctrl=PULSE, sr=0xFA)  # release rate 10: 1.5 s from full level
    s_fast, s_slow = silent_frames(fast), silent_frames(slow)
    assert not s_fast[:100].any() and s_fast[101:].all()
    assert not s_slow[:130].any() and s_slow[200:].all()


def test_sustain_raised_above_the_level_lets_it_fall_to_zero():
    r = held_note(200)
    for t in range(200):
        put(r, 0, t, ad=0x00, sr=0x10 if t < 100 else 0x20)  # holds at 17, then 34 > 17: falls to 0
    s = silent_frames(r)
    assert not s[:100].any() and s[101:].all()


def test_onsets_are_gate_rises():
    r = held_note(500)
    for t in range(500):
        put(r, 0, t, ctrl=PULSE | (GATE if t % 25 < 20 else 0))
    c = census(r)
    rises = sum(1 for t in range(1, 500) if t % 25 == 0)
    assert c["counts"]["onsets"] == [rises, 0, 0]
    assert c["onsets_per_s"] == pytest.approx(rises / (500 / FPS) / 3)


def test_census_of_a_list_is_frame_weighted():
    a, b = held_note(300), np.zeros((100, 25), np.uint8)
    c = census([a, b])
    assert c["frames"] == 400 and c["silent_share"] == pytest.approx(100 / 400)
    assert set(CENSUS_KEYS) <= set(c)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"shape \(N, 25\)"):
        census(np.zeros((10, 24), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        census(np.zeros((10, 25), np.int16))
    with pytest.raises(ValueError, match="sequence 1"):
        census([np.zeros((5, 25), np.uint8), np.zeros((5, 3), np.uint8)])
    with pytest.raises(ValueError, match="0 frames"):
        census(np.zeros((0, 25), np.uint8))


def test_compare_census_ratios_and_flags():
    gen = dict.fromkeys(CENSUS_KEYS, 1.0) | {"onsets_per_s": 3.0, "drums_per_s": 0.0, "filter_sweep_share": 0.1}
    real = dict.fromkeys(CENSUS_KEYS, 1.0) | {"onsets_per_s": 2.0, "drums_per_s": 0.0, "filter_sweep_share": 0.0}
    rows = {r["key"]: r for r in compare_census(gen, real)}
    assert rows["onsets_per_s"]["ratio"] == 1.5 and rows["onsets_per_s"]["within"]
    assert rows["drums_per_s"]["ratio"] == 1.0 and rows["drums_per_s"]["within"]
    assert math.isinf(rows["filter_sweep_share"]["ratio"]) and not rows["filter_sweep_share"]["within"]
    gen["arpeggio_share"] = 0.49
    assert not {r["key"]: r for r in compare_census(gen, real)}["arpeggio_share"]["within"]


# ---------------------------------------------------------------------------- loops

def random_frames(rng, n):
    return rng.integers(0, 256, (n, 25), dtype=np.uint8)


def test_loop_collapse_detects_a_repeating_bar():
    rng = np.random.default_rng(1)
    intro = random_frames(rng, 300)
    bar = random_frames(rng, 100)
    seq = np.concatenate([intro, np.tile(bar, (13, 1))])  # 1300 frames ~ 26 s of one bar
    collapsed, period, start = loop_collapse(seq)
    assert collapsed and period == 100 and start == 300


def test_loop_collapse_ignores_modulators_but_not_notes():
    rng = np.random.default_rng(2)
    seq = np.tile(random_frames(rng, 50), (24, 1))  # 1200 frames ~ 24 s
    seq[:, 0x02] = np.arange(len(seq)) % 256  # a PWM drift over the loop
    assert loop_collapse(seq)[:2] == (True, 50)
    seq[600, 0x00] ^= 0xFF  # one changed note splits it into two ~12 s loops
    assert loop_collapse(seq) == (False, 0, -1)
    assert longest_repeat(seq, 200)[0] == 50


def test_no_collapse_for_short_loops_or_long_periods():
    rng = np.random.default_rng(3)
    assert loop_collapse(random_frames(rng, 3000)) == (False, 0, -1)
    short = np.concatenate([random_frames(rng, 1000), np.tile(random_frames(rng, 100), (9, 1))])  # 18 s
    assert not loop_collapse(short)[0]
    long_period = np.tile(random_frames(rng, 250), (6, 1))  # a 5 s period for 30 s
    assert not loop_collapse(long_period)[0]
    assert loop_collapse(long_period, max_period_s=6)[:2] == (True, 250)
    silence = np.zeros((1100, 25), np.uint8)  # stuck: period 1
    assert loop_collapse(silence) == (True, 1, 0)


# ---------------------------------------------------------------------------- CLI

def test_main_on_frames_files(tmp_path, capsys):
    import json

    from sidlive.frames import Frames, save
    from training.census import main
    arp = held_note(1100)
    for t in range(1100):
        put(arp, 0, t, freq=(0x1000, 0x1430, 0x1800)[t % 3])
    save(Frames(arp), tmp_path / "a.regs")
    save(Frames(np.zeros((1100, 25), np.uint8)), tmp_path / "b.txt")
    (tmp_path / "c.regs").write_bytes(b"junk")
    assert main([str(tmp_path / n) for n in ("a.regs", "b.txt", "c.regs")] + ["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["tunes"], out["failed"], out["loop_collapses"]) == (2, 1, 2)  # both are stuck loops
    assert out["arpeggio_share"] == pytest.approx(1100 / 2200 / 3)
    assert out["silent_share"] == pytest.approx(1100 / 2200)


def test_real_tunes_census(hvsc, capsys):
    import json

    pytest.importorskip("sidlive.c64.machine", reason="the 6510 emulator (sidlive.c64.machine) is not built yet")
    from training.census import main
    tunes = sorted((hvsc / "MUSICIANS" / "H" / "Hubbard_Rob").glob("*.sid"))[:3]
    if not tunes:
        pytest.skip("no Rob Hubbard tunes in this HVSC subset")
    assert main([str(t) for t in tunes] + ["--seconds", "20", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tunes"] >= 1
    assert out["silent_share"] < 0.5 and out["onsets_per_s"] > 0.1  # real music plays notes
