"""The name of the module's definition: its own, unless the shared header would clash with a file."""

from __future__ import annotations

from porter.model import ExtensionModule, GlobalKind, Span
from porter.rewrite.names import NameAllocator
from porter.rewrite.planning.placement import Placement


def definition_name(module: ExtensionModule, placement: Placement | None, allocator: NameAllocator,
                    base: str) -> str | None:
    """A new name for the definition, or None to keep its own.

    A state block in a header declares the definition `extern` for every file that includes it.
    A part file that defines the same name for itself (heaptype.c's `static struct PyModuleDef
    *_testcapimodule`, set from PyModule_GetDef(m) in its init part) would then declare it twice
    with two types. The definition takes `<base>module` (else `<base>_module`) instead, when every use of its name in
    its own unit is one the port deletes anyway (the create call, PyState_AddModule, forward
    declarations): a use porter would leave would name the old one."""
    d = module.definition
    if d is None or placement is None or not placement.shared_header:
        return None
    if not any(placement.file in module.translation_unit(f) for f in module.definition_shadowed_in):
        return None
    unit = {f for root in module.unit_roots(d.file) for f in module.translation_unit(root)}
    body = module.init_body
    gone = [(d.file, d.span)] + [(loc.file, loc.span) for loc in module.definition_forwards]
    if body is not None:
        gone += [(body.file, s) for s in (*body.create_statements, *body.add_module)]
    uses = [u for g in module.globals if g.kind is GlobalKind.MODULE_DEF and g.name == d.name and g.function is None
            for u in g.uses if u.file in unit]
    if not all(any(file == u.file and _inside(u.span, span) for file, span in gone) for u in uses):
        return None
    return allocator.first_free((f"{base}module", f"{base}_module", f"{base}_moduledef"), f"{base}_moduledef")


def _inside(inner: Span, outer: Span) -> bool:
    return outer.start <= inner.start and inner.end <= outer.end
