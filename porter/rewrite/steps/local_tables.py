"""local-table: a file-scope table of global addresses read by one function moves into it.

What: `static struct {const char *name; PyObject **exc;} table[] = {{"m.Error", &Error}, ...};`
(or `{"Point", &PointType}` rows a loop readies and adds), read only by subscript in one
function: the declaration leaves file scope and opens that function's body, without `static`,
after its `state` local; its rows name the state's fields (`&state->Error`, `state->PointType`).

Why: the rows name the globals by address in a constant initialiser, where no module state
exists, so those globals could not move. An automatic array may hold run-time addresses: built
on each call from the module the function was given, it points into that module's state.

Fix safety: safe. Planning only moves a table that is never written, is read by subscript only
(its address cannot outlive the call) and only in one function defined below it in the same
file; the function reads the same rows as before, for its own module.

Known problems: the table is built on every call (a few stores per row); a table read by two
functions, or whose address escapes, keeps the globals it names global.
"""

from __future__ import annotations

from porter.rewrite.emit import Emitter, StepResult
from porter.rewrite.plan import Plan
from porter.rewrite.planning.tables import LocalTable, in_table
from porter.rewrite.steps.state_access import use_text


class LocalTables:
    id = "local-table"

    def run(self, plan: Plan) -> StepResult:
        out = Emitter(self.id, plan)
        for t in plan.local_tables:
            g = t.table
            layout = plan.layout(t.file)
            # The rows' uses of moved globals, as state-access would write them, in reverse order.
            edits = sorted((use_text(plan, u, f) for f in plan.fields if f.source is not None
                            for u in f.source.uses if in_table(plan.local_tables, u) is t),
                           key=lambda e: e[0].start, reverse=True)
            function = plan.module.function(t.function)
            assert function is not None
            if t.in_place:
                with out.about(("global", t.table.function, g.name)):
                    out.edit(t.file, t.storage, "")
                    for span, new in edits:
                        out.edit(t.file, span, new)
                out.done(t.file, g.declaration, f"{g.name} names {_named(plan, t)} in its rows: no longer `static`, "
                                                "it is built from the module's state on each call",
                         key=("global", t.table.function, g.name))
                continue
            text = layout.text[t.storage.end:g.declaration.end]
            for span, new in edits:
                text = (text[:span.start - t.storage.end] + new.encode()
                        + text[span.end - t.storage.end:])
            indent = layout.body_indent(function.body)
            local = "\n".join(indent + line if line.strip() else line
                              for line in text.decode("utf-8", "replace").split("\n"))
            with out.about(("global", None, g.name)):
                out.edit(t.file, layout.whole_lines(g.declaration), "")
                out.insert(t.file, t.body_start + 1, "\n" + local, order=-4)
            out.done(t.file, g.declaration, f"{g.name} names {_named(plan, t)} in its rows: it is now a local of "
                                            f"{function.c_name}(), built from the module's state on each call",
                     key=("global", None, g.name))
        return out.result


def _named(plan: Plan, table: LocalTable) -> str:
    """The moved globals a table's rows name."""
    return ", ".join(sorted({f.name for f in plan.fields if f.source is not None
                             for u in f.source.uses if in_table(plan.local_tables, u) is table}))

