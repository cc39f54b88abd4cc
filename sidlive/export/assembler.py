"""A small two-pass 6502 assembler: enough to build the .sid export player from source.

Syntax (one statement per line; `;` starts a comment; mnemonics, directives and the
register names A/X/Y are case-insensitive, labels are case-sensitive):
    name:                 a label: the current address (may share a line with a statement)
    name = expr           a constant (its value must be known where it is defined)
    * = expr  / .org expr set the current address (forward only; the gap is zero-filled)
    .byte e, "text", ...  bytes (values -128..255; strings are ASCII)
    .word e, ...          16-bit little-endian words
    .fill n [, value]     n bytes of value (default 0)

Operands, by addressing mode: (none) implied; `A` (or none) accumulator; `#e` immediate;
`e` zero page / absolute / relative (branches); `e,X` `e,Y` indexed; `(e)` indirect (JMP);
`(e,X)` indexed indirect; `(e),Y` indirect indexed. A zero-page form is used when the
operand's value is known in pass 1 and below $100 and the mnemonic has one; otherwise
the absolute form (a forward reference therefore always assembles as absolute).

Expressions: numbers ($hex, %binary, decimal, 'c'), labels, `*` (the current address),
unary `-`, binary `* /` then `+ -` then `&` then `^` then `|` (left to right), and `[ ]`
for grouping (round brackets mean indirection). A leading `<` or `>` takes the low or high
byte of the whole expression after it: `<label+1` is the low byte of label+1.

The opcode table is the documented NMOS 6502 set (151 opcodes, 56 mnemonics), taken from
the 6510 emulator's table (sidlive/c64/opcodes.py), so the two never disagree.

    prog = assemble(source, name="player.s")   # -> Program(origin, code, symbols)
    prog.code, prog.symbols["play"]

Errors raise AsmError naming the source, the line number and the problem.
"""
from __future__ import annotations

import dataclasses
import operator
import re

from sidlive.c64.opcodes import documented_opcodes

OPERAND_BYTES = {"imp": 0, "acc": 0, "imm": 1, "zp": 1, "zpx": 1, "zpy": 1, "izx": 1, "izy": 1,
                 "rel": 1, "abs": 2, "abx": 2, "aby": 2, "ind": 2}
OPCODES = documented_opcodes()  # mnemonic -> {mode: opcode}, from the dumper's one table


class AsmError(ValueError):
    """Bad assembly source; the message names the source, line and problem."""


@dataclasses.dataclass
class Program:
    """An assembled program: its origin address, the code bytes and the symbol table."""
    origin: int  # address of code[0]
    code: bytes
    symbols: dict  # name -> value

    @property
    def end(self) -> int:
        """First address after the code."""
        return self.origin + len(self.code)


# --------------------------------------------------------------------------- expressions

_TOKEN = re.compile(r"\s*(\$[0-9A-Fa-f]+|%[01]+|\d+|'.'|[A-Za-z_.][A-Za-z0-9_.]*|[-+*/&|^<>\[\]])")


_BINARY = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.floordiv,
           "&": operator.and_, "^": operator.xor, "|": operator.or_}


class _Undefined(Exception):
    def __init__(self, name: str):
        self.name = name


def _tokenize(text: str) -> list[str]:
    pos, out = 0, []
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise ValueError(f"cannot read the expression at {text[pos:].strip()!r}")
        out.append(m.group(1))
        pos = m.end()
    return out


def evaluate(text: str, symbols: dict, pc: int) -> int:
    """Value of an expression; raises _Undefined(name) for an unknown label, ValueError if malformed."""
    toks = _tokenize(text)
    if not toks:
        raise ValueError("missing expression")
    byte = None
    if toks[0] in ("<", ">"):
        byte, toks = toks[0], toks[1:]
    pos = 0

    def peek():
        return toks[pos] if pos < len(toks) else None

    def take():
        nonlocal pos
        pos += 1
        return toks[pos - 1]

    def atom() -> int:
        t = take() if pos < len(toks) else None
        if t is None:
            raise ValueError("expression ends early")
        if t == "-":
            return -atom()
        if t == "[":
            v = binary(0)
            if peek() != "]":
                raise ValueError("missing ']'")
            take()
            return v
        if t == "*":
            return pc
        if t.startswith("$"):
            return int(t[1:], 16)
        if t.startswith("%"):
            return int(t[1:], 2)
        if t.isdigit():
            return int(t)
        if t.startswith("'"):
            return ord(t[1])
        if re.match(r"[A-Za-z_.]", t):
            if t not in symbols:
                raise _Undefined(t)
            return symbols[t]
        raise ValueError(f"unexpected {t!r}")

    levels = (("|",), ("^",), ("&",), ("+", "-"), ("*", "/"))

    def binary(level: int) -> int:
        if level == len(levels):
            return atom()
        v = binary(level + 1)
        while peek() in levels[level]:
            op = take()
            w = binary(level + 1)
            if op == "/" and w == 0:
                raise ValueError("division by zero")
            v = _BINARY[op](v, w)
        return v

    v = binary(0)
    if pos != len(toks):
        raise ValueError(f"unexpected {toks[pos]!r}")
    if byte == "<":
        return v & 0xFF
    if byte == ">":
        return (v >> 8) & 0xFF
    return v


# --------------------------------------------------------------------------- statements

_LABEL = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*:")
_CONST = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$")
_ORG = re.compile(r"^\s*(?:\*\s*=|\.org\s)(.*)$", re.IGNORECASE)


def _split_unquoted(text: str, sep: str, maxsplit: int = -1) -> list[str]:
    """Split on `sep` outside "..." and '.' quotes (at most maxsplit times)."""
    parts, cur, quote = [], [], None
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == sep and (maxsplit < 0 or len(parts) < maxsplit):
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    return parts + ["".join(cur)]


def parse_operand(text: str) -> tuple[str, str]:
    """(mode class, expression): mode class is one of imp acc imm addr addrx addry ind izx izy."""
    s = text.strip()
    if not s:
        return "imp", ""
    if s.upper() == "A":
        return "acc", ""
    if s.startswith("#"):
        return "imm", s[1:].strip()
    m = re.match(r"^\((.*),\s*[Xx]\s*\)$", s)
    if m:
        return "izx", m.group(1)
    m = re.match(r"^\((.*)\)\s*,\s*[Yy]$", s)
    if m:
        return "izy", m.group(1)
    m = re.match(r"^\((.*)\)$", s)
    if m:
        return "ind", m.group(1)
    m = re.match(r"^(.*),\s*([XxYy])$", s)
    if m:
        return "addr" + m.group(2).lower(), m.group(1)
    return "addr", s


class _Assembler:
    def __init__(self, source: str, name: str):
        self.name = name
        self.lines = source.splitlines()
        self.symbols: dict[str, int] = {}
        self.sizes: dict[int, str] = {}  # line index -> mode chosen in pass 1

    def error(self, lineno: int, msg: str) -> AsmError:
        return AsmError(f"{self.name}: line {lineno}: {msg}")

    def value(self, expr: str, lineno: int, pc: int, final: bool):
        """The expression's value, or None when a label is not (yet) defined in pass 1."""
        try:
            return evaluate(expr, self.symbols, pc)
        except _Undefined as e:
            if final:
                raise self.error(lineno, f"undefined label {e.name!r}") from None
            return None
        except ValueError as e:
            raise self.error(lineno, f"{e} in {expr.strip()!r}") from None

    def run(self) -> Program:
        self.pass_(final=False)
        return self.pass_(final=True)

    def pass_(self, final: bool) -> Program:
        pc, origin = None, None
        out: dict[int, int] = {}
        for idx, raw in enumerate(self.lines):
            lineno = idx + 1
            line = _split_unquoted(raw, ";", 1)[0].rstrip()
            m = _ORG.match(line)
            if m:
                v = self.value(m.group(1), lineno, pc or 0, True)
                if pc is not None and v < pc:
                    raise self.error(lineno, f"origin ${v:04X} is below the current address ${pc:04X}")
                if not 0 <= v <= 0xFFFF:
                    raise self.error(lineno, f"origin {v} is outside $0000-$FFFF")
                pc = v
                origin = v if origin is None else origin
                continue
            m = _CONST.match(line)
            if m and not line.lstrip().startswith("."):
                name = m.group(1)
                v = self.value(m.group(2), lineno, pc or 0, True)
                self.define(name, v, lineno, final)
                continue
            m = _LABEL.match(line)
            if m:
                if pc is None:
                    raise self.error(lineno, f"label {m.group(1)!r} before any origin (* = address)")
                self.define(m.group(1), pc, lineno, final)
                line = line[m.end():]
            stmt = line.strip()
            if not stmt:
                continue
            if pc is None:
                raise self.error(lineno, "code before any origin (* = address)")
            emitted = self.statement(stmt, lineno, idx, pc, final)
            for i, b in enumerate(emitted):
                out[pc + i] = b
            pc += len(emitted)
            if pc > 0x10000:
                raise self.error(lineno, f"code runs past $FFFF (to ${pc:05X})")
        if origin is None:
            return Program(0, b"", dict(self.symbols))
        code = bytes(out.get(a, 0) for a in range(origin, pc))
        return Program(origin, code, dict(self.symbols))

    def define(self, name: str, value: int, lineno: int, final: bool) -> None:
        if name.upper() in OPCODES or name.upper() in ("A", "X", "Y"):
            raise self.error(lineno, f"{name!r} is a mnemonic or register name, not a label")
        if not final and name in self.symbols:
            raise self.error(lineno, f"label {name!r} defined twice")
        if final and self.symbols.get(name) != value:
            raise self.error(lineno, f"label {name!r} moved between passes "
                                     f"(${self.symbols.get(name) or 0:04X} -> ${value:04X})")
        self.symbols[name] = value

    def statement(self, stmt: str, lineno: int, idx: int, pc: int, final: bool) -> list[int]:
        word, *more = stmt.split(None, 1)
        rest = more[0] if more else ""
        op = word.upper()
        if op.startswith("."):
            return self.directive(op, rest, lineno, pc, final)
        if op not in OPCODES:
            raise self.error(lineno, f"unknown mnemonic or directive {word!r}")
        return self.instruction(op, rest, lineno, idx, pc, final)

    def directive(self, op: str, rest: str, lineno: int, pc: int, final: bool) -> list[int]:
        args = [a.strip() for a in _split_unquoted(rest, ",")] if rest.strip() else []
        if op == ".BYTE":
            out = []
            for a in args:
                if len(a) >= 2 and a[0] == a[-1] == '"':
                    try:
                        out += list(a[1:-1].encode("ascii"))
                    except UnicodeEncodeError:
                        raise self.error(lineno, f"string {a} is not ASCII") from None
                    continue
                v = self.value(a, lineno, pc, final)
                out.append(self.check_byte(v, lineno, a) if final else 0)
            return out
        if op == ".WORD":
            out = []
            for a in args:
                v = self.value(a, lineno, pc, final)
                if final and not -0x8000 <= v <= 0xFFFF:
                    raise self.error(lineno, f".word value {v} is outside -32768..65535")
                v = (v or 0) & 0xFFFF
                out += [v & 0xFF, v >> 8]
            return out
        if op == ".FILL":
            if not 1 <= len(args) <= 2:
                raise self.error(lineno, ".fill takes a count and an optional value")
            n = self.value(args[0], lineno, pc, True)
            if not 0 <= n <= 0x10000:
                raise self.error(lineno, f".fill count {n} is outside 0..65536")
            v = self.value(args[1], lineno, pc, final) if len(args) == 2 else 0
            return [self.check_byte(v, lineno, args[-1]) if final else 0] * n
        raise self.error(lineno, f"unknown directive {op.lower()!r}; known: .byte .word .fill .org")

    def check_byte(self, v: int, lineno: int, expr: str) -> int:
        if not -128 <= v <= 255:
            raise self.error(lineno, f"value {v} of {expr.strip()!r} does not fit a byte (-128..255)")
        return v & 0xFF

    def instruction(self, op: str, rest: str, lineno: int, idx: int, pc: int, final: bool) -> list[int]:
        modes = OPCODES[op]
        cls, expr = parse_operand(rest)
        if cls == "imp" and "imp" not in modes and "acc" in modes:
            cls = "acc"
        if cls in ("imp", "acc", "imm", "ind", "izx", "izy"):
            mode = cls
        elif "rel" in modes:
            mode = "rel" if cls == "addr" else cls
        else:
            mode = self.choose_size(op, cls, expr, lineno, idx, pc, final)
        if mode not in modes:
            names = {"imp": "implied", "acc": "accumulator", "imm": "immediate", "zp": "zero page",
                     "zpx": "zero page,X", "zpy": "zero page,Y", "abs": "absolute",
                     "abx": "absolute,X", "aby": "absolute,Y", "ind": "indirect",
                     "izx": "(indirect,X)", "izy": "(indirect),Y", "rel": "relative",
                     "addrx": "indexed,X", "addry": "indexed,Y", "addr": "address"}
            have = ", ".join(names[m] for m in modes)
            raise self.error(lineno, f"{op} has no {names[mode]} mode (it has: {have})")
        code = [modes[mode]]
        nbytes = OPERAND_BYTES[mode]
        if nbytes == 0:
            return code
        v = self.value(expr, lineno, pc, final)
        if not final:
            return code + [0] * nbytes
        if mode == "rel":
            dist = v - (pc + 2)
            if not -128 <= dist <= 127:
                raise self.error(lineno, f"branch target ${v & 0xFFFF:04X} is {dist} bytes away; "
                                         "a branch reaches -128..127")
            return code + [dist & 0xFF]
        if mode == "imm":
            return code + [self.check_byte(v, lineno, expr)]
        if nbytes == 1:
            if not 0 <= v <= 0xFF:
                raise self.error(lineno, f"{op} operand ${v & 0xFFFF:04X} must be a zero-page address ($00-$FF)")
            return code + [v]
        if not 0 <= v <= 0xFFFF:
            raise self.error(lineno, f"{op} operand {v} is outside $0000-$FFFF")
        return code + [v & 0xFF, v >> 8]

    def choose_size(self, op, cls, expr, lineno, idx, pc, final) -> str:
        """Zero-page or absolute form for addr/addrx/addry, decided in pass 1 and kept."""
        if final and idx in self.sizes:
            return self.sizes[idx]
        zp, ab = {"addr": ("zp", "abs"), "addrx": ("zpx", "abx"), "addry": ("zpy", "aby")}[cls]
        modes = OPCODES[op]
        v = self.value(expr, lineno, pc, final)
        if zp in modes and v is not None and 0 <= v <= 0xFF:
            mode = zp
        elif ab in modes:
            mode = ab
        else:
            mode = zp
        self.sizes[idx] = mode
        return mode


def assemble(source: str, name: str = "<asm>") -> Program:
    """Assemble 6502 source text; see the module docstring for the syntax."""
    return _Assembler(source, name).run()
