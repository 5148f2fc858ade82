"""What the preprocessor sees, read with the lexer before any parsing: conditionals, macros, includes."""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

from porter import conditions
from porter.lexer import Lexed, find_names, lex, matching_paren
from porter.model import Macro, Span
from porter.spans import nesting_parents

_DIRECTIVE = re.compile(rb"#\s*(if|ifdef|ifndef|elif|else|endif|define|undef)\b(.*)", re.DOTALL)
_DEFINE = re.compile(rb"#\s*define\s+([A-Za-z_]\w*)(\([^)]*\))?[ \t]*(.*)", re.DOTALL)
_INCLUDE = re.compile(rb'#\s*include\s*([<"])([^">]+)[">]')


@dataclass(frozen=True)
class Branch:
    kind: str  # if, ifdef, ifndef, elif, else
    directive: Span  # the directive line itself
    body: Span  # from the end of the directive line to the next directive of the group
    condition: str
    value: bool | None  # evaluated for the analysis target; None when unknown
    balanced: bool  # braces and parentheses balance, and it neither starts nor ends with `else`
    dead: bool = False  # no Python a port targets (3.11 to 3.13) compiles it: `#if PY_MAJOR_VERSION < 3`
    # Every build a port targets compiles it, on any platform: a header's include guard, or a
    # version test every target Python passes (`#if PY_MAJOR_VERSION >= 3`).
    fixed: bool = False


@dataclass(frozen=True)
class Conditional:
    """One `#if` ... `#endif` group."""

    span: Span
    branches: tuple[Branch, ...]
    endif: Span

    def directive_spans(self) -> list[Span]:
        return [b.directive for b in self.branches] + [self.endif]

    def branch_at(self, offset: int) -> int | None:
        for i, b in enumerate(self.branches):
            if b.body.start <= offset < b.body.end:
                return i
        return None

    @property
    def splits_code(self) -> bool:
        """A branch that cannot stand alone: it splits a statement, header or block."""
        return any(not b.balanced for b in self.branches)

    def chosen(self) -> int | None:
        """The branch the analysis target compiles; the first not known false if unknown."""
        for i, b in enumerate(self.branches):
            if b.value is True or b.value is None:
                return i
        return None


@dataclass(frozen=True)
class Include:
    name: str
    system: bool
    span: Span


class InitName(NamedTuple):
    """A `PyInit_...` name in the code, and what follows it."""

    start: int
    end: int
    name: str
    called: bool  # `(` follows it within a few blanks
    may_define: bool  # `(...)` follows, and then no `;`, `,` or `)`: it may start a definition


@dataclass(frozen=True)
class Preprocessed:
    path: str
    conditionals: tuple[Conditional, ...]
    macros: tuple[Macro, ...]
    includes: tuple[Include, ...]
    lexed: Lexed | None = None  # the lexer's spans, so that masking does not read the file again
    # Every `PyInit_...` name outside comments, literals and directives.
    init_names: tuple[InitName, ...] = ()

    @cached_property
    def _nesting(self) -> tuple[list[int], list[int]]:
        """The groups' starts, and for each group the one it sits in (-1: none). Groups nest
        (each `#if` closes before the one around it), which makes `enclosing` a bisection."""
        starts: list[int] = []
        parents: list[int] = []
        stack: list[int] = []
        for i, c in enumerate(self.conditionals):
            while stack and self.conditionals[stack[-1]].span.end <= c.span.start:
                stack.pop()
            starts.append(c.span.start)
            parents.append(stack[-1] if stack else -1)
            stack.append(i)
        return starts, parents

    def enclosing(self, offset: int) -> list[Conditional]:
        """The groups around `offset`, outermost first."""
        return [self.conditionals[i] for i in self.enclosing_indexes(offset)]

    def enclosing_indexes(self, offset: int) -> list[int]:
        """Indexes in `conditionals` of the groups around `offset`, outermost first."""
        starts, parents = self._nesting
        out = []
        i = bisect_right(starts, offset) - 1
        while i >= 0:
            if offset < self.conditionals[i].span.end:
                out.append(i)
            i = parents[i]
        out.reverse()
        return out

    def dead(self, offset: int) -> bool:
        """Whether no Python a port targets compiles the code at `offset`."""
        for cond in self.enclosing(offset):
            branch = cond.branch_at(offset)
            if branch is not None and cond.branches[branch].dead:
                return True
        return False

    def activity(self, offset: int) -> bool | None:
        """Whether the analysis target compiles the code at `offset` (None: cannot tell)."""
        result: bool | None = True
        for cond in self.enclosing(offset):
            branch = cond.branch_at(offset)
            if branch is None:
                continue
            value = cond.branches[branch].value
            if value is False:
                return False
            if value is None:
                result = None
        return result


def preprocess(path: str, text: bytes, build_defines: Mapping[str, str] | None = None) -> Preprocessed:
    """`build_defines`: the -D macros the package's build gives every file."""
    lexed = lex(text)
    conds = _conditionals(text, lexed, build_defines)
    groups = Preprocessed(path, conds, (), ())  # what says whether a #define is compiled
    defines, includes = [], []
    for start, end in lexed.directives:
        line = text[start:end]
        inc = _INCLUDE.match(line)
        if inc:
            includes.append(Include(inc.group(2).decode("utf-8", "replace"), inc.group(1) == b"<", Span(start, end)))
            continue
        m = _DEFINE.match(line)
        if m:
            defines.append((start, end, m))
    units = _definition_units(conds, lexed.code, [Span(start, end) for start, end, _ in defines])
    macros = [_macro(path, start, end, m, text, groups.activity(start), unit)
              for (start, end, m), unit in zip(defines, units)]
    inits = tuple(_init_name(text, lexed, start, end)
                  for start, end in find_names(lexed.code, b"PyInit_", prefix=True)) if b"PyInit_" in text else ()
    return Preprocessed(path, conds, tuple(macros), tuple(includes), lexed, inits)


def _definition_units(conds, code: bytes, defines: list[Span]) -> list[Span]:
    """For each #define (in order), what moves with it (Macro.unit): the largest run of
    nested #if groups around it, innermost first, that hold only directives (`#ifdef A /
    #define M A / #else ...`, `#ifndef N / #define N 512 / #endif`), or its own line when the
    group around it holds code too (an include guard does)."""
    groups = sorted((c.span for c in conds), key=lambda g: (g.start, -g.end))
    parents = nesting_parents([(g.start, g.end) for g in groups])
    starts = [g.start for g in groups]
    only_directives: dict[int, bool] = {}
    out: list[Span] = []
    for d in defines:
        i = bisect_right(starts, d.start) - 1
        while i >= 0 and not (groups[i].start <= d.start < groups[i].end):
            i = parents[i]
        unit = d
        while i >= 0:
            if i not in only_directives:
                only_directives[i] = not code[groups[i].start:groups[i].end].strip()
            if not only_directives[i]:
                break
            unit = groups[i]
            i = parents[i]
        out.append(unit)
    return out


def _init_name(text: bytes, lexed: Lexed, start: int, end: int) -> InitName:
    code = lexed.code
    called = text[end:end + 16].lstrip().startswith(b"(")
    may_define = False
    opening = _SPACE.match(code, end)
    if opening is not None and code[opening.end():opening.end() + 1] == b"(":
        close = matching_paren(code, opening.end())
        after = _SPACE.match(code, close + 1) if close is not None else None
        may_define = after is None or code[after.end():after.end() + 1] not in (b";", b",", b")")
    return InitName(start, end, code[start:end].decode("utf-8", "replace"), called, may_define)


def _macro(path: str, start: int, end: int, m, text: bytes, active: bool | None, unit: Span | None) -> Macro:
    params = None
    if m.group(2):
        params = tuple(p.strip() for p in m.group(2)[1:-1].decode().split(",") if p.strip())
    body = Span(start + m.start(3), end)
    body_text = m.group(3).decode("utf-8", "replace")
    raw = text[body.start:body.end]
    return Macro(
        name=m.group(1).decode(), file=path, span=Span(start, end), params=params,
        body=body, body_text=body_text, active=active,
        body_bytes=b"" if raw.isascii() else raw,  # an ASCII body is its text, encoded
        unit=unit,
    )


# A branch's first token, after spaces, line breaks and continuations (comments are blanked).
_SPACE = re.compile(rb"(?:[ \t\f\v\r\n]|\\\r?\n)*")
_ELSE = re.compile(rb"else(?![A-Za-z0-9_])")
_ENDS_ELSE = re.compile(rb"(?<![A-Za-z0-9_])else\Z")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"(){}")


def _conditionals(text: bytes, lexed: Lexed, build_defines: Mapping[str, str] | None) -> tuple[Conditional, ...]:
    defines = conditions.Defines(build_defines)
    # The macros every target Python defines: the build's, and those a file defines outside
    # any group or in branches every target takes (`#if PY_MAJOR_VERSION >= 3` `#define IS_PY3K`),
    # so that `#ifdef IS_PY3K` ... `#else` is dead everywhere.
    everywhere: dict[str, str] = dict(build_defines or {})
    # What the groups opened since its last change see of it: one copy, read only, for all of
    # them (a header's hundreds of groups between two file-level #defines).
    seen_everywhere: dict[str, str] | None = None
    stack: list[dict] = []
    done: list[Conditional] = []
    directives = lexed.directives
    previous_end = 0
    for k, (start, end) in enumerate(directives):
        if stack:
            # The code since the last directive belongs to the innermost open branch.
            _read_code(stack[-1], lexed.code, previous_end, start)
        previous_end = end
        m = _DIRECTIVE.match(text, start, end)
        if not m:
            continue
        word, rest = m.group(1).decode(), _strip_comments(m.group(2))
        span = Span(start, end)
        if word in ("define", "undef"):
            if all(frame["live"] for frame in stack):
                defines.apply(word, rest)
            if _define_everywhere(everywhere, stack, word, rest):
                seen_everywhere = None
            continue
        if word in ("if", "ifdef", "ifndef"):
            value = conditions.evaluate(word, rest, defines)
            following = text[directives[k + 1][0]:directives[k + 1][1]] if k + 1 < len(directives) else None
            guard = word == "ifndef" and value is None and _is_include_guard(rest, following)
            if guard:
                value = True
            if seen_everywhere is None:
                seen_everywhere = dict(everywhere)
            stack.append({"start": start, "branches": [], "live": value is not False,
                          "taken": value is True, "guard": guard, "given": seen_everywhere})
            _open_branch(stack[-1], word, span, rest, value)
            continue
        if not stack:
            continue  # unbalanced: the parser will say so
        frame = stack[-1]
        if word in ("elif", "else"):
            _close_branch(frame)
            if frame["taken"]:
                value = False
            elif word == "else":
                prior = [b[3] for b in frame["branches"]]
                value = None if None in prior else True
            else:
                value = conditions.evaluate(word, rest, defines)
            frame["taken"] = frame["taken"] or value is True
            frame["live"] = value is not False
            _open_branch(frame, word, span, rest, value)
            continue
        _close_branch(frame)
        stack.pop()
        raw = frame["branches"]
        branches = []
        tests = [(kind, cond) for kind, _, cond, _, _ in raw]
        given = frame["given"]
        taken: dict[int, int | None | str] = {}  # the branch each target takes, asked once per target
        for i, (kind, dspan, cond, value, balanced) in enumerate(raw):
            body_end = raw[i + 1][1].start if i + 1 < len(raw) else start
            branches.append(Branch(kind, dspan, Span(dspan.end, body_end),
                                   cond.decode("utf-8", "replace").strip(), value, balanced,
                                   value is False and conditions.dead_everywhere(tests, i, given, taken),
                                   (i == 0 and frame["guard"]) or conditions.taken_everywhere(tests, i, given, taken)))
        done.append(Conditional(Span(frame["start"], end), tuple(branches), span))
    done.sort(key=lambda c: (c.span.start, -c.span.end))
    return tuple(done)


def _define_everywhere(everywhere: dict[str, str], stack: list[dict], word: str, rest: bytes) -> bool:
    """Apply a #define or #undef to `everywhere` if every target Python reads it: each open group's
    current branch is one every target takes (an include guard's counts). Whether it did."""
    for frame in stack:
        kind, _, condition, _ = frame["current"]
        tests = [(k, c) for k, _, c, _, _ in frame["branches"]] + [(kind, condition)]
        if not ((len(tests) == 1 and frame["guard"])
                or conditions.taken_everywhere(tests, len(tests) - 1, frame["given"], frame["targets"])):
            return False
    m = re.match(rb"([A-Za-z_]\w*)(\(?)\s*(.*)", rest, re.DOTALL)
    if m is None:
        return False
    name = m.group(1).decode()
    if word == "undef":
        everywhere.pop(name, None)
    elif not m.group(2):  # a function-like macro is no condition's value
        everywhere[name] = m.group(3).decode("utf-8", "replace").strip()
    else:
        return False
    return True


def _read_code(frame, code: bytes, start: int, end: int) -> None:
    """Note a branch's first and last token and its bracket balance from the code in `start..end`."""
    space = _SPACE.match(code, start, end)
    at = space.end() if space else start
    if at < end:
        if frame["first"] is None:
            frame["first"] = b"else" if _ELSE.match(code, at, end) else b""
        # `} else` then `#endif`: the statement goes on after the group.
        tail = code[max(at, end - 64):end].rstrip()
        frame["ends_else"] = tail.endswith(b"else") and _ENDS_ELSE.search(tail) is not None
    brackets = code[start:end].translate(None, _NOT_BRACKETS)
    if not brackets:
        return
    depth = frame["depth"]
    for key, pair, other in (("{", b"{}", b"()"), ("(", b"()", b"{}")):
        seq = brackets.translate(None, other)
        while pair in seq:
            seq = seq.replace(pair, b"")
        # What is left closes `closing` enclosing brackets, then opens the rest.
        closing = seq.count(pair[1:])
        if depth[key] - closing < 0:
            frame["unbalanced"] = True
        depth[key] += len(seq) - 2 * closing


def _is_include_guard(name: bytes, following: bytes | None) -> bool:
    """`#ifndef FOO_H` followed at once by `#define FOO_H`: the header's guard, true on entry."""
    if following is None:
        return False
    m = _DIRECTIVE.match(following)
    return bool(m and m.group(1) == b"define" and m.group(2).split()[:1] == name.split()[:1])


def _open_branch(frame, word, span, rest, value) -> None:
    frame["current"] = [word, span, rest, value]
    frame["targets"] = {}  # the branch each target takes of those so far (_define_everywhere asks)
    frame["depth"] = {"{": 0, "(": 0}
    frame["first"] = None
    frame["ends_else"] = False
    frame["unbalanced"] = False


def _close_branch(frame) -> None:
    word, span, rest, value = frame["current"]
    balanced = (not frame["unbalanced"] and frame["depth"]["{"] == 0
                and frame["depth"]["("] == 0 and frame["first"] != b"else" and not frame["ends_else"])
    frame["branches"].append((word, span, rest, value, balanced))
    # The enclosing branch sees a nested group as one balanced unit.


def _strip_comments(text: bytes) -> bytes:
    if b"/" not in text and b"\\" not in text:
        return text.strip()  # most conditions: no comment, no continuation
    text = _BLOCK_COMMENT.sub(b" ", text)
    text = _LINE_COMMENT.sub(b"", text)
    return _CONTINUATION.sub(b" ", text).strip()


_BLOCK_COMMENT = re.compile(rb"/\*.*?\*/", re.DOTALL)
_LINE_COMMENT = re.compile(rb"//.*")
_CONTINUATION = re.compile(rb"\\\r?\n")


def branch_expression(cond: Conditional, index: int) -> str:
    """The C expression under which branch `index` of a group is compiled."""
    def expr(b: Branch) -> str:
        if b.kind == "ifdef":
            return f"defined({b.condition})"
        if b.kind == "ifndef":
            return f"!defined({b.condition})"
        return f"({b.condition})"

    parts = [f"!{expr(b)}" for b in cond.branches[:index]]
    if cond.branches[index].kind != "else":
        parts.append(expr(cond.branches[index]))
    return " && ".join(parts) if parts else "1"


def unknown_condition(pre: Preprocessed, offset: int) -> str | None:
    """The conditions porter could not evaluate that decide whether `offset` is compiled."""
    parts = []
    for cond in pre.enclosing(offset):
        i = cond.branch_at(offset)
        if i is None:
            continue
        if cond.branches[i].value is None:
            parts.append(branch_expression(cond, i))
    return " && ".join(parts) if parts else None


def unbalanced_directive(text: bytes) -> int | None:
    """Offset of the first `#elif`/`#else`/`#endif` without its `#if`, or of an `#if` never closed."""
    open_at: list[int] = []
    for start, end in lex(text).directives:
        m = _DIRECTIVE.match(text, start, end)
        if not m:
            continue
        word = m.group(1)
        if word in (b"if", b"ifdef", b"ifndef"):
            open_at.append(start)
        elif word in (b"elif", b"else", b"endif"):
            if not open_at:
                return start
            if word == b"endif":
                open_at.pop()
    return open_at[0] if open_at else None
