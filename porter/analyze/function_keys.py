"""Which function a name means in each file: a function's identity is (file, name).

Two `static` functions of one name in two translation units are two functions (kerberos's
`verify_krb5_user` in kerberosbasic.c and in kerberospw.c). A call, a use of a global or a
prototype in a file means the definition that file's translation unit sees: its own, or the one
a file of its unit brings (a `.c` it includes, the `.c` that includes it), else the one
definition with external linkage. Facts name such a function `file:name` (`function_key`);
every other function keeps its plain name, so nothing changes where names are unique. A name
a macro body spells stays one ambiguous name: an expansion means whichever definition the
expanding file sees, and porter reads macro bodies once, not per expansion.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from porter.analyze import ctree
from porter.analyze.index import FileIndex
from porter.model import Function, Global, Span, function_key


@dataclass(frozen=True)
class FunctionKeys:
    # name -> file -> the key of the definition that file sees, for names defined in several files.
    seen_from: dict[str, dict[str, str]]

    def key(self, file: str, name: str) -> str:
        """What `name` means in `file` (a call, a prototype, a use of its address)."""
        by_file = self.seen_from.get(name)
        return by_file.get(file, name) if by_file is not None else name

    @property
    def names(self) -> frozenset[str]:
        """The names that mean a different function in different files."""
        return frozenset(self.seen_from)

    @classmethod
    def of(cls, indexes: list[FileIndex], includes: list[tuple[str, str, Span]]) -> FunctionKeys:
        definitions: dict[str, list[tuple[str, bool]]] = {}
        for idx in indexes:
            for name, nodes in idx.functions.items():
                for fn in nodes:
                    definitions.setdefault(name, []).append((idx.path, "static" in ctree.storage(fn)))
        units = _units([idx.path for idx in indexes], includes)
        seen_from: dict[str, dict[str, str]] = {}
        for name, defs in definitions.items():
            files = [file for file, _ in defs]
            # One definition per file, at most one of them extern (two would not link): else
            # the definitions are #if alternatives, which stay one ambiguous name.
            if len(defs) < 2 or len(set(files)) < len(files) or sum(not static for _, static in defs) > 1:
                continue
            if any(name in idx.macro_body_names or name in idx.blanked_names for idx in indexes):
                continue  # a macro body names it: porter cannot tell which one each expansion means
            extern = [file for file, static in defs if not static]
            by_file: dict[str, str] = {}
            for idx in indexes:
                if name not in idx.identifiers and name not in idx.functions:
                    continue
                visible = [file for file in files if file in units[idx.path]]
                if len(visible) == 1:
                    by_file[idx.path] = function_key(visible[0], name)
                elif not visible and extern:
                    by_file[idx.path] = function_key(extern[0], name)
                else:
                    break  # a file whose name porter cannot tie to one definition
            else:
                seen_from[name] = by_file
        return cls(seen_from)

    # What follows gives the facts that name a function by the code around them (the function a
    # use, a macro use or a finding is in) the key of the definition they are in.

    def in_file(self, file: str, name: str | None) -> str | None:
        return None if name is None else self.key(file, name)

    def of_global(self, g: Global) -> Global:
        if not self.seen_from:
            return g
        uses = tuple(replace(u, function=self.in_file(u.file, u.function), call=self.in_file(u.file, u.call))
                     for u in g.uses)
        unread = tuple(replace(u, function=self.in_file(u.file, u.function)) for u in g.unread_uses)
        return replace(g, function=self.in_file(g.file, g.function), uses=uses, unread_uses=unread)

    def of_sites(self, f: Function) -> Function:
        """A function's callback sites, by the key of the function making the call."""
        if not self.seen_from or not f.sync_callback_sites:
            return f
        return replace(f, sync_callback_sites=tuple(
            replace(s, caller=self.key(s.statement.file, s.caller)) for s in f.sync_callback_sites))


def _units(files: list[str], includes: list[tuple[str, str, Span]]) -> dict[str, frozenset[str]]:
    """Each file -> every file of the translation units it is part of."""
    below: dict[str, set[str]] = {}
    above: dict[str, set[str]] = {}
    for includer, target, _ in includes:
        below.setdefault(includer, set()).add(target)
        above.setdefault(target, set()).add(includer)

    def closure(start: str, edges: dict[str, set[str]]) -> set[str]:
        seen, todo = {start}, [start]
        while todo:
            for other in edges.get(todo.pop(), ()):
                if other not in seen:
                    seen.add(other)
                    todo.append(other)
        return seen

    out = {}
    for file in files:
        roots = {f for f in closure(file, above) if not above.get(f)}
        out[file] = frozenset(set().union(*(closure(root, below) for root in roots)) if roots else closure(file, below))
    return out

