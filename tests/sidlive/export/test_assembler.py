"""The project's 6502 assembler: opcode table, addressing modes, expressions, errors."""
from __future__ import annotations

import numpy as np
import pytest

from sidlive.c64.opcodes import MNEMONIC, MODE, MODES
from sidlive.export.assembler import OPCODES, AsmError, assemble


def code(src: str, origin: int = 0x1000) -> bytes:
    return assemble(f"* = ${origin:04x}\n{src}\n").code


def test_table_is_the_documented_set_and_agrees_with_the_cpu_decoder():
    pairs = [(name, mode, op) for name, modes in OPCODES.items() for mode, op in modes.items()]
    assert len(OPCODES) == 56 and len(pairs) == 151
    assert len({op for _, _, op in pairs}) == 151
    for name, mode, op in pairs:
        # the project's own 6510 decoder (sidlive/c64/opcodes.py) is the oracle
        cpu_mode = MODES[MODE[op]]
        assert cpu_mode == ("imp" if mode == "acc" else mode), (name, mode, hex(op))
        assert MNEMONIC[op] == ("BR" if mode == "rel" else name), (name, mode, hex(op))


@pytest.mark.parametrize("src, expected", [
    ("lda #$12", "a9 12"),          # immediate
    ("lda $12", "a5 12"),           # zero page
    ("lda $12,x", "b5 12"),         # zero page,X
    ("ldx $12,y", "b6 12"),         # zero page,Y
    ("lda $1234", "ad 34 12"),      # absolute
    ("lda $1234,x", "bd 34 12"),    # absolute,X
    ("lda $1234,Y", "b9 34 12"),    # absolute,Y
    ("lda $12,y", "b9 12 00"),      # LDA has no zero page,Y: absolute,Y
    ("jmp ($1234)", "6c 34 12"),    # indirect
    ("lda ($12,x)", "a1 12"),       # (indirect,X)
    ("sta ($fb),y", "91 fb"),       # (indirect),Y
    ("asl a", "0a"),                # accumulator
    ("ror", "6a"),                  # accumulator, operand omitted
    ("rts", "60"),                  # implied
    ("brk", "00"),
    ("jsr $ffd2", "20 d2 ff"),
    ("inc $d020", "ee 20 d0"),
    ("cpx #0", "e0 00"),
    ("bit $24", "24 24"),
    ("sty $10,x", "94 10"),
    ("stx $10,y", "96 10"),
    ("sbc $1234,y", "f9 34 12"),
])
def test_addressing_modes_encode_as_the_datasheet_says(src, expected):
    assert code(src) == bytes.fromhex(expected)


def test_branches_forward_and_backward():
    prog = assemble("* = $1000\nback: nop\n beq fwd\n bne back\n bpl *\nfwd: rts\n")
    # beq at $1001 -> $1007: +4; bne at $1003 -> $1000: -5; bpl * at $1005: -2
    assert prog.code == bytes.fromhex("ea f0 04 d0 fb 10 fe 60")
    assert prog.symbols == {"back": 0x1000, "fwd": 0x1007}


def test_expressions_and_directives():
    prog = assemble("""
base = $c000
zp = $fb
        * = $2000
start:  lda #<table+1       ; low byte of the whole expression
        ldx #>table+1
        lda table+1
        sta zp+1
        lda #[2+3]*4-1
        lda #'A'
        lda #%1010
        lda #-1
table:  .byte 1, $ff, -128, "Hi"
        .word start, base+$10, *   ; * is where this statement starts
        .fill 3, $ea
end:
""")
    t = prog.symbols["table"]
    assert t == 0x2000 + 2 + 2 + 3 + 2 + 2 + 2 + 2 + 2
    expected = bytes([0xA9, (t + 1) & 0xFF, 0xA2, (t + 1) >> 8, 0xAD, (t + 1) & 0xFF, (t + 1) >> 8,
                      0x85, 0xFC, 0xA9, 19, 0xA9, 0x41, 0xA9, 0x0A, 0xA9, 0xFF,
                      1, 0xFF, 0x80, 0x48, 0x69, 0x00, 0x20, 0x10, 0xC0, (t + 5) & 0xFF, (t + 5) >> 8,
                      0xEA, 0xEA, 0xEA])
    assert prog.code == expected
    assert prog.end == prog.symbols["end"] == 0x2000 + len(expected)


def test_forward_reference_assembles_absolute_and_backward_zero_page():
    prog = assemble("* = $10\nearly: .byte 0\n lda early\n lda fwd\nfwd: .byte 0\n")
    # both labels are in zero page, but fwd is unknown in pass 1: absolute form
    assert prog.code == bytes([0x00, 0xA5, 0x10, 0xAD, 0x16, 0x00, 0x00])


def test_org_gap_is_zero_filled_and_origin_must_advance():
    assert assemble("* = $1000\n nop\n* = $1003\n rts\n").code == bytes([0xEA, 0, 0, 0x60])
    with pytest.raises(AsmError, match=r"line 3: origin \$0FFF is below"):
        assemble("* = $1000\n nop\n* = $0fff\n")


@pytest.mark.parametrize("src, pattern", [
    ("* = $1000\n nop\n beq far\n .fill 200\nfar: rts\n", r"line 3: branch target \$10CB is 200 bytes away"),
    ("* = $1000\nback: .fill 200\n\n bne back\n", r"line 4: branch target \$1000 is -202 bytes away"),
    ("* = $1000\n nop\n lda nowhere\n", r"line 3: undefined label 'nowhere'"),
    ("* = $1000\n\n jmp lost+1\n", r"line 3: undefined label 'lost'"),
    ("* = $1000\n sta #1\n", r"line 2: STA has no immediate mode"),
    ("* = $1000\n jmp ($12),y\n", r"line 2: JMP has no \(indirect\),Y mode"),
    ("* = $1000\n stx $1234,y\n", r"line 2: STX operand \$1234 must be a zero-page address"),
    ("* = $1000\n lda ($1234),y\n", r"line 2: LDA operand \$1234 must be a zero-page address"),
    ("* = $1000\n .byte 256\n", r"line 2: value 256 of '256' does not fit a byte"),
    ("* = $1000\n lda #$100\n", r"line 2: value 256 of '\$100' does not fit a byte"),
    ("* = $1000\n frob $12\n", r"line 2: unknown mnemonic or directive 'frob'"),
    ("* = $1000\nx1: nop\nx1: nop\n", r"line 3: label 'x1' defined twice"),
    ("* = $1000\n lda #1+\n", r"line 2: expression ends early"),
    (" nop\n", r"line 1: code before any origin"),
])
def test_errors_name_the_line(src, pattern):
    with pytest.raises(AsmError, match=pattern):
        assemble(src, "t.s")


def test_assembled_code_runs_on_the_projects_6510():
    """A play routine using (zp),Y, zp,X, abs,Y and a backward branch, run by the PSID driver."""
    from sidlive.c64.machine import run_psid

    prog = assemble("""
ptr = $fb
        * = $1000
init:   lda #<table
        sta ptr
        lda #>table
        sta ptr+1
        ldx #0
        stx ptr-1
        rts
play:   ldy ptr-1
        lda (ptr),y         ; table[frame]
        sta $d400
        ldx #2
loop:   sta $d401,x         ; $d403, $d402, $d401 get the same value
        dex
        bpl loop
        inc ptr-1
        rts
table:  .byte 3, 1, 4, 1, 5, 9, 2, 6
""")
    res = run_psid(prog.code, 0x1000, prog.symbols["init"], prog.symbols["play"], 0, 8,
                   speed_cia=False, mark_gate_retriggers=False)
    assert res.status == "ok"
    assert res.regs[:, 0].tolist() == [3, 1, 4, 1, 5, 9, 2, 6]
    assert np.array_equal(res.regs[:, 1:4], np.repeat(res.regs[:, :1], 3, axis=1))
