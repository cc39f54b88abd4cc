"""TOML files with errors that name the file, the line and the field (controller maps,
effects presets): tomllib gives no positions, so `Locator` finds the line of a key in the
text. `error(table, index, key, problem)` -> "FILE: line N: table[i].key: problem".
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path


def read_text(path: str | Path, error_cls: type[Exception] = ValueError) -> str:
    """A file's UTF-8 text; error_cls naming the byte offset when it is not UTF-8."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise error_cls(f"{path}: byte offset {e.start}: not UTF-8 text") from None


def parse_toml(text: str, source: str, error_cls: type[Exception] = ValueError) -> tuple[dict, "Locator"]:
    """(the document, its Locator); a syntax error raises error_cls with tomllib's position."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise error_cls(f"{source}: {e}") from None
    except RecursionError:   # tomllib parses nested arrays and inline tables recursively
        raise error_cls(f"{source}: nested too deeply (arrays or inline tables inside one another)") from None
    return doc, Locator(text, source, error_cls)


class Locator:
    """Finds the line of a key in the TOML text (tomllib gives no positions)."""

    _header = re.compile(r"^\s*\[\[\s*([A-Za-z0-9_-]+)\s*\]\]")
    _single = re.compile(r"^\s*\[\s*([A-Za-z0-9_-]+)\s*\]\s*(#.*)?$")
    _table = re.compile(r"^\s*\[")

    def __init__(self, text: str, source: str, error_cls: type[Exception] = ValueError):
        self.lines = text.splitlines()
        self.source = source
        self.error_cls = error_cls

    def line_of(self, table: str | None, index: int | None, key: str | None) -> int:
        """Line of key in table (index: which [[table]]; None: a single [table]), else of the table's header."""
        count = -1
        inside = table is None
        header_line = 1
        for n, line in enumerate(self.lines, start=1):
            m = self._header.match(line)
            if m or self._table.match(line):
                if table is None:
                    break
                if index is None:     # a single [table]
                    one = self._single.match(line)
                    inside = bool(one) and one.group(1) == table
                else:
                    inside = bool(m) and m.group(1) == table and (count := count + 1) == index
                if inside:
                    header_line = n
                continue
            if inside and key is not None and re.match(rf"^\s*{re.escape(key)}\s*=", line):
                return n
        return header_line

    def error(self, table, index, key, problem: str) -> Exception:
        """An error_cls "FILE: line N: table[i].key: problem" for that field."""
        line = self.line_of(table, index, key)
        field = (f"{table}[{index}]" if index is not None else table) if table else ""
        if key:
            field = f"{field}.{key}" if field else key
        return self.error_cls(f"{self.source}: line {line}: {field or 'file'}: {problem}")
