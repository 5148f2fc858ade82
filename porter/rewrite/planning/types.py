"""Which static types become heap types, and the spec, creation and fixes each one gets."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from porter import capi
from porter.analyze.initializers import is_null, referenced_name, sizeof_operand, string_value
from porter.model import (
    ExtensionModule,
    FieldAssignment,
    GlobalKind,
    InitBody,
    Initializer,
    PythonDictRead,
    StaticType,
    TypeReady,
)
from porter.rewrite.layout import FileLayout
from porter.rewrite.names import NameAllocator
from porter.rewrite.planning.gc import GcPlan, plan_gc
from porter.rewrite.vocab import Applicability, Reason

# --------------------------------------------------------------------------- convertible


def convertible_types(module: ExtensionModule, unsafe: bool, limited: int | None = None) -> dict[str, Reason | None]:
    """For each static type: None if it can become a heap type, else why not. `limited` is the
    Py_LIMITED_API the package declares: porter only emits what that version has."""
    # A type declared in the module's own header is still the module's: extension modules are
    # loaded with RTLD_LOCAL, so other modules reach it only through a capsule, and a capsule
    # table naming it is a use porter cannot rewrite (it keeps the type static).
    return {t.name: _why_not(t, module, unsafe, limited) for t in module.static_types}


def _why_not(t: StaticType, module: ExtensionModule, unsafe: bool, limited: int | None = None) -> Reason | None:
    if not capi.in_limited_api("PyType_FromModuleAndSpec", limited) and not t.structseq:
        return Reason("limited-api-too-old", f"the package declares Py_LIMITED_API=0x{limited:08X}, and a heap type "
                                             "created with its module (PyType_FromModuleAndSpec) needs 0x030A0000")
    public = next((loc.file for loc in t.forward_declarations if loc.file in module.public_headers), None)
    if public is not None or t.file in module.public_headers:
        return Reason("public-declaration", f"it is declared in {public or t.file}, a header the package installs: "
                                            "other extensions may use the static type directly")
    if t.structseq:
        return None
    if t.initializer is None:
        return Reason("type-no-initializer", "no initialiser porter could read")
    body = module.init_body
    exec_unit = module.translation_unit(body.file) if body is not None else frozenset()
    # A type another .c file defines (static, or extern with no header saying so) is made in
    # exec from its spec, which porter declares `extern` in exec's file; a header's would be
    # defined in every file that includes it.
    if body is not None and t.file not in exec_unit and t.file.endswith(".h") \
            and not any(loc.file.endswith(".h") or loc.file in exec_unit for loc in t.forward_declarations):
        return Reason("type-invisible-to-exec", f"it is defined in {t.file}, and no header shows it to "
                                                f"{body.file}, where exec would create it from a spec")
    if t.custom_metatype and not _deferred(t.custom_metatype, module):
        return Reason("type-metaclass", f"its metatype is {t.custom_metatype}: {_metaclass_limit(module)}")
    set_at_run_time = next((meta for target, meta in (body.runtime_metatypes if body is not None else ())
                            if target == t.name and meta != "PyType_Type"), None)
    if set_at_run_time is not None:
        return Reason("type-metaclass", f"init sets its metatype to {set_at_run_time} (Py_SET_TYPE): "
                                        f"{_metaclass_limit(module)}")
    offset = _offset_outside_instance(t)
    if offset is not None:
        return Reason("type-offset-outside-instance", f"{offset[0]} is {offset[1]}, an offset in another struct "
                                                      "than its instances': a heap type checks it against its "
                                                      "basic size, and this one would not be made")
    for name in capi.MUST_BE_EMPTY + capi.NOT_A_SLOT:
        s = t.slot(name)
        if s is not None and not is_null(s.text):
            if name in capi.NOT_A_SLOT and limited is None:
                continue  # set on the heap type right after exec makes it (Plan: after_creation)
            return Reason("type-field-not-a-slot", f"{name} is set; heap types cannot take it on every "
                                                   "supported Python" + (" within the limited API"
                                                                         if name in capi.NOT_A_SLOT else ""))
    if limited is not None and defines_module_attribute(t, module):
        return Reason("limited-api-descriptor", f"its members or getset define __module__, and serving that "
                                                "descriptor to instances needs the type's dict, which the limited "
                                                f"API (Py_LIMITED_API=0x{limited:08X}) does not show")
    read = module_descriptor_read(t, module)
    if read is not None and not unsafe:
        return Reason("type-module-descriptor-read", (
            f"its members or getset define __module__, and {read.file}:{read.line} reads "
            f"{read.owner}.__dict__['__module__']: a heap type cannot keep that descriptor "
            f"in its dict while {read.owner}.__module__ stays the module name, so the "
            "Python side needs a change first (--unsafe keeps the descriptor in the dict and "
            f"lets {read.owner}.__module__ change)"), unsafe_fix=True)
    for a in (module.init_body.field_assignments if module.init_body else ()):
        if a.target == t.name and a.field == "tp_base" and module.init_body is not None \
                and _base_known_at_creation(module, module.init_body, t, a):
            continue  # `T.tp_base = PyDateTimeAPI->TZInfoType;`: the bases argument where T is made
        if a.target == t.name and (a.reads_locals or not _foldable(a.field, a.value)):
            return Reason("type-runtime-slot", f"init sets {t.name}.{a.field} = {a.value.strip()}, which is "
                                               "not a constant a PyType_Slot table can hold")
    if t.conditional and not unsafe and unreadable_conditionals(t):
        return Reason("type-partly-read", "an #if inside its initialiser hides slots porter cannot map "
                                          "(use --unsafe to convert the analysed branch)", unsafe_fix=True)
    return None




_OFFSETOF = re.compile(r"\boffsetof\s*\(\s*(?:struct\s+)?([A-Za-z_]\w*)\s*,")


def _offset_outside_instance(t: StaticType) -> tuple[str, str] | None:
    """(field, value) for an offset member a spec would carry (`__vectorcalloffset__`...) that
    is an `offsetof(PyTypeObject, ...)` on instances that are not type objects (recordclass points
    its tp_vectorcall_offset there): PyType_FromSpec refuses it."""
    size = t.slot("tp_basicsize")
    operand = sizeof_operand(size.text if size is not None else None)
    flags, base = t.slot("tp_flags"), t.slot("tp_base")
    if (flags is not None and "Py_TPFLAGS_TYPE_SUBCLASS" in flags.text) \
            or (base is not None and referenced_name(base.text) == "PyType_Type"):
        return None  # a metatype: its instances are type objects, whose struct the offset is into
    for s in t.slots:  # every initialiser of the field (a designated one may follow its position)
        m = _OFFSETOF.search(s.text) if s.name in capi.OFFSET_MEMBERS else None
        # Only a type object's own layout is certain not to be a prefix of the instances' struct
        # (a subclass's offsets are often into its base's struct, which starts its own).
        if m and m.group(1) in ("PyTypeObject", "PyHeapTypeObject", "_typeobject") \
                and (operand is None or operand[1] != m.group(1)):
            return s.name, " ".join(s.text.split())
    return None


def _metaclass_limit(module: ExtensionModule) -> str:
    if module.cpython_version is not None and module.cpython_version >= (3, 12):
        # The tree's own version has it; porter does not write that conversion yet.
        return "a heap type with a custom metaclass is made by PyType_FromMetaclass, which porter does not write yet"
    return "a heap type with a custom metaclass needs PyType_FromMetaclass (3.12+), and ports must build on 3.11"

def python_name(t: StaticType) -> str:
    """The class name Python code knows the type by: tp_name after its last dot."""
    slot = t.slot("tp_name")
    value = string_value(slot.text) if slot is not None else None
    return value.rsplit(".", 1)[-1] if value else t.name


def module_descriptor_read(t: StaticType, module: ExtensionModule) -> PythonDictRead | None:
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
    return defines_attribute({name: t.slot_text(name) or "" for name in ("tp_members", "tp_getset")},
                             module, "__module__")


def defines_attribute(values: dict[str, str], module: ExtensionModule, attribute: str) -> bool:
    """Whether the members or getset table a type's slot `values` name has a row for `attribute`."""
    for slot_name in ("tp_members", "tp_getset"):
        table = referenced_name(values.get(slot_name) or "")
        g = module.file_global(table) if table else None
        if g is not None and f'"{attribute}"' in g.initializer_text:
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


def _base_known_at_creation(module: ExtensionModule, body: InitBody, t: StaticType, a: FieldAssignment) -> bool:
    """A base computed at run time can be the bases argument of PyType_FromModuleAndSpec where
    the type is made: its one PyType_Ready, later in the same function (the init function).
    The expression is copied as written, so it must not name a global of the module."""
    if set(re.findall(r"[A-Za-z_]\w*", a.value)) & {g.name for g in module.globals}:
        return False
    readies = [r for r in body.type_readies if r.type_name == t.name]
    inside = body.body.start <= a.statement.start and a.statement.end <= body.body.end \
        and a.file in ("", body.file)
    return inside and len(readies) == 1 and readies[0].file in ("", body.file) \
        and body.body.start <= readies[0].statement.start < body.body.end \
        and a.statement.end <= readies[0].statement.start


def _foldable(field_name: str, value: str) -> bool:
    """Whether a value assigned in init can go into a static slots table or spec."""
    v = value.strip()
    if (field_name, v.replace(" ", "")) in capi.INHERITED_ASSIGNMENTS or is_null(v):
        return True
    if referenced_name(v) is not None:
        return True
    # Sizes, offsets, flags and names are constant expressions unless they read memory.
    rest = re.sub(r"\b(offsetof|sizeof)\s*\([^()]*(\([^()]*\)[^()]*)*\)", "0", v)
    # A string literal is a constant whatever it spells (`"parsers.dirs"` is not a field read).
    rest = re.sub(r'"(?:[^"\\\n]|\\.)*"', '""', rest)
    return not re.search(r"->|\w\s*\.\s*[A-Za-z_]|\w\s*\(", rest)


def unreadable_conditionals(t: StaticType) -> bool:
    """Whether a masked #if in the initialiser may change which slot a positional value fills.

    Designated initialisers name their slots; a positional one is safe when every branch of
    each masked #if holds the same number of values.
    """
    from porter.analyze.types import same_for_all_targets

    for cond, kept, counts in t.conditional_groups:
        if kept is not None and same_for_all_targets(cond, kept):
            continue
        if any(s.span.start < cond.span.start and cond.span.end <= s.span.end for s in t.slots):
            continue  # inside one value: it does not move the values after it
        if t.positional and len(set(counts)) != 1:
            return True
    return False


# --------------------------------------------------------------------------- per type plan


@dataclass(frozen=True)
class SpecSlot:
    id: str  # Py_tp_repr
    value: str
    guard: str | None  # the #if line around it, when it was guarded


@dataclass(frozen=True)
class DescriptorWrappers:
    """tp_getattro/tp_setattro that serve a `__module__` descriptor to instances."""

    getattro: str
    setattro: str
    old_getattro: str  # the call's callee
    old_setattro: str
    with_helpers: bool  # the first such type in its file also gets the shared helpers
    module_name: str  # what `Type.__module__` answers: tp_name up to its last dot
    # The first argument as the old functions take it (`(ProxyObject *)self`).
    old_get_self: str = "self"
    old_set_self: str = "self"


@dataclass(frozen=True)
class TypePlan:
    """Everything the heap-types, gc-support and exec-slot steps do for one converted type."""

    type: StaticType
    field: str  # the module state field that keeps it
    applicability: Applicability  # UNSAFE: converted only because --unsafe was given
    partly_read: bool  # converted from the #if branches porter read (--unsafe)
    descriptor_read: PythonDictRead | None  # Python reads its __dict__['__module__'] (--unsafe)
    structseq_desc: str | None = None  # a struct sequence: its PyStructSequence_Desc
    slots: tuple[SpecSlot, ...] = ()
    members: tuple[tuple[str, str], ...] = ()  # (special member, offset) for a new members table
    members_name: str | None = None  # that new table
    extend_members: str | None = None  # or the existing members table that takes the rows
    member_rows: tuple[tuple[str, str], ...] = ()  # the rows for it
    include_structmember: bool = False  # the spec brings structmember.h in itself
    spec_storage: str = "static "
    spec_name: str = ""  # the `.name` value
    undotted_name: str | None = None  # the tp_name text when it had no module part
    flags: str = ""
    basicsize: str = "0"
    itemsize: str = "0"
    before_init: bool = False  # the spec goes right before the function that creates it
    bases: str = "NULL"
    deps: tuple[str, ...] = ()  # module types created before it (its base)
    gc: GcPlan | str | None = None  # GC support porter adds, or why it does not
    descriptor: DescriptorWrappers | None = None
    folded_assignments: tuple[FieldAssignment, ...] = ()  # init statements that now live in the spec
    readies: tuple[TypeReady, ...] = ()  # PyType_Ready statements that go
    # Made where its PyType_Ready was, not at the top of exec: its base is computed in init
    # before that point (`T.tp_base = api->Sock_Type;`).
    created_at: TypeReady | None = None
    # Fields with no Py_tp_* slot before 3.14 (tp_vectorcall): exec sets them on the heap type
    # right after making it, as (field, value).
    after_creation: tuple[tuple[str, str], ...] = ()
    substructs: tuple[str, ...] = ()  # sub-struct variables whose tables the spec now holds
    flagged_gc: bool = False  # Py_TPFLAGS_HAVE_GC is set (given or added): traverse visits the type
    extend_members_include: bool = False  # the existing members table's file needs structmember.h
    # The base whose members or getset define `__annotations__` for the type's instances, when
    # the type defines none itself: (its C name, its dict as exec reaches it).
    annotations_from: tuple[str, str] | None = None
    values: tuple[tuple[str, str], ...] = ()  # the spec's values by PyTypeObject field

    @property
    def name(self) -> str:
        return self.type.name

    def value(self, name: str, default: str = "") -> str:
        return dict(self.values).get(name, default)


def plan_types(module: ExtensionModule, layouts: dict[str, FileLayout], moved: set[str],
               fields: dict[str, str], names: NameAllocator, module_attribute_field: str | None,
               state_var: str) -> tuple[TypePlan, ...] | Reason:
    """A plan for every converted type, in source order."""
    types = {t.name: t for t in module.static_types if t.name in moved}
    if not types or module.init_body is None:
        return ()
    planner = _TypePlanner(module, layouts, types, fields, names, module_attribute_field, state_var)
    plans = []
    for t in types.values():
        plan = planner.plan(t)
        if isinstance(plan, Reason):
            return plan
        plans.append(plan)
    return tuple(plans)


@dataclass
class _SpecValues:
    """A type's slot values as its spec will hold them, after init's assignments are folded in."""

    values: dict[str, str]
    guards: dict[str, str | None]
    sub_values: dict[str, str]
    sub_guards: dict[str, str | None]
    inherited: set[str]
    folded: list[FieldAssignment]


class _TypePlanner:
    """Plans the module's converted types one by one; what one type decides for a file
    (structmember.h included, the __module__ helpers emitted) the next one sees."""

    def __init__(self, module: ExtensionModule, layouts: dict[str, FileLayout], types: dict[str, StaticType],
                 fields: dict[str, str], names: NameAllocator, module_attribute_field: str | None, state_var: str):
        self.module, self.layouts, self.types, self.fields = module, layouts, types, fields
        self.names, self.module_attribute_field, self.state_var = names, module_attribute_field, state_var
        assert module.init_body is not None
        self.body = module.init_body
        self.assigns = list(self.body.field_assignments)
        self.substruct_of = {var: t.name for t in types.values() for _, var in t.substructs}
        # `T.tp_as_sequence = &seq;` in init links a sub-struct too (its fields may be set there).
        self.linked: dict[str, list[str]] = {}
        for a in self.assigns:
            var = referenced_name(a.value) if a.target in types and a.field in capi.SUBSTRUCT_OF_FIELD else None
            if var:
                self.substruct_of[var] = a.target
                self.linked.setdefault(a.target, []).append(var)
        self.structmember_done: set[str] = set()
        self.descriptor_files: set[str] = set()
        self.statics = {s.name: s for s in module.static_types}
        self.readies: dict[str, list[TypeReady]] = {}  # alone in their statement, by type
        for r in (self.body.type_readies if self.body is not None else ()):
            if r.alone:
                self.readies.setdefault(r.type_name, []).append(r)

    def plan(self, t: StaticType) -> TypePlan | Reason:
        partly_read = bool(t.conditional and unreadable_conditionals(t))
        read = module_descriptor_read(t, self.module)
        common = TypePlan(type=t, field=self.fields[t.name], partly_read=partly_read, descriptor_read=read,
                          applicability=Applicability.UNSAFE if partly_read or read else Applicability.SAFE)
        if t.structseq:
            ready = next((r for r in self.body.type_readies if r.type_name == t.name and r.structseq_desc), None)
            if ready is None:
                return Reason("structseq-not-ready", f"{t.name}: no PyStructSequence_InitType2 call in the "
                                                     "init function")
            return replace(common, structseq_desc=ready.structseq_desc, readies=tuple(self.readies.get(t.name, ())))
        spec = self._spec_values(t)
        values = spec.values
        bases, deps = self._bases(values)
        descriptor = None
        if serves_module_descriptor(t, self.module) and self.module_attribute_field:
            descriptor = _descriptor_wrappers(self.module, t, values, self.types, self.assigns,
                                              t.file not in self.descriptor_files, self.names)
            self.descriptor_files.add(t.file)
            values["tp_getattro"], values["tp_setattro"] = descriptor.getattro, descriptor.setattro
        gc = plan_gc(self.module, self.layouts, t, values, self.types,
                     _inherits_gc(values, self.types, self.assigns), self.names)
        if isinstance(gc, GcPlan):
            values["tp_flags"] = _with_flag(values.get("tp_flags", "Py_TPFLAGS_DEFAULT"), "Py_TPFLAGS_HAVE_GC")
            values["tp_traverse"], values["tp_clear"] = gc.traverse, gc.clear
            spec.guards["tp_traverse"] = spec.guards["tp_clear"] = None
        spec_slots, members = _spec_slots(values, spec.guards, spec.sub_values, spec.sub_guards)
        with_members = self._members(t, values, spec_slots, members)
        if isinstance(with_members, Reason):
            return with_members
        spec_name, undotted = _spec_name(self.module, t, values)
        return replace(
            with_members(common), slots=tuple(spec_slots),
            after_creation=tuple((name, values[name]) for name in capi.NOT_A_SLOT
                                 if values.get(name) and not is_null(values[name])),
            # exec in another file creates the type: the spec must be visible there.
            spec_storage="" if t.file not in self.module.translation_unit(self.body.file) else "static ",
            spec_name=spec_name, undotted_name=undotted, flags=_flags(values, spec.inherited),
            basicsize=values.get("tp_basicsize", "0"), itemsize=values.get("tp_itemsize", "0"),
            before_init=_folds_functions(t, self.assigns) and t.file == self.body.file,
            bases=bases, deps=deps, gc=gc, descriptor=descriptor, folded_assignments=tuple(spec.folded),
            annotations_from=self._annotations_base(t, values),
            readies=tuple(self.readies.get(t.name, ())), created_at=self._runtime_base_ready(t),
            substructs=tuple(sorted({v for _, v in t.substructs} | set(self.linked.get(t.name, ())))),
            flagged_gc="Py_TPFLAGS_HAVE_GC" in values.get("tp_flags", ""), values=tuple(values.items()),
        )

    def _spec_values(self, t: StaticType) -> _SpecValues:
        slots = {s.name: s for s in t.slots if not _deferred(s.text, self.module)}
        spec = _SpecValues({name: s.text.strip() for name, s in slots.items()},
                           {name: s.guard for name, s in slots.items()},
                           {s.name: s.text.strip() for s in t.substruct_slots},
                           {s.name: s.guard for s in t.substruct_slots}, set(), [])
        for a in self.assigns:
            linked = referenced_name(a.value) if a.target == t.name and a.field in capi.SUBSTRUCT_OF_FIELD else None
            table = next((s for s in self.module.substruct_tables if s.name == linked), None)
            if table is not None:
                # `T.tp_as_mapping = &t_as_mapping;`: the table's slots become the spec's.
                for slot in table.slots:
                    spec.sub_values.setdefault(slot.name, slot.text.strip())
                    spec.sub_guards.setdefault(slot.name, slot.guard)
            if a.target == t.name:
                if (a.field, a.value.strip().replace(" ", "")) in capi.INHERITED_ASSIGNMENTS:
                    spec.values.pop(a.field, None)
                    spec.inherited.add(a.field)
                else:
                    spec.values[a.field] = a.value.strip()
                spec.guards[a.field] = None
                spec.folded.append(a)
            elif self.substruct_of.get(a.target) == t.name:
                spec.sub_values[a.field] = a.value.strip()
                spec.folded.append(a)
        return spec

    def _annotations_base(self, t: StaticType, values: dict[str, str]) -> tuple[str, str] | None:
        """The nearest base (a static type of the module) whose members or getset define
        `__annotations__`, when `t`'s do not. A heap type answers `T.__annotations__` by storing an
        empty dict in its own dict when it has no entry there (a static type raises
        AttributeError), and that dict then hides the base's descriptor from T's instances."""
        if defines_attribute(values, self.module, "__annotations__"):
            return None
        statics = self.statics
        seen = {t.name}
        base = referenced_name(values.get("tp_base") or "")
        while base is not None and base in statics and base not in seen:
            seen.add(base)
            declared = {s.name: s.text.strip() for s in statics[base].slots}
            declared.update((a.field, a.value.strip()) for a in self.assigns if a.target == base)
            if defines_attribute(declared, self.module, "__annotations__"):
                if base in self.types:
                    return base, f"{self.state_var}->{self.fields[base]}->tp_dict"
                return base, f"{base}.tp_dict"
            base = referenced_name(declared.get("tp_base") or "")
        return None

    def _runtime_base_ready(self, t: StaticType) -> TypeReady | None:
        """The PyType_Ready whose place the type is made at, when init computes its base."""
        for a in self.assigns:
            if a.target == t.name and a.field == "tp_base" and (a.reads_locals or not _foldable(a.field, a.value)):
                return next(r for r in self.body.type_readies if r.type_name == t.name)
        return None

    def _bases(self, values: dict[str, str]) -> tuple[str, tuple[str, ...]]:
        """The bases argument of PyType_FromModuleAndSpec, and the module types to make first."""
        base = values.get("tp_base")
        if not base or is_null(base):
            return "NULL", ()
        base_name = referenced_name(base)
        if base_name is not None and base_name in self.types:
            return f"(PyObject *){self.state_var}->{self.fields[base_name]}", (base_name,)
        return (f"(PyObject *){base.strip()}" if not base.strip().startswith("(PyObject") else base), ()

    def _members(self, t: StaticType, values: dict[str, str], spec_slots: list[SpecSlot],
                 members: list[tuple[str, str]]):
        """Offset members go into the type's own members table, or a new one; returns what the
        plan gets for them (or why not)."""
        if not members:
            return lambda plan: plan
        existing = referenced_name(values.get("tp_members", "")) if not is_null(values.get("tp_members", "0")) else None
        extend_include = False
        if existing:
            table = next((g for g in self.module.globals if g.name == existing and g.function is None), None)
            if table is None or table.initializer is None:
                return Reason("members-missing", f"{t.name}: cannot find its members table {existing}")
            if not table.table_rows:
                return Reason("members-unreadable", f"{t.name}: cannot read its members table {existing}")
            extend_include = self._needs_structmember(table.file)
        else:
            spec_slots.append(SpecSlot("Py_tp_members", f"{t.name}_members", None))
        include = self._needs_structmember(t.file)
        return lambda plan: replace(
            plan, members=() if existing else tuple(members), members_name=None if existing else f"{t.name}_members",
            extend_members=existing, member_rows=tuple(members) if existing else (),
            include_structmember=include, extend_members_include=extend_include)

    def _needs_structmember(self, file: str) -> bool:
        """Whether `file` must include structmember.h for T_PYSSIZET (the first time porter asks)."""
        if b"structmember.h" in self.layouts[file].text or file in self.structmember_done:
            return False
        self.structmember_done.add(file)
        return True


def _folds_functions(t: StaticType, assigns: list[FieldAssignment]) -> bool:
    """Slots init filled at run time may name functions defined after the type: the spec
    goes right before the function that creates the type."""
    return any(a.target == t.name and a.field not in capi.SPEC_FIELDS and a.field not in capi.OFFSET_MEMBERS
               and a.field not in ("tp_doc", "tp_flags") for a in assigns)


def _descriptor_wrappers(module: ExtensionModule, t: StaticType, values: dict[str, str], types, assigns,
                         with_helpers: bool, names: NameAllocator) -> DescriptorWrappers:
    old_get = _inherited(t, "tp_getattro", types, assigns) or "PyObject_GenericGetAttr"
    old_set = _inherited(t, "tp_setattro", types, assigns) or "PyObject_GenericSetAttr"
    name = string_value(values.get("tp_name", '""')) or ""
    get, get_self = _callee(module, old_get)
    put, put_self = _callee(module, old_set)
    return DescriptorWrappers(names.fresh(f"{t.name}_getattro"), names.fresh(f"{t.name}_setattro"), get, put,
                              with_helpers, name.rsplit(".", 1)[0] if "." in name else "builtins", get_self, put_self)


def _callee(module: ExtensionModule, value: str) -> tuple[str, str]:
    """A slot's value as a callee, and how its first argument is spelled.

    `(getattrofunc)Proxy_getattro` is called as `Proxy_getattro((ProxyObject *)self, ...)`: calling
    through the cast is undefined (GCC warns), and `(getattrofunc)f(...)` would cast the result.
    """
    value = value.strip()
    name = referenced_name(value)
    f = module.function(name) if name else None
    if name is not None and f is not None and f.params:
        own = f.params[0].type_text.rsplit(f.params[0].name or "\0", 1)[0].strip() if f.params[0].name else ""
        return name, f"({own})self" if own and own.replace(" ", "") != "PyObject*" else "self"
    return (f"({value})" if value.startswith("(") else value), "self"


def _spec_slots(values, guards, sub_values, sub_guards) -> tuple[list[SpecSlot], list[tuple[str, str]]]:
    slots, members = [], []
    for name in capi.TYPE_FIELDS:
        value = values.get(name)
        if value is None or is_null(value) or name in capi.SPEC_FIELDS or name in capi.NOT_A_SLOT:
            continue
        if name in capi.OFFSET_MEMBERS:
            members.append((capi.OFFSET_MEMBERS[name], value))
            continue
        if name in capi.HEAP_TYPE_DEFAULTS and referenced_name(value) in capi.HEAP_TYPE_DEFAULTS[name]:
            continue
        if name == "tp_doc" and not value.lstrip().startswith("("):
            # PyDoc_STRVAR makes a `const char[]`; the slot's pointer is `void *`.
            value = f"(void *){value}"
        slots.append(SpecSlot("Py_" + name, value, guards.get(name)))
    for fields in capi.SUBSTRUCT_FIELDS.values():
        for name in fields:
            value = sub_values.get(name)
            if value is None or is_null(value) or name.startswith("was_") or name == "nb_reserved":
                continue
            slots.append(SpecSlot("Py_" + name, value, sub_guards.get(name)))
    return slots, members


def _flags(values: dict[str, str], inherited: set[str]) -> str:
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


def builtin_name(tp: TypePlan, limited: int | None) -> str | None:
    """For a tp_name with no module part (`"Metadata"`): the name to give the heap type back
    after it is made from a spec named `builtins.Metadata`. The static type had no module
    (`__module__` is 'builtins', repr `<class 'Metadata'>`) and messages print tp_name: both stay.
    None under the limited API, where tp_name cannot be set: the spec takes the module's name."""
    if tp.undotted_name is None or limited is not None or string_value(tp.undotted_name) is None:
        return None
    return tp.undotted_name


def builtins_spec_name(tp_name: str) -> str:
    return f'"builtins.{string_value(tp_name)}"'


def _spec_name(module: ExtensionModule, t: StaticType, values: dict[str, str]) -> tuple[str, str | None]:
    """tp_name, dotted: a heap type without a dot has no `__module__` (and 3.11+ warns)."""
    text = values.get("tp_name")
    value = string_value(text) if text else None
    if text is not None and (value is None or "." in value):
        return text, None
    return f'"{module.name}.{value or t.name}"', text or "(none)"


def _inherits_gc(values: dict[str, str], types: dict[str, StaticType], assigns) -> bool | None:
    """Whether a type gets Py_TPFLAGS_HAVE_GC from its base; None for a base porter cannot judge."""
    base = values.get("tp_base")
    if not base or is_null(base) or referenced_name(base) == "PyBaseObject_Type":
        return False
    name = referenced_name(base)
    if name not in types:
        return None
    base_type = types[name]
    flags = base_type.slot_text("tp_flags") or ""
    flags += " ".join(a.value for a in assigns if a.target == name and a.field == "tp_flags")
    return "Py_TPFLAGS_HAVE_GC" in flags


def _inherited(t: StaticType, slot: str, types: dict[str, StaticType], assigns) -> str | None:
    """A slot's own value, or the one it inherits from the module's base types."""
    seen = set()
    current: StaticType | None = t
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


def _with_flag(flags: str, flag: str) -> str:
    return flags if flag in flags else f"{flags.rstrip()} | {flag}"


def creation_order(plans: tuple[TypePlan, ...]) -> list[TypePlan]:
    """The types in the order exec creates them: each base before the types derived from it."""
    by_name = {p.name: p for p in plans}
    order: list[TypePlan] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for dep in by_name[name].deps:
            if dep in by_name:
                visit(dep)
        order.append(by_name[name])

    for p in plans:
        visit(p.name)
    return order


__all__ = ["TypePlan", "plan_types", "convertible_types", "GlobalKind", "Initializer"]
