"""Small readers over tree-sitter C nodes: declarators, declarations, scopes."""

from __future__ import annotations

import sys
from bisect import bisect_right
from collections.abc import Iterator
from typing import NamedTuple

from porter.model import Span
from porter.parse import Node, Source

FUNCTION_LIKE = ("function_definition",)


def span(node: Node) -> Span:
    return Span(node.start_byte, node.end_byte)


def statement_span(src: Source, stmt: Node) -> Span:
    """A statement's extent, with any `#if` group that starts inside it and ends after it.

    `if (PyType_Ready(&T) < 0)` `#if PY3 return NULL; #else return; #endif`: the tree reads one
    branch as the body; deleting the statement must take the whole group, or leave `#else`
    without its `#if`.
    """
    start, end = stmt.start_byte, stmt.end_byte
    grown = True
    while grown:
        grown = False
        for cond in src.conditionals:
            if start < cond.span.start < end < cond.span.end:
                end, grown = cond.span.end, True
    return Span(start, end)


def declaration_span(src: Source, decl: Node) -> Span:
    """A declaration's extent with the macro uses before it that the tree does not see
    (`PYCURL_INTERNAL PyTypeObject T = {...};` with an empty PYCURL_INTERNAL): replacing or
    deleting the declaration takes them too."""
    start = decl.start_byte
    masks = src.macro_masks  # in the order of the file
    for i in range(bisect_right(src.mask_starts, start) - 1, -1, -1):
        mask = masks[i]
        if mask.span.end > start:
            continue
        if src.text[mask.span.end:start].strip() or src.masked[mask.span.start:mask.span.end].strip():
            break
        start = mask.span.start
    return Span(start, decl.end_byte)


def text(src: Source, node: Node | None) -> str:
    return "" if node is None else src.text_of(node)


class Declarator(NamedTuple):
    """What a declarator declares. A named tuple, not a dataclass: every declaration of every
    file is read through one, and a tuple is made in a fraction of the time."""

    name: str | None
    name_node: Node | None
    node: Node  # the declarator without its initialiser
    value: Node | None  # the initialiser
    is_function: bool  # a function prototype, not a variable
    is_pointer: bool
    is_array: bool
    is_function_pointer: bool


def read_declarator(node: Node) -> Declarator:
    value = None
    if node.type == "init_declarator":
        value = node.child_by_field_name("value")
        node = node.child_by_field_name("declarator") or node
    decl = node
    is_pointer = is_array = is_function = is_fp = False
    through_parens = False
    current = node
    while current is not None:
        kind = current.type
        if kind in ("identifier", "field_identifier", "type_identifier"):
            return Declarator(sys.intern(current.text.decode("utf-8", "replace")), current, decl, value,
                              is_function, is_pointer, is_array, is_fp)
        if kind == "pointer_declarator":
            if through_parens and is_function:
                is_fp = True
                is_function = False
            is_pointer = True
            current = current.child_by_field_name("declarator")
        elif kind == "array_declarator":
            is_array = True
            current = current.child_by_field_name("declarator")
        elif kind == "function_declarator":
            inner = current.child_by_field_name("declarator")
            if inner is not None and inner.type == "identifier" and inner.text == b"Py_UNUSED":
                return Declarator(None, None, decl, value, False, is_pointer, is_array, is_fp)
            is_function = True
            current = inner
        elif kind == "parenthesized_declarator":
            through_parens = True
            current = next((c for c in current.named_children if c.type != "comment"), None)
        elif kind == "attributed_declarator":
            current = current.named_children[0] if current.named_children else None
        else:
            return Declarator(None, None, decl, value, is_function, is_pointer, is_array, is_fp)
    return Declarator(None, None, decl, value, is_function, is_pointer, is_array, is_fp)


def declarators(decl: Node) -> list[Node]:
    """The declarator children of a declaration (several for `int a, b;`)."""
    return decl.children_by_field_name("declarator")


def storage(decl: Node) -> set[str]:
    return {c.text.decode() for c in decl.children if c.type == "storage_class_specifier"}


def qualifiers(decl: Node) -> set[str]:
    return {c.text.decode() for c in decl.children if c.type == "type_qualifier"}


def base_type_text(src: Source, decl: Node) -> str:
    """The declaration's type with qualifiers, without storage class: `const char`."""
    parts = []
    for c in decl.children:
        if c.type in ("type_qualifier",):
            parts.append(src.text_of(c))
        elif decl.child_by_field_name("type") is not None and c == decl.child_by_field_name("type"):
            parts.append(src.text_of(c))
    return " ".join(parts)


def type_name(decl: Node) -> str:
    """The bare type name: PyObject for `static PyObject *x`, struct PyModuleDef -> PyModuleDef."""
    t = decl.child_by_field_name("type")
    if t is None:
        return ""
    if t.type in ("struct_specifier", "union_specifier", "enum_specifier"):
        name = t.child_by_field_name("name")
        return name.text.decode() if name is not None else ""
    if t.type == "sized_type_specifier":
        return t.text.decode()
    return t.text.decode()


def function_name(fn: Node) -> tuple[str | None, Node | None, Node | None]:
    """(name, name node, function_declarator) of a function definition.

    `MOD_INIT(name) { ... }` and `PyMODINIT_FUNC INIT_MODULE(name)(void) { ... }`, a project
    macro in the header position, are named as written.
    """
    node = fn.child_by_field_name("declarator")
    type_node = fn.child_by_field_name("type")
    if node is not None and node.type == "parenthesized_declarator" and type_node is not None \
            and type_node.type == "type_identifier":
        return f"{type_node.text.decode()}{node.text.decode()}".replace(" ", ""), None, None
    if node is not None and node.type == "identifier" and type_node is not None \
            and type_node.type == "type_identifier" and node.start_byte == type_node.end_byte + 1:
        # `EXT_INIT_FUNC {`, a macro that is the whole header, masked as `EXT INIT_FUNC {`.
        return f"{type_node.text.decode()}_{node.text.decode()}", None, None
    inner = node.child_by_field_name("declarator") if node is not None and node.type == "function_declarator" else None
    if inner is not None and inner.type == "function_declarator":
        macro, args = inner.child_by_field_name("declarator"), inner.child_by_field_name("parameters")
        if macro is not None and macro.type == "identifier" and args is not None:
            return f"{macro.text.decode()}{args.text.decode()}".replace(" ", ""), None, node
    while node is not None:
        if node.type == "function_declarator":
            inner = node.child_by_field_name("declarator")
            while inner is not None and inner.type == "parenthesized_declarator":
                inner = inner.named_children[0] if inner.named_children else None
            if inner is not None and inner.type == "identifier":
                return sys.intern(inner.text.decode()), inner, node
            return None, None, node
        if node.type in ("pointer_declarator", "attributed_declarator"):
            node = node.child_by_field_name("declarator") or (
                node.named_children[-1] if node.named_children else None)
            continue
        return None, None, None
    return None, None, None


def file_scope(root: Node) -> Iterator[Node]:
    """Top-level nodes, including those inside #if blocks and include guards."""
    for node in root.children:
        if node.type.startswith("preproc_") and node.type not in ("preproc_def", "preproc_function_def",
                                                                  "preproc_include", "preproc_call"):
            yield from file_scope(node)
        else:
            yield node


def parameters(fn: Node) -> list[Node]:
    """The parameter declarations of a function definition."""
    declarator = function_name(fn)[2]
    params = declarator.child_by_field_name("parameters") if declarator is not None else None
    return [p for p in params.named_children if p.type == "parameter_declaration"] if params is not None else []


def enclosing_function(node: Node) -> Node | None:
    current = node.parent
    while current is not None:
        if current.type == "function_definition":
            return current
        current = current.parent
    return None


def is_declared_locally(name: str, ident: Node, scopes: dict[int, dict[str, int]] | None = None) -> bool:
    """Whether `ident` refers to a local or parameter named `name` rather than a global.

    `scopes` (one per tree: `FileIndex.scopes`) keeps, for each block asked about, where each
    name is first declared in it: a block of thousands of statements (a big init function) is
    then read once, not once per use of a global inside it.
    """
    current = ident.parent
    child = ident
    while current is not None:
        kind = current.type
        if kind in ("compound_statement", "for_statement"):
            if scopes is not None:
                first = scopes.get(current.id)
                if first is None:
                    first = scopes[current.id] = _first_declarations(current)
                if first.get(name, child.start_byte) < child.start_byte or (
                        kind == "for_statement" and name in first):
                    return True
            else:
                for c in current.children:
                    if c.start_byte >= child.start_byte and kind == "compound_statement":
                        break
                    if c.type == "declaration" and _declares(c, name):
                        return True
        elif kind == "function_definition":
            _, _, fdecl = function_name(current)
            params = fdecl.child_by_field_name("parameters") if fdecl is not None else None
            if params is not None:
                for p in params.named_children:
                    if p.type == "parameter_declaration":
                        d = p.child_by_field_name("declarator")
                        if d is not None and read_declarator(d).name == name:
                            return True
            return False
        child = current
        current = current.parent
    return False


def _first_declarations(block: Node) -> dict[str, int]:
    """Where each name a block's own declarations declare is first declared in it."""
    first: dict[str, int] = {}
    for c in block.children:
        if c.type == "declaration":
            for d in declarators(c):
                found = read_declarator(d).name
                if found is not None:
                    first.setdefault(found, c.start_byte)
    return first


def _declares(decl: Node, name: str) -> bool:
    return any(read_declarator(d).name == name for d in declarators(decl))


def returns(stmt: Node | None, only: bool = False) -> bool:
    """A `return ...;`, or a block that ends with one (`only`: that holds nothing else)."""
    if stmt is not None and stmt.type == "compound_statement":
        body = [c for c in stmt.named_children if c.type != "comment"]
        stmt = body[-1] if body and (len(body) == 1 or not only) else None
    return stmt is not None and stmt.type == "return_statement"


def unwrap_parens(node: Node | None) -> Node | None:
    while node is not None and node.type in ("parenthesized_expression", "cast_expression"):
        if node.type == "cast_expression":
            node = node.child_by_field_name("value")
        else:
            node = node.named_children[0] if node.named_children else None
    return node


def call_name(call: Node) -> str | None:
    fn = call.child_by_field_name("function")
    if fn is not None and fn.type == "identifier":
        return sys.intern(fn.text.decode())
    return None


def call_args(call: Node) -> list[Node]:
    args = call.child_by_field_name("arguments")
    if args is None:
        return []
    return [a for a in args.named_children if a.type != "comment"]


def initializer_elements(init: Node) -> list[Node]:
    """Elements of an initializer_list, without comments."""
    return [c for c in init.named_children if c.type != "comment"]


def in_assert(node: Node) -> bool:
    """Inside `assert(...)`, which release builds (NDEBUG) compile away."""
    current = node.parent
    while current is not None and current.type != "function_definition":
        if current.type == "call_expression" and call_name(current) == "assert":
            return True
        current = current.parent
    return False


def null_test(cond: Node | None, name: str) -> str | None:
    """'null' for `m == NULL` / `!m` / `!(m = ...)`, 'found' for `m != NULL` / `m`; else None."""
    cond = unwrap_parens(cond)
    if cond is None:
        return None
    if cond.type == "identifier" and cond.text.decode() == name:
        return "found"
    if cond.type == "unary_expression" and cond.children[0].type == "!":
        inner = unwrap_parens(cond.child_by_field_name("argument"))
        if inner is not None and inner.type == "assignment_expression" and inner.children[1].type == "=":
            inner = inner.child_by_field_name("left")  # `!(m = PyModule_Create(&def))`
        return "null" if inner is not None and inner.text.decode() == name else None
    if cond.type == "binary_expression":
        op = cond.children[1].type
        left = unwrap_parens(cond.child_by_field_name("left"))
        right = unwrap_parens(cond.child_by_field_name("right"))
        sides = {left.text.decode() if left is not None else "", right.text.decode() if right is not None else ""}
        if op in ("==", "!=") and sides & {"NULL", "0"} and name in sides:
            return "null" if op == "==" else "found"
        # `(m = PyState_FindModule(&def)) != NULL`
        if op in ("==", "!=") and sides & {"NULL", "0"} and left is not None \
                and left.type == "assignment_expression":
            target = left.child_by_field_name("left")
            if target is not None and target.text.decode() == name:
                return "null" if op == "==" else "found"
    return None


def if_around(node: Node) -> Node | None:
    cond = node
    while cond.parent is not None and cond.parent.type in (
            "parenthesized_expression", "binary_expression", "unary_expression", "assignment_expression"):
        cond = cond.parent
    clause = cond.parent
    if clause is not None and clause.type == "condition_clause":
        clause = clause.parent
    if clause is not None and clause.type == "parenthesized_expression":
        clause = clause.parent
    if clause is None or clause.type != "if_statement" or clause.child_by_field_name("alternative") is not None:
        return None
    return clause
