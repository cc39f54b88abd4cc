"""The 6510 CPU (NMOS 6502 core) as a Numba kernel: every opcode, exact cycles, BCD.

`cpu_run` executes instructions until an event is due, the PC enters the trap window, or
a JAM opcode is fetched. Registers live in a small int64 array `st` between calls:
A, X, Y, SP, P, PC, cycles, instructions (`ST_*`). Memory goes through `rd`/`wr`, which
follow a 16-entry page map (4 KiB pages: RAM, RAM with the $00/$01 port, ROM, I/O); a
flat 64 KiB RAM (the Klaus and py65 tests) is the all-RAM map (`flat_pmap`).

Decode is table driven (sidlive/c64/opcodes.py): addressing mode, then one branch per
operation group (read / store / read-modify-write / other). Cycles are exact: base cycles,
+1 for a page cross on reads in abs,X / abs,Y / (zp),Y, +1 for a taken branch and +1
more when it crosses a page. Read-modify-write instructions on I/O write the old value
before the new one, as the NMOS part does (DEC $D019 acknowledges). Undocumented opcodes:
SLO RLA SRE RRA SAX LAX DCP ISC ANC ALR ARR SBX, the NOP family with its operand sizes,
SBC $EB, and the unstable ANE/LXA (magic constant $EE), LAS, SHA/SHX/SHY/TAS (value &
(base high + 1); on a page cross that value also becomes the address high byte). JAM
opcodes stop with RUN_JAM, the PC left on the JAM.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from sidlive.c64.iochips import EV_NEXT, IRQ_LINE, PAGE_IO, PAGE_PORT, PAGE_ROM, io_read, io_write, port_write
from sidlive.c64.opcodes import (CROSS, CYC, FLAG_B, FLAG_C, FLAG_D, FLAG_I, FLAG_N, FLAG_U, FLAG_V, FLAG_Z, G_READ,
                                 G_RMW, G_STORE, GROUP, K_ADC, K_ALR, K_ANC, K_AND, K_ANE, K_ARR, K_ASL, K_BIT, K_BR,
                                 K_BRK, K_CLC, K_CLD, K_CLI, K_CLV, K_CMP, K_CPX, K_CPY, K_DCP, K_DEX, K_DEY, K_EOR,
                                 K_INC, K_INX, K_INY, K_ISC, K_JAM, K_JMP, K_JSR, K_LAS, K_LAX, K_LDA, K_LDX, K_LDY,
                                 K_LSR, K_LXA, K_ORA, K_PHA, K_PHP, K_PLA, K_PLP, K_RLA, K_ROL, K_ROR, K_RRA, K_RTI,
                                 K_RTS, K_SAX, K_SBC, K_SBX, K_SEC, K_SED, K_SEI, K_SHA, K_SHX, K_SLO, K_SRE, K_STA,
                                 K_STX, K_STY, K_TAS, K_TAX, K_TAY, K_TSX, K_TXA, K_TXS, K_TYA, KIND, M_ABS, M_ABX,
                                 M_IMM, M_IMP, M_IND, M_IZX, M_IZY, M_REL, M_ZP, M_ZPX, M_ZPY, MODE, adc, arr,
                                 compare, nz, sbc)

ST_A, ST_X, ST_Y, ST_SP, ST_P, ST_PC, ST_CYC, ST_INSN = range(8)
ST_SIZE = 8
RUN_EVENT, RUN_TRAP, RUN_JAM = 0, 1, 2
NO_TRAP = 0x10000  # a trap base no PC can match

# ---------------------------------------------------------------------------- bus


def flat_pmap() -> np.ndarray:
    """The page map of a flat 64 KiB RAM (no ROM, no I/O, no CPU port)."""
    return np.zeros(16, np.int64)


@njit(cache=True, nogil=True, inline='always')
def rd(a, ram, rom, pmap, io, ioram, now):
    """Read a byte at address a through the page map (RAM, ROM or I/O)."""
    k = pmap[a >> 12]
    if k < PAGE_ROM:
        return np.int64(ram[a])
    if k == PAGE_ROM:
        return np.int64(rom[a])
    return io_read(a, io, ioram, now)


@njit(cache=True, nogil=True, inline='always')
def wr(a, v, ram, rom, pmap, io, ioram, now):
    """Write byte v at address a through the page map (I/O, the $00/$01 port, else RAM)."""
    k = pmap[a >> 12]
    if k == PAGE_IO:
        io_write(a, v, io, ioram, now)
    elif k == PAGE_PORT and a < 2:
        port_write(a, v, ram, pmap, io)
    else:
        ram[a] = v


@njit(cache=True, nogil=True)
def push(st, ram, v):
    """Push a byte onto the stack (page $01) and decrement SP."""
    ram[0x100 + st[ST_SP]] = v & 0xFF
    st[ST_SP] = (st[ST_SP] - 1) & 0xFF


@njit(cache=True, nogil=True)
def pull(st, ram):
    """Increment SP and return the byte on top of the stack."""
    st[ST_SP] = (st[ST_SP] + 1) & 0xFF
    return np.int64(ram[0x100 + st[ST_SP]])


@njit(cache=True, nogil=True)
def interrupt(st, ram, rom, pmap, io, ioram, vector):
    """Take an IRQ or NMI (7 cycles): push PC and P (B clear), set I, jump via `vector`."""
    pc = st[ST_PC]
    push(st, ram, pc >> 8)
    push(st, ram, pc)
    push(st, ram, (st[ST_P] & ~FLAG_B) | FLAG_U)
    st[ST_P] |= FLAG_I
    now = st[ST_CYC] + 6
    st[ST_PC] = rd(vector, ram, rom, pmap, io, ioram, now) | (rd(vector + 1, ram, rom, pmap, io, ioram, now) << 8)
    st[ST_CYC] += 7


@njit(cache=True, nogil=True)
def cpu_run(st, ram, rom, pmap, io, ioram, trap_base, trap_mask):
    """Run until cycles >= io[EV_NEXT] (checked before each instruction), the PC matches
    the trap (pc & trap_mask == trap_base), or a JAM opcode. Returns RUN_*."""
    a, x, y, sp, p, pc = st[ST_A], st[ST_X], st[ST_Y], st[ST_SP], st[ST_P], st[ST_PC]
    cyc, insn = st[ST_CYC], st[ST_INSN]
    status = RUN_EVENT
    while True:
        if cyc >= io[EV_NEXT]:
            status = RUN_EVENT
            break
        if (pc & trap_mask) == trap_base:
            status = RUN_TRAP
            break
        op = rd(pc, ram, rom, pmap, io, ioram, cyc)
        m = MODE[op]
        g = GROUP[op]
        k = KIND[op]
        if k == K_JAM:
            status = RUN_JAM
            break
        cyc += CYC[op]
        insn += 1
        now = cyc - 1
        # ---- addressing: ea is the operand address
        ea = 0
        if m == M_IMP:
            pc = (pc + 1) & 0xFFFF
        elif m == M_IMM or m == M_REL:
            ea = (pc + 1) & 0xFFFF
            pc = (pc + 2) & 0xFFFF
        elif m == M_ZP:
            ea = rd((pc + 1) & 0xFFFF, ram, rom, pmap, io, ioram, now)
            pc = (pc + 2) & 0xFFFF
        elif m == M_ZPX or m == M_ZPY:
            ea = (rd((pc + 1) & 0xFFFF, ram, rom, pmap, io, ioram, now) + (x if m == M_ZPX else y)) & 0xFF
            pc = (pc + 2) & 0xFFFF
        elif m == M_IZX:
            z = (rd((pc + 1) & 0xFFFF, ram, rom, pmap, io, ioram, now) + x) & 0xFF
            ea = np.int64(ram[z]) | (np.int64(ram[(z + 1) & 0xFF]) << 8)
            pc = (pc + 2) & 0xFFFF
        elif m == M_IZY:
            z = rd((pc + 1) & 0xFFFF, ram, rom, pmap, io, ioram, now)
            base = np.int64(ram[z]) | (np.int64(ram[(z + 1) & 0xFF]) << 8)
            ea = (base + y) & 0xFFFF
            if CROSS[op] and (base ^ ea) & 0xFF00:
                cyc += 1
                now += 1
            pc = (pc + 2) & 0xFFFF
        else:  # absolute family: abs, abx, aby, ind
            base = (rd((pc + 1) & 0xFFFF, ram, rom, pmap, io, ioram, now)
                    | (rd((pc + 2) & 0xFFFF, ram, rom, pmap, io, ioram, now) << 8))
            pc = (pc + 3) & 0xFFFF
            if m == M_ABS:
                ea = base
            elif m == M_IND:  # NMOS: the pointer's high byte is fetched within its page
                ea = (rd(base, ram, rom, pmap, io, ioram, now)
                      | (rd((base & 0xFF00) | ((base + 1) & 0xFF), ram, rom, pmap, io, ioram, now) << 8))
            else:
                ea = (base + (x if m == M_ABX else y)) & 0xFFFF
                if CROSS[op] and (base ^ ea) & 0xFF00:
                    cyc += 1
                    now += 1
        # ---- execute
        if g == G_READ:
            v = rd(ea, ram, rom, pmap, io, ioram, now)
            if k == K_LDA:
                a = v
                p = nz(p, a)
            elif k == K_CMP:
                p = compare(a, v, p)
            elif k == K_AND:
                a &= v
                p = nz(p, a)
            elif k == K_ADC:
                a, p = adc(a, v, p)
            elif k == K_LDX:
                x = v
                p = nz(p, x)
            elif k == K_LDY:
                y = v
                p = nz(p, y)
            elif k == K_ORA:
                a |= v
                p = nz(p, a)
            elif k == K_EOR:
                a ^= v
                p = nz(p, a)
            elif k == K_SBC:
                a, p = sbc(a, v, p)
            elif k == K_CPX:
                p = compare(x, v, p)
            elif k == K_CPY:
                p = compare(y, v, p)
            elif k == K_BIT:
                p = (p & 0x3D) | (v & 0xC0) | (FLAG_Z if (a & v) == 0 else 0)
            elif k == K_LAX:
                a = v
                x = v
                p = nz(p, v)
            elif k == K_ANC:
                a &= v
                p = nz(p, a) & 0xFE | (a >> 7)
            elif k == K_ALR:
                t = a & v
                a = t >> 1
                p = nz(p, a) & 0xFE | (t & 1)
            elif k == K_ARR:
                a, p = arr(a, v, p)
            elif k == K_SBX:
                t = (a & x) - v
                x = t & 0xFF
                p = nz(p, x) & 0xFE | (1 if t >= 0 else 0)
            elif k == K_ANE:
                a = (a | 0xEE) & x & v
                p = nz(p, a)
            elif k == K_LXA:
                a = (a | 0xEE) & v
                x = a
                p = nz(p, a)
            elif k == K_LAS:
                a = v & sp
                x = a
                sp = a
                p = nz(p, a)
            # NOPR: the read is the whole effect
        elif g == G_STORE:
            if k == K_STA:
                v = a
            elif k == K_STX:
                v = x
            elif k == K_STY:
                v = y
            elif k == K_SAX:
                v = a & x
            else:  # SHA SHX SHY TAS: value & (base high + 1); a page cross puts it in the address
                if k == K_TAS:
                    sp = a & x
                    r = sp
                elif k == K_SHA:
                    r = a & x
                elif k == K_SHX:
                    r = x
                else:
                    r = y
                idx = x if m == M_ABX else y
                base = (ea - idx) & 0xFFFF
                v = r & (((base >> 8) + 1) & 0xFF)
                if (base ^ ea) & 0xFF00:
                    ea = (v << 8) | (ea & 0xFF)
            wr(ea, v, ram, rom, pmap, io, ioram, now)
        elif g == G_RMW:
            if m == M_IMP:
                v = a
            else:
                v = rd(ea, ram, rom, pmap, io, ioram, now - 2)
                if pmap[ea >> 12] == PAGE_IO:  # the NMOS dummy write of the old value
                    wr(ea, v, ram, rom, pmap, io, ioram, now - 1)
            if k == K_ASL or k == K_SLO:
                c = v >> 7
                v = (v << 1) & 0xFF
            elif k == K_LSR or k == K_SRE:
                c = v & 1
                v >>= 1
            elif k == K_ROL or k == K_RLA:
                c = v >> 7
                v = ((v << 1) | (p & 1)) & 0xFF
            elif k == K_ROR or k == K_RRA:
                c = v & 1
                v = (v >> 1) | ((p & 1) << 7)
            elif k == K_INC or k == K_ISC:
                c = p & 1
                v = (v + 1) & 0xFF
            else:  # DEC DCP
                c = p & 1
                v = (v - 1) & 0xFF
            p = nz(p, v) & 0xFE | c
            if m == M_IMP:
                a = v
            else:
                wr(ea, v, ram, rom, pmap, io, ioram, now)
            if k == K_SLO:
                a |= v
                p = nz(p, a)
            elif k == K_RLA:
                a &= v
                p = nz(p, a)
            elif k == K_SRE:
                a ^= v
                p = nz(p, a)
            elif k == K_RRA:
                a, p = adc(a, v, p)
            elif k == K_DCP:
                p = compare(a, v, p)
            elif k == K_ISC:
                a, p = sbc(a, v, p)
        else:
            if k == K_BR:
                flag = (FLAG_N, FLAG_V, FLAG_C, FLAG_Z)[op >> 6]
                want = (op >> 5) & 1
                if ((p & flag) != 0) == (want == 1):
                    off = rd(ea, ram, rom, pmap, io, ioram, now)
                    target = (pc + off - (0x100 if off & 0x80 else 0)) & 0xFFFF
                    cyc += 1 + (1 if (target ^ pc) & 0xFF00 else 0)
                    pc = target
            elif k == K_JSR:
                ret = (pc - 1) & 0xFFFF
                ram[0x100 + sp] = ret >> 8
                ram[0x100 + ((sp - 1) & 0xFF)] = ret & 0xFF
                sp = (sp - 2) & 0xFF
                pc = ea
            elif k == K_RTS:
                lo = np.int64(ram[0x100 + ((sp + 1) & 0xFF)])
                hi = np.int64(ram[0x100 + ((sp + 2) & 0xFF)])
                sp = (sp + 2) & 0xFF
                pc = ((lo | (hi << 8)) + 1) & 0xFFFF
            elif k == K_JMP:
                pc = ea
            elif k == K_INX:
                x = (x + 1) & 0xFF
                p = nz(p, x)
            elif k == K_DEX:
                x = (x - 1) & 0xFF
                p = nz(p, x)
            elif k == K_INY:
                y = (y + 1) & 0xFF
                p = nz(p, y)
            elif k == K_DEY:
                y = (y - 1) & 0xFF
                p = nz(p, y)
            elif k == K_TAX:
                x = a
                p = nz(p, x)
            elif k == K_TXA:
                a = x
                p = nz(p, a)
            elif k == K_TAY:
                y = a
                p = nz(p, y)
            elif k == K_TYA:
                a = y
                p = nz(p, a)
            elif k == K_CLC:
                p &= ~FLAG_C
            elif k == K_SEC:
                p |= FLAG_C
            elif k == K_PHA:
                ram[0x100 + sp] = a
                sp = (sp - 1) & 0xFF
            elif k == K_PLA:
                sp = (sp + 1) & 0xFF
                a = np.int64(ram[0x100 + sp])
                p = nz(p, a)
            elif k == K_PHP:
                ram[0x100 + sp] = p | FLAG_B | FLAG_U
                sp = (sp - 1) & 0xFF
            elif k == K_PLP or k == K_RTI:
                sp = (sp + 1) & 0xFF
                p = (np.int64(ram[0x100 + sp]) & ~FLAG_B) | FLAG_U
                if k == K_RTI:
                    lo = np.int64(ram[0x100 + ((sp + 1) & 0xFF)])
                    hi = np.int64(ram[0x100 + ((sp + 2) & 0xFF)])
                    sp = (sp + 2) & 0xFF
                    pc = lo | (hi << 8)
                if io[IRQ_LINE] and not (p & FLAG_I):
                    io[EV_NEXT] = 0  # let the machine take the pending IRQ
            elif k == K_CLI:
                p &= ~FLAG_I
                if io[IRQ_LINE]:
                    io[EV_NEXT] = 0
            elif k == K_SEI:
                p |= FLAG_I
            elif k == K_CLD:
                p &= ~FLAG_D
            elif k == K_SED:
                p |= FLAG_D
            elif k == K_CLV:
                p &= ~FLAG_V
            elif k == K_TSX:
                x = sp
                p = nz(p, x)
            elif k == K_TXS:
                sp = x
            elif k == K_BRK:
                ret = (pc + 1) & 0xFFFF  # BRK skips a padding byte
                ram[0x100 + sp] = ret >> 8
                ram[0x100 + ((sp - 1) & 0xFF)] = ret & 0xFF
                ram[0x100 + ((sp - 2) & 0xFF)] = p | FLAG_B | FLAG_U
                sp = (sp - 3) & 0xFF
                p |= FLAG_I
                pc = rd(0xFFFE, ram, rom, pmap, io, ioram, now) | (rd(0xFFFF, ram, rom, pmap, io, ioram, now) << 8)
            # NOP: nothing
    st[ST_A], st[ST_X], st[ST_Y], st[ST_SP], st[ST_P], st[ST_PC] = a, x, y, sp, p, pc
    st[ST_CYC], st[ST_INSN] = cyc, insn
    return status
