"""Build conditions: what porter adds for code under `#ifdef X` is compiled under `X` too.

A global declared only for some builds (`#ifdef __APPLE__`, `#ifdef HAVE_LIBFOO`, `#if
PY_VERSION_HEX >= ...`) becomes a state field, a traverse and a clear line under the same
condition: its type may not exist in the other builds. A function that reaches state only
inside such a branch declares its `state` local under that condition, or the other builds warn
about an unused variable.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable

from porter.model import BuildBranch, ExtensionModule, Global, UseAccess
from porter.spans import nesting_parents

NDEBUG_ONLY = "!defined(NDEBUG)"  # inside assert(): compiled only without NDEBUG


class BuildGuards:
    """The build conditions around any place in a module's files, from its branch facts."""

    def __init__(self, branches: Iterable[BuildBranch]):
        by_file: dict[str, list[BuildBranch]] = {}
        for b in branches:
            by_file.setdefault(b.file, []).append(b)
        self._files: dict[str, tuple[list[int], list[BuildBranch], list[int]]] = {}
        for file, found in by_file.items():
            found.sort(key=lambda b: (b.body.start, -b.body.end))
            parents = nesting_parents([(b.body.start, b.body.end) for b in found])  # the innermost holding each
            self._files[file] = ([b.body.start for b in found], found, parents)

    def at(self, file: str, offset: int) -> tuple[str, ...]:
        """The conditions of the branches around `offset`, outermost first."""
        entry = self._files.get(file)
        if entry is None:
            return ()
        starts, found, parents = entry
        i = bisect_right(starts, offset) - 1
        out = []
        while i >= 0:
            if offset < found[i].body.end:
                out.append(found[i].condition)
            i = parents[i]
        out.reverse()
        return tuple(out)

    def of_global(self, g: Global) -> str | None:
        """The condition a global is declared under, as one C expression (None: every build)."""
        parts = self.at(g.file, g.declaration.start)
        return " && ".join(parts) if parts else None


def local_guards(module: ExtensionModule, guards: BuildGuards, moved: Iterable[Global],
                 state_macros: Iterable[str], needs: dict[str, set], exec_function: str | None,
                 ) -> dict[str, str]:
    """For each function that reaches state only under conditions its own body is not under
    (inside `#ifdef X`, inside assert()), the condition to declare its `state` local under."""
    functions = {f.name: f for f in module.functions}
    uses: dict[str, list[tuple[int, bool]]] = {}  # function -> (offset, in assert) of each state use
    for g in moved:
        for u in g.uses:
            if u.function and u.access is not UseAccess.MACRO:
                uses.setdefault(u.function, []).append((u.span.start, u.in_assert))
        for uu in g.unread_uses:
            if uu.function:
                uses.setdefault(uu.function, []).append((uu.span.start, False))
    macros = set(state_macros)
    for mu in module.macro_uses:
        if mu.function and mu.name in macros:
            uses.setdefault(mu.function, []).append((mu.span.start, mu.in_assert))
    for fm in module.find_module_uses:
        if fm.function and fm.wants != "existing":
            uses.setdefault(fm.function, []).append((fm.span.start, False))
    for name, f in functions.items():
        for c in f.calls:
            if needs.get(c.callee):
                uses.setdefault(name, []).append((c.span.start, False))
    out = {}
    for name, found in uses.items():
        fn = functions.get(name)
        if fn is None or name == exec_function or not needs.get(name):
            continue
        outer = guards.at(fn.file, fn.body.start)
        common = _common_prefix(_relative(guards.at(fn.file, offset), outer, in_assert) for offset, in_assert in found)
        if common:
            out[name] = " && ".join(f"({c})" if len(common) > 1 and "&&" in c else c for c in common)
    return out


def _relative(here: tuple[str, ...], outer: tuple[str, ...], in_assert: bool) -> tuple[str, ...]:
    """The conditions at a use (`here`) that the function's body start (`outer`) is not under."""
    inner = here[len(outer):] if here[:len(outer)] == outer else here
    return inner + ((NDEBUG_ONLY,) if in_assert else ())


def _common_prefix(seqs: Iterable[tuple[str, ...]]) -> tuple[str, ...]:
    common: tuple[str, ...] | None = None
    for s in seqs:
        if common is None:
            common = s
            continue
        n = 0
        while n < len(common) and n < len(s) and common[n] == s[n]:
            n += 1
        common = common[:n]
        if not common:
            break
    return common or ()
