"""Reading struct initialisers, positional or designated, into named fields."""

from __future__ import annotations

import re
from collections.abc import Mapping

from porter.analyze import ctree
from porter.model import Initializer, Span
from porter.parse import Node, Source


def read_initializer(
    src: Source, init: Node, fields: tuple[str, ...], aliases: Mapping[str, str | None] | None = None,
    expand_macro=None,
) -> tuple[list[Initializer], bool]:
    """Fields of an initializer_list by name; also whether a masked `#if` lies inside it.

    `expand_macro(name)` gives a project macro's expansion: an element that is such a macro
    (`VIEW_TYPE_SHARED_SLOTS` standing for several `.tp_x = ...`) is read through it.
    """
    aliases = aliases or {}
    out: list[Initializer] = []
    position = 0
    conditional = any(
        init.start_byte <= mc.conditional.span.start < init.end_byte
        for mc in src.masked_conditionals
    )
    elements: list = []
    for element in ctree.initializer_elements(init):
        expanded = _expanded_elements(src, element, expand_macro)
        elements.extend(expanded if expanded is not None else [(src, element, None)])
    skip_ob_size = False
    for element_src, element, use in elements:
        if use is not None:
            # From a macro's expansion: only designated values are safe to place.
            if element.type == "initializer_pair":
                designator = element.child_by_field_name("designator")
                value = element.child_by_field_name("value")
                if designator is not None and value is not None:
                    name = designator.text.decode().lstrip(".").strip()
                    name = aliases.get(name, name) if name in aliases else name
                    if name:
                        out.append(Initializer(name, use, element_src.text_of(value), True))
                        if name in fields:
                            position = fields.index(name) + 1
                        continue
            position += 1
            continue
        if element.type == "initializer_pair":
            designator = element.child_by_field_name("designator")
            value = element.child_by_field_name("value")
            if designator is None or value is None:
                position += 1
                continue
            name = designator.text.decode().lstrip(".").strip()
            name = aliases.get(name, name) if name in aliases else name
            if name is None:
                continue
            if name in fields:
                position = fields.index(name) + 1
            out.append(_field(src, name, value, True, conditional))
            continue
        if position == 0 and skip_ob_size is False and _is_head_init(src, element, "PyObject_HEAD_INIT"):
            # Python 2 style: PyObject_HEAD_INIT(type) followed by a separate ob_size element.
            skip_ob_size = True
            out.append(_field(src, fields[0], element, False, conditional))
            position = 1
            continue
        if skip_ob_size:
            skip_ob_size = False
            continue
        if position < len(fields):
            out.append(_field(src, fields[position], element, False, conditional))
        position += 1
    return out, conditional


def _expanded_elements(src: Source, element: Node, expand_macro):
    """The elements a macro use in an initialiser stands for, parsed from its expansion."""
    if expand_macro is None or element.type != "identifier":
        return None
    text = expand_macro(element.text.decode())
    if not text or "." not in text:
        return None
    from porter.parse import parse_source

    parsed = parse_source("<macro>", f"static T x = {{ {text} }};".encode(), code_names=False)
    for decl in parsed.root.children:
        for d in ctree.declarators(decl) if decl.type == "declaration" else []:
            info = ctree.read_declarator(d)
            if info.value is not None and info.value.type == "initializer_list":
                use = Span(element.start_byte, element.end_byte)
                return [(parsed, e, use) for e in ctree.initializer_elements(info.value)]
    return None


def _is_head_init(src: Source, node: Node, macro: str) -> bool:
    return any(m.name == macro for m in src.masks_at(node.start_byte))


def _field(src: Source, name: str, value: Node, designated: bool, conditional: bool) -> Initializer:
    # `Py_TPFLAGS_DEFAULT\n#ifdef X\n | X\n#endif`: a value that holds a whole #if group
    # keeps the group, so its text still compiles on every configuration.
    end = value.end_byte
    for mc in src.masked_conditionals:
        span = mc.conditional.span
        if value.start_byte < span.start < value.end_byte and span.end > end:
            end = span.end
    return Initializer(
        name=name,
        span=Span(value.start_byte, end),
        text=src.text_of(Span(value.start_byte, end)),
        designated=designated,
        conditional=conditional and src.in_dropped_branch(Span(value.start_byte, value.end_byte)),
    )


def referenced_name(text: str) -> str | None:
    """The variable an initialiser value names: `&Foo_as_number` -> Foo_as_number.

    Casts in front are skipped, however many: `(PyCFunction)(void(*)(void))f` -> f.
    """
    t = text.strip()
    while t.startswith("("):
        close = _matching(t, 0)
        if close is None:
            return None
        rest = t[close + 1:].strip()
        if rest:
            t = rest  # the parenthesised part was a cast
        else:
            t = t[1:close].strip()  # redundant parentheses
    t = t.lstrip("&").strip()
    if t and t.replace("_", "a").isalnum() and not t[0].isdigit():
        return t
    cast = _CAST_MACRO.fullmatch(t)
    if cast:
        # CPython's function-pointer cast macros: _PyCFunction_CAST(f) (Argument Clinic).
        return referenced_name(cast.group(1))
    return None


_CAST_MACRO = re.compile(r"_?Py\w*_CAST\s*\((.*)\)", re.DOTALL)


def _matching(text: str, open_at: int) -> int | None:
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return i
    return None


def is_null(text: str) -> bool:
    t = text.strip()
    while t.startswith("(") and t.endswith(")"):
        t = t[1:-1].strip()
    return t in ("0", "NULL", "0L", "((void*)0)", "(void *)0", "nullptr") or t.endswith(")0")


_STRING_PIECE = re.compile(r'"((?:[^"\\\n]|\\.)*)"')


def string_value(text: str) -> str | None:
    """The value of a C string literal, adjacent literals joined: `"a." "B"` -> `a.B`."""
    pieces = _STRING_PIECE.findall(text)
    if not pieces or _STRING_PIECE.sub("", text).strip():
        return None
    return "".join(pieces)


_SIZEOF = re.compile(r"\s*sizeof\s*\(\s*(struct\s+)?(\w+)\s*\)\s*")


def sizeof_operand(text: str | None) -> tuple[str, str] | None:
    """`sizeof(struct S)` -> ("struct S", "S"); `sizeof(S)` -> ("S", "S"); else None."""
    m = _SIZEOF.fullmatch(text or "")
    if m is None:
        return None
    return (f"struct {m.group(2)}" if m.group(1) else m.group(2)), m.group(2)
