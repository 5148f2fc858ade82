"""One pass over a parsed file that every collector reads from: definitions, names, macros."""

from __future__ import annotations

import sys
from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from operator import attrgetter

from porter.analyze import ctree
from porter.lexer import names, tokenize
from porter.model import Macro, Span
from porter.parse import Node, Source, captures
from porter.spans import SpanSet


@dataclass
class FileIndex:
    src: Source
    functions: dict[str, list[Node]] = field(default_factory=lambda: defaultdict(list))
    prototypes: dict[str, list[Node]] = field(default_factory=lambda: defaultdict(list))
    file_declarations: list[Node] = field(default_factory=list)
    local_declarations: list[tuple[Node, Node]] = field(default_factory=list)  # (decl, function)
    identifiers: dict[str, list[Node]] = field(default_factory=lambda: defaultdict(list))
    calls: list[tuple[str, Node]] = field(default_factory=list)
    macros: list[Macro] = field(default_factory=list)
    includes: list[tuple[str, Span]] = field(default_factory=list)
    # Identifier -> (macro, span) for every name in the file's #define bodies.
    macro_body_names: dict[str, list[tuple[str, Span]]] = field(default_factory=dict)
    # Names followed by `(` in some #define body: functions a macro calls.
    macro_called: set[str] = field(default_factory=set)
    # Identifier -> (macro, span) for names inside macro uses the parser did not see.
    blanked_names: dict[str, list[tuple[str, Span]]] = field(default_factory=dict)
    # Block node id -> where each name is first declared in it (ctree.is_declared_locally).
    scopes: dict[int, dict[str, int]] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return self.src.path

    @cached_property
    def call_starts(self) -> list[int]:
        """Where each of `calls` starts: the calls inside a span are a slice, by bisection."""
        return [node.start_byte for _, node in self.calls]

    @cached_property
    def calls_by_name(self) -> dict[str, list[Node]]:
        """The calls of each callee, in document order."""
        found: dict[str, list[Node]] = defaultdict(list)
        for name, node in self.calls:
            found[name].append(node)
        return found

    def calls_in(self, start: int, end: int) -> list[tuple[str, Node]]:
        """The calls that start in `start..end`, in document order."""
        starts = self.call_starts
        return self.calls[bisect_left(starts, start):bisect_left(starts, end)]

    def uses_in(self, name: str, start: int, end: int) -> list[Node]:
        """The identifiers `name` that start in `start..end` (each name's list is in document order)."""
        nodes = self.identifiers.get(name, [])
        return nodes[bisect_left(nodes, start, key=_START):bisect_left(nodes, end, key=_START)]


_START = attrgetter("start_byte")

# One walk of the tree for every fact family the index keeps.
INDEX_QUERIES = ("definitions", "identifiers", "calls")


def build_index(src: Source) -> FileIndex:
    index = FileIndex(src)
    # Code no target Python compiles (`#if PY_MAJOR_VERSION < 3`) is not part of the module.
    dead_ranges = SpanSet(b.body for c in src.pre.conditionals for b in c.branches if b.dead)

    def dead(node) -> bool:
        return bool(dead_ranges) and dead_ranges.covers(node.start_byte)

    found = captures(src.root, INDEX_QUERIES)
    for fn in found.get("function", []):
        name, _, _ = ctree.function_name(fn)
        if name is not None and ctree.enclosing_function(fn) is None and not dead(fn):
            index.functions[name].append(fn)
    for decl in found.get("declaration", []):
        if dead(decl):
            continue
        owner = ctree.enclosing_function(decl)
        if owner is None:
            if decl.parent is not None and decl.parent.type in (
                "translation_unit", "preproc_if", "preproc_ifdef", "preproc_else",
                "preproc_elif", "preproc_elifdef", "linkage_specification", "declaration_list",
            ):
                index.file_declarations.append(decl)
                for d in ctree.declarators(decl):
                    info = ctree.read_declarator(d)
                    if info.is_function and info.name:
                        index.prototypes[info.name].append(decl)
        elif "static" in ctree.storage(decl):
            index.local_declarations.append((decl, owner))
    # Grouped by the bytes of the name first: one decode per name, not per use.
    by_text: dict[bytes, list[Node]] = defaultdict(list)
    ids = found.get("id", [])
    if dead_ranges:
        ids = [n for n in ids if not dead_ranges.covers(n.start_byte)]
    for ident in ids:
        by_text[ident.text].append(ident)
    for text, nodes in by_text.items():
        # Interned: the same name in the facts of every module (a call's callee, a use's
        # name) is then one string, here and in what a worker sends back.
        index.identifiers[sys.intern(text.decode("utf-8", "replace"))].extend(nodes)
    for call in found.get("call", []):
        name = ctree.call_name(call)
        if name and not dead(call):
            index.calls.append((sys.intern(name), call))
    index.macros = [m for m in src.pre.macros if not src.pre.dead(m.span.start)]
    for mask in src.blanked_masks():
        for tok in tokenize(src.text, mask.span.start, mask.span.end):
            if tok.kind == "ident":
                index.blanked_names.setdefault(tok.text.decode("utf-8", "replace"), []).append(
                    (mask.name, Span(tok.start, tok.end)))
    for m in index.macros:
        at = m.body.start
        for used in names(m.raw_body, directives=False):
            index.macro_body_names.setdefault(used.text, []).append((m.name, Span(at + used.start, at + used.end)))
            if used.paren_end is not None:
                index.macro_called.add(used.text)
    index.includes = [(inc.name, inc.span) for inc in src.pre.includes
                      if not inc.system and not src.pre.dead(inc.span.start)]
    return index
