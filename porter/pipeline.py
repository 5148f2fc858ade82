"""The pipeline as pure functions: bytes in, facts and patches out. No files, no printing."""

from __future__ import annotations

from porter.analyze.project import Analysis, analyze, load_sources
from porter.model import FileProblem


def scan(files: list[tuple[str, bytes]], problems: list[FileProblem] | None = None) -> Analysis:
    """Facts for every extension module in `files`; what porter cannot read becomes a problem."""
    problems = list(problems or [])
    sources = load_sources(files, problems)
    return analyze(sources, tuple(problems))
