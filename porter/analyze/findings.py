"""Blockers and risks: what stands between a module and isolation besides its globals."""

from __future__ import annotations

from bisect import bisect_right

from porter import capi
from porter.analyze.foreign_threads import foreign_thread_findings
from porter.analyze.index import FileIndex
from porter.model import Finding, Function, Global, GlobalKind, Severity, Span, StaticType

_BLOCKER_CODES = {
    "PyState_FindModule": ("state-find-module", Severity.BLOCKER),
    "PyState_AddModule": ("state-add-module", Severity.BLOCKER),
    "PyState_RemoveModule": ("state-add-module", Severity.BLOCKER),
    "PyCapsule_New": ("capsule-export", Severity.RISK),
    "PyCapsule_Import": ("capsule-import", Severity.INFO),
}


def collect_findings(
    indexes: list[FileIndex], functions: list[Function], globals_: list[Global],
    types: list[StaticType], shared: dict | None = None,
) -> list[Finding]:
    """`shared` keeps the findings that depend only on the files (calls, unparsed regions,
    Py_LIMITED_API) between the modules of one set of files (a unity file's inits)."""
    shared = {} if shared is None else shared
    found = shared.get("file findings")
    if found is None:
        found = shared["file findings"] = _file_findings(indexes, functions)
    out: list[Finding] = list(found)
    for index in indexes:
        out.extend(_dropped_branch_uses(index, globals_))
    for g in globals_:
        if g.kind is GlobalKind.PROCESS_CONSTANT:
            out.append(Finding(
                "process-constant", Severity.INFO, g.file, g.span,
                f"{g.name} stays process-global: {g.reason}. Two interpreters' first calls may both "
                "write it, with the same value", subject=g.name))
        if not g.kind.needs_port:
            continue
        headers = [loc for loc in g.extern_declarations if loc.file.endswith((".h", ".hpp"))]
        if headers and not g.is_static:
            out.append(Finding(
                "exported-global", Severity.RISK, headers[0].file, headers[0].span,
                f"{g.name} is declared extern in a header: other code may use it directly", subject=g.name))
    for t in types:
        headers = [loc for loc in t.forward_declarations if loc.file.endswith((".h", ".hpp"))]
        if headers and not t.is_static:
            out.append(Finding(
                "exported-type", Severity.RISK, headers[0].file, headers[0].span,
                f"{t.name} is declared in a header: porter converts it and removes the header's "
                "declaration; code outside these files that names it will not build", subject=t.name))
        if t.custom_metatype:
            out.append(Finding(
                "metaclass", Severity.RISK, t.file, t.span,
                f"{t.name} has metatype {t.custom_metatype}: heap types with a custom metaclass need "
                "PyType_FromMetaclass (3.12+)", subject=t.name))
    out.sort(key=lambda f: (f.file, f.span.start, f.code))
    return out


def _file_findings(indexes: list[FileIndex], functions: list[Function]) -> list[Finding]:
    """Blocking and process-global calls, unparsed regions, Py_LIMITED_API: what the files say
    whatever module they serve (the functions' names and spans are the same for each)."""
    out: list[Finding] = []
    fn_at = _function_locator(functions)
    for index in indexes:
        for name, call in index.calls:
            span = Span(call.start_byte, call.end_byte)
            where = fn_at(index.path, call.start_byte)
            if name in capi.BLOCKER_CALLS:
                code, severity = _BLOCKER_CODES.get(name, ("gilstate", Severity.RISK))
                out.append(Finding(code, severity, index.path, span,
                                   f"{name}(): {capi.BLOCKER_CALLS[name]}", where))
            elif name in capi.PROCESS_GLOBAL_CALLS:
                out.append(Finding("process-global", Severity.RISK, index.path, span,
                                   f"{name}(): {capi.PROCESS_GLOBAL_CALLS[name]}", where))
        for span in index.src.error_spans:
            out.append(Finding("unparsed", Severity.INFO, index.path, span,
                               "tree-sitter could not parse this region; porter edits nothing in it",
                               fn_at(index.path, span.start)))
        for m in index.macros:
            if m.name == "Py_LIMITED_API" and m.active is not False:
                out.append(Finding(
                    "limited-api", Severity.RISK, index.path, m.span,
                    f"Py_LIMITED_API is {m.body_text.strip() or 'defined'}: below 0x030C0000 the "
                    "Py_mod_multiple_interpreters slot is invisible, so such builds keep refusing "
                    "subinterpreters; heap types and module state need 0x030A0000 (PyType_GetModuleByDef "
                    "0x030D0000): raise it"))
    foreign = foreign_thread_findings(indexes, functions, fn_at)
    blocked = {(f.file, f.span) for f in foreign}
    # The blocker says what the risk would: one line per call.
    return [f for f in out if not (f.code == "gilstate" and (f.file, f.span) in blocked)] + foreign


def _dropped_branch_uses(index: FileIndex, globals_: list[Global]) -> list[Finding]:
    names = {g.name for g in globals_ if g.kind.needs_port and g.function is None}
    out = []
    for tok in index.src.dropped_names():
        name = tok.text
        if name in names:
            out.append(Finding(
                "global-in-unread-branch", Severity.RISK, index.path, Span(tok.start, tok.end),
                f"{name} is used in an #if branch porter did not read: check it by hand", subject=name))
    return out


def _function_locator(functions: list[Function]):
    """The function a byte of a file is in. Definitions do not nest; functions a macro use
    defines share that use's span, and the first of them is the one named."""
    by_file: dict[str, list[tuple[int, int, int, str]]] = {}
    for i, f in enumerate(functions):
        by_file.setdefault(f.file, []).append((f.span.start, i, f.span.end, f.name))
    starts: dict[str, list[int]] = {}
    for path, entries in by_file.items():
        entries.sort()
        starts[path] = [e[0] for e in entries]

    def locate(path: str, offset: int) -> str | None:
        entries = by_file.get(path)
        if not entries:
            return None
        i = bisect_right(starts[path], offset) - 1
        if i < 0:
            return None
        # Of the functions starting where the last one before `offset` starts, the first listed.
        while i > 0 and entries[i - 1][0] == entries[i][0]:
            i -= 1
        start = entries[i][0]
        while i < len(entries) and entries[i][0] == start:
            if offset < entries[i][2]:
                return entries[i][3]
            i += 1
        return None

    return locate
