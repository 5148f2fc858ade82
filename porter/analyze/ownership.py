"""Which module of a file with several init functions owns what: each owns what its init reaches.

A file (or the files read with it) may define several `PyInit_` functions: amalgamated and
generated sources put many modules in one translation unit. Each module is read from the same
files, but a global, type or function that only another module's init reaches is that module's:
read as this module's too, it would hold this module back ("used in PyInit_other(), which
cannot reach module state") and make every module's facts, and the work on them, grow with the
whole file.

Reach is by name, over file-scope definitions: a definition reaches every name its text spells
(identifiers, the names inside macro uses the tree does not see, the names in the bodies of
the macros it uses). Names are not told apart by file, so reach is an over-approximation:
a name two inits reach stays with both. What no init reaches stays with every module.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from porter.analyze import ctree
from porter.analyze.index import FileIndex
from porter.lexer import tokenize
from porter.model import InitFunction


@dataclass(frozen=True)
class Ownership:
    """What one module of a file with several init functions owns: the names its init reaches,
    and the names no init reaches."""

    mine: frozenset[str]
    reached: frozenset[str]  # what some init of these files reaches

    def owns(self, name: str) -> bool:
        return name in self.mine or name not in self.reached


def ownership(indexes: list[FileIndex], inits: list[InitFunction]) -> dict[str, Ownership]:
    """Each init function's (by name) Ownership; empty when the files define one init function
    (then a module owns everything)."""
    if len({i.function for i in inits}) < 2:
        return {}
    graph = _reference_graph(indexes)
    reach = {i.function: frozenset(_closure(_spelled_in(indexes, i), graph)) for i in inits}
    reached = frozenset().union(*reach.values())
    return {name: Ownership(mine, reached) for name, mine in reach.items()}


T = TypeVar("T")


def owned(items: list[T], name_of: Callable[[T], str], owner: Ownership | None, shared: dict, key: str) -> list[T]:
    """The `items` (named by `name_of`) a module owns, in their order. Work in proportion to what
    the module owns, not to all the items of the files: `shared` keeps, under `key`, the items'
    positions by name for the other modules of the files."""
    if owner is None:
        return items
    index = shared.get(key)
    if index is None:
        by_name: dict[str, list[int]] = {}
        unreached: list[int] = []
        for pos, item in enumerate(items):
            name = name_of(item)
            if name in owner.reached:
                by_name.setdefault(name, []).append(pos)
            else:
                unreached.append(pos)
        index = shared[key] = (by_name, unreached)
    by_name, unreached = index
    picked = [pos for name in owner.mine for pos in by_name.get(name, ())]
    return [items[pos] for pos in sorted(picked + unreached)]


def _spelled_in(indexes: list[FileIndex], init: InitFunction) -> set[str]:
    """The names an init function's definition spells, and the init's own names."""
    names = {init.function, init.name} | ({init.worker} if init.worker else set())
    for idx in indexes:
        if idx.path == init.file:
            names |= set(_names_in(idx, init.span.start, init.span.end))
    return names


def _closure(start: set[str], graph: dict[str, set[str]]) -> set[str]:
    seen = set(start)
    todo = list(start)
    while todo:
        for n in graph.get(todo.pop(), ()):
            if n not in seen:
                seen.add(n)
                todo.append(n)
    return seen


def _reference_graph(indexes: list[FileIndex]) -> dict[str, set[str]]:
    """Name -> the names its definitions spell (functions, file-scope declarations, macros)."""
    graph: dict[str, set[str]] = {}
    for idx in indexes:
        definitions = _Definitions(idx)
        for used, nodes in idx.identifiers.items():
            for node in nodes:
                for name in definitions.at(node.start_byte):
                    graph.setdefault(name, set()).add(used)
        for mask in idx.src.macro_masks:
            for name in definitions.at(mask.span.start):
                graph.setdefault(name, set()).update([mask.name, *_names_in(idx, mask.span.start, mask.span.end)])
        for used, sites in idx.macro_body_names.items():
            for macro, _ in sites:
                graph.setdefault(macro, set()).add(used)
    return graph


class _Definitions:
    """A file's file-scope definitions by position: which names the text at an offset defines."""

    def __init__(self, idx: FileIndex):
        found: list[tuple[int, int, list[str]]] = []
        for name, nodes in idx.functions.items():
            found += [(n.start_byte, n.end_byte, [name]) for n in nodes]
        for decl in idx.file_declarations:
            names = [info.name for info in map(ctree.read_declarator, ctree.declarators(decl)) if info.name]
            if names:
                found.append((decl.start_byte, decl.end_byte, names))
        found.sort()
        self.found = found
        self.starts = [d[0] for d in found]

    def at(self, offset: int) -> list[str]:
        # Definitions do not nest at file scope: the last one starting before holds it, if any.
        i = bisect_right(self.starts, offset) - 1
        return self.found[i][2] if i >= 0 and offset < self.found[i][1] else []


def _names_in(idx: FileIndex, start: int, end: int) -> Iterable[str]:
    return (tok.text.decode("utf-8", "replace") for tok in tokenize(idx.src.text, start, end) if tok.kind == "ident")
