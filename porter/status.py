"""What porter says about a module, in one vocabulary for the summary, the report, JSON and the
exit code. Each status says exactly what porter checked, nothing more."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import StrEnum

from porter.model import ExtensionModule, GlobalKind, InitStyle


class Status(StrEnum):
    ISOLATED = "isolated"  # porter built it and imported it in isolated subinterpreters
    COMPILES = "compiles"  # the patched translation units compile with no new diagnostic; not run
    PARTIAL = "partial"  # compiles, but named globals or types stay process-global (weaker claim)
    NOT_COMPILED = "not compiled"  # patched, but porter did not compile it (and says why)
    FAILED = "failed"  # no patch: porter could not port it, or the port did not compile
    ALREADY_ISOLATED = "already isolated"  # multi-phase, claims a per-interpreter GIL, nothing static
    NOT_ISOLATED = "not isolated"  # multi-phase, but static types or globals remain (scan, report)
    KEPT = "kept as it is"  # left alone on purpose, with the reason (CPython's import-machinery tests)
    NO_MODULE = "no extension module"

    @property
    def ok(self) -> bool:
        """Whether this outcome lets `porter port` exit 0."""
        return self is not Status.FAILED


# The order summaries count in.
SUMMARY_ORDER = (Status.ALREADY_ISOLATED, Status.ISOLATED, Status.COMPILES, Status.PARTIAL,
                 Status.NOT_COMPILED, Status.NOT_ISOLATED, Status.KEPT, Status.FAILED)


@dataclass(frozen=True)
class Outcome:
    module: str
    file: str
    status: Status
    reason: str = ""  # for FAILED and NOT_COMPILED: why; for PARTIAL: what stays global


def isolation_of(module: ExtensionModule) -> Status | None:
    """For a module that is already multi-phase: isolated or not yet; None otherwise."""
    if module.init_style is not InitStyle.MULTI_PHASE:
        return None
    claims = any(slot == "Py_mod_multiple_interpreters" and value.strip() == "Py_MOD_PER_INTERPRETER_GIL_SUPPORTED"
                 for slot, value in module.module_slots)
    left = [g for g in module.globals if g.kind.needs_port and g.kind is not GlobalKind.STATIC_TYPE]
    # Python entered from a thread that never ran the interpreter (analyze.foreign_threads) runs
    # under the main interpreter whatever the slot claims.
    foreign = any(f.code == "foreign-thread" for f in module.findings)
    if claims and not module.static_types and not left and not foreign:
        return Status.ALREADY_ISOLATED
    return Status.NOT_ISOLATED


def summary_line(outcomes: list[Outcome]) -> str:
    """`130 modules: 106 already isolated, 12 compiles, 4 partial, 8 failed`."""
    counts = Counter(o.status for o in outcomes)
    parts = [f"{counts[s]} {s.value}" for s in SUMMARY_ORDER if counts[s]]
    noun = "module" if len(outcomes) == 1 else "modules"
    return f"{len(outcomes)} {noun}: " + (", ".join(parts) if parts else "nothing found")
