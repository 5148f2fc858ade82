"""Which functions need module state, directly, through macros, or through the helpers they call."""

from __future__ import annotations

from dataclasses import dataclass

from porter.model import ExtensionModule, Function, Global, UseAccess, shared_index
from porter.rewrite.planning.access import NO_ACCESS, Access
from porter.rewrite.planning.getset_closures import eligible_rows
from porter.rewrite.planning.own_type import freed_through_own_type
from porter.rewrite.vocab import AccessKind

GlobalKey = tuple[str | None, str]
# What `PyModule_GetState(PyState_FindModule(&def))` gave: needs state like a moved global does.
MODULE_STATE: GlobalKey = (None, "<module state>")


def _mentions(macros) -> tuple[dict[str, frozenset[str]], dict[str, list[frozenset[str]]]]:
    """Each macro's names of other macros, and the identifiers of each of its definitions."""
    names = {m.name for m in macros}
    mentions: dict[str, set[str]] = {}
    identifiers: dict[str, list[frozenset[str]]] = {}
    for m in macros:
        idents = m.identifiers
        identifiers.setdefault(m.name, []).append(idents)
        mentions.setdefault(m.name, set()).update(i for i in idents if i in names and i != m.name)
    return {k: frozenset(v) for k, v in mentions.items()}, identifiers


def key_order(key: GlobalKey) -> tuple[str, str]:
    """Sort key: file-scope globals (function None) and function statics sort together."""
    return key[0] or "", key[1]


@dataclass(frozen=True)
class MacroGraph:
    """Project macros: which other macros each body names, and which globals."""

    mentions: dict[str, frozenset[str]]  # macro -> macros its body names
    globals_named: dict[str, frozenset[GlobalKey]]  # macro -> file-scope globals it names, transitively

    @classmethod
    def of(cls, module: ExtensionModule) -> MacroGraph:
        # Which macros each body names depends on the files only: read once for every module
        # of a unity file (shared_index), not once per module.
        mentions, identifiers = shared_index(module.macros, "macro mentions", _mentions)
        # A body's name means the global unless every expansion site declares it (the facts
        # then hold no macro use of it).
        named_in: dict[str, set[str]] = {}
        for g in module.globals:
            if g.function is None:
                for u in g.uses:
                    if u.access is UseAccess.MACRO and u.macro is not None:
                        named_in.setdefault(u.macro, set()).add(g.name)
        direct: dict[str, set[GlobalKey]] = {}
        for name, globals_named in named_in.items():
            for idents in identifiers.get(name, ()):
                direct.setdefault(name, set()).update((None, i) for i in idents if i in globals_named)
        graph = cls(mentions, {})
        closed = graph.close(direct) if any(direct.values()) else {}
        return cls(graph.mentions, {k: frozenset(v) for k, v in closed.items() if v})

    def reaching(self, name: str) -> set[str]:
        """`name` and the macros its body names, transitively."""
        seen, todo = {name}, [name]
        while todo:
            for other in sorted(self.mentions.get(todo.pop(), ())):
                if other not in seen:
                    seen.add(other)
                    todo.append(other)
        return seen

    def close(self, bodies: dict[str, set[GlobalKey]]) -> dict[str, set[GlobalKey]]:
        """A macro naming another macro reaches what that one reaches (a new mapping)."""
        out = {k: set(v) for k, v in bodies.items()}
        changed = True
        while changed:
            changed = False
            for name, others in sorted(self.mentions.items()):
                for other in sorted(others):
                    extra = out.get(other, set()) - out.get(name, set())
                    if extra:
                        out.setdefault(name, set()).update(extra)
                        changed = True
        return out


def direct_needs(module: ExtensionModule, movable: dict[GlobalKey, Global],
                 macro_bodies: dict[str, set[GlobalKey]], finders: set[str],
                 looked_up: frozenset[str] = frozenset()) -> dict[str, set[GlobalKey]]:
    """Function -> the moved globals (and module state) its own body reaches.

    `looked_up`: functions whose PyState_FindModule (and calls to state finders) find the module
    the last exec made instead (planning.decide): those need no state for them.
    """
    wanted = set(movable) | {MODULE_STATE}
    needs: dict[str, set[GlobalKey]] = {}
    for k, g in movable.items():
        for u in g.uses:
            if u.function is not None and u.access is not UseAccess.MACRO \
                    and not freed_through_own_type(u, g, module):
                needs.setdefault(u.function, set()).add(k)
        for uu in g.unread_uses:
            if uu.function is not None:
                needs.setdefault(uu.function, set()).add(k)
    for use in module.macro_uses:
        keys = macro_bodies.get(use.name, set()) & wanted
        if keys and use.function is not None:
            needs.setdefault(use.function, set()).update(keys)
    for f in module.functions:
        if f.defined_by:
            keys = macro_bodies.get(f.defined_by, set()) & wanted
            if keys:
                needs.setdefault(f.name, set()).update(keys)
    # A getset row's closure that becomes an offset: its getter and setter read the field.
    for row in eligible_rows(module):
        if (None, row.global_name) in movable:
            for name in (row.getter, row.setter):
                if name:
                    needs.setdefault(name, set()).add((None, row.global_name))
    for fm in module.find_module_uses:
        if fm.macro is None and fm.wants in ("state", "state-via") and fm.function \
                and fm.function not in looked_up and fm.function not in finders:  # a finder goes
            needs.setdefault(fm.function, set()).add(MODULE_STATE)
    for f in module.functions:
        if f.name not in finders and f.name not in looked_up and any(c.callee in finders for c in f.calls):
            needs.setdefault(f.name, set()).add(MODULE_STATE)
    return needs


def thread_helpers(functions: dict[str, Function], access: dict[str, Access],
                   direct: dict[str, set[GlobalKey]], module_helpers: frozenset[str] = frozenset(),
                   slot_edges: list[tuple[str, str]] | None = None,
                   ) -> tuple[dict[str, set[GlobalKey]], set[str]]:
    """Needs propagated through calls to helpers; the helpers that get a state parameter.

    `module_helpers` get the module object instead and read the state from it: their callers
    need no state for them (planning.module_object). `slot_edges`: the same through callback
    slots (planning.callback_slots).
    """
    def kind(name: str) -> AccessKind:
        return access.get(name, NO_ACCESS).kind

    needs = {name: set(keys) for name, keys in direct.items()}
    edges = [(caller, callee) for caller, callee in state_edges(functions, access, slot_edges)
             if callee not in module_helpers]
    changed = True
    while changed:
        changed = False
        for caller, callee in edges:
            got = needs.get(callee)
            if got and not got <= needs.get(caller, set()):
                needs.setdefault(caller, set()).update(got)
                changed = True
    helpers = {name for name, keys in needs.items()
               if keys and kind(name) in _THREADED and name not in module_helpers}
    return needs, helpers


_THREADED = (AccessKind.HELPER, AccessKind.SPLIT)


def state_edges(functions: dict[str, Function], access: dict[str, Access],
                slot_edges: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    """(caller, callee) pairs along which a callee's need for state becomes its caller's
    (`slot_edges`: those through callback slots, planning.callback_slots)."""
    def kind(name: str) -> AccessKind:
        return access.get(name, NO_ACCESS).kind

    edges = [(name, c.callee) for name, f in functions.items() for c in f.calls if kind(c.callee) in _THREADED]
    # A function that hands a synchronous callback to qsort() must provide its state.
    edges += [(site.caller, name) for name, f in functions.items()
              if kind(name) in (AccessKind.CALLBACK, AccessKind.USER_DATA) for site in f.sync_callback_sites]
    # Calls in #if branches porter did not read get the state too (lexically): their callers need it.
    edges += [(call.caller, name) for name, f in functions.items()
              if kind(name) in _THREADED for call in f.unread_calls if call.caller is not None]
    return edges + list(slot_edges or ())


def reached_from(start: str, edges: list[tuple[str, str]]) -> set[str]:
    """`start` and every function whose need for state reaches it along `edges`."""
    callees: dict[str, set[str]] = {}
    for caller, callee in edges:
        callees.setdefault(caller, set()).add(callee)
    seen, todo = {start}, [start]
    while todo:
        for callee in sorted(callees.get(todo.pop(), ())):
            if callee not in seen:
                seen.add(callee)
                todo.append(callee)
    return seen
