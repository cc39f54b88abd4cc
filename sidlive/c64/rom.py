"""The C64 a PSID tune boots onto: power-on RAM, a small stand-in ROM, chip start-up state.

No Commodore ROM is used or shipped. `rom_image()` is written here: BASIC ($A000-$BFFF)
and KERNAL ($E000-$FFFF) are filled with RTS, so a call into any ROM routine returns at
once, plus the few entry points players jump to:
  $FF48  IRQ entry: save A, X, Y; if the stacked P has B set JMP ($0316), else JMP ($0314)
  $EA31  default IRQ handler: advance the jiffy clock $A0-$A2 (as UDTIM), JMP $EA7E
  $EA7E  LDA $DC0D (acknowledge CIA 1), then $EA81: restore Y, X, A; RTI
  $FE43  NMI entry: SEI; JMP ($0318)
  $FE47  default NMI handler: save A, X, Y; LDA $DD0D (acknowledge CIA 2); JMP $FEBC
  $FEBC  restore Y, X, A; RTI
  $FCE2  reset: JAM
  $FFFA-$FFFF  vectors NMI $FE43, RESET $FCE2, IRQ/BRK $FF48
The character ROM ($D000-$DFFF with CHAREN clear) reads 0.

Power-on RAM follows libsidplayfp: each 16 KiB quarter is filled with $00 or $FF
(alternating, starting with $00) with 4-byte stripes of the opposite value at offsets
2-5 of every 8 bytes; the PSID driver then clears $0000-$03FE, and the RAM under the
SID ($D400-$D7FF) reads 0.
"""
from __future__ import annotations

import numpy as np

from sidlive.c64.cpu6510 import ST_P, ST_SIZE, ST_SP
from sidlive.c64.iochips import (C_CRA, C_CRB, C_MASK, C_REF, C_TA, C_TA_LATCH, CIA1, CIA2, SID_BASE, V_CMP, V_MASK,
                                 V_NEXT, new_io, port_write, raster_next)
from sidlive.c64.sidchip import sid_reset
from sidlive.frames import NTSC_CLOCK_HZ, PAL_CLOCK_HZ

PAL_SYSTEM = dict(clock_hz=PAL_CLOCK_HZ, lines=312, cycles_per_line=63, cia_latch=0x4025, pal_flag=1)
NTSC_SYSTEM = dict(clock_hz=NTSC_CLOCK_HZ, lines=263, cycles_per_line=65, cia_latch=0x4295, pal_flag=0)
SYSTEMS = {"PAL": PAL_SYSTEM, "NTSC": NTSC_SYSTEM}

PSID_CLEARED = 0x3FF  # the driver clears $0000-$03FE
BASIC_END_POINTERS = (0x2D, 0x2F, 0x31, 0xAE)  # LOAD leaves the end address here
BASIC_START_POINTER = 0xAC
PAL_FLAG_ADDR = 0x02A6
IRQ_VECTOR, BRK_VECTOR, NMI_VECTOR = 0x0314, 0x0316, 0x0318
DDR_DEFAULT, BANK_DEFAULT = 0x2F, 0x37
SID_VOLUME_DEFAULT = 0x0F

_SAVE_REGS = bytes([0x48, 0x8A, 0x48, 0x98, 0x48])  # PHA TXA PHA TYA PHA
_RESTORE_RTI = bytes([0x68, 0xA8, 0x68, 0xAA, 0x68, 0x40])  # PLA TAY PLA TAX PLA RTI
_ROM_CODE = (
    (0xFF48, _SAVE_REGS + bytes([0xBA, 0xBD, 0x04, 0x01, 0x29, 0x10, 0xF0, 0x03,  # TSX LDA $0104,X AND #$10 BEQ
                                 0x6C, 0x16, 0x03, 0x6C, 0x14, 0x03])),  # JMP ($0316) JMP ($0314)
    (0xEA31, bytes([0xE6, 0xA2, 0xD0, 0x06, 0xE6, 0xA1, 0xD0, 0x02, 0xE6, 0xA0,  # INC $A2 BNE
                    0x4C, 0x7E, 0xEA])),  # INC $A1 BNE INC $A0, JMP $EA7E
    (0xEA7E, bytes([0xAD, 0x0D, 0xDC]) + _RESTORE_RTI),  # LDA $DC0D, then $EA81
    (0xFE43, bytes([0x78, 0x6C, 0x18, 0x03])),  # SEI JMP ($0318)
    (0xFE47, _SAVE_REGS + bytes([0xAD, 0x0D, 0xDD, 0x4C, 0xBC, 0xFE])),  # LDA $DD0D JMP $FEBC
    (0xFEBC, _RESTORE_RTI),
    (0xFCE2, bytes([0x02])),  # JAM
    (0xFFFA, bytes([0x43, 0xFE, 0xE2, 0xFC, 0x48, 0xFF])),
)


def rom_image() -> np.ndarray:
    """(65536,) uint8: BASIC at $A000, character ROM (zeros) at $D000, KERNAL at $E000."""
    rom = np.zeros(0x10000, np.uint8)
    rom[0xA000:0xC000] = 0x60
    rom[0xE000:] = 0x60
    for addr, code in _ROM_CODE:
        rom[addr:addr + len(code)] = np.frombuffer(code, np.uint8)
    return rom


def power_on_pattern() -> np.ndarray:
    """libsidplayfp's power-up RAM fill, (65536,) uint8."""
    offset = np.arange(0x4000) & 7
    stripe = (offset >= 2) & (offset < 6)
    quarters = []
    for q in range(4):
        fill = 0x00 if q % 2 == 0 else 0xFF
        quarters.append(np.where(stripe, fill ^ 0xFF, fill).astype(np.uint8))
    return np.concatenate(quarters)


def psid_ram() -> np.ndarray:
    """The RAM a PSID tune is loaded into: the power-on fill, $0000-$03FE and $D400-$D7FF 0."""
    ram = power_on_pattern()
    ram[:PSID_CLEARED] = 0
    ram[0xD400:0xD800] = 0
    return ram


def iomap(addr: int) -> int:
    """The $01 value libsidplayfp's PSID driver banks in for code at `addr`."""
    if addr < 0xA000:
        return 0x37  # BASIC, KERNAL, I/O
    if addr < 0xD000:
        return 0x36  # KERNAL, I/O
    if addr >= 0xE000:
        return 0x35  # I/O only
    return 0x34  # RAM only


def trap_window(load_addr: int, end_addr: int) -> int:
    """A 16-byte-aligned window, outside the tune image [load_addr, end_addr), for the
    driver's traps. The I/O-2 area $DFF0 first (no code runs there on a real C64)."""
    for base in (0xDFF0, 0x0100, 0x02A0, 0x0340):
        if base + 16 <= load_addr or base >= end_addr:
            return base
    return (end_addr + 15) & 0xFFF0 if end_addr <= 0xFFE0 else (load_addr - 16) & 0xFFF0


def boot_machine(data: bytes, load_addr: int, system: dict, speed_cia: bool, init_bank: int,
                 irq_vector: int, exc_vector: int, play_vector: int | None = None,
                 sid_log_capacity: int = 0):
    """RAM, ROM, page map, I/O and CPU state as the PSID driver leaves them before init.

    $0314/$0316/$0318 get irq_vector/exc_vector/exc_vector, then the tune is loaded over
    them; play_vector, if given, is written to $0314 afterwards (the driver pointing the
    IRQ at its play job just before init).

    sid_log_capacity > 0 gives io a SID write log of that many entries (c64_sid.py).
    Returns (st, ram, rom, pmap, io, ioram); the CPU is left at SP=$FF, P=$24 (I set).
    """
    ram = psid_ram()
    rom = rom_image()
    pmap = np.zeros(16, np.int64)
    pmap[0] = 1  # page 0 holds the CPU port
    io, ioram = new_io(system["lines"], system["cycles_per_line"], sid_log_capacity)
    sid_reset(io, SID_BASE)
    end = load_addr + len(data)
    ram[PAL_FLAG_ADDR] = system["pal_flag"]
    for p in BASIC_END_POINTERS:
        ram[p], ram[p + 1] = end & 0xFF, (end >> 8) & 0xFF
    ram[BASIC_START_POINTER], ram[BASIC_START_POINTER + 1] = load_addr & 0xFF, load_addr >> 8
    for vec, target in ((IRQ_VECTOR, irq_vector), (BRK_VECTOR, exc_vector), (NMI_VECTOR, exc_vector)):
        ram[vec], ram[vec + 1] = target & 0xFF, target >> 8
    ram[load_addr:end] = np.frombuffer(data, np.uint8)
    if play_vector is not None:
        ram[IRQ_VECTOR], ram[IRQ_VECTOR + 1] = play_vector & 0xFF, play_vector >> 8
    port_write(0, DDR_DEFAULT, ram, pmap, io)
    port_write(1, init_bank, ram, pmap, io)
    # KERNAL IOINIT: CIA 1 timer A free-running at the 60 Hz latch, CIA 2 quiet.
    ioram[0xC00:0xC04] = (0x7F, 0xFF, 0xFF, 0x00)  # PRA, PRB, DDRA, DDRB
    ioram[0xD00:0xD04] = (0x97, 0xFF, 0x3F, 0x00)
    io[CIA1 + C_TA_LATCH] = io[CIA1 + C_TA] = system["cia_latch"]
    io[CIA1 + C_CRA] = 0x01
    io[CIA1 + C_CRB] = io[CIA2 + C_CRA] = io[CIA2 + C_CRB] = 0x08
    io[CIA1 + C_REF] = io[CIA2 + C_REF] = 0
    # PSID driver: raster compare line 0; VBI: raster IRQ on, CIA 1 timer A IRQ off.
    ioram[0x11], ioram[0x12] = 0x1B, 0x00
    io[V_CMP] = 0
    io[V_NEXT] = raster_next(io, 0, 0)
    io[V_MASK] = 0 if speed_cia else 1
    io[CIA1 + C_MASK] = 1 if speed_cia else 0
    io[CIA2 + C_MASK] = 0
    ioram[0x400 + 0x18] = SID_VOLUME_DEFAULT
    st = np.zeros(ST_SIZE, np.int64)
    st[ST_SP] = 0xFF
    st[ST_P] = 0x24
    return st, ram, rom, pmap, io, ioram
