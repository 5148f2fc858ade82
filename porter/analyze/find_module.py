"""Uses of PyState_FindModule: in code (read on the tree) and in macro bodies (read lexically)."""

from __future__ import annotations

import re

from porter.analyze import ctree
from porter.analyze.index import FileIndex
from porter.model import FindModuleUse, Span

_IN_MACRO = re.compile(
    rb"(?P<state>PyModule_GetState\s*\(\s*)?PyState_FindModule\s*\(\s*&\s*(?P<def>\w+)\s*\)(?(state)\s*\))")


def collect_find_module_uses(indexes: list[FileIndex], def_name: str | None) -> list[FindModuleUse]:
    out = []
    for idx in indexes:
        src = idx.src
        for name, call in idx.calls:
            if name != "PyState_FindModule":
                continue
            owner = ctree.enclosing_function(call)
            function = ctree.function_name(owner)[0] if owner is not None else None
            wrapper = _state_wrapper(call)
            if wrapper is not None:
                out.append(FindModuleUse(idx.path, ctree.span(wrapper), function, "state"))
            else:
                out.append(FindModuleUse(idx.path, ctree.span(call), function, "module"))
        for m in idx.macros:
            body = src.text[m.body.start:m.body.end]
            for match in _IN_MACRO.finditer(body):
                if def_name and match.group("def").decode() != def_name:
                    continue
                span = Span(m.body.start + match.start(), m.body.start + match.end())
                out.append(FindModuleUse(idx.path, span, None,
                                         "state" if match.group("state") else "module", m.name))
    out.sort(key=lambda u: (u.file, u.span.start))
    return out


def _state_wrapper(call):
    """`PyModule_GetState(PyState_FindModule(&def))`: the outer call, when there is one."""
    node = call.parent
    while node is not None and node.type == "parenthesized_expression":
        node = node.parent
    if node is None or node.type != "argument_list":
        return None
    outer = node.parent
    if outer is not None and outer.type == "call_expression" and ctree.call_name(outer) == "PyModule_GetState":
        return outer
    return None
