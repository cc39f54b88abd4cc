"""The .sid export's 6510 player (assembly source) and the frame-data encoder it reads.

Data format (docs/sid-export.md has the full description). The 25 registers are four
streams, each read by its own pointer: voice 1 ($00-$06), voice 2 ($07-$0D), voice 3
($0E-$14) and the filter/volume group ($15-$18). Each stream is a sequence of tokens; a
token covers one or more frames of its stream:

  change   H v... [n]  H = bit mask of the stream's registers that change (bits 0-6, not 0),
                       bit 7 set: the stream then holds for n more frames (n = 1..255);
                       one value byte per set mask bit, lowest register first
  wait     $00 n       the stream is unchanged for n frames (n = 1..255)
  copy     $80 lo hi c play the c tokens (1..255) stored at address hi:lo, then come back;
                       copied tokens are plain change/wait tokens (copies do not nest)

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
The copy token is an LZ77 back-reference over whole tokens (`encode_subtunes` finds them,
greedily, in all earlier data of any stream: tokens mean the same in every stream since a
mask addresses the stream's own registers), which is what makes repeated patterns cheap.

Memory: the image loads at LOAD_ADDR ($0800); player, tables and data must end below
RAM_END ($D000). While reading data the player banks $01 = $36 (BASIC ROM out, I/O in),
so data may lie under $A000-$BFFF. Zero page $F7-$FE holds the four stream pointers.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from numba import njit

from sidlive.export.assembler import Program, assemble
from sidlive.frames import NUM_REGS, WRITE_ORDER

LOAD_ADDR = 0x0800
RAM_END = 0xD000  # the image must end below this (I/O and KERNAL above)
STREAMS = ((0x00, 7), (0x07, 7), (0x0E, 7), (0x15, 4))  # (first register, registers)
MAX_SUBTUNES = 64  # init indexes the stream-start table with subtune * 4
MAX_RUN = 255
COPY_BYTES = 4
MAX_COPY_TOKENS = 255
MAX_CHAIN = 256  # earlier occurrences tried per token when looking for a back-reference
MIN_LENS = (2, 4, 6, 8, 12, 16)  # shortest copies (tokens) tried by encode_best
T_WAIT, T_COPY, T_HOLD = 0x00, 0x80, 0x80

PLAYER_SOURCE = """\
; sidlive .sid export player: 4 register streams, LZ back-references, 1 frame per call.
; Write-first: play writes the frame decoded by the previous call at once, through an
; unrolled sequence (LDA #v / STA $d4rr / BIT $ea = 9 cycles per register, the changed
; registers only, in WRITE_ORDER), so the writes land at a fixed cycle after entry and
; 9 cycles apart, as sidlive's renderer writes a frame; then it decodes the next frame
; and patches the sequence for it.
ptrs    = $f7               ; 4 stream pointers ($f7 $f9 $fb $fd), read with (ptrs,x)
sid     = $d400
nregs   = 25
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
    lines = [f"load = ${load_addr:04x}", PLAYER_SOURCE, f"order:  .byte {order}",
             f"loop:   .byte {1 if loop else 0}", f"wseq:   .byte {slots}, $60"]
    flat = [off for row in starts for off in row]
    for name, op in (("startlo", "<"), ("starthi", ">")):
        lines.append(f"{name}: .byte " + ", ".join(f"{op}data+{off}" for off in flat))
    lines.append("countlo: .byte " + ", ".join(f"<{c}" for c in counts))
    lines.append("counthi: .byte " + ", ".join(f">{c}" for c in counts))
    lines.append("data:")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- encoder

def stream_tokens(g: np.ndarray) -> list[bytes]:
    """Literal tokens of one stream: g (N, k) uint8 register values, k <= 7."""
    n, k = g.shape
    if n == 0:
        return []
    bits = (1 << np.arange(k)).astype(np.int64)
    masks = np.zeros(n, np.int64)
    masks[1:] = ((g[1:] != g[:-1]).astype(np.int64) * bits).sum(axis=1)  # (N,)
    masks[0] = (1 << k) - 1
    masks = masks.tolist()
    rows = g.tolist()
    toks, i = [], 0
    while i < n:
        j = i + 1
        while j < n and masks[j] == 0 and j - i < MAX_RUN + (masks[i] != 0):
            j += 1
        if masks[i] == 0:  # unchanged frames i..j-1
            toks.append(bytes((T_WAIT, j - i)))
        else:
            vals = [rows[i][b] for b in range(k) if masks[i] >> b & 1]
            hold = j - i - 1
            toks.append(bytes([masks[i] | (T_HOLD if hold else 0)] + vals + ([hold] if hold else [])))
        i = j
    return toks


@njit(cache=True, nogil=True)
def _lz_parse(ids, sizes, seg, n_ids, copy_bytes, max_len, max_chain, min_len, src, length):
    """Greedy LZ77 over token ids. For each position i that starts an output item:
    src[i] = -1 (literal) or the first source token of a copy of length[i] tokens.
    A source is a run of consecutive literal tokens of one segment. Tokens that were
    themselves copied can be matched too: canon[i] is the literal token each one stands
    for, and a match is usable while those stay consecutive."""
    n = len(ids)
    head = np.full(n_ids, -1, np.int64)
    prev = np.full(n, -1, np.int64)
    canon = np.full(n, -1, np.int64)
    i = 0
    while i < n:
        best_save, best_j, best_len = 0, -1, 0
        j = head[ids[i]]
        chain = 0
        while j >= 0 and chain < max_chain:
            c = canon[j]
            run, saved = 0, 0
            while (i + run < n and run < max_len and j + run < i and canon[j + run] == c + run
                   and seg[c + run] == seg[c] and seg[i + run] == seg[i] and ids[j + run] == ids[i + run]):
                saved += sizes[i + run]
                run += 1
            if run >= min_len and saved - copy_bytes > best_save:
                best_save, best_j, best_len = saved - copy_bytes, c, run
            j = prev[j]
            chain += 1
        if best_save > 0:
            src[i] = best_j
            length[i] = best_len
            for q in range(best_len):
                canon[i + q] = best_j + q
        else:
            src[i] = -1
            length[i] = 1
            canon[i] = i
        for q in range(length[i]):
            prev[i + q] = head[ids[i + q]]
            head[ids[i + q]] = i + q
        i += length[i]


@dataclasses.dataclass
class Encoded:
    """Subtunes as token streams with their LZ parse; `data(base)` serialises them."""

    tokens: list[bytes]  # all literal tokens, segment after segment
    seg_bounds: list[tuple[int, int]]  # token index range of segment u * 4 + s
    src: np.ndarray  # (n_tokens,) int64, see _lz_parse
    length: np.ndarray  # (n_tokens,) int64
    counts: list[int]  # frames per subtune

    def size(self) -> int:
        """Data bytes (the same for any base address)."""
        lit = self.src < 0
        starts = np.zeros(len(self.src), bool)
        i = 0
        while i < len(self.src):
            starts[i] = True
            i += int(self.length[i])
        n_copies = int((starts & ~lit).sum())
        return int(sum(len(t) for t, keep in zip(self.tokens, starts & lit) if keep)) + COPY_BYTES * n_copies

    def data(self, base: int = 0) -> tuple[bytes, list[list[int]]]:
        """(data bytes placed at `base`, starts[u][s] offsets from base)."""
        out = bytearray()
        offset = np.full(len(self.tokens), -1, np.int64)
        starts: list[list[int]] = [[] for _ in self.counts]
        for k, (lo, hi) in enumerate(self.seg_bounds):
            starts[k // 4].append(len(out))
            i = lo
            while i < hi:
                j = int(self.src[i])
                if j < 0:
                    offset[i] = len(out)
                    out += self.tokens[i]
                    i += 1
                else:
                    addr = base + int(offset[j])
                    out += bytes((T_COPY, addr & 0xFF, addr >> 8, int(self.length[i])))
                    i += int(self.length[i])
        return bytes(out), starts


def encode_subtunes(subtunes: list[np.ndarray], max_chain: int = MAX_CHAIN, min_len: int = 8) -> Encoded:
    """Encode each (N, 25) uint8 register array (N >= 1) as four token streams + LZ."""
    tokens: list[bytes] = []
    bounds: list[tuple[int, int]] = []
    for regs in subtunes:
        regs = np.asarray(regs, np.uint8)
        if regs.ndim != 2 or regs.shape[1] != NUM_REGS or len(regs) == 0:
            raise ValueError(f"a subtune must be an (N >= 1, {NUM_REGS}) array, got {regs.shape}")
        for first, k in STREAMS:
            lo = len(tokens)
            tokens += stream_tokens(regs[:, first:first + k])
            bounds.append((lo, len(tokens)))
    ids_of: dict[bytes, int] = {}
    ids = np.array([ids_of.setdefault(t, len(ids_of)) for t in tokens], np.int64)
    sizes = np.array([len(t) for t in tokens], np.int64)
    seg = np.zeros(len(tokens), np.int64)
    for k, (lo, hi) in enumerate(bounds):
        seg[lo:hi] = k
    src = np.full(len(tokens), -1, np.int64)
    length = np.ones(len(tokens), np.int64)
    _lz_parse(ids, sizes, seg, max(1, len(ids_of)), COPY_BYTES, MAX_COPY_TOKENS, max_chain, min_len, src, length)
    return Encoded(tokens, bounds, src, length, [len(r) for r in subtunes])


def encode_best(subtunes: list[np.ndarray], min_lens=MIN_LENS) -> Encoded:
    """encode_subtunes with the shortest back-reference length (in tokens) that gives the
    least data: short copies split the stream into pieces that later repeats cannot copy
    whole, so the best minimum depends on the song."""
    best = None
    for m in min_lens:
        enc = encode_subtunes(subtunes, min_len=m)
        if best is None or enc.size() < best.size():
            best = enc
    return best


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
