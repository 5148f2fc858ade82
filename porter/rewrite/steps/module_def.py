"""module-def: the `PyModuleDef` gets slots, state size and GC hooks; `PyInit_` returns it.

What: after the exec function porter emits the state's traverse/clear/free functions, the
`PyModuleDef_Slot` table (`Py_mod_exec`; `Py_mod_multiple_interpreters`, guarded for 3.12+;
`Py_mod_gil = Py_MOD_GIL_USED`, guarded for 3.13+) and the definition itself with designated
fields and `m_size = sizeof(<mod>_state)`. The old definition goes (a definition written through
a project macro such as MOD_DEF too). `PyInit_<mod>` becomes `return PyModuleDef_Init(&def);`.

Why: `PyModuleDef_Init` is what makes an extension multi-phase; the slot table is where it
says it supports isolated subinterpreters.

Fix safety: safe. The multiple-interpreters slot claims per-interpreter GIL support only when
nothing mutable stays process-global (see the report's posture line).
"""

from __future__ import annotations

from porter import capi
from porter.analyze.initializers import is_null, referenced_name
from porter.model import InitStyle, ModuleDef
from porter.render import render
from porter.rewrite import cbuild
from porter.rewrite.emit import Emitter, StepResult
from porter.rewrite.plan import Plan


class ModuleDefinition:
    id = "module-def"

    def run(self, plan: Plan) -> StepResult:
        out = Emitter(self.id, plan)
        module, names = plan.module, plan.names
        d, body = module.definition, module.init_body
        if module.init_style is InitStyle.MULTI_PHASE:
            return out.result  # the definition has its slots already
        if d is None or body is None:
            out.fail("no-module-def", "porter found no PyModuleDef for the init function")
            return out.result
        with out.about(("module",)):
            objects = [f.name for f in plan.fields if f.is_object]
            fields = [
                ("m_name", _value(d, "m_name", '"' + module.name + '"')),
                ("m_doc", _value(d, "m_doc", "NULL")),
                ("m_size", f"sizeof({names.state_type})" if plan.fields else _size(d)),
                ("m_methods", _value(d, "m_methods", "NULL")),
                ("m_slots", names.slots),
            ]
            if objects:
                fields += [("m_traverse", names.traverse), ("m_clear", names.clear), ("m_free", names.free)]
            else:
                for name in ("m_traverse", "m_clear", "m_free"):
                    value = _value(d, name, "NULL")
                    if value != "NULL":
                        fields.append((name, value))
            # The definition is deleted where it was and written again after exec.
            if not any(s.overlaps(d.span) for s in body.create_statements):
                out.delete_statement(d.file, d.span)
            # Declared `extern` in a shared header by state-struct: the definition must not be static.
            shared = plan.placement is not None and plan.placement.shared_header
            storage = "" if shared or (not d.is_static and d.macro is None) else "static "
            worker_is_init = module.init.worker is None
            # The generated functions call the old ones by name: `(freefunc)module_free` -> module_free.
            old = {}
            for name in ("m_traverse", "m_clear", "m_free"):
                value = _value(d, name, "NULL") if objects else "NULL"
                old[name] = None if is_null(value) else (referenced_name(value) or value)
            text = render(
                "c/module_tail.c.jinja",
                old_traverse=old["m_traverse"], old_clear=old["m_clear"], old_free=old["m_free"],
                object_fields=objects, state_type=names.state_type, state_var=names.state_var,
                get_state=names.get_state, traverse=names.traverse, clear=names.clear,
                free=names.free, slots=names.slots, exec=names.exec, posture=plan.posture.value,
                posture_condition=plan.posture.condition,
                multiple_interpreters_guard=capi.version_guard("Py_mod_multiple_interpreters"),
                gil_guard=capi.version_guard("Py_mod_gil"),
                def_storage=storage, def_name=names.def_name, def_fields=fields,
                pyinit=module.init.name if worker_is_init else None,
            )
            out.insert(body.file, body.body.end, "\n\n" + text.strip("\n"), order=10)
            if not worker_is_init:
                out.edit(module.init.file, module.init.body, cbuild.return_module_def(names.def_name))
        out.done(body.file, body.header, f"{module.init.name}() returns PyModuleDef_Init(&{names.def_name}); slots: "
                                         f"Py_mod_exec, Py_mod_multiple_interpreters = {plan.posture.value}, "
                                         "Py_mod_gil = Py_MOD_GIL_USED", key=("module",))
        return out.result


def _value(d: ModuleDef, name: str, default: str) -> str:
    f = d.field(name)
    return f.text.strip() if f is not None and f.text.strip() else default


def _size(d: ModuleDef) -> str:
    value = _value(d, "m_size", "0")
    return "0" if value.replace(" ", "") in ("-1", "(-1)") else value
