"""The pipeline as pure functions: bytes in, facts and patches out. No files, no printing (CPython's
Argument Clinic, when a port changes its input, runs on a temporary copy)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

from porter.analyze.build_config import read_build_config
from porter.analyze.project import Analysis
from porter.analyze.schedule import Progress
from porter.model import NO_COMPANIONS, Companions, FileProblem


@contextmanager
def few_collections() -> Iterator[None]:
    """Cyclic garbage collection tuned for a run: porter makes millions of small objects (nodes,
    spans, facts) and almost no cycles, so the default thresholds spend a quarter of a scan
    looking for garbage that is not there. What exists before the run is frozen out of every
    collection; the youngest generation is collected every 100 000 allocations instead of 700."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


def scan(files: list[tuple[str, bytes]], problems: list[FileProblem] | None = None,
         companions: Companions = NO_COMPANIONS, *, jobs: int | None = None, file_facts_for: str = "all",
         progress: Progress | None = None, port_facts: bool = True) -> Analysis:
    """Facts for every extension module in `files`; what porter cannot read becomes a problem.

    `jobs` is how many processes may parse and analyse (default: one per CPU; small inputs stay
    in this process); `file_facts_for` which files outside every module are parsed for their own
    facts ("all", "c" for the sources, "none"); `progress(done, total)` hears of bytes parsed;
    `port_facts` whether to read the facts only a port needs (a scan's report does not).
    """
    from porter.analyze.schedule import scan_files

    build = read_build_config(list(companions.build_files)).with_given(companions.given_defines,
                                                                      companions.given_include_dirs)
    with few_collections():
        return scan_files(files, problems, companions, build, jobs=jobs, file_facts_for=file_facts_for,
                          progress=progress, port_facts=port_facts)


def port_files(files: list[tuple[str, bytes]], unsafe: bool = False,
               problems: list[FileProblem] | None = None, companions: Companions = NO_COMPANIONS,
               multi_phase_is_done: bool = True, *, jobs: int | None = None, progress: Progress | None = None):
    """Scan, plan and apply: the new text of every file a ported module changed."""
    from porter.clinic_run import port_running_clinic

    analysis = scan(files, problems, companions, jobs=jobs, file_facts_for="none", progress=progress)
    with few_collections():
        return port_running_clinic(analysis, unsafe=unsafe, multi_phase_is_done=multi_phase_is_done)
