"""gc-support: a heap type whose instances own object references gets the GC protocol.

What: for a converted type without `Py_TPFLAGS_HAVE_GC` whose dealloc releases object fields
of its instances, the spec gets the flag and generated `<prefix>_traverse` (visiting
`Py_TYPE(self)` and each released field) and `<prefix>_clear`; dealloc untracks first and
turns `Py_DECREF(self->f)` into `Py_XDECREF`, since clear may have emptied the field (it
already frees through `tp->tp_free`, see heap-types); `PyObject_New(T, &Type)` becomes
`(T *)PyType_GenericAlloc(type, 0)`, which zero-fills and tracks the object.

Why: every instance of a heap type holds a strong reference to its type, and the type to its
module. An instance kept in module state (a default object, a cached singleton) then closes a
cycle module -> state -> instance -> type -> module that only the collector can break, and it
can only break it if the instance takes part in GC (PEP 630, "Garbage-Collection Protocol").

Fix safety: safe. Only fields the dealloc releases are visited (a borrowed pointer is never
visited); all of the type's allocation sites must be ones porter rewrites, else nothing is
changed and the report says which site stops it.

Known problems: methods that assume a field is never NULL can meet one that `tp_clear` emptied
while a cycle is being collected; the report asks to review them. Variable-size types,
fields under `#if`, and types with subclasses in the module are left to a person.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from porter.analyze.initializers import is_null, referenced_name, sizeof_operand
from porter.model import Function, Span, StaticType
from porter.render import render
from porter.rewrite.context import PortContext, fresh_name
from porter.rewrite.edits import Applicability

# Allocations porter turns into PyType_GenericAlloc(type, 0).
ALLOCATORS = ("PyObject_New", "PyObject_NEW")
# Anything else that looks like it allocates or initialises an object of the type.
ALLOCATING = re.compile(r"new|init|alloc", re.IGNORECASE)


# Calls in a dealloc that release nothing of the instance's fields.
_NOT_RELEASING = {"PyObject_Del", "PyObject_DEL", "PyObject_Free", "PyObject_FREE", "PyObject_GC_Del",
                  "PyObject_GC_UnTrack", "Py_TYPE", "Py_DECREF", "Py_XDECREF", "Py_CLEAR",
                  "PyObject_ClearWeakRefs", "Py_TRASHCAN_BEGIN", "Py_TRASHCAN_END"}


@dataclass(frozen=True)
class AllocationSite:
    file: str
    call: Span
    struct_arg: Span  # `BoxObject`
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


def plan_gc(ctx: PortContext, t: StaticType, values: dict[str, str], types: dict[str, StaticType],
            inherited_gc: bool | None, taken: set[str]) -> GcPlan | str | None:
    """How `t` gets GC support; None when it needs none, else why porter leaves it to a person.

    `inherited_gc` says whether its base gives it GC support (None: a base from elsewhere).
    """
    if "Py_TPFLAGS_HAVE_GC" in values.get("tp_flags", "") or inherited_gc:
        return None
    module = ctx.module
    operand = sizeof_operand(values.get("tp_basicsize"))
    struct = next((s for s in module.instance_structs if s.name == operand[1]), None) if operand else None
    dealloc = module.function(referenced_name(values.get("tp_dealloc", "0") or "0") or "")
    if struct is None:
        return None
    released = {r.field for r in dealloc.releases} if dealloc is not None else set()
    owned = [f for f in struct.fields if f.is_object and f.name in released]
    if not owned:
        held = [f.name for f in struct.fields if f.is_object]
        if held and dealloc is not None and any(c.callee not in _NOT_RELEASING for c in dealloc.calls):
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
    if len(dealloc.types) > 1:
        return f"its dealloc {dealloc.name}() also serves {', '.join(x for x in dealloc.types if x != t.name)}"
    if not dealloc.frees:
        return f"{dealloc.name}() frees no object porter can see"
    subtypes = [o.name for o in types.values() if o.slot("tp_base") is not None
                and referenced_name(o.slot("tp_base").text) == t.name]
    body = module.init_body
    subtypes += [a.target for a in (body.field_assignments if body else ())
                 if a.field == "tp_base" and referenced_name(a.value) == t.name and a.target not in subtypes]
    if subtypes:
        return f"the module's {', '.join(subtypes)} derive from it"
    sites = _allocation_sites(ctx, t)
    if isinstance(sites, str):
        return sites
    prefix = re.sub(r"_?dealloc$", "", dealloc.name) or t.name
    traverse = fresh_name(f"{prefix}_traverse", taken)
    clear = fresh_name(f"{prefix}_clear", taken)
    return GcPlan(t.name, operand[0], tuple(f.name for f in owned), dealloc, traverse, clear, sites)


def _allocation_sites(ctx: PortContext, t: StaticType) -> tuple[AllocationSite, ...] | str:
    g = next((g for g in ctx.module.globals if g.name == t.name and g.function is None), None)
    if g is None:
        return "porter cannot see where it is used"
    sites = []
    for u in g.uses:
        line = ctx.sources[u.file].text.count(b"\n", 0, u.span.start) + 1
        where = f"{u.file}:{line}"
        if u.unparsed:
            return f"a use at {where} is in code porter could not parse"
        if u.access in ("macro", "macro-arg") and u.macro:
            body = next((m.body_text for m in ctx.module.macros if m.name == u.macro), "")
            if ALLOCATING.search(u.macro) or ALLOCATING.search(body):
                return f"macro {u.macro} (used at {where}) may allocate it"
            continue
        if u.call is None or not ALLOCATING.search(u.call):
            continue
        fn = ctx.module.function(u.function or "")
        call = next((c for c in (fn.calls if fn else ()) if c.span == u.call_span), None)
        if u.call not in ALLOCATORS or call is None or len(call.args) != 2 \
                or not (call.args[1].start <= u.span.start < call.args[1].end):
            return f"it is allocated through {u.call}(...) at {where}, which porter does not rewrite"
        sites.append(AllocationSite(u.file, call.span, call.args[0], call.args[1]))
    # `PyObject_New(Obj, Py_TYPE(self))` allocates the type without naming it.
    operand = sizeof_operand(t.slot("tp_basicsize").text if t.slot("tp_basicsize") else None)
    seen = {s.call for s in sites}
    for fn in ctx.module.functions:
        for call in fn.calls:
            if not ALLOCATING.search(call.callee) or call.span in seen or not call.args:
                continue
            first = ctx.text(fn.file)[call.args[0].start:call.args[0].end].decode().strip()
            if operand is not None and re.sub(r"^struct\s+", "", first) == operand[1]:
                line = ctx.sources[fn.file].text.count(b"\n", 0, call.span.start) + 1
                return (f"{fn.file}:{line} allocates a {first} through {call.callee}(...) without "
                        f"naming {t.name}")
    return tuple(sites)


def gc_functions(plan: GcPlan) -> str:
    """The traverse and clear functions; heap-types writes them right before the type's spec."""
    return render("c/gc_functions.c.jinja", traverse=plan.traverse, clear=plan.clear,
                  struct=plan.struct, fields=plan.fields)


class GcSupport:
    id = "gc-support"

    def run(self, ctx: PortContext) -> None:
        for plan in ctx.gc_plans.values():
            self._emit(ctx, plan)

    def _emit(self, ctx: PortContext, plan: GcPlan) -> None:
        t = next(t for t in ctx.module.static_types if t.name == plan.type_name)
        f = plan.dealloc
        for r in f.releases:
            if r.field in plan.fields and r.macro == "Py_DECREF":
                ctx.edit(f.file, r.callee, "Py_XDECREF", self.id)
        text = ctx.text
        for site in plan.sites:
            struct = text(site.file)[site.struct_arg.start:site.struct_arg.end].decode().strip()
            ctx.edit(site.file, Span(site.call.start, site.type_arg.start),
                     f"({struct} *)PyType_GenericAlloc(", self.id)
            ctx.edit(site.file, Span(site.type_arg.end, site.call.end), ", 0)", self.id)
        ctx.item(self.id, Applicability.SAFE, t.file, t.span,
                 f"{t.name} takes part in GC: {plan.traverse}() visits its type and "
                 f"{', '.join(plan.fields)}, {plan.clear}() clears them; {f.name}() untracks first"
                 + (f"; {len(plan.sites)} PyObject_New site(s) now use PyType_GenericAlloc, which "
                    "zero-fills and tracks" if plan.sites else ""))
        ctx.item(self.id, Applicability.MANUAL, t.file, t.span,
                 f"review {t.name}'s methods: after {plan.clear}() breaks a cycle, "
                 f"{', '.join(plan.fields)} may be NULL", done=False)
