"""Examples run and seconds spent per fuzz target, for the table ``make fuzz`` prints.

Each target calls ``tally(name)`` once per example and its test function carries
``@counts_for(name)``; ``tests/fuzz/conftest.py`` marks a target crashed when its test fails and
prints the table at the end of the session.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

#: Examples per target: ``make fuzz`` sets 100,000; ``make test`` runs this small default.
EXAMPLES = int(os.environ.get("PULLGUARD_FUZZ_EXAMPLES", "300"))


@dataclass
class Target:
    examples: int = 0
    first: float = field(default_factory=time.monotonic)
    last: float = field(default_factory=time.monotonic)
    failed: bool = False


TARGETS: dict[str, Target] = {}


def tally(name: str) -> None:
    """Count one example of ``name``."""
    target = TARGETS.setdefault(name, Target())
    target.examples += 1
    target.last = time.monotonic()


def counts_for(*names: str) -> Callable[[F], F]:
    """Name the targets a test function feeds (so a failure marks them crashed)."""

    def mark(fn: F) -> F:
        fn.fuzz_targets = names  # type: ignore[attr-defined]
        return fn

    return mark


def table() -> list[str]:
    lines = ["| target | examples | seconds | crashes |", "|---|---:|---:|---:|"]
    for name, t in TARGETS.items():
        lines.append(f"| {name} | {t.examples} | {t.last - t.first:.1f} | {1 if t.failed else 0} |")
    return lines
