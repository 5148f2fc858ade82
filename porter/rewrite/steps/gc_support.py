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

from porter.model import Span
from porter.rewrite.emit import Emitter, StepResult
from porter.rewrite.plan import Plan
from porter.rewrite.planning.gc import GcPlan
from porter.rewrite.steps.heap_types import type_key


class GcSupport:
    id = "gc-support"

    def run(self, plan: Plan) -> StepResult:
        out = Emitter(self.id, plan)
        for tp in plan.types:
            if isinstance(tp.gc, GcPlan):
                with out.about(type_key(tp.name)), out.applied_as(tp.applicability):
                    _emit(out, plan, tp.gc)
        return out.result


def _emit(out: Emitter, plan: Plan, gc: GcPlan) -> None:
    t = next(t for t in plan.module.static_types if t.name == gc.type_name)
    f = gc.dealloc
    for r in f.releases:
        if r.field in gc.fields and r.macro == "Py_DECREF":
            out.edit(f.file, r.callee, "Py_XDECREF")
    for site in gc.sites:
        out.edit(site.file, Span(site.call.start, site.type_arg.start), f"({site.struct} *)PyType_GenericAlloc(")
        out.edit(site.file, Span(site.type_arg.end, site.call.end), ", 0)")
    out.done(t.file, t.span, f"{t.name} takes part in GC: {gc.traverse}() visits its type and "
                             f"{', '.join(gc.fields)}, {gc.clear}() clears them; {f.name}() untracks first"
             + (f"; {len(gc.sites)} PyObject_New site(s) now use PyType_GenericAlloc, which "
                "zero-fills and tracks" if gc.sites else ""))
    out.todo(t.file, t.span, f"review {t.name}'s methods: after {gc.clear}() breaks a cycle, "
                             f"{', '.join(gc.fields)} may be NULL", code="gc-review-methods", subject=t.name)
