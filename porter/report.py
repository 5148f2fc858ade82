"""Human-readable views of facts: the scan table, and (later) the porting checklist."""

from __future__ import annotations

import re
from collections import Counter

from porter.analyze.project import Analysis
from porter.model import GlobalKind, Severity
from porter.status import isolation_of

# Short names for the kinds a port moves, in the order the table shows them.
_SHORT = {
    GlobalKind.EXCEPTION: "exception",
    GlobalKind.CACHED_OBJECT: "cached",
    GlobalKind.LAZY_CACHE: "lazy",
    GlobalKind.OBJECT: "object",
    GlobalKind.TYPE_POINTER: "type-ptr",
    GlobalKind.MUTABLE_DATA: "mutable",
    GlobalKind.INIT_DATA: "init-data",
}


def scan_rows(analysis: Analysis) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    unparsed = {f.path: len(f.error_spans) for f in analysis.files}
    for m in analysis.modules:
        kinds = Counter(g.kind for g in m.globals)
        per_kind = ", ".join(f"{_SHORT[k]} {kinds[k]}" for k in _SHORT if kinds[k]) or "-"
        blockers = sum(1 for f in m.findings if f.severity is Severity.BLOCKER)
        risks = sum(1 for f in m.findings if f.severity is Severity.RISK)
        errors = sum(unparsed.get(p, 0) for p in m.files)
        state = isolation_of(m)
        rows.append((
            m.init.file, m.name, state.value if state is not None else m.init_style.value,
            str(len(m.static_types)), per_kind,
            f"{blockers}" + (f" (+{risks} risks)" if risks else ""), str(errors),
        ))
    in_modules = {p for m in analysis.modules for p in m.files}
    for p in analysis.problems:
        rows.append((p.file, "-", "not read", "-", "-", "-", p.reason))
    for f in analysis.files:
        if f.path not in in_modules and f.path.endswith(".c"):
            rows.append((f.path, "-", "no extension module", "-", "-", "-", str(len(f.error_spans))))
    return rows


def checklist(done, sources) -> str:
    """The Markdown report of a port, to paste into a pull request: porter's version and the
    status headline first, then per module what is left to a person (grouped by cause, every
    place listed, what to do), what needs review, what porter did, and the findings."""
    from porter import __version__
    from porter.codes import registry
    from porter.render import render
    from porter.status import summary_line

    codes = registry()

    def where(file, span):
        src = sources.get(file)
        return file if span is None or src is None else f"{file}:{src.line(span.start)}"

    outcomes = {o.module: o for o in done.outcomes}
    modules = []
    for mp in done.result.modules:
        m = mp.module
        names = _names_of(m)
        outcome = outcomes[m.name]
        items = sorted(mp.items, key=lambda i: (i.file, i.span.start if i.span else 0, i.step))
        patched = outcome.status.value not in ("failed", "already isolated", "not isolated")
        done_items = [i for i in items if i.done and i.applicability.value != "review" and patched]
        review = [i for i in items if i.done and i.applicability.value == "review" and patched]
        modules.append({
            "name": m.name,
            "files": [code_span(f) for f in m.files],
            "status": outcome.status.value,
            "reason": backticks(outcome.reason, names),
            "posture": (f"`{mp.posture.value}`" + (f" when `{mp.posture.condition}`, otherwise "
                                                     "`Py_MOD_PER_INTERPRETER_GIL_SUPPORTED`"
                                                     if mp.posture.condition else ""))
            if mp.posture is not None and patched else "",
            "posture_reasons": [backticks(r, names) for r in (mp.posture.reasons if mp.posture and patched else ())],
            "todo": _groups([i for i in items if not i.done], codes, where, names),
            "review": [_line(i, where, names) for i in review],
            "done": [_line(i, where, names) for i in done_items],
            "findings": [{"where": where(f.file, f.span), "code": f.code, "severity": f.severity.value,
                          "message": backticks(f.message, names)}
                         for f in m.findings if f.code != "unparsed"],
        })
    return render("report/checklist.md.jinja", version=__version__, summary=summary_line(done.outcomes),
                  modules=modules, problems=[{"file": code_span(p.file), "reason": p.reason}
                                             for p in done.result.problems])


def _line(item, where, names) -> dict:
    step = item.step + (" (unsafe)" if item.applicability.value == "unsafe" else "")
    return {"where": where(item.file, item.span), "step": step, "message": backticks(item.message, names)}


def _groups(items, codes, where, names) -> list[dict]:
    """Items left to a person, one group per cause: what it is, what to do, every place."""
    groups: dict[tuple[str, str], dict] = {}
    for it in items:
        code = codes.get(it.code or it.step)
        cause = it.message.split(": ", 1)[1] if it.message.startswith(f"{it.subject} stays global: ") else ""
        key = (it.code or it.step, cause)
        group = groups.setdefault(key, {
            "code": key[0],
            "title": backticks(f"stays process-global: {cause}" if cause else (code.summary if code else key[0]),
                               names),
            "todo": backticks(code.todo, names) if code is not None and code.todo else "",
            "places": [],
        })
        what = f"`{it.subject}`" if it.subject and cause else backticks(it.message, names)
        group["places"].append({"where": where(it.file, it.span), "what": what,
                                "applicability": it.applicability.value})
    return list(groups.values())


def _names_of(module) -> set[str]:
    """The module's own identifiers: these are set in code spans wherever a report says them."""
    names = {g.name for g in module.globals} | {f.name for f in module.functions}
    names |= {t.name for t in module.static_types} | {m.name for m in module.macros}
    return names


# A path (with its line), or an identifier with its member path, its call's arguments and a
# subscript: `f(PyObject *m)`, `a->b`, `T.__dict__['x']`.
_IDENTIFIER = re.compile(
    r"`[^`]*`"
    r"|/?(?:[\w.-]+/)*[\w-]+(?:\.[\w-]+)*\.(?:c|h|py|toml|cfg|inc)(?::\d+)?\b"
    r"|[A-Za-z_][A-Za-z0-9_]*(?:(?:->|\.)[A-Za-z_][A-Za-z0-9_]*)*(?:\([^()`]*\))?(?:\[[^\]`]*\])?")


def backticks(text: str, names: set[str]) -> str:
    """`text` with C identifiers in code spans: the module's own names, C-API names (Py*, _Py*),
    names with an underscore, calls `f()` and member paths `a.b`, `a->b`; text already in
    backticks stays as it is."""
    def mark(m: re.Match) -> str:
        word = m.group(0)
        if word.startswith("`"):
            return word
        if re.search(r"\.(?:c|h|py|toml|cfg|inc)(?::\d+)?$", word) and ("/" in word or ":" in word):
            return f"`{word}`"
        base = re.split(r"->|\.|\(", word)[0]
        if (base in names or word.endswith("()") or "_" in base or re.match(r"_?Py[A-Z_]", base)
                or ("->" in word or "." in word and not word.endswith("."))):
            return f"`{word}`"
        return word
    return _IDENTIFIER.sub(mark, text)


def code_span(text: str) -> str:
    return f"`{text}`"


def tree_rows(analysis: Analysis, ported) -> list[dict]:
    """One row per extension module of a tree: where it stands and what `porter port` would do.

    `ported` is the PortResult of the same analysis (planned and applied, not compiled).
    """
    from porter.rewrite.vocab import PortStatus
    from porter.status import isolation_of

    by_module = {id(mp.module): mp for mp in ported.modules}
    rows = []
    for m in analysis.modules:
        mp = by_module.get(id(m))
        kinds = Counter(g.kind for g in m.globals if g.kind.needs_port and g.kind is not GlobalKind.STATIC_TYPE)
        state = isolation_of(m)
        if mp is None or mp.status is PortStatus.NOTHING_TO_DO:
            plan = "-"
        elif mp.status is PortStatus.FAILED:
            plan = f"cannot: {mp.reason}"
        elif mp.kept:
            plan = f"partial: {len(mp.kept)} stay global"
        else:
            plan = "full"
        rows.append({
            "file": m.init.file, "module": m.name,
            "status": state.value if state is not None else m.init_style.value,
            "porter": plan,
            "static_types": len(m.static_types),
            "globals": {_SHORT.get(k, k.value): n for k, n in sorted(kinds.items())},
            "blockers": sum(1 for f in m.findings if f.severity is Severity.BLOCKER),
        })
    rows.sort(key=lambda r: (r["file"], r["module"]))
    return rows


def tree_markdown(rows: list[dict], summary: str) -> str:
    """The rows as a Markdown table with a totals line."""
    out = ["| file | module | status | porter | static types | globals to port | blockers |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        kinds = ", ".join(f"{k} {n}" for k, n in r["globals"].items()) or "-"
        out.append(f"| `{r['file']}` | `{r['module']}` | {r['status']} | {r['porter'].replace('|', '/')} | "
                   f"{r['static_types']} | {kinds} | {r['blockers']} |")
    totals = Counter(r["status"] for r in rows)
    plans = Counter(r["porter"].split(":")[0] for r in rows if r["porter"] != "-")
    out.append("")
    out.append(f"{summary}. Static types: {sum(r['static_types'] for r in rows)}; globals to port: "
               f"{sum(sum(r['globals'].values()) for r in rows)}; by status: "
               + ", ".join(f"{n} {s}" for s, n in sorted(totals.items()))
               + ("; porter would port: " + ", ".join(f"{n} {p}" for p, n in sorted(plans.items())) if plans else ""))
    return "\n".join(out) + "\n"
