"""The pipeline as pure functions: bytes in, facts and patches out. No files, no printing."""

from __future__ import annotations

from collections.abc import Sequence

from porter.analyze.project import Analysis, analyze, load_sources
from porter.model import FileProblem


def scan(files: list[tuple[str, bytes]], problems: list[FileProblem] | None = None,
         python_files: Sequence[tuple[str, bytes]] = (),
         outside_files: Sequence[tuple[str, bytes]] = ()) -> Analysis:
    """Facts for every extension module in `files`; what porter cannot read becomes a problem.

    `python_files` are the package's Python sources: what they read from a type's `__dict__`
    decides whether a port may change it. `outside_files` include the sources' headers but are
    not ported: what they name of those headers must stay as it is.
    """
    problems = list(problems or [])
    sources = load_sources(files, problems)
    return analyze(sources, tuple(problems), python_files, outside_files)


def port_files(files: list[tuple[str, bytes]], unsafe: bool = False,
               problems: list[FileProblem] | None = None,
               python_files: Sequence[tuple[str, bytes]] = (),
               outside_files: Sequence[tuple[str, bytes]] = (), multi_phase_is_done: bool = True):
    """Scan, plan and apply: the new text of every file a ported module changed."""
    from porter.rewrite.port import port

    return port(scan(files, problems, python_files, outside_files), unsafe=unsafe,
                multi_phase_is_done=multi_phase_is_done)
