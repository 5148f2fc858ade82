"""Globals named in `#if` branches porter did not read: the builds it does not analyse.

    #ifdef PROFILING_ENABLED            #ifdef _WIN32
      ... (read)                          PyErr_SetFromWindowsErr(0);
    #else                               #else
      PyErr_Format(Error, "...");         PyErr_SetString(Error, "...");
    #endif                              #endif

Other builds compile the branch porter skipped. The tree never saw it, so each use is read from
the characters around the name: whether it takes the address (`&T`) or a member (`T.tp_free`),
whether it writes (an assignment, `++`), and whether it may be a local of the same name being
declared. Code no targeted Python compiles (`#if PY_MAJOR_VERSION < 3`) is left out.
"""

from __future__ import annotations

import re

from porter.analyze import ctree
from porter.analyze.index import FileIndex
from porter.model import Global, Span, UnreadUse, UseShape

_SPACE = b" \t\r\n\\"
_WORD = re.compile(rb"[A-Za-z_]\w*$")
# Words before a name that do not make it a declaration.
_NOT_A_TYPE = frozenset({b"return", b"case", b"sizeof", b"else", b"do", b"goto", b"defined"})


def unread_uses(indexes: list[FileIndex],
                globals_: list[Global]) -> dict[tuple[str | None, str], tuple[UnreadUse, ...]]:
    """Global key -> its uses in unread branches, in file order."""
    wanted = {g.name for g in globals_}
    statics = {(g.function, g.name) for g in globals_ if g.function is not None}
    files = {g.name: {g.file} for g in globals_ if g.function is not None}
    out: dict[tuple[str | None, str], list[UnreadUse]] = {}
    for index in indexes:
        src = index.src
        for tok in src.dropped_names():
            if tok.text not in wanted or src.pre.dead(tok.start):
                continue
            node = src.root.descendant_for_byte_range(tok.start, tok.start)
            owner = ctree.enclosing_function(node) if node is not None else None
            function = ctree.function_name(owner)[0] if owner is not None else None
            if (function, tok.text) in statics and index.path in files.get(tok.text, ()):
                key = (function, tok.text)  # the function's own static
            else:
                key = (None, tok.text)
            shape, shape_span = _shape(src.text, tok.start, tok.end)
            out.setdefault(key, []).append(UnreadUse(index.path, Span(tok.start, tok.end), function, shape,
                                                     shape_span, may_write(src.text, tok.start, tok.end),
                                                     _may_declare(src.text, tok.start)))
    return {k: tuple(v) for k, v in out.items()}


def _before(text: bytes, at: int) -> int:
    """The offset of the last non-space character before `at` (-1: none)."""
    i = at - 1
    while i >= 0 and text[i] in _SPACE:
        i -= 1
    return i


def _after(text: bytes, at: int) -> int:
    i = at
    while i < len(text) and text[i] in _SPACE:
        i += 1
    return i


def _shape(text: bytes, start: int, end: int) -> tuple[UseShape, Span | None]:
    before = _before(text, start)
    if before >= 0 and text[before:before + 1] == b"&" and text[before - 1:before] != b"&":
        return UseShape.ADDRESS_OF, Span(before, end)
    after = _after(text, end)
    if text[after:after + 1] == b"." and not text[after + 1:after + 2].isdigit():
        return UseShape.MEMBER, Span(start, after + 1)
    return UseShape.PLAIN, None


_MEMBER_PATH = re.compile(rb"\s*(?:(?:\.|->)\s*[A-Za-z_]\w*)+")


def may_change(text: bytes, start: int, end: int) -> bool:
    """Whether the name may be written here, or its address taken (`&x`, `&(x)`, not `a && x`)."""
    before = _before(text, start)
    while before >= 0 and text[before:before + 1] == b"(":
        before = _before(text, before)
    return may_write(text, start, end) or (
        before >= 0 and text[before:before + 1] == b"&" and text[before - 1:before] != b"&")


def may_write(text: bytes, start: int, end: int) -> bool:
    """Whether the name (or a member of it: `T.tp_flags |= ...`) may be written here."""
    path = _MEMBER_PATH.match(text, end)
    after = _after(text, path.end() if path else end)
    following = text[after:after + 3]
    if following[:1] == b"=" and following[1:2] != b"=":
        return True
    if following[:2] in (b"++", b"--") or (following[1:2] == b"=" and following[:1] in b"+-*/%&|^<>"
                                             and following[:2] not in (b"<=", b">=")):
        return True
    if following[:3] in (b"<<=", b">>="):
        return True
    before = _before(text, start)
    return before >= 1 and text[before - 1:before + 1] in (b"++", b"--")


def _may_declare(text: bytes, start: int) -> bool:
    """Whether the name may be a local of the same name being declared (`PyObject *name`,
    `int name`): then it is not the global at all."""
    before = _before(text, start)
    if before >= 0 and text[before:before + 1] == b"*":
        before = _before(text, before)  # `PyObject *name`, unless `a * name`
        return before >= 0 and (text[before:before + 1].isalnum() or text[before:before + 1] == b"_")
    word = _WORD.search(text, 0 if before < 64 else before - 63, before + 1) if before >= 0 else None
    return word is not None and word.group() not in _NOT_A_TYPE
