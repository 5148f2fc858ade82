"""heap-types: each static PyTypeObject becomes a heap type created per module from a spec.

What: the static initialiser (positional or designated, sub-structs included) becomes
`<Type>_slots[]` and `<Type>_spec`; exec creates the type with
`PyType_FromModuleAndSpec(module, &spec, bases)` (bases first) and keeps it in the module
state; every `&Type` becomes `state->Type`. `Py_TPFLAGS_IMMUTABLETYPE` keeps the type
immutable and `Py_TPFLAGS_DISALLOW_INSTANTIATION` keeps a type without `tp_new` impossible to
instantiate from Python. `tp_base` (in the initialiser or assigned in init) becomes the
bases argument; `tp_dictoffset`, `tp_weaklistoffset` and `tp_vectorcall_offset` become the
`__dictoffset__`, `__weaklistoffset__`, `__vectorcalloffset__` members; defaults a heap type
does not want (`PyObject_GenericGetAttr`, `PyType_GenericAlloc`, an explicit `tp_free`) go.
Dealloc keeps `Py_TYPE(self)`, untracks GC objects first and releases the type after
`tp_free` (unless it releases it already: a dealloc written for heap types too), or after
handing the object to a builtin base's dealloc (`PyList_Type.tp_dealloc(self)`, which frees it
but never releases a heap type), and an
object made by hand (`Py_SET_TYPE` + `_Py_NewReference`) takes that reference, as PyObject_Init
does; GC traverse
visits `Py_TYPE(self)` once (not when it delegates to a base's traverse). Struct sequences
come from `PyStructSequence_NewType`. Types the module already
makes with `PyType_FromSpec` and keeps in globals are made with `PyType_FromModuleAndSpec`.

Why: static types are shared by every interpreter; a module is not isolated until each of
its types is created per module (PEP 630).

A type that inherits `__annotations__` from a base's members or getset and defines none
itself keeps the base's descriptor in its own dict: a heap type answers `T.__annotations__`
by storing an empty dict in its own dict (a static type raises AttributeError), which then
hides the descriptor from its instances (wrapt's FunctionWrapper forwards `__annotations__`
to the wrapped function that way).

Fix safety: safe. A type with a metaclass, a `tp_vectorcall`, an initialiser porter could
only partly read, or one exported to other files or modules stays static and is reported.

Known problems: a converted type whose instances get `__annotations__` only from its
`tp_getattro` (forwarding it, with no member or getset) still gets an empty dict in its own
dict once `T.__annotations__` is read, and that dict then answers for its instances.
"""

from __future__ import annotations

import re

from porter import capi
from porter.analyze.initializers import is_null, referenced_name
from porter.model import Function, Global, GlobalKind, InitStyle, Span, c_name
from porter.render import render
from porter.rewrite import cbuild
from porter.rewrite.emit import Emitter, StepResult
from porter.rewrite.plan import Plan
from porter.rewrite.planning.decide import init_spec_helpers
from porter.rewrite.planning.gc import GcPlan
from porter.rewrite.planning.own_type import freed_through_own_type
from porter.rewrite.planning.types import TypePlan, builtin_name, builtins_spec_name
from porter.rewrite.planning.vetoes import initializer_owner
from porter.rewrite.vocab import Applicability


def type_key(name: str) -> tuple:
    return ("global", None, name)


class HeapTypes:
    id = "heap-types"

    def run(self, plan: Plan) -> StepResult:
        out = Emitter(self.id, plan)
        _spec_types(out, plan)
        _spec_helpers(out, plan)
        visited: set[str] = set()
        for tp in plan.types:
            with out.about(type_key(tp.name)), out.applied_as(tp.applicability):
                _convert(out, plan, tp, visited)
        for tp in plan.types:
            with out.about(type_key(tp.name)):
                _forward_declarations(out, plan, tp)
        if any(not tp.structseq_desc for tp in plan.types):
            for f in plan.module.functions:
                _reference_type_set_by_hand(out, plan, f)
        return out.result


def _reference_type_set_by_hand(out: Emitter, plan: Plan, f) -> None:
    """An object made by hand (`Py_SET_TYPE(op, tp); _Py_NewReference(op);`) holds a reference
    to a heap type, as PyObject_Init gives it, since its dealloc now releases one."""
    layout = plan.layout(f.file)
    for statement, tp in f.sets_type_by_hand:
        if not re.fullmatch(r"[A-Za-z_]\w*", tp):
            out.todo(f.file, statement, code="type-set-by-hand", subject=f.name, message=
                     f"{f.name}() makes an object by hand with type {tp}: if that is now a heap type, "
                     "the object must hold a reference to it (Py_INCREF after Py_SET_TYPE), as its "
                     "dealloc releases one")
            continue
        indent = layout.line_indent(statement.start)
        out.insert(f.file, statement.end, f"\n{indent}if ({tp}->tp_flags & Py_TPFLAGS_HEAPTYPE) {{\n"
                                          f"{indent}    Py_INCREF({tp});\n{indent}}}")
        out.done(f.file, statement, f"{f.name}() makes objects by hand: they now hold a reference to a heap "
                                    "type, as PyObject_Init gives one since 3.8, which their dealloc releases")


def _convert(out: Emitter, plan: Plan, tp: TypePlan, visited: set[str]) -> None:
    t = tp.type
    if tp.partly_read:
        out.done(t.file, t.span, f"{t.name}: converted from the #if branches porter read for CPython 3.12 on "
                                 "Linux (--unsafe); check the slots of other configurations by hand",
                 applicability=Applicability.UNSAFE)
    if tp.structseq_desc is not None:
        out.delete_statement(t.file, t.span)
        _drop_readies(out, plan, tp)
        out.done(t.file, t.span, f"{t.name}: PyStructSequence_InitType2 -> PyStructSequence_NewType, kept in "
                                 "module state")
        return
    body = plan.module.init_body
    assert body is not None
    for a in tp.folded_assignments:
        out.delete_statement(a.file or body.file, a.statement)
    code = ""
    if tp.descriptor is not None:
        code = _descriptor_code(out, plan, tp)
    if tp.descriptor_read is not None:
        read = tp.descriptor_read
        places = "; ".join(f"{r.file}:{r.line} getattr({r.target}, '__module__')"
                           for r in plan.module.python_module_reads[:5])
        out.todo(t.file, t.span, code="module-descriptor-python", subject=t.name, message=
                 f"{t.name} keeps its __module__ descriptor in its dict, as "
                                 f"{read.file}:{read.line} expects (--unsafe); {read.owner}.__module__ now "
                                 "answers that descriptor instead of the module name: Python code that "
                                 f"reads the module of {read.owner} itself must special-case it"
                 + (f" (code that reads any object's __module__: {places})" if places else ""),
                 applicability=Applicability.UNSAFE)
    if tp.extend_members:
        _extend_members(out, plan, tp)
    if tp.annotations_from is not None:
        _inherited_annotations(out, plan, tp)
    kept = builtin_name(tp, plan.limited_api)
    spec = render("c/type_spec.c.jinja", members=[{"name": n, "offset": o} for n, o in tp.members],
                  members_name=tp.members_name or "", include_structmember=tp.include_structmember,
                  spec_storage=tp.spec_storage, slots_name=f"{t.name}_slots",
                  slots=[{"id": s.id, "value": s.value, "guard": s.guard} for s in tp.slots],
                  spec_name=f"{t.name}_spec", name=builtins_spec_name(kept) if kept else tp.spec_name,
                  basicsize=tp.basicsize, itemsize=tp.itemsize, flags=tp.flags)
    if kept:
        out.done(t.file, t.span, f"{t.name}: tp_name {kept} has no module part; the spec names it "
                                 f"{builtins_spec_name(kept)} and exec sets tp_name back to {kept}, so "
                                 f"{t.name}.__module__ stays 'builtins', and its repr and messages are unchanged")
    elif tp.undotted_name is not None:
        out.done(t.file, t.span, f"{t.name}: tp_name {tp.undotted_name} has no module part; the spec names it "
                                 f'{tp.spec_name}, so {t.name}.__module__ is now {plan.module.name!r} instead of '
                                 "'builtins' (review: its repr changes too)")
    spec = code + (cbuild.gc_functions(tp.gc) if isinstance(tp.gc, GcPlan) else "") + spec
    if tp.before_init:
        # Slots init filled at run time may name functions defined after the type.
        out.edit(t.file, plan.layout(t.file).whole_lines(t.span), "", supersedes=True)
        layout = plan.layout(body.file)
        out.insert(body.file, layout.line_start(body.header.start), spec.rstrip("\n") + "\n\n", order=-20)
    else:
        out.edit(t.file, t.span, spec.rstrip("\n"), supersedes=True)
    for var in tp.substructs:
        _drop_substruct(out, plan, var)
    _drop_readies(out, plan, tp)
    _fix_dealloc(out, plan, tp, visited)
    _fix_traverse(out, plan, tp, visited)
    # A module multi-phase already fills itself in its own exec function.
    body = plan.module.init_body
    exec_name = body.function if body is not None and plan.module.init_style is InitStyle.MULTI_PHASE \
        else plan.names.exec
    out.done(t.file, t.span, f"{t.name} is a heap type: {t.name}_spec, created in {exec_name}() and kept in "
                             f"{plan.names.state_type}.{tp.field}; flags {tp.flags}")
    if isinstance(tp.gc, str):
        out.todo(t.file, t.span, code="type-gc-missing", subject=t.name, message=
                 f"{t.name} has no GC support and porter did not add it: {tp.gc}; its "
                                 "instances now keep their heap type alive, so if they own objects add "
                                 "Py_TPFLAGS_HAVE_GC with tp_traverse (visiting Py_TYPE(self)) and tp_clear")


def _inherited_annotations(out: Emitter, plan: Plan, tp: TypePlan) -> None:
    t = tp.type
    assert tp.annotations_from is not None
    base = tp.annotations_from[0]
    if plan.limited_api is None:
        out.done(t.file, t.span, f"{t.name} keeps the __annotations__ descriptor it inherits from {base} in its own "
                                 f"dict ({plan.names.exec}() puts it there): a heap type would store an empty "
                                 f"dict there the first time {t.name}.__annotations__ is read, hiding the "
                                 f"descriptor from instances; review: {t.name}.__annotations__ is now that "
                                 "descriptor instead of an AttributeError")
        return
    out.todo(t.file, t.span, code="type-inherited-annotations", subject=t.name, message=
             f"{t.name} inherits __annotations__ from {base}'s members or getset, and as a heap type it "
                             f"stores an empty dict in its own dict the first time {t.name}.__annotations__ "
                             "is read, which hides that descriptor from its instances; the limited API "
                             "cannot reach the type's dict to keep the descriptor there")


def _forward_declarations(out: Emitter, plan: Plan, tp: TypePlan) -> None:
    t = tp.type
    body = plan.module.init_body
    assert body is not None
    same_unit = plan.module.translation_unit(body.file)
    shared = False
    for loc in t.forward_declarations:
        # A header exec's file includes (or the state's header, which the port makes it include),
        # or exec's unit's own `extern` of it.
        state_header = plan.placement is not None and plan.placement.file == loc.file
        shows_exec = loc.file in same_unit or state_header
        if t.file not in same_unit and shows_exec and not shared and not t.structseq:
            # The header that made the type visible to exec's file now shows its spec.
            out.edit(loc.file, loc.span, f"extern PyType_Spec {t.name}_spec;")
            shared = True
        else:
            out.delete_statement(loc.file, loc.span)
    if t.file not in same_unit and not shared and not t.structseq:
        # Nothing shows the type to exec's file (mercurial's dirs.c keeps `dirsType` static and
        # readies it in its own dirs_module_init()): exec's file declares the spec itself.
        layout = plan.layout(body.file)
        out.insert(body.file, layout.line_start(body.header.start), f"extern PyType_Spec {t.name}_spec;\n\n",
                   order=-21)


def _descriptor_code(out: Emitter, plan: Plan, tp: TypePlan) -> str:
    """Wrappers that serve `__module__` to instances from the saved descriptor."""
    t, d, names = tp.type, tp.descriptor, plan.names
    assert d is not None
    out.done(t.file, t.span, f"{t.name} defines a __module__ descriptor: {t.name}.__module__ keeps answering "
                             f"the module name from the type's dict and {d.getattro}/{d.setattro} serve the "
                             f"descriptor to instances; review: {t.name}.__dict__['__module__'] is now that "
                             "name (no Python file of the package reads it)")
    return render("c/module_attribute.c.jinja", shared=d.with_helpers, find_descriptor=names.module_descriptor,
                  keep_descriptor=names.keep_module_descriptor, state_type=names.state_type,
                  get_state_by_type=names.get_state_by_type, field=plan.module_attribute_field,
                  getattro=d.getattro, setattro=d.setattro, old_getattro=d.old_getattro,
                  old_setattro=d.old_setattro, old_get_self=d.old_get_self, old_set_self=d.old_set_self)


def made_with_module(out: Emitter, file: str, call: Span, args: tuple[Span, ...], creator: str,
                     module: str) -> None:
    """`PyType_FromSpec(&spec)` or `PyType_FromSpecWithBases(&spec, bases)` becomes
    `PyType_FromModuleAndSpec(module, &spec, bases or NULL)`."""
    out.edit(file, Span(call.start, args[0].start), f"PyType_FromModuleAndSpec({module}, ")
    if creator == "PyType_FromSpec":
        out.edit(file, Span(args[0].end, call.end), ", NULL)")


def _spec_types(out: Emitter, plan: Plan) -> None:
    """Types the module already makes from a spec are made with the module from now on."""
    mvar = plan.names.exec_param
    for s in plan.spec_types:
        with out.about(type_key(s.global_name)):
            if s.creator in ("PyType_FromSpec", "PyType_FromSpecWithBases"):
                made_with_module(out, s.file, s.call, s.args, s.creator, mvar)
            else:
                out.edit(s.file, s.args[0 if s.creator == "PyType_FromModuleAndSpec" else 1], mvar)
            out.done(s.file, s.call, f"{s.global_name} is made with the module ({s.creator} -> "
                                     "PyType_FromModuleAndSpec): its methods and slots find module state through "
                                     "their type")


def _spec_helpers(out: Emitter, plan: Plan) -> None:
    """A helper of init that makes a heap type from the spec it is given makes it with the
    module it is given too."""
    for h in init_spec_helpers(plan.module):
        with out.about(("function", h.function)):
            made_with_module(out, h.file, h.call, h.args, h.creator, h.module_param)
        out.done(h.file, h.call, f"{h.function}() makes the types of the specs it is given with the module it is "
                                 f"given ({h.creator} -> PyType_FromModuleAndSpec): their methods and slots find "
                                 "module state through their type", key=("function", h.function))


def _drop_readies(out: Emitter, plan: Plan, tp: TypePlan) -> None:
    body = plan.module.init_body
    assert body is not None
    for r in tp.readies:
        if r != tp.created_at:  # exec-slot makes the type there
            out.delete_statement(r.file or body.file, r.statement)


def _drop_substruct(out: Emitter, plan: Plan, var: str) -> None:
    """A sub-struct that only converted types' initialisers and init name: the specs' slots
    now hold it. A type that stays static still points at it, so then it stays."""
    module = plan.module
    g = next((g for g in module.globals if g.name == var and g.function is None
              and g.kind is GlobalKind.TYPE_SUBSTRUCT), None)
    if g is None or module.init_body is None:
        return
    converted = {tp.name for tp in plan.types}
    # `T.tp_as_sequence = &seq;` statements that now live in the spec, in init or in a helper
    # only init calls (mercurial's dirs_module_init()).
    folded = [(a.file or module.init_body.file, a.statement) for tp in plan.types for a in tp.folded_assignments]
    if all(u.function == module.init_body.function
           or (u.function is None and initializer_owner(module, u) in converted)
           or any(file == u.file and span.start <= u.span.start < span.end for file, span in folded)
           for u in g.uses if u.access != "macro"):
        out.delete_statement(g.file, g.declaration)


def _extend_members(out: Emitter, plan: Plan, tp: TypePlan) -> None:
    g = next(g for g in plan.module.globals if g.name == tp.extend_members and g.function is None)
    layout = plan.layout(g.file)
    sentinel = g.table_rows[-1]
    indent = layout.line_indent(sentinel.start)
    out.insert(g.file, sentinel.start, "".join(cbuild.offset_member_row(name, offset) + "\n" + indent
                                               for name, offset in tp.member_rows))
    if tp.extend_members_include:
        out.insert(g.file, layout.line_start(g.declaration.start), cbuild.structmember_include() + "\n")


def _type_global(plan: Plan, t) -> Global | None:
    first = plan.module.file_global(t.name)  # by a dict: asked once per type, of thousands of globals
    if first is not None and first.kind is GlobalKind.STATIC_TYPE:
        return first
    return next((g for g in plan.module.globals
                 if g.name == t.name and g.kind is GlobalKind.STATIC_TYPE and g.function is None), None)


def _builtin_base_deallocs(plan: Plan, f: Function) -> tuple[Span, ...]:
    """`PyList_Type.tp_dealloc(self);` in a dealloc: the builtin base's dealloc frees the object
    through tp_free and, written for static types, never releases a heap type: the subclass's
    dealloc must, after it. A base of the module's own (a global) is left to its own dealloc."""
    return tuple(span for span, base in f.base_deallocs
                 if plan.module.file_global(base) is None and re.fullmatch(r"Py\w+_Type", base))


def _fix_dealloc(out: Emitter, plan: Plan, tp: TypePlan, done: set[str]) -> None:
    t, tp_var = tp.type, plan.names.type_var
    value = tp.value("tp_dealloc", "0") or "0"
    name = referenced_name(value)
    if not name or is_null(value):
        return  # the heap type's default dealloc releases the type itself
    f = plan.module.function_in(t.file, name)
    if f is None:
        out.todo(t.file, t.span, code="dealloc-not-editable", subject=name, message=
                 f"{t.name}'s dealloc {name} is not a function porter can edit: it must "
                                 "Py_DECREF(Py_TYPE(self)) after freeing")
        return
    if f.name in done:
        return
    done.add(f.name)
    self_name = f.params[0].name if f.params else None
    if not self_name:
        out.fail("dealloc-without-self", f"{name}() has no named self parameter")
        return
    layout = plan.layout(f.file)
    indent = layout.body_indent(f.body)
    gc = "Py_TPFLAGS_HAVE_GC" in tp.value("tp_flags")
    if f.releases_type:
        # Written for heap types already (`if (tp->tp_flags & Py_TPFLAGS_HEAPTYPE) Py_DECREF(tp);`):
        # a second release would free the type while instances still use it.
        if gc and not f.untracks_first:
            out.insert(f.file, f.body.start + 1, f"\n{indent}PyObject_GC_UnTrack({self_name});", order=-7)
        out.done(f.file, f.header, f"{name}() already releases its object's type, as a heap type's dealloc must"
                 + (" (it now untracks the object first)" if gc and not f.untracks_first else ""))
        return
    frees = f.frees + _builtin_base_deallocs(plan, f)
    prologue = f"\n{indent}PyTypeObject *{tp_var} = Py_TYPE({self_name});" if frees else ""
    if gc and not f.untracks_first:
        prologue += f"\n{indent}PyObject_GC_UnTrack({self_name});"
    if prologue:
        out.insert(f.file, f.body.start + 1, prologue, order=-7)
    if not frees:
        deallocs = {referenced_name(tt.slot_text("tp_dealloc") or "") for tt in plan.module.static_types}
        if not any(c_name(c.callee) in deallocs for c in f.calls):
            out.todo(f.file, f.header, code="dealloc-frees-nothing", subject=name, message=
                     f"{name}() frees no object porter can see: after freeing it must "
                                       "Py_DECREF(Py_TYPE(self))")
        return
    for span in frees:
        out.insert(f.file, span.end, f"\n{layout.line_indent(span.start)}Py_DECREF({tp_var});")
    t_global = _type_global(plan, t)
    if t_global is not None:
        for u in t_global.uses:
            if freed_through_own_type(u, t_global, plan.module) and u.function == f.name \
                    and u.shape_span is not None:
                # `T.tp_free(self)`: the type the object has, kept before freeing.
                out.edit(f.file, u.shape_span, f"{tp_var}->")
    # PyObject_Del(self) frees a Python subclass's instance (which has a GC header) wrongly.
    rewritten = False
    for call in f.calls:
        if call.callee in capi.INSTANCE_FREE_FUNCTIONS and any(s.start <= call.span.start < s.end for s in f.frees):
            out.edit(f.file, Span(call.span.start, call.span.start + len(call.callee)), cbuild.free_call(plan, tp_var))
            rewritten = True
    out.done(f.file, f.header, f"{name}() releases the heap type after tp_free"
             + (" (instead of calling the allocator's free directly)" if rewritten else "")
             + (" and untracks the object first" if gc and not f.untracks_first else ""))


def _fix_traverse(out: Emitter, plan: Plan, tp: TypePlan, done: set[str]) -> None:
    if not tp.flagged_gc:
        return
    value = tp.value("tp_traverse", "0") or "0"
    name = referenced_name(value)
    f = plan.module.function_in(tp.type.file, name or "")
    if f is None or name is None or f.name in done:
        return
    done.add(f.name)
    traverses = {referenced_name(other.type.slot_text("tp_traverse") or "") for other in plan.types}
    if any(c_name(c.callee) in traverses and c.callee != f.name for c in f.calls):
        return  # it delegates to a base's traverse, which visits the type
    self_name = f.params[0].name if f.params else None
    if not self_name:
        return
    indent = plan.layout(f.file).body_indent(f.body)
    out.insert(f.file, f.body.start + 1, f"\n{indent}Py_VISIT(Py_TYPE({self_name}));", order=-7)
