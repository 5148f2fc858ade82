"""Pacing counters: an integer that only counts events to space out some work.

`static int count = 0; if (++count == 10000) { malloc_trim(0); count = 0; }` in an allocator
callback counts frees across the whole process to trim the heap now and then: process-wide by
design, and read by nothing but its own comparisons. It cannot move into module state (the
callback has no way to it), and it need not: what a second interpreter with its own GIL adds is
a data race on the increments (two `++count` at once can step over 10000, and the trims stop).
Made `_Atomic`, each increment is one indivisible step and the counter behaves as it did.

A global qualifies when it is a static scalar integer, declared alone on its line and
initialised (if at all) with a number,
and every use is in one function and is one of: an increment (`++c`, `c++`, `c += 1`), a reset
(`c = 0;` as a statement) or a comparison with a number (`c == N`, `++c >= N`).
"""

from __future__ import annotations

import re

from porter.analyze.index import FileIndex
from porter.model import Global
from porter.parse import Node

_INTEGER = re.compile(r"(?:(?:unsigned|signed)\s+)?(?:int|long|short|long\s+long|long\s+int|size_t|Py_ssize_t|"
                      r"u?int(?:8|16|32|64)_t)|unsigned|signed")
_COMPARISONS = {"==", "!=", "<", "<=", ">", ">="}


def collect_pacing_counters(indexes: list[FileIndex], globals_: list[Global]) -> tuple[tuple[str | None, str], ...]:
    """The keys of the globals that are pacing counters."""
    by_path = {idx.path: idx for idx in indexes}
    out = []
    for g in globals_:
        if not g.is_static or g.is_const or g.thread_local or g.alternatives or g.declarator_count != 1 \
                or not _INTEGER.fullmatch(re.sub(r"\s+", " ", g.c_type.strip())) or re.search(r"[*\[(]", g.type_text) \
                or (g.initializer is not None and not re.fullmatch(r"\s*-?\d+[uUlL]*\s*", g.initializer_text)):
            continue
        functions = {u.function for u in g.uses}
        if len(functions) != 1 or None in functions or g.unread_uses or not g.uses \
                or any(u.unparsed or u.macro is not None or u.in_assert for u in g.uses):
            continue
        idx = by_path.get(g.file)
        if idx is None or any(u.file != g.file for u in g.uses) or not _alone_on_its_line(idx.src.text, g):
            continue
        if all(_counts(idx.src.root.descendant_for_byte_range(u.span.start, u.span.end)) for u in g.uses):
            out.append(g.key)
    return tuple(out)


def _alone_on_its_line(text: bytes, g: Global) -> bool:
    """`static T c = 0;` with nothing else on its line: the port gives it an `_Atomic` twin under #else."""
    start = text.rfind(b"\n", 0, g.declaration.start) + 1
    end = text.find(b"\n", g.declaration.end)
    return text[g.declaration.start:g.declaration.end].startswith(b"static") \
        and not text[start:g.declaration.start].strip() \
        and not text[g.declaration.end:end if end >= 0 else len(text)].strip()


def _counts(node: Node | None) -> bool:
    """Whether this use of the counter only increments, resets or compares it."""
    if node is None or node.type != "identifier" or node.parent is None:
        return False
    parent = node.parent
    if parent.type == "update_expression":
        outer = parent.parent
        return outer is not None and (outer.type == "expression_statement" or _compared_with_number(parent))
    if parent.type == "assignment_expression" and parent.child_by_field_name("left") == node:
        op = parent.child_by_field_name("operator")
        right = parent.child_by_field_name("right")
        return op is not None and op.type in ("=", "+=", "-=") and right is not None \
            and right.type == "number_literal" and parent.parent is not None \
            and parent.parent.type == "expression_statement"
    return _compared_with_number(node)


def _compared_with_number(node: Node) -> bool:
    parent = node.parent
    if parent is None or parent.type != "binary_expression":
        return False
    op = parent.child_by_field_name("operator")
    left, right = parent.child_by_field_name("left"), parent.child_by_field_name("right")
    other = right if left == node else left
    return op is not None and op.type in _COMPARISONS and other is not None and other.type == "number_literal"
