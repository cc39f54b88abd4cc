"""The benchmark registry: `@benchmark("name")` registers `fn(quick: bool, ...) -> dict` figures;
`Unavailable(reason)` says a benchmark cannot run on this machine or checkout."""
from __future__ import annotations

from typing import Callable

BENCHMARKS: dict[str, Callable[..., dict]] = {}
# Benchmarks that run only when named (minutes long): `sidlive bench soak --minutes 10`.
ON_REQUEST = frozenset({"soak"})


class Unavailable(RuntimeError):
    """A benchmark cannot run on this machine / checkout; the message says why."""


def benchmark(name: str):
    """Register `fn(quick: bool) -> dict` under `name`."""
    def register(fn):
        if name in BENCHMARKS:
            raise ValueError(f"benchmark {name!r} is already registered")
        BENCHMARKS[name] = fn
        return fn
    return register
