"""A small C lexer: where comments, literals and directive lines are, and tokens where needed.

tree-sitter parses structure; this lexer serves the places tree-sitter cannot see: masking
macros before parsing, reading preprocessor conditionals and scanning macro bodies. A whole
file is read once by `lex()` into spans and a blanked copy (no token list: a list of Python
objects per token costs more than the parse); `tokenize()` reads the small pieces that need
tokens (a macro body, a macro use's arguments).
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple


class Token(NamedTuple):
    """A named tuple, not a dataclass: macro bodies and arguments are read token by token, and
    a tuple is made in half the time."""

    kind: str  # ident, number, string, char, comment, directive, punct, newline
    start: int
    end: int
    text: bytes


_TOKEN = re.compile(
    rb"""
    (?P<comment>/\*.*?(?:\*/|\Z)|//(?:\\\r?\n|[^\n])*)
  | (?P<string>(?:u8|u|U|L)?"(?:\\\r\n|\\.|[^"\\\n])*(?:"|$))
  | (?P<char>(?:u8|u|U|L)?'(?:\\\r\n|\\.|[^'\\\n])*(?:'|$))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<number>\.?[0-9](?:[eEpP][+-]|[A-Za-z0-9_.])*)
  | (?P<newline>\r\n|\n|\r)
  | (?P<space>(?:[ \t\f\v]|\\\r?\n)+)
  | (?P<punct>->|\+\+|--|<<=|>>=|<<|>>|<=|>=|==|!=|&&|\|\||\#\#|[-+*/%=&|^!~<>?:;,.(){}\[\]\#])
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL | re.MULTILINE,
)


def tokenize(
    text: bytes, start: int = 0, end: int | None = None, *, directives: bool = True
) -> Iterator[Token]:
    """Yield tokens of `text[start:end]`, with whole preprocessor lines as `directive` tokens.

    With `directives=False` a `#` is an ordinary token: for scanning a macro's body.
    """
    end = len(text) if end is None else end
    pos = start
    at_line_start = directives
    while pos < end:
        m = _TOKEN.match(text, pos, end)
        if m is None:  # pragma: no cover - the pattern matches any byte
            break
        kind = m.lastgroup or "other"
        if kind == "punct" and m.group() == b"#" and at_line_start:
            stop = directive_end(text, m.start(), end)
            yield Token("directive", m.start(), stop, text[m.start():stop])
            pos = stop
            continue
        if kind == "newline":
            at_line_start = directives
        elif kind not in ("space", "comment"):
            at_line_start = False
        if kind != "space":
            yield Token(kind, m.start(), m.end(), m.group())
        pos = m.end()


def token_texts(text: bytes, start: int, end: int, kinds: frozenset[str]) -> list[tuple[str, bytes]]:
    """`(kind, text)` of the tokens of `tokenize(text, start, end, directives=False)` whose kind
    is one of `kinds`: the same pattern, matched by one C-level iteration, no Token made."""
    return [(m.lastgroup, m.group()) for m in _TOKEN.finditer(text, start, end)
            if m.lastgroup in kinds]


def directive_end(text: bytes, start: int, end: int | None = None) -> int:
    """End of the logical preprocessor line starting at `start` (before its newline)."""
    end = len(text) if end is None else end
    pos = start
    while pos < end:
        c = text[pos]
        if c == 0x2F and text.startswith(b"/*", pos):  # a comment may span lines
            close = text.find(b"*/", pos + 2, end)
            pos = end if close < 0 else close + 2
            continue
        if c == 0x5C and text.startswith((b"\\\n", b"\\\r\n"), pos):
            pos += 3 if text[pos + 1] == 0x0D else 2
            continue
        if c in (0x0A, 0x0D):
            return pos
        pos += 1
    return end


def matching_paren(text: bytes, open_at: int, end: int | None = None,
                   top_level: list[Token] | None = None) -> int | None:
    """Offset of the `)` that closes the `(` at `open_at`, skipping strings and comments.
    `top_level`, when given, receives the punctuation directly inside (`top_level_punct` up to
    that `)`, from the same reading)."""
    depth = 0
    for tok in tokenize(text, open_at, end):
        if tok.kind != "punct":
            if tok.kind == "directive":
                return None
            continue
        if tok.text in (b"(", b"[", b"{"):
            depth += 1
        elif tok.text in (b")", b"]", b"}"):
            depth -= 1
            if depth == 0:
                return tok.start if tok.text == b")" else None
        elif depth == 1 and top_level is not None:
            top_level.append(tok)
    return None


def top_level_punct(text: bytes, open_at: int, close_at: int) -> list[Token]:
    """Punctuation directly inside the brackets that open at `open_at` (not nested deeper)."""
    found = []
    depth = 0
    for tok in tokenize(text, open_at, close_at):
        if tok.kind != "punct":
            continue
        if tok.text in (b"(", b"[", b"{"):
            depth += 1
        elif tok.text in (b")", b"]", b"}"):
            depth -= 1
        elif depth == 1:
            found.append(tok)
    return found


def top_level_commas(text: bytes, open_at: int, close_at: int) -> list[int]:
    """Offsets of the commas directly inside the parentheses `open_at`..`close_at`."""
    return [t.start for t in top_level_punct(text, open_at, close_at) if t.text == b","]


def identifiers(
    text: bytes, start: int = 0, end: int | None = None, *, directives: bool = True
) -> Iterator[Token]:
    """Identifier tokens, skipping comments, strings and character literals."""
    for tok in tokenize(text, start, end, directives=directives):
        if tok.kind == "ident":
            yield tok


# --------------------------------------------------------------------------- whole files

# What `tokenize()` reads as comments, string and character literals and directive lines. A
# directive starts at a `#` (not `##`) that only spaces, line continuations and comments separate
# from the start of a line; it ends where `directive_end()` says. Each pattern starts with one
# byte class (a line break, `/`, a quote), which the search skips to fast: three searches, each
# run again only when a token found by another one covers its match, cost less than one search
# for all three. A literal's u8/u/U/L prefix is read back from its quote.
_DIRECTIVE_LINE = (rb"[ \t\f\v]*(?:(?:\\\r?\n|/\*.*?(?:\*/|\Z))[ \t\f\v]*)*+"
                   rb"(?P<hash>\#)(?!\#)(?>[^\r\n\\/]++|\\\r?\n|\\|/\*.*?(?:\*/|\Z)|/)*+")
_DIRECTIVE = re.compile(rb"[\r\n]" + _DIRECTIVE_LINE, re.DOTALL)
_FIRST_DIRECTIVE = re.compile(_DIRECTIVE_LINE, re.DOTALL)
_COMMENT = re.compile(rb"/\*.*?(?:\*/|\Z)|//(?:\\\r?\n|[^\n])*", re.DOTALL)
# A literal runs to its closing quote or to the end of its line. The second form of each is
# `tokenize()`'s backtracking when a literal runs into a lone backslash at the end of the file: it
# ends after the last backslash-CR whose LF comes next.
_LITERAL = re.compile(rb"\"(?:[^\"\\\n]++|\\\r\n|\\.)*+(?:\"|$)|'(?:[^'\\\n]++|\\\r\n|\\.)*+(?:'|$)"
                      rb"|\"(?:[^\"\\\n]++|\\\r\n|\\.)*\\\r(?=\n)|'(?:[^'\\\n]++|\\\r\n|\\.)*\\\r(?=\n)",
                      re.DOTALL | re.MULTILINE)
IDENT_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_BLANK = bytes(b if b in (0x0A, 0x0D) else 0x20 for b in range(256))
_NOT_CODE = frozenset(b" \t\f\v\r\n")
IDENTIFIER = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")


_BRACKET_OR_SEMICOLON = re.compile(rb"[()\[\]{};]")
_BRACKET_OR_COMMA = re.compile(rb"[()\[\]{},]")
_OPENING = frozenset(b"([{")


def blank(text: bytes) -> bytes:
    """Spaces for every byte but line breaks, so that lines stay where they were."""
    return text.translate(_BLANK)


def blank_in(buf: bytearray, start: int, end: int) -> None:
    """`blank` the bytes `start..end` of `buf` in place (one translation, not a loop per byte:
    masked #if branches are thousands of lines)."""
    buf[start:end] = buf[start:end].translate(_BLANK)


@dataclass(frozen=True)
class Lexed:
    """A file read once: its directive lines, comments and literals as sorted spans, and `code`,
    a copy of the text with those blanked (a literal keeps its quotes). What is left in `code`
    are the tokens `tokenize()` would give between them, at their offsets: identifiers found in
    `code` are the file's identifiers outside comments, literals and directives."""

    code: bytes
    directives: tuple[tuple[int, int], ...]
    comments: tuple[tuple[int, int], ...]
    literals: tuple[tuple[int, int], ...]

    def directive_before(self, start: int, end: int) -> bool:
        """Whether a directive line starts in `start..end`."""
        i = bisect_left(self.directives, (start, -1))
        return i < len(self.directives) and self.directives[i][0] < end

    def is_directive_start(self, offset: int) -> bool:
        i = bisect_left(self.directives, (offset, -1))
        return i < len(self.directives) and self.directives[i][0] == offset

    def closing_paren(self, open_at: int) -> tuple[int | None, bool]:
        """`matching_paren(text, open_at)` read on the blanked copy, bracket by bracket instead
        of token by token: the `)` that closes the `(` at `open_at` (None when another bracket
        closes it first, or a directive line starts before it), and whether a `;` sits directly
        inside."""
        code = self.code
        depth = 0
        semicolon = False
        for m in _BRACKET_OR_SEMICOLON.finditer(code, open_at):
            c = code[m.start()]
            if c == 0x3B:  # `;`
                semicolon = semicolon or depth == 1
            elif c in _OPENING:
                depth += 1
            else:
                depth -= 1
                if depth == 0:
                    close = m.start()
                    if c != 0x29 or self.directive_before(open_at, close):  # `)`
                        return None, False
                    return close, semicolon
        return None, False

    def top_level_commas(self, open_at: int, close_at: int) -> list[int]:
        """`top_level_commas(text, open_at, close_at + 1)` read on the blanked copy: the commas
        directly inside the brackets from `open_at` to the one that closes them at `close_at`."""
        code = self.code
        depth = 0
        found = []
        for m in _BRACKET_OR_COMMA.finditer(code, open_at, close_at + 1):
            c = code[m.start()]
            if c == 0x2C:  # `,`
                if depth == 1:
                    found.append(m.start())
            elif c in _OPENING:
                depth += 1
            else:
                depth -= 1
        return found

    def prev_code_byte(self, offset: int) -> int | None:
        """Offset of the last byte before `offset` that starts or ends a token: comments,
        directives and line continuations are skipped (a literal's closing quote counts)."""
        code = self.code
        end = offset
        window = 64  # most tokens are a few blanks back; a bigger first slice costs more than a second
        while end > 0:
            start = max(0, end - window)
            chunk = code[start:end].rstrip(b" \t\f\v\r\n")
            while chunk.endswith(b"\\") and start + len(chunk) < len(code) \
                    and code[start + len(chunk)] in (0x0A, 0x0D):
                chunk = chunk[:-1].rstrip(b" \t\f\v\r\n")  # a line continuation is a space
            if chunk:
                return start + len(chunk) - 1
            end = start
            window *= 2
        return None


def lex(text: bytes, directives: bool = True) -> Lexed:
    """Spans of the directives, comments and literals `tokenize(text, directives=...)` would
    find, and the blanked copy: a few regular-expression searches per such span, no token
    objects."""
    lines: list[tuple[int, int]] = []
    comments: list[tuple[int, int]] = []
    literals: list[tuple[int, int]] = []
    parts: list[bytes] = []
    done = 0  # everything before `done` is read, and in `parts`
    first = _FIRST_DIRECTIVE.match(text) if directives else None
    directive = first or (_DIRECTIVE.search(text) if directives else None)
    comment = _COMMENT.search(text)
    literal = _LITERAL.search(text)
    never = len(text) + 1
    d_at = 0 if first else directive.start() + 1 if directive else never  # the line's start
    c_at = comment.start() if comment else never
    l_at = literal.start() if literal else never
    while True:
        if d_at <= c_at and d_at <= l_at and d_at < never:
            assert directive is not None
            if _continued(text, d_at, done):
                # `x = a + \\` then `#b`: the line break is a continuation, `#` no directive.
                directive = _DIRECTIVE.search(text, d_at)
                d_at = directive.start() + 1 if directive else never
                continue
            start, end = d_at, directive.end()
            hash_at = directive.start("hash")
            if hash_at > start:
                comments.extend((c.start(), c.end()) for c in _COMMENT.finditer(text, start, hash_at))
            lines.append((hash_at, end))
            parts.append(text[done:start])
            parts.append(blank(text[start:end]))
        elif c_at < l_at:
            assert comment is not None
            start, end = comment.span()
            comments.append((start, end))
            parts.append(text[done:start])
            parts.append(blank(text[start:end]))
        elif l_at < never:
            assert literal is not None
            quote, end = literal.span()
            start = quote - _prefix(text, quote, done)
            literals.append((start, end))
            parts.append(text[done:start])
            closed = end - 1 > quote and text[end - 1] == text[quote]
            parts.append(b" " * (quote - start) + text[quote:quote + 1]
                         + blank(text[quote + 1:end - closed]) + (text[end - 1:end] if closed else b""))
        else:
            break
        done = end
        # Searches whose match the token just read covers start again after it.
        if d_at - 1 < end and directive is not None:
            directive = _DIRECTIVE.search(text, end)
            d_at = directive.start() + 1 if directive else never
        if c_at < end:
            comment = _COMMENT.search(text, end)
            c_at = comment.start() if comment else never
        if l_at < end:
            literal = _LITERAL.search(text, end)
            l_at = literal.start() if literal else never
    parts.append(text[done:])
    return Lexed(b"".join(parts), tuple(lines), tuple(comments), tuple(literals))


def _prefix(text: bytes, quote: int, done: int) -> int:
    """Length of the u8/u/U/L prefix before the quote at `quote`: `tokenize()` reads `u8"x"`
    as one literal, `xu8"x"` as a name and a literal."""
    if quote <= done or text[quote - 1] not in _PREFIX_ENDS:
        return 0  # most literals: no prefix can end right before the quote
    for prefix in (b"u8", b"u", b"U", b"L"):
        start = quote - len(prefix)
        if start >= done and text.startswith(prefix, start) and (start == 0 or text[start - 1] not in IDENT_CHARS):
            return len(prefix)
    return 0


_PREFIX_ENDS = frozenset(b"8uUL")


def _continued(text: bytes, line_start: int, done: int) -> bool:
    """Whether the line break just before `line_start` continues a line: a backslash before
    `\n` or `\r\n` (not before a lone `\r`, which `tokenize()` reads as a line break) that
    no literal or comment ending at `done` has taken."""
    p = line_start - 1
    if p < 0 or text[p] != 0x0A:
        return False
    if p > 0 and text[p - 1] == 0x0D:
        p -= 1
    return p > done and text[p - 1] == 0x5C


# Block comments between a line's start and its directive's `#`.
_BLOCK_COMMENT = re.compile(rb"/\*.*?(?:\*/|\Z)", re.DOTALL)


def spans_overlapping(spans, start: int, end: int) -> list[tuple[int, int]]:
    """Those of sorted, disjoint `spans` that overlap `start..end`."""
    i = bisect_right(spans, (start, 1 << 62))
    if i > 0 and spans[i - 1][1] > start:
        i -= 1
    out = []
    while i < len(spans) and spans[i][0] < end:
        out.append(spans[i])
        i += 1
    return out


_DIGITS = frozenset(b"0123456789")


def find_names(code: bytes, name: bytes, prefix: bool = False) -> list[tuple[int, int]]:
    """Where the identifier `name` (with `prefix`, every identifier starting with it) is in
    `code` (`Lexed.code`): not the tail of a longer name, nor of a number (`1.L` is one token)."""
    found = []
    find = code.find
    size = len(name)
    at = find(name)
    while at >= 0:
        end = at + size
        if prefix:
            end = _NAME_TAIL.match(code, end).end()  # type: ignore[union-attr]  # matches ""
        if (prefix or end == len(code) or code[end] not in IDENT_CHARS) and not (at and (
                code[at - 1] in IDENT_CHARS or (code[at - 1] == 0x2E and at > 1 and code[at - 2] in _DIGITS
                                                and not _starts_token(code, at)))):
            found.append((at, end))
        at = find(name, end if prefix else at + 1)
    return found


_NAME_TAIL = re.compile(rb"[A-Za-z0-9_]*")


def _starts_token(code: bytes, offset: int) -> bool:
    """Whether a token starts at `offset`, read from the start of its line."""
    line_start = code.rfind(b"\n", 0, offset) + 1
    return any(t.start == offset for t in tokenize(code, line_start, offset + 1))


# Identifiers, and numbers so that `0x1F` or `1e5f` give no name: `findall` keeps the first group.
_NAME_OR_NUMBER = re.compile(rb"([A-Za-z_][A-Za-z0-9_]*)|\.?[0-9](?:[eEpP][+-]|[A-Za-z0-9_.])*")


def names_in_code(text: bytes) -> set[str]:
    """The identifiers of `text`, outside comments and literals: what `tokenize` calls `ident`
    (a big data table gives no token objects, only its few names)."""
    return names_of_lexed(lex(text))


def names_of_lexed(lexed: Lexed, start: int = 0, end: int | None = None) -> set[str]:
    """`names_in_code` of a text already lexed; with `start` and `end`, of `text[start:end]`,
    which must start outside any comment, literal and directive line (a brace initialiser):
    lexed alone, it would be blanked as the whole text's reading blanks it."""
    found = set(_NAME_OR_NUMBER.findall(lexed.code, start, len(lexed.code) if end is None else end))
    found.discard(b"")
    return {n.decode("utf-8", "replace") for n in found}


# A name, and whether a `(` follows it (and at once a `)`); or a number, to skip it.
_SPACES = rb"(?:[ \t\f\v\r\n]|\\\r?\n)*"
_NAME_CALL = re.compile(rb"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<open>" + _SPACES + rb"\()(?P<close>" + _SPACES
                        + rb"\))?)?|\.?[0-9](?:[eEpP][+-]|[A-Za-z0-9_.])*")


class Name(NamedTuple):
    """An identifier `tokenize` would give; read without directives, also where the `(` that
    follows it ends (the next token), and whether `)` comes right after that. A named tuple,
    as `Token` is: every macro body's names are read."""

    start: int
    end: int
    text: str
    paren_end: int | None = None
    empty_call: bool = False


def names(text: bytes, start: int = 0, end: int | None = None, *, directives: bool = True,
          lexed: Lexed | None = None) -> list[Name]:
    """The identifiers of `text[start:end]` outside comments and literals (and, with
    `directives`, outside directive lines), with their offsets in `text`. `lexed`, the whole
    text's reading, is read instead of lexing the part again when `directives` is asked for
    and `start` begins a line outside any comment (a branch of an #if group)."""
    if lexed is not None and directives:
        code = lexed.code[start:end]
    else:
        code = text[start:end]
        # Without a byte that starts a comment, a literal or (with `directives`) a directive,
        # there is nothing to blank: most macro bodies are one such line.
        if b"/" in code or b'"' in code or b"'" in code or (directives and b"#" in code):
            code = lex(code, directives).code
    out = []
    for m in _NAME_CALL.finditer(code):
        name = m.group("name")
        if name is None:
            continue  # a number
        if directives or m.group("open") is None:
            out.append(Name(start + m.start(), start + m.end("name"), name.decode("utf-8", "replace")))
        else:
            out.append(Name(start + m.start(), start + m.end("name"), name.decode("utf-8", "replace"),
                            start + m.end("open"), m.group("close") is not None))
    return out
