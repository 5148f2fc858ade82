"""Getset closures that become offsets into the module state (analyze.getset_closures).

A row `{"Error", get_exc, NULL, doc, &Error}` names a global outside any function, which would
keep it process-global. When every use of the closure by the row's getter and setter is
`*(T *)closure`, and every row naming them has such a closure (or, for a macro's rows, every
use of the macro does), the row can carry `(void *)offsetof(S, Error)` instead and the getter
read the field from its own state. All of those rows move together: if one of their globals
stays, they all stay.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from porter.model import ClosureReads, ExtensionModule, GetsetClosure, GlobalKind, Use
from porter.rewrite.vocab import Reason

GlobalKey = tuple[str | None, str]  # as planning.reach has it (which reads this module)


def eligible_rows(module: ExtensionModule) -> tuple[GetsetClosure, ...]:
    """The rows whose closure can become an offset, whatever moves (facts only)."""
    if not module.getset_closures:
        return ()  # the common case, asked for every use outside a function
    reads: dict[str, list[ClosureReads]] = {}
    for r in module.closure_reads:
        reads.setdefault(r.function, []).append(r)
    macro_uses: dict[str, int] = {}
    for use in module.macro_uses:
        macro_uses[use.name] = macro_uses.get(use.name, 0) + 1
    macro_rows: dict[str, int] = {}
    for row in module.getset_closures:
        if row.macro is not None:
            macro_rows[row.macro] = macro_rows.get(row.macro, 0) + 1
    out = []
    for row in module.getset_closures:
        g = next((g for g in module.globals if g.function is None and g.name == row.global_name), None)
        if g is None or g.kind is GlobalKind.STATIC_TYPE:
            continue  # a static type becomes a pointer in the state: `*(PyTypeObject *)closure` would not hold
        functions = [f for f in (row.getter, row.setter) if f]
        if not functions or any(module.function(f) is None or not reads.get(f)
                                or any(r.other_uses or r.other_rows for r in reads[f]) for f in functions):
            continue
        if row.macro is not None and macro_uses.get(row.macro, 0) != macro_rows[row.macro]:
            continue  # the macro expands somewhere else too: its body cannot change
        out.append(row)
    return tuple(out)


def is_closure_use(module: ExtensionModule, u: Use) -> bool:
    """Whether a use of a global is an eligible row's closure (it moves with the row)."""
    return u.function is None and any(r.file == u.file and r.use == u.span for r in eligible_rows(module))


def rows_apart(module: ExtensionModule, movable: Mapping[GlobalKey, object]) -> Iterator[tuple[GlobalKey, Reason]]:
    """Rows that share a getter, a setter or a macro move together: a global that stays keeps
    the others (their functions read every closure alike)."""
    rows = eligible_rows(module)
    groups: dict[str, list[GetsetClosure]] = {}
    for row in rows:
        for name in {row.getter, row.setter, row.macro and "macro " + row.macro} - {None, ""}:
            groups.setdefault(str(name), []).append(row)
    for name, members in sorted(groups.items()):
        staying = [r for r in members if (None, r.global_name) not in movable]
        if not staying:
            continue
        for r in members:
            if (None, r.global_name) in movable:
                what = name if name.startswith("macro ") else f"{name}()"
                yield (None, r.global_name), Reason(
                    "used-at-file-scope", f"the closure of a getset row whose {what} also reads "
                                          f"{staying[0].global_name}, which stays process-global")


def moved_rows(module: ExtensionModule, moved: set[str]) -> list[GetsetClosure]:
    """The eligible rows whose global moves."""
    return [r for r in eligible_rows(module) if r.global_name in moved]
