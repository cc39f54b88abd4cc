"""Play a PSID tune on the emulated C64 and sample its SID registers once per video frame.

`run_psid` is what the tune dumper calls. It boots the machine as libsidplayfp's PSID
driver does (sidlive/c64/rom.py), runs init with A = subtune, then lets the interrupts
call play: VBI speed a raster IRQ at line 0 (the start of every frame), CIA speed the
CIA 1 timer A IRQ at whatever rate init left (the KERNAL's $4025 if untouched), and with
play address 0 the tune's own handler and interrupt source. The driver itself is native
code reached through a 16-byte trap window outside the tune (`trap_window`):
  +0 IRQJOB   what $0314 points to when play != 0: push $01, bank play's $01, A=0, JSR play
  +1 PLAYRET  play's return: restore $01, DEC $D019, LDA $DC0D, restore Y X A, RTI
  +2 INITRET  init's return: $01=$37 if play != 0, CLI, go idle
  +3 IDLE     the idle loop; the machine fast-forwards to the next interrupt event
  +4 EXC      $0316/$0318 (BRK, NMI without handler): stops with status "jam"
Frames: the 25 write registers as they stand at each frame boundary (a multiple of
lines * cycles_per_line cycles; raster line 0 starts there), beginning with the first
boundary after the first interrupt. A VBI tune's play starts right at a boundary, so
frame k holds the registers after the (k+1)-th play call, as calling play once per frame
and sampling after it would. play_hz = play calls made while recording / recorded time.
Statuses: ok; init_timeout (init ran past max_init_cycles); play_timeout (play or the
interrupt handler ran past max_frame_cycles, or no interrupt came that long after init);
jam (a JAM opcode, or BRK/NMI with no handler installed); bad_address (the image does not
fit $0002-$FFFF, or execution ran into the trap window). Frames made before a failure are
kept. Between interrupts the machine skips straight to the next interrupt event, so a
frame costs only the instructions the tune executes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from sidlive.c64.cpu6510 import (FLAG_I, RUN_JAM, RUN_TRAP, ST_A, ST_CYC, ST_P, ST_PC, ST_SP, ST_X, ST_Y, cpu_run,
                                 interrupt, pull, push)
from sidlive.c64.iochips import (CIA1, EV_NEXT, IRQ_LINE, NMI_LINE, SID_BASE, cia_read, io_events, port_write,
                                 vic_read, vic_write)
from sidlive.c64.rom import BANK_DEFAULT, SYSTEMS, boot_machine, iomap, trap_window
from sidlive.c64.sidchip import GATE_OFF_SEEN, SID_LOG
from sidlive.frames import NUM_REGS

T_IRQJOB, T_PLAYRET, T_INITRET, T_IDLE, T_EXC = range(5)
STATUSES = ("ok", "init_timeout", "play_timeout", "jam", "bad_address")
S_OK, S_INIT_TIMEOUT, S_PLAY_TIMEOUT, S_JAM, S_BAD_ADDRESS = range(5)
# kernel parameters (prm) and results (out)
P_INIT, P_PLAY, P_PLAY_BANK, P_SUBTUNE, P_FRAMES, P_MAX_INIT, P_MAX_FRAME, P_TRAP, P_FRAME_CYC = range(9)
(O_STATUS, O_FRAMES, O_PLAYS, O_FIRST_INT, O_IDLE, O_FAIL_PC, O_FAIL_CYC, O_INIT_CYC,
 O_WHY, O_PLAYS_REC) = range(10)
WHY_TIMEOUT, WHY_NO_INTERRUPT, WHY_EXC, WHY_TRAP = 1, 2, 3, 4
# Approximate cycle costs of libsidplayfp's 6502 driver code around play and after init.
IRQJOB_CYCLES, PLAYRET_CYCLES, INITRET_CYCLES = 21, 39, 14


@dataclass
class DumpResult:
    """One tune's dump: the frames, how it ended, its timing (vbi / cia, play rate) and cycle counts."""
    regs: np.ndarray  # (n_frames_done, 25) uint8, raw register shadow at each frame boundary
    status: str  # "ok" | "init_timeout" | "play_timeout" | "jam" | "bad_address"
    message: str  # human-readable, names the address/frame where it failed
    speed: str  # "vbi" or "cia"
    play_calls: int  # how many times play (or the tune's IRQ handler) ran
    play_hz: float  # measured play-call rate
    cycles: int  # CPU cycles executed (fast-forwarded idle not counted)
    retriggers: int = 0  # gate restarts inside one frame made visible (see mark_retriggers)
    # With sid_log_capacity > 0: every SID write, (n, 3) int64 rows (cycle, register, value),
    # cycles counted from frame 0's boundary (negative: before it, e.g. during init).
    sid_writes: np.ndarray | None = None
    sid_writes_lost: int = 0  # writes past the log's capacity (not stored)


@njit(cache=True, nogil=True)
def _drive(st, ram, rom, pmap, io, ioram, regs, gate_off, prm, out):
    """Init, then play until regs (n, 25) is full or the tune fails; results in out.

    gate_off (n, 3): 1 where a voice's gate was written 0 during the frame before a boundary.
    """
    trap = prm[P_TRAP]
    play, n_frames, frame_cyc = prm[P_PLAY], prm[P_FRAMES], prm[P_FRAME_CYC]
    idle_pc = trap + T_IDLE
    # init: A = subtune, returning to INITRET
    push(st, ram, (trap + T_INITRET - 1) >> 8)
    push(st, ram, trap + T_INITRET - 1)
    st[ST_A] = prm[P_SUBTUNE]
    st[ST_PC] = prm[P_INIT]
    in_init = True
    init_end = 0
    boundary = frame_cyc
    frames = 0
    recording = False
    busy_since = 0
    nmi_prev = 0
    status = S_OK
    while True:
        now = st[ST_CYC]
        while now >= boundary:
            if recording and frames < n_frames:
                for r in range(NUM_REGS):
                    regs[frames, r] = ioram[0x400 + r]
                for v in range(3):
                    gate_off[frames, v] = ioram[GATE_OFF_SEEN + v]
                frames += 1
            for v in range(3):
                ioram[GATE_OFF_SEEN + v] = 0
            boundary += frame_cyc
        if frames >= n_frames and (n_frames > 0 or not in_init):
            break
        ev = io_events(io, now)
        pc = st[ST_PC]
        idle = pc == idle_pc
        if in_init:
            deadline = prm[P_MAX_INIT] + 1
            if now >= deadline:
                status = S_INIT_TIMEOUT
                out[O_WHY] = WHY_TIMEOUT
                break
        elif not idle:
            deadline = busy_since + prm[P_MAX_FRAME] + 1
            if now >= deadline:
                status = S_PLAY_TIMEOUT
                out[O_WHY] = WHY_TIMEOUT
                break
        elif not recording:
            deadline = init_end + prm[P_MAX_FRAME] + 1
            if now >= deadline:
                status = S_PLAY_TIMEOUT
                out[O_WHY] = WHY_NO_INTERRUPT
                break
        else:
            deadline = boundary
        nmi = io[NMI_LINE]
        took = False
        if nmi and not nmi_prev:
            interrupt(st, ram, rom, pmap, io, ioram, 0xFFFA)
            took = True
        elif io[IRQ_LINE] and not (st[ST_P] & FLAG_I):
            interrupt(st, ram, rom, pmap, io, ioram, 0xFFFE)
            took = True
            if play == 0:
                out[O_PLAYS] += 1
                if recording:
                    out[O_PLAYS_REC] += 1
        nmi_prev = nmi
        if took:
            if idle:
                busy_since = now
            if not recording:
                recording = True
                out[O_FIRST_INT] = now
            continue
        next_ev = min(ev, boundary, deadline)
        if idle:
            out[O_IDLE] += next_ev - now
            st[ST_CYC] = next_ev
            continue
        io[EV_NEXT] = next_ev
        r = cpu_run(st, ram, rom, pmap, io, ioram, trap, 0xFFF0)
        if r == RUN_JAM:
            status = S_JAM
            out[O_FAIL_PC] = st[ST_PC]
            break
        if r == RUN_TRAP:
            t = st[ST_PC] - trap
            if t == T_IRQJOB:  # lda $01, pha, lda #playbank, sta $01, lda #0, jsr play
                push(st, ram, ram[1])
                port_write(1, prm[P_PLAY_BANK], ram, pmap, io)
                push(st, ram, (trap + T_PLAYRET - 1) >> 8)
                push(st, ram, trap + T_PLAYRET - 1)
                st[ST_A] = 0
                st[ST_PC] = play
                st[ST_CYC] += IRQJOB_CYCLES
                out[O_PLAYS] += 1
                if recording:
                    out[O_PLAYS_REC] += 1
            elif t == T_PLAYRET:  # pla, sta $01, dec $d019, lda $dc0d, pla tay pla tax pla, rti
                port_write(1, pull(st, ram), ram, pmap, io)
                now = st[ST_CYC]
                v = vic_read(0x19, io, ioram, now)
                vic_write(0x19, v, io, ioram, now)
                vic_write(0x19, (v - 1) & 0xFF, io, ioram, now)
                cia_read(CIA1, 0x0D, io, ioram, 0xC00, now)
                st[ST_Y] = pull(st, ram)
                st[ST_X] = pull(st, ram)
                st[ST_A] = pull(st, ram)
                st[ST_P] = (pull(st, ram) & 0xEF) | 0x20
                lo = pull(st, ram)
                st[ST_PC] = lo | (pull(st, ram) << 8)
                st[ST_CYC] += PLAYRET_CYCLES
            elif t == T_INITRET and in_init:
                in_init = False
                init_end = st[ST_CYC]
                out[O_INIT_CYC] = init_end
                if play != 0:
                    port_write(1, BANK_DEFAULT, ram, pmap, io)
                st[ST_P] &= ~FLAG_I
                st[ST_PC] = idle_pc
                st[ST_CYC] += INITRET_CYCLES
                if n_frames == 0:
                    break
            elif t == T_IDLE:
                pass
            else:
                status = S_JAM if t == T_EXC else S_BAD_ADDRESS
                out[O_WHY] = WHY_EXC if t == T_EXC else WHY_TRAP
                out[O_FAIL_PC] = st[ST_PC]
                if t == T_EXC:  # BRK via $FF48: Y X A P PCL PCH on the stack
                    sp = st[ST_SP]
                    lo = np.int64(ram[0x100 + ((sp + 5) & 0xFF)])
                    out[O_FAIL_PC] = lo | (np.int64(ram[0x100 + ((sp + 6) & 0xFF)]) << 8)
                break
    out[O_STATUS] = status
    out[O_FRAMES] = frames
    out[O_FAIL_CYC] = st[ST_CYC]


def run_psid(data: bytes, load_addr: int, init_addr: int, play_addr: int, subtune: int,
             n_frames: int, *, speed_cia: bool, clock: str = "PAL",
             max_init_cycles: int = 20_000_000, max_frame_cycles: int = 2_000_000,
             mark_gate_retriggers: bool = True, sid_log_capacity: int = 0) -> DumpResult:
    """Run one PSID subtune for n_frames frames (see the module docstring).

    mark_gate_retriggers: make gate restarts inside one frame audible in the frames
    (`mark_retriggers`); False gives the raw register shadow at each boundary.
    sid_log_capacity > 0 also logs up to that many SID writes with their cycles
    (DumpResult.sid_writes): a debug aid for cycle-exact replay (sidlive.measure.soundcheck.replay_writes).

    data is the C64 program without its 2-byte load address; subtune is 0-based (A for
    init); init_addr 0 means the load address; play_addr 0 means the tune installs its
    own interrupt handler; speed_cia is this subtune's PSID speed bit.
    """
    for name, value, hi in (("load_addr", load_addr, 0xFFFF), ("init_addr", init_addr, 0xFFFF),
                            ("play_addr", play_addr, 0xFFFF), ("subtune", subtune, 0xFF)):
        if not 0 <= int(value) <= hi:
            raise ValueError(f"{name} must be in 0..{hi:#x}, got {value}")
    if clock not in SYSTEMS:
        raise ValueError(f"clock must be one of {tuple(SYSTEMS)}, got {clock!r}")
    if n_frames < 0 or max_init_cycles < 1 or max_frame_cycles < 1:
        raise ValueError("n_frames must be >= 0 and the cycle limits >= 1, got "
                         f"{n_frames}, {max_init_cycles}, {max_frame_cycles}")
    system = SYSTEMS[clock]
    speed = "cia" if speed_cia else "vbi"
    end = load_addr + len(data)
    if len(data) == 0 or end > 0x10000 or load_addr < 2:
        return DumpResult(np.zeros((0, NUM_REGS), np.uint8), "bad_address",
                          f"image of {len(data)} bytes at ${load_addr:04X} does not fit "
                          "$0002-$FFFF", speed, 0, 0.0, 0)
    init = init_addr or load_addr
    trap = trap_window(load_addr, end)
    st, ram, rom, pmap, io, ioram = boot_machine(
        bytes(data), load_addr, system, speed_cia, iomap(init),
        irq_vector=0xEA31, exc_vector=trap + T_EXC,
        play_vector=trap + T_IRQJOB if play_addr else None,
        sid_log_capacity=max(0, int(sid_log_capacity)))
    frame_cyc = system["lines"] * system["cycles_per_line"]
    prm = np.zeros(9, np.int64)
    prm[P_INIT], prm[P_PLAY], prm[P_SUBTUNE], prm[P_FRAMES] = init, play_addr, subtune, n_frames
    prm[P_PLAY_BANK] = iomap(play_addr) if play_addr else BANK_DEFAULT
    prm[P_MAX_INIT], prm[P_MAX_FRAME] = max_init_cycles, max_frame_cycles
    prm[P_TRAP], prm[P_FRAME_CYC] = trap, frame_cyc
    regs = np.zeros((n_frames, NUM_REGS), np.uint8)
    gate_off = np.zeros((n_frames, 3), np.uint8)
    out = np.zeros(10, np.int64)
    _drive(st, ram, rom, pmap, io, ioram, regs, gate_off, prm, out)
    frames = int(out[O_FRAMES])
    regs, gate_off = regs[:frames], gate_off[:frames]
    retriggers = mark_retriggers(regs, gate_off) if mark_gate_retriggers else 0
    status = STATUSES[int(out[O_STATUS])]
    total = int(st[ST_CYC])
    span = total - int(out[O_FIRST_INT])
    play_hz = float(out[O_PLAYS_REC]) * system["clock_hz"] / span if frames and span > 0 else 0.0
    res = DumpResult(regs.copy(), status, _message(status, out, frames, init, play_addr),
                     speed, int(out[O_PLAYS]), play_hz, total - int(out[O_IDLE]), retriggers)
    if sid_log_capacity > 0:
        res.sid_writes, res.sid_writes_lost = _sid_log(io, (int(out[O_FIRST_INT]) // frame_cyc + 1) * frame_cyc)
    return res


def _sid_log(io: np.ndarray, origin_cycle: int) -> tuple[np.ndarray, int]:
    """The write log in io as (n, 3) rows (cycle - origin_cycle, register, value); lost count."""
    base = SID_BASE + SID_LOG
    count = int(io[base])
    n = min(count, (len(io) - base - 1) // 2)
    pairs = io[base + 1:base + 1 + 2 * n].reshape(n, 2)  # (n, 2): cycle, reg << 8 | value
    rows = np.empty((n, 3), np.int64)
    rows[:, 0] = pairs[:, 0] - origin_cycle
    rows[:, 1] = pairs[:, 1] >> 8
    rows[:, 2] = pairs[:, 1] & 0xFF
    return rows, count - n


# Attack times of the SID's 16 attack rates (ms, datasheet), as PAL frames, plus 2 frames
# for the ADSR delay bug (the rate counter may first wrap: up to 32,768 cycles).
ATTACK_MS = (2, 8, 16, 24, 38, 56, 68, 80, 100, 250, 500, 800, 1000, 3000, 5000, 8000)
ATTACK_FRAMES = tuple(-(-ms * 50_125 // 1_000_000) + 2 for ms in ATTACK_MS)


def mark_retriggers(regs: np.ndarray, gate_off: np.ndarray) -> int:
    """Make gate re-triggers inside one frame visible in frame snapshots; returns how many.

    A player that writes gate off and gate on again within one frame (a note restart)
    leaves the gate set at both boundaries, so the snapshots show no new note and reSID
    plays none. Such a restart in frame k is moved into the frames: the gate bit of frame
    k-1 is cleared (the release starts one frame, 20 ms, early; the attack lands on time).
    When frame k-1 is itself a note onset (its gate was off in frame k-2) clearing it would
    lose that onset, so the restart stays unmarked. A restart of a voice whose envelope
    sits at full level (sustain 15 in frames k-1 and k, attack long finished) changes
    nothing on the chip, since the new attack starts and ends at $FF; marking it would put
    a 20 ms release (often silence) where the tune has none, so it stays unmarked too.
    regs (n, 25) is modified in place.
    """
    count = 0
    n = len(regs)
    for v in range(3):
        c = 0x04 + 7 * v
        gate = (regs[:, c] & 1).astype(bool)  # (n,)
        onset = 0 if n and gate[0] else -1  # frame where the sounding note's gate went on
        for k in range(1, n):
            if gate[k] and not gate[k - 1]:
                onset = k
            if not (gate_off[k, v] and gate[k] and gate[k - 1] and (k == 1 or gate[k - 2])):
                continue
            if _at_full_level(regs, c, onset, k):
                continue
            regs[k - 1, c] &= 0xFE
            gate[k - 1] = False  # frame k-1 is now a release: a restart in k+1 stays put
            onset = k
            count += 1
    return count


def _at_full_level(regs: np.ndarray, c: int, onset: int, k: int) -> bool:
    """Voice (control register c) holds envelope $FF at frame k: sustain 15 in frames
    k-1 and k, and its note (gate on since `onset`) is past the slowest attack used."""
    if onset < 0 or (regs[k - 1, c + 2] >> 4) != 15 or (regs[k, c + 2] >> 4) != 15:
        return False
    attack = int((regs[onset:k, c + 1] >> 4).max())
    return k - onset >= ATTACK_FRAMES[attack]


def _message(status, out, frames, init, play) -> str:
    pc, cyc, why = int(out[O_FAIL_PC]), int(out[O_FAIL_CYC]), int(out[O_WHY])
    where = f"at cycle {cyc}, after {frames} frames"
    if status == "ok":
        return f"{frames} frames, {int(out[O_PLAYS])} play calls; init took {int(out[O_INIT_CYC])} cycles"
    if status == "init_timeout":
        return f"init ${init:04X} did not return within the cycle limit ({where})"
    if status == "play_timeout":
        if why == WHY_NO_INTERRUPT:
            return f"no interrupt came within the cycle limit after init ({where})"
        return f"play ${play:04X} (or the interrupt handler) did not return within the cycle limit ({where})"
    if status == "jam":
        if why == WHY_EXC:
            return (f"BRK or NMI with no handler installed (vectors $0316/$0318), stacked "
                    f"return address ${pc:04X} ({where})")
        return f"JAM opcode at ${pc:04X} ({where})"
    return f"execution reached the driver's trap window at ${pc:04X} ({where})"
