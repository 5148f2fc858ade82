"""The plan of a port: every decision the steps carry out, made once from the facts.

Planning reads facts only and decides everything that more than one step needs: which globals
move and how each function reaches state (planning.decide), the names porter adds (one
allocator), the state fields, the heap type plans, where the state block goes, and what the
module may claim. Steps then only turn the plan into edits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import cached_property

from porter import capi
from porter.analyze.functions import init_phase
from porter.analyze.initializers import is_null, sizeof_operand
from porter.model import (
    CallbackSlot,
    ExtensionModule,
    Function,
    GlobalKind,
    InitBody,
    InitStyle,
    Location,
    RoleKind,
    SpecType,
    TypeDefinition,
    c_name,
)
from porter.rewrite.layout import FileLayout
from porter.rewrite.names import (
    EXEC_PARAM_CANDIDATES,
    MODULE_PARAM_CANDIDATES,
    STATE_VAR_CANDIDATES,
    TYPE_VAR_CANDIDATES,
    NameAllocator,
    Names,
    module_prefix,
)
from porter.rewrite.planning.callback_slots import ported_slots
from porter.rewrite.planning.clinic_state import ClinicState, plan_clinic_state
from porter.rewrite.planning.decide import Decisions, decide
from porter.rewrite.planning.definition_name import definition_name
from porter.rewrite.planning.fields import MODULE_ATTRIBUTE_KEY, StateField, state_fields
from porter.rewrite.planning.placement import MacroUnit, Placement, late_types, place_callback_state, place_state
from porter.rewrite.planning.posture import Posture, choose_posture
from porter.rewrite.planning.process_once import (
    InitOnce,
    OnceCall,
    init_once_statements,
    lockable_once_guards,
    once_per_process_calls,
)
from porter.rewrite.planning.reach import GlobalKey
from porter.rewrite.planning.tables import LocalTable, in_table, local_tables, relocate_uses
from porter.rewrite.planning.types import TypePlan, convertible_types, plan_types, serves_module_descriptor
from porter.rewrite.vocab import AccessKind, Reason


@dataclass(frozen=True)
class Plan:
    module: ExtensionModule
    layouts: dict[str, FileLayout]
    unsafe: bool
    decisions: Decisions
    names: Names
    fields: tuple[StateField, ...]
    types: tuple[TypePlan, ...]  # converted static types, bases first
    spec_types: tuple[SpecType, ...]  # heap types init already makes: made with the module now
    placement: Placement | None  # where the state block goes; None: no block needed
    hoisted_types: tuple[TypeDefinition, ...]  # type definitions moved above the state block
    hoisted_macros: tuple[MacroUnit, ...]  # #define groups moved above the state block
    clinic_state: ClinicState  # the `clinic_state()` macros the clinic input changes need
    callback_block: Location | None  # the thread-local's own place, when the block is in a header
    posture: Posture
    limited_api: int | None  # the Py_LIMITED_API the package declares: nothing newer is emitted
    needs_by_type: bool
    needs_by_operands: bool
    needs_by_cls: bool  # a clinic method reaches state from its defining class
    needs_callback_state: bool
    # Module parameters not declared PyObject * (m_free's `void *module`, a method declared with
    # `PyTypeObject *` and cast in its table): they need a cast to PyObject *.
    untyped_module_params: frozenset[str]
    # Static types that stay static and whose dict exec fills (`T.tp_dict`): exec then runs once
    # per process, and later loads take the first load's namespace.
    exec_once: tuple[str, ...] = ()
    once_calls: tuple[OnceCall, ...] = ()  # process-wide calls made on the first load only
    once_locks: tuple[Location, ...] = ()  # once-guard statements exec will run holding a lock
    once_locked_already: tuple[Location, ...] = ()  # ... and those a port locked already
    init_once: tuple[InitOnce, ...] = ()  # statements of exec setting kept C data, run once per process
    failure: Reason | None = None  # planning found that the module cannot be ported
    # File-scope tables whose rows name moved globals: declared in the function that reads them.
    local_tables: tuple[LocalTable, ...] = ()
    # A lower Py_LIMITED_API that a unit including the state block's header defines for itself:
    # what the block names beyond it is compiled only where it is there.
    header_limited_api: int | None = None

    def field(self, key: GlobalKey) -> StateField:
        return next(f for f in self.fields if f.key == key)

    @property
    def module_attribute_field(self) -> str | None:
        return next((f.name for f in self.fields if f.key == MODULE_ATTRIBUTE_KEY), None)

    @property
    def exec_function(self) -> str | None:
        body = self.module.init_body
        return body.function if body else None

    def layout(self, file: str) -> FileLayout:
        return self.layouts[file]

    @cached_property
    def state_tagged(self) -> bool:
        """Whether the state struct gets a tag: a header declares a function that now takes
        the state, and a header cannot rely on the struct's definition coming first
        (`struct X_state;` there, and `struct X_state *` in its prototypes), or a callback
        slot's signature takes it (the state may hold what the slot's struct is). The module's
        own struct can take one when it is an untagged typedef that stays where it is."""
        takes_state = self.decisions.helpers | set(self.names.impl)
        early = any(self.names_state_early(p.file, p.span.start)
                    for f in self.module.functions if f.name in takes_state for p in f.prototypes) \
            or bool(self.ported_slots)
        return early and (self.names.new_struct or self.existing_struct_tag_at is not None)

    @cached_property
    def ported_slots(self) -> list[CallbackSlot]:
        """The callback slots whose functions take the state (planning.callback_slots)."""
        return ported_slots(self.module, self.decisions.helpers)

    @cached_property
    def existing_struct_tag_at(self) -> int | None:
        """Where the module's own state struct, `typedef struct { ... } S;`, can take the tag
        `S` (right after `struct`): it has none, and stays where it is."""
        existing, placement = self.module.state_struct, self.placement
        if self.names.new_struct or existing is None or placement is None or existing.file != placement.file \
                or existing.statement.end > placement.at:
            return None
        m = re.match(rb"typedef\s+struct(\s*)\{", self.layout(existing.file).text[existing.statement.start:])
        return existing.statement.start + m.start(1) if m else None

    def names_state_early(self, file: str, offset: int) -> bool:
        """Whether a declaration at `offset` in a header may come before the state struct is
        defined: anywhere but below the state block in its own header."""
        placed = self.placement
        return file.endswith(".h") and not (placed is not None and placed.file == file and offset >= placed.at)

    @property
    def exec_phase(self) -> frozenset[str]:
        """exec and the helpers only it calls, transitively (`_datetime_exec(module)`): code
        that ran once per process and now runs on every load."""
        exec_function = self.exec_function
        if exec_function is None:
            return frozenset()
        return frozenset(init_phase(list(self.module.functions), {exec_function}))

    @property
    def exec_is_noop(self) -> bool:
        """PyInit only returns `PyModule_Create(&def)` and the port gives exec nothing to do: the
        module gets no exec function and no Py_mod_exec slot (an empty one is only noise)."""
        body = self.module.init_body
        return (body is not None and self._init_only_makes_the_module(body) and body.statement_count == 1
                and body.create_kind == "return" and not body.type_readies
                and not any(f.initial for f in self.fields))

    @property
    def exec_delegate(self) -> str | None:
        """PyInit only creates the module and has `W(m)` fill it, and the port adds nothing to
        exec: W itself (`static int W(PyObject *m)`) is the Py_mod_exec function, not a
        generated exec that only calls it."""
        body = self.module.init_body
        worker = self.module.function(body.only_worker) if body is not None and body.only_worker else None
        if worker is None or body is None:
            return None
        params = worker.params
        return worker.c_name if (
            self._init_only_makes_the_module(body)
            # (the worker's own PyType_Ready calls stay where they are)
            and not any(r.file == body.file and body.body.start <= r.statement.start < body.body.end
                        for r in body.type_readies)
            and not body.add_module and not body.returning_macros and not body.module_var_global
            and not self.fields and not self.decisions.needs.get(worker.name)
            and worker.return_type.strip() == "int" and len(params) == 1
            and re.search(r"\bPyObject\s*\*", params[0].type_text) is not None) else None

    def _init_only_makes_the_module(self, body: InitBody) -> bool:
        """What an exec of porter's own would be for is absent: a single-phase PyInit porter reads
        whole, that adds no objects itself, and a port that moves no type and needs no state there."""
        return (self.module.init_style is not InitStyle.MULTI_PHASE and body.function == self.module.init.function
                and body.header_split is None and not body.problems and not body.add_objects
                and not self.types and not self.spec_types and not self.names.last_module
                and not self.decisions.needs.get(body.function))

    def has(self, name: str) -> bool:
        """Whether the generated code may name `name` in the package's declared limited API."""
        return capi.in_limited_api(name, self.limited_api)

    def targets(self, name: str) -> bool:
        """Whether the version the port targets has `name` (any version, behind a guard, unless
        the module belongs to a CPython tree: then that tree's version)."""
        return capi.targets(name, self.module.cpython_version)

    def guard(self, name: str) -> str | None:
        """The `#if` condition generated code naming `name` needs; None: none (a CPython tree)."""
        return capi.version_guard(name, self.module.cpython_version)


def declared_limited_api(module: ExtensionModule, unit: str | None = None) -> int | None:
    """The Py_LIMITED_API the translation unit of `unit` (default: the init file's) defines,
    else the one the module's build files set. A part file that defines its own before its
    includes (`#define Py_LIMITED_API 0x030c0000`) limits only itself."""
    files = module.translation_unit(unit or module.init.file)
    for m in module.macros:
        if m.name == "Py_LIMITED_API" and m.active is True and m.file in files:
            value = capi.limited_api_value(m.body_text)
            if value is not None:
                return value
    return module.build.limited_api_version if module.build is not None else None


def header_limited_api(module: ExtensionModule, header: str, limited: int | None) -> int | None:
    """The lowest Py_LIMITED_API below the module's own (`limited`) among the units that
    include `header`: what the code put there must also compile under. None: none lower."""
    lowest = None
    for root in module.files:
        if root == header or root.endswith(".h") or module.unit_roots(root) != {root} \
                or header not in module.translation_unit(root):
            continue
        value = declared_limited_api(module, root)
        if value is not None and (limited is None or value < limited) and (lowest is None or value < lowest):
            lowest = value
    return lowest


def existing_state_struct(module: ExtensionModule) -> str | None:
    """The struct `m_size = sizeof(S)` names, when the module already has module state."""
    d = module.definition
    size = d.field("m_size") if d else None
    operand = sizeof_operand(size.text if size is not None else None)
    return operand[0] if operand else None


def build_plan(module: ExtensionModule, layouts: dict[str, FileLayout], unsafe: bool) -> Plan:
    limited = declared_limited_api(module)
    module, clinic_state = plan_clinic_state(module)
    convertible = convertible_types(module, unsafe, limited)
    vetoed_later: dict[GlobalKey, Reason] = {}
    tables = local_tables(module, layouts)
    module = relocate_uses(module, tables)
    while True:
        plan = _plan_once(module, layouts, unsafe, limited, decide(module, convertible, vetoed_later), clinic_state)
        plan = replace(plan, local_tables=tuple(t for t in tables if any(
            in_table(tables, u) is t for g in plan.decisions.movable.values() for u in g.uses)))
        placement = plan.placement
        late = late_types(module, plan.fields, placement, layouts, plan.header_limited_api) \
            if placement is not None else None
        new = {k: why for k, why in (late.vetoes if late else {}).items() if k not in vetoed_later}
        if not new:
            return replace(plan, hoisted_types=late.hoisted if late else (),
                           hoisted_macros=late.hoisted_macros if late else ())
        vetoed_later.update(new)  # only grows: the loop ends


def _plan_once(module: ExtensionModule, layouts: dict[str, FileLayout], unsafe: bool, limited: int | None,
               decisions: Decisions, clinic_state: ClinicState) -> Plan:
    names, allocator = _names(module, decisions)
    existing = module.state_struct
    existing_fields = frozenset(f.name for f in existing.fields) if existing and not names.new_struct else frozenset()
    moved_types = {k[1] for k, g in decisions.movable.items() if g.kind is GlobalKind.STATIC_TYPE}
    descriptor = any(serves_module_descriptor(t, module) for t in module.static_types if t.name in moved_types)
    fields = state_fields(module, decisions.movable, allocator, existing_fields, descriptor)
    by_kind = {acc.kind for name, acc in decisions.access.items() if decisions.needs.get(name)}
    moved = {k[1] for k in decisions.movable}
    clinic_state = replace(clinic_state, macros=tuple(m for m in clinic_state.macros if any(
        n.file == m.file and n.name in moved for n in clinic_state.inputs)))
    needs_by_type = bool(by_kind & {AccessKind.TYPE, AccessKind.NEW, AccessKind.CLASS}) or descriptor \
        or any(m.reach != "module" for m in clinic_state.macros)
    needs_callback_state = AccessKind.CALLBACK in by_kind
    failure: Reason | None = None
    if decisions.blocked:
        failure = Reason(decisions.blocked[0].code, "; ".join(dict.fromkeys(r.message for r in decisions.blocked)))
    type_fields = {f.key[1]: f.name for f in fields if f.is_type}
    types = plan_types(module, layouts, moved_types, type_fields, allocator,
                       next((f.name for f in fields if f.key == MODULE_ATTRIBUTE_KEY), None), names.state_var)
    if isinstance(types, Reason):
        failure, types = failure or types, ()
    placement = callback_block = None
    if fields or decisions.state_macros or any(decisions.needs.values()) or needs_by_type \
            or decisions.last_module or decisions.last_module_macros:
        placed = place_state(module, decisions, layouts, moved_types,
                             tuple(Location(m.file, m.include) for m in clinic_state.macros))
        if isinstance(placed, Reason):
            failure = failure or placed
        else:
            placement = placed
            if placed.new_file:
                layouts = {**layouts, placed.file: FileLayout(b"")}  # porter's own header, empty so far
            if needs_callback_state and placed.shared_header:
                block = place_callback_state(module, decisions, layouts)
                if isinstance(block, Reason):
                    failure = failure or block
                else:
                    callback_block = block
    renamed = definition_name(module, placement, allocator, names.base)
    if renamed is not None:
        names = replace(names, def_name=renamed)
    exec_once = filled_static_types(module, moved_types)
    if exec_once and module.init_style is not InitStyle.MULTI_PHASE:
        names = replace(names, exec_once=allocator.fresh(f"{names.base}_exec_once"),
                        first_namespace=allocator.fresh(f"{names.base}_first_namespace"))
    else:
        exec_once = ()
    init_function = module.exec_function
    once_calls = once_per_process_calls(
        module, frozenset(init_phase(list(module.functions), {init_function})) if init_function else
        frozenset(), {file: layout.text for file, layout in layouts.items()})
    if once_calls:
        # One test per call: each is made on the first load (a shared test would let only one).
        names = replace(names, first_load={(c.file, c.call.start): allocator.fresh(f"{names.base}_first_load")
                                           for c in once_calls})
    once_locks, locked_already = lockable_once_guards(module, init_function,
                                                      {file: layout.text for file, layout in layouts.items()})
    init_once, init_once_names = init_once_statements(module, decisions.kept, init_function,
                                                      {file: layout.text for file, layout in layouts.items()})
    if once_locks or init_once:
        names = replace(names, once_lock=allocator.fresh(f"{names.base}_once_lock"))
    if init_once:
        names = replace(names, once_flags={(i.file, i.statement.start): allocator.fresh(
            f"{names.base}_once_{i.global_name}") for i in init_once})
    if init_once_names:
        # Set once per process under the lock, they never change after: nothing is left to do.
        decisions = replace(decisions, kept={k: why for k, why in decisions.kept.items()
                                             if not (k[0] is None and k[1] in init_once_names)})
    spec_types = tuple(s for s in module.spec_types
                       if (None, s.global_name) in decisions.movable and s.function == init_function
                       and not _made_with_module(s))
    return Plan(
        module=module, layouts=layouts, unsafe=unsafe, decisions=decisions, names=names, fields=fields,
        types=types, spec_types=spec_types, placement=placement, hoisted_types=(), hoisted_macros=(),
        clinic_state=clinic_state,
        callback_block=callback_block,
        posture=choose_posture(module, decisions, exec_once, once_calls, once_locks + locked_already),
        limited_api=limited,
        header_limited_api=header_limited_api(module, placement.file, limited)
        if placement is not None and placement.shared_header else None,
        needs_by_type=needs_by_type, once_calls=once_calls, once_locks=once_locks,
        once_locked_already=locked_already, init_once=init_once,
        needs_by_operands=AccessKind.BINARY in by_kind,
        needs_by_cls=AccessKind.DEFINING_CLASS in by_kind, needs_callback_state=needs_callback_state,
        untyped_module_params=frozenset(
            f.params[0].name for f in module.functions
            if f.params and f.params[0].name and f.has_role(RoleKind.MODULE_SLOT, RoleKind.MODULE_METHOD)
            and _declared_otherwise(f.params[0].type_text)),
        exec_once=exec_once, failure=failure,
    )


def filled_static_types(module: ExtensionModule, moved_types: set[str]) -> tuple[str, ...]:
    """The static types that stay static and whose dict the init phase reads (`T.tp_dict`, to
    set `utc` or `__module__` in it): objects that stay process-global and that init fills."""
    body = module.init_body
    if body is None:
        return ()
    phase = init_phase(list(module.functions), {body.function})
    return tuple(sorted({g.name for g in module.globals if g.kind is GlobalKind.STATIC_TYPE and g.function is None
                         and g.name not in moved_types
                         and any(u.member == "tp_dict" and u.function in phase for u in g.uses)}))


def _declared_otherwise(type_text: str) -> bool:
    """A module parameter declared `void *` (m_free) or `PyTypeObject *` (a method cast in its
    table): it needs a cast to PyObject * to be passed on."""
    return re.search(r"\b(void|PyTypeObject)\b", type_text) is not None


def _made_with_module(s: SpecType) -> bool:
    """PyType_FromModuleAndSpec(module, ...) or PyType_FromMetaclass(meta, module, ...) already."""
    at = {"PyType_FromModuleAndSpec": 0, "PyType_FromMetaclass": 1}.get(s.creator)
    return at is not None and at < len(s.arg_texts) and not is_null(s.arg_texts[at])


def _own_state_getter(module: ExtensionModule, state_type: str) -> Function | None:
    """The module's own accessor of its existing state: a static function of one `PyObject *`
    parameter that returns `state_type *` from PyModule_GetState (CPython's `get_<mod>_state`)."""
    for f in module.functions:
        if (f.is_static and len(f.params) == 1 and re.search(r"\bPyObject\s*\*", f.params[0].type_text)
                and f.return_type.strip() == state_type
                and {c.callee for c in f.calls} in ({"PyModule_GetState"}, {"PyModule_GetState", "assert"})):
            return f
    return None


def _names(module: ExtensionModule, decisions: Decisions) -> tuple[Names, NameAllocator]:
    allocator = NameAllocator(module.names_in_use, {m.name for m in module.macros})
    base = module_prefix(module.name)
    state_var = allocator.first_free(STATE_VAR_CANDIDATES, f"{module.name.strip('_')}_st")
    existing = existing_state_struct(module)
    # `<mod>_state`, else `<mod>_module_state` (a taken `ctypes_state` makes no `ctypes_state2`).
    state_type = existing or allocator.first_free((f"{base}_state", f"{base}_module_state"), f"{base}_state")
    def_name = module.definition.name if module.definition else allocator.fresh(f"{base}module")
    own = _own_state_getter(module, existing) if existing else None
    get_state = c_name(own.name) if own is not None else allocator.fresh(f"get_{base}_state")
    get_state_by_type = allocator.fresh(f"get_{base}_state_by_type")
    get_state_by_operands = allocator.fresh(f"get_{base}_state_by_operands")
    get_state_by_cls = allocator.fresh(f"get_{base}_state_by_cls")
    # A module that has its own `<mod>_clear` gets `<mod>_module_clear` (which calls it), not `<mod>_clear2`.
    exec_name = allocator.first_free((f"{base}_exec", f"{base}_module_exec"), f"{base}_exec")
    traverse, clear, free = (allocator.first_free((f"{base}_{n}", f"{base}_module_{n}"), f"{base}_{n}")
                             for n in ("traverse", "clear", "free"))
    slots = allocator.first_free((f"{base}_slots", f"{base}_module_slots"), f"{base}_slots")
    callback_state = allocator.fresh(f"{base}_callback_state")
    body = module.init_body
    if body is not None and body.module_var_reused:
        exec_param = allocator.first_free(EXEC_PARAM_CANDIDATES, "exec_module")
    else:
        exec_param = (body.module_var if body is not None else None) or "module"
    impl = {name: allocator.fresh(f"{c_name(name)}_impl") for name, acc in sorted(decisions.access.items())
            if acc.kind is AccessKind.SPLIT and decisions.needs.get(name)}
    names = Names(
        base=base, state_type=state_type, get_state=get_state, get_state_by_type=get_state_by_type,
        get_state_by_cls=get_state_by_cls, get_state_by_operands=get_state_by_operands, exec=exec_name,
        traverse=traverse, clear=clear,
        free=free, slots=slots, def_name=def_name, state_var=state_var, callback_state=callback_state,
        thread_local=allocator.fresh(f"{base.upper()}_THREAD_LOCAL"), exec_param=exec_param,
        module_param=allocator.first_free(MODULE_PARAM_CANDIDATES, "module") if decisions.module_passing.helpers
        else "",
        instance_of=allocator.fresh(f"{base}_instance_of") if decisions.instance_checks else "",
        type_var=allocator.first_free(TYPE_VAR_CANDIDATES, "dealloc_type"), new_struct=existing is None,
        module_by_type=allocator.fresh(f"get_{base}_module_by_type"),
        module_descriptor=allocator.fresh(f"{base}_module_descriptor"),
        keep_module_descriptor=allocator.fresh(f"{base}_keep_module_descriptor"), impl=impl,
        runtime_slots=allocator.fresh(f"{base}_add_runtime_slots"))
    if own is not None:
        names = replace(names, own_get_state=own.name)
    if any(decisions.access[name].kind is AccessKind.SPLIT and not decisions.access[name].params for name in impl):
        names = replace(names, state_of_interpreter=allocator.fresh(f"{base}_state_of_this_interpreter"))
    if decisions.last_module or decisions.last_module_macros:
        names = replace(names, last_module=allocator.fresh(f"{base}_last_module"),
                        last_module_interp=allocator.fresh(f"{base}_last_module_interp"),
                        find_last_module=allocator.fresh(f"find_{base}_module"))
    return names, allocator
