"""Static `PyTypeObject`s: slots by name, sub-structs resolved, tables, forward declarations."""

from __future__ import annotations

import dataclasses

from porter import capi, conditions
from porter.analyze import ctree
from porter.analyze.index import FileIndex
from porter.analyze.initializers import is_null, read_initializer, referenced_name
from porter.analyze.macros import split_args
from porter.lexer import tokenize
from porter.model import Initializer, Location, StaticType, SubstructTable
from porter.parse import Node


def collect_static_types(indexes: list[FileIndex], expand_macro=None) -> list[StaticType]:
    definitions: list[tuple[FileIndex, Node, Node, Node | None]] = []
    forwards: dict[str, list[Location]] = {}
    substruct_vars: dict[str, tuple[FileIndex, Node]] = {}
    structseq: set[str] = set()
    for index in indexes:
        for decl in index.file_declarations:
            tname = ctree.type_name(decl)
            if tname in capi.SUBSTRUCT_FIELDS:
                for d in ctree.declarators(decl):
                    info = ctree.read_declarator(d)
                    if info.name and info.value is not None and info.value.type == "initializer_list":
                        substruct_vars[info.name] = (index, info.value)
            if tname not in ("PyTypeObject", "_typeobject"):
                continue
            for d in ctree.declarators(decl):
                info = ctree.read_declarator(d)
                if info.name is None or info.is_pointer or info.is_function or info.is_array:
                    continue
                if info.value is not None and info.value.type == "initializer_list":
                    definitions.append((index, decl, d, info.value))
                else:
                    forwards.setdefault(info.name, []).append(
                        Location(index.path, ctree.span(decl)))
        for name, call in index.calls:
            if name in capi.STRUCTSEQ_INIT_CALLS:
                args = ctree.call_args(call)
                if args:
                    target = referenced_name(index.src.text_of(args[0]))
                    if target:
                        structseq.add(target)
    types = []
    defined = set()
    for index, decl, d, value in definitions:
        info = ctree.read_declarator(d)
        defined.add(info.name)
        types.append(_static_type(index, decl, info.name, value, forwards, substruct_vars, expand_macro))
    # Types that only have a tentative definition and are filled at run time.
    for name in sorted(structseq - defined):
        locs = forwards.get(name, [])
        if not locs:
            continue
        first = locs[0]
        index = next(i for i in indexes if i.path == first.file)
        types.append(StaticType(
            name=name, file=first.file, span=first.span, initializer=None, slots=(),
            positional=False, forward_declarations=tuple(locs[1:]), substructs=(),
            substruct_slots=(), tables=(), conditional=False, structseq=True,
            is_static=_is_static_at(index, first),
        ))
    types.sort(key=lambda t: (t.file, t.span.start))
    return types


def _is_static_at(index: FileIndex, loc: Location) -> bool:
    for decl in index.file_declarations:
        if decl.start_byte == loc.span.start:
            return "static" in ctree.storage(decl)
    return True


def _static_type(index, decl, name, value, forwards, substruct_vars, expand_macro=None) -> StaticType:
    src = index.src
    slots, conditional = read_initializer(src, value, capi.TYPE_FIELDS, capi.TYPE_FIELD_ALIASES,
                                          expand_macro)
    positional = any(not s.designated for s in slots[1:]) or (
        bool(slots) and all(not s.designated for s in slots))
    substructs: list[tuple[str, str]] = []
    sub_slots: list[Initializer] = []
    for slot in slots:
        if slot.name in capi.SUBSTRUCT_OF_FIELD and not is_null(slot.text):
            var = referenced_name(slot.text)
            if var is None:
                continue
            substructs.append((slot.name, var))
            found = substruct_vars.get(var)
            if found is not None:
                sub_index, init = found
                fields = capi.SUBSTRUCT_FIELDS[capi.SUBSTRUCT_OF_FIELD[slot.name]]
                read, cond = read_initializer(sub_index.src, init, fields, capi.SUBSTRUCT_ALIASES)
                conditional = conditional or cond
                sub_slots.extend(dataclasses.replace(s, guard=slot_guard(sub_index.src, s))
                                 for s in read if not is_null(s.text))
    tables = []
    for slot in slots:
        if slot.name in capi.TYPE_TABLE_SLOTS and not is_null(slot.text):
            var = referenced_name(slot.text)
            if var:
                tables.append((slot.name, var))
    slots = [dataclasses.replace(s, guard=slot_guard(src, s)) for s in slots]
    metatype = _metatype(src, slots)
    groups = tuple(
        (mc.conditional, mc.kept,
         tuple(_value_count(src.text, b.body) for b in mc.conditional.branches)
         + (() if mc.conditional.branches[-1].kind == "else" else (0,)))
        for mc in src.masked_conditionals
        if value.start_byte <= mc.conditional.span.start < value.end_byte
    )
    locs = [loc for loc in forwards.get(name, []) if loc.span.start != decl.start_byte]
    return StaticType(
        name=name, file=index.path, span=ctree.declaration_span(index.src, decl), initializer=ctree.span(value),
        slots=tuple(slots), positional=positional, forward_declarations=tuple(locs),
        substructs=tuple(substructs), substruct_slots=tuple(sub_slots), tables=tuple(tables),
        conditional=conditional, metatype=metatype, is_static="static" in ctree.storage(decl),
        conditional_groups=groups,
    )


def _value_count(text: bytes, span) -> int:
    """How many initialiser values a branch holds: pieces between top-level commas."""
    pieces, depth, current = 0, 0, False
    for tok in tokenize(text, span.start, span.end):
        if tok.kind in ("comment", "newline", "directive"):
            continue
        if tok.kind == "punct" and tok.text in (b"(", b"[", b"{"):
            depth += 1
        elif tok.kind == "punct" and tok.text in (b")", b"]", b"}"):
            depth -= 1
        if tok.kind == "punct" and tok.text == b"," and depth == 0:
            pieces += 1 if current else 0
            current = False
            continue
        current = True
    return pieces + (1 if current else 0)


def _metatype(src, slots: list[Initializer]) -> str | None:
    head = next((s for s in slots if s.name == "ob_base"), None)
    if head is None:
        return None
    for mask in src.masks_at(head.span.start):
        if mask.blanked:
            raw = src.text[mask.span.start:mask.span.end]
            if b"(" not in raw:
                return None  # a project macro standing for PyVarObject_HEAD_INIT(NULL, 0)
            args, _ = split_args(raw, raw.index(b"("))
            if args and not is_null(args[0]):
                return args[0]
    return None


def slot_guard(src, slot: Initializer) -> str | None:
    """The `#if` line that guarded a slot inside its initialiser, when porter masked that `#if`
    down to the slot's branch and not every Python porter targets takes that branch."""
    for mc in src.masked_conditionals:
        cond = mc.conditional
        if not (cond.span.start <= slot.span.start < cond.span.end) or mc.kept is None:
            continue
        branch = cond.branches[mc.kept]
        if not (branch.body.start <= slot.span.start < branch.body.end):
            continue
        if same_for_all_targets(cond, mc.kept):
            return None
        if mc.kept == 0:
            return src.text_of(cond.branches[0].directive).strip()
        # A later branch: guard it with the negation of those before it.
        return "#if " + " && ".join(f"!({_as_expression(b)})" for b in cond.branches[:mc.kept])
    return None


def same_for_all_targets(cond, kept: int) -> bool:
    """Whether the kept branch is taken on every Python porter targets (3.11 to 3.13)."""
    return conditions.taken_everywhere([(b.kind, b.condition.encode()) for b in cond.branches], kept)


def _as_expression(branch) -> str:
    if branch.kind == "ifdef":
        return f"defined({branch.condition})"
    if branch.kind == "ifndef":
        return f"!defined({branch.condition})"
    return branch.condition


def collect_substruct_tables(indexes: list[FileIndex]) -> list[SubstructTable]:
    """Every PyNumberMethods/PySequenceMethods/... variable with an initialiser, read by field:
    init may link one to a type at run time (`T.tp_as_mapping = &t_as_mapping;`)."""
    out = []
    for index in indexes:
        for decl in index.file_declarations:
            struct = ctree.type_name(decl)
            if struct not in capi.SUBSTRUCT_FIELDS:
                continue
            for d in ctree.declarators(decl):
                info = ctree.read_declarator(d)
                if info.name and info.value is not None and info.value.type == "initializer_list":
                    read, _ = read_initializer(index.src, info.value, capi.SUBSTRUCT_FIELDS[struct],
                                               capi.SUBSTRUCT_ALIASES)
                    out.append(SubstructTable(info.name, struct, tuple(
                        dataclasses.replace(s, guard=slot_guard(index.src, s)) for s in read if not is_null(s.text))))
    return out
