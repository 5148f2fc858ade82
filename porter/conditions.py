"""Evaluates `#if` conditions for porter's analysis target: CPython 3.12 on Linux with GCC.

Three-valued: True, False, or None when the answer depends on something porter cannot know
(a configure-time HAVE_ macro, a build flag). Only the parser's choice of a branch to read and
the choice among macro definitions depend on it; an unknown never becomes an edit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

from porter.capi import ANALYSIS_TARGET, PYTHON_H_MACROS

# Names known for the target platform; anything else is unknown unless the file defines it.
KNOWN_TRUE = {"__linux__": 1, "__GNUC__": 12, "__STDC__": 1, "__STDC_VERSION__": 201710, "linux": 1,
              "__unix__": 1, "unix": 1}
KNOWN_FALSE = {
    "_WIN32", "WIN32", "_WIN64", "MS_WINDOWS", "MS_WIN32", "MS_WIN64", "_MSC_VER", "__APPLE__",
    "__MACH__", "__FreeBSD__", "__NetBSD__", "__OpenBSD__", "__sun", "__CYGWIN__", "_AIX",
    "__clang__", "__cplusplus", "PYPY_VERSION", "Py_LIMITED_API", "Py_DEBUG", "Py_BUILD_CORE",
    "Py_BUILD_CORE_BUILTIN", "Py_BUILD_CORE_MODULE", "Py_GIL_DISABLED", "__MINGW32__",
    "__EMSCRIPTEN__", "__wasi__", "__VMS", "__hpux",
}
# Of those, the ones that differ between builds a port must keep working in: the platform, the
# compiler, a debug or free-threaded CPython. Code under them is never dead, only unread here.
VARIES_BY_BUILD = {
    "__linux__", "linux", "__unix__", "unix", "__GNUC__", "_WIN32", "WIN32", "_WIN64", "MS_WINDOWS",
    "MS_WIN32", "MS_WIN64", "_MSC_VER", "__APPLE__", "__MACH__", "__FreeBSD__", "__NetBSD__",
    "__OpenBSD__", "__sun", "__CYGWIN__", "_AIX", "__clang__", "__MINGW32__", "__EMSCRIPTEN__",
    "__wasi__", "__VMS", "__hpux", "Py_DEBUG", "Py_GIL_DISABLED",
}


class Defines:
    """Object-like macros seen so far in a file, for `defined()` and values."""

    def __init__(self, given: Mapping[str, str] | None = None) -> None:
        # `given`: the build's -D macros, defined before the file's first line.
        self.values: dict[str, str] = dict(given or {})
        self.undefined: set[str] = set()

    def apply(self, word: str, rest: bytes) -> None:
        text = rest.decode("utf-8", "replace").strip()
        m = re.match(r"([A-Za-z_]\w*)(\(?)\s*(.*)", text, re.DOTALL)
        if not m:
            return
        name = m.group(1)
        if word == "define":
            self.values[name] = "" if m.group(2) else m.group(3).strip()
            self.undefined.discard(name)
        else:
            self.values.pop(name, None)
            self.undefined.add(name)

    def is_defined(self, name: str) -> bool | None:
        if name in self.values:
            return True
        if name in self.undefined:
            return False
        if name in KNOWN_TRUE or name in ANALYSIS_TARGET or name in PYTHON_H_MACROS:
            return True
        if name in KNOWN_FALSE:
            return False
        return None

    def value(self, name: str) -> int | None:
        if name in ANALYSIS_TARGET:
            return ANALYSIS_TARGET[name]
        if name in KNOWN_TRUE:
            return KNOWN_TRUE[name]
        if name in KNOWN_FALSE:
            return 0
        raw = self.values.get(name)
        if raw is None:
            return None
        try:
            return _literal(raw)
        except ValueError:
            return None


class Unknown(Exception):
    pass


def _literal(text: str) -> int:
    text = text.strip().rstrip("uUlL")
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip().rstrip("uUlL")
    return int(text, 0)


_TOKENS = re.compile(r"\s*(defined|0[xX][0-9a-fA-F]+[uUlL]*|\d+[uUlL]*|[A-Za-z_]\w*"
                     r"|&&|\|\||==|!=|<=|>=|<<|>>|[-+*/%<>!()~?:])")


def evaluate(kind: str, condition: bytes, defines: Defines) -> bool | None:
    text = condition.decode("utf-8", "replace").strip()
    if kind in ("ifdef", "ifndef"):
        name = text.split()[0] if text.split() else ""
        known = defines.is_defined(name)
        if known is None:
            return None
        return known if kind == "ifdef" else not known
    if kind == "else":
        return None
    try:
        tokens = _tokenize(text)
        value = _Expr(tokens, defines).parse()
    except (Unknown, ValueError, IndexError, ZeroDivisionError):
        return None
    return bool(value)


@lru_cache(maxsize=1 << 12)
def _tokenize(text: str) -> tuple[str, ...]:
    """The tokens of a condition, read once per text: each is evaluated again for every
    target Python (`dead_everywhere`, `taken_everywhere`)."""
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKENS.match(text, pos)
        if not m:
            raise ValueError(text[pos:])
        tokens.append(m.group(1))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return tuple(tokens)


class _Expr:
    """Precedence climbing over the C preprocessor's integer expressions, with unknowns."""

    BINARY = [("||",), ("&&",), ("==", "!="), ("<", ">", "<=", ">="), ("<<", ">>"), ("+", "-"),
              ("*", "/", "%")]

    def __init__(self, tokens: tuple[str, ...], defines: Defines):
        self.tokens = tokens
        self.pos = 0
        self.defines = defines

    def parse(self) -> int:
        value = self.ternary()
        if self.pos != len(self.tokens):
            raise ValueError("trailing tokens")
        return value

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def ternary(self):
        cond = self.binary(0)
        if self.peek() == "?":
            self.take()
            a = self.ternary()
            if self.take() != ":":
                raise ValueError("expected :")
            b = self.ternary()
            if cond is None:
                if a == b and a is not None:
                    return a
                raise Unknown()
            return a if cond else b
        if cond is None:
            raise Unknown()
        return cond

    def binary(self, level: int):
        if level == len(self.BINARY):
            return self.unary()
        left = self.binary(level + 1)
        while self.peek() in self.BINARY[level]:
            op = self.take()
            right = self.binary(level + 1)
            left = _apply(op, left, right)
        return left

    def unary(self):
        tok = self.take()
        if tok == "!":
            v = self.unary()
            return None if v is None else int(not v)
        if tok == "-":
            v = self.unary()
            return None if v is None else -v
        if tok == "~":
            v = self.unary()
            return None if v is None else ~v
        if tok == "+":
            return self.unary()
        if tok == "(":
            v = self.ternary_or_none()
            if self.take() != ")":
                raise ValueError("expected )")
            return v
        if tok == "defined":
            if self.peek() == "(":
                self.take()
                name = self.take()
                if self.take() != ")":
                    raise ValueError("expected )")
            else:
                name = self.take()
            known = self.defines.is_defined(name)
            return None if known is None else int(known)
        if tok[0].isdigit():
            return _literal(tok)
        if tok[0].isalpha() or tok[0] == "_":
            if self.peek() == "(":
                raise Unknown()  # a function-like macro in a condition
            return self.defines.value(tok)
        raise ValueError(tok)

    def ternary_or_none(self):
        try:
            return self.ternary()
        except Unknown:
            # Skip to the matching parenthesis: the group is unknown, the rest may decide.
            depth = 0
            while self.peek() is not None:
                if self.peek() == "(":
                    depth += 1
                elif self.peek() == ")":
                    if depth == 0:
                        break
                    depth -= 1
                self.take()
            return None


def _apply(op: str, a, b):
    if op == "||":
        if a or b:
            return 1 if (a or b) else 0
        return None if a is None or b is None else 0
    if op == "&&":
        if a == 0 or b == 0:
            return 0
        return None if a is None or b is None else 1
    if a is None or b is None:
        return None
    return {
        "==": lambda: int(a == b), "!=": lambda: int(a != b), "<": lambda: int(a < b),
        ">": lambda: int(a > b), "<=": lambda: int(a <= b), ">=": lambda: int(a >= b),
        "<<": lambda: a << b, ">>": lambda: a >> b, "+": lambda: a + b, "-": lambda: a - b,
        "*": lambda: a * b, "/": lambda: a // b, "%": lambda: a % b,
    }[op]()


# The Pythons a port must build on: code every one of them compiles away is dead.
TARGET_VERSIONS = (0x030B00F0, 0x030C00F0, 0x030D00F0)


class TargetDefines(Defines):
    """Only what <Python.h> says, for one target Python version on any platform: the names that
    vary by build (VARIES_BY_BUILD) are unknown."""

    def __init__(self, hexversion: int, given: Mapping[str, str] | None = None):
        # Read, never changed (nothing here applies a #define): no copy of `given`, which is
        # asked about for every branch of every group, three times.
        self.values = given if given is not None else {}  # type: ignore[assignment]
        self.undefined = set()
        self.hexversion = hexversion

    def is_defined(self, name: str) -> bool | None:
        if name in VARIES_BY_BUILD and name not in self.values:
            return None
        return super().is_defined(name)

    def value(self, name: str) -> int | None:
        if name == "PY_VERSION_HEX":
            return self.hexversion
        if name == "PY_MINOR_VERSION":
            return (self.hexversion >> 16) & 0xFF
        if name in VARIES_BY_BUILD and name not in self.values:
            return None
        return super().value(name)


def _taken(branches: list[tuple[str, bytes]], hexversion: int,
           given: Mapping[str, str] | None = None) -> int | None | str:
    """The branch a target Python compiles; None if none; "?" if porter cannot tell."""
    defines = TargetDefines(hexversion, given)
    for i, (kind, condition) in enumerate(branches):
        value = True if kind == "else" else evaluate(kind, condition, defines)
        if value is None:
            return "?"
        if value:
            return i
    return None


def dead_everywhere(branches: list[tuple[str, bytes]], index: int, given: Mapping[str, str] | None = None,
                    memo: dict[int, int | None | str] | None = None) -> bool:
    """Whether branch `index` of a group is compiled by none of the target Pythons (with the
    build's -D macros `given`). `memo` keeps the branch each target takes, for callers that ask
    again about the same branches and `given` (another branch's index)."""
    return all(_taken_by(branches, v, given, memo) not in (index, "?") for v in TARGET_VERSIONS)


def taken_everywhere(branches: list[tuple[str, bytes]], index: int, given: Mapping[str, str] | None = None,
                     memo: dict[int, int | None | str] | None = None) -> bool:
    """Whether every target Python compiles branch `index` of a group (with the macros `given`;
    `memo` as for `dead_everywhere`)."""
    return all(_taken_by(branches, v, given, memo) == index for v in TARGET_VERSIONS)


def _taken_by(branches: list[tuple[str, bytes]], hexversion: int, given: Mapping[str, str] | None,
              memo: dict[int, int | None | str] | None) -> int | None | str:
    if memo is None:
        return _taken(branches, hexversion, given)
    if hexversion not in memo:
        memo[hexversion] = _taken(branches, hexversion, given)
    return memo[hexversion]


# Platforms no build is two of at once, by the macros that say which one it is: a condition that
# asks for two of them (`defined(__GLIBC__) && defined(_MSC_VER)`) holds in no build.
_PLATFORMS = (
    frozenset({"_WIN32", "WIN32", "_WIN64", "MS_WINDOWS", "MS_WIN32", "MS_WIN64", "_MSC_VER"}),
    frozenset({"__linux__", "linux", "__GLIBC__"}),
    frozenset({"__APPLE__", "__MACH__"}),
    frozenset({"__FreeBSD__"}),
    frozenset({"__NetBSD__"}),
    frozenset({"__OpenBSD__"}),
)
_DEFINED = re.compile(r"(!\s*)?defined\s*\(?\s*([A-Za-z_]\w*)\s*\)?")


def holds_in_no_build(condition: str) -> bool:
    """Whether a conjunction (`A && (B && !C)`, parentheses around conjunctions only) requires
    `defined(X)` of two platforms no build is at once. A condition with `||` is not read."""
    if "||" in condition:
        return False
    wanted = {m.group(2) for m in _DEFINED.finditer(condition) if not m.group(1)}
    return sum(1 for platform in _PLATFORMS if wanted & platform) > 1
