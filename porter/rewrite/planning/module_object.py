"""The module object, passed to where the module makes its own functions with a NULL `self`.

A function made by `PyCFunction_New(&table[i], NULL)` gets the module as `self` after the
port (analyze.added_functions), so it reaches state as m_methods' functions do. The function
making it must then have the module: exec and module functions have it, a type's method finds
it through its type, and a helper gets it from its callers as a new `PyObject *` parameter
(where it needs state too, it reads it from that module). Where some caller has no module to
pass, the functions made there cannot reach state and say so.

The same passing serves two more needs: a function of init that makes a heap type from its own
spec (analyze.spec_types.SpecMaker) makes it with the module it is given, and a helper whose
`PyState_FindModule(&def)` wants the module object (to keep an attribute on it) uses the one
its callers pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from porter.analyze.functions import call_graph
from porter.model import ExtensionModule, FindModuleWant, Function, NullSelfSite, SpecMaker
from porter.rewrite.planning.access import Access
from porter.rewrite.vocab import AccessKind

# Access kinds whose function has the module object, or finds it (state_access._module_expression).
GIVES_MODULE = (AccessKind.EXEC, AccessKind.MODULE, AccessKind.TYPE, AccessKind.CLASS, AccessKind.NEW,
                AccessKind.DEFINING_CLASS)


@dataclass(frozen=True)
class ModulePassing:
    sites: tuple[NullSelfSite, ...]  # the NULLs that become the module
    helpers: frozenset[str]  # helpers that get the module from their callers
    makers: tuple[SpecMaker, ...] = ()  # types made from a spec with no module: made with it now


def unreachable_added_functions(module: ExtensionModule, access: dict[str, Access]) -> dict[str, Access]:
    """The functions made with a NULL `self` where no module can be passed instead: their access."""
    callers = _callers(module.functions)
    out: dict[str, Access] = {}
    for site in module.null_self_sites:
        why = _why_no_module(site.function, access, callers, set())
        if why is None:
            continue
        for name in site.functions:
            out.setdefault(name, Access(AccessKind.NONE, reason=f"{site.api}() in {site.function}() makes it with "
                                                                 f"no module as `self`, and {why}"))
    return out


def module_passing(module: ExtensionModule, access: dict[str, Access], needs: dict[str, set],
                   makers: tuple[SpecMaker, ...] = (), finders: frozenset[str] = frozenset()) -> ModulePassing:
    """The sites whose functions need state, the spec makers of init, the helpers whose
    PyState_FindModule wants the module object, and the helpers the module goes through to them."""
    callers = _callers(module.functions)
    sites = tuple(s for s in module.null_self_sites
                  if any(needs.get(name) for name in s.functions)
                  and _why_no_module(s.function, access, callers, set()) is None)
    makers = _passable(makers, access, callers)
    # `m = PyState_FindModule(&def); PyModule_AddObject(m, ...)` in a helper: it gets the module
    # (a state finder goes instead, and one that keeps finding the last module keeps its call).
    wanters = sorted({u.function for u in module.find_module_uses
                      if u.function is not None and u.macro is None and u.wants is FindModuleWant.MODULE
                      and u.function not in finders
                      and access.get(u.function, Access(AccessKind.NONE)).kind is AccessKind.HELPER
                      and _why_no_module(u.function, access, callers, set()) is None})
    helpers: set[str] = set()
    todo = [s.function for s in sites] + [m.function for m in makers] + wanters
    while todo:
        name = todo.pop()
        if name in helpers or access[name].kind is not AccessKind.HELPER or module.slots_storing(name):
            continue  # a callback slot's function takes the state its slot's callers pass
        helpers.add(name)
        todo.extend(sorted(callers.get(name, ())))
    return ModulePassing(sites, frozenset(helpers), makers)


def passable_makers(module: ExtensionModule, makers: tuple[SpecMaker, ...],
                    access: dict[str, Access]) -> tuple[SpecMaker, ...]:
    """The spec makers that have the module, or whose every caller can pass it."""
    return _passable(makers, access, _callers(module.functions))


def _passable(makers: tuple[SpecMaker, ...], access: dict[str, Access],
              callers: dict[str, set[str]]) -> tuple[SpecMaker, ...]:
    return tuple(m for m in makers if _why_no_module(m.function, access, callers, set()) is None)


def _why_no_module(name: str, access: dict[str, Access], callers: dict[str, set[str]],
                   seen: set[str]) -> str | None:
    """None when `name` has the module or every caller can pass it; else why not."""
    acc = access.get(name)
    if acc is None:
        return f"{name}() is not a function of this module"
    if acc.kind in GIVES_MODULE:
        return None
    if acc.kind is not AccessKind.HELPER:
        return f"{name}() cannot reach the module object ({acc.reason or acc.kind.value})"
    if name in seen:
        return None  # a cycle: it passes on the module it gets, and its other callers decide
    seen.add(name)
    for caller in sorted(callers.get(name, ())):
        why = _why_no_module(caller, access, callers, seen)
        if why is not None:
            return why
    return None


def _callers(functions: tuple[Function, ...]) -> dict[str, set[str]]:
    """Who calls each function: its calls (call_graph), and those in #if branches porter did not read."""
    callers = call_graph(list(functions))[0]
    for f in functions:
        for unread in f.unread_calls:
            if unread.caller is not None:
                callers.setdefault(f.name, set()).add(unread.caller)
    return callers
