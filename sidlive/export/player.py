"""The .sid export's 6510 player (assembly source) and the image built around the encoded frames.

The frame data it reads is described in sidlive/export/encode.py and docs/sid-export.md.

Every stream's first token sets all its registers, so a subtune can start (or loop) from
any state. Each play call first writes the frame the previous call decoded (init decodes
frame 0): the registers that changed, in sidlive.frames.WRITE_ORDER (control registers
last), 9 cycles apart from a fixed cycle after entry, through an unrolled sequence that
the decoding patches (self-modifying code) - the renderer's write timing, so a SID
player renders the export as `sidlive render` renders its frames; then it advances each
stream by one frame and patches the sequence for the next call. init ends by acknowledging
the VIC and CIA 1 interrupt flags: a PSID driver latches a raster interrupt before init
(sidplayfp: at its power-on delay), which would otherwise call play at once after init,
off the frame grid by a delay-dependent amount (docs/sid-export.md, "The player").

Memory: the image loads at LOAD_ADDR ($0800); player, tables and data must end below
RAM_END ($D000). While reading data the player banks $01 = $36 (BASIC ROM out, I/O in),
so data may lie under $A000-$BFFF. Zero page $F7-$FE holds the four stream pointers.
"""
from __future__ import annotations

from sidlive.export.assembler import Program, assemble
from sidlive.export.encode import Encoded
from sidlive.frames import NUM_REGS, WRITE_ORDER
from sidlive.c64.psid import LENGTH_MARK

LOAD_ADDR = 0x0800
RAM_END = 0xD000  # the image must end below this (I/O and KERNAL above)
MAX_SUBTUNES = 64  # init indexes the stream-start table with subtune * 4

PLAYER_SOURCE = """\
; sidlive .sid export player: 4 register streams, LZ back-references, 1 frame per call.
; Write-first: play writes the frame decoded by the previous call at once, through an
; unrolled sequence (LDA #v / STA $d4rr / BIT $ea = 9 cycles per register, the changed
; registers only, in WRITE_ORDER), so the writes land at a fixed cycle after entry and
; 9 cycles apart, as sidlive's renderer writes a frame; then it decodes the next frame
; and patches the sequence for it.
ptrs    = $f7               ; 4 stream pointers ($f7 $f9 $fb $fd), read with (ptrs,x)
sid     = $d400
slot    = 7                 ; bytes per unrolled write

        * = load
        jmp init
        jmp play

init:   sta cursub          ; A = subtune, 0-based
        jsr restart
        lda #$80
        sta first           ; the first frame writes every register
        jsr next            ; decode frame 0
        lda #$0f            ; acknowledge interrupts latched before init returns (the
        sta $d019           ; PSID driver's raster compare, written before its power-on
        lda $dc0d           ; delay, has latched one): the first play comes on the
        rts                 ; frame grid, not at once after init

restart:
        lda #1
        sta running
        lda cursub
        asl
        asl
        tay                 ; Y = subtune * 4: this subtune's row of the start tables
        ldx #0
rs:     lda startlo,y
        sta ptrs,x
        lda starthi,y
        sta ptrs+1,x
        lda #0
        sta wait,x
        sta copycnt,x
        iny
        inx
        inx
        cpx #8
        bne rs
        ldy cursub
        lda countlo,y
        sta count
        lda counthi,y
        sta count+1
        rts

play:   lda running
        bne p0
        rts
p0:     jsr wseq            ; this frame: fixed cycles after entry
        lda running
        bmi pstop           ; $ff: that was the end-of-song silence
        jmp next
pstop:  lda #0
        sta running
        rts

next:   lda count           ; frames left to decode (16 bit)
        bne n2
        lda count+1
        bne n3
        jmp songend
n3:     dec count+1
n2:     dec count
        lda $01
        pha
        lda #$36            ; RAM at $a000-$bfff, I/O on
        sta $01
        ldx #0              ; X = stream * 2
stream: lda wait,x
        beq fetch
        dec wait,x
        jmp snext
fetch:  jsr get
        sta hdr
        and #$7f
        beq ctrl
        sta mask
        ldy regbase,x
tloop:  lsr mask
        bcc tskip
        jsr get
        sta shadow,y
tskip:  iny
        lda mask
        bne tloop
        lda hdr
        bpl tend
        jsr get             ; hold: n more unchanged frames
        sta wait,x
        jmp tend
ctrl:   lda hdr
        bmi copy
        jsr get             ; wait n: this frame and n-1 more unchanged
        sta wait,x
        dec wait,x
        jmp tend
copy:   jsr get
        sta tmp
        jsr get
        sta tmp+1
        jsr get
        sta copycnt,x
        lda ptrs,x
        sta ret,x
        lda ptrs+1,x
        sta ret+1,x
        lda tmp
        sta ptrs,x
        lda tmp+1
        sta ptrs+1,x
        jmp fetch
tend:   lda copycnt,x       ; inside a copy: count its tokens, return after the last
        beq snext
        dec copycnt,x
        bne snext
        lda ret,x
        sta ptrs,x
        lda ret+1,x
        sta ptrs+1,x
snext:  inx
        inx
        cpx #8
        beq sdone
        jmp stream
sdone:  pla
        sta $01

build:  lda #0              ; patch wseq: one slot per register that changes, in WRITE_ORDER
        sta pos
        tay                 ; Y = slot * 7
bl:     ldx pos
        lda order,x
        sta reg
        tax
        lda shadow,x
        bit first
        bmi bput
        cmp written,x
        beq bnext
bput:   sta written,x
        sta wseq+1,y        ; LDA #value
        lda reg
        sta wseq+3,y        ; STA $d400+reg
        lda #$a9
        sta wseq,y          ; the slot's LDA again (an earlier frame may have ended here)
        tya
        clc
        adc #slot
        tay
bnext:  inc pos
        lda pos
        cmp #nregs
        bne bl
        lda #$60
        sta wseq,y          ; RTS after the last changed register
        lda #0
        sta first
        rts

songend:
        lda loop
        beq stop
        jsr restart
        jmp next
stop:   lda #$ff            ; end of the song: the next call writes 0 everywhere, then idles
        sta running
        lda #0
        ldx #nregs-1
sl:     sta shadow,x
        dex
        bpl sl
        jmp build

get:    lda (ptrs,x)
        inc ptrs,x
        bne g1
        inc ptrs+1,x
g1:     rts

running: .byte 0
cursub: .byte 0
count:  .word 0
hdr:    .byte 0
mask:   .byte 0
tmp:    .word 0
pos:    .byte 0
reg:    .byte 0
first:  .byte 0
wait:   .fill 8
copycnt: .fill 8
ret:    .fill 8
regbase: .byte 0, 0, 7, 0, 14, 0, 21, 0
shadow: .fill 28
written: .fill 28
"""

WRITE_SLOT = bytes((0xA9, 0x00, 0x8D, 0x00, 0xD4, 0x24, 0xEA))   # LDA #0 / STA $d400 / BIT $ea: 9 cycles
WRITE_SLOT_CYCLES = 9


def player_source(load_addr: int, starts: list[list[int]], counts: list[int], loop: bool) -> str:
    """The full source: PLAYER_SOURCE plus the generated tables; starts[u][s] is subtune u's
    stream s start as an offset from the `data` label; `data` is the last label."""
    order = ", ".join(f"${r:02x}" for r in WRITE_ORDER)
    slots = ", ".join(f"${b:02x}" for b in WRITE_SLOT * NUM_REGS)
    lines = [f"load = ${load_addr:04x}", f"nregs = {NUM_REGS}", PLAYER_SOURCE, f"order:  .byte {order}",
             f"loop:   .byte {1 if loop else 0}", f"wseq:   .byte {slots}, $60"]
    flat = [off for row in starts for off in row]
    for name, op in (("startlo", "<"), ("starthi", ">")):
        lines.append(f"{name}: .byte " + ", ".join(f"{op}data+{off}" for off in flat))
    lines.append(f"mark:   .byte {', '.join(f'${b:02x}' for b in LENGTH_MARK)}, {len(counts)}")   # for the dumper
    lines.append("countlo: .byte " + ", ".join(f"<{c}" for c in counts))
    lines.append("counthi: .byte " + ", ".join(f">{c}" for c in counts))
    lines.append("data:")
    return "\n".join(lines) + "\n"


def build_player(enc: Encoded, loop: bool = False, load_addr: int = LOAD_ADDR) -> tuple[Program, bytes]:
    """Assemble the player with its tables for `enc`; returns (program, image) where image
    is the program followed by the data (load it at load_addr)."""
    if not 1 <= len(enc.counts) <= MAX_SUBTUNES:
        raise ValueError(f"{len(enc.counts)} subtunes; the player holds 1..{MAX_SUBTUNES}")
    for u, c in enumerate(enc.counts):
        if not 1 <= c <= 0xFFFF:
            raise ValueError(f"subtune {u + 1} has {c} frames; the player counts 1..65535")
    _, starts = enc.data(0)
    prog = assemble(player_source(load_addr, starts, enc.counts, loop), "player6502")
    data, _ = enc.data(prog.symbols["data"])
    return prog, prog.code + data
