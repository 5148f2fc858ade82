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
`tp_free`; GC traverse visits `Py_TYPE(self)` once (not when it delegates to a base's
traverse). Struct sequences come from `PyStructSequence_NewType`.

Why: static types are shared by every interpreter; a module is not isolated until each of
its types is created per module (PEP 630).

Fix safety: safe. A type with a metaclass, a `tp_vectorcall`, an initialiser porter could
only partly read, or one exported to other files or modules stays static and is reported.
"""

from __future__ import annotations

import re

from porter import capi, conditions
from porter.analyze.initializers import is_null, referenced_name, string_value
from porter.model import ExtensionModule, GlobalKind, Span, StaticType
from porter.render import render
from porter.rewrite.context import PortContext, fresh_name, include_closure
from porter.rewrite.edits import Applicability
from porter.rewrite.steps.gc_support import GcPlan, gc_functions, plan_gc

# Slots a heap type gets right by default: writing them out only gets in the way.
DROPPED_DEFAULTS = {
    "tp_getattro": {"PyObject_GenericGetAttr"},
    "tp_alloc": {"PyType_GenericAlloc"},
    "tp_free": {"PyObject_Del", "PyObject_Free", "PyObject_GC_Del", "PyObject_DEL", "PyObject_FREE"},
}
# Freeing an instance directly instead of through its type's tp_free.
FREE_FUNCTIONS = ("PyObject_Del", "PyObject_DEL", "PyObject_Free", "PyObject_FREE", "PyObject_GC_Del")
# Spec fields rather than slots.
SPEC_FIELDS = ("ob_base", "tp_name", "tp_basicsize", "tp_itemsize", "tp_flags", "tp_base",
               "tp_as_async", "tp_as_number", "tp_as_sequence", "tp_as_mapping", "tp_as_buffer")
OFFSET_MEMBERS = {"tp_dictoffset": "__dictoffset__", "tp_weaklistoffset": "__weaklistoffset__",
                  "tp_vectorcall_offset": "__vectorcalloffset__"}
# Fields a static type must leave empty for a heap type to be equivalent.
MUST_BE_EMPTY = ("tp_dict", "tp_bases", "tp_mro", "tp_cache", "tp_subclasses", "tp_weaklist",
                 "tp_version_tag")
NOT_A_SLOT = ("tp_vectorcall",)  # Py_tp_vectorcall only exists from 3.14


def convertible_types(module: ExtensionModule, unsafe: bool) -> dict[str, str | None]:
    """For each static type: None if it can become a heap type, else why not."""
    # A type declared in the module's own header is still the module's: extension modules are
    # loaded with RTLD_LOCAL, so other modules reach it only through a capsule, and a capsule
    # table naming it is a use porter cannot rewrite (it keeps the type static).
    return {t.name: _why_not(t, module, unsafe) for t in module.static_types}


def _why_not(t: StaticType, module: ExtensionModule, unsafe: bool) -> str | None:
    if t.structseq:
        return None
    if t.initializer is None:
        return "no initialiser porter could read"
    body = module.init_body
    if body is not None and t.file not in include_closure(module, body.file) \
            and not any(loc.file.endswith(".h") for loc in t.forward_declarations):
        return (f"it is defined in {t.file}, and no header shows it to {body.file}, where exec "
                "would create it from a spec")
    if t.metatype and t.metatype.replace(" ", "") not in ("&PyType_Type",) and not _deferred(t.metatype, module):
        return (f"its metatype is {t.metatype}: a heap type with a custom metaclass needs "
                "PyType_FromMetaclass (3.12+), and ports must build on 3.11")
    for name in MUST_BE_EMPTY + NOT_A_SLOT:
        s = t.slot(name)
        if s is not None and not is_null(s.text):
            return f"{name} is set; heap types cannot take it on every supported Python"
    read = module_descriptor_read(t, module)
    if read is not None and not unsafe:
        return (f"its members or getset define __module__, and {read.file}:{read.line} reads "
                f"{read.owner}.__dict__['__module__']: a heap type cannot keep that descriptor "
                f"in its dict while {read.owner}.__module__ stays the module name, so the "
                "Python side needs a change first (--unsafe keeps the descriptor in the dict and "
                f"lets {read.owner}.__module__ change)")
    for a in (module.init_body.field_assignments if module.init_body else ()):
        if a.target == t.name and not _foldable(a.field, a.value):
            return (f"init sets {t.name}.{a.field} = {a.value.strip()}, which is not a constant "
                    "a PyType_Slot table can hold")
    if t.conditional and not unsafe:
        if _unreadable_conditionals(t, module):
            return "an #if inside its initialiser hides slots porter cannot map (use --unsafe to convert the analysed branch)"
    return None


def python_name(t: StaticType) -> str:
    """The class name Python code knows the type by: tp_name after its last dot."""
    slot = t.slot("tp_name")
    value = string_value(slot.text) if slot is not None else None
    return value.rsplit(".", 1)[-1] if value else t.name


def module_descriptor_read(t: StaticType, module: ExtensionModule):
    """Python code of the package reading `Type.__dict__['__module__']` of a type whose
    members or getset define `__module__`: that code expects the descriptor there."""
    if not defines_module_attribute(t, module):
        return None
    return next((r for r in module.python_dict_reads
                 if r.key == "__module__" and r.owner == python_name(t)), None)


def serves_module_descriptor(t: StaticType, module: ExtensionModule) -> bool:
    """Whether the port keeps the module name in the type's dict and serves the descriptor
    to instances (a `__module__` member or getset nobody reads from the dict)."""
    return defines_module_attribute(t, module) and module_descriptor_read(t, module) is None


def defines_module_attribute(t: StaticType, module: ExtensionModule) -> bool:
    """A `__module__` member or getset: a heap type reads `T.__module__` from its dict."""
    for slot_name in ("tp_members", "tp_getset"):
        table = referenced_name(t.slot(slot_name).text) if t.slot(slot_name) else None
        g = next((g for g in module.globals if g.name == table and g.function is None), None)
        if g is not None and '"__module__"' in g.initializer_text:
            return True
    return False


def _deferred(text: str, module: ExtensionModule) -> bool:
    """`DEFERRED_ADDRESS(&PyType_Type)`: a project macro that expands to 0."""
    from porter.analyze.macros import MacroTable, expand, split_args

    m = re.match(r"\s*(\w+)\s*\(", text)
    if not m:
        return False
    args, _ = split_args(text.encode(), text.index("("))
    expansion = expand(MacroTable(list(module.macros)), m.group(1), args)
    return expansion is not None and is_null(expansion)


# `T.tp_new = PyBaseObject_Type.tp_new` before PyType_Ready: what a heap type inherits anyway.
INHERITED = {("tp_new", "PyBaseObject_Type.tp_new")}


def _foldable(field: str, value: str) -> bool:
    """Whether a value assigned in init can go into a static slots table or spec."""
    v = value.strip()
    if (field, v.replace(" ", "")) in INHERITED or is_null(v):
        return True
    if referenced_name(v) is not None:
        return True
    # Sizes, offsets, flags and names are constant expressions unless they read memory.
    rest = re.sub(r"\b(offsetof|sizeof)\s*\([^()]*(\([^()]*\)[^()]*)*\)", "0", v)
    return not re.search(r"->|\w\s*\.\s*[A-Za-z_]|\w\s*\(", rest)


def _unreadable_conditionals(t: StaticType, module: ExtensionModule) -> bool:
    """Whether a masked #if in the initialiser may change which slot a positional value fills.

    Designated initialisers name their slots; a positional one is safe when every branch of
    each masked #if holds the same number of values.
    """
    for cond, kept, counts in t.conditional_groups:
        if kept is not None and _same_for_all_targets(cond, kept):
            continue
        if any(s.span.start < cond.span.start and cond.span.end <= s.span.end for s in t.slots):
            continue  # inside one value: it does not move the values after it
        if t.positional and len(set(counts)) != 1:
            return True
    return False


class HeapTypes:
    id = "heap-types"

    def run(self, ctx: PortContext) -> None:
        # Steps are shared by every run: what one run learns is reset here.
        self._structmember_done: set[str] = set()
        taken = set(ctx.module.names_in_use)
        self._find = fresh_name(f"{ctx.names.base}_module_descriptor", taken)
        self._keep = fresh_name(f"{ctx.names.base}_keep_module_descriptor", taken)
        self._shared_files: set[str] = set()
        module = ctx.module
        moved = ctx.decisions.movable
        self._spec_types(ctx)
        types = {t.name: t for t in module.static_types if (None, t.name) in moved}
        if not types:
            return
        fields = {f.key[1]: f for f in ctx.fields if f.is_type}
        fns = {f.name: f for f in module.functions}
        body = module.init_body
        assigns = [a for a in (body.field_assignments if body else ())]
        substruct_of = {var: (t.name, field) for t in types.values() for field, var in t.substructs}
        # `T.tp_as_sequence = &seq;` in init links a sub-struct too (its fields may be set there).
        linked: dict[str, list[str]] = {}
        for a in assigns:
            if a.target in types and a.field in capi.SUBSTRUCT_OF_FIELD:
                var = referenced_name(a.value)
                if var:
                    substruct_of[var] = (a.target, a.field)
                    linked.setdefault(a.target, []).append(var)
        creations: dict[str, tuple[str, list[str]]] = {}
        tp_var = next(n for n in ("tp", "self_type", "dealloc_type") if n not in module.names_in_use)
        ctx.dealloc_type_var = tp_var
        visited_fns: set[str] = set()
        for t in types.values():
            # A type converted only because of --unsafe: its edits say so.
            partly_read = bool(t.conditional and _unreadable_conditionals(t, module))
            read = module_descriptor_read(t, module)
            ctx.applicability = Applicability.UNSAFE if partly_read or read else Applicability.SAFE
            if partly_read:
                ctx.item(self.id, Applicability.UNSAFE, t.file, t.span,
                         f"{t.name}: converted from the #if branches porter read for CPython 3.12 on "
                         "Linux (--unsafe); check the slots of other configurations by hand")
            if t.structseq:
                ready = next((r for r in body.type_readies if r.type_name == t.name and r.structseq_desc), None)
                if ready is None:
                    ctx.fail(f"{t.name}: no PyStructSequence_InitType2 call in the init function")
                    return
                creations[t.name] = (render("c/type_create.c.jinja", target=f"{ctx.names.state_var}->{fields[t.name].name}",
                                            desc=ready.structseq_desc, module="", spec="", bases=""), [])
                ctx.edit(t.file, ctx.statement_span_with_line(t.file, t.span), "", self.id)
                self._drop_readies(ctx, body, t)
                ctx.item(self.id, Applicability.SAFE, t.file, t.span,
                         f"{t.name}: PyStructSequence_InitType2 -> PyStructSequence_NewType, kept in module state")
                continue
            slots = {s.name: s for s in t.slots if not _deferred(s.text, module)}
            values = {name: s.text.strip() for name, s in slots.items()}
            guards = {name: self._guard(ctx, t, s) for name, s in slots.items()}
            sub_values = {s.name: s.text.strip() for s in t.substruct_slots}
            sub_guards = {s.name: self._guard(ctx, t, s) for s in t.substruct_slots}
            inherited: set[str] = set()
            for a in assigns:
                if a.target == t.name:
                    if (a.field, a.value.strip().replace(" ", "")) in INHERITED:
                        values.pop(a.field, None)
                        inherited.add(a.field)
                    else:
                        values[a.field] = a.value.strip()
                    guards[a.field] = None
                    f = a.file or body.file
                    ctx.edit(f, ctx.statement_span_with_line(f, a.statement), "", self.id)
                elif a.target in substruct_of and substruct_of[a.target][0] == t.name:
                    sub_values[a.field] = a.value.strip()
                    f = a.file or body.file
                    ctx.edit(f, ctx.statement_span_with_line(f, a.statement), "", self.id)
            base = values.get("tp_base")
            bases = "NULL"
            deps: list[str] = []
            if base and not is_null(base):
                base_name = referenced_name(base)
                if base_name in types:
                    bases = f"(PyObject *){ctx.names.state_var}->{fields[base_name].name}"
                    deps.append(base_name)
                else:
                    bases = f"(PyObject *){base.strip()}" if not base.strip().startswith("(PyObject") else base
            module_attr_code = ""
            if serves_module_descriptor(t, module) and ctx.module_attribute_field:
                module_attr_code = self._module_attribute(ctx, t, values, types, assigns)
            if read is not None:
                places = "; ".join(f"{r.file}:{r.line} getattr({r.target}, '__module__')"
                                   for r in module.python_module_reads[:5])
                ctx.item(self.id, Applicability.UNSAFE, t.file, t.span,
                         f"{t.name} keeps its __module__ descriptor in its dict, as "
                         f"{read.file}:{read.line} expects (--unsafe); {read.owner}.__module__ now "
                         "answers that descriptor instead of the module name: Python code that "
                         f"reads the module of {read.owner} itself must special-case it"
                         + (f" (code that reads any object's __module__: {places})" if places else ""),
                         done=False)
            gc = plan_gc(ctx, t, values, types, self._inherits_gc(t, values, types, assigns), taken)
            if isinstance(gc, GcPlan):
                ctx.gc_plans[t.name] = gc
                values["tp_flags"] = _with_flag(values.get("tp_flags", "Py_TPFLAGS_DEFAULT"), "Py_TPFLAGS_HAVE_GC")
                values["tp_traverse"], values["tp_clear"] = gc.traverse, gc.clear
                guards["tp_traverse"] = guards["tp_clear"] = None
            spec_slots, members = self._slots(t, values, guards, sub_values, sub_guards)
            existing_members = referenced_name(values.get("tp_members", "")) if not is_null(values.get("tp_members", "0")) else None
            members_name = None
            include_structmember = False
            if members:
                if existing_members:
                    self._extend_members(ctx, t, existing_members, members)
                    members = []
                else:
                    members_name = f"{t.name}_members"
                    spec_slots.append({"id": "Py_tp_members", "value": members_name, "guard": None})
                include_structmember = self._ensure_structmember(ctx, t.file)
            flags = self._flags(values, t, inherited)
            spec = render(
                "c/type_spec.c.jinja", members=members, members_name=members_name or "",
                include_structmember=include_structmember,
                # exec in another file creates the type: the spec must be visible there.
                spec_storage="" if t.file not in include_closure(module, body.file) else "static ",
                slots_name=f"{t.name}_slots", slots=spec_slots, spec_name=f"{t.name}_spec",
                name=self._spec_name(ctx, t, values),
                basicsize=values.get("tp_basicsize", "0"), itemsize=values.get("tp_itemsize", "0"),
                flags=flags,
            )
            spec = module_attr_code + (gc_functions(gc) if isinstance(gc, GcPlan) else "") + spec
            nl = ctx.newline(t.file)
            folded = any(a.target == t.name and a.field not in SPEC_FIELDS
                         and a.field not in OFFSET_MEMBERS and a.field not in ("tp_doc", "tp_flags")
                         for a in assigns)
            if folded and t.file == body.file:
                # Slots init filled at run time may name functions defined after the type:
                # the spec goes right before the function that creates the type.
                ctx.edit(t.file, ctx.statement_span_with_line(t.file, t.span), "", self.id, supersedes=True)
                at = ctx.text(body.file).rfind(b"\n", 0, body.header.start) + 1
                ctx.insert(body.file, at, spec.rstrip("\n").replace("\n", nl) + nl + nl, self.id, order=-20)
            else:
                ctx.edit(t.file, t.span, spec.rstrip("\n").replace("\n", nl), self.id, supersedes=True)
            create = render(
                "c/type_create.c.jinja", target=f"{ctx.names.state_var}->{fields[t.name].name}",
                desc=None, module=ctx.exec_param, spec=f"{t.name}_spec", bases=bases)
            if module_attr_code:
                create += (f"if ({self._keep}({ctx.names.state_var}, {ctx.names.state_var}->"
                           f"{fields[t.name].name}, \"{_module_name(values)}\") < 0) {{\n    return -1;\n}}\n")
            creations[t.name] = (create, deps)
            for var in {v for _, v in t.substructs} | set(linked.get(t.name, ())):
                self._drop_substruct(ctx, var, types)
            self._drop_readies(ctx, body, t)
            self._fix_dealloc(ctx, t, values, fns, tp_var, visited_fns)
            self._fix_traverse(ctx, t, values, fns, types, visited_fns)
            ctx.item(self.id, Applicability.SAFE, t.file, t.span,
                     f"{t.name} is a heap type: {t.name}_spec, created in {ctx.names.exec}() and kept in "
                     f"{ctx.names.state_type}.{fields[t.name].name}; flags {flags}")
            if isinstance(gc, str):
                ctx.item(self.id, Applicability.MANUAL, t.file, t.span,
                         f"{t.name} has no GC support and porter did not add it: {gc}; its "
                         "instances now keep their heap type alive, so if they own objects add "
                         "Py_TPFLAGS_HAVE_GC with tp_traverse (visiting Py_TYPE(self)) and tp_clear",
                         done=False)
        ctx.applicability = Applicability.SAFE
        same_unit = include_closure(module, body.file)
        for t in types.values():
            shared = False
            for loc in t.forward_declarations:
                if t.file not in same_unit and loc.file.endswith(".h") and not shared and not t.structseq:
                    # The header that made the type visible to exec's file now shows its spec.
                    ctx.edit(loc.file, loc.span, f"extern PyType_Spec {t.name}_spec;", self.id)
                    shared = True
                else:
                    ctx.edit(loc.file, ctx.statement_span_with_line(loc.file, loc.span), "", self.id)
            if t.file not in same_unit and not shared and not t.structseq:
                ctx.fail(f"{t.name} is defined in {t.file} but created in {body.file}, and no "
                         "header declares it there")
        for name in _dependency_order(creations):
            ctx.exec_prologue.append(creations[name][0].rstrip("\n"))
            ctx.type_creations[name] = creations[name][0]

    def _spec_name(self, ctx: PortContext, t, values) -> str:
        """tp_name, dotted: a heap type without a dot has no `__module__` (and 3.11+ warns)."""
        text = values.get("tp_name")
        value = string_value(text) if text else None
        if text is not None and (value is None or "." in value):
            return text
        dotted = f"{ctx.module.name}.{value or t.name}"
        ctx.item(self.id, Applicability.SAFE, t.file, t.span,
                 f"{t.name}: tp_name {text or '(none)'} has no module part; the spec names it "
                 f'"{dotted}", so {t.name}.__module__ is now {ctx.module.name!r} instead of '
                 "'builtins' (review: its repr changes too)")
        return f'"{dotted}"'

    def _spec_types(self, ctx: PortContext) -> None:
        """Types the module already makes from a spec are made with the module from now on."""
        mvar = ctx.exec_param
        init_function = ctx.module.init.worker or ctx.module.init.function
        for s in ctx.module.spec_types:
            if (None, s.global_name) not in ctx.decisions.movable or s.function != init_function:
                continue
            text = ctx.text(s.file)
            if s.creator in ("PyType_FromSpec", "PyType_FromSpecWithBases"):
                ctx.edit(s.file, Span(s.call.start, s.args[0].start), f"PyType_FromModuleAndSpec({mvar}, ", self.id)
                if s.creator == "PyType_FromSpec":
                    ctx.edit(s.file, Span(s.args[0].end, s.call.end), ", NULL)", self.id)
            else:
                at = 0 if s.creator == "PyType_FromModuleAndSpec" else 1
                if not is_null(text[s.args[at].start:s.args[at].end].decode()):
                    continue  # already made with a module
                ctx.edit(s.file, s.args[at], mvar, self.id)
            ctx.item(self.id, Applicability.SAFE, s.file, s.call,
                     f"{s.global_name} is made with the module ({s.creator} -> PyType_FromModuleAndSpec): "
                     "its methods and slots find module state through their type")

    def _inherits_gc(self, t, values, types, assigns) -> bool | None:
        """Whether `t` gets Py_TPFLAGS_HAVE_GC from its base; None for a base porter cannot judge."""
        base = values.get("tp_base")
        if not base or is_null(base) or referenced_name(base) == "PyBaseObject_Type":
            return False
        name = referenced_name(base)
        if name not in types:
            return None
        base_type = types[name]
        flags = base_type.slot("tp_flags").text if base_type.slot("tp_flags") is not None else ""
        flags += " ".join(a.value for a in assigns if a.target == name and a.field == "tp_flags")
        return "Py_TPFLAGS_HAVE_GC" in flags

    def _module_attribute(self, ctx: PortContext, t, values, types, assigns) -> str:
        """Wrappers that serve `__module__` to instances from the saved descriptor."""
        shared = t.file not in self._shared_files
        self._shared_files.add(t.file)
        old_get = _inherited(t, "tp_getattro", types, assigns) or "PyObject_GenericGetAttr"
        old_set = _inherited(t, "tp_setattro", types, assigns) or "PyObject_GenericSetAttr"
        getattro, setattro = f"{t.name}_getattro", f"{t.name}_setattro"
        values["tp_getattro"], values["tp_setattro"] = getattro, setattro
        ctx.item(self.id, Applicability.SAFE, t.file, t.span,
                 f"{t.name} defines a __module__ descriptor: {t.name}.__module__ keeps answering "
                 f"the module name from the type's dict and {getattro}/{setattro} serve the "
                 f"descriptor to instances; review: {t.name}.__dict__['__module__'] is now that "
                 "name (no Python file of the package reads it)")
        text = render("c/module_attribute.c.jinja", shared=shared, find_descriptor=self._find,
                      keep_descriptor=self._keep, state_type=ctx.names.state_type,
                      get_state_by_type=ctx.names.get_state_by_type,
                      field=ctx.module_attribute_field, getattro=getattro, setattro=setattro,
                      old_getattro=old_get, old_setattro=old_set)
        return text

    def _guard(self, ctx: PortContext, t: StaticType, slot) -> str | None:
        """The `#if` line that guarded this slot in the initialiser, when it was guarded."""
        src = ctx.sources[t.file]
        for mc in src.masked_conditionals:
            cond = mc.conditional
            if not (cond.span.start <= slot.span.start < cond.span.end) or mc.kept is None:
                continue
            branch = cond.branches[mc.kept]
            if not (branch.body.start <= slot.span.start < branch.body.end):
                continue
            if _same_for_all_targets(cond, mc.kept):
                return None
            first = cond.branches[0]
            if mc.kept == 0:
                return src.text_of(first.directive).strip()
            # A later branch: guard it with the negation of those before it.
            return "#if " + " && ".join(f"!({_as_expression(b)})" for b in cond.branches[:mc.kept])
        return None

    def _slots(self, t, values, guards, sub_values, sub_guards):
        slots, members = [], []
        for name in capi.TYPE_FIELDS:
            value = values.get(name)
            if value is None or is_null(value) or name in SPEC_FIELDS:
                continue
            if name in OFFSET_MEMBERS:
                members.append({"name": OFFSET_MEMBERS[name], "offset": value})
                continue
            if name in DROPPED_DEFAULTS and referenced_name(value) in DROPPED_DEFAULTS[name]:
                continue
            if name == "tp_doc" and not value.lstrip().startswith("("):
                # PyDoc_STRVAR makes a `const char[]`; the slot's pointer is `void *`.
                value = f"(void *){value}"
            slots.append({"id": "Py_" + name, "value": value, "guard": guards.get(name)})
        for struct, fields in capi.SUBSTRUCT_FIELDS.items():
            for name in fields:
                value = sub_values.get(name)
                if value is None or is_null(value) or name.startswith("was_") or name == "nb_reserved":
                    continue
                slots.append({"id": "Py_" + name, "value": value, "guard": sub_guards.get(name)})
        return slots, members

    def _flags(self, values, t, inherited: set[str]) -> str:
        flags = values.get("tp_flags", "Py_TPFLAGS_DEFAULT").strip()
        extra = ["Py_TPFLAGS_IMMUTABLETYPE"]
        has_new = not is_null(values.get("tp_new", "0")) or "tp_new" in inherited
        has_base = not is_null(values.get("tp_base", "0"))
        if not has_new and not has_base:
            extra.append("Py_TPFLAGS_DISALLOW_INSTANTIATION")
        if "tp_vectorcall_offset" in values and not is_null(values["tp_vectorcall_offset"]) \
                and "Py_TPFLAGS_HAVE_VECTORCALL" not in flags:
            extra.append("Py_TPFLAGS_HAVE_VECTORCALL")
        for flag in extra:
            if flag not in flags:
                # After a value ending in `#endif` the operator goes on a line of its own.
                sep = "\n    | " if flags.rstrip().splitlines()[-1].lstrip().startswith("#") else " | "
                flags = f"{flags}{sep}{flag}" if flags else flag
        return flags

    def _drop_readies(self, ctx: PortContext, body, t) -> None:
        for r in body.type_readies:
            if r.type_name == t.name and r.alone:
                f = r.file or body.file
                ctx.edit(f, ctx.statement_span_with_line(f, r.statement), "", self.id)

    def _drop_substruct(self, ctx: PortContext, var: str, types) -> None:
        g = next((g for g in ctx.module.globals if g.name == var and g.function is None
                  and g.kind is GlobalKind.TYPE_SUBSTRUCT), None)
        if g is None:
            return
        other = [u for u in g.uses if u.access != "macro"]
        users = {u.function for u in other}
        # Referenced only from type initialisers and the init function's assignments.
        if all(u.function is None or u.function == ctx.module.init_body.function for u in other):
            ctx.edit(g.file, ctx.statement_span_with_line(g.file, g.declaration), "", self.id)
        del users

    def _fix_dealloc(self, ctx: PortContext, t, values, fns, tp_var, done: set[str]) -> None:
        name = referenced_name(values.get("tp_dealloc", "0") or "0")
        if not name or is_null(values.get("tp_dealloc", "0")):
            return  # the heap type's default dealloc releases the type itself
        f = fns.get(name)
        if f is None:
            ctx.item(self.id, Applicability.MANUAL, t.file, t.span,
                     f"{t.name}'s dealloc {name} is not a function porter can edit: it must "
                     "Py_DECREF(Py_TYPE(self)) after freeing", done=False)
            return
        if name in done:
            return
        done.add(name)
        self_name = f.params[0].name if f.params else None
        if not self_name:
            ctx.fail(f"{name}() has no named self parameter")
            return
        nl = ctx.newline(f.file)
        indent = ctx.body_indent(f.file, f.body)
        gc = "Py_TPFLAGS_HAVE_GC" in values.get("tp_flags", "")
        prologue = f"{nl}{indent}PyTypeObject *{tp_var} = Py_TYPE({self_name});" if f.frees else ""
        if gc and not f.untracks_first:
            prologue += f"{nl}{indent}PyObject_GC_UnTrack({self_name});"
        if prologue:
            ctx.insert(f.file, f.body.start + 1, prologue, self.id, order=-7)
        if not f.frees:
            deallocs = {referenced_name(tt.slot("tp_dealloc").text) for tt in ctx.module.static_types
                        if tt.slot("tp_dealloc") is not None}
            if not any(c.callee in deallocs for c in f.calls):
                ctx.item(self.id, Applicability.MANUAL, f.file, f.header,
                         f"{name}() frees no object porter can see: after freeing it must "
                         "Py_DECREF(Py_TYPE(self))", done=False)
            return
        for span in f.frees:
            ctx.insert(f.file, span.end, f"{nl}{ctx.line_indent(f.file, span.start)}Py_DECREF({tp_var});",
                       self.id)
        # PyObject_Del(self) frees a Python subclass's instance (which has a GC header) wrongly.
        rewritten = False
        for call in f.calls:
            if call.callee in FREE_FUNCTIONS and any(s.start <= call.span.start < s.end for s in f.frees):
                ctx.edit(f.file, Span(call.span.start, call.span.start + len(call.callee)),
                         f"{tp_var}->tp_free", self.id)
                rewritten = True
        ctx.item(self.id, Applicability.SAFE, f.file, f.header,
                 f"{name}() releases the heap type after tp_free"
                 + (" (instead of calling the allocator's free directly)" if rewritten else "")
                 + (" and untracks the object first" if gc and not f.untracks_first else ""))

    def _fix_traverse(self, ctx: PortContext, t, values, fns, types, done: set[str]) -> None:
        if "Py_TPFLAGS_HAVE_GC" not in values.get("tp_flags", ""):
            return
        name = referenced_name(values.get("tp_traverse", "0") or "0")
        f = fns.get(name or "")
        if f is None or name in done:
            return
        done.add(name)
        traverses = {referenced_name(tt.slot("tp_traverse").text) for tt in types.values()
                     if tt.slot("tp_traverse") is not None}
        if any(c.callee in traverses and c.callee != name for c in f.calls):
            return  # it delegates to a base's traverse, which visits the type
        self_name = f.params[0].name if f.params else None
        if not self_name:
            return
        nl = ctx.newline(f.file)
        ctx.insert(f.file, f.body.start + 1,
                   f"{nl}{ctx.body_indent(f.file, f.body)}Py_VISIT(Py_TYPE({self_name}));", self.id, order=-7)

    def _extend_members(self, ctx: PortContext, t, table: str, members) -> None:
        g = next((g for g in ctx.module.globals if g.name == table and g.function is None), None)
        if g is None or g.initializer is None:
            ctx.fail(f"{t.name}: cannot find its members table {table}")
            return
        src = ctx.sources[g.file]
        init = src.root.descendant_for_byte_range(g.initializer.start, g.initializer.end)
        while init is not None and init.type != "initializer_list":
            init = init.parent
        rows = [c for c in init.named_children if c.type != "comment"] if init is not None else []
        if not rows:
            ctx.fail(f"{t.name}: cannot read its members table {table}")
            return
        sentinel = rows[-1]
        indent = ctx.line_indent(g.file, sentinel.start_byte)
        nl = ctx.newline(g.file)
        text = "".join(f'{{"{m["name"]}", T_PYSSIZET, {m["offset"]}, READONLY}},{nl}{indent}' for m in members)
        ctx.insert(g.file, sentinel.start_byte, text, self.id)
        if self._ensure_structmember(ctx, g.file):
            line = ctx.text(g.file).rfind(b"\n", 0, g.declaration.start) + 1
            ctx.insert(g.file, line, f'#include "structmember.h"   /* T_PYSSIZET, READONLY */{nl}', self.id)

    def _ensure_structmember(self, ctx: PortContext, file: str) -> bool:
        """Whether the spec about to be written must bring structmember.h in itself."""
        if b"structmember.h" in ctx.text(file) or file in self._structmember_done:
            return False
        self._structmember_done.add(file)
        return True


def _inherited(t, slot: str, types, assigns) -> str | None:
    """A slot's own value, or the one it inherits from the module's base types."""
    seen = set()
    current = t
    while current is not None and current.name not in seen:
        seen.add(current.name)
        own = current.slot(slot)
        value = own.text.strip() if own is not None and not is_null(own.text) else None
        for a in assigns:
            if a.target == current.name and a.field == slot:
                value = None if is_null(a.value) else a.value.strip()
        if value:
            return value
        base = current.slot("tp_base")
        base_name = referenced_name(base.text) if base is not None and not is_null(base.text) else None
        for a in assigns:
            if a.target == current.name and a.field == "tp_base":
                base_name = referenced_name(a.value)
        current = types.get(base_name) if base_name else None
    return None


def _module_name(values) -> str:
    """What `Type.__module__` was for the static type: tp_name up to its last dot."""
    name = string_value(values.get("tp_name", '""')) or ""
    return name.rsplit(".", 1)[0] if "." in name else "builtins"


def _with_flag(flags: str, flag: str) -> str:
    return flags if flag in flags else f"{flags.rstrip()} | {flag}"


def _dependency_order(creations: dict[str, tuple[str, list[str]]]) -> list[str]:
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for dep in creations.get(name, ("", []))[1]:
            if dep in creations:
                visit(dep)
        order.append(name)

    for name in creations:
        visit(name)
    return order


def _same_for_all_targets(cond, kept: int) -> bool:
    """Whether the kept branch is taken on every Python porter targets (3.11 to 3.13)."""
    return conditions.taken_everywhere([(b.kind, b.condition.encode()) for b in cond.branches], kept)


def _as_expression(branch) -> str:
    if branch.kind == "ifdef":
        return f"defined({branch.condition})"
    if branch.kind == "ifndef":
        return f"!defined({branch.condition})"
    return branch.condition
