"""What the Py_mod_multiple_interpreters slot may truthfully claim for a ported module."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from porter.conditions import holds_in_no_build
from porter.model import ExtensionModule, GlobalKind, Severity
from porter.rewrite.planning.decide import Decisions
from porter.rewrite.planning.reach import GlobalKey
from porter.rewrite.vocab import Reason

# Compilers whose C has no `_Atomic` (MSVC without /experimental:c11atomics).
NO_C11_ATOMICS = "defined(_MSC_VER) && !defined(__clang__)"
PER_INTERPRETER_GIL = "Py_MOD_PER_INTERPRETER_GIL_SUPPORTED"
SHARED_GIL_ONLY = "Py_MOD_MULTIPLE_INTERPRETERS_SUPPORTED"
NOT_SUPPORTED = "Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED"


def atomic_counters(module: ExtensionModule, kept: Mapping[GlobalKey, Reason]) -> set[GlobalKey]:
    """The pacing counters that stay because their function cannot reach module state: they
    become _Atomic (steps.once_per_process). One kept for another reason is reported as it is."""
    return {key for key in module.pacing_counters if key in kept and kept[key].code == "unreachable-function"}


def always_atomic(module: ExtensionModule, atomic: set[GlobalKey]) -> set[GlobalKey]:
    """Of the `atomic_counters`, those made _Atomic in every build: declared only where the
    compiler always has C11 atomics (`#if defined(__GLIBC__)`: never MSVC)."""
    return {key for key in atomic
            if (condition := module.global_of(key).condition)
            and holds_in_no_build(f"({condition}) && ({NO_C11_ATOMICS})")}


@dataclass(frozen=True)
class Posture:
    """What the Py_mod_multiple_interpreters slot claims, why not more, and in which builds."""

    value: str
    reasons: tuple[str, ...]
    condition: str | None  # the weaker claim holds only when this is true (None: always)


def choose_posture(module: ExtensionModule, decisions: Decisions, exec_once: tuple[str, ...] = (),
                   once_calls: tuple = (), once_locks: tuple = ()) -> Posture:
    """The strongest claim that is true, the reasons it is not stronger, and the build condition
    the weaker claim depends on (None: it holds in every build).

    Globals declared only under a condition porter cannot evaluate (`#ifdef MEMORY_DEBUG`) weaken
    the claim only in builds where that condition holds.
    """
    reasons = []
    objects_left = False
    conditions: list[str] = []
    unconditional = False
    atomic = atomic_counters(module, decisions.kept)
    everywhere_atomic = always_atomic(module, atomic)
    for key, why in sorted(decisions.kept.items(), key=lambda kv: kv[0][1]):
        g = module.global_of(key)
        condition = g.condition
        if key in everywhere_atomic:
            continue  # declared for glibc only, plain only under MSVC: atomic in every build
        if key in atomic:
            # Made _Atomic (steps.once_per_process) wherever the compiler has C11 atomics.
            condition = f"({condition}) && ({NO_C11_ATOMICS})" if condition else NO_C11_ATOMICS
            reasons.append(f"{g.name} (a pacing counter) stays a plain process-wide integer when {condition} "
                           f"(no C11 atomics): {why.message}")
        else:
            where = f" (only when {condition})" if condition else ""
            reasons.append(f"{g.name} ({g.kind.value}) stays process-global{where}: {why.message}")
        if condition:
            if condition not in conditions:
                conditions.append(condition)
        else:
            unconditional = True
        if g.kind.is_object_kind and g.kind is not GlobalKind.STATIC_TYPE:
            objects_left = True
    # Once-guards exec runs holding a lock are thread-safe; the others weaken the claim.
    locked = set(once_locks)
    guards = [g for g in module.globals if g.kind is GlobalKind.ONCE_GUARD
              and not (g.once_guard_statements and set(g.once_guard_statements) <= locked)]
    for g in guards:
        # `if (!ready) { lib_init(); ready = 1; }` stays as it is: once per process, as before.
        where = f" (only when {g.condition})" if g.condition else ""
        reasons.append(f"{g.name} ({g.kind.value}) stays process-global{where}: {g.reason}; with a GIL per "
                       "interpreter two first loads could make those calls at the same time")
        if g.condition:
            if g.condition not in conditions:
                conditions.append(g.condition)
        else:
            unconditional = True
    for name, because in decisions.last_module.items():
        reasons.append(f"{name}() finds the module the last exec made, kept process-global: {because}")
    for name, because in decisions.last_module_macros.items():
        reasons.append(f"macro {name} finds the module the last exec made, kept process-global: {because}")
    # Process-wide calls the port makes on the first load only, as single-phase init did.
    once = {(c.file, c.call.start) for c in once_calls}
    findings = [f for f in module.findings if (f.file, f.span.start) not in once]
    for f in findings:
        if f.code == "process-global":
            reasons.append(f"{f.message} ({f.file})")
        if f.severity is Severity.BLOCKER and f.code not in ("state-find-module", "state-add-module"):
            reasons.append(f.message)
    # A macro that defines a static object where it expands (ExtensionClass's PURE_MIXIN_CLASS).
    static_macros = {m.name for m in module.macros
                     if re.search(r"\bstatic\b[^;]*=\s*\{\s*Py(Var)?Object_HEAD_INIT", m.body_text)}
    for name in sorted(static_macros & {u.name for u in module.macro_uses}):
        reasons.append(f"macro {name} defines a statically allocated Python object where it is used")
    if exec_once:
        reasons.append(f"exec fills the dicts of static types that stay process-global ({', '.join(exec_once)}): "
                       "it runs once per process, and every later load shares the objects the first load made")
    process_global = bool(exec_once) or bool(decisions.last_module or decisions.last_module_macros) or any(
        f.code == "process-global" for f in findings) or bool(
        static_macros & {u.name for u in module.macro_uses})
    if not reasons:
        return Posture(PER_INTERPRETER_GIL, (), None)
    weaker = NOT_SUPPORTED if objects_left or process_global else SHARED_GIL_ONLY
    if conditions and not unconditional and not process_global and len(reasons) == len(decisions.kept) + len(guards):
        return Posture(weaker, tuple(reasons), " || ".join(f"({c})" for c in conditions))
    return Posture(weaker, tuple(reasons), None)
