"""Extension modules: `PyInit_*` functions, their `PyModuleDef`, and the init style."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from porter import capi
from porter.analyze import ctree
from porter.analyze.index import FileIndex
from porter.analyze.initializers import read_initializer
from porter.analyze.macros import MacroTable, expand
from porter.model import Call, InitFunction, Initializer, InitStyle, ModuleDef, Span
from porter.parse import Node, parse_source

_CREATE_IN_TEXT = re.compile(r"\b(PyModule_Create2?|PyModuleDef_Init)\s*\(\s*&?\s*\(?\s*([A-Za-z_]\w*)")
_PYINIT_IN_TEXT = re.compile(r"\bPyInit_(\w*)")


def find_init_functions(index: FileIndex, macros: MacroTable,
                        build_names: Mapping[str, str] | None = None) -> list[InitFunction]:
    """`build_names`: what the build says a name the files leave undefined stands for (its -D
    macros, and `__module__` for the module the build compiles this file as)."""
    found = []
    for name, nodes in index.functions.items():
        if "(" in name:
            continue  # macro headers are read below
        spelled = name
        implied: tuple[tuple[str, str], ...] = ()
        macro = macros.get(name)
        if macro is not None and macro.params is None:
            # `#define init_function PyInit_foo` then `PyMODINIT_FUNC init_function(void)`.
            expansion = (expand(macros, name, None) or "").strip()
            if re.fullmatch(r"PyInit_\w+", expansion):
                spelled = expansion
            elif (header := _PYINIT_HEADER.search(expansion)) is not None:
                # `EXT_INIT_FUNC {`: the macro is the whole header.
                module = pasted_module(header.group(1), name, macros, build_names or {})
                if module is None:
                    continue
                spelled = "PyInit_" + module
                if module != header.group(1):
                    implied = ((header.group(1), module),)
        if spelled.startswith("PyInit_"):
            for fn in nodes:
                found.append(dataclasses.replace(
                    _init_function(index, macros, spelled, fn, None, c_name=name if spelled != name else None),
                    implied_defines=implied))
    # MOD_INIT(name) { ... }: a project macro in the header position.
    for fn in _macro_header_functions(index, macros):
        found.append(fn)
    found.sort(key=lambda f: f.span.start)
    return found


_PYINIT_HEADER = re.compile(r"\bPyInit_(\w*)\s*\(")


def pasted_module(suffix: str, header: str, macros: MacroTable, build_names: Mapping[str, str]) -> str | None:
    """The module of `PyInit_<suffix>` spelled by the macro `header`: the suffix itself, unless
    the macros behind `header` paste `PyInit_` with a name no file defines
    (`CONCATENATE(PyInit_, EXT_MODULE)`, EXT_MODULE given by the build): then what the build
    defines it as, or the module the build compiles the file as; None when nothing says it."""
    if suffix in macros or suffix not in _names_behind(header, macros):
        return suffix or None
    return build_names.get(suffix) or build_names.get("__module__")


def _names_behind(name: str, macros: MacroTable) -> set[str]:
    """The identifiers in the body of macro `name` and of the macros those name, transitively."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        macro = macros.get(todo.pop())
        for ident in macro.identifiers if macro is not None else ():
            if ident not in seen:
                seen.add(ident)
                todo.append(ident)
    return seen


def _macro_header_functions(index: FileIndex, macros: MacroTable) -> list[InitFunction]:
    out = []
    src = index.src
    for node in src.root.children:
        fn = node
        if fn.type != "function_definition":
            continue
        type_node = fn.child_by_field_name("type")
        decl = fn.child_by_field_name("declarator")
        inner = decl.child_by_field_name("declarator") if decl is not None and decl.type == "function_declarator" \
            else None
        if inner is not None and inner.type == "function_declarator" \
                and (name_node := inner.child_by_field_name("declarator")) is not None \
                and name_node.type == "identifier":
            # `PyMODINIT_FUNC INIT_MODULE(_psycopg)(void)`: the macro spells the name only.
            macro_name = name_node.text.decode()
            params = inner.child_by_field_name("parameters")
            arg = params.text.decode().strip("() \t\n") if params is not None else ""
        elif type_node is not None and decl is not None and decl.type == "parenthesized_declarator":
            macro_name = type_node.text.decode()
            arg = decl.text.decode().strip("() \t\n")
        else:
            continue
        macro = macros.get(macro_name)
        if macro is None or macro.params is None:
            continue
        expansion = expand(macros, macro_name, [arg]) or ""
        m = _PYINIT_IN_TEXT.search(expansion)
        if not m:
            continue
        written = ctree.function_name(fn)[0]
        init = _init_function(index, macros, "PyInit_" + m.group(1), fn, macro_name, c_name=written)
        out.append(init)
    return out


def _init_function(index: FileIndex, macros: MacroTable, name: str, fn: Node,
                   macro_header: str | None, c_name: str | None = None) -> InitFunction:
    body = fn.child_by_field_name("body")
    header_end = body.start_byte if body is not None else fn.end_byte
    calls, def_name = _create_calls(index, macros, fn)
    worker = worker_node = None
    if not calls:
        worker, worker_node = _delegate(index, fn)
        if worker_node is not None:
            calls, def_name = _create_calls(index, macros, worker_node)
            if not calls:
                worker = worker_node = None
    return InitFunction(
        name=name, file=index.path, span=ctree.span(fn), header=Span(fn.start_byte, header_end),
        body=ctree.span(body) if body is not None else ctree.span(fn),
        create_calls=tuple(calls), def_name=def_name, macro_header=macro_header, c_name=c_name,
        worker=worker, worker_span=ctree.span(worker_node) if worker_node is not None else None,
    )


def _delegate(index: FileIndex, fn: Node) -> tuple[str | None, Node | None]:
    """`PyInit_foo(void) { return moduleinit(); }`: the function doing the work."""
    body = fn.child_by_field_name("body")
    if body is None:
        return None, None
    statements = [c for c in body.named_children if c.type != "comment"]
    if len(statements) != 1 or statements[0].type != "return_statement":
        return None, None
    value = ctree.unwrap_parens(statements[0].named_children[0] if statements[0].named_children else None)
    if value is None or value.type != "call_expression" or ctree.call_args(value):
        return None, None
    name = ctree.call_name(value)
    nodes = index.functions.get(name or "")
    if not nodes:
        return None, None
    return name, nodes[0]


def _create_calls(index: FileIndex, macros: MacroTable, fn: Node) -> tuple[list[Call], str | None]:
    calls, def_name = [], None
    for name, call in index.calls_in(fn.start_byte, fn.end_byte):
        args = ctree.call_args(call)
        if name in capi.MODULE_CREATE_CALLS or name == "PyModuleDef_Init":
            calls.append(Call(name, ctree.span(call), tuple(ctree.span(a) for a in args)))
            if args:
                def_name = def_name or _def_from_arg(index.src.text_of(args[0]))
            continue
        if name in macros:
            arg_texts = [index.src.text_of(a) for a in args]
            # The definition as the use spells it (`EXT_CREATE(&EXT_DEFINE_VAR)`), as a
            # MOD_DEF-style definition is named; else through the macros inside.
            m = _CREATE_IN_TEXT.search(expand(macros, name, arg_texts, nested=False) or "") \
                or _CREATE_IN_TEXT.search(expand(macros, name, arg_texts) or "")
            if m:
                calls.append(Call(name, ctree.span(call), tuple(ctree.span(a) for a in args)))
                def_name = def_name or m.group(2)
    # A create call hidden in an object-like macro used as a statement, or in a return.
    if not calls:
        for ident_name in index.identifiers:
            macro = macros.get(ident_name)
            if macro is None or macro.params is not None:
                continue
            for node in index.uses_in(ident_name, fn.start_byte, fn.end_byte):
                m = _CREATE_IN_TEXT.search(expand(macros, ident_name, None) or "")
                if m:
                    calls.append(Call(ident_name, ctree.span(node), ()))
                    def_name = def_name or m.group(2)
    return calls, def_name


def _def_from_arg(text: str) -> str | None:
    m = re.match(r"\s*&?\s*\(?\s*([A-Za-z_]\w*)", text)
    return m.group(1) if m else None


def init_style(init: InitFunction) -> InitStyle:
    names = {c.callee for c in init.create_calls}
    if "PyModuleDef_Init" in names:
        return InitStyle.MULTI_PHASE
    if names:
        return InitStyle.SINGLE_PHASE
    return InitStyle.UNKNOWN


def find_module_defs(index: FileIndex, macros: MacroTable) -> list[ModuleDef]:
    src = index.src
    defs = []
    decls = list(index.file_declarations) + [d for d, _ in index.local_declarations]
    for decl in decls:
        if ctree.type_name(decl) != "PyModuleDef":
            continue
        owner = ctree.enclosing_function(decl)
        owner_name = ctree.function_name(owner)[0] if owner is not None else None
        for d in ctree.declarators(decl):
            info = ctree.read_declarator(d)
            if info.name is None or info.is_function or info.is_pointer:
                continue
            fields: list[Initializer] = []
            if info.value is not None and info.value.type == "initializer_list":
                fields, _ = read_initializer(src, info.value, capi.MODULEDEF_FIELDS)
            defs.append(ModuleDef(
                name=info.name, file=src.path, span=ctree.span(decl),
                initializer=ctree.span(info.value) if info.value is not None else None,
                fields=tuple(fields), function=owner_name,
                is_static="static" in ctree.storage(decl),
            ))
    defs.extend(_macro_module_defs(index, macros))
    return defs


def _macro_module_defs(index: FileIndex, macros: MacroTable) -> list[ModuleDef]:
    """MOD_DEF(...)-style uses whose expansion declares a PyModuleDef."""
    out = []
    src = index.src
    defining = macros.with_text("PyModuleDef")
    for name, call in index.calls:
        if name not in defining:
            continue
        macro = macros.get(name)
        if macro is None or "PyModuleDef" not in macro.body_text:
            continue
        args = [src.text_of(a) for a in ctree.call_args(call)]
        # The fields as the use spells them (`YARA_DOC`, not the string it names), unless the
        # definition only appears once the macros inside the body are expanded too.
        parsed = None
        for nested in (False, True):
            text = expand(macros, name, args, nested=nested)
            parsed = _parse_expansion(text) if text else None
            if parsed is not None:
                break
        if parsed is None or text is None:
            continue
        def_name, fields = parsed
        owner = ctree.enclosing_function(call)
        statement = call.parent if call.parent is not None and call.parent.type == "expression_statement" else call
        out.append(ModuleDef(
            name=def_name, file=src.path, span=ctree.span(statement), initializer=None,
            fields=tuple(Initializer(f.name, ctree.span(call), f.text, f.designated) for f in fields),
            function=ctree.function_name(owner)[0] if owner is not None else None,
            is_static="static" in text.split("PyModuleDef")[0], macro=name,
        ))
    return out


def _parse_expansion(text: str) -> tuple[str, list[Initializer]] | None:
    src = parse_source("<macro>", text.encode(), code_names=False)
    for decl in src.root.children:
        if decl.type != "declaration" or ctree.type_name(decl) != "PyModuleDef":
            continue
        for d in ctree.declarators(decl):
            info = ctree.read_declarator(d)
            if info.name and info.value is not None and info.value.type == "initializer_list":
                fields, _ = read_initializer(src, info.value, capi.MODULEDEF_FIELDS)
                return info.name, fields
    return None
