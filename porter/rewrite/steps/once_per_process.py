"""once-per-process: a global that stays process-global and that init fills is filled once.

What: for an object global porter cannot move into module state (an exception the package's
installed header declares, say) and that the init function assigns (itself, or a helper only it
calls, such as `_datetime_exec(module)`), the assignment becomes `if (X == NULL) { X = ...; }`.

Why: single-phase init ran once per process; exec runs for every module object (a reload,
`importlib.util.module_from_spec`, each interpreter). Assigning the global again each time
leaks the previous object (an exception class, with its type) on every load.

Fix safety: safe. The module posture already says the global is shared; the first load's
object is the one every module object gets, as before the port.

Known problems: an assignment inside an expression (`if ((X = f()) == NULL)`) is left alone
and reported.
"""

from __future__ import annotations

from porter.model import GlobalKind, UseAccess
from porter.rewrite.emit import Emitter, StepResult
from porter.rewrite.plan import Plan
from porter.rewrite.planning.reach import key_order


class OncePerProcess:
    id = "once-per-process"

    def run(self, plan: Plan) -> StepResult:
        out = Emitter(self.id, plan)
        exec_phase = plan.exec_phase
        for key in sorted(plan.decisions.kept, key=key_order):
            g = plan.module.global_of(key)
            if not g.kind.is_object_kind or g.kind is GlobalKind.STATIC_TYPE or g.function is not None \
                    or plan.decisions.kept[key].code in ("interpreter-keyed", "first-load-namespace"):
                continue
            writes = [u for u in g.uses if u.function in exec_phase and u.access is UseAccess.WRITE
                      and not u.null_guarded]
            for u in writes:
                if u.statement is None:
                    out.todo(u.file, u.span, f"{g.name} is assigned on every load of the module inside an "
                                             "expression porter does not rewrite: assign it only while it is NULL",
                             code="kept-global-reassigned", subject=g.name)
                    continue
                layout = plan.layout(u.file)
                indent = layout.line_indent(u.statement.start)
                with out.about(("global", *key)):
                    out.insert(u.file, u.statement.start, f"if ({g.name} == NULL) {{\n{indent}    ")
                    out.insert(u.file, u.statement.end, f"\n{indent}}}")
                out.done(u.file, u.statement, f"{g.name} stays process-global, so exec fills it only on the first "
                                              "load: each load would otherwise leak the previous object",
                         key=("global", *key))
        return out.result
