"""Project macros: choosing the definition the target compiles, and expanding one use."""

from __future__ import annotations

import re
from functools import lru_cache

from porter.lexer import IDENTIFIER, Token, lex, names, tokenize
from porter.model import Macro


class MacroTable:
    """The `#define`s of a module's files, by name, preferring active definitions."""

    def __init__(self, macros: list[Macro]):
        self.by_name: dict[str, list[Macro]] = {}
        for m in macros:
            self.by_name.setdefault(m.name, []).append(m)
        # What collectors work out from the whole table, kept for the next module of a file.
        self.memo: dict[str, object] = {}
        self.expansions: dict[tuple[str, tuple[str, ...] | None, bool], str | None] = {}

    def with_text(self, word: str) -> frozenset[str]:
        """Names with a definition whose body contains `word`."""
        key = f"with:{word}"
        if key not in self.memo:
            self.memo[key] = frozenset(name for name, ms in self.by_name.items()
                                       if any(word in m.body_text for m in ms))
        return self.memo[key]  # type: ignore[return-value]

    def may_expand_to(self, word: str, pasting: bool = True) -> frozenset[str]:
        """Names whose expansion may contain `word`: a definition's body spells it, pastes
        tokens (`##`, unless `pasting` is false), or names another such macro. A superset,
        cheap to find: only these are worth expanding to look for `word`."""
        key = f"expands:{word}:{pasting}"
        if key not in self.memo:
            found = {name for name, ms in self.by_name.items()
                     if any(word in m.body_text or (pasting and "##" in m.body_text) for m in ms)}
            # The names each body spells, only when some body leads to `word` (most tables of
            # a file's macros: none does, and this is asked for every file before parsing).
            named = {name: {n.decode() for m in ms for n in IDENTIFIER.findall(m.body_text.encode())}
                     for name, ms in self.by_name.items()} if found else {}
            changed = True
            while changed:
                changed = False
                for name, words in named.items():
                    if name not in found and words & found:
                        found.add(name)
                        changed = True
            self.memo[key] = frozenset(found)
        return self.memo[key]  # type: ignore[return-value]

    def measuring(self) -> frozenset[str]:
        """Function-like macros that only measure their arguments: each parameter the body
        names stands inside a `sizeof` (`#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))`).
        An array given to one is neither read nor written."""
        key = "measuring"
        if key not in self.memo:
            self.memo[key] = frozenset(name for name, ms in self.by_name.items()
                                       if all(only_measures(m) for m in ms))
        return self.memo[key]  # type: ignore[return-value]

    def get(self, name: str) -> Macro | None:
        found = self.by_name.get(name)
        if not found:
            return None
        here = self._in_effect(found)
        if here is not None:
            return here
        for wanted in (True, None):
            for m in found:
                if m.active is wanted:
                    return m
        return None

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    def at(self, file: str, offset: int) -> MacroTable:
        """The definitions in effect at `offset` of `file`: a macro redefined further down a
        unity build (`#define method(...)` in each included .c) means its latest definition."""
        view = MacroTable([])
        view.by_name = self.by_name
        view._position = (file, offset)
        return view

    _position: tuple[str, int] | None = None

    def _in_effect(self, found: list[Macro]) -> Macro | None:
        if self._position is None:
            return None
        file, offset = self._position
        before = [m for m in found if m.file == file and m.span.start < offset and m.active is not False]
        return max(before, key=lambda m: m.span.start) if before else None

    def all(self) -> list[Macro]:
        return [m for ms in self.by_name.values() for m in ms]


_SIZEOF_OPERAND = re.compile(r"\bsizeof\s*(\((?:[^()]|\((?:[^()]|\([^()]*\))*\))*\))")


def only_measures(m: Macro) -> bool:
    """Whether every parameter `m`'s body names is a `sizeof` operand there (and it names one)."""
    if not m.params or "sizeof" not in m.body_text:
        return False
    body = _clean_body(m.body_text)
    outside = _SIZEOF_OPERAND.sub(" ", body)
    named = set(re.findall(r"[A-Za-z_]\w*", body))
    left = set(re.findall(r"[A-Za-z_]\w*", outside))
    params = [p for p in m.params if p != "..."]
    return any(p in named for p in params) and not any(p in left for p in params)


@lru_cache(maxsize=1 << 16)
def _clean_body(text: str) -> str:
    """The body as the preprocessor reads it: lines spliced (inside a string literal too) and
    each comment one space; `"https://..."` stays a string. (Kept per body: each expansion of
    a macro asks again.)"""
    if "/" not in text and "\\" not in text:
        return text.strip()  # no comment, no line break to splice
    raw = re.sub(rb"\\\r?\n", b"", text.encode())
    out, pos = [], 0
    for start, end in lex(raw, directives=False).comments:  # the comments tokenize() reads
        out += [raw[pos:start], b" "]
        pos = end
    out.append(raw[pos:])
    return b"".join(out).decode("utf-8", "replace").strip()


def expand(table: MacroTable, name: str, args: list[str] | None, depth: int = 0,
           *, nested: bool = True) -> str | None:
    """Expand one use of a project macro, then project macros inside it (a few levels deep).

    Good enough to recognise `obj = PyModule_Create(&moduledef)` behind `MOD_CREATE(obj)`.
    What porter writes from an expansion (a `MOD_DEF(...)`'s fields) comes from `nested=False`:
    only the use itself is replaced, so the arguments and the macros the body names stay as
    the source spells them. A table keeps what its uses expanded to: collectors ask for the
    same expansions again, and so do the other modules of a file.
    """
    if depth:
        return _expand(table, name, args, depth, nested)
    key = (name, None if args is None else tuple(args), nested)
    if key not in table.expansions:
        table.expansions[key] = _expand(table, name, args, 0, nested)
    return table.expansions[key]


def _expand(table: MacroTable, name: str, args: list[str] | None, depth: int, nested: bool = True) -> str | None:
    macro = table.get(name)
    if macro is None or depth > 4:
        return None
    body = _clean_body(macro.body_text)
    if macro.params is not None:
        if args is None:
            return None
        params = list(macro.params)
        variadic = params and params[-1] == "..."
        values = dict(zip(params, args))
        if variadic:
            values["__VA_ARGS__"] = ", ".join(args[len(params) - 1:])
        # As the preprocessor does, an argument is expanded before it is substituted, unless
        # it is pasted (`PyInit_ ## name`) or stringified: `CAT(PyInit_, MODULE)` names the module.
        expanded = {p: _expand_nested(table, v, depth + 1) for p, v in values.items()} if nested else values
        body = _substitute(body, values, expanded)
    return _expand_nested(table, body, depth + 1) if nested else body


def _substitute(body: str, values: dict[str, str], expanded: dict[str, str] | None = None) -> str:
    if body.isascii() and "#" not in body and values.keys().isdisjoint(_words(body)):
        return body  # no parameter named, nothing stringified or pasted: the body as it is
    expanded = values if expanded is None else expanded
    out = []
    raw, toks = _body_tokens(body)
    pos = 0
    skip = -1
    for i, tok in enumerate(toks):
        if i == skip:
            pos = tok.end
            continue
        out.append(raw[pos:tok.start].decode())
        word = tok.text.decode("utf-8", "replace")
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        if word == "#" and nxt is not None and nxt.kind == "ident" and nxt.text.decode() in values:
            # #param: the argument as a string literal.
            out.append('"' + values[nxt.text.decode()].replace("\\", "\\\\").replace('"', '\\"') + '"')
            skip = i + 1
        elif tok.kind == "ident" and word in values:
            pasted = (nxt is not None and nxt.text == b"##") or (i > 0 and toks[i - 1].text == b"##")
            out.append(values[word] if pasted else expanded[word])
        else:
            out.append(word)
        pos = tok.end
    out.append(raw[pos:].decode())
    text = "".join(out)
    text = re.sub(r"\s*##\s*", "", text)  # token pasting: PyInit_ ## name
    text = re.sub(r'#\s*("[^"]*")', r"\1", text)
    return text


@lru_cache(maxsize=1 << 14)
def _body_tokens(body: str) -> tuple[bytes, tuple[Token, ...]]:
    """A macro body's bytes and tokens, read once: every use of the macro substitutes into the
    same body (the functions a `_decimal` macro defines: hundreds of uses of a few bodies)."""
    raw = body.encode()
    return raw, tuple(tokenize(raw, directives=False))


def _expand_nested(table: MacroTable, body: str, depth: int) -> str:
    if body.isascii() and table.by_name.keys().isdisjoint(_words(body)):
        return body  # it names no macro (a word in a literal or comment counts: a superset)
    raw, toks = _body_tokens(body)
    out = []
    pos = 0
    i = 0
    while i < len(toks):
        tok = toks[i]
        name = tok.text.decode("utf-8", "replace")
        macro = table.get(name) if tok.kind == "ident" else None
        if macro is None:
            i += 1
            continue
        if macro.params is None:
            replacement = _expand(table, name, None, depth)
            end = tok.end
        else:
            if i + 1 >= len(toks) or toks[i + 1].text != b"(":
                i += 1
                continue
            args, end = split_args(raw, toks[i + 1].start)
            if args is None:
                i += 1
                continue
            replacement = _expand(table, name, args, depth)
        if replacement is None:
            i += 1
            continue
        out.append(raw[pos:tok.start].decode())
        out.append(replacement)
        pos = end
        while i < len(toks) and toks[i].start < end:
            i += 1
    out.append(raw[pos:].decode())
    return "".join(out)


def split_args(raw: bytes, open_at: int) -> tuple[list[str] | None, int]:
    """Split the arguments of the parenthesised list at `open_at`; return them and the end."""
    depth = 0
    args: list[str] = []
    start = open_at + 1
    for tok in tokenize(raw, open_at, directives=False):
        if tok.kind != "punct":
            continue
        if tok.text in (b"(", b"[", b"{"):
            depth += 1
        elif tok.text in (b")", b"]", b"}"):
            depth -= 1
            if depth == 0:
                last = raw[start:tok.start].decode("utf-8", "replace").strip()
                if last or args:
                    args.append(last)
                return args, tok.end
        elif tok.text == b"," and depth == 1:
            args.append(raw[start:tok.start].decode("utf-8", "replace").strip())
            start = tok.end
    return None, len(raw)


def names_in(text: str) -> set[str]:
    return {n.text for n in names(text.encode(), directives=False)}


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text))


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
