"""The SID as the tune dumper's CPU sees it: a register shadow plus a voice-3 model.

Writes to $D400-$D41F (mirrored every $20 up to $D7FF) are stored raw in ioram[$400+reg];
the frame driver samples the 25 write registers from there. Reads:
  $D419/$D41A (paddles)  $FF
  $D41B (OSC3)           voice 3's oscillator, modelled: a 24-bit phase accumulator adding
                         the frequency every cycle; the top 8 bits of sawtooth, triangle
                         (bit 23 folds), pulse ($FF while accumulator bits 23-12 >= pulse
                         width, or test bit set) and noise (23-bit LFSR, taps 22 and 17,
                         clocked on each rise of accumulator bit 19, output bits 20 18 14 11
                         9 5 2 0); several waveforms AND together; no waveform reads 0. The
                         test bit holds the accumulator at 0 and resets the LFSR. Sync and
                         ring modulation from voice 2 are not modelled.
  $D41C (ENV3)           voice 3's envelope, modelled: attack adds 1 per rate period (9 to
                         31,251 cycles), decay/release subtract 1 per rate period times the
                         exponential divider (1, 2, 4, 8, 16, 30 below 94, 55, 27, 15, 7),
                         decay stops at sustain * 17; gate on restarts attack, gate off
                         releases. The ADSR delay bug is not modelled.
  other registers        the last value written to any SID register while it is younger
                         than BUS_TTL_CYCLES, then 0 (the data bus decaying, as reSIDfp's
                         6581 does); a tune that reads back a write-only register does not
                         get what it wrote there, as on the real chip.
Everything is deterministic and advanced lazily, only when voice 3 is written or read.

Write log (a debug aid: cycle-exact replay of a tune's SID writes). When the io array is
longer than the SID block, the entries after it are a log: io[s + SID_LOG] counts the
writes, and write i is (io[s + SID_LOG + 1 + 2i], io[s + SID_LOG + 2 + 2i]) =
(cycle, reg << 8 | value). Writes past the log's capacity are counted but not stored.
"""
from __future__ import annotations

import numpy as np
from numba import njit

S_ACC, S_REF, S_LFSR, S_BUS, S_ENV, S_PHASE, S_PROG, S_BUS_T = range(8)
SID_SIZE = 8
BUS_TTL_CYCLES = 0x1D00  # how long a written value stays readable (6581)
ATTACK, DECAY, RELEASE = 0, 1, 2
LFSR_INIT = 0x7FFFFF
LFSR_PERIOD = (1 << 23) - 1
RATE_PERIOD_CYCLES = np.array(
    [9, 32, 63, 95, 149, 220, 267, 313, 392, 977, 1954, 3126, 3907, 11720, 19532, 31251], np.int64)
V3 = 0x400 + 0x0E  # voice 3 registers in ioram: freq lo/hi, pw lo/hi, ctrl, AD, SR
# Per voice: set to 1 when a control register is written with the gate bit clear. The frame
# driver reads and clears these at each frame boundary to find gate re-triggers inside one
# frame (gate 1 -> 0 -> 1 between two boundaries), which a plain snapshot would lose.
# Lives in the SID's unused mirror space of ioram (mirrors are folded to $D400-$D41F).
GATE_OFF_SEEN = 0x4E0
SID_LOG = SID_SIZE  # offset of the optional write log (see the module docstring)


@njit(cache=True, nogil=True)
def sid_reset(io, s):
    """Reset the SID block at s: noise LFSR to its initial value, envelope in release."""
    io[s + S_LFSR] = LFSR_INIT
    io[s + S_PHASE] = RELEASE


@njit(cache=True, nogil=True)
def _exp_div(level):
    if level > 93:
        return 1
    if level > 54:
        return 2
    if level > 26:
        return 4
    if level > 14:
        return 8
    if level > 6:
        return 16
    return 30


@njit(cache=True, nogil=True)
def _envelope(io, s, ioram, dt):
    """Advance voice 3's envelope by dt cycles under the current AD/SR registers."""
    level, phase, prog = io[s + S_ENV], io[s + S_PHASE], io[s + S_PROG]
    ad, sr = np.int64(ioram[V3 + 5]), np.int64(ioram[V3 + 6])
    while dt > 0:
        if phase == ATTACK:
            if level >= 255:
                phase = DECAY
                continue
            period = RATE_PERIOD_CYCLES[ad >> 4]
            n = min((prog + dt) // period, 255 - level)
            if n == 0:
                prog += dt
                break
            dt -= n * period - prog
            prog = 0
            level += n
        else:
            target = (sr >> 4) * 17 if phase == DECAY else 0
            if level <= target:
                break
            rate = (ad & 0x0F) if phase == DECAY else (sr & 0x0F)
            period = RATE_PERIOD_CYCLES[rate] * _exp_div(level)
            if prog >= period:
                prog = period - 1
            if dt < period - prog:
                prog += dt
                break
            dt -= period - prog
            prog = 0
            level -= 1
    io[s + S_ENV], io[s + S_PHASE], io[s + S_PROG] = level, phase, prog


@njit(cache=True, nogil=True)
def _lfsr_step(lfsr, n):
    for _ in range(n % LFSR_PERIOD):
        lfsr = ((lfsr << 1) | (((lfsr >> 22) ^ (lfsr >> 17)) & 1)) & 0x7FFFFF
    return lfsr


@njit(cache=True, nogil=True)
def sid_sync(io, s, ioram, now):
    """Advance voice 3's oscillator and envelope to cycle `now`."""
    dt = now - io[s + S_REF]
    if dt <= 0:
        return
    io[s + S_REF] = now
    ctrl = np.int64(ioram[V3 + 4])
    if ctrl & 0x08:
        io[s + S_ACC] = 0
        io[s + S_LFSR] = LFSR_INIT
    else:
        freq = np.int64(ioram[V3]) | (np.int64(ioram[V3 + 1]) << 8)
        acc0 = io[s + S_ACC]
        total = acc0 + freq * dt
        edges = ((total - 0x80000) >> 20) - ((acc0 - 0x80000) >> 20)
        if edges > 0:
            io[s + S_LFSR] = _lfsr_step(io[s + S_LFSR], edges)
        io[s + S_ACC] = total & 0xFFFFFF
    _envelope(io, s, ioram, dt)


@njit(cache=True, nogil=True)
def osc3(io, s, ioram):
    """Voice 3's oscillator output ($D41B): the selected waveforms' top 8 bits ANDed, 0 for none."""
    ctrl = np.int64(ioram[V3 + 4])
    wave = ctrl >> 4
    if wave == 0:
        return 0
    acc = io[s + S_ACC]
    out = 0xFF
    if wave & 1:
        out &= ((acc ^ (0x7FFFFF if acc & 0x800000 else 0)) >> 15) & 0xFF
    if wave & 2:
        out &= acc >> 16
    if wave & 4:
        pw = np.int64(ioram[V3 + 2]) | ((np.int64(ioram[V3 + 3]) & 0x0F) << 8)
        out &= 0xFF if (ctrl & 0x08 or (acc >> 12) >= pw) else 0
    if wave & 8:
        r = io[s + S_LFSR]
        out &= (((r >> 13) & 0x80) | ((r >> 12) & 0x40) | ((r >> 9) & 0x20) | ((r >> 7) & 0x10)
                | ((r >> 6) & 0x08) | ((r >> 3) & 0x04) | ((r >> 1) & 0x02) | (r & 0x01))
    return out


@njit(cache=True, nogil=True)
def sid_read(r, io, ioram, s, now):
    """Read SID register r: paddles $FF, OSC3 / ENV3 modelled, else the decaying bus value."""
    if r == 0x19 or r == 0x1A:
        return 0xFF
    if r == 0x1B or r == 0x1C:
        sid_sync(io, s, ioram, now)
        return osc3(io, s, ioram) if r == 0x1B else io[s + S_ENV]
    return io[s + S_BUS] if now - io[s + S_BUS_T] < BUS_TTL_CYCLES else 0


@njit(cache=True, nogil=True)
def sid_write(r, v, io, ioram, s, now):
    """Write SID register r: store it, update voice 3's model, the write log and gate-off flags."""
    io[s + S_BUS] = v
    io[s + S_BUS_T] = now
    if 0x0E <= r <= 0x14:
        sid_sync(io, s, ioram, now)
        if r == 0x12:
            old = np.int64(ioram[V3 + 4])
            if (v & 1) and not (old & 1):
                io[s + S_PHASE] = ATTACK
            elif (old & 1) and not (v & 1):
                io[s + S_PHASE] = RELEASE
            if v & 0x08:
                io[s + S_ACC] = 0
                io[s + S_LFSR] = LFSR_INIT
    ioram[0x400 + r] = v
    lg = s + SID_LOG
    if io.shape[0] > lg:
        n = io[lg]
        i = lg + 1 + 2 * n
        if i + 1 < io.shape[0]:
            io[i] = now
            io[i + 1] = (r << 8) | v
        io[lg] = n + 1
    if (r == 0x04 or r == 0x0B or r == 0x12) and not (v & 1):
        ioram[GATE_OFF_SEEN + r // 7] = 1
