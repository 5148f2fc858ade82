"""`porter check`: what stands between each module and isolated subinterpreters, for CI and
pre-commit. A module that is already isolated passes; anything left is a finding unless the
project's allow-list in `[tool.porter]` (pyproject.toml) names it with a reason."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass

from porter.analyze.project import Analysis
from porter.model import ExtensionModule, GlobalKind, InitStyle
from porter.status import Status, isolation_of


@dataclass(frozen=True)
class Allowed:
    module: str  # the module's import name, or "*"
    name: str | None  # a global or static type; None: the whole module
    reason: str


@dataclass(frozen=True)
class CheckFinding:
    code: str  # single-phase-init, static-type, process-global, foreign-thread
    file: str
    line: int
    column: int
    module: str
    subject: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.code} {self.message}"


class AllowListError(ValueError):
    """The allow-list cannot be read: one line saying where and why."""


def read_allow_list(path: str, data: bytes) -> list[Allowed]:
    """`[tool.porter] allow = [{module = "m", global = "g", reason = "..."}, ...]`."""
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise AllowListError(f"{path}: {e}") from None
    entries = doc.get("tool", {}).get("porter", {}).get("allow", [])
    if not isinstance(entries, list):
        raise AllowListError(f"{path}: [tool.porter] allow must be a list of tables")
    out = []
    for i, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            raise AllowListError(f"{path}: [tool.porter] allow entry {i} is not a table")
        reason = entry.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise AllowListError(f"{path}: [tool.porter] allow entry {i} has no reason: say why it may stay")
        name = entry.get("global") or entry.get("type")
        out.append(Allowed(str(entry.get("module", "*")), str(name) if name else None, reason.strip()))
    return out


def check(analysis: Analysis, allowed: list[Allowed]) -> list[CheckFinding]:
    """Every finding not allow-listed, sorted by place."""
    found: list[CheckFinding] = []
    for m in analysis.modules:
        if isolation_of(m) is Status.ALREADY_ISOLATED:
            continue
        for f in _findings(m, analysis):
            if not any(_matches(a, f) for a in allowed):
                found.append(f)
    return sorted(found, key=lambda f: (f.file, f.line, f.column, f.code))


def _findings(m: ExtensionModule, analysis: Analysis):
    def at(file: str, offset: int) -> tuple[int, int]:
        src = analysis.sources.get(file)
        return src.line_col(offset) if src is not None else (1, 1)

    if m.init_style is not InitStyle.MULTI_PHASE:
        line, col = at(m.init.file, m.init.span.start)
        yield CheckFinding("single-phase-init", m.init.file, line, col, m.name, m.name,
                           f"{m.init.name}() uses single-phase init: isolated subinterpreters refuse `{m.name}`")
    for t in m.static_types:
        line, col = at(t.file, t.span.start)
        yield CheckFinding("static-type", t.file, line, col, m.name, t.name,
                           f"static type `{t.name}` is shared by every interpreter")
    for g in m.globals:
        if not g.kind.needs_port or g.kind is GlobalKind.STATIC_TYPE:
            continue
        line, col = at(g.file, g.span.start)
        label = f"{g.function}(): static {g.name}" if g.function else g.name
        yield CheckFinding("process-global", g.file, line, col, m.name, g.name,
                           f"`{label}` ({g.kind.value}) is process-global state")
    for f in m.findings:
        if f.code == "foreign-thread":
            line, col = at(f.file, f.span.start)
            yield CheckFinding("foreign-thread", f.file, line, col, m.name, f.subject or "", f.message)


def _matches(a: Allowed, f: CheckFinding) -> bool:
    if a.module not in ("*", f.module):
        return False
    return a.name is None or a.name == f.subject
