"""Which globals move into module state, and how each function reaches it.

Everything here reads facts only. A global moves unless a veto rule (planning.vetoes) keeps it;
vetoing one global can leave a function unable to reach state, which vetoes others, so the rules
run again until none objects. The set of moving globals only shrinks, so the loop ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from porter.analyze.initializers import sizeof_operand
from porter.model import ExtensionModule, FindModuleWant, Global, GlobalKind, RoleKind
from porter.rewrite.planning.access import Access, function_access
from porter.rewrite.planning.reach import MODULE_STATE, GlobalKey, MacroGraph, debug_only, direct_needs, thread_helpers
from porter.rewrite.planning.vetoes import ROUND_VETOES, Round, global_veto
from porter.rewrite.vocab import AccessKind, Reason


@dataclass(frozen=True)
class Decisions:
    movable: dict[GlobalKey, Global]
    kept: dict[GlobalKey, Reason]  # needs a port but stays global: why
    access: dict[str, Access]
    needs: dict[str, set[GlobalKey]]  # function -> moved globals it reaches (also through helpers)
    helpers: frozenset[str]  # functions that get a state parameter
    state_macros: dict[str, set[GlobalKey]]  # macros whose body reaches moved globals
    debug_only: frozenset[str] = frozenset()  # functions needing state only in assert()
    finders: frozenset[str] = frozenset()  # `S *get_global_state(void)` around FindModule
    blocked: tuple[Reason, ...] = field(default=())  # why the whole module cannot be ported

    def access_of(self, name: str) -> Access | None:
        return self.access.get(name)


def decide(module: ExtensionModule, convertible: dict[str, Reason | None],
           vetoed_later: dict[GlobalKey, Reason] | None = None) -> Decisions:
    """`convertible` maps each static type to None when it can become a heap type, or to why not;
    `vetoed_later` holds vetoes planning found after a first decision (where the state goes)."""
    kept: dict[GlobalKey, Reason] = {}
    movable: dict[GlobalKey, Global] = {}
    body = module.init_body
    module_global = body.module_var if body is not None and body.module_var_global else None
    for g in module.globals:
        if not g.kind.needs_port or (g.name == module_global and g.function is None):
            continue  # the module's own global goes: exec's parameter replaces it
        reason = (vetoed_later or {}).get(g.key) or global_veto(g, module, convertible)
        if reason is not None:
            kept[g.key] = reason
        else:
            movable[g.key] = g
    graph = MacroGraph.of(module)
    finders = state_finders(module)
    base_bodies = _base_macro_bodies(module, graph, finders)
    while True:
        access, needs, helpers, macro_bodies = _reach(module, movable, base_bodies, graph, finders)
        this_round = Round(module, movable, access, needs, macro_bodies)
        vetoed: dict[GlobalKey, Reason] = {}
        for rule in ROUND_VETOES:
            for key, reason in rule(this_round):
                vetoed.setdefault(key, reason)
        blocked_state = vetoed.pop(MODULE_STATE, None)
        if not vetoed:
            break
        for key, reason in vetoed.items():
            if key in movable:
                del movable[key]
                kept[key] = reason
    wanted = set(movable) | {MODULE_STATE}
    blocked = []
    if blocked_state:
        blocked.append(Reason("find-module-unreachable", "PyState_FindModule: " + blocked_state.message.replace(
            "<module state>", "module state")))
    blocked += _find_module_blockers(module, access, finders)
    return Decisions(
        movable=movable, kept=kept, access=access, needs=needs, helpers=frozenset(helpers),
        state_macros={m: keys & wanted for m, keys in macro_bodies.items() if keys & wanted},
        debug_only=frozenset(debug_only(module, movable, macro_bodies, needs,
                                        {f.name: f for f in module.functions})),
        finders=frozenset(finders), blocked=tuple(blocked))


def _base_macro_bodies(module: ExtensionModule, graph: MacroGraph, finders: set[str]) -> dict[str, set[GlobalKey]]:
    """Macro -> globals its body reaches, before knowing which helpers take a state parameter."""
    bodies = {name: set(keys) for name, keys in graph.globals_named.items()}
    for use in module.find_module_uses:
        if use.macro is not None and use.wants is FindModuleWant.STATE:
            bodies.setdefault(use.macro, set()).add(MODULE_STATE)
    # A macro that calls a state finder (`st = get_global_state();`) needs state where it expands.
    for m in module.macros:
        if any(name in finders for name, *_ in m.called()):
            bodies.setdefault(m.name, set()).add(MODULE_STATE)
    return graph.close(bodies)


def _reach(module: ExtensionModule, movable: dict[GlobalKey, Global], base_bodies, graph: MacroGraph,
           finders: set[str]):
    """How functions reach state and which need it, for one set of moving globals.

    A macro that calls a helper taking a state parameter passes `state` where it expands, so
    it needs state too: grow that set of macros until it stops growing (it only grows).
    """
    functions = {f.name: f for f in module.functions}
    called = {c.callee for f in module.functions for c in f.calls}
    type_ok = {k[1] for k, g in movable.items() if g.kind is GlobalKind.STATIC_TYPE}
    # Heap types made from a spec in init and kept in a moved global: created with the module
    # from now on, their methods find it through the type.
    init_function = module.exec_function
    type_ok |= {s.global_name for s in module.spec_types
                if (None, s.global_name) in movable and s.function == init_function}
    generated_callers = frozenset(c.callee for f in module.functions for c in f.calls
                                  if module.in_generated(f.file, c.span.start))
    access = {name: function_access(f, module, type_ok, name in called, generated_callers)
              for name, f in functions.items()}
    unsure_files = dict(module.file_conditions)
    calling: set[str] = set()
    while True:
        macro_bodies = {name: set(keys) for name, keys in base_bodies.items()}
        for name in calling:
            macro_bodies.setdefault(name, set()).add(MODULE_STATE)
        macro_bodies = graph.close(macro_bodies)
        needs, helpers = thread_helpers(functions, access, direct_needs(module, movable, macro_bodies, finders))
        # One defined only under a condition porter cannot evaluate is reported instead.
        now = {m.name for m in module.macros
               if m.active is not None and m.file not in unsure_files
               and any(name in helpers for name, *_ in m.called())}
        if now <= calling:
            return access, needs, helpers, macro_bodies
        calling |= now


def _find_module_blockers(module: ExtensionModule, access: dict[str, Access], finders: set[str]) -> list[Reason]:
    out = []
    for use in module.find_module_uses:
        if use.function in finders or use.wants is not FindModuleWant.MODULE:
            continue  # a finder goes: its callers get the state instead
        acc = access.get(use.function or "")
        if use.macro is not None or acc is None or acc.kind not in (
                AccessKind.MODULE, AccessKind.EXEC, AccessKind.TYPE, AccessKind.NEW):
            where = f"macro {use.macro}" if use.macro else f"{use.function or 'file scope'}()"
            out.append(Reason("find-module-needs-module",
                              f"{use.source} in {where} needs the module object, which porter cannot reach there"))
    return out


def state_finders(module: ExtensionModule) -> set[str]:
    """Functions like `static S *get_global_state(void)` that find the state with
    PyState_FindModule: their calls become the caller's state and they go."""
    import re

    d = module.definition
    size = d.field("m_size") if d else None
    operand = sizeof_operand(size.text if size else None)
    if operand is None:
        return set()
    state_type = operand[1]
    users = {u.function for u in module.find_module_uses if u.function}
    found = set()
    for f in module.functions:
        if f.name in users and not [p for p in f.params if p.type_text.strip() != "void"] \
                and re.search(rf"\b{re.escape(state_type)}\s*\*", f.return_type + " *") \
                and f.only_helper:
            found.add(f.name)
    return found


__all__ = ["Decisions", "decide", "state_finders", "MODULE_STATE", "RoleKind"]
