"""Same-length stand-ins for macros tree-sitter cannot read, so offsets stay those of the file.

CPython's own macros come from a fixed table. A project's macros are read from its `#define`s
and masked by what their active definition is: an attribute or empty expansion is blanked, a
statement written without its semicolon gets one in the whitespace after it, a use whose
arguments are statements is blanked. Every mask is recorded; uses of globals inside blanked
text are found lexically by the analysis.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass

from porter.lexer import (
    IDENTIFIER,
    Lexed,
    Token,
    blank_in,
    find_names,
    lex,
    tokenize,
)
from porter.model import Macro, Span


@dataclass(frozen=True)
class MacroMask:
    """A macro use replaced by a stand-in of the same length."""

    name: str
    span: Span
    blanked: bool = False  # the tree does not see this text at all




def _put(buf: bytearray, at: int, text: bytes) -> None:
    buf[at:at + len(text)] = text


def _next_significant(text: bytes, pos: int) -> bytes:
    for tok in tokenize(text, pos):
        if tok.kind not in ("comment", "newline"):
            return tok.text
    return b""


def _mask_head(buf, text, tok, lexed):
    # PyObject_HEAD -> "PyObject ob;" padded: a real field, so the struct parses.
    stand_in = b"PyObject ob" if tok.text == b"PyObject_HEAD" else b"PyVarObject ob"
    if _next_significant(text, tok.end) != b";":
        stand_in += b";"
    blank_in(buf, tok.start, tok.end)
    _put(buf, tok.start, stand_in)
    return tok.end


def _mask_head_init(buf, text, tok, lexed):
    # PyVarObject_HEAD_INIT(type, size) expands to "{ ... },": one element that carries its
    # own comma. The stand-in "{       0}," covers the whole use; the arguments are read from
    # the original text through the recorded mask span.
    open_at = _paren_after(text, tok.end)
    close = None if open_at is None else lexed.closing_paren(open_at)[0]
    if close is None:
        return None
    blank_in(buf, tok.start, close + 1)
    buf[tok.start] = ord("{")
    _put(buf, close - 2, b"0},")
    return close + 1


def _paren_after(text: bytes, pos: int) -> int | None:
    for tok in tokenize(text, pos):
        if tok.kind in ("comment", "newline"):
            continue
        return tok.start if tok.text == b"(" else None
    return None


def _mask_block(opening: bytes):
    def mask(buf, text, tok, lexed):
        blank_in(buf, tok.start, tok.end)
        if opening == b"}" and _after_label(text, tok.start) and tok.end - tok.start >= 2:
            # `done: Py_TRASHCAN_END`: a label needs a statement before the closing brace.
            buf[tok.start] = ord(";")
            buf[tok.start + 1] = opening[0]
            return tok.end
        buf[tok.start] = opening[0]
        return tok.end

    return mask


def _after_label(text: bytes, at: int) -> bool:
    """`done: Py_END_ALLOW_THREADS`: a label right before `at`, which needs a statement before
    the closing brace that stands in for the macro."""
    return text[max(0, at - 200):at].rstrip().endswith(b":")


def _mask_as_declaration(type_text: bytes):
    # NAME(var, "string") -> "type var = "string" ": a declaration that parses.
    def mask(buf, text, tok, lexed):
        open_at = _paren_after(text, tok.end)
        close = None if open_at is None else lexed.closing_paren(open_at)[0]
        if close is None:
            return None
        commas = lexed.top_level_commas(open_at, close)
        blank_in(buf, tok.start, open_at + 1)
        _put(buf, tok.start, type_text[: open_at + 1 - tok.start])
        if commas:
            buf[commas[0]] = ord("=")
        buf[close] = 0x20
        return close + 1

    return mask


def _mask_specifier(replacement: bytes):
    # NAME(type) in a function header -> "static inline type ".
    def mask(buf, text, tok, lexed):
        open_at = _paren_after(text, tok.end)
        close = None if open_at is None else lexed.closing_paren(open_at)[0]
        if close is None:
            return None
        blank_in(buf, tok.start, open_at + 1)
        _put(buf, tok.start, replacement[: open_at + 1 - tok.start])
        buf[close] = 0x20
        return close + 1

    return mask


def _mask_block_call(opening: bytes):
    # Py_TRASHCAN_BEGIN(op, dealloc) opens a block: "{" and blanks.
    def mask(buf, text, tok, lexed):
        stop = _mask_blank_call(buf, text, tok, lexed)
        if stop is not None:
            buf[tok.start] = opening[0]
        return stop

    return mask


def _mask_blank_call(buf, text, tok, lexed):
    open_at = _paren_after(text, tok.end)
    close = None if open_at is None else lexed.closing_paren(open_at)[0]
    if close is None:
        return None
    blank_in(buf, tok.start, close + 1)
    return close + 1


def _mask_blank(buf, text, tok, lexed):
    blank_in(buf, tok.start, tok.end)
    return tok.end


def _mask_word(stand_in: bytes):
    """A keyword tree-sitter does not know, as one it does (padded to the same length)."""
    def mask(buf, text, tok, lexed):
        _put(buf, tok.start, stand_in.ljust(len(tok.text)))
        return tok.end
    return mask


def _mask_methoddef(buf, text, tok, lexed):
    # Argument Clinic's FOO_METHODDEF expands to "{...},": "{FOO_METHOD}," is the same length.
    if _next_significant(text, tok.end) in (b",", b"(", b"="):
        return None
    name = tok.text
    _put(buf, tok.start, b"{" + name[:-3] + b"},")
    return tok.end


# Known macros and their stand-ins. Each entry: why tree-sitter needs help, and how.
MACRO_MASKS: dict[bytes, Callable] = {
    # A struct field without a semicolon.
    b"PyObject_HEAD": _mask_head,
    b"PyObject_VAR_HEAD": _mask_head,
    # An initialiser element that carries its own trailing comma.
    b"PyVarObject_HEAD_INIT": _mask_head_init,
    b"PyObject_HEAD_INIT": _mask_head_init,
    # Open and close a block without braces.
    b"Py_BEGIN_ALLOW_THREADS": _mask_block(b"{"),
    b"Py_END_ALLOW_THREADS": _mask_block(b"}"),
    b"Py_BLOCK_THREADS": _mask_block(b";"),
    b"Py_UNBLOCK_THREADS": _mask_block(b";"),
    b"Py_BEGIN_CRITICAL_SECTION": _mask_blank_call,
    b"Py_END_CRITICAL_SECTION": _mask_blank_call,
    # Declarations written as calls.
    b"PyDoc_STRVAR": _mask_as_declaration(b"char              "),
    b"_Py_IDENTIFIER": _mask_as_declaration(b"_Py_Identifier  "),
    b"_Py_static_string": _mask_as_declaration(b"_Py_Identifier     "),
    # Function-header specifiers written as calls.
    b"Py_LOCAL_INLINE": _mask_specifier(b"static inline     "),
    b"Py_LOCAL": _mask_specifier(b"static     "),
    b"PyAPI_FUNC": _mask_specifier(b"extern       "),
    b"PyAPI_DATA": _mask_specifier(b"extern       "),
    b"Py_DEPRECATED": _mask_blank_call,
    b"Py_GCC_ATTRIBUTE": _mask_blank_call,
    b"_Py_NO_RETURN": _mask_blank,
    b"Py_NO_INLINE": _mask_blank,
    b"Py_ALWAYS_INLINE": _mask_blank,
    b"_Py_NO_SANITIZE_UNDEFINED": _mask_blank,
    b"Py_EXPORTED_SYMBOL": _mask_blank,
    b"Py_LOCAL_SYMBOL": _mask_blank,
}

# Also masked: _PyObject_EXTRA_INIT, empty outside debug builds, and trashcan and FPE blocks.
MACRO_MASKS.update({
    b"_PyObject_EXTRA_INIT": _mask_blank,
    # C11 thread-local storage (tree-sitter-c reads _Thread_local as a type name).
    b"_Thread_local": _mask_word(b"__thread"),
    b"_Py_thread_local": _mask_word(b"__thread"),
    b"Py_TRASHCAN_BEGIN": _mask_block_call(b"{"),
    b"Py_TRASHCAN_END": _mask_block(b"}"),
    b"Py_TRASHCAN_SAFE_BEGIN": _mask_block_call(b"{"),
    b"Py_TRASHCAN_SAFE_END": _mask_block_call(b"}"),
    b"PyFPE_START_PROTECT": _mask_blank_call,
    b"PyFPE_END_PROTECT": _mask_blank_call,
})
# Blanking maskers: the tree does not see the arguments of these uses.
_BLANKING = {b"PyVarObject_HEAD_INIT", b"PyObject_HEAD_INIT", b"Py_BEGIN_CRITICAL_SECTION",
             b"Py_END_CRITICAL_SECTION", b"Py_DEPRECATED",
             b"Py_GCC_ATTRIBUTE", b"PyFPE_START_PROTECT", b"PyFPE_END_PROTECT",
             b"Py_TRASHCAN_BEGIN", b"Py_TRASHCAN_SAFE_BEGIN", b"Py_TRASHCAN_SAFE_END"}

# PyMODINIT_FUNC needs no stand-in: tree-sitter reads it as a type name, which is what it is.
KNOWN_UNMASKED = (b"PyMODINIT_FUNC", b"PyDoc_STR", b"Py_UNUSED")

# <iso646.h> spells operators as words.
ISO646 = {b"and": b"&&", b"or": b"||", b"not": b"!", b"not_eq": b"!=", b"and_eq": b"&=",
          b"or_eq": b"|=", b"xor": b"^", b"xor_eq": b"^=", b"bitand": b"&", b"bitor": b"|",
          b"compl": b"~"}

# Words an attribute-like macro may expand to; such a macro is blanked (keeping the storage class).
_SPECIFIER_WORDS = {"inline", "__inline", "__inline__", "__forceinline", "static", "extern",
                    "__attribute__", "__attribute", "__declspec", "always_inline", "noinline",
                    "unused", "__unused__", "maybe_unused", "__always_inline__", "__noinline__",
                    "dllexport", "dllimport", "visibility", "default", "hidden", "cold", "hot",
                    "noreturn", "__noreturn__", "__restrict", "__restrict__", "restrict",
                    "_Noreturn", "__extension__", "const", "pure", "__const__", "deprecated",
                    "warn_unused_result", "nonnull", "format", "printf", "fallthrough", "register",
                    "_Thread_local", "__thread", "thread", "thread_local"}
_THREAD_WORDS = {"_Thread_local", "__thread", "thread_local"}
_STATEMENT_END = {b";", b"}"}
_STATEMENT_START = {b";", b"{", b"}", b":", b")"}


def _classify(macro: Macro) -> str | None:
    """How to mask uses of a project macro: blank, specifier, cast, statement, or None.

    It depends on the parameters and the body only, and every file that sees a header's
    macros asks again: the answer is kept."""
    key = (macro.params is None, macro.body_text)
    kind = _CLASSIFIED.get(key, _UNKNOWN)
    if kind is _UNKNOWN:
        kind = _CLASSIFIED[key] = _classify_body(macro)
    return kind  # type: ignore[return-value]


_CLASSIFIED: dict[tuple[bool, str], str | None] = {}
_UNKNOWN = object()


# `_Pragma("GCC diagnostic push")` (and MSVC's `__pragma(...)`): a directive, no C tokens.
_PRAGMA_OPERATOR = re.compile(r'\b_Pragma\s*\(\s*"(?:[^"\\]|\\.)*"\s*\)|\b__pragma\s*\((?:[^()]|\([^()]*\))*\)')


def _classify_body(macro: Macro) -> str | None:
    body = re.sub(r"/\*.*?\*/|//[^\n]*|\\\r?\n", " ", macro.body_text, flags=re.DOTALL).strip()
    body = _PRAGMA_OPERATOR.sub(" ", body).strip()
    words = re.findall(r"[A-Za-z_]\w*|\S", _without_attribute_arguments(body))
    net = _net_braces(body, words)
    if net:
        # `#define ENTER_TCL { PyThreadState *t = ...; Py_BEGIN_ALLOW_THREADS`: it opens blocks
        # another macro closes (`LEAVE_TCL`); standing in for its braces keeps the function whole.
        return f"braces{net:+d}"
    if macro.params is None:
        if not body:
            return "blank"
        if re.match(r"(PyVarObject_HEAD_INIT|PyObject_HEAD_INIT)\s*\(", body):
            return "head-init"  # #define PY_OBJECT_HEAD_INIT PyVarObject_HEAD_INIT(NULL, 0)
        names = [w for w in words if re.match(r"[A-Za-z_]", w)]
        if names and set(names) <= _SPECIFIER_WORDS and (
                "__attribute__" in names or "__declspec" in names or set(names) & _THREAD_WORDS) or (
                names and set(names) <= {"inline", "__inline", "__inline__", "__forceinline",
                                         "static", "extern"} and len(words) == len(names)):
            return "specifier"
        if re.fullmatch(r"\(\s*(const\s+)?[A-Za-z_]\w*(\s+[A-Za-z_]\w*)*\s*\**\s*\)", body):
            return "cast"
        if _FUNCTION_HEADER.fullmatch(body) and not _statement_like(body):
            return "header"
        return "statement" if _statement_like(body) else None
    if not body:
        return "blank-call"
    return "statement" if _statement_like(body) else "call"


# `PyMODINIT_FUNC CONCATENATE(PyInit_, EXT_MODULE)(void)`: specifiers, a declarator (perhaps
# itself a macro use), then the parameter list last.
_FUNCTION_HEADER = re.compile(r"[A-Za-z_][\w\s*]*\s[\w\s*]*[A-Za-z_]\w*\s*(\([^()]*\)\s*)?\([^()]*\)")


# C-API macros that open or close a block without braces of their own in the body that names them.
_BLOCK_MACROS = {"Py_BEGIN_ALLOW_THREADS": 1, "Py_END_ALLOW_THREADS": -1, "Py_TRASHCAN_BEGIN": 1,
                 "Py_TRASHCAN_END": -1, "Py_TRASHCAN_SAFE_BEGIN": 1, "Py_TRASHCAN_SAFE_END": -1}
_LITERAL_TEXT = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')


def _net_braces(body: str, words: list[str]) -> int:
    """How many blocks an expansion leaves open (negative: closes), counting the C-API's own
    block macros it names."""
    code = _LITERAL_TEXT.sub(" ", body)
    return code.count("{") - code.count("}") + sum(_BLOCK_MACROS.get(w, 0) for w in words)


def _without_attribute_arguments(body: str) -> str:
    """`__attribute__((cpychecker_sets_exception))` -> `__attribute__`: what an attribute or
    `__declspec` says does not make the macro anything but a specifier."""
    out, i = [], 0
    for m in re.finditer(r"\b(__attribute__|__declspec)\s*\(", body):
        if m.start() < i:
            continue
        depth, j = 0, m.end() - 1
        while j < len(body):
            depth += {"(": 1, ")": -1}.get(body[j], 0)
            j += 1
            if depth == 0:
                break
        out.append(body[i:m.start()] + m.group(1) + " ")
        i = j
    return "".join(out) + body[i:]


def _statement_like(body: str) -> bool:
    """An expansion that is a whole statement: `if (...) {...}`, `do {...} while (0);`, `f(x);`."""
    return body.endswith((";", "}")) or bool(
        re.match(r"(if|do|while|for|switch|return|goto|break|continue)\b|\{", body))


def _prev_significant(lexed: Lexed, text: bytes, offset: int) -> Token | None:
    """The token before `offset` (comments and line breaks skipped), as far as the masks need
    it: a directive, or a one-byte token that ends a statement, or anything else."""
    at = lexed.prev_code_byte(offset)
    if lexed.directive_before(at + 1 if at is not None else 0, offset):
        return Token("directive", offset, offset, b"")
    if at is None:
        return None
    return Token("punct" if text[at] in _PUNCT_BYTES else "other", at, at + 1, text[at:at + 1])


_PUNCT_BYTES = frozenset(b";{}:)")


def _next_significant_token(lexed: Lexed, text: bytes, offset: int) -> Token | None:
    """The first token at or after `offset` that is no comment or line break."""
    for tok in tokenize(text, offset):
        if tok.kind in ("comment", "newline"):
            continue
        if tok.kind == "directive" and not lexed.is_directive_start(tok.start):
            return Token("punct", tok.start, tok.start + 1, b"#")  # a `#` in the middle of a line
        return tok
    return None


def _at_statement_start(prev: Token | None) -> bool:
    return prev is None or prev.kind == "directive" or prev.text in _STATEMENT_START


def _needs_semicolon(nxt: Token | None) -> bool:
    if nxt is None:
        return True
    return nxt.kind in ("ident", "directive") or nxt.text in (b"{", b"}")


def _place_semicolon(buf: bytearray, text: bytes, at: int) -> bool:
    """Put the missing ';' in the whitespace right after `at`; False if there is none to use."""
    if at < len(text) and text[at] in (0x20, 0x09):
        buf[at] = ord(";")
        return True
    if at < len(text) and text[at] in (0x0A, 0x0D):
        rest = text[at + 1:at + 200].lstrip(b" \t\r\n")
        if not rest.startswith(b"#"):
            buf[at] = ord(";")
            return True
    return False


def mask_macros(
    text: bytes, project: dict[str, Macro] | None = None, iso646: bool = False, lexed: Lexed | None = None,
) -> tuple[bytes, tuple[MacroMask, ...]]:
    """Replace macro uses outside comments, strings and directives with stand-ins."""
    buf = bytearray(text)
    masks: list[MacroMask] = []
    project = project or {}
    lexed = lexed or lex(text)
    kinds = {name.encode(): _classify(m) for name, m in project.items()}
    skip_until = 0
    depths = _BraceDepths(lexed.code)
    for tok in sorted(_uses(lexed.code, kinds, iso646) + _crlf_literals(text, lexed), key=lambda t: t.start):
        if tok.start < skip_until:
            continue
        if tok.kind == "string":
            _mask_crlf_splices(buf, tok)
            continue
        masker = MACRO_MASKS.get(tok.text)
        if masker is None and tok.text.endswith(b"_METHODDEF") and len(tok.text) > 10:
            masker = _mask_methoddef
        if masker is not None:
            stop = masker(buf, text, tok, lexed)
            if stop is not None:
                masks.append(MacroMask(tok.text.decode(), Span(tok.start, stop),
                                       tok.text in _BLANKING))
                skip_until = stop
            continue
        if iso646 and tok.text in ISO646:
            blank_in(buf, tok.start, tok.end)
            _put(buf, tok.start, ISO646[tok.text])
            masks.append(MacroMask(tok.text.decode(), Span(tok.start, tok.end)))
            continue
        kind = kinds.get(tok.text)
        if kind is None:
            continue
        result = _mask_project(buf, text, lexed, tok, project[tok.text.decode()], kind, depths)
        if result is not None:
            stop, blanked = result
            masks.append(MacroMask(tok.text.decode(), Span(tok.start, stop), blanked))
            skip_until = stop
    assert len(buf) == len(text)
    return bytes(buf), tuple(masks)


def _crlf_literals(text: bytes, lexed: Lexed) -> list[Token]:
    """The string and character literals holding a backslash before CRLF."""
    return [Token("string", start, end, text[start:end]) for start, end in lexed.literals
            if b"\\\r\n" in text[start:end]] if b"\\\r\n" in text else []


class _BraceDepths:
    """How many braces are open before an offset (a `}` too many closes nothing), counted in
    the lexer's blanked copy the first time one is asked for."""

    def __init__(self, code: bytes) -> None:
        self.code = code
        self.starts: list[int] | None = None
        self.depths: list[int] = []

    def at(self, offset: int) -> int:
        if self.starts is None:
            self.starts, depth = [], 0
            for m in re.finditer(rb"[{}]", self.code):
                depth = depth + 1 if m.group() == b"{" else max(0, depth - 1)
                self.starts.append(m.start())
                self.depths.append(depth)
        i = bisect_left(self.starts, offset)
        return self.depths[i - 1] if i else 0


_ESCAPE = re.compile(rb"\\(?:\r\n|.)", re.DOTALL)


def _mask_crlf_splices(buf: bytearray, tok: Token) -> None:
    """`"first line\\` CRLF `second"`: tree-sitter reads a backslash-newline inside a literal
    only before a bare LF; ` \\` LF keeps the length, the line count and the literal whole."""
    for m in _ESCAPE.finditer(tok.text):
        if m.group() == b"\\\r\n":
            _put(buf, tok.start + m.start(), b" \\\n")


def _uses(code: bytes, kinds: dict[bytes, str | None], iso646: bool) -> list[Token]:
    """Uses of the names a mask may apply to, in order, found in the lexer's blanked copy (so
    never in a comment, a literal or a directive): the file's names are gathered first, and
    only those that matter are looked for one by one."""
    names = set(IDENTIFIER.findall(code))
    wanted = {n for n in names if n in MACRO_MASKS or kinds.get(n) is not None
              or (n.endswith(b"_METHODDEF") and len(n) > 10) or (iso646 and n in ISO646)}
    found = [Token("ident", start, end, name) for name in wanted for start, end in find_names(code, name)]
    found.sort(key=lambda t: t.start)
    return found


def _mask_project(buf, text, lexed: Lexed, tok: Token, macro: Macro, kind: str, depths: _BraceDepths):
    if kind == "blank" or kind == "cast":
        blank_in(buf, tok.start, tok.end)
        return tok.end, False
    if kind == "head-init":
        if tok.end - tok.start < 4:
            return None
        blank_in(buf, tok.start, tok.end)
        buf[tok.start] = ord("{")
        _put(buf, tok.end - 3, b"0},")
        return tok.end, True
    if kind == "specifier":
        words = [w for w in ("static", "inline", "extern") if re.search(rf"\b{w}\b", macro.body_text)]
        stand_in = b" ".join(w.encode() for w in words)
        while len(stand_in) > tok.end - tok.start and b" " in stand_in:
            stand_in = stand_in.rsplit(b" ", 1)[0]
        blank_in(buf, tok.start, tok.end)
        if len(stand_in) <= tok.end - tok.start:
            _put(buf, tok.start, stand_in)
        return tok.end, False
    if kind.startswith("braces"):
        return _mask_braces(buf, text, lexed, tok, macro, int(kind[len("braces"):]))
    prev = _prev_significant(lexed, text, tok.start)
    if kind == "header":
        return _mask_header(buf, lexed, text, tok, prev, depths.at(tok.start))
    if macro.params is None:
        end = tok.end
    else:
        opening = _next_significant_token(lexed, text, tok.end)
        if opening is None or opening.text != b"(":
            return None
        close, statements = lexed.closing_paren(opening.start)
        if close is None:
            return None
        if kind == "blank-call":
            if _at_statement_start(prev):
                blank_in(buf, tok.start, close + 1)
                return close + 1, True
            return None
        if statements:
            blank_in(buf, tok.start, close + 1)
            return close + 1, True
        end = close + 1
    nxt = _next_significant_token(lexed, text, end)
    if kind != "statement" or not _at_statement_start(prev) or not _needs_semicolon(nxt):
        return None
    if nxt is not None and nxt.text == b"else":
        return None
    if _place_semicolon(buf, text, end):
        return end, False
    blank_in(buf, tok.start, end)
    return end, True


def _mask_braces(buf: bytearray, text: bytes, lexed: Lexed, tok: Token, macro: Macro, net: int):
    """A use of a macro that opens (`net` > 0) or closes blocks: its braces, and nothing else
    of it, as the parser's stand-in (`{{` for ENTER_TCL, `}` for LEAVE_OVERLAP_TCL)."""
    end = tok.end
    if macro.params is not None:
        opening = _next_significant_token(lexed, text, tok.end)
        if opening is None or opening.text != b"(":
            return None
        close, _ = lexed.closing_paren(opening.start)
        if close is None:
            return None
        end = close + 1
    stand_in = (b"{" if net > 0 else b"}") * abs(net)
    if len(stand_in) > end - tok.start:
        return None
    blank_in(buf, tok.start, end)
    if net < 0 and _after_label(text, tok.start) and len(stand_in) < end - tok.start:
        stand_in = b";" + stand_in  # `done: LEAVE_X`: a label needs a statement before the brace
    _put(buf, tok.start, stand_in)
    return end, macro.params is not None


def _mask_header(buf: bytearray, lexed: Lexed, text: bytes, tok: Token, prev: Token | None, depth: int):
    """`EXT_INIT_FUNC {` at file scope, the macro being a whole function header: `EXT INIT_FUNC`
    (its first inner underscore a space) parses as a function `INIT_FUNC` of type `EXT`, which
    `ctree.function_name` reads back as the macro's name. A name without one stays unread."""
    nxt = _next_significant_token(lexed, text, tok.end)
    gap = tok.text.find(b"_", 1)
    if depth or not _at_statement_start(prev) or nxt is None or nxt.text != b"{" \
            or gap < 0 or gap == len(tok.text) - 1 or tok.text[gap + 1:gap + 2].isdigit():
        return None
    buf[tok.start + gap] = 0x20
    return tok.end, False
