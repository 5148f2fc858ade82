"""Heap types a module already builds from a PyType_Spec and keeps in a global.

`Pair_Type = PyType_FromSpec(&Pair_spec);` is half of a port: the type is per call, but the
global is shared, and without the module the type's methods cannot find module state.
"""

from __future__ import annotations

from porter import capi
from porter.analyze import ctree
from porter.analyze.index import FileIndex
from porter.analyze.initializers import referenced_name
from porter.model import SpecType


def collect_spec_types(indexes: list[FileIndex]) -> list[SpecType]:
    out = []
    for idx in indexes:
        for name, call in idx.calls:
            if name not in capi.SPEC_CREATORS:
                continue
            args = ctree.call_args(call)
            if len(args) <= capi.SPEC_CREATORS[name]:
                continue
            spec = referenced_name(idx.src.text_of(args[capi.SPEC_CREATORS[name]]))
            node = call
            while node.parent is not None and node.parent.type in ("cast_expression", "parenthesized_expression"):
                node = node.parent
            parent = node.parent
            if parent is None or parent.type != "assignment_expression" or parent.child_by_field_name("right") != node:
                continue
            left = parent.child_by_field_name("left")
            owner = ctree.enclosing_function(call)
            function = ctree.function_name(owner)[0] if owner is not None else None
            if left is None or left.type != "identifier" or function is None or spec is None:
                continue
            if ctree.is_declared_locally(left.text.decode(), left, idx.scopes):
                continue
            out.append(SpecType(left.text.decode(), spec, idx.path, function,
                                ctree.span(call), name, tuple(ctree.span(a) for a in args),
                                tuple(idx.src.text_of(a) for a in args)))
    return out
