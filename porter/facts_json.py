"""Facts as JSON for other tools: the versioned `porter-scan` document (schema in porter/schema/)."""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import encode_basestring_ascii as _quote  # the C function when there is one
from typing import Any

from porter.analyze.project import Analysis
from porter.model import ExtensionModule, Global, Location, Span, StaticType
from porter.parse import Source, SourceText

SCHEMA = "porter-scan/1"


def analysis_to_json(analysis: Analysis) -> dict[str, Any]:
    sources = analysis.sources

    def pos(file: str, span: Span) -> dict[str, Any]:
        src = sources.get(file)
        if src is None:
            return {"file": file, "line": None}
        line, col = src.line_col(span.start)
        return {"file": file, "line": line, "column": col}

    def loc(location: Location) -> dict[str, Any]:
        return pos(location.file, location.span)

    return {
        "schema": SCHEMA,
        "files": [
            {
                "path": f.path,
                "lines": f.lines,
                "includes": list(f.includes),
                "macro_masks": f.macro_masks,
                "masked_conditionals": f.masked_conditionals,
                "unparsed": [_span_lines(sources[f.path], s) for s in f.error_spans],
            }
            for f in analysis.files
        ],
        "modules": [_module(m, pos, loc) for m in analysis.modules],
        "problems": [{"file": p.file, "reason": p.reason} for p in analysis.problems],
    }


def _span_lines(src: Source | SourceText, span: Span) -> dict[str, int]:
    line, col = src.line_col(span.start)
    end_line, end_col = src.line_col(max(span.start, span.end - 1))
    return {"line": line, "column": col, "end_line": end_line, "end_column": end_col}


def _module(m: ExtensionModule, pos, loc) -> dict[str, Any]:
    d = m.definition
    fields = {f.name: f.text for f in d.fields} if d else {}
    return {
        "name": m.name,
        "files": list(m.files),
        "init_style": m.init_style.value,
        "init": {
            "function": m.init.name,
            **pos(m.init.file, m.init.span),
            "worker": m.init.worker,
            "macro_header": m.init.macro_header,
            "create_calls": [c.callee for c in m.init.create_calls],
        },
        "definition": None if d is None else {
            "name": d.name, **pos(d.file, d.span), "function": d.function, "macro": d.macro,
            "fields": fields,
        },
        "m_size": fields.get("m_size"),
        "methods": fields.get("m_methods"),
        "slots": fields.get("m_slots"),
        "traverse": fields.get("m_traverse"),
        "clear": fields.get("m_clear"),
        "free": fields.get("m_free"),
        "static_types": [_type(t, pos, loc) for t in m.static_types],
        "globals": [_global(g, pos, loc) for g in m.globals],
        "functions": [
            {
                "name": f.name, **pos(f.file, f.span), "roles": [str(r) for r in f.roles], "static": f.is_static,
                "params": [p.name for p in f.params],
                "calls": sorted({c.callee for c in f.calls}),
                "address_taken": [loc(x) for x in f.address_taken],
            }
            for f in m.functions
        ],
        "findings": [
            {"code": x.code, "severity": x.severity.value, **pos(x.file, x.span),
             "function": x.function, "message": x.message}
            for x in m.findings
        ],
    }


def _type(t: StaticType, pos, loc) -> dict[str, Any]:
    return {
        "name": t.name,
        **pos(t.file, t.span),
        "initializer": "none" if t.initializer is None else ("positional" if t.positional else "designated"),
        "slots": {s.name: s.text for s in t.slots},
        "substructs": {field: var for field, var in t.substructs},
        "substruct_slots": {s.name: s.text for s in t.substruct_slots},
        "tables": {field: var for field, var in t.tables},
        "forward_declarations": [loc(x) for x in t.forward_declarations],
        "conditional": t.conditional,
        "structseq": t.structseq,
        "metatype": t.metatype,
        "static": t.is_static,
    }


def _global(g: Global, pos, loc) -> dict[str, Any]:
    return {
        "name": g.name,
        "function": g.function,
        "kind": g.kind.value,
        "needs_port": g.kind.needs_port,
        **pos(g.file, g.span),
        "type": g.type_text,
        "static": g.is_static,
        "const": g.is_const,
        "reason": g.reason,
        "uses": [
            {**pos(u.file, u.span), "function": u.function, "access": u.access.value, "macro": u.macro}
            for u in g.uses
        ],
        "extern_declarations": [loc(x) for x in g.extern_declarations],
    }


def dumps(doc: Any) -> str:
    """`json.dumps(doc, indent=2)`: the same characters (see `dump`)."""
    parts: list[str] = []
    dump(doc, parts.append)
    return "".join(parts)


def dump(doc: Any, write: Callable[[str], object], chunk: int = 1 << 14) -> None:
    """Write `json.dumps(doc, indent=2)` in pieces of about `chunk` lines: the same characters,
    in a third of the time and without the whole text in memory at once. With an indent, `json`
    encodes in Python through a generator per level; here one recursive walk appends every
    line whole, and strings are quoted by `json`'s own C function."""
    parts: list[str] = []
    append = parts.append

    def value(o: Any, newline: str) -> None:
        if isinstance(o, str):
            append(_quote(o))
        elif o is None:
            append("null")
        elif o is True:
            append("true")
        elif o is False:
            append("false")
        elif isinstance(o, int):
            append(int.__repr__(o))
        elif isinstance(o, dict):
            mapping(o, newline)
        elif isinstance(o, list | tuple):
            array(o, newline)
        else:
            append(json.dumps(o))  # a float, or what json refuses as it would refuse it

    def mapping(o: dict, newline: str) -> None:
        if not o:
            append("{}")
            return
        inner = newline + "  "
        sep = "{" + inner
        for k, v in o.items():
            if type(k) is not str:
                k = _key(k)
            t = type(v)
            if t is str:
                append(f"{sep}{_quote(k)}: {_quote(v)}")
            elif t is int:
                append(f"{sep}{_quote(k)}: {int.__repr__(v)}")
            else:
                append(f"{sep}{_quote(k)}: ")
                value(v, inner)
            sep = "," + inner
        append(newline + "}")
        flush()

    def array(o: list | tuple, newline: str) -> None:
        if not o:
            append("[]")
            return
        inner = newline + "  "
        sep = "[" + inner
        for v in o:
            t = type(v)
            if t is str:
                append(sep + _quote(v))
            elif t is int:
                append(sep + int.__repr__(v))
            else:
                append(sep)
                value(v, inner)
            sep = "," + inner
        append(newline + "]")
        flush()

    def flush() -> None:
        if len(parts) >= chunk:
            write("".join(parts))
            parts.clear()

    value(doc, "\n")
    write("".join(parts))


def _key(key: Any) -> str:
    """A key as `json` writes one that is not a string."""
    if isinstance(key, int | float) or key is None:
        return json.dumps(key)  # true, 1, 1.5, null
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")
