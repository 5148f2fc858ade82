"""Instance checks against the module's static types: `PyObject_TypeCheck(op, &T)`.

Where a function reaches no module state (a function of a capsule's C API, a callback), the
check can still be answered once `T` is a heap type: through the module that made op's type
(planning.instance_checks). A project macro whose body is exactly such a check (`#define
T_Check(op) PyObject_TypeCheck(op, &T)`) counts at each of its invocations.
"""

from __future__ import annotations

import re

from porter.analyze import ctree
from porter.analyze.index import FileIndex
from porter.analyze.macros import MacroTable
from porter.model import InstanceCheck

# The checks, and whether each admits subclasses.
CHECKS = {"PyObject_TypeCheck": False, "Py_IS_TYPE": True}
_TYPE_ARG = re.compile(r"^\s*&\s*([A-Za-z_]\w*)\s*$")
_CHECK_BODY = re.compile(r"^\s*\(?\s*(PyObject_TypeCheck|Py_IS_TYPE)\s*\(\s*\(?\s*(?:\(\s*PyObject\s*\*\s*\)\s*)?"
                         r"([A-Za-z_]\w*)\s*\)?\s*,\s*&\s*([A-Za-z_]\w*)\s*\)\s*\)?\s*$")


def collect_instance_checks(indexes: list[FileIndex], macros: MacroTable, key_of) -> tuple[InstanceCheck, ...]:
    """`key_of(file, name)`: the function key a file's name for a function has."""
    check_macros: dict[str, tuple[str, bool]] = {}  # macro -> (type, exact)
    for m in macros.all():
        body = _CHECK_BODY.match(m.body_text)
        if body and m.params is not None and len(m.params) == 1 and body.group(2) == m.params[0]:
            check_macros[m.name] = (body.group(3), CHECKS[body.group(1)])
    out: list[InstanceCheck] = []
    for idx in indexes:
        for name in [*CHECKS, *check_macros]:
            for call in idx.calls_by_name.get(name, ()):
                args = ctree.call_args(call)
                if name in CHECKS:
                    typed = _TYPE_ARG.match(idx.src.text_of(args[1])) if len(args) == 2 else None
                    if typed is None:
                        continue
                    type_name, exact, macro = typed.group(1), CHECKS[name], None
                elif len(args) == 1:
                    (type_name, exact), macro = check_macros[name], name
                else:
                    continue
                owner = ctree.enclosing_function(call)
                function = ctree.function_name(owner)[0] if owner is not None else None
                out.append(InstanceCheck(idx.path, key_of(idx.path, function), ctree.span(call), ctree.span(args[0]),
                                         type_name, exact, macro))
    return tuple(out)
