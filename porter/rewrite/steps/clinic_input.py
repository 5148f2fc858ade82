"""clinic-input: the Argument Clinic input of a method that now reaches module state gets a
`cls: defining_class` parameter.

What: in CPython's own tree, each clinic method of a type porter converts that needs module
state gets `cls: defining_class` in its clinic input (after a `self:` line, else as the first
parameter, with the block's indentation); its `_impl` reads the state from `cls`
(`PyType_GetModuleState`). Porter then runs the tree's `Tools/clinic/clinic.py` on the new text,
and the patch holds both the input change and clinic's regenerated output.

Why: a reviewer would choose the defining class for a clinic method: it is the type that
defines the method, so the lookup is one pointer read, where `PyType_GetModuleByDef` walks the
MRO on every call.

Fix safety: safe when clinic ran (the compile check sees its output). When clinic cannot run
(no interpreter for the tree's clinic, or clinic fails), porter changes no clinic input and the
methods keep `PyType_GetModuleByDef`; the report says which. Methods whose input cannot take a
defining class (`__new__`, `__init__`, getters and setters, class and static methods, clones,
optional groups, `*args`) also keep it.

Known problems: porter never edits generated code itself; a generated file that is not what the
tree's clinic writes from its input (edited by hand, or by another clinic version) is
regenerated with the rest.
"""

from __future__ import annotations

from porter.model import Span
from porter.rewrite.emit import Emitter, StepResult
from porter.rewrite.plan import Plan
from porter.rewrite.vocab import AccessKind


class ClinicInput:
    id = "clinic-input"

    def run(self, plan: Plan) -> StepResult:
        out = Emitter(self.id, plan)
        module, d = plan.module, plan.decisions
        for name, acc in sorted(d.access.items()):
            if acc.kind is not AccessKind.DEFINING_CLASS or not d.needs.get(name):
                continue
            clinic = module.clinic_function(name)
            if clinic is None or clinic.defining_class is not None:
                continue  # its input has the parameter already
            key = ("clinic", clinic.name)
            with out.about(key):
                out.insert(clinic.file, clinic.parameter_at, clinic.parameter_line.format(name=acc.params[0]))
            out.done(clinic.file, Span(clinic.parameter_at, clinic.parameter_at),
                     f"clinic input of {clinic.name} takes `{acc.params[0]}: defining_class`: {name}() reads "
                     "module state from the class that defines it", key=key)
        _reach_types_through_clinic_state(out, plan)
        return out.result


def _reach_types_through_clinic_state(out: Emitter, plan: Plan) -> None:
    """`"&Foo_Type"` in the clinic input becomes `"clinic_state()->Foo_Type"`, and each file
    defines `clinic_state()` around its clinic include (as CPython's own ported modules do)."""
    cs, names = plan.clinic_state, plan.names
    fields = {f.key[1]: f.name for f in plan.fields if f.is_type and f.key[0] is None}
    for n in cs.inputs:
        if n.name not in fields or not any(m.file == n.file for m in cs.macros):
            continue
        key = ("global", None, n.name)
        with out.about(key):
            out.edit(n.file, n.span, f'"clinic_state()->{fields[n.name]}"')
    for m in cs.macros:
        if m.reach == "module":
            expression = f"{names.get_state}({m.param})"
        elif m.reach == "new":
            expression = f"{names.get_state_by_type}({m.param})"
        else:
            expression = f"{names.get_state_by_type}(Py_TYPE({m.param}))"
        layout = plan.layout(m.file)
        with out.about(("clinic-state", m.file)):
            out.insert(m.file, layout.line_start(m.include.start), f"#define clinic_state() ({expression})\n")
            out.insert(m.file, m.include.end, "\n#undef clinic_state")
        typed = sorted({n.name for n in cs.inputs if n.file == m.file and n.name in fields})
        out.done(m.file, m.include, f"clinic input names {', '.join(typed)} through `clinic_state()`, defined "
                                    f"around the clinic include as `{expression}`", key=("clinic-state", m.file))
