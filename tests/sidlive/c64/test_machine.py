"""The C64 around the CPU: power-on RAM, banking, ROM entry points, CIA, VIC, SID reads, and
the PSID frame driver on small tunes assembled here and on a few real ones."""
import struct

import numpy as np
import pytest

from sidlive.c64.cpu6510 import RUN_TRAP, ST_CYC, ST_PC, ST_SP, cpu_run, interrupt, rd, wr
from sidlive.c64.iochips import C_FLAGS, CIA2, EV_NEXT, IRQ_LINE, NMI_LINE, io_events, io_read, io_write, new_io
from sidlive.c64.machine import run_psid
from sidlive.c64.rom import PAL_SYSTEM, boot_machine, power_on_pattern, psid_ram
from sidlive.c64.sidchip import sid_reset

PAL_FRAME = 19_656


# ---------------------------------------------------------------------------- machine


def test_power_on_ram_is_libsidplayfps():
    from pysidtracker.poweron import power_on_ram, ram_pattern
    assert power_on_pattern().tobytes() == bytes(ram_pattern())
    assert psid_ram().tobytes() == bytes(power_on_ram())
    assert list(power_on_pattern()[0x4000:0x4008]) == [0xFF, 0xFF, 0, 0, 0, 0, 0xFF, 0xFF]


def _machine(speed_cia=False, bank=0x37, data=b"\xea", load=0x1000):
    return boot_machine(data, load, PAL_SYSTEM, speed_cia, bank, irq_vector=0xEA31, exc_vector=0xDFF4)


def test_processor_port_banks_rom_and_io():
    st, ram, rom, pmap, io, ioram = _machine()
    assert (ram[0], ram[1]) == (0x2F, 0x37)

    def read(a):
        return rd(a, ram, rom, pmap, io, ioram, 100)

    wr(0xA000, 0x55, ram, rom, pmap, io, ioram, 100)  # writes under ROM reach RAM
    wr(0xE000, 0x66, ram, rom, pmap, io, ioram, 100)
    assert (read(0xA000), read(0xE000), read(0xFFFE), read(0xFFFF)) == (0x60, 0x60, 0x48, 0xFF)
    wr(0x0001, 0x36, ram, rom, pmap, io, ioram, 100)
    assert (read(0xA000), read(0xE000)) == (0x55, 0x60)
    wr(0x0001, 0x35, ram, rom, pmap, io, ioram, 100)
    assert (read(0xA000), read(0xE000)) == (0x55, 0x66)
    wr(0xD400, 0x12, ram, rom, pmap, io, ioram, 100)  # I/O in: the SID, not RAM
    assert (ioram[0x400], ram[0xD400]) == (0x12, 0)
    wr(0x0001, 0x34, ram, rom, pmap, io, ioram, 100)  # all RAM
    wr(0xD400, 0x34, ram, rom, pmap, io, ioram, 100)
    assert (read(0xD400), ioram[0x400], read(0xE000)) == (0x34, 0x12, 0x66)
    wr(0x0001, 0x33, ram, rom, pmap, io, ioram, 100)  # character ROM (empty here) at $D000
    assert read(0xD400) == 0
    wr(0x0000, 0x28, ram, rom, pmap, io, ioram, 100)  # bits 0-2 as inputs float high: $37
    assert read(0xA000) == 0x60 and read(0x0001) == (0x33 & 0x28) | (~0x28 & 0x1F)


def test_sid_writes_are_mirrored_every_32_bytes():
    st, ram, rom, pmap, io, ioram = _machine()
    wr(0xD420, 0x11, ram, rom, pmap, io, ioram, 0)
    wr(0xD7F8, 0x22, ram, rom, pmap, io, ioram, 0)
    assert (ioram[0x400], ioram[0x418]) == (0x11, 0x22)
    assert ioram[0x418] == 0x22 and rd(0xD419, ram, rom, pmap, io, ioram, 0) == 0xFF


def test_rom_irq_entry_dispatches_irq_and_brk_vectors():
    st, ram, rom, pmap, io, ioram = _machine()
    ram[0x0314:0x0318] = [0x00, 0x30, 0x00, 0x31]
    st[ST_PC] = 0x1234
    interrupt(st, ram, rom, pmap, io, ioram, 0xFFFE)
    assert st[ST_PC] == 0xFF48 and st[ST_CYC] == 7
    io[EV_NEXT] = 1000
    assert cpu_run(st, ram, rom, pmap, io, ioram, 0x3000, 0xFFFF) == RUN_TRAP  # via JMP ($0314)
    assert st[ST_SP] == 0xFF - 6
    ram[0x2000] = 0x00  # BRK: the stacked B flag sends it through ($0316)
    st[ST_PC] = 0x2000
    assert cpu_run(st, ram, rom, pmap, io, ioram, 0x3100, 0xFFFF) == RUN_TRAP


# ---------------------------------------------------------------------------- chips


def _io():
    io, ioram = new_io(312, 63)
    sid_reset(io, 40)
    return io, ioram


def test_cia_timer_counts_reloads_and_flags_underflow():
    io, ioram = _io()
    io_write(0xDC04, 0x10, io, ioram, 0)
    io_write(0xDC05, 0x00, io, ioram, 0)  # stopped: the counter loads the latch
    io_write(0xDC0D, 0x81, io, ioram, 0)  # timer A may interrupt
    io_write(0xDC0E, 0x01, io, ioram, 100)  # start, continuous
    assert io_read(0xDC04, io, ioram, 105) == 11
    assert io_events(io, 110) == 117  # next underflow: 16 counts + 1 reload cycle after 100
    assert io[IRQ_LINE] == 0
    io_events(io, 117)
    assert io[IRQ_LINE] == 1 and io_read(0xDC04, io, ioram, 117) == 0x10
    assert io_read(0xDC0D, io, ioram, 120) == 0x81  # reading clears
    assert io_read(0xDC0D, io, ioram, 121) == 0x00
    io_events(io, 121)
    assert io[IRQ_LINE] == 0
    assert io_read(0xDC04, io, ioram, 117 + 17 * 3) == 0x10  # period latch + 1


def test_cia_one_shot_force_load_and_timer_b_chain():
    io, ioram = _io()
    io_write(0xDC04, 0x05, io, ioram, 0)
    io_write(0xDC05, 0x00, io, ioram, 0)
    io_write(0xDC0E, 0x09, io, ioram, 0)  # one-shot, start
    assert io_read(0xDC0D, io, ioram, 50) == 0x01 and io_read(0xDC0E, io, ioram, 50) == 0x08
    assert io_read(0xDC04, io, ioram, 60) == 0x05  # stopped at the latch
    io_write(0xDC04, 0x40, io, ioram, 70)
    assert io_read(0xDC04, io, ioram, 71) == 0x05  # latch only
    io_write(0xDC0E, 0x10, io, ioram, 72)  # force load, stay stopped
    assert io_read(0xDC04, io, ioram, 80) == 0x40
    # timer B counts timer A underflows: TB latch 2 underflows on the 3rd TA underflow
    io_write(0xDD04, 0x09, io, ioram, 0)
    io_write(0xDD05, 0x00, io, ioram, 0)
    io_write(0xDD06, 0x02, io, ioram, 0)
    io_write(0xDD07, 0x00, io, ioram, 0)
    io_write(0xDD0D, 0x82, io, ioram, 0)  # CIA 2 timer B -> NMI
    io_write(0xDD0F, 0x41, io, ioram, 0)
    io_write(0xDD0E, 0x01, io, ioram, 0)
    assert io_events(io, 1) == 30  # TA underflows at 10, 20, 30
    assert io[NMI_LINE] == 0
    io_events(io, 30)
    assert io[NMI_LINE] == 1 and io[CIA2 + C_FLAGS] == 0x03


def test_vic_raster_register_and_compare_irq():
    io, ioram = _io()
    t = 300 * 63 + 5
    assert io_read(0xD012, io, ioram, t) == 300 - 256
    assert io_read(0xD011, io, ioram, t) & 0x80
    assert io_read(0xD052, io, ioram, PAL_FRAME + 63 * 7) == 7  # mirrored every $40
    io_write(0xD012, 100, io, ioram, 0)
    io_write(0xD01A, 0x01, io, ioram, 0)
    assert io_events(io, 10) == 100 * 63
    io_events(io, 100 * 63)
    assert io[IRQ_LINE] == 1 and io_read(0xD019, io, ioram, 100 * 63) == 0xF1
    io_write(0xD019, 0x01, io, ioram, 100 * 63 + 10)
    assert io_events(io, 100 * 63 + 10) == PAL_FRAME + 100 * 63 and io[IRQ_LINE] == 0


def test_sid_osc3_and_env3_models():
    io, ioram = _io()
    io_write(0xD40E, 0x00, io, ioram, 0)
    io_write(0xD40F, 0x10, io, ioram, 0)  # freq $1000: the accumulator gains $1000 per cycle
    io_write(0xD413, 0x00, io, ioram, 0)  # attack rate 0: 9 cycles per step
    io_write(0xD414, 0xF0, io, ioram, 0)  # sustain 15, release rate 0
    io_write(0xD412, 0x21, io, ioram, 0)  # sawtooth, gate on
    assert io_read(0xD41B, io, ioram, 256) == 0x10  # acc $100000: top byte $10
    assert io_read(0xD41C, io, ioram, 900) == 100
    assert io_read(0xD41C, io, ioram, 10_000) == 255  # sustain 15 * 17
    io_write(0xD410, 0x00, io, ioram, 10_000)
    io_write(0xD411, 0x08, io, ioram, 10_000)  # pulse width $800: high half the period
    io_write(0xD412, 0x40, io, ioram, 10_000)  # pulse, gate off: release at rate 0
    assert io_read(0xD41C, io, ioram, 10_000 + 9 * 10) == 245
    acc = (10_000 + 2048) * 0x1000 & 0xFFFFFF
    assert io_read(0xD41B, io, ioram, 10_000 + 2048) == (0xFF if acc >> 12 >= 0x800 else 0)
    io_write(0xD412, 0x88, io, ioram, 20_000)  # noise + test bit: accumulator 0, LFSR reset
    io_write(0xD412, 0x80, io, ioram, 20_000)
    first = [io_read(0xD41B, io, ioram, 20_000 + 4096 * k) for k in range(8)]
    io2, ioram2 = _io()
    io_write(0xD40F, 0x10, io2, ioram2, 0)
    io_write(0xD412, 0x80, io2, ioram2, 0)
    assert first == [io_read(0xD41B, io2, ioram2, 4096 * k) for k in range(8)]  # deterministic
    assert len(set(first)) > 2
    assert io_read(0xD400, io, ioram, 20_100) == 0x80  # write-only: the bus keeps the last write
    assert io_read(0xD400, io, ioram, 40_000) == 0  # ... until it decays


# ---------------------------------------------------------------------------- driver

INIT = 0x1000
PLAY = 0x1020
HANDLER = 0x1040
# $D400 = $20 = counter at $02; $D404 = $41
SET_D400 = [0xA9, 0x20, 0x85, 0x02, 0x8D, 0x00, 0xD4, 0xA9, 0x41, 0x8D, 0x04, 0xD4]
INC_D400 = [0xE6, 0x02, 0xA5, 0x02, 0x8D, 0x00, 0xD4]  # INC $02, LDA $02, STA $D400
INC_D400_RTS = INC_D400 + [0x60]


def _tune(init, play=INC_D400_RTS, handler=()):
    """A program at $1000: init at $1000, play at $1020, handler at $1040."""
    img = bytearray(0x60)
    img[0:len(init)] = bytes(init)
    img[0x20:0x20 + len(play)] = bytes(play)
    img[0x40:0x40 + len(handler)] = bytes(handler)
    return bytes(img)


def _psid(data, load, init, play):
    head = struct.pack(">4sHHHHHHHI", b"PSID", 2, 0x7C, 0, init, play, 1, 1, 0)
    head += b"t".ljust(32, b"\0") + b"a".ljust(32, b"\0") + b"r".ljust(32, b"\0")
    head += struct.pack(">HBBH", 0x0014, 0, 0, 0)  # flags: PAL, 6581
    return head + struct.pack("<H", load) + data


def test_vbi_tune_calls_play_once_per_frame_and_matches_the_oracle():
    from pysidtracker.oracle import register_grid
    data = _tune(SET_D400 + [0x60])
    r = run_psid(data, 0x1000, INIT, PLAY, 0, 50, speed_cia=False, mark_gate_retriggers=False)
    assert r.status == "ok" and r.speed == "vbi" and r.regs.shape == (50, 25)
    assert list(r.regs[:, 0]) == [0x21 + k for k in range(50)]
    assert (r.regs[:, 4] == 0x41).all() and (r.regs[:, 0x18] == 0x0F).all()
    assert r.play_calls == 50 and r.play_hz == pytest.approx(985_248 / PAL_FRAME)
    grid = np.array(register_grid(_psid(data, 0x1000, INIT, PLAY), 50), np.uint8)
    assert (grid == r.regs).all()


def test_cia_tune_with_doubled_timer_plays_twice_per_frame():
    latch = PAL_FRAME // 2 - 1  # period latch + 1 = half a frame
    init = SET_D400 + [0xA9, latch & 0xFF, 0x8D, 0x04, 0xDC, 0xA9, latch >> 8, 0x8D, 0x05, 0xDC,
                       0xA9, 0x11, 0x8D, 0x0E, 0xDC, 0x60]  # force load + start timer A
    r = run_psid(_tune(init), 0x1000, INIT, PLAY, 0, 40, speed_cia=True)
    assert r.status == "ok" and r.speed == "cia"
    assert r.play_hz == pytest.approx(2 * 985_248 / PAL_FRAME, rel=0.01)
    assert (np.diff(r.regs[:, 0].astype(int)) == 2).all()
    assert 2 * 40 - 2 <= r.play_calls <= 2 * 40


def test_cia_tune_left_at_the_kernal_rate_plays_at_60_hz():
    r = run_psid(_tune(SET_D400 + [0x60]), 0x1000, INIT, PLAY, 0, 500, speed_cia=True)
    assert r.play_hz == pytest.approx(985_248 / 0x4026, rel=0.01)


def test_play_zero_runs_the_tunes_own_irq_handler():
    init = [0xA9, HANDLER & 0xFF, 0x8D, 0x14, 0x03, 0xA9, HANDLER >> 8, 0x8D, 0x15, 0x03] + SET_D400 + [0x60]
    handler = INC_D400 + [0xA5, 0xA2, 0x8D, 0x01, 0xD4,  # $D401 = jiffy clock low byte
                          0x4E, 0x19, 0xD0, 0x4C, 0x31, 0xEA]  # LSR $D019, JMP $EA31
    r = run_psid(_tune(init, play=[], handler=handler), 0x1000, INIT, 0, 0, 30, speed_cia=False)
    assert r.status == "ok"
    assert list(r.regs[:, 0]) == [0x21 + k for k in range(30)]
    assert list(r.regs[:, 1]) == list(range(30))  # $EA31 advanced the jiffy clock each time
    assert r.play_calls == 30  # LSR's dummy write of the old value acknowledged the raster IRQ


def test_endless_play_times_out():
    r = run_psid(_tune(SET_D400 + [0x60], play=[0x4C, 0x20, 0x10]), 0x1000, INIT, PLAY, 0, 100,
                 speed_cia=False, max_frame_cycles=50_000)
    assert r.status == "play_timeout" and "$1020" in r.message and len(r.regs) <= 3


def test_endless_init_times_out():
    r = run_psid(_tune([0x4C, 0x00, 0x10]), 0x1000, INIT, PLAY, 0, 10, speed_cia=False,
                 max_init_cycles=100_000)
    assert r.status == "init_timeout" and len(r.regs) == 0 and "$1000" in r.message


def test_jam_in_play_stops_with_its_address():
    r = run_psid(_tune(SET_D400 + [0x60], play=[0xEA, 0x02]), 0x1000, INIT, PLAY, 0, 10, speed_cia=False)
    assert r.status == "jam" and "$1021" in r.message


def test_brk_without_handler_is_reported():
    r = run_psid(_tune(SET_D400 + [0x60], play=[0x00, 0xEA]), 0x1000, INIT, PLAY, 0, 10, speed_cia=False)
    assert r.status == "jam" and "BRK" in r.message and "$1022" in r.message


def test_tune_under_the_kernal_is_banked_in():
    code = bytearray(0x20)
    code[0:8] = [0xA9, 0x33, 0x85, 0x02, 0x8D, 0x00, 0xD4, 0x60]
    code[0x10:0x18] = INC_D400_RTS
    r = run_psid(bytes(code), 0xE000, 0xE000, 0xE010, 0, 5, speed_cia=False)
    assert r.status == "ok" and list(r.regs[:, 0]) == [0x34, 0x35, 0x36, 0x37, 0x38]


def test_ntsc_frames_are_shorter():
    r = run_psid(_tune(SET_D400 + [0x60]), 0x1000, INIT, PLAY, 0, 20, speed_cia=False, clock="NTSC")
    assert r.status == "ok" and r.play_hz == pytest.approx(1_022_727 / 17_095)


def test_subtune_reaches_init_in_a():
    init = [0x8D, 0x00, 0xD4, 0x60]  # STA $D400
    r = run_psid(_tune(init, play=[0x60]), 0x1000, INIT, PLAY, 7, 2, speed_cia=False)
    assert list(r.regs[:, 0]) == [7, 7]


def test_bad_input():
    r = run_psid(b"\xea" * 16, 0xFFF8, 0xFFF8, 0, 0, 10, speed_cia=False)
    assert r.status == "bad_address" and "$FFF8" in r.message
    with pytest.raises(ValueError, match="subtune"):
        run_psid(b"\x60", 0x1000, 0x1000, 0, 256, 1, speed_cia=False)
    with pytest.raises(ValueError, match="clock"):
        run_psid(b"\x60", 0x1000, 0x1000, 0, 0, 1, speed_cia=False, clock="SECAM")


def test_real_vbi_tunes_match_the_oracle(hvsc):
    from pysidtracker.oracle import register_grid
    for name in ("Auf_Wiedersehen_Monty.sid", "Crazy_Comets.sid", "Delta.sid"):
        path = hvsc / "MUSICIANS" / "H" / "Hubbard_Rob" / name
        blob = path.read_bytes()
        off, load, init, play, songs, start = struct.unpack(">HHHHHH", blob[6:18])
        data = blob[off:]
        load, data = (data[0] | data[1] << 8, data[2:]) if load == 0 else (load, data)
        r = run_psid(data, load, init, play, start - 1, 150, speed_cia=False, mark_gate_retriggers=False)
        grid = np.array(register_grid(blob, 150, subtune=start - 1), np.uint8)
        mine = r.regs.copy()
        mine[:, [3, 10, 17]] &= 0x0F  # the oracle keeps the pulse-width high nibble only
        assert r.status == "ok" and (mine == grid).all(), name


# play: every 4th call (counter in $03) restarts voice 1's note: gate off, then on again
RESTART_EVERY_4 = [0xE6, 0x03, 0xA5, 0x03, 0x29, 0x03, 0xD0, 0x0A,   # INC $03; LDA $03; AND #3; BNE +10
                   0xA9, 0x40, 0x8D, 0x04, 0xD4, 0xA9, 0x41, 0x8D, 0x04, 0xD4,  # gate off, gate on
                   0x60]


def test_gate_restart_inside_one_frame_is_marked_in_the_previous_frame():
    data = _tune(SET_D400 + [0x60], play=RESTART_EVERY_4)
    raw = run_psid(data, 0x1000, INIT, PLAY, 0, 40, speed_cia=False, mark_gate_retriggers=False)
    assert (raw.regs[:, 4] == 0x41).all() and raw.retriggers == 0  # the snapshots lose the restarts
    r = run_psid(data, 0x1000, INIT, PLAY, 0, 40, speed_cia=False)
    restarts = [k for k in range(40) if (k + 1) % 4 == 0]  # frame k holds play call k+1
    assert r.retriggers == len(restarts)
    gate = r.regs[:, 4] & 1
    assert [k for k in range(40) if not gate[k]] == [k - 1 for k in restarts]
    assert (r.regs[:, 4] | 1 == 0x41).all()  # only the gate bit changes


def test_gate_restart_every_frame_keeps_every_other_onset():
    every = [0xA9, 0x40, 0x8D, 0x04, 0xD4, 0xA9, 0x41, 0x8D, 0x04, 0xD4, 0x60]
    r = run_psid(_tune(SET_D400 + [0x60], play=every), 0x1000, INIT, PLAY, 0, 20, speed_cia=False)
    gate = list(r.regs[:, 4] & 1)
    assert gate == [0, 1] * 10  # never two released frames in a row: no silence
