"""Which globals move into module state, and how each function reaches it.

Everything here reads facts only. A global moves unless a veto rule (planning.vetoes) keeps it;
vetoing one global can leave a function unable to reach state, which vetoes others, so the rules
run again until none objects. The set of moving globals only shrinks, so the loop ends.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from porter.analyze.functions import init_phase
from porter.analyze.initializers import sizeof_operand
from porter.model import (
    ExtensionModule,
    FindModuleUse,
    FindModuleWant,
    Global,
    GlobalKind,
    InstanceCheck,
    Macro,
    RoleKind,
    SpecHelper,
    SpecMaker,
    shared_index,
)
from porter.rewrite.planning.access import Access, function_access
from porter.rewrite.planning.callback_slots import all_or_none, slot_edges
from porter.rewrite.planning.guards import BuildGuards, local_guards
from porter.rewrite.planning.instance_checks import checks_by_instance
from porter.rewrite.planning.module_object import (
    ModulePassing,
    module_passing,
    passable_makers,
    unreachable_added_functions,
)
from porter.rewrite.planning.reach import (
    MODULE_STATE,
    GlobalKey,
    MacroGraph,
    direct_needs,
    key_order,
    reached_from,
    state_edges,
    thread_helpers,
)
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
    # Functions that reach state only under a condition their body is not under (`#ifdef X`,
    # assert()): that condition, for their `state` local.
    local_guards: dict[str, str] = field(default_factory=dict)
    finders: frozenset[str] = frozenset()  # `S *get_global_state(void)` around FindModule
    blocked: tuple[Reason, ...] = field(default=())  # why the whole module cannot be ported
    # Functions whose PyState_FindModule finds the module the last exec made (kept process-global)
    # because they cannot reach module state: function -> why not.
    last_module: dict[str, str] = field(default_factory=dict)
    kept_finders: frozenset[str] = frozenset()  # finders those functions still call: they stay
    # Macros whose PyState_FindModule does the same, because they expand in such a function.
    last_module_macros: dict[str, str] = field(default_factory=dict)
    # Where a NULL `self` becomes the module, and the helpers that get the module for it.
    module_passing: ModulePassing = ModulePassing((), frozenset())
    # Instance checks of functions with no state, answered through the object's type.
    instance_checks: tuple[InstanceCheck, ...] = ()

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
    last_module: dict[str, str] = {}
    last_module_macros: dict[str, str] = {}
    while True:
        base_bodies = _base_macro_bodies(module, graph, finders, set(last_module_macros))
        reached = _reach(module, movable, base_bodies, graph, finders, frozenset(last_module))
        access, needs, helpers, macro_bodies, direct = (reached.access, reached.needs, reached.helpers,
                                                        reached.macro_bodies, reached.direct)
        this_round = Round(module, movable, access, needs, macro_bodies)
        vetoed: dict[GlobalKey, Reason] = {}
        for rule in ROUND_VETOES:
            for key, reason in rule(this_round):
                vetoed.setdefault(key, reason)
        blocked_state = vetoed.pop(MODULE_STATE, None)
        if blocked_state is not None:
            found, macros = _last_module_lookups(module, access, needs, direct, macro_bodies, graph,
                                                 last_module, last_module_macros)
            if found or macros:
                last_module.update(found)
                last_module_macros.update(macros)
                continue  # the functions that find the module themselves need no state for it
            through_macros = _helpers_called_where_no_state(module, access, needs, helpers, movable)
            if through_macros:
                # A macro calls a helper that would take the state, in a function that has none:
                # what makes that helper need the state stays global instead.
                vetoed.update({k: r for k, r in through_macros.items() if k not in vetoed})
                blocked_state = None
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
    for use, why in _find_module_without_module(module, access, finders, last_module, reached.passing.helpers):
        if use.function is None or use.macro is not None:
            where = f"macro {use.macro}" if use.macro else "file scope"
            blocked.append(Reason("find-module-needs-module",
                                  f"{use.source} in {where} needs the module object, which porter cannot reach there"))
        else:
            last_module.setdefault(use.function, why)
    functions = {f.name: f for f in module.functions}
    kept_finders = frozenset(c.callee for name in last_module if name in functions
                             for c in functions[name].calls if c.callee in finders)
    return Decisions(
        movable=movable, kept=kept, access=access, needs=needs, helpers=frozenset(helpers),
        state_macros={m: keys & wanted for m, keys in macro_bodies.items() if keys & wanted},
        local_guards=local_guards(module, BuildGuards(module.build_branches), movable.values(),
                                  [m for m, keys in macro_bodies.items() if keys & wanted], needs,
                                  module.exec_function),
        finders=frozenset(finders), blocked=tuple(blocked), last_module=dict(sorted(last_module.items())),
        kept_finders=kept_finders, last_module_macros=dict(sorted(last_module_macros.items())),
        module_passing=reached.passing, instance_checks=reached.checks)


def _last_module_lookups(module: ExtensionModule, access: dict[str, Access], needs: dict[str, set[GlobalKey]],
                         direct: dict[str, set[GlobalKey]], macro_bodies: dict[str, set[GlobalKey]],
                         graph: MacroGraph, already: dict[str, str], already_macros: dict[str, str],
                         ) -> tuple[dict[str, str], dict[str, str]]:
    """The functions and macros whose own PyState_FindModule (or state finder call) makes a
    function that cannot reach module state need it, with why that function cannot: they find
    the module the last exec made instead (a macro for every function it expands in)."""
    functions = {f.name: f for f in module.functions}
    own = {fm.function for fm in module.find_module_uses
           if fm.macro is None and fm.function and fm.wants in (FindModuleWant.STATE, FindModuleWant.STATE_VIA)}
    finders = state_finders(module)
    own |= {f.name for f in module.functions if f.name not in finders and any(c.callee in finders for c in f.calls)}
    edges = state_edges(functions, access, slot_edges(module, access))
    in_macro = {fm.macro for fm in module.find_module_uses if fm.macro is not None and fm.call is not None}
    found: dict[str, str] = {}
    macros: dict[str, str] = {}
    for name, keys in sorted(needs.items()):
        acc = access.get(name)
        if MODULE_STATE not in keys or (acc is not None and acc.kind is not AccessKind.NONE):
            continue
        why = f"{name}() cannot reach module state ({acc.reason if acc else 'not a function of this module'})"
        reached = reached_from(name, edges)
        for source in sorted(reached):
            if source in own and MODULE_STATE in direct.get(source, set()) and source not in already:
                found.setdefault(source, why)
        for use in module.macro_uses:
            if use.function in reached and MODULE_STATE in macro_bodies.get(use.name, set()):
                for macro in sorted(graph.reaching(use.name) & in_macro):
                    if macro not in already_macros:
                        macros.setdefault(macro, why)
    return found, macros


def _base_macro_bodies(module: ExtensionModule, graph: MacroGraph, finders: set[str],
                       last_module_macros: set[str]) -> dict[str, set[GlobalKey]]:
    """Macro -> globals its body reaches, before knowing which helpers take a state parameter."""
    bodies = {name: set(keys) for name, keys in graph.globals_named.items()}
    for use in module.find_module_uses:
        if use.macro is not None and use.wants is FindModuleWant.STATE and use.macro not in last_module_macros:
            bodies.setdefault(use.macro, set()).add(MODULE_STATE)
    # A macro that calls a state finder (`st = get_global_state();`) needs state where it expands.
    for m in macros_calling(module, finders):
        bodies.setdefault(m.name, set()).add(MODULE_STATE)
    return graph.close(bodies)


def _helpers_called_where_no_state(module: ExtensionModule, access: dict[str, Access],
                                   needs: dict[str, set[GlobalKey]], helpers: set[str],
                                   movable: dict[GlobalKey, Global]) -> dict[GlobalKey, Reason]:
    """The globals that make a helper need state, where a macro calls that helper inside a
    function that cannot reach state (a callback with a fixed signature)."""
    out: dict[GlobalKey, Reason] = {}
    macros = {m.name: m for m in module.macros}
    for use in module.macro_uses:
        acc = access.get(use.function or "")
        if use.function is None or acc is None or acc.kind is not AccessKind.NONE:
            continue
        m = macros.get(use.name)
        for callee, *_ in (m.called() if m is not None else ()):
            if callee not in helpers:
                continue
            for key in sorted(needs.get(callee, set()) & set(movable), key=key_order):
                out.setdefault(key, Reason("unreachable-function", f"{callee}() needs it, and macro {use.name} "
                                                                   f"calls {callee}() in {use.function}(), which "
                                                                   f"cannot reach module state ({acc.reason})"))
    return out


@dataclass(frozen=True)
class _Reached:
    """How functions reach state, for one set of moving globals (_reach)."""

    access: dict[str, Access]
    needs: dict[str, set[GlobalKey]]
    helpers: set[str]
    macro_bodies: dict[str, set[GlobalKey]]
    direct: dict[str, set[GlobalKey]]
    passing: ModulePassing
    checks: tuple[InstanceCheck, ...]


def _reach(module: ExtensionModule, movable: dict[GlobalKey, Global], base_bodies, graph: MacroGraph,
           finders: set[str], looked_up: frozenset[str]) -> _Reached:
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
    # Heap types a helper of init makes from the specs init passes it: made with the module now.
    type_ok |= {spec for h in init_spec_helpers(module) for spec in h.specs}
    # And those a function of init makes from its own spec, once the module reaches it.
    makers = init_spec_makers(module)
    generated_callers = frozenset(c.callee for f in module.functions for c in f.calls
                                  if module.in_generated(f.file, c.span.start))
    access = {name: function_access(f, module, type_ok | {m.spec for m in makers}, name in called,
                                    generated_callers)
              for name, f in functions.items()}
    passable = passable_makers(module, makers, access)
    if passable != makers:
        access = {name: function_access(f, module, type_ok | {m.spec for m in passable}, name in called,
                                        generated_callers)
                  for name, f in functions.items()}
        makers = passable
    access.update(unreachable_added_functions(module, access))
    access.update(all_or_none(module, access))
    unsure_files = dict(module.file_conditions)
    calling: set[str] = set()
    while True:
        macro_bodies = {name: set(keys) for name, keys in base_bodies.items()}
        for name in calling:
            macro_bodies.setdefault(name, set()).add(MODULE_STATE)
        macro_bodies = graph.close(macro_bodies)
        direct = direct_needs(module, movable, macro_bodies, finders, looked_up)
        exempt, checks = checks_by_instance(module, movable, access, direct, macro_bodies)
        for name, keys in exempt.items():
            direct[name] = direct[name] - keys
        through_slots = slot_edges(module, access)
        needs, helpers = thread_helpers(functions, access, direct, slot_edges=through_slots)
        passing = module_passing(module, access, needs, makers, frozenset(finders) | looked_up)
        if passing.helpers:
            needs, helpers = thread_helpers(functions, access, direct, passing.helpers, through_slots)
        # One defined only under a condition porter cannot evaluate is reported instead.
        now = {m.name for m in macros_calling(module, helpers)
               if m.active is not None and m.file not in unsure_files}
        if now <= calling:
            return _Reached(access, needs, helpers, macro_bodies, direct, passing, checks)
        calling |= now


def _find_module_without_module(module: ExtensionModule, access: dict[str, Access], finders: set[str],
                                last_module: dict[str, str],
                                given_module: frozenset[str] = frozenset()) -> list[tuple[FindModuleUse, str]]:
    """Uses that want the module object where the function's access gives none (and its
    callers do not pass it: `given_module`), with why."""
    out = []
    for use in module.find_module_uses:
        if use.function in finders or use.wants is not FindModuleWant.MODULE or use.function in last_module \
                or use.function in given_module:
            continue  # a finder goes: its callers get the state instead
        acc = access.get(use.function or "")
        if use.macro is not None or acc is None or acc.kind not in (
                AccessKind.MODULE, AccessKind.EXEC, AccessKind.TYPE, AccessKind.NEW, AccessKind.CLASS,
                AccessKind.DEFINING_CLASS):
            why = acc.reason if acc is not None and acc.kind is AccessKind.NONE else \
                "it reaches module state but not the module object"
            out.append((use, f"{use.function}() cannot reach the module object ({why})"))
    return out


def init_spec_helpers(module: ExtensionModule) -> tuple[SpecHelper, ...]:
    """The helpers that make heap types from the specs they are given and that only init
    calls (itself or through helpers only it calls): the module they get is the one exec fills."""
    if not module.spec_helpers or module.exec_function is None:
        return ()
    phase = init_phase(list(module.functions), {module.exec_function})
    return tuple(h for h in module.spec_helpers if h.function in phase and h.function != module.exec_function)


def init_spec_makers(module: ExtensionModule) -> tuple[SpecMaker, ...]:
    """The functions of init (not exec itself) that make a heap type from their own spec and
    return it: the module exec fills reaches them as a new parameter."""
    if not module.spec_makers or module.exec_function is None:
        return ()
    phase = init_phase(list(module.functions), {module.exec_function})
    return tuple(m for m in module.spec_makers if m.function in phase and m.function != module.exec_function)


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


def macros_calling(module: ExtensionModule, names: Iterable[str]) -> list[Macro]:
    """The module's macros whose body calls one of `names`, in their order. The macros' calls
    are read once for every module of the files (shared_index): a search of every macro's body
    per module, once per round, was quadratic in a unity file of many macros."""
    callers = shared_index(module.macros, "callers by callee", _callers_by_callee)
    found = {pos: m for name in callers.keys() & set(names) for pos, m in callers[name]}
    return [found[pos] for pos in sorted(found)]


def _callers_by_callee(macros) -> dict[str, list[tuple[int, Macro]]]:
    out: dict[str, list[tuple[int, Macro]]] = {}
    for pos, m in enumerate(macros):
        for name in dict.fromkeys(name for name, *_ in m.called()):
            out.setdefault(name, []).append((pos, m))
    return out
