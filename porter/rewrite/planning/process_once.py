"""Calls that act on the whole process, made once per process as single-phase init made them.

    Py_AtExit(finalize);

Single-phase init ran once per process; exec runs for every module object (each interpreter, a
re-import). `Py_AtExit` registers a handler for the whole process: made on every load, the
handler would run once per load at exit (and the table of 32 handlers fills up). The port makes
the call on the first load only, behind an atomic flag (interpreters with their own GIL may
load the module at the same time), so the claim about interpreters need not weaken for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from porter.model import ExtensionModule, GlobalKind, Location, Span

# Calls whose effect is the process's, and which a first load may make for every later one.
ONCE_PER_PROCESS_CALLS = frozenset({"Py_AtExit"})


@dataclass(frozen=True)
class OnceCall:
    file: str
    function: str  # the exec-phase function making it
    call: Span
    statement: Span  # `Py_AtExit(f);`
    callee: str


def once_per_process_calls(module: ExtensionModule, exec_phase: frozenset[str],
                           texts: dict[str, bytes]) -> tuple[OnceCall, ...]:
    """The calls in the exec phase that the port makes on the first load only, each a statement
    of its own. (The handler cannot reach module state: `void (*)(void)`, run at exit. What it
    touches stays process-global and is judged as any kept global.)"""
    out = []
    for f in module.functions:
        if f.name not in exec_phase:
            continue
        for c in f.calls:
            if c.callee not in ONCE_PER_PROCESS_CALLS or len(c.args) != 1:
                continue
            text = texts.get(f.file, b"")
            end = _statement_end(text, c.span.end)
            if end is None or not _starts_a_statement(text, c.span.start, as_a_body=True) \
                    or _guarded_already(text, c.span.start):
                continue
            out.append(OnceCall(f.file, f.name, c.span, Span(c.span.start, end), c.callee))
    return tuple(out)


_FIRST_LOAD_GUARD = re.compile(rb"if\s*\(\s*[A-Za-z_]\w*_first_load\s*\(\s*(void)?\s*\)\s*\)\s*\{\s*$")


def _guarded_already(text: bytes, at: int) -> bool:
    """Inside `if (<mod>_first_load()) {`: a port made it so already."""
    return _FIRST_LOAD_GUARD.search(text, max(0, at - 200), at) is not None


def _statement_end(text: bytes, at: int) -> int | None:
    """Past the `;` right after a call (spaces between), or None when the call is not a whole
    statement."""
    i = at
    while i < len(text) and text[i:i + 1] in b" \t":
        i += 1
    return i + 1 if text[i:i + 1] == b";" else None




_LOCKED_ALREADY = re.compile(rb"PyThread_acquire_lock\(\s*[A-Za-z_]\w*_once_lock\(\)\s*,\s*WAIT_LOCK\s*\)\s*;\s*$")


def lockable_once_guards(module: ExtensionModule, exec_function: str | None,
                         texts: dict[str, bytes]) -> tuple[tuple[Location, ...], tuple[Location, ...]]:
    """The once-guard statements (`if (!ready) { lib_init(); ready = 1; }`) exec makes itself,
    for every guard all of whose statements are such: a lock held around each makes the guard
    thread-safe, and exec can report a failure to make the lock. Those to lock, and those a
    port locked already."""
    f = module.function(exec_function) if exec_function else None
    if f is None:
        return (), ()
    to_lock: list[Location] = []
    locked: list[Location] = []
    for g in module.globals:
        if g.kind is not GlobalKind.ONCE_GUARD or not g.once_guard_statements:
            continue
        if all(_LOCKED_ALREADY.search(texts.get(loc.file, b""), max(0, loc.span.start - 120), loc.span.start)
               for loc in g.once_guard_statements):
            locked.extend(g.once_guard_statements)
        elif all(loc.file == f.file and f.body.start < loc.span.start < f.body.end
                 for loc in g.once_guard_statements):
            to_lock.extend(g.once_guard_statements)
    return tuple(to_lock), tuple(locked)


@dataclass(frozen=True)
class InitOnce:
    """A statement of exec that sets a kept global's C data (`JS_NewClassID(&class_id);`): exec
    runs it once per process, holding the once-lock, behind a flag of its own."""

    global_name: str
    file: str
    statement: Span


_ONCE_FLAG_GUARD = re.compile(rb"if\s*\(\s*!\s*[A-Za-z_]\w*_once_\w+\s*\)\s*\{\s*$")


def init_once_statements(module: ExtensionModule, kept: dict, exec_function: str | None,
                         texts: dict[str, bytes]) -> tuple[tuple[InitOnce, ...], frozenset[str]]:
    """For kept globals of C data written only by statements of exec (assignments, or a call
    handed their address): those statements, to run once per process under the lock; and the
    names of all such globals (also those a port already made so), which then stay
    process-global without weakening the claim: after the first load they only change never."""
    f = module.function(exec_function) if exec_function else None
    if f is None:
        return (), frozenset()
    out: list[InitOnce] = []
    names: set[str] = set()
    for key in kept:
        g = module.global_of(key)
        if g.kind.is_object_kind or g.kind.value not in ("init-data",) or g.function is not None \
                or "*" in g.type_text or "[" in g.type_text:
            continue
        writes = [u for u in g.uses if u.access.value in ("write", "address")]
        statements = []
        for u in writes:
            text = texts.get(u.file, b"")
            if u.function != f.name or u.file != f.file:
                break
            span = u.statement if u.statement is not None else (
                Span(u.call_span.start, end) if u.call_span is not None
                and (end := _statement_end(text, u.call_span.end)) is not None else None)
            if span is None or not _starts_a_statement(text, span.start):
                break
            statements.append(span)
        else:
            if not statements:
                continue
            names.add(g.name)
            for span in statements:
                if not _ONCE_FLAG_GUARD.search(texts.get(f.file, b""), max(0, span.start - 120), span.start):
                    out.append(InitOnce(g.name, f.file, span))
    return tuple(out), frozenset(names)


def _starts_a_statement(text: bytes, at: int, as_a_body: bool = False) -> bool:
    """Only `;`, `{` or `}` (and white space) before: a statement among others in a block. With
    `as_a_body`, also the first on its line (it may be an `if`'s body: what replaces it must then
    be one statement too)."""
    i = at - 1
    while i >= 0 and text[i:i + 1] in b" \t":
        i -= 1
    if as_a_body and text[i:i + 1] == b"\n":
        return True
    while i >= 0 and text[i:i + 1] in b" \t\r\n":
        i -= 1
    return i < 0 or text[i:i + 1] in b";{}"
