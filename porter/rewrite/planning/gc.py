"""Whether a converted type gets GC support, and everything the gc-support step needs for it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from porter import capi
from porter.analyze.initializers import is_null, referenced_name, sizeof_operand
from porter.model import ExtensionModule, Function, Span, StaticType, UseAccess
from porter.rewrite.layout import FileLayout
from porter.rewrite.names import NameAllocator

# Anything else that looks like it allocates or initialises an object of the type.
_ALLOCATING = re.compile(r"new|init|alloc", re.IGNORECASE)


@dataclass(frozen=True)
class AllocationSite:
    file: str
    call: Span
    struct_arg: Span  # `BoxObject`
    struct: str  # its text
    type_arg: Span  # `&BoxType`


@dataclass(frozen=True)
class GcPlan:
    type_name: str
    struct: str  # the instance struct as C spells it in tp_basicsize
    fields: tuple[str, ...]  # object fields the dealloc releases, in struct order
    dealloc: Function
    traverse: str
    clear: str
    sites: tuple[AllocationSite, ...]


def plan_gc(module: ExtensionModule, layouts: dict[str, FileLayout], t: StaticType, values: dict[str, str],
            types: dict[str, StaticType], inherited_gc: bool | None,
            names: NameAllocator) -> GcPlan | str | None:
    """How `t` gets GC support; None when it needs none, else why porter leaves it to a person.

    `inherited_gc` says whether its base gives it GC support (None: a base from elsewhere).
    """
    if "Py_TPFLAGS_HAVE_GC" in values.get("tp_flags", "") or inherited_gc:
        return None
    operand = sizeof_operand(values.get("tp_basicsize"))
    struct = module.instance_struct(operand[1]) if operand else None
    dealloc = module.function_in(t.file, referenced_name(values.get("tp_dealloc", "0") or "0") or "")
    if struct is None:
        return None
    released = {r.field for r in dealloc.releases} if dealloc is not None else set()
    owned = [f for f in struct.fields if f.is_object and f.name in released]
    if not owned:
        held = [f.name for f in struct.fields if f.is_object]
        if held and dealloc is not None and any(c.callee not in capi.NOT_RELEASING_CALLS for c in dealloc.calls):
            # It may release them through a helper (automaton_clear(self)): porter cannot tell.
            return (f"its instances hold {', '.join(held[:4])}{'...' if len(held) > 4 else ''} and "
                    f"{dealloc.name}() does not release them itself")
        return None
    if inherited_gc is None:
        return f"its base {values['tp_base'].strip()} is not one of the module's types"
    if any(f.conditional for f in owned):
        return "some of its object fields are under #if"
    if not is_null(values.get("tp_itemsize", "0")):
        return "its instances are variable-size"
    for slot in ("tp_traverse", "tp_clear"):
        if not is_null(values.get(slot, "0")):
            return f"it sets {slot} without Py_TPFLAGS_HAVE_GC"
    if not is_null(values.get("tp_alloc", "0")) and referenced_name(values["tp_alloc"]) != "PyType_GenericAlloc":
        return f"it allocates through its own tp_alloc {values['tp_alloc'].strip()}"
    assert dealloc is not None and operand is not None
    if len(dealloc.types) > 1:
        return f"its dealloc {dealloc.name}() also serves {', '.join(x for x in dealloc.types if x != t.name)}"
    if not dealloc.frees:
        return f"{dealloc.name}() frees no object porter can see"
    subtypes = list(_subtypes(types).get(t.name, ()))
    body = module.init_body
    subtypes += [a.target for a in (body.field_assignments if body else ())
                 if a.field == "tp_base" and referenced_name(a.value) == t.name and a.target not in subtypes]
    if subtypes:
        return f"the module's {', '.join(subtypes)} derive from it"
    sites = _allocation_sites(module, layouts, t)
    if isinstance(sites, str):
        return sites
    prefix = re.sub(r"_?dealloc$", "", dealloc.name) or t.name
    return GcPlan(t.name, operand[0], tuple(f.name for f in owned), dealloc,
                  names.fresh(f"{prefix}_traverse"), names.fresh(f"{prefix}_clear"), sites)


def _allocation_sites(module: ExtensionModule, layouts: dict[str, FileLayout],
                      t: StaticType) -> tuple[AllocationSite, ...] | str:
    g = module.file_global(t.name)
    if g is None:
        return "porter cannot see where it is used"
    sites = []
    for u in g.uses:
        where = f"{u.file}:{layouts[u.file].line(u.span.start)}"
        if u.unparsed:
            return f"a use at {where} is in code porter could not parse"
        if u.access in (UseAccess.MACRO, UseAccess.MACRO_ARG) and u.macro:
            body = next((m.body_text for m in module.macros if m.name == u.macro), "")
            if _ALLOCATING.search(u.macro) or _ALLOCATING.search(body):
                return f"macro {u.macro} (used at {where}) may allocate it"
            continue
        if u.call is None or not _ALLOCATING.search(u.call):
            continue
        fn = module.function(u.function or "")
        call = next((c for c in (fn.calls if fn else ()) if c.span == u.call_span), None)
        if u.call not in capi.INSTANCE_ALLOCATORS or call is None or len(call.args) != 2 \
                or not (call.args[1].start <= u.span.start < call.args[1].end):
            return f"it is allocated through {u.call}(...) at {where}, which porter does not rewrite"
        struct = layouts[u.file].text_of(call.args[0]).strip()
        sites.append(AllocationSite(u.file, call.span, call.args[0], struct, call.args[1]))
    # `PyObject_New(Obj, Py_TYPE(self))` allocates the type without naming it.
    operand = sizeof_operand(t.slot_text("tp_basicsize"))
    seen = {s.call for s in sites}
    for fn, call, first in _allocating_calls(module, layouts).get(operand[1], ()) if operand else ():
        if call.span in seen:
            continue
        line = layouts[fn.file].line(call.span.start)
        return (f"{fn.file}:{line} allocates a {first} through {call.callee}(...) without "
                f"naming {t.name}")
    return tuple(sites)


_SUBTYPES: list = [None, None]  # the types last asked about, and their subtypes


def _subtypes(types: dict[str, StaticType]) -> dict[str, list[str]]:
    """Each type's subtypes among `types` (by tp_base), in their order: asked for every type."""
    if _SUBTYPES[0] is not types:
        found: dict[str, list[str]] = {}
        for o in types.values():
            base = referenced_name(o.slot_text("tp_base") or "")
            if base:
                found.setdefault(base, []).append(o.name)
        _SUBTYPES[:] = [types, found]
    return _SUBTYPES[1]


_ALLOCATING_CALLS: list = [None, None, None]  # the module and layouts last asked about, and the answer


def _allocating_calls(module: ExtensionModule, layouts: dict[str, FileLayout]) -> dict[str, list]:
    """The module's calls that look like allocations, by the struct their first argument names
    (`struct` dropped), in the order of its functions and calls: every type of a module asks,
    so they are found once per module, not once per type."""
    if _ALLOCATING_CALLS[0] is module and _ALLOCATING_CALLS[1] is layouts:
        return _ALLOCATING_CALLS[2]
    found: dict[str, list] = {}
    for fn in module.functions:
        for call in fn.calls:
            if not call.args or not _ALLOCATING.search(call.callee):
                continue
            first = layouts[fn.file].text_of(call.args[0]).strip()
            found.setdefault(re.sub(r"^struct\s+", "", first), []).append((fn, call, first))
    _ALLOCATING_CALLS[:] = [module, layouts, found]
    return found
