"""The 6510's opcode table and ALU: addressing mode, operation, cycles for all 256 opcodes.

Decode tables (int64, indexed by opcode): MODE (addressing), KIND (operation, K_*), GROUP
(read / store / read-modify-write / other), CYC (base cycles; JAM 0) and CROSS (1 where a
page cross in abs,X / abs,Y / (zp),Y adds a cycle: the read instructions). Decimal ADC/SBC
follow the NMOS 6502: ADC's N and V come from the sum after the low-nibble adjust and Z
from the binary sum; SBC's flags are the binary ones. ARR in decimal mode adjusts each
nibble and sets C from the high one, as the NMOS part does.
"""
from __future__ import annotations

import numpy as np
from numba import njit

FLAG_C, FLAG_Z, FLAG_I, FLAG_D, FLAG_B, FLAG_U, FLAG_V, FLAG_N = 1, 2, 4, 8, 16, 32, 64, 128

MODES = ("imp", "imm", "zp", "zpx", "zpy", "abs", "abx", "aby", "izx", "izy", "rel", "ind")
(M_IMP, M_IMM, M_ZP, M_ZPX, M_ZPY, M_ABS, M_ABX, M_ABY, M_IZX, M_IZY, M_REL,
 M_IND) = range(len(MODES))

_READ = "LDA LDX LDY LAX ORA AND EOR ADC SBC CMP CPX CPY BIT NOPR ANC ALR ARR SBX ANE LXA LAS".split()
_STORE = "STA STX STY SAX SHA SHX SHY TAS".split()
_RMW = "ASL LSR ROL ROR INC DEC SLO RLA SRE RRA DCP ISC".split()
_OTHER = ("BR JSR RTS JMP NOP INX DEX INY DEY TAX TXA TAY TYA CLC SEC PHA PLA PHP PLP "
          "CLI SEI CLD SED CLV TSX TXS RTI BRK JAM").split()
KINDS = _READ + _STORE + _RMW + _OTHER
(K_LDA, K_LDX, K_LDY, K_LAX, K_ORA, K_AND, K_EOR, K_ADC, K_SBC, K_CMP, K_CPX, K_CPY, K_BIT,
 K_NOPR, K_ANC, K_ALR, K_ARR, K_SBX, K_ANE, K_LXA, K_LAS,
 K_STA, K_STX, K_STY, K_SAX, K_SHA, K_SHX, K_SHY, K_TAS,
 K_ASL, K_LSR, K_ROL, K_ROR, K_INC, K_DEC, K_SLO, K_RLA, K_SRE, K_RRA, K_DCP, K_ISC,
 K_BR, K_JSR, K_RTS, K_JMP, K_NOP, K_INX, K_DEX, K_INY, K_DEY, K_TAX, K_TXA, K_TAY, K_TYA,
 K_CLC, K_SEC, K_PHA, K_PLA, K_PHP, K_PLP, K_CLI, K_SEI, K_CLD, K_SED, K_CLV, K_TSX, K_TXS,
 K_RTI, K_BRK, K_JAM) = range(len(KINDS))
assert (KINDS[K_LAS], KINDS[K_TAS], KINDS[K_ISC], KINDS[K_JAM]) == ("LAS", "TAS", "ISC", "JAM")
G_OTHER, G_READ, G_STORE, G_RMW = 0, 1, 2, 3

# Mnemonic, then opcode:mode:cycles entries; '|' separates mnemonics sharing a line. Base
# cycles only: the page-cross cycle of the read kinds in abx/aby/izy is CROSS.
_SPEC = """
ORA 01:izx:6 05:zp:3 09:imm:2 0D:abs:4 11:izy:5 15:zpx:4 19:aby:4 1D:abx:4
AND 21:izx:6 25:zp:3 29:imm:2 2D:abs:4 31:izy:5 35:zpx:4 39:aby:4 3D:abx:4
EOR 41:izx:6 45:zp:3 49:imm:2 4D:abs:4 51:izy:5 55:zpx:4 59:aby:4 5D:abx:4
ADC 61:izx:6 65:zp:3 69:imm:2 6D:abs:4 71:izy:5 75:zpx:4 79:aby:4 7D:abx:4
STA 81:izx:6 85:zp:3 8D:abs:4 91:izy:6 95:zpx:4 99:aby:5 9D:abx:5
LDA A1:izx:6 A5:zp:3 A9:imm:2 AD:abs:4 B1:izy:5 B5:zpx:4 B9:aby:4 BD:abx:4
CMP C1:izx:6 C5:zp:3 C9:imm:2 CD:abs:4 D1:izy:5 D5:zpx:4 D9:aby:4 DD:abx:4
SBC E1:izx:6 E5:zp:3 E9:imm:2 ED:abs:4 F1:izy:5 F5:zpx:4 F9:aby:4 FD:abx:4 EB:imm:2
SLO 03:izx:8 07:zp:5 0F:abs:6 13:izy:8 17:zpx:6 1B:aby:7 1F:abx:7
RLA 23:izx:8 27:zp:5 2F:abs:6 33:izy:8 37:zpx:6 3B:aby:7 3F:abx:7
SRE 43:izx:8 47:zp:5 4F:abs:6 53:izy:8 57:zpx:6 5B:aby:7 5F:abx:7
RRA 63:izx:8 67:zp:5 6F:abs:6 73:izy:8 77:zpx:6 7B:aby:7 7F:abx:7
DCP C3:izx:8 C7:zp:5 CF:abs:6 D3:izy:8 D7:zpx:6 DB:aby:7 DF:abx:7
ISC E3:izx:8 E7:zp:5 EF:abs:6 F3:izy:8 F7:zpx:6 FB:aby:7 FF:abx:7
SAX 83:izx:6 87:zp:3 8F:abs:4 97:zpy:4
LAX A3:izx:6 A7:zp:3 AF:abs:4 B3:izy:5 B7:zpy:4 BF:aby:4
ANC 0B:imm:2 2B:imm:2
ALR 4B:imm:2
ARR 6B:imm:2
ANE 8B:imm:2
LXA AB:imm:2
SBX CB:imm:2
SHA 93:izy:6 9F:aby:5
TAS 9B:aby:5
LAS BB:aby:4
SHY 9C:abx:5
SHX 9E:aby:5
ASL 0A:imp:2 06:zp:5 16:zpx:6 0E:abs:6 1E:abx:7
ROL 2A:imp:2 26:zp:5 36:zpx:6 2E:abs:6 3E:abx:7
LSR 4A:imp:2 46:zp:5 56:zpx:6 4E:abs:6 5E:abx:7
ROR 6A:imp:2 66:zp:5 76:zpx:6 6E:abs:6 7E:abx:7
DEC C6:zp:5 D6:zpx:6 CE:abs:6 DE:abx:7
INC E6:zp:5 F6:zpx:6 EE:abs:6 FE:abx:7
STX 86:zp:3 96:zpy:4 8E:abs:4
LDX A2:imm:2 A6:zp:3 B6:zpy:4 AE:abs:4 BE:aby:4
STY 84:zp:3 94:zpx:4 8C:abs:4
LDY A0:imm:2 A4:zp:3 B4:zpx:4 AC:abs:4 BC:abx:4
CPX E0:imm:2 E4:zp:3 EC:abs:4
CPY C0:imm:2 C4:zp:3 CC:abs:4
BIT 24:zp:3 2C:abs:4
NOPR 80:imm:2 82:imm:2 89:imm:2 C2:imm:2 E2:imm:2 04:zp:3 44:zp:3 64:zp:3 0C:abs:4
NOPR 14:zpx:4 34:zpx:4 54:zpx:4 74:zpx:4 D4:zpx:4 F4:zpx:4
NOPR 1C:abx:4 3C:abx:4 5C:abx:4 7C:abx:4 DC:abx:4 FC:abx:4
NOP EA:imp:2 1A:imp:2 3A:imp:2 5A:imp:2 7A:imp:2 DA:imp:2 FA:imp:2
BR 10:rel:2 30:rel:2 50:rel:2 70:rel:2 90:rel:2 B0:rel:2 D0:rel:2 F0:rel:2
JSR 20:abs:6
RTS 60:imp:6 | RTI 40:imp:6 | BRK 00:imp:7
JMP 4C:abs:3 6C:ind:5
PHP 08:imp:3 | PLP 28:imp:4 | PHA 48:imp:3 | PLA 68:imp:4 | INX E8:imp:2 | INY C8:imp:2
DEX CA:imp:2 | DEY 88:imp:2 | TAX AA:imp:2 | TXA 8A:imp:2 | TAY A8:imp:2 | TYA 98:imp:2
TSX BA:imp:2 | TXS 9A:imp:2 | CLC 18:imp:2 | SEC 38:imp:2 | CLI 58:imp:2 | SEI 78:imp:2
CLV B8:imp:2 | CLD D8:imp:2 | SED F8:imp:2
JAM 02:imp:0 12:imp:0 22:imp:0 32:imp:0 42:imp:0 52:imp:0 62:imp:0 72:imp:0
JAM 92:imp:0 B2:imp:0 D2:imp:0 F2:imp:0
"""


def _build_tables():
    mode = np.full(256, -1, np.int64)
    kind = np.zeros(256, np.int64)
    cyc = np.zeros(256, np.int64)
    for part in _SPEC.replace("|", "\n").strip().splitlines():
        name, *entries = part.split()
        for e in entries:
            op_s, mode_s, cyc_s = e.split(":")
            op = int(op_s, 16)
            if mode[op] != -1:
                raise AssertionError(f"opcode ${op:02X} defined twice")
            mode[op], kind[op], cyc[op] = MODES.index(mode_s), KINDS.index(name), int(cyc_s)
    missing = [f"${op:02X}" for op in range(256) if mode[op] == -1]
    if missing:
        raise AssertionError(f"opcodes without a definition: {missing}")
    group = np.array([G_READ if KINDS[k] in _READ else G_STORE if KINDS[k] in _STORE
                      else G_RMW if KINDS[k] in _RMW else G_OTHER for k in kind], np.int64)
    cross = ((group == G_READ) & np.isin(mode, (M_ABX, M_ABY, M_IZY))).astype(np.int64)
    return mode, kind, cyc, group, cross


MODE, KIND, CYC, GROUP, CROSS = _build_tables()
MNEMONIC = tuple("NOP" if KINDS[k] == "NOPR" else KINDS[k] for k in KIND)
OPERAND_BYTES = tuple(0 if m == M_IMP else 2 if m in (M_ABS, M_ABX, M_ABY, M_IND) else 1 for m in MODE)


# The documented NMOS 6502 set (151 opcodes, 56 mnemonics), for the assembler: the table
# above without the undocumented operations and their duplicate encodings.
_UNDOCUMENTED = frozenset("LAX NOPR ANC ALR ARR SBX ANE LXA LAS SAX SHA SHX SHY TAS SLO RLA SRE RRA DCP ISC JAM".split())
_UNDOCUMENTED_OPCODES = frozenset({0xEB, 0x1A, 0x3A, 0x5A, 0x7A, 0xDA, 0xFA})   # SBC #, NOP implied
BRANCH_NAMES = {0x10: "BPL", 0x30: "BMI", 0x50: "BVC", 0x70: "BVS", 0x90: "BCC", 0xB0: "BCS", 0xD0: "BNE", 0xF0: "BEQ"}
_SHIFTS = frozenset({"ASL", "ROL", "LSR", "ROR"})


def documented_opcodes() -> dict[str, dict[str, int]]:
    """mnemonic -> {addressing mode: opcode} of the documented set; shifts on A use mode "acc"."""
    out: dict[str, dict[str, int]] = {}
    for op in range(256):
        name = KINDS[KIND[op]]
        if name in _UNDOCUMENTED or op in _UNDOCUMENTED_OPCODES:
            continue
        name = BRANCH_NAMES.get(op, name)
        mode = MODES[MODE[op]]
        if name in _SHIFTS and mode == "imp":
            mode = "acc"
        out.setdefault(name, {})[mode] = op
    return out


# ---------------------------------------------------------------------------- ALU


@njit(cache=True, nogil=True, inline='always')
def nz(p, v):
    """Status p with N and Z set from the value v."""
    return (p & 0x7D) | (v & 0x80) | (2 if v == 0 else 0)


@njit(cache=True, nogil=True)
def adc(a, v, p):
    """(A, P) after ADC of v, binary or NMOS decimal mode."""
    c = p & 1
    if p & FLAG_D:  # NMOS decimal: N, V from the half-adjusted sum, Z binary
        lo = (a & 0x0F) + (v & 0x0F) + c
        if lo >= 0x0A:
            lo = ((lo + 0x06) & 0x0F) + 0x10
        s = (a & 0xF0) + (v & 0xF0) + lo
        ah = (a & 0xF0) - 0x100 if a & 0x80 else a & 0xF0
        vh = (v & 0xF0) - 0x100 if v & 0x80 else v & 0xF0
        signed = ah + vh + lo
        ovf = signed < -128 or signed > 127
        n = s & 0x80
        if s >= 0xA0:
            s += 0x60
        res = s & 0xFF
        carry = 1 if s >= 0x100 else 0
        zero = ((a + v + c) & 0xFF) == 0
    else:
        s = a + v + c
        res = s & 0xFF
        carry = 1 if s > 0xFF else 0
        ovf = ((~(a ^ v)) & (a ^ res) & 0x80) != 0
        n = res & 0x80
        zero = res == 0
    p = (p & 0x3C) | n | (FLAG_V if ovf else 0) | (FLAG_Z if zero else 0) | carry
    return res, p


@njit(cache=True, nogil=True)
def sbc(a, v, p):
    """(A, P) after SBC of v, binary or NMOS decimal mode (flags as binary)."""
    c = p & 1
    t = a - v - (1 - c)
    res_b = t & 0xFF
    ovf = ((a ^ v) & (a ^ res_b) & 0x80) != 0
    p = ((p & 0x3C) | (res_b & 0x80) | (FLAG_V if ovf else 0)
         | (FLAG_Z if res_b == 0 else 0) | (1 if t >= 0 else 0))
    if p & FLAG_D:  # NMOS decimal: flags as binary, result adjusted per nibble
        lo = (a & 0x0F) - (v & 0x0F) + c - 1
        if lo < 0:
            lo = ((lo - 0x06) & 0x0F) - 0x10
        s = (a & 0xF0) - (v & 0xF0) + lo
        if s < 0:
            s -= 0x60
        return s & 0xFF, p
    return res_b, p


@njit(cache=True, nogil=True)
def compare(r, v, p):
    """Status p after CMP / CPX / CPY of register r with v (N, Z, C)."""
    t = r - v
    return (p & 0x7C) | (t & 0x80) | (FLAG_Z if t == 0 else 0) | (1 if t >= 0 else 0)


@njit(cache=True, nogil=True)
def arr(a, v, p):
    """ARR ($6B): AND then ROR; NMOS decimal mode adjusts the result nibbles and sets C."""
    t = a & v
    r = (t >> 1) | ((p & 1) << 7)
    if not (p & FLAG_D):
        b6 = (r >> 6) & 1
        b5 = (r >> 5) & 1
        p = nz(p, r) & ~(FLAG_C | FLAG_V) | b6 | (FLAG_V if b6 ^ b5 else 0)
        return r, p
    p = (p & 0x3C) | ((p & 1) << 7) | (FLAG_Z if r == 0 else 0) | (FLAG_V if (r ^ t) & 0x40 else 0)
    if (t & 0x0F) + (t & 0x01) > 0x05:
        r = (r & 0xF0) | ((r + 0x06) & 0x0F)
    if (t & 0xF0) + (t & 0x10) > 0x50:
        r = (r & 0x0F) | ((r + 0x60) & 0xF0)
        p |= FLAG_C
    return r, p
