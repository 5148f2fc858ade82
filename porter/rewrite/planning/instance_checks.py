"""Instance checks a function with no state answers through the object's own type.

`HgRevlogIndex_GetParents(PyObject *op, ...)`, a function of a capsule's C API, starts with
`if (!HgRevlogIndex_Check(op)) ...` and uses the static type for nothing else. Once the type
is a heap type in the module state the function cannot reach that state, but the object can:
if op's type (or a base) was made by this module, the module that made it holds the type to
check against; if not, op is no instance. Such a use does not keep the type static.
"""

from __future__ import annotations

from porter.model import ExtensionModule, GlobalKind, InstanceCheck, UseAccess
from porter.rewrite.planning.access import Access
from porter.rewrite.planning.reach import GlobalKey
from porter.rewrite.vocab import AccessKind


def checks_by_instance(module: ExtensionModule, movable: dict, access: dict[str, Access],
                       direct: dict[str, set[GlobalKey]], macro_bodies: dict[str, set[GlobalKey]],
                       ) -> tuple[dict[str, set[GlobalKey]], tuple[InstanceCheck, ...]]:
    """For each function that cannot reach state, the static types its own body uses only in
    instance checks (they need no state there), and those checks."""
    if not module.instance_checks:
        return {}, ()
    exempt: dict[str, set[GlobalKey]] = {}
    answered: list[InstanceCheck] = []
    for name, keys in sorted(direct.items()):
        acc = access.get(name)
        if acc is None or acc.kind is not AccessKind.NONE:
            continue
        for key in sorted(keys, key=lambda k: (k[0] or "", k[1])):
            g = movable.get(key)
            if g is None or g.kind is not GlobalKind.STATIC_TYPE or g.function is not None:
                continue
            checks = [c for c in module.instance_checks if c.function == name and c.type_name == g.name]
            uses = [u for u in g.uses if u.function == name and u.access is not UseAccess.MACRO]
            macro_uses = [m for m in module.macro_uses if m.function == name and key in macro_bodies.get(m.name, ())]
            if not checks or any(uu.function == name for uu in g.unread_uses):
                continue
            if all(any(c.macro is None and c.span.start <= u.span.start < c.span.end for c in checks) for u in uses) \
                    and all(any(c.macro == m.name and c.span.start == m.span.start for c in checks)
                            for m in macro_uses):
                exempt.setdefault(name, set()).add(key)
                answered += checks
    return exempt, tuple(answered)
