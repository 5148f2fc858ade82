"""Uses of a converted type that its own instance already answers: no module state needed.

`T.tp_free(self)` in T's dealloc frees through the type the object has: once T is a heap type,
the dealloc keeps `Py_TYPE(self)` in a local before freeing (it must release the type after
tp_free), and `tp->tp_free(self)` is the same call with no module-state lookup, which in a
dealloc can run during garbage collection after the module's types were cleared.
"""

from __future__ import annotations

from porter.model import ExtensionModule, Global, GlobalKind, Use, UseShape


def freed_through_own_type(u: Use, g: Global, module: ExtensionModule) -> bool:
    """`u` is `T.tp_free` inside a statement of T's own dealloc that frees the object."""
    if g.kind is not GlobalKind.STATIC_TYPE or u.shape is not UseShape.MEMBER or u.member != "tp_free" \
            or u.function is None:
        return False
    f = module.function(u.function)
    return f is not None and "tp_dealloc" in f.slots and g.name in f.types and not f.releases_type \
        and bool(f.params and f.params[0].name) \
        and any(s.start <= u.span.start < s.end for s in f.frees)
