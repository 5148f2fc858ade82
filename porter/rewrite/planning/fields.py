"""The fields of the module state struct: one per moved global, named and typed once."""

from __future__ import annotations

from dataclasses import dataclass

from porter.analyze.initializers import is_null
from porter.model import ExtensionModule, Global, GlobalKind
from porter.rewrite.names import NameAllocator
from porter.rewrite.planning.guards import BuildGuards
from porter.rewrite.planning.reach import GlobalKey

# The key of the field that keeps types' __module__ descriptors (not a global of the module).
MODULE_ATTRIBUTE_KEY: GlobalKey = (None, "<module attribute descriptors>")


@dataclass(frozen=True)
class StateField:
    key: GlobalKey
    name: str  # the field name in the state struct
    decl: str  # `PyObject *markup`
    is_object: bool  # visited and cleared by the GC functions
    initial: str | None  # a value exec must assign (C data with a non-zero initialiser)
    is_type: bool = False
    source: Global | None = None  # the global it replaces
    guard: str | None = None  # the build condition its global is declared under (None: every build)
    # Declared differently for different builds: (condition, declaration) for each.
    variants: tuple[tuple[str | None, str], ...] = ()


def state_fields(module: ExtensionModule, movable: dict[GlobalKey, Global], names: NameAllocator,
                 existing_fields: frozenset[str], needs_descriptor_field: bool) -> tuple[StateField, ...]:
    """A field per moved global, in source order; local statics are named `<function>_<name>`.
    A global declared only for some builds keeps that condition (its type may exist only there)."""
    guards = BuildGuards(module.build_branches)
    fields = []
    for key, g in sorted(movable.items(), key=lambda kv: (kv[1].file, kv[1].span.start)):
        name = g.name if g.function is None else names.fresh(f"{g.function}_{g.name}")
        if name in existing_fields:
            name = names.fresh(name)
        decl = f"PyTypeObject *{name}" if g.kind is GlobalKind.STATIC_TYPE else _declaration(g, name)
        initial = None
        if not g.kind.is_object_kind and g.initializer is not None and not is_null(g.initializer_text):
            initial = g.initializer_text
            if initial.lstrip().startswith("{"):
                # A struct's initialiser: assign it as a compound literal, of the type as
                # declared (`struct tag` when there is no typedef).
                declared = decl.rsplit(name, 1)[0].replace("const ", "").strip()
                initial = f"({declared or g.c_type}){initial.strip()}"
        variants: tuple[tuple[str | None, str], ...] = ()
        if any(x.type_text != g.type_text for x in g.alternatives):
            variants = tuple((guards.of_global(x), _declaration(x, name)) for x in (g, *g.alternatives))
        fields.append(StateField(key, name, decl, g.kind.is_object_kind and not holds_no_reference(g), initial,
                                 g.kind is GlobalKind.STATIC_TYPE, g, None if variants else guards.of_global(g),
                                 variants))
    if needs_descriptor_field:
        name = names.fresh("module_attribute_descriptors")
        fields.append(StateField(MODULE_ATTRIBUTE_KEY, name, f"PyObject *{name}", True, None))
    return tuple(fields)


def holds_no_reference(g: Global) -> bool:
    """A global a function sets to NULL without releasing it first there (`str1 = str2 = NULL;`
    before a call fills them, `Py_DECREF(str2)` after): a scratch slot that never owns what it
    points to between calls. Its field is neither visited nor cleared (it may dangle)."""
    released: dict[str | None, int] = {}
    for u in g.uses:  # in source order
        if u.call in ("Py_DECREF", "Py_XDECREF", "Py_CLEAR", "Py_SETREF", "Py_XSETREF"):
            released.setdefault(u.function, u.span.start)
        elif u.assigned_null and u.function is not None and not (
                u.function in released and released[u.function] < u.span.start):
            return True
    return False


def _declaration(g: Global, name: str) -> str:
    """`static PyObject *a, *b;` -> `PyObject *a`: the declared type with this declarator."""
    text = g.type_text
    if g.function is not None and name != g.name:
        # Rename the declarator's identifier (the last occurrence is the declarator's own).
        head, _, tail = text.rpartition(g.name)
        text = head + name + tail
    return text.replace("static ", "").strip()
