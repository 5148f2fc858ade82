"""Human-readable views of facts: the scan table, and (later) the porting checklist."""

from __future__ import annotations

from collections import Counter

from porter.analyze.project import Analysis
from porter.model import GlobalKind, Severity

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
        rows.append((
            m.init.file, m.name, m.init_style.value, str(len(m.static_types)), per_kind,
            f"{blockers}" + (f" (+{risks} risks)" if risks else ""), str(errors),
        ))
    in_modules = {p for m in analysis.modules for p in m.files}
    for p in analysis.problems:
        rows.append((p.file, "-", "not read", "-", "-", "-", p.reason))
    for f in analysis.files:
        if f.path not in in_modules and f.path.endswith(".c"):
            rows.append((f.path, "-", "no extension module", "-", "-", "-", str(len(f.error_spans))))
    return rows


def checklist(result, sources) -> str:
    """The Markdown checklist of a port: what porter did and what is left, with file:line."""
    from porter.render import render

    def where(file, span):
        src = sources.get(file)
        if span is None or src is None:
            return file
        return f"{file}:{src.line(span.start)}"

    modules = []
    for mp in result.modules:
        m = mp.module
        items = sorted(mp.items, key=lambda i: (i.file, i.span.start if i.span else 0, i.step))
        modules.append({
            "name": m.name,
            "files": list(m.files),
            "status": mp.status,
            "reason": mp.reason,
            "posture": (mp.posture.value if not mp.posture.condition else
                        f"{mp.posture.value}` when `{mp.posture.condition}`, otherwise "
                        "`Py_MOD_PER_INTERPRETER_GIL_SUPPORTED") if mp.status == "ported" else "",
            "posture_reasons": list(mp.posture.reasons) if mp.posture else [],
            "done": [{"where": where(i.file, i.span),
                      "step": i.step + (f" ({i.applicability.value})" if i.applicability.value in ("unsafe", "review")
                                        else ""),
                      "message": i.message}
                     for i in items if i.done and mp.status == "ported"],
            "todo": [{"where": where(i.file, i.span), "step": i.step, "message": i.message,
                      "applicability": i.applicability.value}
                     for i in items if not i.done],
            "findings": [{"where": where(f.file, f.span), "code": f.code,
                          "severity": f.severity.value, "message": f.message}
                         for f in m.findings if f.code != "unparsed"],
        })
    return render("report/checklist.md.jinja", modules=modules,
                  problems=[{"file": p.file, "reason": p.reason} for p in result.problems])
