"""Which callback slots take the state (analyze.callback_slots).

A slot's functions take the state like helpers (the new first parameter), its signature gets
the same parameter, and every call through it passes the caller's state. All of them or none:
one signature serves every function stored in it. A slot qualifies when porter saw every use of
it (its `refusal` is empty), every function stored in it is one of the module's own that could
take a parameter as a helper, and none of them is also stored or passed anywhere else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from porter.model import CallbackSlot, ExtensionModule, Function
from porter.rewrite.vocab import AccessKind

if TYPE_CHECKING:  # access asks slot_refusal
    from porter.rewrite.planning.access import Access


def slot_refusal(f: Function, module: ExtensionModule) -> str:
    """Why the slots `f` is stored in cannot give it the state ('' when they all can)."""
    for slot in module.slots_storing(f.name):
        why = _refusal(slot, module)
        if why:
            return f"its address is stored in {_describe(slot)}, whose signature porter keeps: {why}"
    stored = {s.location for slot in module.slots_storing(f.name) for s in slot.stores if s.function == f.name}
    elsewhere = [loc for loc in f.address_taken if loc not in stored]
    if elsewhere:
        return f"its address is also passed elsewhere (in {elsewhere[0].file}), so its signature is fixed"
    return ""


def _refusal(slot: CallbackSlot, module: ExtensionModule) -> str:
    if slot.refusal:
        return slot.refusal
    public = next((loc.file for loc in slot.param_lists if loc.file in module.public_headers), None)
    if public is not None:
        return f"its signature is in {public}, a header the package installs: it is public API"
    for name in slot.functions:
        f = module.function(name)
        if f is None:
            return f"{name}() is stored in it too, and is not one of the module's functions"
        if f.alternatives or f.defined_by or name in module.ambiguous_functions:
            return f"{name}() is stored in it too, and porter cannot add a parameter to every definition of it"
    stores = {s.location for s in slot.stores}
    aliases = {a for s in slot.stores for a in s.aliases}
    for use in module.macro_uses:
        if use.name in aliases and not any(loc.file == use.file and loc.span.start == use.span.start
                                           for loc in stores):
            return f"macro {use.name}, another name of a function stored in it, is also used elsewhere in {use.file}"
    functions = set(slot.functions)
    for m in module.macros:
        if m.name not in aliases and functions & m.identifiers:
            named = sorted(functions & m.identifiers)[0]
            return f"macro {m.name} names {named}(), which is stored in it"
    return ""


def _describe(slot: CallbackSlot) -> str:
    fields = ", ".join(slot.fields)
    return f"the fields {fields} (type {slot.name})" if "." not in slot.name and len(slot.fields) > 1 else \
        f"the field {fields}" + (f" (type {slot.name})" if "." not in slot.name else "")


def all_or_none(module: ExtensionModule, access: dict[str, Access]) -> dict[str, Access]:
    """Slot functions that must keep their signature after all: another function of one of
    their slots cannot take the state (its access is not a helper's). Repeated until stable:
    a function in two slots ties them together."""
    from porter.rewrite.planning.access import Access

    out: dict[str, Access] = {}
    changed = True
    while changed:
        changed = False
        for slot in module.callback_slots:
            functions = slot.functions
            current = [(name, out.get(name, access.get(name))) for name in functions]
            blocking = next(((name, acc) for name, acc in current
                             if acc is None or acc.kind not in _TAKES_STATE
                             or (acc.kind is AccessKind.SPLIT and _stored_by_alias(slot, name))), None)
            if blocking is None:
                continue
            other, other_access = blocking
            if other_access is None or other_access.kind is AccessKind.NONE:
                why = f"{other}() is stored there too and cannot take the state (" + (
                    other_access.reason if other_access is not None else "not a function of this module") + ")"
            else:
                why = f"{other}() is stored there too and reaches module state through its own arguments"
            for name, acc in current:
                if acc is not None and acc.kind in _TAKES_STATE:
                    out[name] = Access(AccessKind.NONE, reason=(
                        f"its address is stored in {_describe(slot)}, whose signature porter keeps: {why}"))
                    changed = True
    return out


# The stored functions that take the state first: helpers, and functions split into an `_impl`
# that takes it (exported ones: the slot then holds the `_impl`).
_TAKES_STATE = (AccessKind.HELPER, AccessKind.SPLIT)


def _stored_by_alias(slot: CallbackSlot, name: str) -> bool:
    """A store names it through a macro: its `_impl` cannot be put there."""
    return any(s.function == name and s.aliases for s in slot.stores)


def ported_slots(module: ExtensionModule, helpers: frozenset[str] | set[str]) -> list[CallbackSlot]:
    """The slots whose functions take the state."""
    return [s for s in module.callback_slots if s.functions and all(name in helpers for name in s.functions)]


def slot_edges(module: ExtensionModule, access: dict[str, Access]) -> list[tuple[str, str]]:
    """(caller, callee) pairs along which a need for state spreads through slots: one stored
    function's need is every other's (they share a signature), and a call through the slot
    needs what any of them does."""
    edges: list[tuple[str, str]] = []
    for slot in module.callback_slots:
        functions = [name for name in slot.functions
                     if (acc := access.get(name)) is not None and acc.kind in _TAKES_STATE]
        if not functions or len(functions) != len(slot.functions):
            continue
        edges += [(a, b) for a in functions for b in functions if a != b]
        edges += [(call.caller, name) for call in slot.calls for name in functions]
    return edges
