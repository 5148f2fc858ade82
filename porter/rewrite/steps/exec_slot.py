"""exec-slot: the init function becomes `<mod>_exec(PyObject *module)`, run by Py_mod_exec.

What: the body of `PyInit_<mod>` (or of the function it delegates to) moves into an exec
function: `PyModule_Create` and its NULL check go, `return NULL` becomes `return -1` and
`return m` `return 0`, the module's own `Py_DECREF(m)`/`Py_XDECREF(m)` on error paths go
(the import machinery owns the module now), `PyState_AddModule` goes, and
`PyModule_AddObject` of a global that moved into state becomes `PyModule_AddObjectRef` (the
state keeps its own reference, so the `Py_INCREF` before it goes too). Work done before
`PyModule_Create` stays where it was: it now runs with the module already created.

Why: multi-phase init (PEP 489) creates the module object for the extension and calls exec
on it; it can run once per interpreter and per `importlib` load.

Fix safety: safe. A return porter cannot classify, or a module creation it cannot read,
fails the module instead of guessing.
"""

from __future__ import annotations

import re

from porter.model import Span
from porter.rewrite.context import PortContext
from porter.rewrite.edits import Applicability


class ExecSlot:
    id = "exec-slot"

    def run(self, ctx: PortContext) -> None:
        body = ctx.module.init_body
        if body is None:
            ctx.fail("porter could not read the init function's body")
            return
        if body.problems:
            ctx.fail("; ".join(body.problems))
            return
        if not body.create_statements:
            ctx.fail("no PyModule_Create call porter can remove")
            return
        file = body.file
        if body.module_var_reused:
            self._owning_variable(ctx, body)
            return
        mvar = ctx.exec_param
        nl = ctx.newline(file)
        ctx.edit(file, body.header, f"static int{nl}{ctx.names.exec}(PyObject *{mvar})", self.id)
        ctx.item(self.id, Applicability.SAFE, file, body.header,
                 f"{body.function}() is now {ctx.names.exec}(PyObject *{mvar}), the Py_mod_exec slot")
        for span in body.module_var_decls:
            ctx.edit(file, ctx.statement_span_with_line(file, span), "", self.id)
        if body.module_var_global:
            self._drop_module_global(ctx, body.module_var)
        for span in body.create_statements:
            if body.create_kind == "return":
                ctx.edit(file, span, "return 0;", self.id)
            else:
                ctx.edit(file, ctx.statement_span_with_line(file, span), "", self.id)
        for span in body.null_checks:
            ctx.edit(file, ctx.statement_span_with_line(file, span), "", self.id)
        create_spans = set(body.create_statements)
        for r in body.returns:
            if r.span in create_spans:
                continue
            if r.value == "null":
                ctx.edit(file, r.span, "return -1;", self.id)
            elif r.value in ("module", "create"):
                ctx.edit(file, r.span, "return 0;", self.id)
            elif r.value == "zero" or not r.text.strip().startswith("return") and r.value == "other":
                ctx.fail(f"unrecognised return in {body.function}(): {r.text.strip()}")
                return
            else:
                ctx.fail(f"unrecognised return in {body.function}(): {r.text.strip()}")
                return
        for span in body.module_decrefs:
            self._drop_statement(ctx, file, span)
        for span in body.add_module:
            self._drop_statement(ctx, file, span)
            ctx.item(self.id, Applicability.SAFE, file, span,
                     "PyState_AddModule removed: multi-phase modules are not registered there")
        self._add_objects(ctx, body)
        self._returning_macros(ctx, body)
        self._prologue(ctx, body, mvar)

    def _drop_module_global(self, ctx: PortContext, name: str) -> None:
        """`PyObject *mod;` that init filled with the module: exec's parameter takes its place
        in init, and every other use became the module (or state) of its function."""
        g = next((g for g in ctx.module.globals if g.name == name and g.function is None), None)
        if g is None:
            ctx.fail(f"cannot find the declaration of the module's global {name}")
            return
        if g.declarator_count != 1:
            ctx.fail(f"the module's global {name} shares its declaration with other variables")
            return
        ctx.edit(g.file, ctx.statement_span_with_line(g.file, g.declaration), "", self.id)
        for loc in g.extern_declarations:
            ctx.edit(loc.file, ctx.statement_span_with_line(loc.file, loc.span), "", self.id)
        ctx.item(self.id, Applicability.SAFE, g.file, g.span,
                 f"the global {name} held the module: {ctx.names.exec}() takes it as its parameter, "
                 "and every other use is now the module (or state) of the function it is in")

    def _owning_variable(self, ctx: PortContext, body) -> None:
        """The module variable was a temporary before creation: keep it, owning a reference.

        `m = PyModule_Create(&def)` becomes `m = Py_NewRef(<exec's module>)`, every Py_DECREF
        of it stays, and `return m` releases it before returning 0: the same references as
        before, with the module now made by the import system.
        """
        file, nl = body.file, ctx.newline(body.file)
        mvar = body.module_var
        param = ctx.exec_param
        ctx.edit(file, body.header, f"static int{nl}{ctx.names.exec}(PyObject *{param})", self.id)
        if body.create_kind not in ("assign",):
            ctx.fail(f"{body.function}() reuses {mvar} before creating the module in a way porter "
                     "cannot rewrite")
            return
        for span in body.create_statements:
            ctx.edit(file, span, f"{mvar} = Py_NewRef({param});", self.id)
        for span in body.null_checks:
            ctx.edit(file, ctx.statement_span_with_line(file, span), "", self.id)
        for r in body.returns:
            if r.value == "null":
                ctx.edit(file, r.span, "return -1;", self.id)
            elif r.value == "module":
                ctx.edit(file, r.span, f"Py_DECREF({mvar});{nl}{ctx.line_indent(file, r.span.start)}return 0;",
                         self.id)
            else:
                ctx.fail(f"unrecognised return in {body.function}(): {r.text.strip()}")
                return
        for span in body.add_module:
            self._drop_statement(ctx, file, span)
        ctx.item(self.id, Applicability.SAFE, file, body.header,
                 f"{body.function}() is now {ctx.names.exec}(PyObject *{param}); {mvar}, a temporary "
                 "before the module existed, keeps owning a reference to it")
        self._add_objects(ctx, body)
        self._returning_macros(ctx, body)
        self._prologue(ctx, body, param)

    def _returning_macros(self, ctx: PortContext, body) -> None:
        """`#define DEFINE_STRING(S) if (...) return NULL` used in init: its returns change too."""
        for name in body.returning_macros:
            m = next((m for m in ctx.module.macros if m.name == name and m.active is not False), None)
            if m is None:
                continue
            elsewhere = [u for u in ctx.module.macro_uses if u.name == name and u.function != body.function]
            if elsewhere:
                ctx.fail(f"macro {name} returns from the init function but is also used in "
                         f"{elsewhere[0].function or 'file scope'}; porter cannot change its returns")
                return
            text = ctx.text(m.file)
            for match in re.finditer(rb"\breturn\s+(NULL|0|\(\s*NULL\s*\))\s*(?=;|\\|$)", text[m.body.start:m.body.end]):
                start = m.body.start + match.start()
                ctx.edit(m.file, Span(start, m.body.start + match.end()), "return -1", self.id)
            ctx.item(self.id, Applicability.SAFE, m.file, m.span,
                     f"macro {name} is used only in {ctx.names.exec}(): its `return NULL` is now `return -1`")
            if m.file.endswith(".h"):
                ctx.item(self.id, Applicability.MANUAL, m.file, m.span,
                         f"macro {name} is defined in the header {m.file}: code outside these sources "
                         "that includes it (other extensions of the package, or of other packages if "
                         "the header is installed) now returns -1 from its init too, and must be "
                         "ported as well", done=False)

    def _drop_statement(self, ctx: PortContext, file: str, span: Span) -> None:
        src = ctx.sources[file]
        node = src.root.descendant_for_byte_range(span.start, span.end)
        while node is not None and (node.start_byte, node.end_byte) != (span.start, span.end):
            node = node.parent
        if node is not None and node.parent is not None and node.parent.type not in (
                "compound_statement", "labeled_statement"):
            ctx.edit(file, span, "{}", self.id)  # the body of an if/else without braces
        else:
            ctx.edit(file, ctx.statement_span_with_line(file, span), "", self.id)

    def _add_objects(self, ctx: PortContext, body) -> None:
        moved = {key[1] for key in ctx.decisions.movable if key[0] is None}
        for call in body.add_objects:
            name = call.value_name
            if name not in moved:
                # OBJECT(&Type): a moved global named inside the value still loses its reference.
                inside = {g.name for g in ctx.decisions.movable.values() for u in g.uses
                          if u.file == body.file and call.value.start <= u.span.start < call.value.end}
                if len(inside) != 1:
                    continue
                name = inside.pop()
            ctx.edit(body.file, call.callee, "PyModule_AddObjectRef", self.id)
            if call.incref is not None:
                ctx.edit(body.file, ctx.statement_span_with_line(body.file, call.incref), "", self.id)
            for span in call.failure_decrefs:
                self._drop_statement(ctx, body.file, span)
            ctx.item(self.id, Applicability.SAFE, body.file, call.call,
                     f"PyModule_AddObject({name}) -> PyModule_AddObjectRef: the module "
                     "state keeps its own reference")

    def _prologue(self, ctx: PortContext, body, mvar: str) -> None:
        lines = []
        var = ctx.names.state_var
        uses_state = bool(ctx.decisions.needs.get(body.function)) or any(f.initial for f in ctx.fields) \
            or bool(ctx.type_creations)
        if uses_state:
            lines.append(f"{ctx.names.state_type} *{var} = {ctx.names.get_state}({mvar});")
            for f in ctx.fields:
                if f.initial is not None:
                    lines.append(f"{var}->{f.name} = {f.initial};")
        lines.extend(ctx.exec_prologue)
        if not lines:
            return
        indent = ctx.body_indent(body.file, body.body)
        nl = ctx.newline(body.file)
        text = "".join(f"{nl}{indent}{line}" if not line.startswith("#") else f"{nl}{line}"
                       for block in lines for line in block.split("\n"))
        ctx.insert(body.file, body.body.start + 1, text, self.id, order=-5)
