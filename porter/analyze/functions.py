"""Functions of a module: parameters, calls, and the role each plays for CPython."""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from porter import capi
from porter.analyze import ctree
from porter.analyze.callback_sites import object_locals, sync_sites, synchronous_callers, void_param_casts
from porter.analyze.function_keys import FunctionKeys
from porter.analyze.index import FileIndex
from porter.analyze.initializers import is_null, referenced_name
from porter.analyze.macros import MacroTable, expand, split_args
from porter.analyze.ownership import Ownership, owned
from porter.lexer import token_texts
from porter.model import (
    Alternative,
    Call,
    FieldRelease,
    Function,
    Location,
    ModuleDef,
    Param,
    Prototype,
    Role,
    RoleKind,
    Span,
    SpanList,
    StaticType,
    UnreadCall,
    c_name,
)
from porter.parse import Node, descendants
from porter.spans import SpanSet

_FLAG = re.compile(r"\bMETH_\w+")


@dataclass
class MethodEntry:
    table: str
    function: str
    flags: tuple[str, ...]
    location: Location


@dataclass
class Tables:
    """Definition tables found in the module's files, by (file, variable name): four files may
    each have their own `static PyMethodDef methods[]`."""

    methods: dict[tuple[str, str], list[MethodEntry]] = field(default_factory=dict)
    getsets: dict[tuple[str, str], list[tuple[str | None, str | None, Location]]] = field(default_factory=dict)
    spans: list[Location] = field(default_factory=list)  # every table initialiser
    slot_tables: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # PyType_Slot / PyModuleDef_Slot
    specs: dict[str, str] = field(default_factory=dict)  # PyType_Spec -> its PyType_Slot table
    _names: dict[int, tuple[dict, int, dict[str, list[tuple[str, str]]]]] = field(
        default_factory=dict, repr=False, compare=False)

    def table(self, kind: dict, name: str | None, file: str | None) -> tuple[str, str] | None:
        """The table a name refers to from `file`: that file's own, else the only one of that name."""
        if name is None:
            return None
        if file is not None and (file, name) in kind:
            return (file, name)
        named = self._by_name(kind).get(name, ())
        return named[0] if len(named) == 1 else None

    def _by_name(self, kind: dict) -> dict[str, list[tuple[str, str]]]:
        # The keys of a kind by name: a search of every table per name looked up was quadratic
        # in a unity file's tables. Tables only grow while they are collected: a count that
        # moved means keys were added since.
        cached = self._names.get(id(kind))
        if cached is None or cached[0] is not kind or cached[1] != len(kind):
            by_name: dict[str, list[tuple[str, str]]] = {}
            for key in kind:
                by_name.setdefault(key[1], []).append(key)
            cached = self._names[id(kind)] = (kind, len(kind), by_name)
        return cached[2]


def collect_tables(indexes: list[FileIndex], macros: MacroTable) -> Tables:
    tables = Tables()
    for index in indexes:
        src = index.src
        for decl in index.file_declarations + [d for d, _ in index.local_declarations]:
            tname = ctree.type_name(decl)
            if tname == "PyType_Spec":
                _read_specs(src, decl, tables)
                continue
            if tname not in ("PyMethodDef", "PyGetSetDef", "PyType_Slot", "PyModuleDef_Slot"):
                continue
            for d in ctree.declarators(decl):
                info = ctree.read_declarator(d)
                if info.name is None or info.value is None or info.value.type != "initializer_list":
                    continue
                tables.spans.append(Location(index.path, ctree.span(info.value)))
                # One method definition (`PyMethodDef f_def = {"f", f, METH_O};`) is a table of one row.
                rows = ctree.initializer_elements(info.value) if info.is_array or tname != "PyMethodDef" \
                    else [info.value]
                if tname == "PyMethodDef":
                    tables.methods[(index.path, info.name)] = _method_rows(src, index, macros, info.name, rows)
                elif tname == "PyGetSetDef":
                    tables.getsets[(index.path, info.name)] = getset_rows(src, index, macros, rows)
                else:
                    tables.slot_tables[info.name] = _slot_rows(src, index, macros, rows)
    return tables


def _read_specs(src, decl: Node, tables: Tables) -> None:
    """`PyType_Spec S = {name, basicsize, itemsize, flags, slots}` (or `.slots = T`)."""
    for d in ctree.declarators(decl):
        info = ctree.read_declarator(d)
        if info.name is None or info.value is None or info.value.type != "initializer_list":
            continue
        slots = None
        for position, el in enumerate(ctree.initializer_elements(info.value)):
            if el.type == "initializer_pair":
                designator = el.child_by_field_name("designator")
                if designator is not None and designator.text.decode().lstrip(".").strip() == "slots":
                    slots = el.child_by_field_name("value")
            elif position == 4:
                slots = el
        name = referenced_name(src.text_of(slots)) if slots is not None else None
        if name:
            tables.specs[info.name] = name


def _row_values(src, row: Node) -> list[str]:
    if row.type != "initializer_list":
        return []
    values = []
    for el in ctree.initializer_elements(row):
        if el.type == "initializer_pair":
            el = el.child_by_field_name("value") or el
        values.append(src.text_of(el))
    return values


def _method_rows(src, index, macros, table, rows) -> list[MethodEntry]:
    out = []
    for row in rows:
        values = _row_values(src, row)
        macro = ctree.call_name(row) if row.type == "call_expression" else None
        if macro is not None and macro in macros:
            # method(add_word, METH_VARARGS): a project macro that spells the row.
            here = macros.at(index.path, row.start_byte)
            text = expand(here, macro, [src.text_of(a) for a in ctree.call_args(row)]) or ""
            values = split_braced(text)
        clinic = next((m.name for m in src.masks_at(row.start_byte) if m.name.endswith("_METHODDEF")), None)
        if clinic is not None:
            # Argument Clinic: the mask `{FOO_METHOD},` stands for FOO_METHODDEF.
            text = expand(macros.at(index.path, row.start_byte), clinic, None) or ""
            values = split_braced(text)
        if len(values) < 2 or is_null(values[1]):
            continue
        fn = referenced_name(values[1])
        if fn is None:
            continue
        flags = tuple(_FLAG.findall(values[2])) if len(values) > 2 else ()
        out.append(MethodEntry(table, fn, flags, Location(index.path, ctree.span(row))))
    return out


def split_braced(text: str) -> list[str]:
    """The values of one `{"name", (PyCFunction)f, METH_O, doc}` row, split on the lexer."""
    text = text.strip().rstrip(",").strip()
    if not (text.startswith("{") and text.endswith("}")):
        return []
    args, _ = split_args(text.encode(), 0)
    return args or []


def _expanded_rows(src, index, macros, row: Node) -> list[list[str]]:
    """The values of each row a table row spells: itself, or the rows a project macro there
    expands to (`DESCRIPTOR_BASE_SLOTS,` for two slots, `GETTER(x)` for one getter)."""
    name = row.text.decode() if row.type == "identifier" else ctree.call_name(row) \
        if row.type == "call_expression" else None
    if name is None or name not in macros:
        return [_row_values(src, row)]
    args = [src.text_of(a) for a in ctree.call_args(row)] if row.type == "call_expression" else None
    text = expand(macros.at(index.path, row.start_byte), name, args) or ""
    rows, _ = split_args(f"({text})".encode(), 0)
    return [split_braced(r) for r in rows or ()]


def getset_rows(src, index, macros, rows):
    out = []
    for row in rows:
        for values in _expanded_rows(src, index, macros, row):
            if len(values) >= 2:
                out.append(_getset_row(values, Location(index.path, ctree.span(row))))
    return out


def _getset_row(values: list[str], where: Location):
    getter = None if is_null(values[1]) else referenced_name(values[1])
    setter = None if len(values) < 3 or is_null(values[2]) else referenced_name(values[2])
    return getter, setter, where


def _slot_rows(src, index, macros, rows):
    out = []
    for row in rows:
        for values in _expanded_rows(src, index, macros, row):
            if len(values) >= 2 and not is_null(values[1]):
                name = referenced_name(values[1])
                if name:
                    out.append((values[0].strip(), name))
    return out


def assign_roles(
    init_name: str | None,
    module_def: ModuleDef | None,
    types: list[StaticType],
    tables: Tables,
    assigned: dict[str, list[tuple[str, str]]] | None = None,
    file_roles: FileRoles | None = None,
    added_tables: tuple[tuple[str, str], ...] = (),
    key_of: Callable[[str, str], str] | None = None,
    wanted: Iterable[str] | None = None,
) -> tuple[dict[str, list[Role]], dict[str, tuple[str, ...]], dict[str, list[str]]]:
    """Roles by function name, METH_ flags of each method, and the types naming each.

    `assigned` holds the slots init fills at run time (`Pattern_Type.tp_methods = ...`);
    `file_roles` what the slot tables and the other method tables of the files give
    (`file_roles_of`, computed once for every module of the files); `added_tables` the tables
    the module adds to itself as module functions (analyze.added_functions).
    `key_of(file, name)` is the function a name in a file means: the rows of a table name the
    function their own file sees, so a static function that two files define gets only the
    roles of the tables and types of its own file.
    `wanted`: the C names whose roles `file_roles` gives are asked for (a module of a file
    with several init functions asks for those it owns), None for all of them.
    """
    key_of = key_of or _plain_name
    file_roles = file_roles or file_roles_of(tables, {}, key_of)
    roles: dict[str, list[Role]] = {}
    flags: dict[str, tuple[str, ...]] = {}
    owners: dict[str, list[str]] = {}
    current_type: list[str] = []

    def add(fn: str | None, role: Role, file: str | None = None) -> None:
        if fn and file is not None:
            fn = key_of(file, fn)
        if fn:
            _add_role(roles, owners, fn, role, current_type[0] if current_type else None)

    def add_method(entry: MethodEntry, role: Role) -> None:
        add(entry.function, role, entry.location.file)
        flags[key_of(entry.location.file, entry.function)] = entry.flags

    if init_name:
        add(init_name, Role(RoleKind.MODULE_INIT))
    claimed: set[tuple[str, str]] = set()
    if module_def is not None:
        m_methods = module_def.field("m_methods")
        name = referenced_name(m_methods.text) if m_methods and not is_null(m_methods.text) else None
        table = tables.table(tables.methods, name, module_def.file)
        if table is not None:
            claimed.add(table)
            for entry in tables.methods[table]:
                add_method(entry, Role(RoleKind.MODULE_METHOD))
        for fname, role in (("m_traverse", Role(RoleKind.MODULE_SLOT)), ("m_clear", Role(RoleKind.MODULE_SLOT)),
                            ("m_free", Role(RoleKind.MODULE_SLOT))):
            f = module_def.field(fname)
            if f is not None and not is_null(f.text):
                add(referenced_name(f.text), role, module_def.file)
        m_slots = module_def.field("m_slots")
        if m_slots is not None and not is_null(m_slots.text):
            for _, fn in tables.slot_tables.get(referenced_name(m_slots.text) or "", []):
                add(fn, Role(RoleKind.MODULE_SLOT))
    for table in added_tables:
        if table in tables.methods and table not in claimed:
            claimed.add(table)
            for entry in tables.methods[table]:
                add_method(entry, Role(RoleKind.MODULE_METHOD))
    for t in types:
        current_type[:] = [t.name]
        runtime = (assigned or {}).get(t.name, [])
        tables_of_t = list(t.tables) + [(f, referenced_name(v)) for f, v in runtime
                                         if f in ("tp_methods", "tp_getset") and referenced_name(v)]
        for slot_name, name in tables_of_t:
            methods = tables.table(tables.methods, name, t.file) if slot_name == "tp_methods" else None
            if methods is not None:
                claimed.add(methods)
                for entry in tables.methods[methods]:
                    add_method(entry, Role(RoleKind.TYPE_METHOD))
            getsets = tables.table(tables.getsets, name, t.file) if slot_name == "tp_getset" else None
            if getsets is not None:
                claimed.add(getsets)
                for getter, setter, where in tables.getsets[getsets]:
                    add(getter, Role(RoleKind.GETTER), where.file)
                    add(setter, Role(RoleKind.SETTER), where.file)
        runtime_slots = [type("Slot", (), {"name": f, "text": v})() for f, v in runtime]
        # The type's own initialiser names what its file sees; a substruct or init may be elsewhere.
        in_file = [(slot, t.file) for slot in t.slots] + [(slot, None) for slot in list(t.substruct_slots)
                                                           + runtime_slots]
        for slot, file in in_file:
            if slot.name.startswith(("tp_", "nb_", "sq_", "mp_", "am_", "bf_")) and not is_null(slot.text):
                if slot.name in capi.NON_FUNCTION_TYPE_FIELDS:
                    continue
                add(referenced_name(slot.text), Role.of_slot(slot.name), file)
    current_type.clear()
    # Then what the files' slot tables give, and the methods of the tables nothing claims: a
    # function's roles keep the order in which one pass over every table would give them.
    names = file_roles.names if wanted is None else [n for n in wanted if n in file_roles.names]
    for name in names:
        for key, role, owner, entry_flags in file_roles.slot_roles.get(name, ()):
            _add_role(roles, owners, key, role, owner)
            if entry_flags is not None:
                flags[key] = entry_flags
    for name in names:
        for table, key, entry in file_roles.methods.get(name, ()):
            if table not in claimed:
                _add_role(roles, owners, key, Role(RoleKind.METHOD), None)
                flags.setdefault(key, entry.flags)
    return roles, flags, owners


def _plain_name(file: str, name: str) -> str:
    return name


def _add_role(roles: dict[str, list[Role]], owners: dict[str, list[str]], key: str, role: Role,
              owner: str | None) -> None:
    if role not in roles.setdefault(key, []):
        roles[key].append(role)
    if owner and owner not in owners.setdefault(key, []):
        owners[key].append(owner)


# A function's key, a role, the type that gives it (a spec's global) and a method's METH_ flags.
_SlotRole = tuple[str, Role, "str | None", "tuple[str, ...] | None"]


@dataclass
class FileRoles:
    """What the tables of a set of files give their functions whatever module reads them: the
    roles of the slot tables (PyType_Slot, PyModuleDef_Slot), and the tables those claim; the
    rows of every other method table, which give METHOD to a module that claims none of them.
    Computed once for the modules of a unity file, each of which then takes the roles of the
    names it owns: reading every table once per module was quadratic in the number of inits."""

    slot_roles: dict[str, list[_SlotRole]]  # C name -> what the slot tables give it
    methods: dict[str, list[tuple[tuple[str, str], str, MethodEntry]]]  # C name -> (table, key, row)
    names: dict[str, None]  # every C name of either, in the order first given
    _unreached: tuple[frozenset[str], list[str]] | None = None

    def unreached(self, reached: frozenset[str]) -> list[str]:
        """The names no init reaches (`Ownership.reached`, the same set for every module)."""
        if self._unreached is None or self._unreached[0] is not reached:
            self._unreached = (reached, [n for n in self.names if n not in reached])
        return self._unreached[1]


def file_roles_of(tables: Tables, spec_globals: dict[str, str], key_of: Callable[[str, str], str]) -> FileRoles:
    """`spec_globals`: the globals that keep heap types made from a spec (global -> spec)."""
    slot_roles: dict[str, list[_SlotRole]] = {}
    names: dict[str, None] = {}
    claimed: set[tuple[str, str]] = set()

    def give(fn: str | None, role: Role, owner: str | None, file: str | None = None,
             entry_flags: tuple[str, ...] | None = None) -> None:
        key = key_of(file, fn) if fn and file is not None else fn
        if key:
            slot_roles.setdefault(c_name(key), []).append((key, role, owner, entry_flags))
            names.setdefault(c_name(key))

    # Slot tables of heap types the module already builds from a spec: the type is the
    # global the spec's type is kept in (`Pair_Type = PyType_FromSpec(&Pair_spec)`).
    owner_of_table = {tables.specs[spec]: g for g, spec in spec_globals.items() if spec in tables.specs}
    for slot_table, rows in tables.slot_tables.items():
        owner = owner_of_table.get(slot_table)
        for slot_id, fn in rows:
            methods = tables.table(tables.methods, fn, None) if slot_id.startswith("Py_tp_methods") else None
            getsets = tables.table(tables.getsets, fn, None) if slot_id.startswith("Py_tp_getset") else None
            if methods is not None:
                claimed.add(methods)
                for entry in tables.methods[methods]:
                    give(entry.function, Role(RoleKind.TYPE_METHOD), owner, entry.location.file, entry.flags)
            elif getsets is not None:
                claimed.add(getsets)
                for getter, setter, where in tables.getsets[getsets]:
                    give(getter, Role(RoleKind.GETTER), owner, where.file)
                    give(setter, Role(RoleKind.SETTER), owner, where.file)
            elif slot_id.startswith(("Py_tp_", "Py_nb_", "Py_sq_", "Py_mp_", "Py_am_", "Py_bf_")):
                give(fn, Role.of_slot(slot_id[3:]), owner)
            elif slot_id.startswith("Py_mod_"):
                give(fn, Role(RoleKind.MODULE_SLOT), owner)
    unclaimed: dict[str, list[tuple[tuple[str, str], str, MethodEntry]]] = {}
    for table, entries in tables.methods.items():
        if table in claimed:
            continue
        for entry in entries:
            if entry.function:
                key = key_of(entry.location.file, entry.function)
                unclaimed.setdefault(c_name(key), []).append((table, key, entry))
                names.setdefault(c_name(key))
    return FileRoles(slot_roles, unclaimed, names)


@dataclass
class _Skeleton:
    """What a function is whatever module its file serves (a unity file's inits share it)."""

    name: str
    index: FileIndex
    node: Node
    fields: dict  # the Function's fields that do not depend on the module's roles
    references: list[tuple[str, Node]]  # uses of its name that are neither calls nor declarations
    called: bool
    taken: dict = field(default_factory=dict)  # address-taken uses -> (taken, sync sites)




def _words_before(text: bytes, name_start: int) -> set[str]:
    """The identifiers of a declaration before its name, and the words of its string literals
    (`visibility("hidden")`): back to the end of the statement, block or directive line before
    it (comments skipped)."""
    start = max(text.rfind(b";", 0, name_start), text.rfind(b"}", 0, name_start), text.rfind(b"{", 0, name_start))
    directive = text.rfind(b"\n#", max(start, 0), name_start)  # only one after `start` counts
    if directive > start:
        start = text.find(b"\n", directive + 2, name_start)
        while start > 0 and text[start - 1:start] == b"\\":  # a continued directive line
            start = text.find(b"\n", start + 1, name_start)
    return {word.decode().strip('"') for kind, word in token_texts(text, max(start + 1, 0), name_start, _WORD_KINDS)
            if kind == "ident" or word[1:-1].decode().isidentifier()}


_WORD_KINDS = frozenset(("ident", "string"))


# `__attribute__((constructor))`: the dynamic loader calls it, with no arguments.
_LOADER_HOOK = re.compile(rb"__attribute__\s*\(\([^;{]*\b(?:constructor|destructor)\b")


def collect_functions(
    indexes: list[FileIndex], roles: dict[str, list[Role]], initializers: tuple[dict[str, SpanSet], ...],
    owners: dict[str, list[str]] | None = None, flags: dict[str, tuple[str, ...]] | None = None,
    spelling_macros: frozenset[str] = frozenset(), shared: dict | None = None,
    keys: FunctionKeys | None = None, owner: Ownership | None = None, port_facts: bool = True,
) -> list[Function]:
    """Function facts for every definition in the module's files that the module owns (in a
    file with several init functions, not what only another init reaches).

    `port_facts`: also read what only a port needs (`_port_fields`, sync callback sites);
    without it those fields keep their empty defaults.

    `spelling_macros` paste or stringify their arguments: a name passed to one is text.
    `shared` keeps, between the modules of one set of files (a unity file's inits), what does
    not depend on the module: each module then only settles roles and addresses taken, and a
    function whose facts come out the same is the same object.
    """
    shared = {} if shared is None else shared
    keys = keys or FunctionKeys({})
    skeletons = shared.get("function skeletons")
    if skeletons is None:
        skeletons = shared["function skeletons"] = _skeletons(indexes, spelling_macros, keys, port_facts)
    made = shared.setdefault("functions made", {})
    out = []
    for sk in owned(skeletons, lambda sk: c_name(sk.name), owner, shared, "function skeletons by name"):
        name = sk.name
        taken_key = tuple(_inside(path, ident, initializers) for path, ident in sk.references)
        if taken_key not in sk.taken:
            taken = tuple(Location(path, ctree.span(ident)) for (path, ident), inside in zip(sk.references, taken_key)
                          if not inside)
            callers = shared.get("synchronous callers")
            if callers is None and port_facts:
                callers = shared["synchronous callers"] = synchronous_callers(indexes)
            sites = sync_sites(indexes, list(taken), _user_data_casts(sk), callers) if port_facts else ()
            sk.taken[taken_key] = (taken, tuple(sites))
        taken, sites = sk.taken[taken_key]
        # Tables name functions by their C name: a static function of a name two files define
        # gets the roles of that name (a role it does not have only keeps its signature).
        spelled = c_name(name)
        # Its own file's tables and types give a static function of a shared name its roles.
        looked_up = name if name in roles else spelled
        fn_roles = list(roles.get(looked_up, []))
        if taken and Role(RoleKind.CALLBACK) not in fn_roles:
            fn_roles.append(Role(RoleKind.CALLBACK))
        if not fn_roles:
            # Named in a table porter could not tie to anything, or named nowhere porter can
            # see (a macro may paste its name): never give it a new parameter.
            referenced = bool(sk.references)
            fn_roles.append(Role(RoleKind.HELPER if sk.called and not referenced else
                                 RoleKind.REFERENCED if referenced else RoleKind.UNREFERENCED))
        key = (tuple(fn_roles), taken_key, tuple((owners or {}).get(looked_up, ())),
               tuple((flags or {}).get(looked_up, ())))
        previous = made.get(name)
        if previous is not None and previous[0] == key:
            out.append(previous[1])
            continue
        function = keys.of_sites(Function(**sk.fields, roles=tuple(fn_roles), address_taken=taken, types=key[2],
                                          flags=key[3], sync_callback_sites=sites))
        made[name] = (key, function)
        out.append(function)
    return out


def _skeletons(indexes: list[FileIndex], spelling_macros: frozenset[str], keys: FunctionKeys,
               port_facts: bool = True) -> list[_Skeleton]:
    # By key: a static function of a name another file also defines is a function of its own.
    defined: dict[str, tuple[FileIndex, Node]] = {}
    others: dict[str, list[Node]] = {}  # #if alternatives of a definition (Function.alternatives)
    for index in indexes:
        for name, nodes in index.functions.items():
            key = keys.key(index.path, name)
            if len(nodes) > 1 and key not in defined and exclusive_definitions(index, nodes):
                # The one this build compiles is the function; the others are edited alike.
                first = next((n for n in nodes if index.src.pre.activity(n.start_byte)), nodes[0])
                others[key] = [n for n in nodes if n is not first]
                nodes = [first]
            defined.setdefault(key, (index, nodes[0]))
    unread = _unread_calls(indexes, defined, keys) if port_facts else {}
    all_called = {keys.key(other.path, c) for other in indexes for c, _ in other.calls} | {
        keys.key(other.path, c) for other in indexes for c in other.macro_called}
    out = []
    for name, (index, fn) in sorted(defined.items(), key=lambda kv: (kv[1][0].path, kv[1][1].start_byte)):
        spelled = c_name(name)
        src = index.src
        body = fn.child_by_field_name("body")
        _, name_node, fdecl = ctree.function_name(fn)
        params = read_params(src, fdecl)
        starts = index.call_starts
        calls = tuple(_call(keys.key(index.path, c), node, port_facts)
                      for d in sorted([fn, *others.get(name, ())], key=lambda n: n.start_byte)
                      for c, node in index.calls[bisect_left(starts, d.start_byte):bisect_left(starts, d.end_byte)])
        references = []
        prototypes = []
        for other in indexes:
            if keys.key(other.path, spelled) != name:
                continue  # that file sees another function of this name
            for decl in other.prototypes.get(spelled, []) if port_facts else ():
                proto_name, plist = _prototype_parts(decl, spelled)
                prototypes.append(Prototype(other.path, ctree.span(decl),
                                            ctree.span(proto_name) if proto_name is not None else None,
                                            ctree.span(plist) if plist is not None else None))
            for ident in other.identifiers.get(spelled, []):
                if _is_reference(ident, fn) and not _spelled(ident, spelling_macros):
                    references.append((other.path, ident))
        ret = fn.child_by_field_name("type")
        # The words before its name, in its definition and its prototypes: storage, visibility
        # and export macros (`HIDDEN`, `PyAPI_FUNC`) among them.
        words = _words_before(src.text, name_node.start_byte) if name_node is not None else set()
        for p in prototypes:
            if p.name_span is not None:
                other_text = next(i.src.text for i in indexes if i.path == p.file)
                words |= _words_before(other_text, p.name_span.start)
        fields = dict(
            name=name, file=index.path, span=ctree.span(fn),
            header=Span(fn.start_byte, body.start_byte if body is not None else fn.end_byte),
            body=ctree.span(body) if body is not None else ctree.span(fn),
            return_type=src.text_of(ret) if ret is not None else "",
            params=params, is_static="static" in ctree.storage(fn), calls=calls,
            loader_hook=_LOADER_HOOK.search(src.text, fn.start_byte, body.start_byte if body is not None
                                            else fn.end_byte) is not None,
            specifier_words=tuple(sorted(words)),
            returns_pointer=(d := fn.child_by_field_name("declarator")) is not None and d.type == "pointer_declarator",
        )
        if port_facts:
            fields.update(_port_fields(index, fn, body, name_node, fdecl, params),
                          prototypes=tuple(prototypes), unread_calls=tuple(unread.get(name, ())),
                          alternatives=tuple(_alternative(index, n) for n in others.get(name, ())))
        out.append(_Skeleton(name, index, fn, fields, references, name in all_called))
    return out


def _call(callee: str, node: Node, port_facts: bool) -> Call:
    """A call; with `port_facts`, also its arguments and argument list, which a port edits."""
    if not port_facts:
        return Call(callee, ctree.span(node), ())
    arguments = node.child_by_field_name("arguments")
    return Call(callee, ctree.span(node),
                SpanList.from_offsets(x for a in ctree.call_args(node) for x in (a.start_byte, a.end_byte)),
                ctree.span(arguments) if arguments is not None else None)


def exclusive_definitions(index: FileIndex, nodes: list[Node]) -> bool:
    """Whether every two of these definitions (of one name, in one file) sit in different
    branches of one #if group: no build compiles two of them."""
    conds = index.src.pre.conditionals
    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            if not any(c.span.start <= a.start_byte < c.span.end and c.span.start <= b.start_byte < c.span.end
                       and None is not c.branch_at(a.start_byte) != c.branch_at(b.start_byte) is not None
                       for c in conds):
                return False
    return True


def _alternative(index: FileIndex, fn: Node) -> Alternative:
    body = fn.child_by_field_name("body")
    _, _, fdecl = ctree.function_name(fn)
    plist = fdecl.child_by_field_name("parameters") if fdecl is not None else None
    params = read_params(index.src, fdecl)
    return Alternative(Span(fn.start_byte, body.start_byte if body is not None else fn.end_byte),
                       ctree.span(body) if body is not None else ctree.span(fn),
                       ctree.span(plist) if plist is not None else None, params[0].name if params else None)


def _port_fields(index: FileIndex, fn: Node, body: Node | None, name_node: Node | None, fdecl: Node | None,
                 params: tuple[Param, ...]) -> dict:
    """The Function fields only a port reads: what its dealloc frees and releases, how it makes
    objects by hand, what its `void *` parameters are, and the spans a rewrite edits."""
    self_name = params[0].name if params else None
    # One walk of the body for the calls and the stores the object's facts read.
    nodes = descendants(body, _BODY_NODES) if body is not None and self_name else []
    body_calls = [n for n in nodes if n.type == "call_expression"]
    aliases = _object_aliases(body, self_name, nodes) if body is not None and self_name else set()
    frees, untracks_first = _frees(body, self_name, aliases, body_calls)
    base_deallocs = _base_deallocs(body_calls, aliases)
    activity = index.src.pre.activity
    return dict(
        param_list=ctree.span(fdecl.child_by_field_name("parameters"))
        if fdecl is not None and fdecl.child_by_field_name("parameters") is not None else None,
        frees=tuple(frees), untracks_first=untracks_first, base_deallocs=base_deallocs,
        releases_type=_releases_type(nodes, aliases, activity),
        sets_type_by_hand=_sets_type_by_hand(body_calls, activity),
        releases=_releases(body, self_name, aliases, body_calls),
        name_span=ctree.span(name_node) if name_node is not None else None,
        void_param_casts=void_param_casts(fn, params),
        object_locals=object_locals(fn),
    )


def _unread_calls(indexes: list[FileIndex], defined, keys: FunctionKeys) -> dict[str, list[UnreadCall]]:
    """`f(` in the #if branches masked away, by callee's key: the tree never saw these calls."""
    spans_by_file: dict[str, list[tuple[int, int, str]]] = {}
    for name, (index, fn) in defined.items():
        spans_by_file.setdefault(index.path, []).append((fn.start_byte, fn.end_byte, name))
    spelled = {c_name(name) for name in defined}
    out: dict[str, list[UnreadCall]] = {}
    for idx in indexes:
        callers = sorted(spans_by_file.get(idx.path, ()))
        caller_starts = [start for start, _, _ in callers]
        for tok in idx.src.dropped_names(directives=False):
            if tok.paren_end is None or tok.text not in spelled:
                continue
            # Function definitions do not nest: the one starting last before the call.
            j = bisect_right(caller_starts, tok.start) - 1
            caller = callers[j][2] if j >= 0 and tok.start < callers[j][1] else None
            out.setdefault(keys.key(idx.path, tok.text), []).append(
                UnreadCall(caller, Location(idx.path, Span(tok.start, tok.paren_end)), tok.empty_call))
    return out


def _user_data_casts(sk: _Skeleton) -> dict[str, str]:
    """The types a function casts its `void *` parameters to (`(CALLBACK_DATA *)user_data`):
    type as spelled -> parameter."""
    out: dict[str, str] = {}
    for cast in sk.fields.get("void_param_casts", ()):
        if not cast.guard_end:  # user data that may be NULL cannot carry the state from the top
            out.setdefault(cast.type, cast.param)
    return out


_BODY_NODES = ("call_expression", "init_declarator", "assignment_expression")


def _base_deallocs(calls: list[Node], aliases: set[str]) -> tuple[tuple[Span, str], ...]:
    """`PyList_Type.tp_dealloc((PyObject *)op);` statements: a type's dealloc handing the object
    to another type's (its base's), with that type's name."""
    out = []
    for node in calls:
        fn = node.child_by_field_name("function")
        field = fn.child_by_field_name("field") if fn is not None and fn.type == "field_expression" else None
        owner = fn.child_by_field_name("argument") if field is not None else None
        args = ctree.call_args(node)
        if field is not None and field.text == b"tp_dealloc" and owner is not None and owner.type == "identifier" \
                and len(args) == 1 and _names_object(args[0], aliases) \
                and node.parent is not None and node.parent.type == "expression_statement":
            out.append((ctree.span(node.parent), owner.text.decode()))
    return tuple(out)


def _frees(body: Node | None, self_name: str | None, aliases: set[str],
           calls: list[Node] | None = None) -> tuple[list[Span], bool]:
    """Statements that release the object's own memory (not a buffer it points to), and
    whether GC untracking comes first. `aliases` are the names the object goes by; `calls`
    the body's calls, when the caller has them."""
    if body is None or not self_name:
        return [], False
    frees = []
    for node in descendants(body, ("call_expression",)) if calls is None else calls:
        fn = node.child_by_field_name("function")
        is_free = (fn is not None and fn.type == "identifier" and fn.text.decode() in capi.INSTANCE_FREE_FUNCTIONS) or (
            fn is not None and fn.type == "field_expression"
            and (fn.child_by_field_name("field") is not None)
            and fn.child_by_field_name("field").text == b"tp_free")
        args = ctree.call_args(node)
        if is_free and len(args) == 1 and _names_object(args[0], aliases) \
                and node.parent is not None and node.parent.type == "expression_statement":
            frees.append(ctree.span(node.parent))
    statements = [c for c in body.named_children if c.type != "comment"]
    first = statements[0] if statements else None
    untracks = bool(first is not None and first.type == "expression_statement"
                    and b"PyObject_GC_UnTrack" in first.text)
    return frees, untracks




def _releases(body: Node | None, self_name: str | None, aliases: set[str],
              calls: list[Node] | None = None) -> tuple[FieldRelease, ...]:
    """Fields of the first parameter the function releases: `Py_DECREF(self->f)`.

    The object may be reached through the parameter itself, a cast of it, or a local
    initialised from it (`Obj *o = (Obj *)self;`): `aliases`.
    """
    if body is None or not self_name:
        return ()
    out = []
    for node in descendants(body, ("call_expression",)) if calls is None else calls:
        if ctree.call_name(node) not in capi.RELEASE_MACROS:
            continue
        args = ctree.call_args(node)
        target = ctree.unwrap_parens(args[0]) if len(args) == 1 else None
        if target is None or target.type != "field_expression" or b"->" not in target.text:
            continue
        base = ctree.unwrap_parens(target.child_by_field_name("argument"))
        field_node = target.child_by_field_name("field")
        if base is not None and field_node is not None and _names_object(base, aliases):
            fn = node.child_by_field_name("function")
            out.append(FieldRelease(field_node.text.decode(), ctree.call_name(node) or "",
                                    ctree.span(node), ctree.span(fn)))
    return tuple(out)


def _releases_type(nodes: list[Node], aliases: set[str], activity: Callable[[int], bool | None]) -> bool:
    """Whether the body releases the object's type: `Py_DECREF(Py_TYPE(self))`, or
    `PyTypeObject *tp = Py_TYPE(self); ... Py_DECREF(tp);`, outside `#if` branches the analysis
    target does not compile (`#if PY_VERSION_HEX < 0x03080000`: what 3.7 needed by hand).
    `nodes`: the body's `_BODY_NODES`; `activity`: the preprocessor's word on an offset."""
    def type_of_object(node: Node | None) -> bool:
        node = ctree.unwrap_parens(node) if node is not None else None
        while node is not None and node.type == "cast_expression":
            node = ctree.unwrap_parens(node.child_by_field_name("value"))
        if node is None or node.type != "call_expression" or ctree.call_name(node) != "Py_TYPE":
            return False
        args = ctree.call_args(node)
        return len(args) == 1 and _names_object(args[0], aliases)

    type_names = set()
    for node in nodes:
        if node.type == "init_declarator" and type_of_object(node.child_by_field_name("value")):
            d = ctree.read_declarator(node)
            if d.name:
                type_names.add(d.name)
        elif node.type == "assignment_expression" and node.children[1].type == "=":
            left = node.child_by_field_name("left")
            if left is not None and left.type == "identifier" and type_of_object(node.child_by_field_name("right")):
                type_names.add(left.text.decode())
    for node in nodes:
        if node.type == "call_expression" and ctree.call_name(node) in capi.RELEASE_MACROS:
            args = ctree.call_args(node)
            if len(args) == 1 and (type_of_object(args[0]) or _names_object(args[0], type_names)) \
                    and activity(node.start_byte) is not False:
                return True
    return False


def _sets_type_by_hand(calls: list[Node], activity: Callable[[int], bool | None]) -> tuple[tuple[Span, str], ...]:
    """`Py_SET_TYPE(op, tp);` statements of a body that makes its object by hand
    (`_Py_NewReference`), when the code the targets compile takes no reference to `tp` itself."""
    live = [c for c in calls if activity(c.start_byte) is not False]
    if not any(ctree.call_name(c) == "_Py_NewReference" for c in live):
        return ()
    increfs = {c.text for c in live if ctree.call_name(c) in ("Py_INCREF", "Py_XINCREF")}
    out = []
    for c in live:
        args = ctree.call_args(c)
        if ctree.call_name(c) != "Py_SET_TYPE" or len(args) != 2 or c.parent is None \
                or c.parent.type != "expression_statement":
            continue
        tp = args[1].text.decode().strip()
        if not any(f"({tp})".encode() in text.replace(b" ", b"") for text in increfs):
            out.append((ctree.span(c.parent), tp))
    return tuple(out)


def _object_aliases(body: Node, self_name: str, nodes: list[Node] | None = None) -> set[str]:
    """The first parameter's name and the locals set from it (`Obj *o = (Obj *)self;`);
    `nodes`, the body's nodes of `_BODY_NODES` when the caller has them."""
    aliases = {self_name}
    if nodes is None:
        nodes = descendants(body, ("init_declarator", "assignment_expression"))
    for node in nodes:
        if node.type == "init_declarator":
            value = ctree.unwrap_parens(node.child_by_field_name("value"))
            if value is not None and _names_object(value, aliases):
                d = ctree.read_declarator(node)
                if d.name and d.is_pointer:
                    aliases.add(d.name)
        elif node.type == "assignment_expression" and node.children[1].type == "=":
            left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
            if left is not None and left.type == "identifier" and right is not None \
                    and _names_object(right, aliases):
                aliases.add(left.text.decode())
    return aliases


def _names_object(node: Node, aliases: set[str]) -> bool:
    """`self`, `(Obj *)self` or `((Obj *)(self))` for a name in `aliases`."""
    node = ctree.unwrap_parens(node)
    while node is not None and node.type == "cast_expression":
        node = ctree.unwrap_parens(node.child_by_field_name("value"))
    return node is not None and node.type == "identifier" and node.text.decode() in aliases


def _prototype_parts(decl: Node, name: str) -> tuple[Node | None, Node | None]:
    """The name and the parameter list of function `name` in a forward declaration."""
    for d in ctree.declarators(decl):
        node = d
        while node is not None:
            if node.type == "function_declarator":
                inner = node.child_by_field_name("declarator")
                if inner is not None and inner.text.decode() == name:
                    return inner, node.child_by_field_name("parameters")
                node = inner
            elif node.type in ("pointer_declarator", "init_declarator", "parenthesized_declarator"):
                node = node.child_by_field_name("declarator") or (
                    node.named_children[0] if node.named_children else None)
            else:
                break
    return None, None


def read_params(src, fdecl: Node | None) -> tuple[Param, ...]:
    """The parameters of a function declarator, in order (a `...` among them)."""
    if fdecl is None:
        return ()
    plist = fdecl.child_by_field_name("parameters")
    if plist is None:
        return ()
    out = []
    for p in plist.named_children:
        if p.type not in ("parameter_declaration", "variadic_parameter"):
            continue
        d = p.child_by_field_name("declarator")
        name = ctree.read_declarator(d).name if d is not None else None
        unused = _py_unused(d) if name is None and d is not None else None
        out.append(Param(name, src.text_of(p), ctree.span(p),
                         unused[0] if unused else None, unused[1] if unused else None))
    return tuple(out)


def _py_unused(d: Node) -> tuple[str, Span] | None:
    """`Py_UNUSED(self)` in a parameter's declarator: the name and the span to rename."""
    node = d
    while node is not None and node.type == "pointer_declarator":
        node = node.child_by_field_name("declarator")
    if node is None or node.type != "function_declarator":
        return None
    inner = node.child_by_field_name("declarator")
    params = node.child_by_field_name("parameters")
    if inner is None or inner.text != b"Py_UNUSED" or params is None:
        return None
    names = [c for c in params.named_children if c.type != "comment"]
    if len(names) != 1 or not names[0].text.replace(b"_", b"a").isalnum():
        return None
    return names[0].text.decode(), ctree.span(node)


def _is_reference(ident: Node, own_definition: Node) -> bool:
    """A use of a function's name that is neither a call nor a declaration."""
    parent = ident.parent
    if parent is None:
        return False
    if parent.type == "call_expression" and parent.child_by_field_name("function") == ident:
        return False
    if parent.type in ("function_declarator", "preproc_def", "preproc_function_def"):
        return False
    return True


def _spelled(ident: Node, macros: frozenset[str]) -> bool:
    parent = ident.parent
    call = parent.parent if parent is not None and parent.type == "argument_list" else None
    return call is not None and ctree.call_name(call) in macros


def spans_by_file(locations: Iterable[Location]) -> dict[str, SpanSet]:
    by_file: dict[str, list[Span]] = {}
    for loc in locations:
        by_file.setdefault(loc.file, []).append(loc.span)
    return {path: SpanSet(spans) for path, spans in by_file.items()}


def _inside(path: str, node: Node, initializers: tuple[dict[str, SpanSet], ...]) -> bool:
    """Whether `node` lies in one of the `initializers` (tables, type and module definitions):
    naming a function there gives it a role, it does not take its address."""
    for by_file in initializers:
        spans = by_file.get(path)
        if spans is not None and spans.covers(node.start_byte):
            return True
    return False





def init_phase(functions: list[Function], init_names: set[str], graph: tuple | None = None) -> set[str]:
    """The init functions and the helpers only they call, transitively: work done once, at init.

    `graph` is `call_graph(functions)`, when the caller keeps it (the calls of a unity file's
    functions are the same for each of its modules)."""
    callers, callees = graph if graph is not None else call_graph(functions)
    eligible = {f.name for f in functions if not f.address_taken and f.only_helper}
    phase = set(init_names)
    # A helper joins once every function that calls it has: look at it when one of them joins.
    work = list(phase)
    while work:
        for callee in callees.get(work.pop(), ()):
            if callee in phase or callee not in eligible:
                continue
            cs = callers.get(callee)
            if cs and cs <= phase:
                phase.add(callee)
                work.append(callee)
    return phase


def call_graph(functions: list[Function]) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Who calls each function, and whom each calls, by name."""
    callers: dict[str, set[str]] = {}
    callees: dict[str, set[str]] = {}
    for f in functions:
        for c in f.calls:
            callers.setdefault(c.callee, set()).add(f.name)
            callees.setdefault(f.name, set()).add(c.callee)
    return callers, callees
