"""Text renderings of what the parser saw, for `porter debug`."""

from __future__ import annotations

import re

from tree_sitter import Query, QueryCursor, QueryError

from porter.parse import LANGUAGE, Node, Source
from porter.parse import query as builtin_query

__all__ = ["QueryError", "render_tree", "render_captures"]


def render_tree(src: Source, masked: bool = False) -> str:
    out = []
    for m in src.macro_masks:
        line, col = src.line_col(m.span.start)
        out.append(f"# mask {m.name} at {line}:{col}{' (blanked)' if m.blanked else ''}")
    for mc in src.masked_conditionals:
        line, _ = src.line_col(mc.conditional.span.start)
        kept = "none" if mc.kept is None else mc.conditional.branches[mc.kept].kind
        out.append(f"# masked #if group at line {line}: kept the {kept} branch, "
                   f"dropped {len(mc.dropped)}")
    for e in src.error_spans:
        line, col = src.line_col(e.start)
        end_line, end_col = src.line_col(max(e.start, e.end - 1))
        out.append(f"# ERROR {line}:{col}-{end_line}:{end_col}")
    _render(src, src.root, 0, None, out)
    if masked:
        out.append("# --- text as tree-sitter saw it ---")
        out.append(src.masked.decode("utf-8", "replace"))
    return "\n".join(out)


def _render(src: Source, node: Node, depth: int, field: str | None, out: list[str]) -> None:
    line, col = src.line_col(node.start_byte)
    label = f"{field}: " if field else ""
    kind = "ERROR" if node.is_error else ("MISSING " + node.type if node.is_missing else node.type)
    leaf = ""
    if node.child_count == 0 or node.type in ("identifier", "string_literal", "number_literal"):
        leaf = " " + repr(src.text_of(node)[:60])
    out.append(f"{'  ' * depth}{label}{kind} [{line}:{col}]{leaf}")
    if node.type in ("string_literal",):
        return
    for i, child in enumerate(node.children):
        if not child.is_named and not child.is_error and not child.is_missing:
            continue
        _render(src, child, depth + 1, node.field_name_for_child(i), out)


def render_captures(src: Source, query_text: str) -> str:
    if re.fullmatch(r"[a-z_]+", query_text.strip()):
        try:
            q = builtin_query(query_text.strip())
        except (FileNotFoundError, OSError) as e:
            raise QueryError(f"no built-in query named {query_text!r}") from e
    else:
        q = Query(LANGUAGE, query_text)
    out = []
    for _, captures in QueryCursor(q).matches(src.root):
        for name, nodes in sorted(captures.items()):
            for node in nodes:
                line, col = src.line_col(node.start_byte)
                text = src.text_of(node).replace("\n", "\\n")
                out.append(f"{src.path}:{line}:{col}: @{name} {node.type} {text[:80]!r}")
    return "\n".join(out) if out else "(no captures)"
