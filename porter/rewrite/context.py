"""What the rewrite steps share: the facts, the decisions, the names, and the growing plan."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from porter.model import ExtensionModule, Span
from porter.parse import Source
from porter.rewrite.decide import Decisions
from porter.rewrite.edits import Applicability, Edit


@dataclass(frozen=True)
class Item:
    """A checklist line: a porting step, who did it, where, and why."""

    step: str
    applicability: Applicability
    file: str
    span: Span | None
    message: str
    done: bool  # applied in the patch (False: left to a person, or unsafe and not requested)


@dataclass(frozen=True)
class Names:
    """Every identifier porter adds, computed once so that templates only print them."""

    base: str
    state_type: str
    get_state: str
    get_state_by_type: str
    get_state_by_operands: str
    exec: str
    traverse: str
    clear: str
    free: str
    slots: str
    def_name: str
    state_var: str
    callback_state: str  # the thread-local a qsort() callback reads its state from
    new_struct: bool  # False when the module already had a state struct (m_size = sizeof(X))


def fresh_name(name: str, taken: set[str]) -> str:
    """`name`, or `name2`, `name3`... whichever is not taken yet; it is taken afterwards."""
    candidate, n = name, 2
    while candidate in taken:
        candidate = f"{name}{n}"
        n += 1
    taken.add(candidate)
    return candidate


def include_closure(module: ExtensionModule, file: str) -> set[str]:
    """`file` and every module file it includes, directly or not: one translation unit."""
    seen, stack = {file}, [file]
    while stack:
        current = stack.pop()
        for inc, target, _ in module.includes:
            if inc == current and target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


def make_names(module: ExtensionModule, state_var: str, existing_state: str | None) -> Names:
    base = re.sub(r"\W", "_", module.name.lstrip("_")) or module.name
    taken = set(module.names_in_use)

    def fresh(name: str) -> str:
        return fresh_name(name, taken)

    state_type = existing_state or fresh(f"{base}_state")
    def_name = module.definition.name if module.definition else fresh(f"{base}module")
    return Names(
        base=base,
        state_type=state_type,
        get_state=fresh(f"get_{base}_state"),
        get_state_by_type=fresh(f"get_{base}_state_by_type"),
        get_state_by_operands=fresh(f"get_{base}_state_by_operands"),
        exec=fresh(f"{base}_exec"),
        traverse=fresh(f"{base}_traverse"),
        clear=fresh(f"{base}_clear"),
        free=fresh(f"{base}_free"),
        slots=fresh(f"{base}_slots"),
        def_name=def_name,
        state_var=state_var,
        callback_state=fresh(f"{base}_callback_state"),
        new_struct=existing_state is None,
    )


@dataclass
class PortContext:
    module: ExtensionModule
    sources: dict[str, Source]
    decisions: Decisions
    names: Names
    unsafe: bool
    edits: list[Edit] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
    failure: str | None = None  # the module cannot be ported: nothing is emitted for it
    # Filled by steps for later steps (never re-read from text).
    fields: list["StateField"] = field(default_factory=list)
    exec_prologue: list[str] = field(default_factory=list)  # statements at the top of exec
    needs_by_type: bool = False
    needs_by_operands: bool = False
    needs_callback_state: bool = False
    module_attribute_field: str | None = None  # state dict: type -> its __module__ descriptor
    gc_plans: dict = field(default_factory=dict)  # type name -> steps.gc_support.GcPlan
    state_block_file: str | None = None  # where state-struct put the struct and accessors
    dealloc_type_var: str = "tp"  # the local that keeps Py_TYPE(self) in a dealloc
    posture: str = "Py_MOD_PER_INTERPRETER_GIL_SUPPORTED"
    posture_reasons: list[str] = field(default_factory=list)
    posture_condition: str | None = None  # the weaker posture holds only when this is true

    @property
    def exec_param(self) -> str:
        """The name of exec's module parameter."""
        body = self.module.init_body
        if body is not None and body.module_var_reused:
            return next(n for n in ("module", "exec_module", "the_module")
                        if n not in self.module.names_in_use)
        return (body.module_var if body is not None else None) or "module"
    type_creations: dict[str, str] = field(default_factory=dict)

    # Edits a step makes while this is UNSAFE carry it (a decision only --unsafe allows).
    applicability: Applicability = Applicability.SAFE

    def edit(self, file: str, span: Span, text: str, step: str, order: int = 0,
             supersedes: bool = False) -> None:
        start, end = self._off_crlf(file, span.start), self._off_crlf(file, span.end)
        self.edits.append(Edit(file, Span(start, max(start, end)), self._line_ends(file, text), step,
                               order, supersedes, self.applicability))

    def insert(self, file: str, at: int, text: str, step: str, order: int = 0) -> None:
        at = self._off_crlf(file, at)
        self.edits.append(Edit(file, Span(at, at), self._line_ends(file, text), step, order, False,
                               self.applicability))

    def _off_crlf(self, file: str, offset: int) -> int:
        """An offset between the "\r" and "\n" of a CRLF (found by looking for "\n") moves
        before the pair, so that no edit splits a line ending."""
        text = self.text(file)
        if 0 < offset < len(text) and text[offset - 1:offset + 1] == b"\r\n":
            return offset - 1
        return offset

    def _line_ends(self, file: str, text: str) -> str:
        """In a CRLF file every inserted line ends in CRLF, once: generated text mixes "\n"
        with pieces of the file that already end in "\r\n"."""
        if "\n" not in text or self.newline(file) != "\r\n":
            return text
        return re.sub(r"\r*\n", "\r\n", text)

    def item(self, step: str, applicability: Applicability, file: str, span: Span | None,
             message: str, done: bool = True) -> None:
        self.items.append(Item(step, applicability, file, span, message, done))

    def fail(self, reason: str) -> None:
        if self.failure is None:
            self.failure = reason

    def text(self, file: str) -> bytes:
        return self.sources[file].text

    def line_indent(self, file: str, offset: int) -> str:
        """The indentation of the line containing `offset`."""
        text = self.text(file)
        start = text.rfind(b"\n", 0, offset) + 1
        m = re.match(rb"[ \t]*", text[start:])
        return m.group().decode() if m else ""

    def body_indent(self, file: str, body: Span) -> str:
        """Indentation of the first statement inside a `{ ... }` body (4 spaces if empty)."""
        text = self.text(file)
        end = text.find(b"}", body.start) if body.end <= body.start else body.end
        first_newline = text.find(b"\n", body.start, end)
        if first_newline < 0:  # a one-line body: `{ return x; }`
            return self.line_indent(file, body.start) + "    "
        for line in text[first_newline + 1:end].splitlines():
            stripped = line.strip()
            if not stripped or stripped.startswith((b"#", b"/*", b"*", b"//")):
                continue
            return line[:len(line) - len(line.lstrip())].decode()
        return self.line_indent(file, body.start) + "    "

    def newline(self, file: str) -> str:
        text = self.text(file)
        return "\r\n" if b"\r\n" in text[:4096] else "\n"

    def statement_span_with_line(self, file: str, span: Span) -> Span:
        """A statement's span grown to its whole lines when nothing else is on them.

        When the lines around it are both blank, one of them goes too, so that deleting a
        statement does not leave a double blank line.
        """
        text = self.text(file)
        start = text.rfind(b"\n", 0, span.start) + 1
        end = text.find(b"\n", span.end)
        end = len(text) if end < 0 else end + 1
        before = text[start:span.start]
        after = text[span.end:end].strip()
        if before.strip() != b"" or not (after == b"" or (after.startswith(b"/*") and after.endswith(b"*/"))
                                        or after.startswith(b"//")):
            return span
        prev_start = text.rfind(b"\n", 0, max(start - 1, 0)) + 1
        prev_blank = start > 0 and text[prev_start:start].strip() == b""
        next_end = text.find(b"\n", end)
        next_end = len(text) if next_end < 0 else next_end + 1
        next_blank = end < len(text) and text[end:next_end].strip() == b""
        if prev_blank and next_blank:
            end = next_end
        return Span(start, end)


@dataclass(frozen=True)
class StateField:
    key: tuple[str | None, str]
    name: str  # the field name in the state struct
    decl: str  # `PyObject *markup`
    is_object: bool  # visited and cleared by the GC functions
    initial: str | None  # a value exec must assign (C data with a non-zero initialiser)
    is_type: bool = False
