"""Shared test set-up: the snapshot flag and the fixture list."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-snapshots", action="store_true",
                     help="Rewrite expected.* snapshot files from porter's current output.")


@pytest.fixture
def update_snapshots(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-snapshots"))


def clinic_tree() -> Path:
    """CPython v3.12.0's Argument Clinic (Tools/clinic, Include/patchlevel.h, configure.ac), which
    `.ci/fetch-clinic` caches outside the repository (CPython's source is never committed).

    Fetching it needs github.com. A machine without it (the CI machine has a PyPI mirror and no
    other network) skips the tests that run the real clinic, with this reason, unless
    PORTER_REQUIRE_CLINIC is set; benchmarks/cpython_intree.py runs it on every patched file of
    a real CPython tree."""
    path = Path(os.environ.get("PORTER_CLINIC_TREE") or Path.home() / ".cache" / "porter" / "cpython-v3.12.0")
    if not (path / "Tools" / "clinic" / "clinic.py").is_file():
        message = (f"CPython v3.12.0's Argument Clinic is not at {path}: run .ci/fetch-clinic (it needs "
                   "github.com) or set PORTER_CLINIC_TREE")
        if os.environ.get("PORTER_REQUIRE_CLINIC"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def fixture_dirs() -> list[Path]:
    return sorted(p for p in FIXTURES.iterdir() if (p / "fixture.toml").is_file())
