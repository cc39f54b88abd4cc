"""Why our dumps rendered differently from sidplayfp, pinned down.

The sound check (sidlive.measure.soundcheck) compares sidplayfp with our render of our dump. Three
faults made tunes fail it; each test below fails without its fix:
- the renderer wrote a frame's registers all in one cycle, which no 6510 can: reSID's
  envelope then decides the ADSR delay bug differently from any real player (hard
  restarts: a note's attack starts up to 33 ms early or late);
- mark_retriggers turned an inaudible gate restart (envelope held at $FF) into a 20 ms
  release, often silence;
- the check compared sidplayfp's samples, which run on reSIDfp's rate (2.2e-4 fast),
  with the renderer's exact time base: 6.5 ms of drift over 30 s.
The reference for the first two is the dumper's own 6510 run with every SID write logged
at its cycle (run_psid's sid_log_capacity) and replayed into reSID at those cycles.
"""
import shutil

import numpy as np
import pytest

from sidlive.audio.renderer import Renderer
from sidlive.frames import NUM_REGS, PAL_CLOCK_HZ, PAL_FRAME_CYCLES, WRITE_ORDER, Frames
from sidlive.measure import soundcheck as E

RATE = 48_000
INIT, PLAY, TABLES = 0x1000, 0x1040, 0x1080


def _program(init: list[int], play: list[int], tables: bytes = b"") -> bytes:
    """A tune image at $1000: init at $1000, play at $1040, tables at $1080."""
    img = bytearray(0x80 + len(tables))
    img[0:len(init)] = bytes(init)
    img[0x40:0x40 + len(play)] = bytes(play)
    img[0x80:] = tables
    return bytes(img)


def _sta(reg: int) -> list[int]:
    return [0x8D, reg, 0xD4]   # STA $D4reg


# init: volume 15, voice 1 at $1000 with pulse width $0800; counter $02 = 0
VOICE1_INIT = ([0xA9, 0x0F] + _sta(0x18) + [0xA9, 0x10] + _sta(0x01) + [0xA9, 0x08] + _sta(0x03)
               + [0xA9, 0x00, 0x85, 0x02])


def _table_player(steps: int) -> list[int]:
    """play: y = ++counter % steps; AD, SR, control of voice 1 from three tables, in that
    order, 8 cycles apart (LDA abs,Y; STA abs), as most players write them."""
    code = [0xE6, 0x02, 0xA5, 0x02, 0x29, steps - 1, 0xA8]   # INC $02; LDA $02; AND #; TAY
    for i, reg in enumerate((0x05, 0x06, 0x04)):
        code += [0xB9, (TABLES + i * steps) & 0xFF, TABLES >> 8] + _sta(reg)
    return code + [0x60]


def _run(image: bytes, n_frames: int, **kw):
    from sidlive.c64.machine import run_psid  # the dumper's emulator
    return run_psid(image, INIT, INIT, PLAY, 0, n_frames, speed_cia=False,
                    sid_log_capacity=200 * n_frames, **kw)


def _frames(regs: np.ndarray, chip: str = "6581") -> Frames:
    return Frames(regs=regs, clock="PAL", chip=chip, frame_rate_hz=PAL_CLOCK_HZ / PAL_FRAME_CYCLES)


def _exact(res, chip: str = "6581") -> np.ndarray:
    return E.replay_writes(res.sid_writes, chip, len(res.regs) * PAL_FRAME_CYCLES, RATE)


def _render(regs: np.ndarray, chip: str = "6581", **kw) -> np.ndarray:
    return Renderer(_frames(regs, chip), chip=chip, **kw).render_frames(len(regs))


# ---------------------------------------------------------------------------- write log

def test_sid_write_log_rebuilds_every_frame():
    """Replaying the logged writes up to each frame boundary gives that frame's registers."""
    steps = 8
    tables = bytes([0x03] * 5 + [0x0F, 0x00, 0x00]) + bytes([0x9A] * 5 + [0x00] * 3) \
        + bytes([0x09, 0x41, 0x41, 0x41, 0x40, 0x40, 0x08, 0x08])
    res = _run(_program(VOICE1_INIT + [0x60], _table_player(steps), tables), 60,
               mark_gate_retriggers=False)
    assert res.status == "ok" and res.sid_writes_lost == 0
    w = res.sid_writes   # (n, 3): cycle from frame 0's boundary, register, value
    assert (np.diff(w[:, 0]) >= 0).all() and set(w[:, 1]) == {0x01, 0x03, 0x04, 0x05, 0x06, 0x18}
    assert (w[:, 0] < 0).sum() == 3 + 3   # init's three writes and play call 1 precede frame 0
    shadow = np.zeros(NUM_REGS, np.uint8)
    i = 0
    for k in range(len(res.regs)):
        while i < len(w) and w[i, 0] < k * PAL_FRAME_CYCLES:
            shadow[w[i, 1]] = w[i, 2]
            i += 1
        assert (shadow == res.regs[k]).all(), k
    assert len(w) == 3 + 3 * 60   # 60 play calls: the first before frame 0, frame k holds call k+1


def test_write_stats_sees_volume_digis():
    frames = 10
    cyc = np.arange(0, frames * PAL_FRAME_CYCLES, 100)   # a $D418 write every 100 cycles
    digi = np.stack([cyc, np.full(len(cyc), 0x18), cyc // 100 % 16], axis=1)
    s = E.write_stats(digi, frames, PAL_FRAME_CYCLES)
    assert s["d418_changes_per_frame"] > 190 and s["writes_per_frame"] == pytest.approx(196.6, abs=0.1)


def test_replay_writes_at_frame_starts_is_the_renderer():
    """Writes placed where the renderer puts them replay to the renderer's sound."""
    rng = np.random.default_rng(3)
    regs = np.zeros((150, NUM_REGS), np.uint8)
    regs[:, 0x18] = 0x0F
    regs[:, 0x01] = rng.integers(8, 40, 150)
    regs[:, 0x05], regs[:, 0x06] = 0x22, 0x88
    regs[:, 0x04] = np.where(np.arange(150) % 10 < 6, 0x21, 0x20)
    rows, last = [], None
    for k, row in enumerate(regs):
        changed = [r for r in WRITE_ORDER if last is None or row[r] != last[r]]
        rows += [(k * PAL_FRAME_CYCLES + 9 * j, r, row[r]) for j, r in enumerate(changed)]
        last = row
    x = E.replay_writes(np.array(rows), "6581", len(regs) * PAL_FRAME_CYCLES, RATE)
    assert abs(len(x) - 150 * PAL_FRAME_CYCLES * RATE / PAL_CLOCK_HZ) < 0.001 * len(x)
    r, lag_ms = E.envelope_alignment(_render(regs), x, RATE, b_rate_hz=RATE * E.resid_rate_ratio())
    assert r > 0.99 and abs(lag_ms) <= 5
    with pytest.raises(ValueError, match="in order"):
        E.replay_writes(np.array([[10, 0, 1], [5, 0, 2]]), "6581", 100)


# ---------------------------------------------------------------------------- the faults

def test_renderer_spaces_writes_like_a_player():
    """A hard restart (release 0, test bit) then AD/SR 8 cycles before the gate, as a real
    player writes them: reSID delays the attack (ADSR bug). Writing the frame's registers
    all in one cycle does not; spacing them as a player does reproduces the 6510 run."""
    steps = 8   # p0 note on (test+gate), p1-3 pulse, p4 gate off, p5 release 0, p6-7 test bit
    tables = bytes([0x03] * 5 + [0x0F, 0x00, 0x00]) + bytes([0x9A] * 5 + [0x00] * 3) \
        + bytes([0x09, 0x41, 0x41, 0x41, 0x40, 0x40, 0x08, 0x08])
    res = _run(_program(VOICE1_INIT + [0x60], _table_player(steps), tables), 400)
    exact = _exact(res)
    spaced = E.envelope_correlation(_render(res.regs), exact, RATE)
    same_cycle = E.envelope_correlation(_render(res.regs, write_gap_cycles=0), exact, RATE)
    assert spaced > 0.95, (spaced, same_cycle)
    assert same_cycle < spaced - 0.1, (spaced, same_cycle)
    with pytest.raises(ValueError, match="write_gap_cycles"):
        Renderer(None, write_gap_cycles=41)


def _restart_every_4(sustain_release: int) -> bytes:
    """Voice 1 gated on at init (attack 0, decay 0, SR as given); every 4th play call
    restarts the note inside the frame: gate off, then on."""
    init = VOICE1_INIT + [0xA9, 0x00] + _sta(0x05) + [0xA9, sustain_release] + _sta(0x06) \
        + [0xA9, 0x41] + _sta(0x04) + [0x60]
    play = [0xE6, 0x02, 0xA5, 0x02, 0x29, 0x03, 0xD0, 0x0A,     # INC $02; LDA; AND #3; BNE +10
            0xA9, 0x40] + _sta(0x04) + [0xA9, 0x41] + _sta(0x04) + [0x60]
    return _program(init, play)


def test_restart_at_full_level_is_not_marked():
    """Sustain 15: the envelope sits at $FF and a restart leaves it there. Marking it
    (a released frame) would cut the tone for 20 ms every 4 frames."""
    res = _run(_restart_every_4(0xF0), 200)
    raw = _run(_restart_every_4(0xF0), 200, mark_gate_retriggers=False)
    assert res.retriggers == 0 and (res.regs == raw.regs).all()
    for x in (_exact(res), _render(res.regs)):   # the tune, and our render: no dropouts
        env = E.energy_envelope(x[RATE // 2:], RATE, 20, 5)
        assert env.min() > 0.5 * np.median(env)
    low = _run(_restart_every_4(0x00), 200)   # sustain 0: the note has died; restarts must sound
    assert low.retriggers == 50


def test_envelopes_are_compared_on_true_time():
    """b is a on reSIDfp's time base (2.2e-4 more samples): read at its true rate it
    matches over 30 s; read at the nominal rate it drifts 6.5 ms."""
    ratio = E.resid_rate_ratio(RATE)
    assert 1.0001 < ratio < 1.0004 and E.resid_rate_ratio(RATE, sampling="decimate") < 1.0001
    rng = np.random.default_rng(7)
    t = np.arange(30 * RATE) / RATE
    gate = np.repeat(rng.random(30 * 100) < 0.5, RATE // 100).astype(float)   # 10 ms cells
    a = np.sin(2 * np.pi * 440 * t) * gate * 8000
    b = np.interp(np.arange(int(len(a) * ratio)) / ratio, np.arange(len(a)), a)
    fixed = E.envelope_correlation(a, b, RATE, b_rate_hz=RATE * ratio)
    nominal = E.envelope_correlation(a, b, RATE)
    assert fixed > 0.99 and nominal < fixed - 0.05, (fixed, nominal)


# ---------------------------------------------------------------------------- against sidplayfp

def test_hard_restart_tune_against_sidplayfp(hvsc):
    """Metal's Resigning (hard restarts with the test bit) was 0.59 before the fixes."""
    if shutil.which("sidplayfp") is None:
        pytest.skip("sidplayfp is not installed (Debian package sidplayfp)")
    path = hvsc / "MUSICIANS" / "M" / "Metal" / "Resigning.sid"
    if not path.is_file():
        pytest.skip(f"{path} is not in this HVSC subset")
    from sidlive.c64.dump import dump_tune
    row = E.check_tune(path, seconds=12.0, dump=dump_tune, exact=True, delay_cycles=0)
    assert row["exact"] >= 0.95, row
    assert row["correlation"] >= E.TARGET_CORRELATION, row
