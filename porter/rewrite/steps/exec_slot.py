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

An init function that only returns `PyModule_Create(&def)`, in a module whose port puts nothing
in exec (no state to fill, no types to create), gets no exec function and no Py_mod_exec slot.

Fix safety: safe. A return porter cannot classify, or a module creation it cannot read,
fails the module instead of guessing.
"""

from __future__ import annotations

import re

from porter.model import InitBody, InitStyle, Span
from porter.render import render
from porter.rewrite import cbuild
from porter.rewrite.emit import Emitter, StepResult
from porter.rewrite.plan import Plan
from porter.rewrite.planning.types import builtin_name, creation_order
from porter.rewrite.steps.heap_types import type_key

EXEC = ("module",)  # the checklist item about the module as a whole


class ExecSlot:
    id = "exec-slot"

    def run(self, plan: Plan) -> StepResult:
        out = Emitter(self.id, plan)
        body = plan.module.init_body
        if plan.module.init_style is InitStyle.MULTI_PHASE:
            if body is not None:  # exec is there already: it gets what the port adds
                with out.about(EXEC):
                    _add_objects(out, plan, body)
                    _prologue(out, plan, body, plan.names.exec_param)
                    _created_in_place(out, plan, body)
        elif body is None:
            out.fail("init-unreadable", "porter could not read the init function's body")
        elif body.problems:
            out.fail("init-unreadable", "; ".join(body.problems))
        elif not body.create_statements:
            out.fail("no-module-create", "no PyModule_Create call porter can remove")
        elif plan.exec_is_noop:
            with out.about(EXEC):
                out.done(body.file, body.header, f"{body.function}() only created the module and the port gives "
                                                 "exec nothing to do: no exec function, no Py_mod_exec slot")
        elif plan.exec_delegate:
            with out.about(EXEC):
                out.done(body.file, body.header, f"{body.function}() only created the module and had "
                                                 f"{plan.exec_delegate}() fill it: {plan.exec_delegate}() is the "
                                                 "Py_mod_exec function")
        elif body.module_var_reused:
            with out.about(EXEC):
                _owning_variable(out, plan, body)
        else:
            with out.about(EXEC):
                _exec(out, plan, body)
        return out.result


def _exec(out: Emitter, plan: Plan, body: InitBody) -> None:
    file, mvar = body.file, plan.names.exec_param
    _exec_header(out, plan, body, mvar)
    _drop_prototypes(out, plan, body)
    out.done(file, body.header, f"{body.function}() is now {plan.names.exec}(PyObject *{mvar}), the Py_mod_exec slot")
    for span in body.module_var_decls:
        out.delete_statement(file, span)
    if body.module_var_global:
        _drop_module_global(out, plan, body.module_var)
    for span in body.create_statements:
        if body.create_kind == "return":
            out.edit(file, span, "return 0;")
        elif body.create_kind == "declare-one":
            out.edit(file, span, "")  # one declarator of several: the others stay declared
        else:
            out.delete_statement(file, span)
    for span in body.null_checks:
        out.delete_statement(file, span)
    create_spans = set(body.create_statements)
    for r in body.returns:
        if r.span in create_spans:
            continue
        if r.value == "null":
            out.edit(file, r.span, "return -1;")
        elif r.value in ("module", "create"):
            out.edit(file, r.span, "return 0;")
        else:
            out.fail("unrecognised-return", f"unrecognised return in {body.function}(): {r.text.strip()}")
            return
    for span in body.module_decrefs:
        _drop_statement(out, body, span)
    for span in body.add_module:
        _drop_statement(out, body, span)
        out.done(file, span, "PyState_AddModule removed: multi-phase modules are not registered there")
    _add_objects(out, plan, body)
    _returning_macros(out, plan, body)
    _prologue(out, plan, body, mvar)
    _created_in_place(out, plan, body)


def _drop_prototypes(out: Emitter, plan: Plan, body: InitBody) -> None:
    """`static PyObject *moduleinit(void);` for the function exec replaces: it is never defined now."""
    worker = plan.module.function(body.function)
    if worker is None or body.function == plan.module.init.function:
        return
    for proto in worker.prototypes:
        out.delete_statement(proto.file, proto.span)


def _drop_module_global(out: Emitter, plan: Plan, name: str | None) -> None:
    """`PyObject *mod;` that init filled with the module: exec's parameter takes its place
    in init, and every other use became the module (or state) of its function."""
    g = next((g for g in plan.module.globals if g.name == name and g.function is None), None)
    if g is None:
        out.fail("module-global-missing", f"cannot find the declaration of the module's global {name}")
        return
    if g.declarator_count != 1:
        out.fail("module-global-shared", f"the module's global {name} shares its declaration with other variables")
        return
    out.delete_statement(g.file, g.declaration)
    for loc in g.extern_declarations:
        out.delete_statement(loc.file, loc.span)
    out.done(g.file, g.span, f"the global {name} held the module: {plan.names.exec}() takes it as its parameter, "
                             "and every other use is now the module (or state) of the function it is in")


def _owning_variable(out: Emitter, plan: Plan, body: InitBody) -> None:
    """The module variable was a temporary before creation: keep it, owning a reference.

    `m = PyModule_Create(&def)` becomes `m = Py_NewRef(<exec's module>)`, every Py_DECREF
    of it stays, and `return m` releases it before returning 0: the same references as
    before, with the module now made by the import system.
    """
    file, mvar, param = body.file, body.module_var, plan.names.exec_param
    _exec_header(out, plan, body, param)
    _drop_prototypes(out, plan, body)
    if body.create_kind not in ("assign",):
        out.fail("module-var-reused", f"{body.function}() reuses {mvar} before creating the module in a way "
                                      "porter cannot rewrite")
        return
    for span in body.create_statements:
        out.edit(file, span, f"{mvar} = Py_NewRef({param});")
    for span in body.null_checks:
        out.delete_statement(file, span)
    layout = plan.layout(file)
    for r in body.returns:
        if r.value == "null":
            out.edit(file, r.span, "return -1;")
        elif r.value == "module":
            out.edit(file, r.span, cbuild.release_and_succeed(mvar or "", layout.line_indent(r.span.start)))
        else:
            out.fail("unrecognised-return", f"unrecognised return in {body.function}(): {r.text.strip()}")
            return
    for span in body.add_module:
        _drop_statement(out, body, span)
    out.done(file, body.header, f"{body.function}() is now {plan.names.exec}(PyObject *{param}); {mvar}, a temporary "
                                "before the module existed, keeps owning a reference to it")
    _add_objects(out, plan, body)
    _returning_macros(out, plan, body)
    _prologue(out, plan, body, param)
    _created_in_place(out, plan, body)


def _returning_macros(out: Emitter, plan: Plan, body: InitBody) -> None:
    """`#define DEFINE_STRING(S) if (...) return NULL` used in init: its returns change too."""
    for name in body.returning_macros:
        m = next((m for m in plan.module.macros if m.name == name and m.active is not False), None)
        if m is None:
            continue
        elsewhere = [u for u in plan.module.macro_uses if u.name == name and u.function != body.function]
        if elsewhere:
            out.fail("returning-macro-shared", f"macro {name} returns from the init function but is also used in "
                                               f"{elsewhere[0].function or 'file scope'}; porter cannot change its "
                                               "returns")
            return
        text = plan.layout(m.file).text
        toks = m.tokens
        for i, tok in enumerate(toks):
            end = _null_return_end(text, m.body.end, toks, i + 1) if tok.text == b"return" else None
            if end is not None:
                out.edit(m.file, Span(tok.start, end), "return -1")
        released = [loc for macro, loc in body.macro_module_releases if macro == name and loc.file == m.file]
        for loc in released:
            out.edit(loc.file, loc.span, "")
        out.done(m.file, m.span, f"macro {name} is used only in {plan.names.exec}(): its `return NULL` is now "
                                 "`return -1`" + (", and its release of the module goes (exec borrows the module)"
                                                  if released else ""))
        if m.file.endswith(".h"):
            out.todo(m.file, m.span, code="returning-macro-in-header", subject=name, message=
                     f"macro {name} is defined in the header {m.file}: code outside these sources "
                                     "that includes it (other extensions of the package, or of other packages if "
                                     "the header is installed) now returns -1 from its init too, and must be "
                                     "ported as well")


def _null_return_end(text: bytes, body_end: int, toks, i: int) -> int | None:
    """Where `return` ends when `NULL`, `0` or `(NULL)` follows at toks[i] and then a `;`, a
    line continuation or the end of the body (the space up to it included)."""
    if i < len(toks) and toks[i].text in (b"NULL", b"0"):
        last = toks[i]
    elif i + 2 < len(toks) and toks[i].text == b"(" and toks[i + 1].text == b"NULL" and toks[i + 2].text == b")":
        last = toks[i + 2]
    else:
        return None
    end = last.end
    while end < body_end and text[end:end + 1].isspace():
        end += 1
    return end if end >= body_end or text[end:end + 1] in (b";", b"\\") else None


def _exec_header(out: Emitter, plan: Plan, body: InitBody, param: str) -> None:
    if body.header_split is None:
        out.edit(body.file, body.header, cbuild.exec_header(plan.names.exec, param))
        return
    specifiers, declarator = body.header_split
    out.edit(body.file, specifiers, cbuild.EXEC_RETURN_TYPE)
    out.edit(body.file, declarator, cbuild.exec_declarator(plan.names.exec, param))


def _drop_statement(out: Emitter, body: InitBody, span: Span) -> None:
    if span in body.lone_bodies:
        out.edit(body.file, span, "{}")  # the body of an if/else without braces
    else:
        out.delete_statement(body.file, span)


def _add_objects(out: Emitter, plan: Plan, body: InitBody) -> None:
    moved = {key[1] for key in plan.decisions.movable if key[0] is None}
    for call in body.add_objects:
        name = call.value_name
        if name not in moved:
            # OBJECT(&Type): a moved global named inside the value still loses its reference.
            inside = {g.name for g in plan.decisions.movable.values() for u in g.uses
                      if u.file == body.file and call.value.start <= u.span.start < call.value.end}
            if len(inside) != 1:
                continue
            name = inside.pop()
        if not plan.has("PyModule_AddObjectRef"):
            _add_object_limited(out, plan, body, call, name)
            continue
        out.edit(body.file, call.callee, "PyModule_AddObjectRef")
        if call.incref is not None:
            out.delete_statement(body.file, call.incref)
        _unwrap_new_ref(out, plan, body.file, call.value)
        for span in call.failure_decrefs:
            _drop_statement(out, body, span)
        out.done(body.file, call.call, f"PyModule_AddObject({name}) -> PyModule_AddObjectRef: the module "
                                       "state keeps its own reference")


_NEW_REF = re.compile(r"\s*Py_X?NewRef\s*\(")


def _unwrap_new_ref(out: Emitter, plan: Plan, file: str, value: Span) -> None:
    """`PyModule_AddObject(m, "X", Py_NewRef(X))` gave the module the new reference; the
    PyModule_AddObjectRef it becomes takes its own, so the Py_NewRef goes (it would leak one
    reference per load)."""
    text = plan.layout(file).text_of(value)
    m = _NEW_REF.match(text)
    if m is None or not text.rstrip().endswith(")"):
        return
    close = value.start + len(text.rstrip().encode()) - 1
    out.edit(file, Span(value.start, value.start + len(m.group().encode())), "")
    out.edit(file, Span(close, close + 1), "")


def _add_object_limited(out: Emitter, plan: Plan, body: InitBody, call, name: str) -> None:
    """A limited API without PyModule_AddObjectRef (3.10): PyModule_AddObject stays, and the
    module state keeps its own reference through a Py_INCREF (kept, or added before the call)."""
    if call.incref is not None:
        out.done(body.file, call.call, f"PyModule_AddObject({name}) stays (the declared limited API has no "
                                       "PyModule_AddObjectRef): the Py_INCREF before it keeps the state's reference")
        return
    value = f"{plan.names.state_var}->{plan.field((None, name)).name}"
    out.insert(body.file, call.call.start, f"(Py_INCREF({value}), ")
    out.insert(body.file, call.call.end, ")")
    out.done(body.file, call.call, f"PyModule_AddObject({name}) stays (the declared limited API has no "
                                   "PyModule_AddObjectRef) after a Py_INCREF: the module state keeps its own reference")


def _prologue(out: Emitter, plan: Plan, body: InitBody, mvar: str) -> None:
    """At the top of exec: the state, the initial values of moved C data, the heap types."""
    names = plan.names
    lines = []
    creations = [_creation(plan, tp) for tp in creation_order(plan.types) if tp.created_at is None]
    if plan.decisions.needs.get(body.function) or any(f.initial for f in plan.fields) or creations:
        lines.append(cbuild.state_declaration(names.state_type, names.state_var, f"{names.get_state}({mvar})"))
        for f in plan.fields:
            if f.initial is not None:
                lines.append(cbuild.guarded(f"{names.state_var}->{f.name} = {f.initial};", f.guard))
    if names.last_module:
        # For the functions that cannot reach module state: this module, in this interpreter.
        lines.append(f"{names.last_module} = {mvar};")
        lines.append(f"{names.last_module_interp} = PyInterpreterState_Get();")
    lines.extend(c.rstrip("\n") for c in creations)
    if not lines:
        return
    indent = plan.layout(body.file).body_indent(body.body)
    text = "".join(f"\n{indent}{line}" if not line.startswith("#") else f"\n{line}"
                   for block in lines for line in block.split("\n"))
    out.insert(body.file, body.body.start + 1, text, order=-5)


def _created_in_place(out: Emitter, plan: Plan, body: InitBody) -> None:
    """A type whose base init computes is made where its PyType_Ready was."""
    layout = plan.layout(body.file)
    for tp in plan.types:
        r = tp.created_at
        if r is None:
            continue
        with out.about(type_key(tp.name)):
            indent = layout.line_indent(r.statement.start)
            code = "\n".join(indent + line if line and not line.startswith("#") else line
                             for line in _creation(plan, tp).rstrip("\n").split("\n"))
            out.edit(r.file or body.file, layout.whole_lines(r.statement), code + "\n", supersedes=True)


def _creation(plan: Plan, tp) -> str:
    names = plan.names
    target = f"{names.state_var}->{tp.field}"
    if tp.structseq_desc is not None:
        return render("c/type_create.c.jinja", target=target, desc=tp.structseq_desc, module="", spec="", bases="",
                      limited=plan.limited_api is not None)
    create = render("c/type_create.c.jinja", target=target, desc=None, module=names.exec_param,
                    spec=f"{tp.name}_spec", bases=tp.bases, limited=plan.limited_api is not None,
                    tp_name=builtin_name(tp, plan.limited_api), after_creation=tp.after_creation)
    if tp.annotations_from is not None and plan.limited_api is None:
        create += render("c/inherited_annotations.c.jinja", target=target, base=tp.annotations_from[0],
                         base_dict=tp.annotations_from[1], name=tp.name)
    if tp.descriptor is not None:
        create += cbuild.keep_descriptor_call(names.keep_module_descriptor, names.state_var, tp.field,
                                              tp.descriptor.module_name)
    # A type defined only under a condition porter cannot evaluate is made only under it.
    declared = plan.module.file_global(tp.name)
    condition = declared.condition if declared is not None else None
    if condition:
        create = f"#if {condition}\n{create.rstrip(chr(10))}\n#endif\n"
    return create
