"""The pipeline as pure functions: bytes in, facts and patches out. No files, no printing."""

from __future__ import annotations

from porter.analyze.build_config import read_build_config
from porter.analyze.project import Analysis, analyze, load_sources
from porter.model import NO_COMPANIONS, Companions, FileProblem


def scan(files: list[tuple[str, bytes]], problems: list[FileProblem] | None = None,
         companions: Companions = NO_COMPANIONS) -> Analysis:
    """Facts for every extension module in `files`; what porter cannot read becomes a problem."""
    problems = list(problems or [])
    build = read_build_config(list(companions.build_files)).with_given(companions.given_defines,
                                                                      companions.given_include_dirs)
    sources = load_sources(files, problems, dict(build.defines))
    return analyze(sources, tuple(problems), companions, build)


def port_files(files: list[tuple[str, bytes]], unsafe: bool = False,
               problems: list[FileProblem] | None = None, companions: Companions = NO_COMPANIONS,
               multi_phase_is_done: bool = True):
    """Scan, plan and apply: the new text of every file a ported module changed."""
    from porter.rewrite.port import port

    return port(scan(files, problems, companions), unsafe=unsafe, multi_phase_is_done=multi_phase_is_done)
