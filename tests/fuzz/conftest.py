"""Prints the fuzz table (target, examples, seconds, crashes) at the end of a session that fuzzed.

A crash is a failed example: hypothesis stops the target at its first one and pytest reports it,
so a target listed with crashes 0 ran every example without one.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from tests.fuzz.tally import TARGETS, Target, table


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if report.when == "call" and report.failed:
        for name in getattr(getattr(item, "function", None), "fuzz_targets", ()):
            TARGETS.setdefault(name, Target()).failed = True
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TARGETS:
        return
    terminalreporter.section("fuzz targets")
    for line in table():
        terminalreporter.write_line(line)
