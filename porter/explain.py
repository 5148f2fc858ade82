"""What each id in a report means: the porting steps (their module docstrings) and the other
items and findings a report can list."""

from __future__ import annotations

import inspect

# Report ids that are not steps: what they say and what to do about them.
OTHER_TOPICS = {
    "hot-path-lookup": """hot-path-lookup: a slot that runs per element or per call now looks module state up.

What: a function such as tp_iternext, sq_item, nb_add, tp_richcompare, tp_hash or tp_call
reaches module state with PyType_GetModuleByDef(Py_TYPE(self), &def) on every call.

Why it matters: the lookup walks the type's MRO; CPython's _decimal became 31-45% slower from
such lookups (gh-114682). benchmarks/hot_path.py measures one fixture's iterator.

What to do: if it is hot, store the state pointer in the instance when it is created (its
lifetime is the instance's: the instance keeps its type, the type its module), or use
METH_METHOD with defining_class for methods.""",
    "gc-slot-lookup": """gc-slot-lookup: tp_traverse, tp_clear or tp_dealloc now looks module state up.

Why it matters: at interpreter shutdown these can run after the module's state was cleared;
the state must not be needed there for anything but assertions.

What to do: keep what these functions need in the instance itself.""",
    "state-find-module": """state-find-module: PyState_FindModule() finds the module in the single-phase registry.

It returns NULL for a multi-phase module. porter replaces each use by the state or module of
the function's access (the module argument, the type, a threaded parameter, a thread-local
for callbacks); where none reaches the function, the module cannot be ported and the report
names the function.""",
    "state-add-module": """state-add-module: PyState_AddModule()/PyState_RemoveModule() register a single-phase module.

They go with the port: a multi-phase module is never registered there.""",
    "capsule-export": """capsule-export: the module exports a C API through a capsule.

Other extension modules may hold pointers into it (types, functions, globals). A type named
in the capsule stays static and is reported: its clients must be ported with it.""",
    "capsule-import": "capsule-import: the module imports another module's C API through a capsule.",
    "process-global": """process-global: a call changes process-wide state (signal handlers, locale, atexit...).

A module in several interpreters makes it once per interpreter; check that this is wanted.""",
    "gilstate": """gilstate: PyGILState_* assumes one interpreter per thread.

Under a per-interpreter GIL it may attach a thread to the main interpreter; use the
interpreter the module lives in (PyThreadState_New with its PyInterpreterState).""",
    "exported-global": """exported-global: a global is declared extern in a header.

Code outside the module's files may name it; porter moves it only when it sees every use.""",
    "exported-type": """exported-type: a static type is declared extern in a header.

Other files (or modules) may use the type directly; porter exports its spec through that
header when the type is created in another file, and reports a type it cannot follow.""",
    "metaclass": """metaclass: a type's metatype is a custom metaclass.

A heap type with a custom metaclass needs PyType_FromMetaclass (3.12+); ports must build on
3.11, so the type stays static and is reported.""",
    "global-in-unread-branch": """global-in-unread-branch: a global is used in an #if branch porter did not read.

porter reads one branch of a masked #if (the one CPython 3.12 on Linux compiles); a global
used in another branch stays global, since porter cannot rewrite what it did not read.""",
    "unparsed": "unparsed: tree-sitter could not parse this region; porter edits nothing in it.",
    "limited-api": """limited-api: an old Py_LIMITED_API hides the names a port needs.

Below 0x030C0000 Py_mod_multiple_interpreters is invisible and such builds keep refusing
subinterpreters; raise it.""",
}


def topics() -> dict[str, str]:
    """Every id, with its text: the steps' docstrings first, then the other report ids."""
    from porter.rewrite.port import PASSES

    out = {step.id: inspect.getdoc(inspect.getmodule(step)) or "" for step in PASSES}
    out.update(OTHER_TOPICS)
    return out


def summary(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first.split(": ", 1)[1] if ": " in first else first
