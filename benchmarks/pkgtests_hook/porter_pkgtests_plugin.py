"""pytest plugin (loaded through PYTEST_PLUGINS by benchmarks/package_tests.py): one outcome per test id."""

from __future__ import annotations

import os

from sitecustomize import record  # type: ignore[import-not-found]

_outcomes: dict[str, str] = {}


def pytest_configure(config) -> None:
    os.environ["PORTER_PKGTESTS_IN_PYTEST"] = "1"


def pytest_collectreport(report) -> None:
    if report.failed:
        record({"kind": "test", "id": report.nodeid or "<collection>", "outcome": "error"})


def pytest_runtest_logreport(report) -> None:
    xfail = hasattr(report, "wasxfail")
    if report.when == "setup":
        _outcomes[report.nodeid] = "error" if report.failed else "skipped" if report.skipped else ""
    elif report.when == "call":
        if xfail:
            got = "xfailed" if report.skipped else "xpassed"
        else:
            got = "passed" if report.passed else "failed" if report.failed else "skipped"
        _outcomes[report.nodeid] = got
    if report.when == "teardown":
        got = _outcomes.pop(report.nodeid, "") or "passed"
        if report.failed and got in ("passed", "xpassed"):
            got = "error"
        record({"kind": "test", "id": report.nodeid, "outcome": got})
