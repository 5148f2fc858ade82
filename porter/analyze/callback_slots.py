"""Callback slots: function-pointer fields of the project's own structs.

A field such as `typecast_function ccast;` (a typedef of the project's) or `PyObject
*(*get_elem_wrapper)(const void *elem);` is a signature the project owns: unlike a callback
handed to a library, porter can give it a `state` parameter, provided it sees every function
stored in it and every call made through it. A slot is one signature: a typedef with every
field declared with it, or one field's own function declarator.

What makes a slot safe to change, read here from the trees, is that each use of each of its
fields is one of:
- a store: an assignment or an initialiser (designated, positional, nested) whose value is
  NULL, a function's name (`&f`, `(void *)&f`, or an object-like macro that names one), or
  the value of another field of the same slot (`obj->ccast = type->cast`);
- a test (`if (self->ccast)`, `x->f != NULL`);
- a call through it (`self->ccast(str, len, curs)`).
and that the typedef names nothing but those fields. Anything else (a macro body naming a
field, the typedef as a parameter's or a local's type, a field's value passed on) is the
slot's `refusal`; planning (planning.callback_slots) decides whether the functions stored take
the state.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from porter.analyze import ctree
from porter.analyze.index import FileIndex
from porter.analyze.macros import MacroTable
from porter.model import CallbackSlot, Location, SlotCall, SlotStore
from porter.parse import Node

# Struct fields of CPython's own structs: a call through one (`Py_TYPE(o)->tp_call(...)`) is
# not a call through a project field of that name.
_CAPI_FIELD = re.compile(r"(?:tp|nb|sq|mp|am|bf|ml|m|ob|gc)_\w+")
_NULLS = {"NULL", "0", "nullptr"}
_TESTS = {"!", "==", "!=", "&&", "||"}


@dataclass
class _Field:
    name: str
    slot: str  # the slot it belongs to
    location: Location


@dataclass
class _Struct:
    names: set[str]  # its typedef names and tag
    fields: list[tuple[str, str | None]] | None  # (field, the struct type it holds) in order; None: unknown order
    is_object: bool = False  # starts with PyObject_HEAD: the C API it is given knows none of its fields


@dataclass(eq=False)  # one per slot: sets of them hold each once
class _Slot:
    name: str
    param_lists: list[Location] = field(default_factory=list)
    statements: list[Location] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)
    stores: list[SlotStore] = field(default_factory=list)
    calls: list[SlotCall] = field(default_factory=list)
    refusal: str = ""

    def refuse(self, why: str) -> None:
        self.refusal = self.refusal or why


def collect_callback_slots(indexes: list[FileIndex], macros: MacroTable, key_of) -> tuple[CallbackSlot, ...]:
    """`key_of(file, name)`: the function key a file's name for a function has."""
    typedefs: dict[str, tuple[Location, Location]] = {}  # function-pointer typedef -> its parameter list, itself
    typedef_spans: list[Location] = []
    structs: list[_Struct] = []
    fields: list[_Field] = []
    field_decls: dict[str, list[Location]] = {}  # every field name the project declares -> where
    for idx in indexes:
        for node in ctree.file_scope(idx.src.root):
            if node.type == "type_definition":
                for d in node.children_by_field_name("declarator"):
                    plist = _function_pointer_params(d)
                    name = _declared_name(d)
                    if plist is not None and name is not None:
                        typedefs[name] = (Location(idx.path, ctree.span(plist)), Location(idx.path, ctree.span(node)))
                        typedef_spans.append(Location(idx.path, ctree.span(node)))
            for spec in _struct_specifiers(node):
                structs.append(_read_struct(idx, spec, node))
    slots: dict[str, _Slot] = {}
    for idx in indexes:
        for node in ctree.file_scope(idx.src.root):
            for spec in _struct_specifiers(node):
                owner = _struct_names(spec, node)
                for decl in _field_declarations(spec):
                    type_node = decl.child_by_field_name("type")
                    type_text = type_node.text.decode() if type_node is not None else ""
                    for d in decl.children_by_field_name("declarator"):
                        name = _declared_name(d)
                        if name is None:
                            continue
                        where = Location(idx.path, ctree.span(d))
                        field_decls.setdefault(name, []).append(where)
                        plist = _function_pointer_params(d)
                        if plist is not None:
                            slot_name = f"{owner}.{name}"
                            slot = slots.setdefault(slot_name, _Slot(slot_name))
                            slot.param_lists.append(Location(idx.path, ctree.span(plist)))
                            slot.statements.append(Location(idx.path, ctree.span(node)))
                        elif type_text in typedefs and d.type == "field_identifier":
                            slot_name = type_text
                            plist_at, typedef_at = typedefs[type_text]
                            slot = slots.setdefault(slot_name, _Slot(slot_name, [plist_at], [typedef_at]))
                        else:
                            continue
                        slot.fields.append(name)
                        fields.append(_Field(name, slot_name, where))
    if not slots:
        return ()
    slot_of_field: dict[str, _Slot] = {}
    declared_in: dict[str, set[str]] = {}  # field name -> the slots declaring a field of that name
    for f in fields:
        declared_in.setdefault(f.name, set()).add(f.slot)
    for f in fields:
        slot = slots[f.slot]
        if _CAPI_FIELD.fullmatch(f.name):
            slot.refuse(f"its field {f.name} has the name of a field of CPython's structs")
        elif len(declared_in[f.name]) > 1:
            slot.refuse(f"another struct has a field named {f.name} too")
        elif len(field_decls[f.name]) > sum(1 for g in fields if g.name == f.name):
            slot.refuse(f"another struct has a field named {f.name} that is not a function pointer")
        slot_of_field.setdefault(f.name, slot)
    for name, slot in slots.items():
        if name in typedefs:
            _check_typedef_uses(indexes, name, typedef_spans, [f.location for f in fields if f.slot == name], slot)
    for idx in indexes:
        _read_field_uses(idx, slot_of_field, macros, key_of)
        _read_positional_stores(idx, structs, slot_of_field, macros, key_of)
    _refuse_escaping(indexes, structs, slot_of_field, macros)
    return tuple(CallbackSlot(s.name, tuple(s.fields), tuple(s.param_lists), tuple(s.statements), tuple(s.stores),
                              tuple(s.calls), s.refusal) for s in sorted(slots.values(), key=lambda s: s.name))


def _struct_specifiers(node: Node) -> list[Node]:
    """The struct bodies a file-scope declaration or typedef defines (not nested ones)."""
    t = node.child_by_field_name("type") if node.type in ("type_definition", "declaration") else \
        node if node.type == "struct_specifier" else None
    if t is not None and t.type == "struct_specifier" and t.child_by_field_name("body") is not None:
        return [t]
    return []


def _struct_names(spec: Node, owner: Node) -> str:
    names = _all_struct_names(spec, owner)
    return sorted(names)[0] if names else "<anonymous>"


def _all_struct_names(spec: Node, owner: Node) -> set[str]:
    names = set()
    tag = spec.child_by_field_name("name")
    if tag is not None:
        names.add(tag.text.decode())
    if owner.type == "type_definition":
        names |= {n for d in owner.children_by_field_name("declarator")
                  if d.type == "type_identifier" and (n := d.text.decode())}
    return names


def _field_declarations(spec: Node) -> list[Node]:
    body = spec.child_by_field_name("body")
    return [c for c in body.named_children if c.type == "field_declaration"] if body is not None else []


def _read_struct(idx: FileIndex, spec: Node, owner: Node) -> _Struct:
    """The struct's fields in order, for positional initialisers; None when a member porter
    cannot count is among them (an anonymous union, a bit of #if, a macro)."""
    body = spec.child_by_field_name("body")
    members = [c for c in body.named_children if c.type != "comment"] if body is not None else []
    return _Struct(_all_struct_names(spec, owner), _ordered_fields(members), _is_object(members))


def _ordered_fields(members: list[Node]) -> list[tuple[str, str | None]] | None:
    ordered: list[tuple[str, str | None]] = []
    for member in members:
        declared = member.children_by_field_name("declarator") if member.type == "field_declaration" else []
        if not declared:
            return None
        type_node = member.child_by_field_name("type")
        held = None
        if type_node is not None and type_node.type in ("type_identifier", "struct_specifier"):
            held = (type_node.child_by_field_name("name") or type_node).text.decode() \
                if type_node.type == "struct_specifier" else type_node.text.decode()
        for d in declared:
            name = _declared_name(d)
            if name is None:
                return None
            ordered.append((name, held if d.type == "field_identifier" else None))
    return ordered


def _is_object(members: list[Node]) -> bool:
    """Whether the struct starts with a `PyObject` (`PyObject_HEAD` reads as one: parse masks it so)."""
    first = members[0] if members and members[0].type == "field_declaration" else None
    first_type = first.child_by_field_name("type") if first is not None else None
    declarator = first.child_by_field_name("declarator") if first is not None else None
    return first_type is not None and first_type.text in (b"PyObject", b"PyVarObject") \
        and declarator is not None and declarator.type == "field_identifier"


def _declared_name(d: Node) -> str | None:
    return ctree.read_declarator(d).name


def _function_pointer_params(d: Node) -> Node | None:
    """The parameter list of `(*name)(...)`, or None when `d` declares something else."""
    while d is not None and d.type == "pointer_declarator":  # the return type's `*`
        d = d.child_by_field_name("declarator")
    if d is None or d.type != "function_declarator":
        return None
    inner = d.child_by_field_name("declarator")
    if inner is None or inner.type != "parenthesized_declarator":
        return None
    pointer = next((c for c in inner.named_children if c.type != "comment"), None)
    if pointer is None or pointer.type != "pointer_declarator":
        return None
    target = pointer.child_by_field_name("declarator")
    if target is None or target.type not in ("type_identifier", "field_identifier", "identifier"):
        return None
    return d.child_by_field_name("parameters")


def _check_typedef_uses(indexes: list[FileIndex], name: str, definitions: list[Location],
                        field_locations: list[Location], slot: _Slot) -> None:
    """The typedef may declare the slot's fields, nothing else (a parameter or local of that
    type holds a function porter does not follow)."""
    word = re.compile(rb"\b" + re.escape(name.encode()) + rb"\b")
    for idx in indexes:
        if idx.src.code_names is not None and name not in idx.src.code_names:
            continue
        for m in word.finditer(idx.src.masked):
            node = idx.src.root.descendant_for_byte_range(m.start(), m.end())
            if node is None or node.type in ("comment", "string_content", "string_literal", "char_literal"):
                continue
            if any(loc.file == idx.path and loc.span.start <= m.start() < loc.span.end for loc in definitions):
                continue
            decl = node.parent
            if node.type == "type_identifier" and decl is not None and decl.type == "field_declaration" \
                    and any(loc.file == idx.path and decl.start_byte <= loc.span.start < decl.end_byte
                            for loc in field_locations):
                continue
            line = idx.src.line_col(m.start())[0]
            slot.refuse(f"{idx.path}:{line} uses the type {name} for something other than the slot's fields")
            return


def _read_field_uses(idx: FileIndex, slot_of_field: dict[str, _Slot], macros: MacroTable, key_of) -> None:
    names = [n for n in slot_of_field if idx.src.code_names is None or n in idx.src.code_names]
    if not names:
        return
    pattern = re.compile(rb"(?:->|\.)\s*(" + b"|".join(re.escape(n.encode()) for n in names) + rb")\b")
    text = idx.src.masked
    for m in pattern.finditer(text):
        slot = slot_of_field[m.group(1).decode()]
        if slot.refusal:
            continue
        node = idx.src.root.descendant_for_byte_range(m.start(1), m.end(1))
        line = idx.src.line_col(m.start(1))[0]
        where = f"{idx.path}:{line}"
        if node is None or node.type in ("comment", "string_content", "string_literal", "char_literal"):
            continue
        if node.type == "preproc_arg" or _in_macro_body(node):
            slot.refuse(f"a macro body names its field {m.group(1).decode()} ({where})")
            continue
        if node.type != "field_identifier" or node.parent is None:
            slot.refuse(f"porter cannot read the use of {m.group(1).decode()} at {where}")
            continue
        parent = node.parent
        if parent.type == "field_designator":
            pair = parent.parent
            value = pair.child_by_field_name("value") if pair is not None and pair.type == "initializer_pair" else None
            _store(idx, slot, slot_of_field, value, macros, key_of, where)
        elif parent.type == "field_expression":
            _field_expression_use(idx, slot, slot_of_field, parent, macros, key_of, where)
        else:
            slot.refuse(f"porter cannot read the use of {m.group(1).decode()} at {where}")


def _in_macro_body(node: Node) -> bool:
    current = node
    while current is not None:
        if current.type in ("preproc_def", "preproc_function_def"):
            return True
        current = current.parent
    return False


def _field_expression_use(idx: FileIndex, slot: _Slot, slot_of_field: dict[str, _Slot], fe: Node,
                          macros: MacroTable, key_of, where: str) -> None:
    outer = fe
    while outer.parent is not None and outer.parent.type == "parenthesized_expression":
        outer = outer.parent
    parent = outer.parent
    if parent is None:
        slot.refuse(f"porter cannot read the use at {where}")
        return
    if parent.type == "pointer_expression" and parent.children[0].type == "*":
        outer, parent = parent, parent.parent  # `(*x->f)(...)`
        while parent is not None and parent.type == "parenthesized_expression":
            outer, parent = parent, parent.parent
        if parent is None or parent.type != "call_expression":
            slot.refuse(f"porter cannot read the use at {where}")
            return
    if parent.type == "call_expression" and parent.child_by_field_name("function") == outer:
        fn = ctree.enclosing_function(parent)
        caller = ctree.function_name(fn)[0] if fn is not None else None
        args = parent.child_by_field_name("arguments")
        if caller is None or args is None:
            slot.refuse(f"a call through it at {where} is outside any function")
            return
        given = ctree.call_args(parent)
        at, empty = (given[0].start_byte, False) if given else (args.end_byte - 1, True)
        slot.calls.append(SlotCall(key_of(idx.path, caller), idx.path, ctree.span(parent), at, empty))
        return
    if parent.type == "assignment_expression" and parent.child_by_field_name("left") == outer:
        if parent.child_by_field_name("operator").type != "=":
            slot.refuse(f"porter cannot read the assignment at {where}")
            return
        _store(idx, slot, slot_of_field, parent.child_by_field_name("right"), macros, key_of, where)
        return
    if parent.type == "assignment_expression" and parent.child_by_field_name("right") == outer:
        left = ctree.unwrap_parens(parent.child_by_field_name("left"))
        target = left.child_by_field_name("field") if left is not None and left.type == "field_expression" else None
        if target is not None and slot_of_field.get(target.text.decode()) is slot:
            return  # a copy into another field of the slot: checked there
        slot.refuse(f"its value is stored somewhere else at {where}")
        return
    if _is_test(outer):
        return
    slot.refuse(f"its value is used at {where} in a way porter does not follow")


def _is_test(node: Node) -> bool:
    """Whether `node`'s value is only tested for NULL."""
    parent = node.parent
    while parent is not None and parent.type == "parenthesized_expression":
        node, parent = parent, parent.parent
    if parent is None:
        return False
    if parent.type in ("if_statement", "while_statement", "do_statement", "for_statement"):
        return parent.child_by_field_name("condition") == node
    if parent.type == "conditional_expression":
        return parent.child_by_field_name("condition") == node
    if parent.type == "unary_expression":
        return parent.children[0].type == "!"
    if parent.type == "binary_expression":
        op = parent.child_by_field_name("operator")
        if op is None or op.type not in _TESTS:
            return False
        if op.type in ("==", "!="):
            other = parent.child_by_field_name("right" if parent.child_by_field_name("left") == node else "left")
            other = ctree.unwrap_parens(other)
            return other is not None and other.text.decode() in _NULLS
        return True
    return False


def _store(idx: FileIndex, slot: _Slot, slot_of_field: dict[str, _Slot], value: Node | None,
           macros: MacroTable, key_of, where: str) -> None:
    """A value stored in the slot: NULL, a function, or another field of the slot."""
    value = _strip(value)
    if value is None:
        slot.refuse(f"porter cannot read the value stored at {where}")
        return
    if value.type == "field_expression":
        other = value.child_by_field_name("field")
        if other is not None and slot_of_field.get(other.text.decode()) is slot:
            return
        slot.refuse(f"it is given another field's value at {where}")
        return
    if value.type == "number_literal" and value.text == b"0" or value.type == "null":
        return
    if value.type != "identifier":
        slot.refuse(f"porter cannot read the value stored at {where}")
        return
    name = value.text.decode()
    if name in _NULLS:
        return
    aliases: list[str] = []
    for _ in range(4):
        m = macros.get(name)
        if m is None:
            break
        body = m.body_text.strip()
        if m.params is not None or not re.fullmatch(r"[A-Za-z_]\w*", body):
            slot.refuse(f"macro {name} stored at {where} is not a function's other name")
            return
        aliases.append(name)
        name = body
    if name in _NULLS:
        return
    slot.stores.append(SlotStore(key_of(idx.path, name), Location(idx.path, ctree.span(value)), tuple(aliases)))


def _strip(value: Node | None) -> Node | None:
    """`(void *)&f` -> `f`."""
    while value is not None:
        if value.type in ("parenthesized_expression", "cast_expression"):
            value = ctree.unwrap_parens(value)
        elif value.type == "pointer_expression" and value.children[0].type == "&":
            value = value.child_by_field_name("argument")
        else:
            return value
    return None


def _read_positional_stores(idx: FileIndex, structs: list[_Struct], slot_of_field: dict[str, _Slot],
                            macros: MacroTable, key_of) -> None:
    """Stores by position in the initialisers of structs that hold a slot's field."""
    by_name = {n: s for s in structs for n in s.names}
    holding = _structs_holding(structs, by_name, slot_of_field)
    if not holding:
        return
    declarations = list(idx.file_declarations) + [d for d, _ in idx.local_declarations]
    for decl in declarations:
        type_node = decl.child_by_field_name("type")
        if type_node is None:
            continue
        type_name = (type_node.child_by_field_name("name") or type_node).text.decode() \
            if type_node.type == "struct_specifier" else type_node.text.decode()
        if type_name not in holding:
            continue
        for d in ctree.declarators(decl):
            info = ctree.read_declarator(d)
            if info.value is None or info.value.type != "initializer_list":
                continue
            lists = ctree.initializer_elements(info.value) if info.is_array else [info.value]
            for init in lists:
                if init.type == "initializer_list":
                    _positional(idx, by_name[type_name], init, by_name, holding, slot_of_field, macros, key_of)


def _structs_holding(structs: list[_Struct], by_name: dict[str, _Struct],
                     slot_of_field: dict[str, _Slot]) -> set[str]:
    """Names of the structs with a slot's field, directly or in a struct member."""
    holding: set[str] = set()
    changed = True
    while changed:
        changed = False
        for s in structs:
            if s.names <= holding or s.fields is None:
                continue
            if any(name in slot_of_field or (held is not None and held in holding) for name, held in s.fields):
                holding |= s.names
                changed = True
    # A struct whose members porter cannot count may still hold one: its positional
    # initialisers are refused below.
    for s in structs:
        if s.fields is None:
            holding |= s.names
    return holding


def _positional(idx: FileIndex, struct: _Struct, init: Node, by_name: dict[str, _Struct], holding: set[str],
                slot_of_field: dict[str, _Slot], macros: MacroTable, key_of) -> None:
    elements = ctree.initializer_elements(init)
    line = idx.src.line_col(init.start_byte)[0]
    where = f"{idx.path}:{line}"
    if struct.fields is None:
        if any(e.type != "initializer_pair" for e in elements):
            for slot in set(slot_of_field.values()):
                slot.refuse(f"porter cannot count the members of a struct initialised by position at {where}")
        return
    position = 0
    for e in elements:
        if e.type == "initializer_pair":
            designator = next((c for c in e.children_by_field_name("designator")), None)
            name = designator.named_children[0].text.decode() if designator is not None \
                and designator.type == "field_designator" and designator.named_children else None
            position = next((i for i, (n, _) in enumerate(struct.fields) if n == name), len(struct.fields)) + 1
            continue  # read with the field uses
        if position >= len(struct.fields):
            break
        name, held = struct.fields[position]
        position += 1
        if name in slot_of_field:
            _store(idx, slot_of_field[name], slot_of_field, e, macros, key_of, where)
        elif held is not None and held in holding:
            if e.type == "initializer_list" and held in by_name:
                _positional(idx, by_name[held], e, by_name, holding, slot_of_field, macros, key_of)
            else:
                for slot in set(slot_of_field.values()):
                    slot.refuse(f"porter cannot read the initialiser at {where} (braces left out)")


def _refuse_escaping(indexes: list[FileIndex], structs: list[_Struct], slot_of_field: dict[str, _Slot],
                     macros: MacroTable) -> None:
    """A struct holding a slot that code outside the project gets (`PyCapsule_New(&CAPI, ...)`,
    `memcpy`) is called through where porter cannot see: its slots keep their signatures."""
    by_name = {n: s for s in structs for n in s.names}
    held: dict[str, set[_Slot]] = {}  # struct name -> the slots it holds, directly or nested

    def slots_in(name: str, seen: frozenset[str] = frozenset()) -> set[_Slot]:
        if name in held:
            return held[name]
        struct = by_name.get(name)
        found: set[_Slot] = set()
        for field_name, inner in (struct.fields or ()) if struct is not None else ():
            if field_name in slot_of_field:
                found.add(slot_of_field[field_name])
            elif inner is not None and inner not in seen:
                found |= slots_in(inner, seen | {name})
        held[name] = found
        return found

    def holding_type(decl: Node) -> str | None:
        type_node = decl.child_by_field_name("type")
        if type_node is None:
            return None
        name = (type_node.child_by_field_name("name") or type_node).text.decode() \
            if type_node.type == "struct_specifier" else type_node.text.decode()
        return name if name in by_name and not by_name[name].is_object and slots_in(name) else None

    def declared(decl: Node) -> Iterator[tuple[str, set[_Slot]]]:
        type_name = holding_type(decl)
        if type_name is None:
            return
        for d in decl.children_by_field_name("declarator"):
            name = ctree.read_declarator(d).name
            if name is not None:
                yield name, slots_in(type_name)

    # Variables and parameters of such a struct type: at file scope by name, in a function by
    # (file, the function's start, name).
    at_file_scope: dict[str, set[_Slot]] = {}
    in_function: dict[tuple[str, int, str], set[_Slot]] = {}
    for idx in indexes:
        for decl in idx.file_declarations:
            for name, held_slots in declared(decl):
                at_file_scope.setdefault(name, set()).update(held_slots)
        for decl, fn in idx.local_declarations:
            for name, held_slots in declared(decl):
                in_function.setdefault((idx.path, fn.start_byte, name), set()).update(held_slots)
        for nodes in idx.functions.values():
            for fn in nodes:
                for param in ctree.parameters(fn):
                    for name, held_slots in declared(param):
                        in_function.setdefault((idx.path, fn.start_byte, name), set()).update(held_slots)
    if not at_file_scope and not in_function:
        return
    project = {name for idx in indexes for name in idx.functions}
    for idx in indexes:
        for callee, call in idx.calls:
            if callee in project or macros.get(callee) is not None:
                continue
            for arg in ctree.call_args(call):
                base = _strip(arg)
                while base is not None and base.type == "subscript_expression":  # an element is one too
                    base = _strip(base.child_by_field_name("argument"))
                if base is None or base.type != "identifier":
                    continue
                name = base.text.decode()
                fn = ctree.enclosing_function(call)
                given = in_function.get((idx.path, fn.start_byte, name)) if fn is not None else None
                if given is None and (fn is None or not ctree.is_declared_locally(name, base, idx.scopes)):
                    given = at_file_scope.get(name)
                for slot in given or ():
                    line = idx.src.line_col(call.start_byte)[0]
                    slot.refuse(f"{callee}() at {idx.path}:{line} is given {name}, which holds it: code outside "
                                "the project may call through it")
