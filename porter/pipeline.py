"""The pipeline as pure functions: bytes in, facts and patches out. No files, no printing."""

from __future__ import annotations

from porter.analyze.project import Analysis, analyze, load_sources
from porter.model import FileProblem


def scan(files: list[tuple[str, bytes]], problems: list[FileProblem] | None = None) -> Analysis:
    """Facts for every extension module in `files`; what porter cannot read becomes a problem."""
    problems = list(problems or [])
    sources = load_sources(files, problems)
    return analyze(sources, tuple(problems))


def port_files(files: list[tuple[str, bytes]], unsafe: bool = False,
               problems: list[FileProblem] | None = None):
    """Scan, plan and apply: the new text of every file a ported module changed."""
    from porter.rewrite.port import port

    return port(scan(files, problems), unsafe=unsafe)
