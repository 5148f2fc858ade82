"""File-scope tables of global addresses that one function reads: they become that function's locals.

`static struct {char *name; PyObject **exc;} table[] = {{"m.Error", &Error}, ...};`, read
only in `add_errors()`, or `{"Point", &PointType}` read by a loop that readies the types:
the rows name globals at file scope, where no module state exists, so those globals could
not move. Declared in the function instead (without `static`: an automatic array may hold
`&state->Error`), the table is built on each call from the state the function reaches, and
its uses count as that function's.

The same table declared `static` inside the function that reads it (`static PyTypeObject
*all_types[] = {&A, &B, NULL};` in init) only drops `static`: a table nothing writes reads
the same whether it is kept between calls or built on each one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from porter.model import ExtensionModule, Global, Span, Use, UseAccess
from porter.rewrite.layout import FileLayout

_STATIC = re.compile(rb"static\s+")
_TAGGED = re.compile(rb"(?:const\s+)?(?:struct|union|enum)\s+\w+\s*\{")


@dataclass(frozen=True)
class LocalTable:
    """A table that moves into the one function that reads it."""

    table: Global
    function: str  # the function key it moves into
    file: str
    body_start: int  # the `{` of that function's body
    storage: Span  # the `static ` the local declaration drops
    in_place: bool = False  # already a local of that function: it only drops `static`


def local_tables(module: ExtensionModule, layouts: dict[str, FileLayout]) -> tuple[LocalTable, ...]:
    """The file-scope tables whose rows name globals porter may move, read by subscript only
    and only in one function defined below them in the same file."""
    named = _globals_named_in_initializers(module)
    out = []
    for g in module.globals:
        if not (g.function is None and g.is_static and not g.kind.needs_port and "[" in g.type_text
                and g.initializer is not None and g.declarator_count == 1 and not g.alternatives
                and g.condition is None and named.get(g.key)):
            continue
        readers = {u.function for u in g.uses}
        if len(readers) != 1 or None in readers:
            continue
        f = module.function(readers.pop() or "")
        if f is None or f.file != g.file or f.span.start < g.declaration.end:
            continue
        text = layouts[g.file].text
        if not all(u.access is UseAccess.READ and not u.unparsed and _subscripted(text, u.span.end)
                   for u in g.uses):
            continue  # the table's address could outlive the call
        storage = _STATIC.match(text, g.declaration.start)
        if storage is None or _TAGGED.match(text, storage.end()):
            continue  # a tag defined here (`struct row {...} table[]`) may be named elsewhere
        out.append(LocalTable(table=g, function=f.name, file=g.file, body_start=f.body.start,
                              storage=Span(storage.start(), storage.end())))
    out.extend(_static_local_tables(module, layouts, named))
    return tuple(out)


def _static_local_tables(module: ExtensionModule, layouts: dict[str, FileLayout],
                         named: dict[tuple[str | None, str], bool]) -> list[LocalTable]:
    """`static` array locals whose rows name globals porter may move, read by subscript only in
    their own function, and never written."""
    out = []
    for g in module.globals:
        if not (g.function is not None and g.is_static and "[" in g.type_text and g.initializer is not None
                and g.declarator_count == 1 and not g.alternatives and g.condition is None
                and not g.unread_uses and named.get(g.key)):
            continue
        f = module.function(g.function)
        text = layouts[g.file].text
        if f is None or f.file != g.file or not all(
                u.function == g.function and u.file == g.file and u.access is UseAccess.READ and not u.unparsed
                and u.macro is None and _subscripted(text, u.span.end) and not _address_taken(text, u.span.start)
                for u in g.uses):
            continue
        storage = _STATIC.match(text, g.declaration.start)
        if storage is None or _TAGGED.match(text, storage.end()):
            continue
        out.append(LocalTable(table=g, function=f.name, file=g.file, body_start=f.body.start,
                              storage=Span(storage.start(), storage.end()), in_place=True))
    return out


def in_table(tables: tuple[LocalTable, ...], u: Use) -> LocalTable | None:
    """The local table whose rows hold this use."""
    for t in tables:
        init = t.table.initializer
        if init is not None and u.file == t.file and init.start <= u.span.start < init.end:
            return t
    return None


def relocate_uses(module: ExtensionModule, tables: tuple[LocalTable, ...]) -> ExtensionModule:
    """The module as planning sees it: a use in a moving table's rows is a use in its function,
    in no `static` initialiser; a static local table that drops `static` is no global."""
    if not tables:
        return module
    locals_ = {t.table.key for t in tables if t.in_place}
    changed = []
    for g in module.globals:
        if g.key in locals_:
            continue
        uses = tuple(replace(u, function=t.function, static_initializer=None)
                     if (t := in_table(tables, u)) and (u.function is None or t.in_place) else u
                     for u in g.uses)
        changed.append(replace(g, uses=uses) if uses != g.uses else g)
    return replace(module, globals=tuple(changed))


def _globals_named_in_initializers(module: ExtensionModule) -> dict[tuple[str | None, str], bool]:
    """Table key -> whether a global that needs a port is named in its initialiser."""
    spans: dict[str, list[tuple[Span, tuple[str | None, str]]]] = {}
    for g in module.globals:
        if g.initializer is not None and "[" in g.type_text and (g.function is None or g.is_static):
            spans.setdefault(g.file, []).append((g.initializer, g.key))
    out: dict[tuple[str | None, str], bool] = {}
    for g in module.globals:
        if not g.kind.needs_port:
            continue
        for u in g.uses:
            if u.access is UseAccess.MACRO or (u.function is not None and u.static_initializer is None):
                continue  # in a function, only a static local's initialiser can hold it
            for span, key in spans.get(u.file, ()):
                if span.start <= u.span.start < span.end and (key[0] is None) == (u.function is None):
                    out[key] = True
    return out


def _address_taken(text: bytes, start: int) -> bool:
    """`&table[i]`: a row's address, which could outlive an automatic table."""
    return text[max(0, start - 40):start].rstrip().endswith(b"&")


def _subscripted(text: bytes, end: int) -> bool:
    """`table[i]`: the use is followed by a subscript."""
    rest = text[end:end + 40].lstrip()
    return rest.startswith(b"[")
