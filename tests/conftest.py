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
    `.ci/fetch-clinic` caches outside the repository: a test that needs it fails without it."""
    path = Path(os.environ.get("PORTER_CLINIC_TREE") or Path.home() / ".cache" / "porter" / "cpython-v3.12.0")
    if not (path / "Tools" / "clinic" / "clinic.py").is_file():
        pytest.fail(f"CPython v3.12.0's Argument Clinic is not at {path}: run .ci/fetch-clinic "
                    "(or set PORTER_CLINIC_TREE)")
    return path


def fixture_dirs() -> list[Path]:
    return sorted(p for p in FIXTURES.iterdir() if (p / "fixture.toml").is_file())
