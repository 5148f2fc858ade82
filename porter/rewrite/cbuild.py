"""Named builders for the small pieces of C that steps insert; larger ones are templates.

Each returns C text with "\\n" line ends (the emitter turns them into the file's own) and no
indentation of its first line: the caller knows where it goes.
"""

from __future__ import annotations

import posixpath
import re

from porter.render import render


def gc_functions(plan) -> str:
    """A heap type's generated traverse and clear (planning.gc.GcPlan)."""
    return render("c/gc_functions.c.jinja", traverse=plan.traverse, clear=plan.clear,
                  struct=plan.struct, fields=plan.fields)


def module_of_type(plan, type_expr: str) -> str:
    """The module a type of the module belongs to: PyType_GetModuleByDef where the package's
    limited API has it, else the state block's MRO walk."""
    if plan.has("PyType_GetModuleByDef"):
        return f"PyType_GetModuleByDef({type_expr}, &{plan.names.def_name})"
    return f"{plan.names.module_by_type}({type_expr})"


def free_call(plan, type_var: str) -> str:
    """How a dealloc frees through its type: tp_free, or its slot in the limited API."""
    if plan.limited_api is None:
        return f"{type_var}->tp_free"
    return f"((freefunc)PyType_GetSlot({type_var}, Py_tp_free))"


def offset_member_row(name: str, offset: str) -> str:
    """A PyMemberDef row for `__dictoffset__` and friends."""
    return f'{{"{name}", T_PYSSIZET, {offset}, READONLY}},'


def structmember_include() -> str:
    return '#include "structmember.h"   /* T_PYSSIZET, READONLY */'


def state_declaration(state_type: str, state_var: str, expression: str) -> str:
    """`<mod>_state *state = <expression>;`"""
    return f"{state_type} *{state_var} = {expression};"


def guarded(lines: str, condition: str | None) -> str:
    """Lines compiled only when `condition` holds (`#ifdef X` for `defined(X)`)."""
    if not condition:
        return lines
    return f"{if_directive(condition)}\n{lines}\n#endif"


def if_directive(condition: str) -> str:
    m = re.fullmatch(r"(!?)defined\(\s*(\w+)\s*\)", condition.strip())
    if m:
        return f"#if{'n' if m.group(1) else ''}def {m.group(2)}"
    return f"#if {condition}"


EXEC_RETURN_TYPE = "static int"


def exec_declarator(exec_name: str, param: str) -> str:
    return f"{exec_name}(PyObject *{param})"


def exec_header(exec_name: str, param: str) -> str:
    return f"{EXEC_RETURN_TYPE}\n{exec_declarator(exec_name, param)}"


def return_module_def(def_name: str, runtime_slots: str | None = None) -> str:
    """The body of a PyInit_ that only hands out its definition (after `runtime_slots`, the
    code that fills the slots the build's limited API cannot name)."""
    fill = f"{runtime_slots}\n" if runtime_slots else ""
    return f"{{\n{fill}    return PyModuleDef_Init(&{def_name});\n}}"


def keep_descriptor_call(keep: str, state_var: str, field: str, module_name: str) -> str:
    """Saving a type's __module__ descriptor right after the type is made (templates/c/module_attribute)."""
    return (f'if ({keep}({state_var}, {state_var}->{field}, "{module_name}") < 0) {{\n'
            "    return -1;\n}\n")


def release_and_succeed(var: str, indent: str) -> str:
    """`return m;` in an exec whose module variable owns a reference: release it, return 0."""
    return f"Py_DECREF({var});\n{indent}return 0;"


def publish_state(state_type: str, saved: str, thread_local: str, state_var: str, indent: str) -> str:
    """Before a call that calls back: keep the thread-local's value and publish this state."""
    return f"{state_type} *{saved} = {thread_local};\n{indent}{thread_local} = {state_var};\n{indent}"


def split_wrapper(header: str, name: str, params: str, impl: str, args: str) -> str:
    """A module method split into `<name>_impl(state, ...)` and the method that finds the state."""
    return f"{header}\n{name}({params})\n{{\n    return {impl}({args});\n}}"


def exported_wrapper(header: str, name: str, params: str, impl: str, args: str, state_decl: str,
                     state_var: str) -> str:
    """A function other code calls by its symbol, split: it keeps its signature, finds the state
    of the module this interpreter imported and hands it to `<name>_impl`."""
    return (f"{header}\n{name}({params})\n{{\n    {state_decl}\n    if ({state_var} == NULL) {{\n"
            f"        return NULL;\n    }}\n    return {impl}({args});\n}}")


def state_header(path: str, module_name: str, block: str) -> str:
    """porter's own header for a module whose files share none it can use: guarded, after the
    including file's own includes (the state's field types come from them)."""
    guard = re.sub(r"\W", "_", posixpath.basename(path)).upper()
    return (f"/* The module state of {module_name}, shared by its files. Each includes this header\n"
            f"   after its other includes: the fields' types come from them. */\n"
            f"#ifndef {guard}\n#define {guard}\n\n#include <Python.h>\n\n{block.rstrip()}\n\n#endif /* {guard} */\n")
