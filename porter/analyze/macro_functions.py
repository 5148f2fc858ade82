"""Functions that a project macro defines: `BINOP(Foo_add, a + b)` at file scope.

The parser sees only the macro's use. Expanding each use and parsing the expansion tells
porter the functions' names, parameters and calls, so that their roles (a slot named in a
type) and their needs (globals the macro body reaches) are known like any other function's.
Edits to them are edits to the one macro body all of them share.
"""

from __future__ import annotations

from dataclasses import dataclass

from porter.analyze import ctree
from porter.analyze.index import FileIndex
from porter.analyze.macros import MacroTable, expand, split_args
from porter.model import Macro, Span
from porter.parse import parse_source, walk


@dataclass(frozen=True)
class MacroFunction:
    name: str
    macro: str
    file: str  # where the use is
    use: Span  # the macro use that defines it
    params: tuple[str | None, ...]
    calls: tuple[str, ...]
    is_static: bool


def collect_macro_functions(indexes: list[FileIndex], macros: MacroTable) -> list[MacroFunction]:
    out: list[MacroFunction] = []
    for idx in indexes:
        src = idx.src
        for mask_or_use in _top_level_uses(idx, macros):
            name, span = mask_or_use
            macro = macros.get(name)
            if macro is None or "{" not in macro.body_text:
                continue
            args = None
            if macro.params is not None:
                open_at = src.text.find(b"(", span.end)
                if open_at < 0 or src.text[span.end:open_at].strip():
                    continue
                args, _ = split_args(src.text, open_at)
                if args is None:
                    continue
            expansion = expand(macros, name, args)
            if not expansion:
                continue
            out.extend(_functions_in(expansion, macro, idx.path, span))
    return out


def _top_level_uses(idx: FileIndex, macros: MacroTable) -> list[tuple[str, Span]]:
    uses = []
    for name, nodes in idx.identifiers.items():
        if name not in macros.by_name:
            continue
        for node in nodes:
            if ctree.enclosing_function(node) is None and node.parent is not None and \
                    node.parent.type not in ("preproc_def", "preproc_function_def") and \
                    not _in_initializer(node):
                uses.append((name, ctree.span(node)))
    return sorted(uses, key=lambda u: u[1].start)


def _in_initializer(node) -> bool:
    current = node.parent
    while current is not None:
        if current.type in ("initializer_list", "declaration"):
            return True
        current = current.parent
    return False


def _functions_in(expansion: str, macro: Macro, path: str, use: Span) -> list[MacroFunction]:
    parsed = parse_source(f"<{macro.name}>", expansion.encode(), code_names=False)
    found = []
    for node in parsed.root.children:
        if node.type != "function_definition":
            continue
        name, _, fdecl = ctree.function_name(node)
        if not name or fdecl is None:
            continue
        params = []
        plist = fdecl.child_by_field_name("parameters")
        for p in plist.named_children if plist is not None else []:
            if p.type == "parameter_declaration":
                d = p.child_by_field_name("declarator")
                params.append(ctree.read_declarator(d).name if d is not None else None)
        calls = []
        for n in walk(node):
            if n.type == "call_expression":
                callee = ctree.call_name(n)
                if callee:
                    calls.append(callee)
        found.append(MacroFunction(name, macro.name, path, use, tuple(params), tuple(calls),
                                   "static" in ctree.storage(node)))
    return found
