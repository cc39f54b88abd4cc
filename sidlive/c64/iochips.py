"""The C64's I/O page for the tune dumper: CPU port, VIC-II raster IRQ, CIA timers, SID.

State lives in an int64 array `io` (layout below) and the raw bytes written to
$D000-$DFFF in a uint8 array `ioram` (4096, offset = address - $D000, chip mirrors folded:
VIC regs at 0-$3F, SID at $400-$41F, colour RAM at $800, CIA1 at $C00, CIA2 at $D00).

Time is the CPU cycle count. Raster line = (cycle // cycles_per_line) % lines, so cycle 0
is the start of line 0 and every frame starts on a multiple of lines * cycles_per_line.
CIA timers count down once per cycle (or per timer-A underflow for timer B in modes
%10/%11), reload from the latch on underflow (period = latch + 1), stop after one
underflow in one-shot mode; they are advanced arithmetically (`cia_sync`) when read,
written or when an interrupt they can raise is due, never per cycle. Not modelled: TOD
clocks (read back as written), serial port, keyboard/joystick (ports read their output
bits, inputs high), the CNT pin, sprite collisions (read 0), light pen.

`io[EV_NEXT]` is the cycle at which the CPU loop must hand back to the machine; any write
that can change an interrupt line sets it to 0 so the machine re-evaluates at once.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from sidlive.c64.sidchip import SID_SIZE, sid_read, sid_write

EV_NEXT, IRQ_LINE, NMI_LINE, PORT_DDR, PORT_DATA = 0, 1, 2, 3, 4
V_FLAGS, V_MASK, V_CMP, V_NEXT, V_LINES, V_CPL = 5, 6, 7, 8, 9, 10
CIA1, CIA2 = 12, 24  # bases of the two CIA blocks
C_TA_LATCH, C_TA, C_CRA, C_TB_LATCH, C_TB, C_CRB, C_FLAGS, C_MASK, C_REF = range(9)
SID_BASE = 40
IO_SIZE = SID_BASE + SID_SIZE
NEVER = 1 << 62

PAGE_RAM, PAGE_PORT, PAGE_ROM, PAGE_IO = 0, 1, 2, 3


# ---------------------------------------------------------------------------- CPU port


@njit(cache=True, nogil=True)
def port_value(ddr, data):
    """$01 as read: output bits as written; input bits 0-4 pulled high, 5-7 read 0."""
    return (data & ddr) | (~ddr & 0x1F)


@njit(cache=True, nogil=True)
def port_write(a, v, ram, pmap, io):
    """Write $00 (direction) or $01 (data) and re-bank $A000-$BFFF and $D000-$FFFF."""
    io[PORT_DDR if a == 0 else PORT_DATA] = v
    ddr, data = io[PORT_DDR], io[PORT_DATA]
    ram[0] = ddr
    ram[1] = port_value(ddr, data)
    bits = (data | ~ddr) & 7  # inputs float high
    loram, hiram, charen = bits & 1, bits & 2, bits & 4
    basic = PAGE_ROM if (loram and hiram) else PAGE_RAM
    pmap[0xA] = basic
    pmap[0xB] = basic
    if loram or hiram:
        pmap[0xD] = PAGE_IO if charen else PAGE_ROM
    else:
        pmap[0xD] = PAGE_RAM
    kernal = PAGE_ROM if hiram else PAGE_RAM
    pmap[0xE] = kernal
    pmap[0xF] = kernal


# ---------------------------------------------------------------------------- VIC-II


@njit(cache=True, nogil=True)
def raster_line(io, now):
    """The VIC-II raster line at cycle now."""
    return (now // io[V_CPL]) % io[V_LINES]


@njit(cache=True, nogil=True)
def raster_next(io, line, after):
    """First cycle > `after` at which raster line `line` starts (NEVER if off screen)."""
    if line >= io[V_LINES]:
        return NEVER
    frame = io[V_LINES] * io[V_CPL]
    t = (after // frame) * frame + line * io[V_CPL]
    if t <= after:
        t += frame
    return t


@njit(cache=True, nogil=True)
def vic_read(r, io, ioram, now):
    """Read VIC-II register r: raster line and IRQ registers modelled, the rest as written."""
    if r == 0x11:
        return (np.int64(ioram[0x11]) & 0x7F) | ((raster_line(io, now) >> 8) << 7)
    if r == 0x12:
        return raster_line(io, now) & 0xFF
    if r == 0x19:
        return io[V_FLAGS] | 0x70 | (0x80 if io[V_FLAGS] & io[V_MASK] else 0)
    if r == 0x1A:
        return io[V_MASK] | 0xF0
    if r == 0x1E or r == 0x1F:
        return 0
    if r >= 0x2F:
        return 0xFF
    if r >= 0x20:
        return np.int64(ioram[r]) | 0xF0
    return np.int64(ioram[r])


@njit(cache=True, nogil=True)
def vic_write(r, v, io, ioram, now):
    """Write VIC-II register r; raster compare, IRQ acknowledge and mask update the IRQ state."""
    ioram[r] = v
    if r == 0x11 or r == 0x12:
        cmp = ((np.int64(ioram[0x11]) & 0x80) << 1) | np.int64(ioram[0x12])
        if cmp != io[V_CMP]:
            io[V_CMP] = cmp
            if cmp == raster_line(io, now):  # compare set to the current line fires now
                io[V_FLAGS] |= 1
            io[V_NEXT] = raster_next(io, cmp, now)
        io[EV_NEXT] = 0
    elif r == 0x19:
        io[V_FLAGS] &= ~v & 0x0F
        io[EV_NEXT] = 0
    elif r == 0x1A:
        io[V_MASK] = v & 0x0F
        io[EV_NEXT] = 0


# ---------------------------------------------------------------------------- CIA


@njit(cache=True, nogil=True)
def _advance(cnt, latch, oneshot, ticks):
    """Count a timer down `ticks` times: (counter, underflows, stopped)."""
    if ticks <= cnt:
        return cnt - ticks, 0, False
    rest = ticks - cnt - 1  # ticks after the first underflow reloaded the latch
    if oneshot:
        return latch, 1, True
    return latch - rest % (latch + 1), 1 + rest // (latch + 1), False


@njit(cache=True, nogil=True)
def cia_sync(io, b, now):
    """Advance CIA `b`'s timers to cycle `now`, latching underflows into its ICR flags."""
    dt = now - io[b + C_REF]
    if dt <= 0:
        return
    io[b + C_REF] = now
    cra = io[b + C_CRA]
    n_a = 0
    if (cra & 0x21) == 0x01:
        cnt, n_a, stop = _advance(io[b + C_TA], io[b + C_TA_LATCH], cra & 8, dt)
        io[b + C_TA] = cnt
        if n_a:
            io[b + C_FLAGS] |= 1
        if stop:
            io[b + C_CRA] = cra & ~1
    crb = io[b + C_CRB]
    if crb & 1:
        mode = (crb >> 5) & 3
        ticks = dt if mode == 0 else (n_a if mode >= 2 else 0)
        if ticks:
            cnt, n_b, stop = _advance(io[b + C_TB], io[b + C_TB_LATCH], crb & 8, ticks)
            io[b + C_TB] = cnt
            if n_b:
                io[b + C_FLAGS] |= 2
            if stop:
                io[b + C_CRB] = crb & ~1


@njit(cache=True, nogil=True)
def cia_next(io, b):
    """Cycle at which CIA `b` next latches an underflow its ICR mask lets interrupt."""
    ref, mask, cra, crb = io[b + C_REF], io[b + C_MASK], io[b + C_CRA], io[b + C_CRB]
    t = NEVER
    ta_runs = (cra & 0x21) == 0x01
    if mask & 1 and ta_runs:
        t = ref + io[b + C_TA] + 1
    if mask & 2 and crb & 1:
        mode = (crb >> 5) & 3
        if mode == 0:
            t = min(t, ref + io[b + C_TB] + 1)
        elif mode >= 2 and ta_runs:
            first = ref + io[b + C_TA] + 1
            if not (cra & 8):
                t = min(t, first + io[b + C_TB] * (io[b + C_TA_LATCH] + 1))
            elif io[b + C_TB] == 0:
                t = min(t, first)
    return t


@njit(cache=True, nogil=True)
def cia_read(b, r, io, ioram, off, now):
    """Read register r of the CIA at base b: ports, timers and the ICR (reading clears its flags)."""
    if r <= 1:  # ports: outputs as written, inputs high (no keys, no joystick)
        return (np.int64(ioram[off + r]) | (~np.int64(ioram[off + r + 2]) & 0xFF)) & 0xFF
    if 4 <= r <= 7:
        cia_sync(io, b, now)
        cnt = io[b + (C_TA if r < 6 else C_TB)]
        return cnt & 0xFF if (r & 1) == 0 else cnt >> 8
    if r == 0x0D:
        cia_sync(io, b, now)
        flags = io[b + C_FLAGS]
        io[b + C_FLAGS] = 0
        io[EV_NEXT] = 0
        return flags | (0x80 if flags & io[b + C_MASK] else 0)
    if r == 0x0E:
        return io[b + C_CRA]
    if r == 0x0F:
        return io[b + C_CRB]
    return np.int64(ioram[off + r])


@njit(cache=True, nogil=True)
def cia_write(b, r, v, io, ioram, off, now):
    """Write register r of the CIA at base b: timer latches, interrupt mask and control registers."""
    ioram[off + r] = v
    if r < 4 or 8 <= r <= 0x0C:
        return
    cia_sync(io, b, now)
    if r == 4 or r == 6:
        lat = b + (C_TA_LATCH if r == 4 else C_TB_LATCH)
        io[lat] = (io[lat] & 0xFF00) | v
    elif r == 5 or r == 7:
        lat = b + (C_TA_LATCH if r == 5 else C_TB_LATCH)
        io[lat] = (io[lat] & 0xFF) | (v << 8)
        if not (io[b + (C_CRA if r == 5 else C_CRB)] & 1):  # stopped: load the counter
            io[lat + 1] = io[lat]
    elif r == 0x0D:
        if v & 0x80:
            io[b + C_MASK] |= v & 0x1F
        else:
            io[b + C_MASK] &= ~v & 0x1F
    else:
        lat = b + (C_TA_LATCH if r == 0x0E else C_TB_LATCH)
        if v & 0x10:  # force load
            io[lat + 1] = io[lat]
        io[lat + 2] = v & 0xEF
    io[EV_NEXT] = 0


# ---------------------------------------------------------------------------- dispatch


@njit(cache=True, nogil=True)
def io_read(a, io, ioram, now):
    """Read an address in $D000-$DFFF: VIC-II, SID, colour RAM, CIA1 or CIA2 (0 above $DE00)."""
    page = (a >> 8) & 0x0F
    if page < 4:
        return vic_read(a & 0x3F, io, ioram, now)
    if page < 8:
        return sid_read(a & 0x1F, io, ioram, SID_BASE, now)
    if page < 0x0C:
        return np.int64(ioram[a - 0xD000]) & 0x0F
    if page == 0x0C:
        return cia_read(CIA1, a & 0x0F, io, ioram, 0xC00, now)
    if page == 0x0D:
        return cia_read(CIA2, a & 0x0F, io, ioram, 0xD00, now)
    return 0  # $DE00-$DFFF: no expansion cartridge


@njit(cache=True, nogil=True)
def io_write(a, v, io, ioram, now):
    """Write an address in $D000-$DFFF: VIC-II, SID, colour RAM (low nibble), CIA1 or CIA2."""
    page = (a >> 8) & 0x0F
    if page < 4:
        vic_write(a & 0x3F, v, io, ioram, now)
    elif page < 8:
        sid_write(a & 0x1F, v, io, ioram, SID_BASE, now)
    elif page < 0x0C:
        ioram[a - 0xD000] = v & 0x0F
    elif page == 0x0C:
        cia_write(CIA1, a & 0x0F, v, io, ioram, 0xC00, now)
    elif page == 0x0D:
        cia_write(CIA2, a & 0x0F, v, io, ioram, 0xD00, now)


@njit(cache=True, nogil=True)
def io_events(io, now):
    """Bring VIC and CIAs to `now`; set io[IRQ_LINE]/io[NMI_LINE]; return the next cycle
    at which an interrupt source can change."""
    frame = io[V_LINES] * io[V_CPL]
    while io[V_NEXT] <= now:
        io[V_FLAGS] |= 1
        io[V_NEXT] += frame
    cia_sync(io, CIA1, now)
    cia_sync(io, CIA2, now)
    vic_irq = (io[V_FLAGS] & io[V_MASK]) != 0
    cia_irq = (io[CIA1 + C_FLAGS] & io[CIA1 + C_MASK]) != 0
    io[IRQ_LINE] = 1 if (vic_irq or cia_irq) else 0
    io[NMI_LINE] = 1 if (io[CIA2 + C_FLAGS] & io[CIA2 + C_MASK]) != 0 else 0
    return min(io[V_NEXT], cia_next(io, CIA1), cia_next(io, CIA2))


def new_io(lines: int, cycles_per_line: int, sid_log_capacity: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Fresh (io, ioram): timers stopped with latches $FFFF, raster compare line 0.
    sid_log_capacity > 0 appends a SID write log of that many entries (sidlive/c64/sidchip.py)."""
    io = np.zeros(IO_SIZE + (1 + 2 * sid_log_capacity if sid_log_capacity > 0 else 0), np.int64)
    ioram = np.zeros(0x1000, np.uint8)
    io[V_LINES], io[V_CPL] = lines, cycles_per_line
    io[V_NEXT] = 0
    for b in (CIA1, CIA2):
        io[b + C_TA_LATCH] = io[b + C_TA] = io[b + C_TB_LATCH] = io[b + C_TB] = 0xFFFF
    return io, ioram
