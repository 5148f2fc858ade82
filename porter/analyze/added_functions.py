"""Method tables the module turns into module-level functions itself, not through m_methods.

`PyModule_AddFunctions(m, table)` adds a table's functions with the module as their `self`.
Older code makes each function with `PyCFunction_New(&table[i], NULL)` (or `PyCFunction_NewEx`,
`PyCMethod_New`) and stores it in the module's dict, often from a helper handed the dict and
the table: their `self` is NULL. Either way the rows are module functions; for the second, the
port passes the module instead of NULL (a `NullSelfSite`), so that they reach module state as
m_methods' functions do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from porter import capi
from porter.analyze import ctree
from porter.analyze.functions import Tables, read_params
from porter.analyze.index import FileIndex
from porter.analyze.initializers import is_null
from porter.model import NullSelfSite
from porter.parse import Node

# `&table[i]`, `table + i`, `(PyMethodDef *)table`, `meth`: the variable an argument starts from.
_BASE_NAME = re.compile(r"^\s*(?:\(\s*[\w\s]+\*\s*\)\s*)*&?\s*\(?\s*([A-Za-z_]\w*)")
# How far a table is followed back through the parameters of helpers that pass it on.
_MAX_DEPTH = 4


@dataclass(frozen=True)
class AddedTables:
    """Tables whose rows become module functions, and the calls that give those a NULL `self`."""

    module_tables: tuple[tuple[str, str], ...]  # (file, table) keys of Tables.methods
    null_self_sites: tuple[NullSelfSite, ...]


def collect_added_tables(indexes: list[FileIndex], tables: Tables, key_of) -> AddedTables:
    """`key_of(file, name)`: the function key a file's name for a function has."""
    if not tables.methods:
        return AddedTables((), ())
    tracer = _Tracer(indexes, tables)
    found: dict[tuple[str, str], None] = {}
    sites: list[NullSelfSite] = []
    for idx in indexes:
        for api, table_at in capi.MODULE_FUNCTION_ADDERS.items():
            for call in idx.calls_by_name.get(api, ()):
                args = ctree.call_args(call)
                if len(args) > table_at:
                    found.update(dict.fromkeys(tracer.tables(idx, args[table_at], _MAX_DEPTH)))
        for api, self_at in capi.FUNCTION_OBJECT_MAKERS.items():
            for call in idx.calls_by_name.get(api, ()):
                args = ctree.call_args(call)
                owner = ctree.enclosing_function(call)
                if len(args) <= self_at or owner is None or not is_null(idx.src.text_of(args[self_at])):
                    continue
                keys = tracer.tables(idx, args[0], _MAX_DEPTH)
                name = ctree.function_name(owner)[0]
                if not keys or name is None:
                    continue
                found.update(dict.fromkeys(keys))
                functions = tuple(dict.fromkeys(key_of(k[0], e.function) for k in keys
                                                for e in tables.methods[k] if e.function))
                sites.append(NullSelfSite(idx.path, key_of(idx.path, name), ctree.span(args[self_at]),
                                          ctree.span(call), api, tuple(t for _, t in keys), functions))
    return AddedTables(tuple(sorted(found)), tuple(sites))


class _Tracer:
    """Follows an argument back to the method tables it points into."""

    def __init__(self, indexes: list[FileIndex], tables: Tables) -> None:
        self.indexes = indexes
        self.known = tables

    def tables(self, idx: FileIndex, arg: Node, depth: int) -> list[tuple[str, str]]:
        m = _BASE_NAME.match(idx.src.text_of(arg))
        if m is None or depth <= 0:
            return []
        name = m.group(1)
        owner = ctree.enclosing_function(arg)
        if owner is not None and ctree.is_declared_locally(name, _ident_at(arg, name) or arg, idx.scopes):
            return self._local(idx, owner, name, depth)
        key = self.known.table(self.known.methods, name, idx.path)
        return [key] if key is not None else []

    def _local(self, idx: FileIndex, owner: Node, name: str, depth: int) -> list[tuple[str, str]]:
        """A parameter: what every caller passes; a local: what it is assigned."""
        fname, _, declarator = ctree.function_name(owner)
        params = [p.name for p in read_params(idx.src, declarator)]
        out: list[tuple[str, str]] = []
        if name in params:
            at = params.index(name)
            for other in self.indexes:
                for call in other.calls_by_name.get(fname or "", ()):
                    args = ctree.call_args(call)
                    if at < len(args):
                        out += self.tables(other, args[at], depth - 1)
            return out
        for ident in idx.uses_in(name, owner.start_byte, owner.end_byte):
            value = _assigned_value(ident)
            if value is not None:
                out += self.tables(idx, value, depth - 1)
        return out


def _ident_at(arg: Node, name: str) -> Node | None:
    """The identifier `name` inside `arg` (the node scope lookups start from)."""
    if arg.type == "identifier" and arg.text.decode() == name:
        return arg
    for child in arg.named_children:
        found = _ident_at(child, name)
        if found is not None:
            return found
    return None


def _assigned_value(ident: Node) -> Node | None:
    """The value `ident` is assigned or initialised with, when it is the target."""
    parent = ident.parent
    while parent is not None and parent.type in ("pointer_declarator", "parenthesized_declarator"):
        ident, parent = parent, parent.parent
    if parent is None:
        return None
    if parent.type == "assignment_expression" and parent.child_by_field_name("left") == ident:
        op = parent.child_by_field_name("operator")
        return parent.child_by_field_name("right") if op is None or op.text == b"=" else None
    if parent.type == "init_declarator" and parent.child_by_field_name("declarator") == ident:
        return parent.child_by_field_name("value")
    return None
