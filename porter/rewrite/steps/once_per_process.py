"""once-per-process: what init did once per process, exec does on the first load only.

A global that stays process-global and that init fills is filled once; a call that acts on the
whole process (`Py_AtExit(f)`) is made once, behind an atomic first-load test; a library's
once-guard (`if (!ready) { lib_init(); ready = 1; }`) and a statement that sets kept C data
(`JS_NewClassID(&id);`) run holding a process-wide lock, the latter behind a flag of its own.

What: for an object global porter cannot move into module state (an exception the package's
installed header declares, say) and that the init function assigns (itself, or a helper only it
calls, such as `_datetime_exec(module)`), the assignment becomes `if (X == NULL) { X = ...; }`.

Why: single-phase init ran once per process; exec runs for every module object (a reload,
`importlib.util.module_from_spec`, each interpreter). Assigning the global again each time
leaks the previous object (an exception class, with its type) on every load.

Fix safety: safe. The module posture already says the global is shared; the first load's
object is the one every module object gets, as before the port.

`Py_AtExit(f)` made on every load would run `f` once per load at exit (and fill the process's
table of 32 exit functions); single-phase init made it once. The test is atomic because
interpreters with their own GIL may load the module at the same time.

A pacing counter that stays (`static int count; if (++count == 10000) { malloc_trim(0); count = 0; }`
in an allocator callback: only incremented, reset and compared) becomes `_Atomic`, so that two
interpreters counting at once cannot step over the limit; the plain declaration stays under `#if`
for compilers without C11 atomics (MSVC), where the module claims a shared GIL only.

Known problems: an assignment inside an expression (`if ((X = f()) == NULL)`) is left alone
and reported.
"""

from __future__ import annotations

from collections.abc import Callable

from porter.model import GlobalKind, Location, UseAccess
from porter.render import render
from porter.rewrite.emit import Emitter, StepResult
from porter.rewrite.plan import Plan
from porter.rewrite.planning.posture import NO_C11_ATOMICS, atomic_counters
from porter.rewrite.planning.reach import key_order


class OncePerProcess:
    id = "once-per-process"

    def run(self, plan: Plan) -> StepResult:
        out = Emitter(self.id, plan)
        _atomic_pacing_counters(out, plan)
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
        _first_load_only(out, plan)
        if plan.once_locks or plan.init_once:
            _lock_guards(out, plan)
        _set_once(out, plan)
        _guards_left_to_a_person(out, plan)
        return out.result


def _guards_left_to_a_person(out: Emitter, plan: Plan) -> None:
    """A once-guard porter cannot hold the lock around (an early exit inside, or in a helper)
    stays as it is: once per process, as single-phase init ran it. With a GIL per interpreter
    two first loads could pass the test together: a person makes it thread-safe before the
    module claims that."""
    safe = set(plan.once_locks) | set(plan.once_locked_already)
    for g in plan.module.globals:
        if g.kind is GlobalKind.ONCE_GUARD and not (g.once_guard_statements and set(g.once_guard_statements) <= safe):
            out.todo(g.file, g.span, f"{g.name} makes the C library calls it guards happen once per process and "
                                     "stays process-global: make that test thread-safe (a lock, or a once "
                                     "primitive) before claiming Py_MOD_PER_INTERPRETER_GIL_SUPPORTED",
                     code="once-guard", subject=g.name)


def _first_load_only(out: Emitter, plan: Plan) -> None:
    """`Py_AtExit(f);` becomes `if (<mod>_first_load()) { Py_AtExit(f); }`, with the atomic
    first-load test (one per call) defined before the function that makes the call."""
    for call in plan.once_calls:
        name = plan.names.first_load[(call.file, call.call.start)]
        _define_before(out, plan, call.file, call.function, render("c/first_load.c.jinja", first_load=name),
                       ("first-load", name), -20)
        _surround(out, plan, Location(call.file, call.statement), "first-load", *_first_load_test(name))
        out.done(call.file, call.statement, f"{call.callee}() acts on the whole process: exec makes the call on the "
                                            "module's first load only, as the init function did once per process",
                 key=("first-load", call.file, call.statement.start))


def _first_load_test(name: str) -> tuple[Callable[[str], str], Callable[[str], str]]:
    """What goes before and after a statement made on the first load only."""
    def before(i: str) -> str:
        return f"if ({name}()) {{\n{i}    "

    def after(i: str) -> str:
        return f"\n{i}}}"
    return before, after


def _lock_guards(out: Emitter, plan: Plan) -> None:
    """`if (!ready) {...}` in exec runs holding the module's once-lock: the first load to take it
    initialises the library, the others wait for it and then skip."""
    name = plan.names.once_lock
    assert plan.exec_function is not None
    exec_file = plan.module.function(plan.exec_function).file  # type: ignore[union-attr]
    flags = sorted(plan.names.once_flags.values())
    _define_before(out, plan, exec_file, plan.exec_function,
                   render("c/once_lock.c.jinja", once_lock=name, flags=flags), ("once-lock",), -19)
    for loc in plan.once_locks:
        _surround(out, plan, loc, "once-lock",
                  lambda i: f"if ({name}() == NULL) {{\n{i}    PyErr_NoMemory();\n{i}    return -1;\n{i}}}\n"
                            f"{i}PyThread_acquire_lock({name}(), WAIT_LOCK);\n{i}",
                  lambda i: f"\n{i}PyThread_release_lock({name}());")
        out.done(loc.file, loc.span, "a once-per-process initialisation guard: exec runs it holding a process-wide "
                                     "lock, so two interpreters loading the module at once initialise the library "
                                     "once", key=("once-lock", loc.file, loc.span.start))


def _define_before(out: Emitter, plan: Plan, file: str, function: str, text: str, key: tuple, order: int) -> None:
    """A helper's definition, on the lines before `function`."""
    f = plan.module.function(function)
    assert f is not None
    with out.about(key):
        out.insert(file, plan.layout(file).line_start(f.span.start), text, order=order)


def _surround(out: Emitter, plan: Plan, loc: Location, key: str, before: Callable[[str], str],
              after: Callable[[str], str]) -> None:
    """Text before and after a statement, made for its indentation."""
    indent = plan.layout(loc.file).line_indent(loc.span.start)
    with out.about((key, loc.file, loc.span.start)):
        out.insert(loc.file, loc.span.start, before(indent), order=-10)
        out.insert(loc.file, loc.span.end, after(indent), order=10)


def _set_once(out: Emitter, plan: Plan) -> None:
    """`JS_NewClassID(&class_id);` in exec, for a global that stays process-global: run on the
    first load of the process only, holding the once-lock, as the init function ran it."""
    for item in plan.init_once:
        before, after = _once_under_lock(plan.names.once_lock, plan.names.once_flags[(item.file, item.statement.start)])
        _surround(out, plan, Location(item.file, item.statement), "set-once", before, after)
        out.done(item.file, item.statement, f"{item.global_name} stays process-global and this statement sets it: exec "
                                            "runs it on the first load of the process only, holding a process-wide "
                                            "lock, as the init function ran it once",
                 key=("set-once", item.file, item.statement.start))


def _once_under_lock(lock: str, flag: str) -> tuple[Callable[[str], str], Callable[[str], str]]:
    """What goes before and after a statement that runs once per process, under the lock."""
    def before(i: str) -> str:
        return (f"if ({lock}() == NULL) {{\n{i}    PyErr_NoMemory();\n{i}    return -1;\n{i}}}\n"
                f"{i}PyThread_acquire_lock({lock}(), WAIT_LOCK);\n{i}if (!{flag}) {{\n{i}    ")

    def after(i: str) -> str:
        return f"\n{i}    {flag} = 1;\n{i}}}\n{i}PyThread_release_lock({lock}());"
    return before, after


def _atomic_pacing_counters(out: Emitter, plan: Plan) -> None:
    """A pacing counter that stays process-global becomes `_Atomic`, where the compiler has C11
    atomics: interpreters with their own GIL may count at the same time (analyze.pacing_counters)."""
    for key in sorted(atomic_counters(plan.module, plan.decisions.kept), key=key_order):
        g = plan.module.global_of(key)
        layout = plan.layout(g.file)
        declaration = layout.text[g.declaration.start:g.declaration.end].decode()
        # `static T c = 0;` alone on its line (analyze.pacing_counters).
        atomic = "static _Atomic" + declaration[len("static"):]
        indent = layout.line_indent(g.declaration.start)
        with out.about(("global", *key)):
            out.insert(g.file, layout.line_start(g.declaration.start), f"#if {NO_C11_ATOMICS}\n", order=-10)
            out.insert(g.file, g.declaration.end, f"\n#else\n{indent}{atomic}\n#endif", order=10)
        out.done(g.file, g.span, f"{g.name} only paces work across the process (it is incremented, reset and "
                                 "compared): it stays process-global and becomes _Atomic, so that interpreters with "
                                 "their own GIL count without a data race", key=("global", *key))
