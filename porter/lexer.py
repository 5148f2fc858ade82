"""A small C tokenizer: enough to find comments, strings, identifiers and directive lines.

tree-sitter parses structure; this lexer serves the places tree-sitter cannot see:
masking macros before parsing, reading preprocessor conditionals and scanning macro bodies.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Token:
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


def matching_paren(text: bytes, open_at: int, end: int | None = None) -> int | None:
    """Offset of the `)` that closes the `(` at `open_at`, skipping strings and comments."""
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
