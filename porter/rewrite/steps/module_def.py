"""module-def: the `PyModuleDef` gets slots, state size and GC hooks; `PyInit_` returns it.

What: after the exec function porter emits the state's traverse/clear/free functions, the
`PyModuleDef_Slot` table (`Py_mod_exec`; `Py_mod_multiple_interpreters`, guarded for 3.12+;
`Py_mod_gil = Py_MOD_GIL_USED`, guarded for 3.13+; in CPython's own tree, unguarded and only
the slots that tree's version has) and the definition itself with designated
fields and `m_size = sizeof(<mod>_state)`. The old definition goes (a definition written through
a project macro such as MOD_DEF too). `PyInit_<mod>` becomes `return PyModuleDef_Init(&def);`.

When exec fills the dict of a static type that stays static (`T.tp_dict`: _datetime's
`timezone.utc`, _decimal's `__module__`), the slot's exec is `<mod>_exec_once`: it runs exec the
first time, keeps a copy of the namespace that made, and gives each later load those names.

Why: `PyModuleDef_Init` is what makes an extension multi-phase; the slot table is where it
says it supports isolated subinterpreters. Single-phase init ran once per process and a
re-import copied the first module's dict; exec runs on every load, and running it again would
replace what the static type holds (`timezone.utc` stops being the object the C code returns)
and remake what init keeps in process-global tables (_decimal's signal exceptions).

Fix safety: safe. The multiple-interpreters slot claims per-interpreter GIL support only when
nothing mutable stays process-global (see the report's posture line).
"""

from __future__ import annotations

from porter import capi
from porter.analyze.initializers import is_null, referenced_name
from porter.model import InitStyle, ModuleDef, Span
from porter.render import render
from porter.rewrite import cbuild
from porter.rewrite.emit import Emitter, StepResult
from porter.rewrite.plan import Plan
from porter.rewrite.planning.posture import NOT_SUPPORTED, PER_INTERPRETER_GIL, SHARED_GIL_ONLY


class ModuleDefinition:
    id = "module-def"

    def run(self, plan: Plan) -> StepResult:
        out = Emitter(self.id, plan)
        module, names = plan.module, plan.names
        d, body = module.definition, module.init_body
        if module.init_style is InitStyle.MULTI_PHASE:
            if d is not None and body is not None:
                with out.about(("module",)):
                    _continue(out, plan, d)
            return out.result
        if d is None or body is None:
            out.fail("no-module-def", "porter found no PyModuleDef for the init function")
            return out.result
        with out.about(("module",)):
            objects = _gc_names(plan)
            fields = [
                ("m_name", _value(d, "m_name", '"' + module.name + '"')),
                ("m_doc", _value(d, "m_doc", "NULL")),
                ("m_size", f"sizeof({names.state_type})" if plan.fields else _size(d)),
                ("m_methods", _value(d, "m_methods", "NULL")),
                ("m_slots", names.slots),
            ]
            if objects:
                fields += [("m_traverse", names.traverse), ("m_clear", names.clear), ("m_free", names.free)]
            else:
                for name in ("m_traverse", "m_clear", "m_free"):
                    value = _value(d, name, "NULL")
                    if name == "m_free" and names.last_module:
                        fields.append((name, names.free))  # it forgets the module exec kept
                    elif value != "NULL":
                        fields.append((name, value))
            # The definition is deleted where it was and written again after exec.
            if not any(s.overlaps(d.span) for s in body.create_statements):
                out.delete_statement(d.file, d.span)
            # Declared `extern` in a shared header by state-struct: the definition must not be static.
            shared = plan.placement is not None and plan.placement.shared_header
            storage = "" if shared or (not d.is_static and d.macro is None) else "static "
            worker_is_init = module.init.worker is None
            # No exec of porter's (none at all, or init's own worker): PyInit stays where it is,
            # after the slots and the definition.
            delegate = plan.exec_delegate
            init_stays = plan.exec_is_noop or delegate is not None
            # The generated functions call the old ones by name: `(freefunc)module_free` -> module_free.
            old = {}
            for name in ("m_traverse", "m_clear", "m_free"):
                value = _value(d, name, "NULL") if objects or (name == "m_free" and names.last_module) else "NULL"
                old[name] = None if is_null(value) else (referenced_name(value) or value)
            text = render(
                "c/module_tail.c.jinja",
                old_traverse=old["m_traverse"], old_clear=old["m_clear"], old_free=old["m_free"],
                object_fields=objects, field_guards=_gc_guards(plan),
                state_type=names.state_type, state_var=names.state_var,
                get_state=names.get_state, traverse=names.traverse, clear=names.clear,
                free=names.free, slots=names.slots, exec=delegate or (None if init_stays else names.exec),
                posture=plan.posture.value,
                exec_once=names.exec_once, first_namespace=names.first_namespace, filled=plan.exec_once,
                posture_condition=plan.posture.condition,
                multiple_interpreters_guard=plan.guard("Py_mod_multiple_interpreters"),
                runtime_slots=_runtime_slots(plan),
                gil_slot=plan.targets("Py_mod_gil"), gil_guard=plan.guard("Py_mod_gil"),
                def_storage=storage, def_name=names.def_name, def_fields=fields,
                pyinit=module.init.name if worker_is_init and not init_stays else None,
                last_module=names.last_module, last_module_interp=names.last_module_interp,
                last_module_definitions=bool(names.last_module) and shared,
            )
            if init_stays:
                out.insert(body.file, body.header.start, text.strip("\n") + "\n\n", order=10)
            else:
                out.insert(body.file, body.body.end, "\n\n" + text.strip("\n"), order=10)
            if not worker_is_init or init_stays:
                out.edit(module.init.file, module.init.body, cbuild.return_module_def(
                    names.def_name, _runtime_slots_call(plan)))
        at_import = " (filled in at import on CPython 3.12+: the build's limited API does not name it)" \
            if _runtime_slots(plan) else ""
        slots = ("" if plan.exec_is_noop else "Py_mod_exec, ") \
            + f"Py_mod_multiple_interpreters = {plan.posture.value}{at_import}" \
            + (", Py_mod_gil = Py_MOD_GIL_USED" if plan.targets("Py_mod_gil") else "")
        named = "".join(f"; named as the build compiles this file ({macro} = {value}): a build that defines "
                        f"{macro} otherwise needs {module.init.name} renamed"
                        for macro, value in module.init.implied_defines)
        if plan.exec_once and (not init_stays or delegate):
            out.done(body.file, body.header,
                     f"{delegate or names.exec}() fills the dicts of static types that stay process-global "
                     f"({', '.join(plan.exec_once)}): "
                     f"the Py_mod_exec slot is {names.exec_once}(), which runs it once per process and gives each "
                     "later load the names the first load made, as single-phase init's re-import did",
                     key=("module",))
        out.done(body.file, body.header,
                 f"{module.init.name}() returns PyModuleDef_Init(&{names.def_name}); slots: {slots}{named}",
                 key=("module",))
        _thread_entries_left(out, plan)
        return out.result


def _thread_entries_left(out: Emitter, plan: Plan) -> None:
    """What stands between the claim and a GIL per interpreter: Python entered from threads
    the module starts, which only a person can give their interpreter."""
    for f in plan.module.findings:
        if f.code == "foreign-thread":
            out.todo(f.file, f.span, f"{f.message}; the port claims {plan.posture.value}",
                     key=("thread-entry", f.file, f.span.start), code=f.code, subject=f.function or "")


def _runtime_slots(plan: Plan) -> dict | None:
    """An abi3 build whose Py_LIMITED_API predates Py_mod_multiple_interpreters fills the slot
    at import on CPython 3.12+ (templates/c/runtime_slots.c.jinja)."""
    if plan.has("Py_mod_multiple_interpreters"):
        return None
    guard = capi.version_guard("Py_mod_multiple_interpreters")
    return {"function": plan.names.runtime_slots, "guard": f"defined(Py_LIMITED_API) && !({guard})",
            "slot": capi.STABLE_ABI_NUMBERS["Py_mod_multiple_interpreters"],
            "value": capi.STABLE_ABI_NUMBERS[plan.posture.value],
            "per_interpreter_gil": capi.STABLE_ABI_NUMBERS["Py_MOD_PER_INTERPRETER_GIL_SUPPORTED"]}


def _runtime_slots_call(plan: Plan) -> str | None:
    runtime = _runtime_slots(plan)
    if runtime is None:
        return None
    return f"#if {runtime['guard']}\n    {runtime['function']}();\n#endif"


def _gc_names(plan: Plan) -> list[str]:
    """The state's object fields for traverse and clear; an array of objects as `name[]`."""
    return [f.name + ("[]" if "[" in f.decl else "") for f in plan.fields if f.is_object]


def _gc_conditions(plan: Plan) -> dict[str, str]:
    """The build condition of each object field declared only for some builds, by `_gc_names` name."""
    return {f.name + ("[]" if "[" in f.decl else ""): f.guard for f in plan.fields if f.is_object and f.guard}


def _gc_guards(plan: Plan) -> dict[str, str]:
    """`#ifdef X` lines for those fields' lines in traverse and clear."""
    return {name: cbuild.if_directive(c) for name, c in _gc_conditions(plan).items()}


def _each(macro: str, field: str) -> str:
    """`Py_VISIT(field);`, or a loop over an array of objects (`field[]`)."""
    if not field.endswith("[]"):
        return f"{macro}({field});"
    array = field[:-2]
    return f"for (size_t i = 0; i < sizeof({array}) / sizeof({array}[0]); i++) {{ {macro}({array}[i]); }}"


def _value(d: ModuleDef, name: str, default: str) -> str:
    f = d.field(name)
    return f.text.strip() if f is not None and f.text.strip() else default


def _size(d: ModuleDef) -> str:
    value = _value(d, "m_size", "0")
    return "0" if value.replace(" ", "") in ("-1", "(-1)") else value


def _continue(out: Emitter, plan: Plan, d: ModuleDef) -> None:
    """A module multi-phase already: the state's new fields get into its GC functions, the
    definition gets the state's size, and the slot table the multiple-interpreters slot."""
    module, names = plan.module, plan.names
    objects = _gc_names(plan)
    changed: dict[str, str] = {}
    if plan.fields and names.new_struct:
        changed["m_size"] = f"sizeof({names.state_type})"
    made = []
    for field, macro, fresh in (("m_traverse", "Py_VISIT", names.traverse), ("m_clear", "Py_CLEAR", names.clear)):
        if not objects:
            break
        existing = module.function_in(d.file, referenced_name(_value(d, field, "NULL")) or "") \
            if not is_null(_value(d, field, "NULL")) else None
        if existing is not None and existing.params and existing.params[0].name:
            # Its own function visits (clears) the new fields too, first thing.
            layout = plan.layout(existing.file)
            indent = layout.body_indent(existing.body)
            param = existing.params[0].name
            conditions = _gc_conditions(plan)
            lines = "".join("\n" + cbuild.guarded(f"{indent}{_each(macro, f'{names.get_state}({param})->{name}')}",
                                                  conditions.get(name))
                            for name in objects)
            out.insert(existing.file, existing.body.start + 1, lines, order=-6)
        elif existing is None:
            changed[field] = fresh
            made.append(field[2:])
        else:
            out.todo(d.file, d.span, f"{field} {existing.name}() must also handle the state's new objects "
                                     f"{', '.join(objects)}", code="state-gc-incomplete", subject=existing.name)
    if objects and is_null(_value(d, "m_free", "NULL")) and "m_clear" not in changed:
        clear = referenced_name(_value(d, "m_clear", "NULL")) or names.clear
        changed["m_free"] = names.free
        free = render("c/state_gc.c.jinja", made=["free"], object_fields=objects, field_guards=_gc_guards(plan),
                      state_type=names.state_type, state_var=names.state_var, get_state=names.get_state,
                      traverse=names.traverse, clear=clear,
                      free=names.free, old_traverse=None, old_clear=None, old_free=None)
    else:
        free = ""
    if "m_clear" in changed:
        made.append("free")
        changed["m_free"] = names.free
    _add_slots(out, plan, d)
    if not changed:
        return
    gc = render("c/state_gc.c.jinja", made=made, object_fields=objects, field_guards=_gc_guards(plan),
                state_type=names.state_type, state_var=names.state_var, get_state=names.get_state,
                traverse=names.traverse, clear=names.clear,
                free=names.free, old_traverse=None, old_clear=None, old_free=None) if made else ""
    given = ", ".join(sorted(changed))
    fields = [(f.name, f.text.strip()) for f in d.fields if f.name != "m_base"]
    fields = [(name, changed.pop(name, value)) for name, value in fields] + sorted(changed.items())
    text = render("c/module_def.c.jinja", def_storage="static " if d.is_static else "", def_name=names.def_name,
                  def_fields=fields)
    out.edit(d.file, d.span, (gc + free).strip("\n") + ("\n\n" if gc or free else "") + text.strip("\n"),
             supersedes=True)
    out.done(d.file, d.span, f"{names.def_name} gets {given} for the state's new fields", key=("module",))


def _add_slots(out: Emitter, plan: Plan, d: ModuleDef) -> None:
    """The multiple-interpreters slot (and Py_mod_gil) in the module's own slot table."""
    module = plan.module
    present = {slot for slot, _ in module.module_slots}
    slots = d.field("m_slots")
    table = next((g for g in module.globals if slots is not None and g.name == referenced_name(slots.text)
                  and g.table_rows), None)
    if table is None:
        return
    if _lower_claim(out, plan, table):
        _thread_entries_left(out, plan)
    rows = []
    if "Py_mod_multiple_interpreters" not in present:
        rows.append((plan.guard("Py_mod_multiple_interpreters"),
                     f"{{Py_mod_multiple_interpreters, {plan.posture.value}}},"))
    if "Py_mod_gil" not in present and plan.targets("Py_mod_gil"):
        rows.append((plan.guard("Py_mod_gil"), "{Py_mod_gil, Py_MOD_GIL_USED},"))
    if not rows:
        return
    sentinel = table.table_rows[-1]
    layout = plan.layout(table.file)
    indent = layout.line_indent(sentinel.start)
    out.insert(table.file, layout.line_start(sentinel.start),
               "".join(f"#if {guard}\n{indent}{row}\n#endif\n" if guard else f"{indent}{row}\n" for guard, row in rows))
    added = [row.split(",")[0].lstrip("{") for _, row in rows]
    said = [f"Py_mod_multiple_interpreters = {plan.posture.value}" if a == "Py_mod_multiple_interpreters"
            else "Py_mod_gil = Py_MOD_GIL_USED" for a in added]
    out.done(table.file, table.span, f"{table.name} declares " + " and ".join(said), key=("module",))


# Py_mod_multiple_interpreters values, weakest claim first.
_CLAIMS = (NOT_SUPPORTED, SHARED_GIL_ONLY, PER_INTERPRETER_GIL)


def _lower_claim(out: Emitter, plan: Plan, table) -> bool:
    """A slot row that claims more than holds (a GIL per interpreter, when the module enters
    Python from threads of its own) is given the claim that does hold."""
    claimed = dict(plan.module.module_slots).get("Py_mod_multiple_interpreters")
    wanted = plan.posture.value
    # Only a claim the code disproves: a weaker posture can also come from what porter cannot
    # tell (a build condition), where the module's own choice of value stands.
    if not any(f.code == "foreign-thread" for f in plan.module.findings):
        return False
    if claimed not in _CLAIMS or wanted not in _CLAIMS or plan.posture.condition is not None \
            or _CLAIMS.index(claimed) <= _CLAIMS.index(wanted):
        return False
    layout = plan.layout(table.file)
    for row in table.table_rows:
        text = layout.text[row.start:row.end]
        if b"Py_mod_multiple_interpreters" not in text or text.count(claimed.encode()) != 1:
            continue
        at = row.start + text.index(claimed.encode())
        out.edit(table.file, Span(at, at + len(claimed)), wanted)
        out.done(table.file, row, f"{table.name} claimed {claimed}, which does not hold: "
                 + "; ".join(plan.posture.reasons[:2]) + f"; it now declares {wanted}", key=("module",))
        return True
    return False
