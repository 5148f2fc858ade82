"""Byte-range edits on a file's original text, applied in one sorted pass."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from itertools import accumulate

from porter.model import Span
from porter.rewrite.vocab import Applicability
from porter.spans import SpanSet

ItemKey = tuple  # what a checklist item is about: ("global", function, name), ("type", name), ...


@dataclass(frozen=True)
class Edit:
    file: str
    span: Span  # replaced; an empty span inserts at span.start
    text: str
    step: str  # the id of the step that made it
    order: int = 0  # for several insertions at one offset: lower first
    supersedes: bool = False  # rewrites a whole region: edits inside it are moot
    applicability: Applicability = Applicability.SAFE
    item: ItemKey | None = None  # the checklist item it implements


class OverlappingEdits(Exception):
    """Two edits touch the same bytes: a bug in a step, never resolved by guessing."""


def applicable(edits: list[Edit], unsafe: bool) -> list[Edit]:
    """The edits a run applies: safe ones, and unsafe ones when asked; never manual ones."""
    allowed = {Applicability.SAFE, Applicability.REVIEW} | ({Applicability.UNSAFE} if unsafe else set())
    return [e for e in edits if e.applicability in allowed]


def apply_edits(text: bytes, edits: list[Edit]) -> bytes:
    ordered = sorted(edits, key=lambda e: (e.span.start, e.span.end, e.order))
    out = []
    pos = 0
    last: Edit | None = None
    for e in ordered:
        if last is not None and (e.span.start < pos or e.span.start < last.span.end):
            raise OverlappingEdits(f"{e.file}: {last.step} {last.span} and {e.step} {e.span}")
        out.append(text[pos:e.span.start])
        out.append(e.text.encode("utf-8"))
        pos = e.span.end
        last = e
    out.append(text[pos:])
    return b"".join(out)


def drop_moot(edits: list[Edit]) -> list[Edit]:
    """Edits inside a span another edit deletes change nothing: leave them out.

    By bisection over the deletions sorted by start (a big port has tens of thousands of edits,
    and asking each deletion about each edit was quadratic)."""
    deletions = sorted((e.span for e in edits if (e.text == "" or e.supersedes)
                        and e.span.end > e.span.start), key=lambda s: (s.start, -s.end))
    starts = [d.start for d in deletions]
    reach = list(accumulate((d.end for d in deletions), max))  # the furthest end so far
    interiors = SpanSet((d.start + 1, d.end) for d in deletions)
    out = []
    for e in edits:
        start, end = e.span
        if start == end:  # an insertion survives at either edge of a deletion
            inside = interiors.covers(start)
        else:
            # One that starts before it and reaches its end, or one that starts with it and
            # ends after it (the same span is no other deletion).
            i = bisect_left(starts, start)
            inside = (i > 0 and reach[i - 1] >= end) or (i < len(starts) and starts[i] == start
                                                          and deletions[i].end > end)
        if not inside:
            out.append(e)
    return out


def drop_emptied_groups(text: bytes, edits: list[Edit], groups: list[tuple[Span, list[Span]]]) -> list[Edit]:
    """An `#if` group whose every branch the edits delete goes too, directives included.

    `#ifdef PY3K` `static struct PyModuleDef def = {...};` `#endif`: the definition moves below
    the exec function; an empty `#ifdef PY3K` `#endif` left behind is noise in the patch.
    `groups`: each group's span and its branch bodies, innermost first or in any order.
    """
    deleted = [e.span for e in edits if e.text == "" and e.span.end > e.span.start]
    added: list[Edit] = []
    for span, bodies in sorted(groups, key=lambda g: g[0].end - g[0].start):
        if any(span.start < e.span.start < span.end for e in edits if e.text or e.span.start == e.span.end):
            continue  # something is written inside: the group stays
        ours = [e for e in edits if e.text == "" and span.start <= e.span.start < span.end]
        if not ours or not all(_left_blank(text, body, deleted) for body in bodies):
            continue  # untouched by the port (not ours to remove), or something is left in it
        start = text.rfind(b"\n", 0, span.start) + 1
        line_end = text.find(b"\n", span.end)
        end = len(text) if line_end < 0 else line_end + 1
        if text[start:span.start].strip() or text[span.end:end].strip():
            continue
        if any(d.start <= start and end <= d.end for d in deleted):
            continue  # deleted whole already (a group of #defines that moves)
        first = ours[0]
        added.append(Edit(first.file, Span(start, end), "", first.step, first.order, False, first.applicability,
                          first.item))
        deleted.append(Span(start, end))
    return drop_moot(edits + added) if added else edits


def _left_blank(text: bytes, body: Span, deleted: list[Span]) -> bool:
    kept = bytearray(text[body.start:body.end])
    for d in deleted:
        for i in range(max(d.start, body.start), min(d.end, body.end)):
            kept[i - body.start] = 0x20
    return not bytes(kept).strip()


def join_deleted_lines(text: bytes, edits: list[Edit]) -> list[Edit]:
    """Deletions of whole lines that touch become one, and a blank line left doubled goes.

    Deleting `m = PyModule_Create(...);` and the `if (m == NULL)` after it as two edits
    would otherwise leave the blank lines around both.
    """
    deletions = sorted((e for e in edits if e.text == "" and _whole_lines(text, e.span)),
                       key=lambda e: e.span.start)
    # Where something is inserted between two deletions, they stay two.
    insertions = {e.span.start for e in edits if e.span.start == e.span.end}
    merged: list[Edit] = []
    for e in deletions:
        if merged and merged[-1].span.end == e.span.start and e.span.start not in insertions:
            last = merged[-1]
            merged[-1] = Edit(last.file, Span(last.span.start, e.span.end), "", last.step,
                              last.order, last.supersedes, last.applicability, last.item)
        else:
            merged.append(e)
    out = [e for e in edits if not (e.text == "" and _whole_lines(text, e.span))]
    for e in merged:
        start, end = e.span.start, e.span.end
        before_blank = start >= 2 and text[start - 2:start] in (b"\n\n",) or (
            start >= 1 and text.rfind(b"\n", 0, start - 1) >= 0
            and text[text.rfind(b"\n", 0, start - 1) + 1:start].strip() == b"")
        next_end = text.find(b"\n", end)
        if before_blank and next_end >= 0 and text[end:next_end].strip() == b"":
            end = next_end + 1
        out.append(Edit(e.file, Span(start, end), "", e.step, e.order, e.supersedes, e.applicability, e.item))
    return out


def _whole_lines(text: bytes, span: Span) -> bool:
    return (span.start == 0 or text[span.start - 1:span.start] == b"\n") and \
        (span.end == len(text) or text[span.end - 1:span.end] == b"\n") and span.end > span.start
