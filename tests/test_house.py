"""The house rules, read from the source (ast): imports run one way, imports sit at the top,
files stay small, public names say what they are, comments speak of the project."""
from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sidlive", "engine", "training")

# Layers from the bottom. A module may import its own package (any module in it) and any
# package of a lower layer; nothing imports upward or sideways.
LAYERS = (
    ("sidlive.frames", "sidlive.tomldoc", "sidlive.paths"),   # the data type and leaf utilities
    ("sidlive.c64", "engine"),                                # the dumper; the model runtime
    ("sidlive.audio", "sidlive.export"),                      # sound out; the C64 player
    ("sidlive.control",),                                     # parameters, maps, OSC, keyboard voice
    ("sidlive.midi",),                                        # MIDI in, the lane, ASID
    ("sidlive.live",),                                        # the instrument
    ("sidlive.studio",),                                      # the browser studio
    ("training",),                                            # model, training, data, evaluation
    ("sidlive.measure",),                                     # bench, soak, checks
    ("sidlive.commands",),                                    # the CLI
)
# Only these may import training (the commands reach `sidlive score` by name, see cli.py).
MAY_IMPORT_TRAINING = ("training", "sidlive.measure")
# Function-level imports are for optional heavy dependencies only, each with a reason.
LAZY_OK = ("torch", "pyo", "training.torch_ref", "sounddevice", "pygoattracker", "pysidtracker")
MAX_LINES = 400
LONG_OK = {"sidlive/c64/cpu6510.py"}   # the 6510 interpreter: one opcode switch


def sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit(module: str) -> str | None:
    """The layer entry a module belongs to (longest prefix), or None if not ours."""
    best = None
    for layer in LAYERS:
        for name in layer:
            if (module == name or module.startswith(name + ".")) and (best is None or len(name) > len(best)):
                best = name
    if best is None and module.split(".")[0] in PACKAGES:
        return module.split(".")[0] if module.split(".")[0] != "sidlive" else "sidlive"
    return best


def rank(u: str) -> int:
    for i, layer in enumerate(LAYERS):
        if u in layer:
            return i
    return -1


def imports(tree: ast.AST, module: str):
    """(imported module, line, at top level?) for every import in a module."""
    top = set(map(id, tree.body))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, node.lineno, id(node) in top
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(module.split(".")[:-node.level] + ([base] if base else []))
            for a in node.names:
                full = f"{base}.{a.name}"
                yield (full if unit(full) and _is_module(full) else base), node.lineno, id(node) in top


def _is_module(name: str) -> bool:
    p = ROOT / name.replace(".", "/")
    return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file()


def test_every_module_has_a_layer():
    orphans = [module_name(p) for p in sources() if unit(module_name(p)) in (None, "sidlive")
               and module_name(p) not in ("sidlive", "sidlive.__main__")]
    assert not orphans, orphans


def test_imports_run_one_way():
    bad = []
    for p in sources():
        mod = module_name(p)
        me = unit(mod)
        for target, line, _ in imports(ast.parse(p.read_text(encoding="utf-8")), mod):
            other = unit(target)
            if other is None or other == me or mod in ("sidlive", "sidlive.__main__"):
                continue
            where = f"{p.relative_to(ROOT)}:{line} imports {target}"
            if other == "training" and not me.startswith(MAY_IMPORT_TRAINING):
                bad.append(f"{where} (only training/ and sidlive/measure may import training)")
            elif rank(other) >= rank(me):
                bad.append(f"{where} ({other} is not below {me})")
    assert not bad, "\n".join(bad)


def test_imports_sit_at_the_top_with_reasons_for_the_heavy_ones():
    bad = []
    for p in sources():
        lines = p.read_text(encoding="utf-8").split("\n")
        for target, line, at_top in imports(ast.parse("\n".join(lines)), module_name(p)):
            if at_top:
                continue
            if not target.startswith(LAZY_OK):
                bad.append(f"{p.relative_to(ROOT)}:{line}: function-level import of {target}")
            elif "#" not in lines[line - 1] and not lines[line - 2].strip().startswith("#"):
                bad.append(f"{p.relative_to(ROOT)}:{line}: function-level import of {target} without a reason")
    assert not bad, "\n".join(bad)


def test_no_import_error_is_swallowed():
    bad = []
    for p in sources():
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ExceptHandler) and node.type is not None and "ImportError" in ast.unparse(node.type):
                if all(isinstance(s, ast.Pass) for s in node.body):
                    bad.append(f"{p.relative_to(ROOT)}:{node.lineno}")
    assert not bad, "\n".join(bad)


def test_files_stay_small():
    files = sources() + sorted((ROOT / "tests").rglob("*.py"))
    long = [f"{p.relative_to(ROOT)}: {n} lines" for p in files
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
            and p.relative_to(ROOT).as_posix() not in LONG_OK]
    assert not long, "\n".join(long)


def test_public_names_have_docstrings():
    missing = []
    for p in sources():
        tree = ast.parse(p.read_text(encoding="utf-8"))
        if not ast.get_docstring(tree):
            missing.append(f"{p.relative_to(ROOT)}: module")
        for node in tree.body:
            todo = [node] + (node.body if isinstance(node, ast.ClassDef) and not node.name.startswith("_") else [])
            for n in todo:
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not n.name.startswith("_") \
                        and not ast.get_docstring(n):
                    missing.append(f"{p.relative_to(ROOT)}:{n.lineno} {n.name}")
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("pattern", [r"\bissues? #?\d+", r"\(#\d+\)", r"\bacceptance figures of issue"])
def test_code_speaks_of_the_project_not_the_tracker(pattern):
    rx = re.compile(pattern, re.I)
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in sources() + sorted((ROOT / "tests").rglob("*.py"))
            for i, line in enumerate(p.read_text(encoding="utf-8").split("\n"), 1) if rx.search(line)]
    assert not hits, "\n".join(hits)


def test_pyproject_lists_every_package():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"])
    found = {module_name(p) for p in sources() if p.name == "__init__.py"}
    assert found <= listed and listed - found == {"sidlive.presets", "training.configs"}, (found ^ listed)
