"""Snapshot comparison: exact, explicit to update, and a missing file is a failure."""

from __future__ import annotations

from pathlib import Path


def check_snapshot(path: Path, actual: bytes, update: bool) -> None:
    if update:
        path.write_bytes(actual)
        return
    assert path.exists(), f"missing snapshot {path}; run pytest --update-snapshots and read the result"
    expected = path.read_bytes()
    if expected != actual:
        import difflib

        diff = "".join(difflib.unified_diff(
            expected.decode("utf-8", "replace").splitlines(keepends=True),
            actual.decode("utf-8", "replace").splitlines(keepends=True),
            f"{path.name} (expected)", f"{path.name} (actual)"))
        raise AssertionError(f"{path} differs from porter's output:\n{diff[:6000]}")
