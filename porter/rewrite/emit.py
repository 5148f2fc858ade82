"""The step contract: a step turns the plan into edits and checklist items, and nothing else.

A step is a class with an `id` and a docstring (what, why, fix safety, known problems: what
`porter explain <id>` prints) whose `run(plan)` returns a StepResult. It keeps no state between
runs, reads the plan and the facts in it, and writes through an Emitter, which keeps each file's
newlines and links every edit to the checklist item it implements.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from porter.model import Span
from porter.rewrite.edits import Edit, ItemKey
from porter.rewrite.vocab import Applicability, Reason

if TYPE_CHECKING:
    from porter.rewrite.plan import Plan


@dataclass(frozen=True)
class Item:
    """A checklist line: a porting step, who did it, where, and why."""

    step: str
    applicability: Applicability
    file: str
    span: Span | None
    message: str
    done: bool  # applied in the patch (False: left to a person, or unsafe and not requested)
    key: ItemKey | None = None  # what it is about: edits with the same key implement it
    edits: tuple[Edit, ...] = ()  # filled when the port is assembled
    code: str = ""  # the code (porter.codes) that explains it: the step's id when empty
    subject: str = ""  # the global, type, function or macro it is about, when one


@dataclass
class StepResult:
    edits: list[Edit] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
    failure: Reason | None = None  # the module cannot be ported: nothing is emitted for it


class Step(Protocol):
    id: str

    def run(self, plan: Plan) -> StepResult: ...


class Emitter:
    """Collects one step run's edits and items, on the plan's files."""

    def __init__(self, step: str, plan: Plan):
        self.step = step
        self.plan = plan
        self.result = StepResult()
        self._about: ItemKey | None = None
        self._applicability = Applicability.SAFE

    # -- edits

    def edit(self, file: str, span: Span, text: str, order: int = 0, supersedes: bool = False,
             about: ItemKey | None = None) -> None:
        layout = self.plan.layout(file)
        start, end = layout.off_crlf(span.start), layout.off_crlf(span.end)
        self.result.edits.append(Edit(file, Span(start, max(start, end)), layout.with_newlines(text), self.step,
                                      order, supersedes, self._applicability, about or self._about))

    def insert(self, file: str, at: int, text: str, order: int = 0, about: ItemKey | None = None) -> None:
        self.edit(file, Span(at, at), text, order, about=about)

    def delete_statement(self, file: str, span: Span, about: ItemKey | None = None) -> None:
        """Delete a statement, with its line when nothing else is on it."""
        self.edit(file, self.plan.layout(file).whole_lines(span), "", about=about)

    @contextmanager
    def about(self, key: ItemKey | None) -> Iterator[None]:
        """Edits made inside implement the checklist item with this key."""
        saved, self._about = self._about, key
        try:
            yield
        finally:
            self._about = saved

    @contextmanager
    def applied_as(self, applicability: Applicability) -> Iterator[None]:
        """Edits made inside carry this applicability (a conversion only --unsafe allows)."""
        saved, self._applicability = self._applicability, applicability
        try:
            yield
        finally:
            self._applicability = saved

    # -- checklist

    def done(self, file: str, span: Span | None, message: str, key: ItemKey | None = None,
             applicability: Applicability = Applicability.SAFE) -> None:
        """A step porter carried out."""
        self.result.items.append(Item(self.step, applicability, file, span, message, True, key or self._about))

    def todo(self, file: str, span: Span | None, message: str, key: ItemKey | None = None,
             applicability: Applicability = Applicability.MANUAL, step: str | None = None,
             code: str = "", subject: str = "") -> None:
        """A step left to a person; `code` (porter.codes) says what to do about it."""
        self.result.items.append(Item(step or self.step, applicability, file, span, message, False,
                                      key or self._about, code=code or step or self.step, subject=subject))

    def fail(self, code: str, message: str) -> None:
        if self.result.failure is None:
            self.result.failure = Reason(code, message)

    @property
    def failed(self) -> bool:
        return self.result.failure is not None
