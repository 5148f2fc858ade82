"""state-access: every use of a moved global becomes an access through module state.

What: each function that uses a moved global gets a `state` pointer, chosen by its role:
module-level functions from their module argument, type methods, getters, setters and slots
from `PyType_GetModuleByDef(Py_TYPE(self), &def)`, `tp_new` from its type argument, binary
number slots from whichever operand is the module's, and helpers from a new `state` parameter
passed by their callers. Uses become `state->name`; macros that name a global use `state` too.

Why: the global is gone (state-struct); its value now lives in the module object.

Fix safety: safe. Where no safe access exists (a callback whose signature a C library fixes,
a function porter cannot tie to the module), the global does not move and the report says why.
Edits in a macro body whose every expansion porter did not see, and in #if branches porter did
not read, need review.

Known problems: `PyType_GetModuleByDef` walks the MRO: a lookup added to a hot slot costs on
every call; the report lists those places with cheaper alternatives.
"""

from __future__ import annotations

import posixpath

from porter import capi
from porter.model import (
    CallEndKind,
    FindModuleUse,
    FindModuleWant,
    Function,
    GlobalKind,
    Macro,
    Span,
    UnreadUse,
    Use,
    UseAccess,
    UseShape,
)
from porter.rewrite import cbuild
from porter.rewrite.emit import Emitter, StepResult
from porter.rewrite.plan import Plan
from porter.rewrite.planning.access import Access
from porter.rewrite.planning.fields import StateField
from porter.rewrite.planning.getset_closures import is_closure_use, moved_rows
from porter.rewrite.planning.guards import NDEBUG_ONLY
from porter.rewrite.planning.own_type import freed_through_own_type
from porter.rewrite.planning.tables import in_table
from porter.rewrite.steps.heap_types import made_with_module
from porter.rewrite.steps.state_struct import global_key
from porter.rewrite.vocab import AccessKind

# The member porter adds to a callback's user-data struct: the state its caller hands over.
USER_DATA_FIELD = "module_state"


class StateAccess:
    id = "state-access"

    def run(self, plan: Plan) -> StepResult:
        out = Emitter(self.id, plan)
        if not plan.fields and not plan.module.find_module_uses:
            return out.result
        _declare_state(out, plan)
        _publish_for_callbacks(out, plan)
        _carry_in_user_data(out, plan)
        _pass_state_to_helpers(out, plan)
        _pass_state_through_slots(out, plan)
        _pass_module(out, plan)
        _check_instances_by_type(out, plan)
        _pass_state_in_unread_branches(out, plan)
        _report_conditional_macros(out, plan)
        _rewrite_uses(out, plan)
        _closures_as_offsets(out, plan)
        _prefix_paste_chains(out, plan)
        _drop_finders(out, plan)
        _replace_find_module(out, plan)
        _rewrite_macros(out, plan)
        return out.result


def _declare_state(out: Emitter, plan: Plan) -> None:
    """A `state` in every function that needs one: a declaration, a parameter, or a split."""
    d, names = plan.decisions, plan.names
    fns = {f.name: f for f in plan.module.functions}
    by_macro: dict[str, list[tuple[Function, Access]]] = {}
    for name, keys in sorted(d.needs.items()):
        if not keys or name not in fns:
            continue
        f, acc = fns[name], d.access[name]
        if name in d.module_passing.helpers:
            continue  # _pass_module: it gets the module and reads the state from it
        if f.defined_by:
            by_macro.setdefault(f.defined_by, []).append((f, acc))
            continue
        if acc.kind is AccessKind.HELPER:
            _add_parameter(out, plan, f)
            continue
        if acc.kind is AccessKind.SPLIT:
            _split(out, plan, f, acc)
            continue
        if name == plan.exec_function:
            continue  # the exec step declares it at the top of exec
        expr = _state_expression(plan, acc, f)
        if expr is None:
            continue
        with out.about(("function", name)):
            first = f.params[0] if f.params else None
            if first is not None and first.name is None and first.unused_span is not None \
                    and acc.params and acc.params[0] == first.unused_name:
                # `PyObject *Py_UNUSED(self)`: the parameter is used now.
                out.edit(f.file, first.unused_span, first.unused_name)
            layout = plan.layout(f.file)
            declaration = cbuild.state_declaration(names.state_type, names.state_var, expr)
            if name in d.local_guards:
                # Read only under a condition (`#ifdef X`, assert()): no lookup, and no unused
                # variable, in the builds without it.
                text = "\n" + cbuild.guarded(layout.body_indent(f.body) + declaration, d.local_guards[name])
            else:
                text = "\n" + layout.body_indent(f.body) + declaration
            # User data the function checks for NULL is read past that check (and its comment).
            out.insert(f.file, _line_end_after(layout, acc.after) if acc.after else f.body.start + 1, text,
                       order=-5)
            for alternative in f.alternatives:  # its definitions in other #if branches, alike
                out.insert(f.file, alternative.body.start + 1, "\n" + layout.body_indent(alternative.body)
                           + text.lstrip("\n").lstrip(), order=-5)
        gc_slots = sorted(f.slots & capi.GC_SLOTS)
        if gc_slots and d.local_guards.get(name) != NDEBUG_ONLY:
            out.todo(f.file, f.header, f"{name}() ({', '.join(gc_slots)}) now looks module state up; at interpreter "
                                       "shutdown it can run after the module is gone: prefer data kept in the instance",
                     step="gc-slot-lookup", subject=name)
        hot = sorted(f.slots & capi.HOT_SLOTS)
        if acc.kind in (AccessKind.TYPE, AccessKind.BINARY) and hot:
            out.todo(f.file, f.header, f"{name}() ({', '.join(hot)}) now looks module state up on every call "
                                       "with PyType_GetModuleByDef; if it is hot, store the state pointer in the "
                                       "instance when it is created, or use METH_METHOD's defining_class",
                     step="hot-path-lookup", subject=name)
    for macro, members in sorted(by_macro.items()):
        _macro_functions(out, plan, macro, members)


def _line_end_after(layout, at: int) -> int:
    """The end of the line `at` is on when only a comment (or nothing) follows it there."""
    end = layout.text.find(b"\n", at)
    rest = layout.text[at:end if end != -1 else len(layout.text)].strip()
    return end if end != -1 and (not rest or rest.startswith((b"/*", b"//"))) else at


def _state_expression(plan: Plan, acc: Access, f: Function | None = None) -> str | None:
    n = plan.names
    if acc.kind is AccessKind.MODULE:
        module = acc.params[0]
        return f"{n.get_state}((PyObject *){module})" if module in plan.untyped_module_params \
            else f"{n.get_state}({module})"
    if acc.kind is AccessKind.TYPE:
        return f"{n.get_state_by_type}(Py_TYPE({acc.params[0]}))"
    if acc.kind is AccessKind.DEFINING_CLASS:
        return f"{n.get_state_by_cls}({acc.params[0]})"
    if acc.kind is AccessKind.NEW:
        declared = next((p.type_text for p in f.params if p.name == acc.params[0]), "") if f is not None else ""
        if declared and "PyTypeObject" not in declared:
            # `static PyObject *T_new(PyObject *cls, ...)`, cast in its slot.
            return f"{n.get_state_by_type}((PyTypeObject *){acc.params[0]})"
        return f"{n.get_state_by_type}({acc.params[0]})"
    if acc.kind is AccessKind.CLASS:
        return f"{n.get_state_by_type}((PyTypeObject *){acc.params[0]})"
    if acc.kind is AccessKind.BINARY:
        return f"{n.get_state_by_operands}((PyObject *){acc.params[0]}, (PyObject *){acc.params[1]})"
    if acc.kind is AccessKind.CALLBACK:
        return n.callback_state
    if acc.kind is AccessKind.USER_DATA:
        return f"(({acc.types[0]} *){acc.params[0]})->{USER_DATA_FIELD}"
    return None


def _module_expression(plan: Plan, acc: Access) -> str:
    if acc.kind is AccessKind.EXEC:
        return plan.names.exec_param
    if acc.kind is AccessKind.MODULE:
        return acc.params[0]
    if acc.kind is AccessKind.TYPE:
        return cbuild.module_of_type(plan, f"Py_TYPE({acc.params[0]})")
    if acc.kind is AccessKind.CLASS:
        return cbuild.module_of_type(plan, f"(PyTypeObject *){acc.params[0]}")
    if acc.kind is AccessKind.DEFINING_CLASS:
        return f"PyType_GetModule({acc.params[0]})"
    return cbuild.module_of_type(plan, acc.params[0])


def _macro_functions(out: Emitter, plan: Plan, macro_name: str, members) -> None:
    """Functions a macro defines share its body: one state declaration, in the macro."""
    exprs = {_state_expression(plan, acc) for _, acc in members}
    if len(exprs) != 1 or None in exprs:
        out.fail("macro-functions-differ", f"functions defined by macro {macro_name} reach module state in "
                                           "different ways")
        return
    m = next(m for m in plan.module.macros if m.name == macro_name)
    brace = next((t for t in m.tokens if t.text == b"{"), None)
    if brace is None:
        out.fail("macro-functions-unreadable", f"cannot find the body of the functions macro {macro_name} defines")
        return
    names = plan.names
    with out.about(("macro", m.name)):
        expr = exprs.pop() or ""
        out.insert(m.file, brace.end, " " + cbuild.state_declaration(names.state_type, names.state_var, expr))
        for callee, tok, paren, empty in m.called():
            if callee in plan.decisions.helpers:
                _pass_state(out, plan, m.file, callee, tok.start, paren.end, empty)
    out.done(m.file, m.span, f"macro {macro_name} defines {', '.join(f.name for f, _ in members)}: "
                             f"its body declares `{names.state_var}` for all of them", key=("macro", m.name))


def _split(out: Emitter, plan: Plan, f: Function, acc: Access) -> None:
    """A method also called directly: `f_impl(state, ...)` does the work, `f` finds the state."""
    impl, names = plan.names.impl[f.name], plan.names
    layout = plan.layout(f.file)
    assert f.name_span is not None
    with out.about(("function", f.name)):
        out.edit(f.file, f.name_span, impl)
        _add_parameter(out, plan, f, prototypes=False)
        params = ", ".join(p.type_text for p in f.params)
        header = layout.text_of(Span(f.header.start, f.name_span.start)).replace("\n", " ").strip()
        if acc.params:
            args = ", ".join([f"{names.get_state}({acc.params[0]})"] + [p.name or "" for p in f.params])
            wrapper = cbuild.split_wrapper(header, f.c_name, params, impl, args)
        else:
            # Exported on purpose: outside code calls it by its symbol, with no module to give.
            args = ", ".join([names.state_var] + [p.name or "" for p in f.params])
            wrapper = cbuild.exported_wrapper(
                header, f.c_name, params, impl, args,
                cbuild.state_declaration(names.state_type, names.state_var, f"{names.state_of_interpreter}()"),
                names.state_var)
        out.insert(f.file, f.span.end, "\n\n" + wrapper)
        for proto in f.prototypes:
            if proto.name_span is None or proto.param_list is None:
                continue
            text = plan.layout(proto.file).text_of(proto.span)
            at_name = proto.name_span.start - proto.span.start
            at_params = proto.param_list.start + 1 - proto.span.start
            state_param = _state_param(plan, proto.file, proto.span.start) + ", "
            renamed = (text[:at_name] + impl + text[at_name + len(f.c_name):at_params] + state_param
                       + text[at_params:])
            if plan.state_tagged and plan.names_state_early(proto.file, proto.span.start):
                _declare_state_tag(out, plan, proto.file, proto.span.start)
            out.insert(proto.file, proto.span.end, "\n" + renamed)
    if acc.params:
        what = f"{f.name}() is a module method that other functions also call directly"
        finds = "finds the state for it"
    else:
        what = f"{f.name}() is exported for code outside the module to call by its symbol"
        finds = "keeps its signature and finds the state of the module the calling interpreter imported"
    out.done(f.file, f.header, f"{what}: {impl}(state, ...) does the work and {f.name}() {finds}",
             key=("function", f.name))


def _state_param(plan: Plan, file: str, offset: int) -> str:
    """`X_state *st`; in a header above the state, `struct X_state *st` after a `struct X_state;`."""
    if plan.state_tagged and plan.names_state_early(file, offset):
        return f"struct {plan.names.state_type} *{plan.names.state_var}"
    return f"{plan.names.state_type} *{plan.names.state_var}"


def _declare_state_tag(out: Emitter, plan: Plan, file: str, before: int) -> None:
    """`struct X_state;` at file scope above a header's first prototype that names it (one per
    header: the same insertion asked twice is one edit)."""
    prototypes = [p.span.start for f in plan.module.functions for p in f.prototypes if p.file == file
                  and (f.name in plan.decisions.helpers or f.name in plan.names.impl)]
    first = min([at for at in prototypes if plan.names_state_early(file, at)]
                + [loc.span.start for slot in plan.ported_slots for loc in slot.statements if loc.file == file],
                default=before)
    layout = plan.layout(file)
    out.insert(file, layout.line_start(first), f"struct {plan.names.state_type};\n", order=-30)


def _add_parameter(out: Emitter, plan: Plan, f: Function, prototypes: bool = True, param: str = "") -> None:
    """A new first parameter: the state (`param` says another)."""
    lists = [(f.file, f.param_list)] + [(f.file, a.param_list) for a in f.alternatives]
    if prototypes:
        lists += [(p.file, p.param_list) for p in f.prototypes]
    with out.about(("function", f.name)):
        for file, plist in lists:
            if plist is None:
                continue
            text = param or _state_param(plan, file, plist.start)
            if not param and plan.state_tagged and plan.names_state_early(file, plist.start):
                _declare_state_tag(out, plan, file, plist.start)
            inner = plan.layout(file).text[plist.start + 1:plist.end - 1]
            if inner.strip() in (b"", b"void"):
                out.edit(file, Span(plist.start + 1, plist.end - 1), text)
            else:
                out.insert(file, plist.start + 1, text + ", ")
    if not f.is_static and f.name not in plan.names.impl:  # a split one keeps its signature
        what = "the module" if param else "a state parameter"
        out.done(f.file, f.header, f"{f.name}() has external linkage and now takes {what}: "
                                   "code outside these files that calls it must pass one", key=("function", f.name))


def _pass_state(out: Emitter, plan: Plan, file: str, name: str, name_start: int, at: int, empty: bool) -> None:
    """A call of a helper gets the caller's state as its first argument (inserted at `at`),
    and a split function's call its `_impl` name."""
    if name in plan.names.impl:
        out.edit(file, Span(name_start, name_start + len(name)), plan.names.impl[name])
    var = plan.names.state_var
    out.insert(file, at, var if empty else f"{var}, ")


def _carry_in_user_data(out: Emitter, plan: Plan) -> None:
    """A callback handed its caller's local as user data reads the state from it: the local's
    struct gets a member for the state, and each caller sets it before the call."""
    d = plan.decisions
    structs: set[str] = set()
    done: set = set()
    for f in plan.module.functions:
        acc = d.access.get(f.name)
        if acc is None or acc.kind is not AccessKind.USER_DATA or not d.needs.get(f.name):
            continue
        structs.add(acc.types[0])
        for site in f.sync_callback_sites:
            carrier = site.carrier
            loc = site.statement
            if carrier is None or (loc, carrier.variable) in done:
                continue
            done.add((loc, carrier.variable))
            indent = plan.layout(loc.file).line_indent(loc.span.start)
            with out.about(("callback", f.name)):
                _brace(out, plan, loc, site.ends)
                out.insert(loc.file, loc.span.start,
                           f"{carrier.variable}.{USER_DATA_FIELD} = {plan.names.state_var};\n{indent}", order=-5)
            out.done(loc.file, loc.span, f"{site.caller}() hands its state to {f.name}() in "
                                         f"{carrier.variable}.{USER_DATA_FIELD}, the user data it passes to "
                                         f"{site.library}()", key=("callback", f.name))
    for struct in sorted(structs):
        name = struct.split()[-1]
        definition = next((t for t in plan.module.type_definitions if t.name == name), None)
        if definition is None:
            continue  # access planning only chooses user data whose struct it can see
        layout = plan.layout(definition.file)
        text = layout.text[definition.statement.start:definition.statement.end]
        close = definition.statement.start + text.rfind(b"}")
        start = layout.line_start(close)
        if layout.text[start:close].strip():
            out.insert(definition.file, close, f" void *{USER_DATA_FIELD}; ")
        else:
            indent = layout.line_indent(layout.line_start(max(start - 1, 0))) or "    "
            out.insert(definition.file, start, f"{indent}void *{USER_DATA_FIELD};  /* {plan.names.state_type} */\n")
        out.done(definition.file, definition.statement, f"{struct} carries the module state to the callbacks "
                                                        f"it is user data of ({USER_DATA_FIELD})")


def _brace(out: Emitter, plan: Plan, loc, ends) -> None:
    """Braces around a statement that is a body or a label's statement on its own (a BRACE
    end), before statements go in front of it."""
    for end in ends:
        if end.kind is not CallEndKind.BRACE:
            continue
        layout = plan.layout(loc.file)
        outer = layout.line_indent(end.owner)
        start = layout.line_start(end.at)
        if layout.text[start:end.at].strip():
            out.insert(loc.file, end.at, "{ ", order=-10)  # `if (x) call(h);` on one line
            out.insert(loc.file, end.close, " }", order=10)
        else:
            out.insert(loc.file, start, f"{outer}{{\n", order=-10)
            out.insert(loc.file, end.close, f"\n{outer}}}", order=10)


def _publish_for_callbacks(out: Emitter, plan: Plan) -> None:
    """Callbacks made by qsort(), PyArg_Parse converters and the like read the state their
    caller published in a thread-local around the call."""
    d, names = plan.decisions, plan.names
    published: set = set()
    for f in plan.module.functions:
        acc = d.access.get(f.name)
        if acc is None or acc.kind is not AccessKind.CALLBACK or not d.needs.get(f.name):
            continue
        for site in f.sync_callback_sites:
            loc = site.statement
            if loc in published:
                continue  # another callback in the same struct, handed over by the same call
            published.add(loc)
            layout = plan.layout(loc.file)
            indent = layout.line_indent(loc.span.start)
            saved, cb = names.saved_callback_state(len(published)), names.callback_state
            with out.about(("callback", f.name)):
                _brace(out, plan, loc, site.ends)
                out.insert(loc.file, loc.span.start,
                           cbuild.publish_state(names.state_type, saved, cb, names.state_var, indent))
                for end in site.ends:
                    if end.kind is CallEndKind.AFTER:
                        out.insert(loc.file, end.at, f"\n{indent}{cb} = {saved};")
                    elif end.kind is CallEndKind.OPEN:  # the start of a branch of the `if` that made the call
                        inner = layout.body_indent(Span(end.at - 1, end.at - 1))
                        out.insert(loc.file, end.at, f"\n{inner}{cb} = {saved};")
                    elif end.kind is CallEndKind.WRAP:  # a one-statement branch: braces around the restore and it
                        inner = layout.line_indent(end.close - 1)
                        out.insert(loc.file, end.at, f" {{\n{inner}{cb} = {saved};", order=5)
                        # Before the restore after the statement, which ends at the same byte.
                        out.insert(loc.file, end.close, f"\n{indent}}}", order=-1)
            out.done(loc.file, loc.span, f"{site.caller}() publishes its state in the thread-local {cb} while "
                                         f"{site.library}() calls {f.name}() back", key=("callback", f.name))


def _pass_state_to_helpers(out: Emitter, plan: Plan) -> None:
    d = plan.decisions
    for f in plan.module.functions:
        if not d.needs.get(f.name) or f.defined_by:
            continue
        with out.about(("function", f.name)):
            for call in f.calls:
                if call.callee in d.helpers or call.callee in plan.names.impl:
                    if call.args:
                        _pass_state(out, plan, f.file, call.callee, call.span.start, call.args[0].start, False)
                    elif call.arg_list is not None:
                        _pass_state(out, plan, f.file, call.callee, call.span.start, call.arg_list.end - 1, True)


def _pass_state_through_slots(out: Emitter, plan: Plan) -> None:
    """A callback slot whose functions take the state: its signature takes it first too, and
    every call through it passes the caller's (planning.callback_slots)."""
    for slot in plan.ported_slots:
        key = ("callback-slot", slot.name)
        with out.about(key):
            for loc, statement in zip(slot.param_lists, slot.statements, strict=True):
                # By its tag, declared above: the state struct may come later, and may hold
                # the struct the slot is a field of.
                text = f"{plan.names.state_type} *{plan.names.state_var}"
                if plan.state_tagged:
                    text = "struct " + text
                    _declare_state_tag(out, plan, loc.file, statement.span.start)
                inner = plan.layout(loc.file).text[loc.span.start + 1:loc.span.end - 1]
                if inner.strip() in (b"", b"void"):
                    out.edit(loc.file, Span(loc.span.start + 1, loc.span.end - 1), text)
                else:
                    out.insert(loc.file, loc.span.start + 1, text + ", ")
            for call in slot.calls:
                _pass_state(out, plan, call.file, "", call.span.start, call.at, call.empty)
            for store in slot.stores:
                if store.function in plan.names.impl:  # split: the slot holds the function that takes the state
                    out.edit(store.location.file, store.location.span, plan.names.impl[store.function])
        functions = ", ".join(f"{plan.names.impl.get(name, name)}()" for name in slot.functions)
        where = slot.param_lists[0] if slot.param_lists else None
        if where is not None:
            out.done(where.file, where.span, f"the callback slot {slot.name} ({', '.join(slot.fields)}) takes the "
                                             f"state first: {functions} take it, and the {len(slot.calls)} calls "
                                             "through it pass their caller's", key=key)


def _pass_module(out: Emitter, plan: Plan) -> None:
    """Functions made from the module's tables with a NULL `self` get the module instead; the
    helpers on the way to where they are made get it from their callers (planning.module_object)."""
    d, names = plan.decisions, plan.names
    passing = d.module_passing
    if not passing.sites and not passing.makers and not passing.helpers:
        return
    fns = {f.name: f for f in plan.module.functions}

    def module_of(name: str) -> str:
        return names.module_param if name in passing.helpers else _module_expression(plan, d.access[name])

    for name in sorted(passing.helpers):
        f = fns[name]
        with out.about(("function", name)):
            _add_parameter(out, plan, f, param=f"PyObject *{names.module_param}")
            if d.needs.get(name):
                expr = f"{names.get_state}({names.module_param})"
                for body in (f.body, *(a.body for a in f.alternatives)):
                    out.insert(f.file, body.start + 1, "\n" + plan.layout(f.file).body_indent(body)
                               + cbuild.state_declaration(names.state_type, names.state_var, expr), order=-5)
    for f in plan.module.functions:
        calls = [c for c in f.calls if c.callee in passing.helpers]
        with out.about(("function", f.name)):
            for call in calls:
                at, empty = (call.args[0].start, False) if call.args else (
                    call.arg_list.end - 1 if call.arg_list is not None else None, True)
                if at is not None:
                    out.insert(f.file, at, module_of(f.name) if empty else f"{module_of(f.name)}, ")
    for maker in passing.makers:
        with out.about(("function", maker.function)):
            made_with_module(out, maker.file, maker.call, maker.args, maker.creator, module_of(maker.function))
        out.done(maker.file, maker.call, f"{maker.function}() makes its type with the module ({maker.creator} -> "
                                         "PyType_FromModuleAndSpec), which its callers pass it: the type's methods "
                                         "and slots find module state through it", key=("function", maker.function))
    for site in passing.sites:
        with out.about(("function", site.function)):
            out.edit(site.file, site.self_arg, module_of(site.function))
        out.done(site.file, site.call, f"{site.api}() in {site.function}() makes {', '.join(site.functions)} with "
                                       "the module as `self` (was NULL): they reach module state from it, as "
                                       "the module's own functions do", key=("function", site.function))


def _check_instances_by_type(out: Emitter, plan: Plan) -> None:
    """`T_Check(op)` in a function that reaches no state asks the module that made op's type
    (planning.instance_checks)."""
    fields = {f.key: f for f in plan.fields}
    names = plan.names
    for check in plan.decisions.instance_checks:
        field = fields.get((None, check.type_name))
        if field is None:
            continue  # the type stays static: the check is as it was
        obj = plan.layout(check.file).text_of(check.object)
        text = f"{names.instance_of}({obj}, offsetof({names.state_type}, {field.name}), {int(check.exact)})"
        with out.about(("function", check.function)):
            out.edit(check.file, check.span, text, supersedes=True)
        out.done(check.file, check.span, f"{check.function}() reaches no module state: it checks its object against "
                                         f"{check.type_name} in the state of the module that made the object's type",
                 key=("function", check.function))


def _pass_state_in_unread_branches(out: Emitter, plan: Plan) -> None:
    """The same calls in #if branches porter did not read, edited on the tokens."""
    d = plan.decisions
    for f in plan.module.functions:
        if f.name not in d.helpers and f.name not in plan.names.impl:
            continue
        for call in f.unread_calls:
            if call.caller is None or not d.needs.get(call.caller):
                continue
            loc = call.location
            key = ("unread-call", loc.file, loc.span.start)
            with out.about(key):
                _pass_state(out, plan, loc.file, f.name, loc.span.start, loc.span.end, call.empty)
            out.done(loc.file, loc.span, f"{call.caller}() passes its state to {f.name}() in an #if branch porter "
                                         "did not read (edited on the tokens: check that configuration builds)",
                     key=key)


def _report_conditional_macros(out: Emitter, plan: Plan) -> None:
    """Macros defined only under a condition porter cannot evaluate are left as they are."""
    unsure_files = dict(plan.module.file_conditions)
    for m in plan.module.macros:
        if m.active is not None and m.file not in unsure_files:
            continue
        called = sorted({name for name, *_ in m.called() if name in plan.decisions.helpers})
        if called:
            cond = unsure_files.get(m.file) or "its #if"
            out.todo(m.file, m.span, code="macro-under-unknown-condition", subject=m.name, message=
                     f"macro {m.name} (only under {cond}) calls {', '.join(called)}(), which now "
                                     "take the module state first: that configuration needs it passed by hand")


def _rewrite_uses(out: Emitter, plan: Plan) -> None:
    for f in plan.fields:
        g = f.source
        if g is None:
            continue
        with out.about(global_key(f)):
            for u in g.uses:
                if u.access not in (UseAccess.MACRO, UseAccess.MACRO_PASTE) \
                        and in_table(plan.local_tables, u) is None \
                        and not freed_through_own_type(u, g, plan.module) \
                        and not is_closure_use(plan.module, u):
                    # (the local-table and heap-type steps rewrite those, and _closures_as_offsets
                    # a getset row's closure)
                    _rewrite_use(out, plan, u, f)
        for uu in g.unread_uses:
            if uu.function is None:
                continue  # vetoed: the global stays
            key = ("unread-use", uu.file, uu.span.start)
            with out.about(key):
                out.edit(uu.file, *use_text(plan, uu, f))
            out.done(uu.file, uu.span, f"{uu.function}() reaches {g.name} through its state in an #if branch porter "
                                       "did not read (edited on the tokens: check that configuration builds)", key=key)


def _closures_as_offsets(out: Emitter, plan: Plan) -> None:
    """Getset rows whose closure was a moved global's address carry its offset in the state,
    and their getters and setters read the field at that offset of their own state."""
    fields = {f.key[1]: f for f in plan.fields if f.key[0] is None and f.source is not None}
    rows = moved_rows(plan.module, set(fields))
    names = plan.names
    done: set[tuple[str, Span]] = set()
    for row in rows:
        key = ("global", row.global_name)
        field = fields[row.global_name]
        with out.about(key):
            if row.macro is not None and row.macro_file is not None:
                if (row.macro_file, row.closure) not in done:
                    done.add((row.macro_file, row.closure))
                    # The macro's parameter names the field: every row it spells is a moved global's.
                    param = plan.layout(row.macro_file).text[row.closure.start:row.closure.end].decode().lstrip("&")
                    out.edit(row.macro_file, row.closure, f"(void *)offsetof({names.state_type}, {param.strip()})")
            else:
                out.edit(row.file, row.closure, f"(void *)offsetof({names.state_type}, {field.name})")
        out.done(row.file, row.use, f"the getset row naming {row.global_name} as its closure gives its offset in "
                                    f"{names.state_type} instead: its getter reads the field from its own state",
                 key=key)
    for file in sorted({row.macro_file or row.file for row in rows}):
        _include_stddef(out, plan, file)
    functions = {name for row in rows for name in (row.getter, row.setter) if name}
    for reads in plan.module.closure_reads:
        if reads.function not in functions:
            continue
        layout = plan.layout(reads.file)
        with out.about(("function", reads.function)):
            for span in reads.reads:
                param = layout.text[span.start:span.end].decode()
                out.edit(reads.file, span, f"((char *){names.state_var} + (Py_ssize_t){param})")


def _include_stddef(out: Emitter, plan: Plan, file: str) -> None:
    """`offsetof` comes from <stddef.h>, which Python.h does not include on every version: after
    the file's first top-level #include, unless it includes <stddef.h> (or structmember.h) itself."""
    lines = [inc for inc in plan.module.include_lines if inc.file == file]
    if any(posixpath.basename(inc.name) in ("stddef.h", "structmember.h") for inc in lines):
        return
    first = next((inc for inc in lines if inc.top_level), None)
    if first is not None:
        layout = plan.layout(file)
        out.insert(file, layout.line_after(first.span.end - 1), "#include <stddef.h>             // offsetof()\n")


def use_text(plan: Plan, u: Use | UnreadUse, field: StateField) -> tuple[Span, str]:
    """What a use of a moved global becomes: the span it replaces and the new text."""
    var = plan.names.state_var
    if field.source is not None and field.source.kind is GlobalKind.STATIC_TYPE:
        if u.shape is UseShape.ADDRESS_OF and u.shape_span is not None:
            return u.shape_span, f"{var}->{field.name}"
        if u.shape is UseShape.MEMBER and u.shape_span is not None:
            return u.shape_span, f"{var}->{field.name}->"
        return u.span, f"(*{var}->{field.name})"
    return u.span, f"{var}->{field.name}"


def _rewrite_use(out: Emitter, plan: Plan, u: Use, field: StateField) -> None:
    out.edit(u.file, *use_text(plan, u, field))
    if field.source is not None and field.source.kind is GlobalKind.STATIC_TYPE:
        return
    if u.borrowed_value is not None and field.is_object:
        # The global borrowed it; the state's field is released by m_clear, so it owns one.
        out.insert(u.file, u.borrowed_value.start, "Py_NewRef(")
        out.insert(u.file, u.borrowed_value.end, ")")
        out.done(u.file, u.span, f"{field.name} was given a borrowed reference: the state takes its own "
                                 "(Py_NewRef), since its clear function releases it")


def _prefix_paste_chains(out: Emitter, plan: Plan) -> None:
    """Macros that paste moved names together: `str ## S` becomes `state->str ## S`."""
    moved = {f.key for f in plan.fields}
    pasting = {u.name for u in plan.module.macro_uses if any((None, n) in moved for n in u.pasted)}
    for m in plan.module.macros:
        if m.name not in pasting:
            continue
        toks = m.tokens
        with out.about(("macro", m.name)):
            for i, tok in enumerate(toks):
                starts_chain = i + 1 < len(toks) and toks[i + 1].text == b"##" and (
                    i == 0 or toks[i - 1].text != b"##")
                if starts_chain and tok.kind == "ident":
                    out.insert(m.file, tok.start, f"{plan.names.state_var}->")
        out.done(m.file, m.span, f"macro {m.name} builds global names with ##: they now name fields of "
                                 f"`{plan.names.state_var}`", key=("macro", m.name))


def _drop_finders(out: Emitter, plan: Plan) -> None:
    """State finders: `get_global_state()` becomes the caller's state; the finder goes."""
    d, var = plan.decisions, plan.names.state_var
    if not d.finders:
        return
    for f in plan.module.functions:
        if f.name in d.kept_finders:
            continue  # a function that cannot reach module state still calls it
        if f.name in d.finders:
            key = ("function", f.name)
            out.delete_statement(f.file, f.span, about=key)
            for proto in f.prototypes:
                out.delete_statement(proto.file, proto.span, about=key)
            out.done(f.file, f.header, f"{f.name}() found the state with PyState_FindModule (NULL for multi-phase "
                                       f"modules): its callers use their own `{var}` instead", key=key)
            continue
        if f.name in d.last_module:
            continue  # it keeps calling the finder, which finds the module the last exec made
        for call in f.calls:
            if call.callee in d.finders:
                out.edit(f.file, call.span, var, about=("function", call.callee))
    for m in plan.module.macros:
        toks = m.tokens
        for i, tok in enumerate(toks[:-2]):
            name = tok.text.decode("utf-8", "replace")
            if tok.kind == "ident" and name in d.finders and toks[i + 1].text == b"(" and toks[i + 2].text == b")":
                out.edit(m.file, Span(tok.start, toks[i + 2].end), var, about=("function", name))


def _replace_find_module(out: Emitter, plan: Plan) -> None:
    """PyState_FindModule: the state, or the module object, of the function's access."""
    d, var = plan.decisions, plan.names.state_var
    for use in plan.module.find_module_uses:
        if (use.macro is None and (use.function in d.last_module or use.function in d.kept_finders)) \
                or (use.macro is not None and use.macro in d.last_module_macros):
            _find_last_module(out, plan, use)
            continue
        if use.function in d.finders:
            continue
        key = ("find-module", use.file, use.span.start)
        layout = plan.layout(use.file)
        with out.about(key):
            if use.wants is FindModuleWant.EXISTING:
                # Multi-phase import makes a new module each time: nothing to return early.
                for span in use.null_checks:
                    out.delete_statement(use.file, span)
                out.done(use.file, use.span, f"{use.function}() returned the module PyState_FindModule() found: "
                                             "removed, each import now makes its own module", key=key)
                continue
            if use.wants is FindModuleWant.STATE_VIA:
                # `m = PyState_FindModule(&def); if (m == NULL) return 0; s = GET(m);`: s is the state.
                for dead in (use.statement, *use.null_checks):
                    if dead is not None:
                        out.delete_statement(use.file, dead)
                for span in use.state_reads:
                    out.edit(use.file, span, var)
            elif use.wants is FindModuleWant.STATE:
                out.edit(use.file, _state_span(plan, use), var)
            elif use.function in d.module_passing.helpers:
                out.edit(use.file, use.span, plan.names.module_param)  # its callers pass it now
            else:
                out.edit(use.file, use.span, _module_expression(plan, d.access[use.function or ""]))
        out.done(use.file, use.span,
                 f"{use.source} ("
                 + ("NULL for multi-phase modules" if use.source.startswith("PyState") else "one for the whole process")
                 + ") replaced by the "
                 + ("module object" if use.wants is FindModuleWant.MODULE else "module state")
                 + (f" in macro {use.macro}" if use.macro else f" in {use.function}()"), key=key)
        del layout


def _find_last_module(out: Emitter, plan: Plan, use: FindModuleUse) -> None:
    """In a function that cannot reach module state: the module the last exec made, found only
    in its own interpreter (NULL elsewhere, as PyState_FindModule returned when there was none)."""
    d, names = plan.decisions, plan.names
    key = ("find-module", use.file, use.span.start)
    with out.about(key):
        out.edit(use.file, use.call or use.span, f"{names.find_last_module}()")
    function = use.function or ""
    if use.macro is not None:
        why, where = d.last_module_macros[use.macro], f"macro {use.macro} (every function it expands in)"
    elif function in d.kept_finders:
        callers = sorted(n for n in d.last_module
                         if any(c.callee == function for f in plan.module.functions if f.name == n for c in f.calls))
        why = "; ".join(d.last_module[n] for n in callers)
        where = f"{function}(), which {', '.join(c + '()' for c in callers)} still " + (
            "calls," if len(callers) == 1 else "call,")
    else:
        why, where = d.last_module.get(function, ""), f"{function}()"
    out.todo(use.file, use.span, f"{use.source} in {where} now finds the module the last exec made, kept "
                                 f"process-global and found only in its own interpreter: {why}",
             key=key, code="last-module-lookup", subject=use.macro or function)


def _state_span(plan: Plan, use) -> Span:
    """`#define ST (GET(mod))` becomes `#define ST state`: `(state)` would read as a cast."""
    m = next((m for m in plan.module.macros if m.name == use.macro), None) if use.macro else None
    if m is None:
        return use.span
    layout = plan.layout(m.file)
    body = layout.text[m.body.start:m.body.end]
    inner = body.strip()
    at = m.body.start + (len(body) - len(body.lstrip()))
    if inner.startswith(b"(") and inner.endswith(b")") and \
            inner[1:-1].strip() == plan.layout(use.file).text[use.span.start:use.span.end].strip():
        return Span(at, at + len(inner))
    return use.span


def _rewrite_macros(out: Emitter, plan: Plan) -> None:
    """Macro bodies that name moved globals, or call helpers that now take the state."""
    var = plan.names.state_var
    fields = {f.key: f for f in plan.fields}
    for m in plan.module.macros:
        keys = plan.decisions.state_macros.get(m.name)
        if not keys:
            continue
        direct = {k[1]: fields[k] for k in keys if k in fields}
        with out.about(("macro", m.name)):
            _rewrite_macro(out, plan, m, direct)
        if direct or any(u.macro == m.name for u in plan.module.find_module_uses):
            out.done(m.file, m.span, f"macro {m.name} now reads `{var}`: every function using it declares one",
                     key=("macro", m.name))


def _rewrite_macro(out: Emitter, plan: Plan, m: Macro, fields_by_global: dict[str, StateField]) -> None:
    var = plan.names.state_var
    toks = m.tokens
    for i, tok in enumerate(toks):
        if tok.kind != "ident":
            continue
        name = tok.text.decode("utf-8", "replace")
        following = toks[i + 1] if i + 1 < len(toks) else None
        if following is not None and following.text == b"(" and (
                name in plan.decisions.helpers or name in plan.names.impl):
            # A helper call in the body: it passes the state of the function it expands in.
            empty = i + 2 < len(toks) and toks[i + 2].text == b")"
            _pass_state(out, plan, m.file, name, tok.start, following.end, empty)
            continue
        field = fields_by_global.get(name)
        if field is None:
            continue
        prev = toks[i - 1] if i > 0 else None
        if prev is not None and prev.text in (b".", b"->"):
            continue
        if field.is_type and prev is not None and prev.text == b"&":
            out.edit(m.file, Span(prev.start, tok.end), f"{var}->{field.name}")
        elif field.is_type:
            out.edit(m.file, Span(tok.start, tok.end), f"(*{var}->{field.name})")
        else:
            out.edit(m.file, Span(tok.start, tok.end), f"({var}->{field.name})")
