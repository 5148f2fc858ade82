"""Records, for benchmarks/package_tests.py, each unittest outcome and where the extensions came from.

Put on PYTHONPATH only by package_tests.py, which sets PORTER_PKGTESTS_RECORD (a JSON-lines
file every Python process of a test run appends to) and PORTER_PKGTESTS_MODULES (the
package's extension modules). pytest outcomes come from porter_pkgtests_plugin (PYTEST_PLUGINS).
"""

from __future__ import annotations

import atexit
import json
import os
import sys

_RECORD = os.environ.get("PORTER_PKGTESTS_RECORD")


_WANTED = [m for m in os.environ.get("PORTER_PKGTESTS_MODULES", "").split(",") if m]
_SEEN: set[str] = set()


def record(entry: dict) -> None:
    entry["pid"] = os.getpid()
    with open(_RECORD, "a", encoding="utf-8") as f:  # type: ignore[arg-type]
        f.write(json.dumps(entry) + "\n")
    if entry["kind"] == "test" and len(_SEEN) < len(_WANTED):
        _loaded_extensions()  # now too: a run that crashes never reaches atexit


def _loaded_extensions() -> None:
    new = [m for m in _WANTED if m in sys.modules and m not in _SEEN]
    _SEEN.update(new)
    if new:
        record({"kind": "modules", "loaded": {m: getattr(sys.modules[m], "__file__", None) for m in new}})


def _patch_unittest() -> None:
    import unittest.result

    base = unittest.result.TestResult

    def wrap(name: str, outcome: str) -> None:
        original = getattr(base, name)

        def method(self, test, *args):
            original(self, test, *args)
            if os.environ.get("PORTER_PKGTESTS_IN_PYTEST"):
                return  # pytest's own report covers it
            got = outcome
            if name == "addSubTest":
                if args[-1] is None:
                    return  # a passing subtest says nothing about its test
                got = "failed"
            record({"kind": "test", "id": test.id(), "outcome": got})

        setattr(base, name, method)

    for name, outcome in (("addSuccess", "passed"), ("addFailure", "failed"), ("addError", "error"),
                          ("addSkip", "skipped"), ("addExpectedFailure", "xfailed"),
                          ("addUnexpectedSuccess", "xpassed"), ("addSubTest", "failed")):
        wrap(name, outcome)


if _RECORD:
    atexit.register(lambda: _loaded_extensions() if len(_SEEN) < len(_WANTED) else None)
    _patch_unittest()
