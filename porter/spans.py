"""Questions about many spans at once, by bisection: is an offset inside one, does a range touch one.

Every pass that asked such a question of each span in turn, for each node or use, was
quadratic on big files; these answer in O(log n).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from itertools import accumulate


class SpanSet:
    """Half-open spans, possibly overlapping, kept as the union of those that overlap.

    Spans that only touch (`0..5` and `5..9`) stay apart, so that `overlaps` answers for an
    empty range exactly as a test against each span would. Empty spans are left out: they
    hold no offset (callers never ask whether a range overlaps one).
    """

    __slots__ = ("_starts", "_ends")

    def __init__(self, spans: Iterable[tuple[int, int]] = ()):
        self._starts: list[int] = []
        self._ends: list[int] = []
        for start, end in sorted((s, e) for s, e in spans if e > s):
            if self._ends and start < self._ends[-1]:
                self._ends[-1] = max(self._ends[-1], end)
            else:
                self._starts.append(start)
                self._ends.append(end)

    def __bool__(self) -> bool:
        return bool(self._starts)

    def add(self, start: int, end: int) -> None:
        if end <= start:
            return
        starts, ends = self._starts, self._ends
        i = bisect_right(starts, start)
        if i > 0 and start < ends[i - 1]:
            i -= 1
            start, end = starts[i], max(end, ends[i])
            del starts[i], ends[i]
        while i < len(starts) and starts[i] < end:
            end = max(end, ends[i])
            del starts[i], ends[i]
        starts.insert(i, start)
        ends.insert(i, end)

    def covers(self, offset: int) -> bool:
        """Whether some span has `start <= offset < end`."""
        i = bisect_right(self._starts, offset) - 1
        return i >= 0 and offset < self._ends[i]

    def overlaps(self, start: int, end: int) -> bool:
        """Whether some span has `span.start < end and start < span.end`."""
        i = bisect_right(self._starts, start) - 1
        if i >= 0 and start < self._ends[i] and self._starts[i] < end:
            return True
        return i + 1 < len(self._starts) and self._starts[i + 1] < end and start < self._ends[i + 1]


class Containers:
    """Half-open spans, for asking whether one of them holds a whole range."""

    __slots__ = ("_starts", "_reach")

    def __init__(self, spans: Iterable[tuple[int, int]] = ()):
        ordered = sorted(spans)
        self._starts = [s for s, _ in ordered]
        self._reach = list(accumulate((e for _, e in ordered), max))  # the furthest end so far

    def holds(self, start: int, end: int) -> bool:
        """Whether some span has `span.start <= start and end <= span.end`."""
        i = bisect_right(self._starts, start)
        return i > 0 and self._reach[i - 1] >= end


def nesting_parents(spans: list[tuple[int, int]]) -> list[int]:
    """For spans sorted by (start, -end) that nest or do not overlap (#if groups, their
    branches): the index of the innermost one holding each, or -1."""
    parents: list[int] = []
    open_: list[int] = []
    for i, (start, _) in enumerate(spans):
        while open_ and spans[open_[-1]][1] <= start:
            open_.pop()
        parents.append(open_[-1] if open_ else -1)
        open_.append(i)
    return parents
