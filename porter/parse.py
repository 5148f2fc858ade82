"""Source bytes to a tree-sitter tree that survives CPython's macros and `#if` blocks.

This is the only module that imports tree_sitter. Known macros are replaced with same-length
stand-ins before parsing, so every byte offset in the tree is an offset into the original file.
Preprocessor conditionals that break the parse (inside an initialiser, splitting a function
header) are masked down to one branch and recorded. Whatever still fails to parse is kept as an
ERROR span, inside which nothing is ever edited.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib import resources
from itertools import accumulate
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import tree_sitter_c
from tree_sitter import Language, Parser, Point, Query, QueryCursor, Range, Tree

if TYPE_CHECKING:
    # tree-sitter types Node.text and every child accessor as optional; porter walks trees
    # it parsed from bytes, where they are not: nodes are checked by the tests, not by mypy.
    Node = Any
else:
    from tree_sitter import Node

from porter.lexer import Lexed, Name, blank, blank_in, lex, names, names_of_lexed
from porter.masks import MacroMask, mask_macros
from porter.model import Macro, Span
from porter.preproc import Conditional, Preprocessed, preprocess
from porter.spans import SpanSet

LANGUAGE = Language(tree_sitter_c.language())
MAX_TREE_EDITS = 64
MAX_MASK_ROUNDS = 8

__all__ = ["LANGUAGE", "Node", "Source", "parse_source", "query", "captures", "matches"]


@dataclass(frozen=True)
class MaskedConditional:
    """A conditional that broke the parse and was masked down to one branch."""

    conditional: Conditional
    kept: int | None  # index of the kept branch; None if every branch was dropped
    dropped: tuple[Span, ...]  # branch bodies that the tree does not see


@dataclass
class Source:
    """One file: its original bytes, the masked bytes tree-sitter saw, and the tree."""

    path: str
    text: bytes
    masked: bytes
    tree: Tree
    macro_masks: tuple[MacroMask, ...]
    pre: Preprocessed
    masked_conditionals: tuple[MaskedConditional, ...]
    error_spans: tuple[Span, ...]
    # Big initialisers of numbers only, whose numbers the parser was not shown (see
    # `_blank_number_tables`): the `{...}` spans.
    number_tables: frozenset[Span] = frozenset()
    # Every identifier of the text outside comments and literals (`lexer.names_in_code`),
    # read while the lexer's spans are at hand; None when not asked for.
    code_names: frozenset[str] | None = None
    _line_starts: list[int] = field(default_factory=list, repr=False)
    _errors: SpanSet | None = field(default=None, repr=False)
    _dropped: SpanSet | None = field(default=None, repr=False)
    _dropped_names: dict[bool, list] = field(default_factory=dict, repr=False)

    @property
    def root(self) -> Node:
        return self.tree.root_node

    def text_of(self, node_or_span: Node | Span) -> str:
        start, end = _bounds(node_or_span)
        return self.text[start:end].decode("utf-8", "replace")

    def bytes_of(self, node_or_span: Node | Span) -> bytes:
        start, end = _bounds(node_or_span)
        return self.text[start:end]

    def line_col(self, offset: int) -> tuple[int, int]:
        """1-based line and column of a byte offset."""
        if not self._line_starts:
            self._line_starts = line_starts(self.text)
        line = bisect_right(self._line_starts, offset)
        return line, offset - self._line_starts[line - 1] + 1

    def as_text(self) -> SourceText:
        """What outlives the tree: the text, the preprocessor's facts and the error spans."""
        return SourceText(self.path, self.text, self.pre, self.error_spans, self._line_starts)

    def line(self, offset: int) -> int:
        return self.line_col(offset)[0]

    def in_error(self, span: Span) -> bool:
        """Whether `span` touches a region the parser could not read."""
        if self._errors is None:
            self._errors = SpanSet(self.error_spans)
        return self._errors.overlaps(span.start, span.end)

    def in_dropped_branch(self, span: Span) -> bool:
        if self._dropped is None:
            self._dropped = SpanSet(d for mc in self.masked_conditionals for d in mc.dropped)
        return self._dropped.overlaps(span.start, span.end)

    def dropped_live(self) -> list[Span]:
        """Dropped branches some Python a port targets compiles (not `#if PY_MAJOR_VERSION < 3`)."""
        dead = {b.body for mc in self.masked_conditionals for b in mc.conditional.branches if b.dead}
        return [d for mc in self.masked_conditionals for d in mc.dropped if d not in dead]

    def dropped_text(self) -> list[tuple[Span, bytes]]:
        return [(d, self.text[d.start:d.end]) for mc in self.masked_conditionals for d in mc.dropped]

    def dropped_names(self, directives: bool = True) -> list[Name]:
        """The identifiers of the branch bodies the tree does not see, read once per file
        (every module of a unity file asks); without `directives`, with the calls they make."""
        found = self._dropped_names.get(directives)
        if found is None:
            found = [n for span, _ in self.dropped_text()
                     for n in names(self.text, span.start, span.end, directives=directives, lexed=self.pre.lexed)]
            self._dropped_names[directives] = found
        return found

    @property
    def conditionals(self) -> tuple[Conditional, ...]:
        return self.pre.conditionals

    def enclosing_conditionals(self, offset: int) -> list[Conditional]:
        return self.pre.enclosing(offset)

    @cached_property
    def mask_starts(self) -> list[int]:
        """Where each of `macro_masks` starts (they are in the order of the file)."""
        return [m.span.start for m in self.macro_masks]

    def masks_in(self, start: int, end: int) -> tuple[MacroMask, ...]:
        """The macro masks that start in `start..end`, in the order of the file."""
        starts = self.mask_starts
        return self.macro_masks[bisect_left(starts, start):bisect_left(starts, end)]

    def masks_at(self, offset: int) -> tuple[MacroMask, ...]:
        """The macro masks that start at `offset`."""
        return self.masks_in(offset, offset + 1)

    def blanked_masks(self) -> list[MacroMask]:
        """Macro uses the tree does not see: their text is read lexically."""
        return [m for m in self.macro_masks if m.blanked]


@dataclass
class SourceText:
    """A file after its tree is gone: what reports, JSON and ports read (lines, the #if groups,
    the error spans to compare a rewrite with)."""

    path: str
    text: bytes
    pre: Preprocessed
    error_spans: tuple[Span, ...] = ()
    _line_starts: list[int] = field(default_factory=list, repr=False)

    @property
    def conditionals(self) -> tuple[Conditional, ...]:
        return self.pre.conditionals

    def line_col(self, offset: int) -> tuple[int, int]:
        """1-based line and column of a byte offset."""
        if not self._line_starts:
            self._line_starts = line_starts(self.text)
        line = bisect_right(self._line_starts, offset)
        return line, offset - self._line_starts[line - 1] + 1

    def line(self, offset: int) -> int:
        return self.line_col(offset)[0]


def line_starts(text: bytes) -> list[int]:
    """Where each line starts (after `\r\n`, `\n` or `\r`), from one split in C."""
    lines = text.splitlines(keepends=True)
    starts = [0]
    starts.extend(accumulate(map(len, lines)))
    if lines and not lines[-1].endswith((b"\n", b"\r")):
        starts.pop()  # the last line has no break: nothing starts after it
    return starts


def _bounds(node_or_span: Node | Span) -> tuple[int, int]:
    if isinstance(node_or_span, Span):
        return node_or_span.start, node_or_span.end
    return node_or_span.start_byte, node_or_span.end_byte


# --------------------------------------------------------------------------- conditionals


_SPACES = re.compile(rb"[ \t\n\r\x0b\x0c]*")
_DEFINE_LINE = re.compile(rb"^[ \t]*#[ \t]*(define|undef)\b(?:[^\n]*\\\r?\n)*[^\n]*", re.MULTILINE)


def _mask_conditional(buf: bytearray, cond: Conditional) -> MaskedConditional:
    kept = cond.chosen()
    dropped = []
    for span in cond.directive_spans():
        blank_in(buf, span.start, span.end)
    for i, b in enumerate(cond.branches):
        if i != kept:
            blank_in(buf, b.body.start, b.body.end)
            if b.body.end > b.body.start:
                dropped.append(b.body)
        elif cond.splits_code:
            # `PyMODINIT_FUNC` `#if` `#define ERR NULL` `PyInit_x(void) {`: a #define left in
            # a branch that holds half a declaration splits it for the parser. The preprocessor
            # facts keep the macro; the tree does not need the line.
            for m in _DEFINE_LINE.finditer(bytes(buf[b.body.start:b.body.end])):
                blank_in(buf, b.body.start + m.start(), b.body.start + m.end())
    return MaskedConditional(cond, kept, tuple(dropped))


# --------------------------------------------------------------------------- number tables

# A number as C writes one, with its sign and suffix, and blanks around it.
_NUMBER = (rb"[ \t\r\n\f\v]*+[+-]?[ \t\r\n\f\v]*+(?:0[xX][0-9a-fA-F]++|[0-9]++(?:\.[0-9]*+)?(?:[eE][+-]?[0-9]++)?"
           rb"|\.[0-9]++(?:[eE][+-]?[0-9]++)?)[uUlLfF]*+[ \t\r\n\f\v]*+")
# Or a name: an object-like macro of the project standing for a number (`U` for "unmapped").
_ELEMENT = rb"(?:" + _NUMBER + rb"|[ \t\r\n\f\v]*+[A-Za-z_][A-Za-z0-9_]*+[ \t\r\n\f\v]*+)"
_NUMBER_LIST = re.compile(rb"\{(?:" + _ELEMENT + rb",)*+(?:" + _ELEMENT + rb")?[ \t\r\n\f\v]*+\}")
_NAME = re.compile(rb"(?<![0-9A-Za-z_.])[A-Za-z_][A-Za-z0-9_]*")
# What deleting these leaves empty holds no name (a table of decimal numbers: megabytes that
# `_NAME` need not read).
_NOT_NAME_START = bytes(b for b in range(256) if not (chr(b).isascii() and (chr(b).isalpha() or b == 0x5F)))
NUMBER_TABLE_BYTES = 4096
# Where a big one may start: a list of numbers holds no brace, so it is a `{` whose first
# element comes next and the first brace after which is its `}`, far enough away.
_BIG_LIST = re.compile(rb"\{(?=[ \t\r\n\f\v]*[-+0-9.A-Za-z_])[^{}]{%d,}\}" % (NUMBER_TABLE_BYTES - 2))


def _blank_number_tables(buf: bytearray, text: bytes, lexed: Lexed,
                         constants: frozenset[bytes] = frozenset()) -> frozenset[Span]:
    """Blank the numbers of every big `{...}` that holds nothing else (no name but the
    `constants`, object-like macros of the project; no comment, directive or macro mask):
    generated data tables (a Unicode database is megabytes of them) cost
    the parser a node per number and the analysis nothing. The braces stay, so the tree still
    has the initialiser list; its elements are read from the text (`table_rows`). Returns the
    spans of the lists blanked."""
    code = lexed.code
    found = []
    for big in _BIG_LIST.finditer(code):
        m = _NUMBER_LIST.match(code, big.start())
        if m is None:
            continue
        region = text[m.start():m.end()]
        if code[m.start():m.end()] != region or buf[m.start():m.end()] != region:
            continue  # a comment, directive or mask inside
        if region.translate(None, _NOT_NAME_START) and any(
                name not in constants for name in set(_NAME.findall(region))):
            continue  # a name that may be a variable (an address, a size): the analysis reads it
        buf[m.start() + 1:m.end() - 1] = blank(bytes(buf[m.start() + 1:m.end() - 1]))
        found.append(Span(m.start(), m.end()))
    return frozenset(found)


# --------------------------------------------------------------------------- parsing


@cache
def _parser() -> Parser:
    return Parser(LANGUAGE)


def _parser_for(text: bytes, number_tables: frozenset[Span]) -> Parser:
    """The parser, told to skip the insides of the number tables `_blank_number_tables` blanked:
    blanks make no node, but a parser reads every byte it is given (a Unicode database's
    megabytes of them). The tree is the one a parse of the whole text gives, points included."""
    if not number_tables:
        return _parser()
    ranges: list[Range] = []
    at, point = 0, Point(0, 0)
    for table in sorted(number_tables):
        end = _point_after(text, at, point, table.start + 1)
        ranges.append(Range(point, end, at, table.start + 1))
        at, point = table.end - 1, _point_after(text, table.start + 1, end, table.end - 1)
    ranges.append(Range(point, _point_after(text, at, point, len(text)), at, len(text)))
    return Parser(LANGUAGE, included_ranges=ranges)


def _point_after(text: bytes, start: int, at: Point, offset: int) -> Point:
    """The point of `offset`, from the point `at` of `start` before it: rows as tree-sitter
    counts them (a line feed starts one), columns in bytes."""
    breaks = text.count(b"\n", start, offset)
    if not breaks:
        return Point(at.row, at.column + offset - start)
    return Point(at.row + breaks, offset - text.rfind(b"\n", start, offset) - 1)


def error_nodes(tree: Tree) -> list[Node]:
    """ERROR and MISSING nodes, outermost first."""
    found: list[Node] = []
    if not tree.root_node.has_error:
        return found
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            found.append(node)
            continue
        if node.has_error:
            stack.extend(reversed(node.children))
    return found


_BRACES = re.compile(rb"[{}]")
# `=`, then blanks and line continuations (`Lexed.prev_code_byte` skips them), then `{`.
_LIST_OPENING = re.compile(rb"=(?:[ \t\f\v\r\n]|\\(?=[\r\n]))*\{")


def _initializer_lists(lexed: Lexed) -> SpanSet:
    """The outermost brace initializer lists of a file (`= {...}`, and the lists nested in
    one), read on its code with comments, literals and directives blanked.

    Only the braces inside lists are visited: each `= {` outside the lists found so far starts
    one, which ends at the `}` that closes it (a function body's braces are passed over)."""
    code = lexed.code
    found: list[tuple[int, int]] = []
    end = 0  # where the last list found ends
    for m in _LIST_OPENING.finditer(code):
        at = m.end() - 1
        if at < end:
            continue  # inside the last one: a list in it, or a list in a block in it
        depth = 0
        for brace in _BRACES.finditer(code, at):
            depth += 1 if code[brace.start()] == 0x7B else -1  # `{`
            if not depth:
                end = brace.end()
                break
        else:
            # Never closed: the lists in a block inside it (`({ int a[] = {1}; })`) still count.
            return _initializer_lists_by_stack(lexed)
        found.append((at, end))
    return SpanSet(found)


def _initializer_lists_by_stack(lexed: Lexed) -> SpanSet:
    """`_initializer_lists`, every brace of the file on a stack."""
    code = lexed.code
    found: list[tuple[int, int]] = []
    stack: list[bool] = []  # for each open brace: whether it opens an initializer list
    opened_at: list[int] = []
    for m in _BRACES.finditer(code):
        at = m.start()
        if code[at] == 0x7B:  # `{`
            last = lexed.prev_code_byte(at)
            before = code[last:last + 1] if last is not None else b""
            stack.append(before == b"=" or (bool(stack) and stack[-1] and before in (b",", b"{")))
            opened_at.append(at)
        elif stack:
            if stack.pop() and not (stack and stack[-1]):
                found.append((opened_at[-1], m.end()))
            opened_at.pop()
    return SpanSet(found)


def _groups_to_mask(tree: Tree, buf: bytes, pre: Preprocessed, done: set[int]) -> set[int]:
    """The groups an ERROR node touches: one whose directive lines it overlaps, one that starts
    where a MISSING node is, or the innermost one around its start (unless the error sits in a
    block inside one branch)."""
    conds = pre.conditionals
    directives = sorted((d.start, d.end, i) for i, c in enumerate(conds) for d in c.directive_spans())
    starts = [d[0] for d in directives]
    cond_starts = [c.span.start for c in conds]
    wanted: set[int] = set()
    for err in error_nodes(tree):
        es, ee = err.start_byte, max(err.end_byte, err.start_byte + 1)
        # Directive lines never overlap each other: those that overlap the error are in a row.
        j = bisect_right(starts, es) - 1
        j = max(j, 0)
        while j < len(directives) and directives[j][0] < ee:
            start, end, i = directives[j]
            if start < ee and es < end and i not in done:
                wanted.add(i)
            j += 1
        # `if (PyType_Ready(&T) < 0)` then `#if PY3 return NULL; #else return; #endif`: the
        # statement misses its body where the group starts; each branch holds one. Likewise
        # `} else` then `#endif` then `#if ... stmt; #else stmt; #endif`: the dangling `else` is
        # the error, and its statement is the next group. Only blanks lie between: the group
        # starts at the first byte that is not one.
        at = _SPACES.match(buf, es if err.is_missing else ee).end()  # type: ignore[union-attr]  # matches ""
        k = bisect_left(cond_starts, at)
        while k < len(conds) and cond_starts[k] == at:
            if k not in done:
                wanted.add(k)
            k += 1
        innermost = next((i for i in reversed(pre.enclosing_indexes(es)) if i not in done), None)
        if innermost is not None and not _inside_branch_block(err, conds[innermost]):
            wanted.add(innermost)
    return wanted


def _inside_branch_block(err: Node, cond: Conditional) -> bool:
    """Whether the error sits in a block that lies wholly inside one branch (not our fault)."""
    node = err.parent
    while node is not None:
        if node.type == "compound_statement":
            for b in cond.branches:
                if b.body.start <= node.start_byte and node.end_byte <= b.body.end:
                    return True
            return False
        node = node.parent
    return False


def _edited(tree: Tree, span: Span, rows: list[int]) -> None:
    """Tell `tree` that the bytes of `span` changed. Masking keeps every byte where it was and
    every line break, so the span ends where it ended, on the same row."""

    def point(offset: int) -> tuple[int, int]:
        row = bisect_right(rows, offset) - 1
        return row, offset - rows[row]

    start, end = point(span.start), point(span.end)
    tree.edit(start_byte=span.start, old_end_byte=span.end, new_end_byte=span.end,
              start_point=start, old_end_point=end, new_end_point=end)


def parse_source(
    path: str,
    text: bytes,
    pre: Preprocessed | None = None,
    project_macros: dict[str, Macro] | None = None,
    iso646: bool = False,
    code_names: bool = True,
) -> Source:
    """Parse one file: mask macros, mask conditionals that break the parse, record errors.

    `project_macros` are the active `#define`s visible to this file (its own and its headers').
    `code_names`: also read `Source.code_names` (a module's files need them, others not).
    """
    pre = pre or preprocess(path, text)
    if project_macros is None:
        project_macros = {}
        for m in pre.macros:
            if m.active is not False:
                project_macros.setdefault(m.name, m)
    lexed = pre.lexed or lex(text)
    masked, macro_masks = mask_macros(text, project_macros, iso646, lexed)
    conds = pre.conditionals
    buf = bytearray(masked)
    _blank_directive_comments(buf, text, lexed)
    constants = frozenset(name.encode() for name, m in project_macros.items() if m.params is None)
    number_tables = _blank_number_tables(buf, text, lexed, constants)
    masked_conds: list[MaskedConditional] = []
    dropped = SpanSet()  # branch bodies the tree does not see
    done: set[int] = set()

    def mask(i: int) -> None:
        mc = _mask_conditional(buf, conds[i])
        masked_conds.append(mc)
        for d in mc.dropped:
            dropped.add(d.start, d.end)
        done.add(i)

    # Groups whose branches split a statement or a header cannot parse as written; nor can a
    # group in a brace initializer (tree-sitter-c reads no directive there): a generated table
    # with an `#ifdef` per row would otherwise cost a slow parse full of errors first.
    in_lists = _initializer_lists(lexed)
    for i, cond in enumerate(conds):
        if (cond.splits_code or in_lists.covers(cond.span.start)) and not dropped.covers(cond.span.start):
            mask(i)
    seen = bytes(buf)  # the tree holds this text; the Source keeps the same object
    parser = _parser_for(seen, number_tables)  # masking below only blanks: a table stays blank inside
    tree = parser.parse(seen)
    rows: list[int] = []
    for _ in range(MAX_MASK_ROUNDS):
        # A group inside a branch that an outer masked group dropped needs nothing more.
        wanted = {i for i in _groups_to_mask(tree, seen, pre, done) if not dropped.covers(conds[i].span.start)}
        if not wanted:
            break
        # Only the masked groups change: the parser reads again what they touch and reuses
        # the rest of the tree (the same tree as a parse from scratch, for a fraction of it).
        # Each edit walks the tree, though: past a few dozen groups (a generated table with an
        # `#ifdef` per row) a parse from scratch costs less.
        incremental = len(wanted) <= MAX_TREE_EDITS
        rows = rows or (line_starts(seen) if incremental else [])
        for i in sorted(wanted, key=lambda i: conds[i].span.start):
            if not dropped.covers(conds[i].span.start):
                mask(i)
                if incremental:
                    _edited(tree, conds[i].span, rows)
        seen = bytes(buf)
        tree = parser.parse(seen, tree) if incremental else parser.parse(seen)
    errors = tuple(
        Span(n.start_byte, max(n.end_byte, n.start_byte + 1)) for n in error_nodes(tree)
    )
    masked_conds.sort(key=lambda mc: mc.conditional.span.start)
    return Source(path, text, seen, tree, macro_masks, pre, tuple(masked_conds), errors, number_tables,
                  frozenset(names_of_lexed(lexed)) if code_names else None)


_COMMENT_START = re.compile(rb"/[*/]")
_DIRECTIVE_COMMENT = re.compile(rb"/\*.*?(?:\*/|\Z)|//(?:\\\r?\n|[^\n])*", re.DOTALL)


def _blank_directive_comments(buf: bytearray, text: bytes, lexed: Lexed) -> None:
    """Comments inside directive lines, as spaces: tree-sitter-c ends a `#define`'s body at a
    block comment followed by a line continuation (`/* note */ \\`) and reads the rest of the
    body as code at file scope. Only the parser's copy changes; every offset stays."""
    for start, end in lexed.directives:
        if _COMMENT_START.search(text, start, end) is None:
            continue
        for m in _DIRECTIVE_COMMENT.finditer(text, start, end):
            if m.start() == start or _in_literal(text, start, m.start()) or not text[m.end():end].strip():
                continue  # a comment that ends the directive reads well (and a body of blanks would not)
            blank_in(buf, m.start(), min(m.end(), end))


def _in_literal(text: bytes, line_start: int, at: int) -> bool:
    """Whether `at` sits inside a string or character literal of the directive from `line_start`."""
    quote = None
    i = line_start
    while i < at:
        c = text[i]
        if quote is not None:
            if c == 0x5C:  # a backslash escapes the next byte
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in (0x22, 0x27):
            quote = c
        i += 1
    return quote is not None


# --------------------------------------------------------------------------- queries


@cache
def query(name: str | tuple[str, ...]) -> Query:
    """A query from porter/queries/<name>.scm, compiled once; several names make one query,
    whose captures cost one walk of the tree instead of one per file."""
    names = (name,) if isinstance(name, str) else name
    text = "\n".join(resources.files("porter.queries").joinpath(f"{n}.scm").read_text() for n in names)
    return Query(LANGUAGE, text)


def captures(node: Node, name: str | tuple[str, ...]) -> dict[str, list[Node]]:
    """Captures by name, each list in document order (outer nodes before the nodes inside them).

    tree-sitter returns them in an order that varies between runs (and not sorted by position),
    which would make the analysis depend on it: which of two `#if` alternative definitions of a
    function is read, say.
    """
    found = QueryCursor(query(name)).captures(node)
    for nodes in found.values():
        # By start, and of two nodes that start together the outer first: two stable sorts
        # with C-level keys cost less than one with a Python key.
        nodes.sort(key=_END, reverse=True)
        nodes.sort(key=_START)
    return found


_START, _END = attrgetter("start_byte"), attrgetter("end_byte")


@cache
def _types_query(types: tuple[str, ...]) -> Query:
    return Query(LANGUAGE, " ".join(f"({t}) @node" for t in types))


def descendants(node: Node, types: tuple[str, ...]) -> list[Node]:
    """The nodes of these types in `node` (itself included), in document order, as `walk`
    would give them: tree-sitter walks the tree, Python only sees the nodes asked for."""
    nodes = QueryCursor(_types_query(types)).captures(node).get("node", [])
    nodes.sort(key=_END, reverse=True)
    nodes.sort(key=_START)
    return nodes


def matches(node: Node, name: str) -> list[dict[str, list[Node]]]:
    return [m for _, m in QueryCursor(query(name)).matches(node)]


def walk(node: Node):
    """Every node below `node`, in document order."""
    cursor = node.walk()
    reached_root = False
    while not reached_root:
        yield cursor.node
        if cursor.goto_first_child():
            continue
        if cursor.goto_next_sibling():
            continue
        while True:
            if not cursor.goto_parent():
                reached_root = True
                break
            if cursor.node == node:
                reached_root = True
                break
            if cursor.goto_next_sibling():
                break
