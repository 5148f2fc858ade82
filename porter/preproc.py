"""What the preprocessor sees, read with the lexer before any parsing: conditionals, macros, includes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from porter import conditions
from porter.lexer import Token, tokenize
from porter.model import Macro, Span

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
    balanced: bool  # braces and parentheses balance, and it does not start with `else`
    dead: bool = False  # no Python a port targets (3.11 to 3.13) compiles it: `#if PY_MAJOR_VERSION < 3`


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


@dataclass(frozen=True)
class Preprocessed:
    path: str
    conditionals: tuple[Conditional, ...]
    macros: tuple[Macro, ...]
    includes: tuple[Include, ...]
    tokens: tuple = ()  # the lexer's tokens, so that masking does not read the file again

    def enclosing(self, offset: int) -> list[Conditional]:
        return [c for c in self.conditionals if c.span.start <= offset < c.span.end]

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
    tokens = list(tokenize(text))
    conds = _conditionals(text, tokens, build_defines)
    macros, includes = [], []
    for tok in tokens:
        if tok.kind != "directive":
            continue
        inc = _INCLUDE.match(tok.text)
        if inc:
            includes.append(Include(inc.group(2).decode("utf-8", "replace"),
                                    inc.group(1) == b"<", Span(tok.start, tok.end)))
            continue
        m = _DEFINE.match(tok.text)
        if m:
            macros.append(_macro(path, tok, m))
    pre = Preprocessed(path, conds, (), tuple(includes))
    macros = [Macro(m.name, m.file, m.span, m.params, m.body, m.body_text,
                    pre.activity(m.span.start), _body_tokens(text, m.body)) for m in macros]
    return Preprocessed(path, conds, tuple(macros), tuple(includes), tuple(tokens))


def _macro(path: str, tok, m) -> Macro:
    params = None
    if m.group(2):
        params = tuple(p.strip() for p in m.group(2)[1:-1].decode().split(",") if p.strip())
    return Macro(
        name=m.group(1).decode(), file=path, span=Span(tok.start, tok.end), params=params,
        body=Span(tok.start + m.start(3), tok.end), body_text=m.group(3).decode("utf-8", "replace"),
        active=None,
    )


def _body_tokens(text: bytes, body: Span) -> tuple[Token, ...]:
    """A macro body's tokens, `#` and `##` included, without comments and line breaks."""
    return tuple(t for t in tokenize(text, body.start, body.end, directives=False)
                 if t.kind not in ("comment", "newline"))


def _conditionals(text: bytes, tokens, build_defines: Mapping[str, str] | None) -> tuple[Conditional, ...]:
    defines = conditions.Defines(build_defines)
    stack: list[dict] = []
    done: list[Conditional] = []
    directives = [t for t in tokens if t.kind == "directive"]
    next_directive = {id(a): b for a, b in zip(directives, directives[1:])}
    for tok in tokens:
        if tok.kind != "directive":
            if stack and tok.kind == "punct":
                _count(stack[-1], tok.text)
            elif stack and tok.kind == "ident" and stack[-1]["first"] is None:
                stack[-1]["first"] = tok.text
            if stack and tok.kind not in ("comment", "newline") and stack[-1]["first"] is None:
                stack[-1]["first"] = tok.text
            continue
        m = _DIRECTIVE.match(tok.text)
        if not m:
            continue
        word, rest = m.group(1).decode(), _strip_comments(m.group(2))
        span = Span(tok.start, tok.end)
        if word in ("define", "undef"):
            if all(frame["live"] for frame in stack):
                defines.apply(word, rest)
            continue
        if word in ("if", "ifdef", "ifndef"):
            value = conditions.evaluate(word, rest, defines)
            if word == "ifndef" and value is None and _is_include_guard(rest, next_directive.get(id(tok))):
                value = True
            stack.append({"start": tok.start, "branches": [], "live": value is not False,
                          "taken": value is True})
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
        for i, (kind, dspan, cond, value, balanced) in enumerate(raw):
            body_end = raw[i + 1][1].start if i + 1 < len(raw) else tok.start
            branches.append(Branch(kind, dspan, Span(dspan.end, body_end),
                                   cond.decode("utf-8", "replace").strip(), value, balanced,
                                   value is False and conditions.dead_everywhere(tests, i, build_defines)))
        done.append(Conditional(Span(frame["start"], tok.end), tuple(branches), span))
    done.sort(key=lambda c: (c.span.start, -c.span.end))
    return tuple(done)


def _is_include_guard(name: bytes, following) -> bool:
    """`#ifndef FOO_H` followed at once by `#define FOO_H`: the header's guard, true on entry."""
    if following is None:
        return False
    m = _DIRECTIVE.match(following.text)
    return bool(m and m.group(1) == b"define" and m.group(2).split()[:1] == name.split()[:1])


def _open_branch(frame, word, span, rest, value) -> None:
    frame["current"] = [word, span, rest, value]
    frame["depth"] = {"{": 0, "(": 0}
    frame["first"] = None
    frame["unbalanced"] = False


def _count(frame, punct: bytes) -> None:
    depth = frame["depth"]
    if punct in (b"{", b"("):
        depth[punct.decode()] += 1
    elif punct in (b"}", b")"):
        key = "{" if punct == b"}" else "("
        depth[key] -= 1
        if depth[key] < 0:
            frame["unbalanced"] = True


def _close_branch(frame) -> None:
    word, span, rest, value = frame["current"]
    balanced = (not frame["unbalanced"] and frame["depth"]["{"] == 0
                and frame["depth"]["("] == 0 and frame["first"] != b"else")
    frame["branches"].append((word, span, rest, value, balanced))
    # The enclosing branch sees a nested group as one balanced unit.


def _strip_comments(text: bytes) -> bytes:
    text = re.sub(rb"/\*.*?\*/", b" ", text, flags=re.DOTALL)
    text = re.sub(rb"//.*", b"", text)
    return re.sub(rb"\\\r?\n", b" ", text).strip()


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
    for tok in tokenize(text):
        if tok.kind != "directive":
            continue
        m = _DIRECTIVE.match(tok.text)
        if not m:
            continue
        word = m.group(1)
        if word in (b"if", b"ifdef", b"ifndef"):
            open_at.append(tok.start)
        elif word in (b"elif", b"else", b"endif"):
            if not open_at:
                return tok.start
            if word == b"endif":
                open_at.pop()
    return open_at[0] if open_at else None
