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

from porter.analyze.initializers import is_null, referenced_name
from porter.render import render
from porter.rewrite.context import PortContext
from porter.rewrite.edits import Applicability


class ModuleDefinition:
    id = "module-def"

    def run(self, ctx: PortContext) -> None:
        module = ctx.module
        d = module.definition
        body = module.init_body
        if d is None or body is None:
            ctx.fail("porter found no PyModuleDef for the init function")
            return
        names = ctx.names
        objects = [f.name for f in ctx.fields if f.is_object]
        fields = [
            ("m_name", _value(d, "m_name", '"' + module.name + '"')),
            ("m_doc", _value(d, "m_doc", "NULL")),
            ("m_size", f"sizeof({names.state_type})" if ctx.fields else _size(d)),
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
        create = set(body.create_statements)
        if not any(s.overlaps(d.span) for s in create):
            ctx.edit(d.file, ctx.statement_span_with_line(d.file, d.span), "", self.id)
        # Declared `extern` in a shared header by state-struct: the definition must not be static.
        shared = ctx.state_block_file is not None and ctx.state_block_file.endswith(".h")
        storage = "" if shared or (not d.is_static and d.macro is None) else "static "
        worker_is_init = module.init.worker is None
        old = {name: (_value(d, name, "NULL") if objects else "NULL") for name in ("m_traverse", "m_clear", "m_free")}
        # The generated functions call the old ones by name: `(freefunc)module_free` -> module_free.
        old = {name: (None if is_null(value) else (referenced_name(value) or value))
               for name, value in old.items()}
        text = render(
            "c/module_tail.c.jinja",
            old_traverse=old["m_traverse"], old_clear=old["m_clear"], old_free=old["m_free"],
            object_fields=objects, state_type=names.state_type, state_var=names.state_var,
            get_state=names.get_state, traverse=names.traverse, clear=names.clear,
            free=names.free, slots=names.slots, exec=names.exec, posture=ctx.posture,
            posture_condition=ctx.posture_condition,
            def_storage=storage, def_name=names.def_name, def_fields=fields,
            pyinit=module.init.name if worker_is_init else None,
        )
        file = body.file
        nl = ctx.newline(file)
        exec_end = _function_end(ctx, body)
        ctx.insert(file, exec_end, (nl + nl + text.strip("\n")).replace("\n", nl), self.id, order=10)
        if not worker_is_init:
            init = module.init
            ctx.edit(init.file, init.body,
                     f"{{{nl}    return PyModuleDef_Init(&{names.def_name});{nl}}}", self.id)
        ctx.item(self.id, Applicability.SAFE, file, body.header,
                 f"{module.init.name}() returns PyModuleDef_Init(&{names.def_name}); slots: "
                 f"Py_mod_exec, Py_mod_multiple_interpreters = {ctx.posture}, Py_mod_gil = Py_MOD_GIL_USED")


def _value(d, name: str, default: str) -> str:
    f = d.field(name)
    return f.text.strip() if f is not None and f.text.strip() else default


def _size(d) -> str:
    value = _value(d, "m_size", "0")
    return "0" if value.replace(" ", "") in ("-1", "(-1)") else value


def _function_end(ctx: PortContext, body) -> int:
    """Right after the closing brace of the exec function's body."""
    return body.body.end
