"""`porter explain`: the texts of the code registry (porter.codes)."""

from __future__ import annotations

from porter.codes import registry


def topics() -> dict[str, str]:
    """Every code with its text."""
    return {code.id: code.text for code in registry().values()}


def summary(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first.split(": ", 1)[1] if ": " in first else first
