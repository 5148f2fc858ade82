"""Getset closures that are globals' addresses: `{"Error", get_exc, NULL, doc, &Error}`.

A getter shared by several rows often tells them apart by the closure, the address of the
global it returns (`*(PyObject **)closure`). When those globals move into module state there is
no address to give at compile time, but there is an offset: the row's closure becomes
`(void *)offsetof(S, Error)` and the getter reads `*(PyObject **)((char *)state + (Py_ssize_t)closure)`.
This module reads the rows (written out, or spelled by a project macro whose closure is
`&param`) and how each getter and setter uses its closure parameter; planning
(planning.getset_closures) decides.
"""

from __future__ import annotations

from dataclasses import replace

from porter.analyze import ctree
from porter.analyze.functions import getset_rows, split_braced
from porter.analyze.index import FileIndex
from porter.analyze.initializers import is_null, referenced_name
from porter.analyze.macros import MacroTable
from porter.model import ClosureReads, GetsetClosure, Macro, Span
from porter.parse import Node

_CLOSURE = 4  # name, get, set, doc, closure


def collect_getset_closures(indexes: list[FileIndex], macros: MacroTable,
                            key_of) -> tuple[tuple[GetsetClosure, ...], tuple[ClosureReads, ...]]:
    """`key_of(file, name)`: the function key a file's name for a function has."""
    rows: list[GetsetClosure] = []
    named: dict[str, int] = {}  # function -> how many rows of any table name it
    for idx in indexes:
        for decl in idx.file_declarations + [d for d, _ in idx.local_declarations]:
            if ctree.type_name(decl) != "PyGetSetDef":
                continue
            for d in ctree.declarators(decl):
                info = ctree.read_declarator(d)
                if info.value is None or info.value.type != "initializer_list":
                    continue
                elements = ctree.initializer_elements(info.value) if info.is_array else [info.value]
                for getter, setter, _ in getset_rows(idx.src, idx, macros, elements):
                    for name in {n for n in (getter, setter) if n}:
                        named[name] = named.get(name, 0) + 1
                for row in elements:
                    found = _row(idx, row, macros)
                    if found is not None:
                        rows.append(found)
    with_closure: dict[str, int] = {}
    for r in rows:
        for name in _functions_of(r):
            with_closure[name] = with_closure.get(name, 0) + 1
    keyed = [replace(r, getter=key_of(r.file, r.getter) if r.getter else None,
                     setter=key_of(r.file, r.setter) if r.setter else None) for r in rows]
    reads: list[ClosureReads] = []
    for key in sorted({name for r in keyed for name in _functions_of(r)}):
        # A key is the C name, or `file:name` for a static function other files define too.
        path, _, c_name = key.rpartition(":")
        for idx in indexes:
            if (path and idx.path != path) or c_name not in idx.functions:
                continue
            other_rows = named.get(c_name, 0) > with_closure.get(c_name, 0)
            reads += [replace(_closure_reads(idx, fn, key), other_rows=other_rows) for fn in idx.functions[c_name]]
    return tuple(keyed), tuple(reads)


def _functions_of(row: GetsetClosure) -> list[str]:
    return [name for name in (row.getter, row.setter) if name]


def _row(idx: FileIndex, row: Node, macros: MacroTable) -> GetsetClosure | None:
    if row.type == "initializer_list":
        elements = ctree.initializer_elements(row)
        closure = next((e.child_by_field_name("value") for e in elements if e.type == "initializer_pair"
                        and e.child_by_field_name("designator") is not None
                        and e.child_by_field_name("designator").text.decode().lstrip(".").strip() == "closure"),
                       None)
        positional = [e for e in elements if e.type != "initializer_pair"]
        if closure is None and len(positional) == len(elements) and len(elements) > _CLOSURE:
            closure = elements[_CLOSURE]
        target = _address_of(closure)
        if target is None:
            return None
        getter, setter = _functions(idx, elements)
        return GetsetClosure(target.text.decode(), idx.path, ctree.span(target), ctree.span(closure), getter, setter)
    name = ctree.call_name(row) if row.type == "call_expression" else None
    macro = macros.at(idx.path, row.start_byte).get(name) if name else None
    if macro is None or macro.params is None:
        return None
    found = _macro_closure(macro)
    if found is None:
        return None
    param, closure, getter, setter = found
    args = ctree.call_args(row)
    position = macro.params.index(param)
    if position >= len(args) or args[position].type != "identifier":
        return None
    return GetsetClosure(args[position].text.decode(), idx.path, ctree.span(args[position]), closure, getter, setter,
                         macro.name, macro.file)


def _address_of(value: Node | None) -> Node | None:
    """`G` in `&G` or `(void *)&G`."""
    value = ctree.unwrap_parens(value)
    if value is None or value.type != "pointer_expression" or value.children[0].type != "&":
        return None
    target = value.child_by_field_name("argument")
    return target if target is not None and target.type == "identifier" else None


def _functions(idx: FileIndex, elements: list[Node]) -> tuple[str | None, str | None]:
    texts = [idx.src.text_of(e) for e in elements if e.type != "initializer_pair"]
    getter = referenced_name(texts[1]) if len(texts) > 1 and not is_null(texts[1]) else None
    setter = referenced_name(texts[2]) if len(texts) > 2 and not is_null(texts[2]) else None
    return getter, setter


def _macro_closure(macro: Macro) -> tuple[str, Span, str | None, str | None] | None:
    """For a macro whose body is one row `{ ..., &param }`: the parameter, the span of
    `&param` in the file, and the row's getter and setter."""
    values = split_braced(macro.body_text.replace("\\\n", " "))
    if len(values) <= _CLOSURE:
        return None
    toks = macro.tokens
    depth, element, start = 0, 0, None
    closure_tokens = []
    for tok in toks:
        if tok.text in (b"{", b"(", b"["):
            depth += 1
            if depth == 1:
                continue
        elif tok.text in (b"}", b")", b"]"):
            depth -= 1
            if depth == 0:
                continue
        elif tok.text == b"," and depth == 1:
            element += 1
            continue
        if element == _CLOSURE and depth >= 1:
            closure_tokens.append(tok)
    if len(closure_tokens) != 2 or closure_tokens[0].text != b"&" or closure_tokens[1].kind != "ident":
        return None
    param, params = closure_tokens[1].text.decode(), macro.params or ()
    if param not in params:
        return None
    start = closure_tokens[0].start
    getter = None if is_null(values[1]) else referenced_name(values[1])
    setter = None if is_null(values[2]) else referenced_name(values[2])
    if getter in params or setter in params:
        return None
    return param, Span(start, closure_tokens[1].end), getter, setter


def _closure_reads(idx: FileIndex, fn: Node, key: str) -> ClosureReads:
    """Where `fn` reads its closure (its last parameter) as `*(T *)closure`."""
    named = ctree.parameters(fn)
    name = ctree.read_declarator(named[-1].child_by_field_name("declarator")).name \
        if named and named[-1].child_by_field_name("declarator") is not None else None
    body = fn.child_by_field_name("body")
    if name is None or body is None:
        return ClosureReads(key, idx.path, (), name is None)
    reads, other = [], False
    for ident in idx.uses_in(name, body.start_byte, body.end_byte):
        cast = ident.parent
        deref = cast.parent if cast is not None and cast.type == "cast_expression" else None
        if deref is not None and deref.type == "pointer_expression" and deref.children[0].type == "*":
            reads.append(ctree.span(ident))
        else:
            other = True
    return ClosureReads(key, idx.path, tuple(reads), other)
