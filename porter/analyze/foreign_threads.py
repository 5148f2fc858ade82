"""Python entered on threads that never ran the module's interpreter.

`PyGILState_Ensure()` gives a thread the thread state it last had, or, on a thread with none,
a new one in the *main* interpreter. A callback made while the module's own call waits
(`Py_BEGIN_ALLOW_THREADS; curl_easy_perform(...)`) runs on a thread whose last thread state
is the calling interpreter's (activating a thread state binds it, since 3.12): there it is
right. On a thread the module starts (`pthread_create(&t, NULL, worker, data)`) or on any
thread a C library calls in from, it attaches the main interpreter, and the callback then
runs one interpreter's objects under another interpreter's GIL. CPython's own `_ctypes`
(libffi callbacks from any thread) claims support for subinterpreters that share the GIL
only, for this reason (gh-117142); the same holds for a port.

porter can tell two cases apart from the code, and blocks a GIL per interpreter in both:
- the function calling `PyGILState_Ensure()` is reached (through the module's calls) from a
  function the module hands to a thread starter (`pthread_create`, `PyThread_start_new_thread`,
  `CreateThread`, `_beginthread(ex)`, `thrd_create`, libuv's, GLib's and SDL's: `THREAD_STARTERS`),
  or to a C library that calls it back on a thread of its own (PortAudio's stream callback:
  `LIBRARY_THREAD_CALLBACKS`);
- the function prepares for a thread that has no Python thread state yet: it tests
  `PyGILState_GetThisThreadState()` for NULL (code written for foreign threads).
Any other `PyGILState_*` call stays a risk finding: porter cannot see which thread a library
calls back on.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass

from porter.analyze import ctree
from porter.analyze.index import FileIndex
from porter.model import Finding, Function, Severity
from porter.parse import Node

# Thread starters and the index of the argument naming the thread's function: POSIX, CPython,
# Windows, C11, and the portable ones of libuv, GLib and SDL.
THREAD_STARTERS = {
    "pthread_create": 2,
    "PyThread_start_new_thread": 0,
    "CreateThread": 2,
    "_beginthreadex": 2,
    "_beginthread": 0,
    "thrd_create": 1,
    "uv_thread_create": 1,
    "g_thread_new": 1,
    "g_thread_try_new": 1,
    "SDL_CreateThread": 0,
}
# C library functions that call the function they are given back on a thread of the library's
# own (an audio thread), and the index of that argument. A callback porter cannot place stays a
# risk finding; these are known.
LIBRARY_THREAD_CALLBACKS = {
    "Pa_OpenStream": 6,  # PortAudio: the stream callback runs on PortAudio's audio thread
    "Pa_OpenDefaultStream": 6,
}
_ENTER = "PyGILState_Ensure"
_PROBE = "PyGILState_GetThisThreadState"


@dataclass(frozen=True)
class _ThreadStart:
    entry: str  # the function key the new thread runs
    starter: str
    file: str
    line: int
    by_library: bool = False  # a thread of the library's own, not one the module starts

    def describe(self) -> str:
        whose = "a thread of the C library's own" if self.by_library else "a thread the module starts"
        return f"{whose} ({self.starter}() at {self.file}:{self.line} hands it {self.entry}()"


def foreign_thread_findings(indexes: list[FileIndex], functions: list[Function],
                            locate) -> list[Finding]:
    """One blocker per `PyGILState_Ensure()` call made on a thread that never ran the module's
    interpreter; `locate(path, offset)` names the function around a byte."""
    starts = _thread_starts(indexes, functions)
    by_key = {f.name: f for f in functions}
    reached_from = _reached_from(starts, by_key)
    out = []
    seen: set[str] = set()
    for index in indexes:
        for call in index.calls_by_name.get(_ENTER, ()):
            fn = locate(index.path, call.start_byte)
            if fn is None or fn in seen:
                continue  # one finding per function: its first call
            start = reached_from.get(fn)
            if start is not None:
                via = "" if start.entry == fn else f", which reaches {fn}()"
                why = f"{fn}() enters Python with {_ENTER}() on {start.describe()}{via})"
            elif _probes_for_no_thread_state(index, by_key.get(fn)):
                why = (f"{fn}() enters Python with {_ENTER}() and is written for threads that have no Python "
                       f"thread state yet (it tests {_PROBE}() for NULL)")
            else:
                continue
            seen.add(fn)
            out.append(Finding(
                "foreign-thread", Severity.BLOCKER, index.path, ctree.span(call),
                f"{why}: on such a thread PyGILState attaches the main interpreter, so the module cannot "
                "claim a GIL per interpreter", fn, subject=fn))
    return out


def _thread_starts(indexes: list[FileIndex], functions: list[Function]) -> list[_ThreadStart]:
    """Each call of a thread starter that names a module function as the thread's entry."""
    by_c_name: dict[str, list[Function]] = {}
    for f in functions:
        by_c_name.setdefault(f.c_name, []).append(f)
    out = []
    for index in indexes:
        for table, by_library in ((THREAD_STARTERS, False), (LIBRARY_THREAD_CALLBACKS, True)):
            for starter, position in table.items():
                for call in index.calls_by_name.get(starter, ()):
                    args = ctree.call_args(call)
                    for target in _functions_named(args[position]) if position < len(args) else ():
                        candidates = by_c_name.get(target, [])
                        # A static function of this file wins over another file's of the same name.
                        chosen = next((f for f in candidates if f.file == index.path), None) or next(
                            (f for f in candidates if not f.is_static), None)
                        if chosen is not None:
                            out.append(_ThreadStart(chosen.name, starter, index.path, call.start_point[0] + 1,
                                                    by_library))
    return out


def _functions_named(arg: Node | None) -> list[str]:
    """`worker`, `&worker`, `(void *(*)(void *))worker`, `cb ? worker : NULL`: the functions an
    argument may name."""
    node = ctree.unwrap_parens(arg)
    if node is not None and node.type == "conditional_expression":
        return [name for branch in ("consequence", "alternative")
                for name in _functions_named(node.child_by_field_name(branch))]
    if node is not None and node.type == "pointer_expression" and node.children[0].type == "&":
        node = ctree.unwrap_parens(node.child_by_field_name("argument"))
    return [node.text.decode()] if node is not None and node.type == "identifier" else []


def _reached_from(starts: list[_ThreadStart], by_key: dict[str, Function]) -> dict[str, _ThreadStart]:
    """Each function a started thread runs (its entry and what that calls), with the start."""
    reached: dict[str, _ThreadStart] = {}
    queue: deque[str] = deque()
    for s in starts:
        if s.entry not in reached:
            reached[s.entry] = s
            queue.append(s.entry)
    while queue:
        key = queue.popleft()
        f = by_key.get(key)
        for call in f.calls if f is not None else ():
            if call.callee in by_key and call.callee not in reached:
                reached[call.callee] = reached[key]
                queue.append(call.callee)
    return reached


def _probes_for_no_thread_state(index: FileIndex, fn: Function | None) -> bool:
    """`ts = PyGILState_GetThisThreadState(); if (ts == NULL) ...` (or `!ts`, `ts != NULL`, or
    the call itself tested) in the function's body."""
    if fn is None or fn.file != index.path:
        return False
    for name, call in index.calls_in(fn.body.start, fn.body.end):
        if name != _PROBE:
            continue
        holder = call.parent
        while holder is not None and holder.type == "parenthesized_expression":
            holder = holder.parent
        if holder is not None and holder.type in ("binary_expression", "unary_expression", "condition_clause") \
                and _tests_null(holder.text.decode()):
            return True
        local = _assigned_to(holder)
        if local and _tests_null(index.src.text[call.end_byte:fn.body.end].decode("utf-8", "replace"), local):
            return True
    return False


def _assigned_to(node: Node | None) -> str | None:
    if node is None:
        return None
    if node.type == "init_declarator":
        declarator = node.child_by_field_name("declarator")
        while declarator is not None and declarator.type == "pointer_declarator":
            declarator = declarator.child_by_field_name("declarator")
        return declarator.text.decode() if declarator is not None and declarator.type == "identifier" else None
    if node.type == "assignment_expression":
        left = node.child_by_field_name("left")
        return left.text.decode() if left is not None and left.type == "identifier" else None
    return None


def _tests_null(text: str, name: str | None = None) -> bool:
    subject = re.escape(name) if name else rf"{_PROBE}\s*\(\s*\)"
    return re.search(rf"(?:\b|^){subject}\s*[!=]=\s*(?:NULL|0)\b|\b(?:NULL|0)\s*[!=]=\s*{subject}|!\s*{subject}"
                     rf"|\bif\s*\(\s*{subject}\s*\)", text) is not None
