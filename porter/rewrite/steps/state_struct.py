"""state-struct: moved globals become fields of `<mod>_state`, with accessors to reach it.

What: every global that holds per-interpreter data (objects, exceptions, caches, mutable C data,
function-local statics) becomes a field of a module state struct; the global's declaration goes.
A `get_<mod>_state(module)` accessor (and, when types need it, `get_<mod>_state_by_type`) is
emitted before the first function that uses state. A module that already has a state struct
(`m_size = sizeof(S)`) gets the new fields in `S`. When several files need the state and share
no header, the header most of them include holds it and the others include it. A field's type
defined below the block moves up above it; one that only a `.c` file defines (kerberos's
`typedef union {...} align16;`) moves into the header that holds the state, when that file
includes the header before the definition and the definition is under no `#if`.

Why: a global is shared by every interpreter and every module object; state allocated per
module object (`m_size`) is not (PEP 489, PEP 630).

Fix safety: safe. A global moves only if every use can be rewritten (see state-access);
otherwise it stays and the report says why.

Known problems: a field whose type is declared after the insertion point does not compile;
the build check catches it. A type moved into a header may name a system type (`uint64_t`) the
header's other includers see only through Python.h.
"""

from __future__ import annotations

import re

from porter import capi
from porter.model import GlobalKind, Span
from porter.render import render
from porter.rewrite import cbuild
from porter.rewrite.emit import Emitter, StepResult
from porter.rewrite.plan import Plan
from porter.rewrite.planning.fields import StateField


def global_key(field: StateField) -> tuple:
    return ("global", *field.key)


class StateStruct:
    id = "state-struct"

    def run(self, plan: Plan) -> StepResult:
        out = Emitter(self.id, plan)
        for f in plan.fields:
            g = f.source
            if g is not None:
                out.done(g.file, g.span, f"{_label(g)} moved into {plan.names.state_type}.{f.name} "
                                         f"({g.kind.value}: {g.reason}){_builds(f)}", key=global_key(f))
        if plan.placement is None:
            return out.result
        _remove_declarations(out, plan)
        _insert_block(out, plan)
        return out.result


def _builds(f: StateField) -> str:
    """Which builds the field is declared for, when not all."""
    if f.variants:
        return "; declared per build, as the global was: " + ", ".join(f"`{d}` when {c or 'always'}"
                                                                       for c, d in f.variants)
    return f"; only when {f.guard}, as the global was" if f.guard else ""


def _declarations(f: StateField) -> tuple[tuple[str | None, str], ...]:
    """A field's declaration with its build condition, or one per build it is declared for."""
    return f.variants or ((f.guard, f.decl),)


def _label(g) -> str:
    return f"{g.function}(): static {g.name}" if g.function else g.name


def _remove_declarations(out: Emitter, plan: Plan) -> None:
    by_declaration: dict[tuple[str, Span], list] = {}
    for f in plan.fields:
        g = f.source
        if g is None or g.kind is GlobalKind.STATIC_TYPE:
            continue  # the heap-types step replaces a type's definition with a spec
        by_declaration.setdefault((g.file, g.declaration), []).append(f)
    for (file, decl), fs in sorted(by_declaration.items(), key=lambda kv: (kv[0][0], kv[0][1].start)):
        first = fs[0].source
        if len(fs) == first.declarator_count:
            out.delete_statement(file, decl, about=global_key(fs[0]))
            continue
        doomed = {f.source.declarator_index: f for f in fs}
        for span, f in _declarator_deletions(first.declarators, doomed):
            out.edit(file, span, "", about=global_key(f))
    for f in plan.fields:
        g = f.source
        if g is None or g.kind is GlobalKind.STATIC_TYPE:
            continue  # heap-types decides what becomes of a type's declarations
        for loc in g.extern_declarations:
            out.delete_statement(loc.file, loc.span, about=global_key(f))
        for alt in g.alternatives:  # the same variable declared for other builds
            if alt.declarator_count == 1:
                out.delete_statement(alt.file, alt.declaration, about=global_key(f))
            else:
                for span, _ in _declarator_deletions(alt.declarators, {alt.declarator_index: f}):
                    out.edit(alt.file, span, "", about=global_key(f))


def _declarator_deletions(declarators: tuple[Span, ...], doomed: dict[int, StateField]):
    """Spans that delete the doomed declarators of `int a, b, c;` and keep the others valid.

    A run of doomed declarators goes with the commas up to the next kept one; a run at the
    end goes from the end of the last kept one.
    """
    i, n = 0, len(declarators)
    while i < n:
        if i not in doomed:
            i += 1
            continue
        j = i
        while j + 1 < n and j + 1 in doomed:
            j += 1
        if j + 1 < n:
            yield Span(declarators[i].start, declarators[j + 1].start), doomed[i]
        else:
            yield Span(declarators[i - 1].end, declarators[j].end), doomed[i]
        i = j + 1


def _prototype(plan: Plan, function: str) -> str:
    """The declaration the state block needs of one of the module's functions: its definition's
    header, on one line; "" when it is defined before the block already."""
    f = plan.module.function(function) if function else None
    if f is None:
        return ""
    placement = plan.placement
    if placement is not None and f.file == placement.file and f.span.end <= placement.at:
        return ""
    return re.sub(r"\*\s+(?=\w)", "*", " ".join(plan.layout(f.file).text_of(f.header).split()))


def _insert_block(out: Emitter, plan: Plan) -> None:
    names, placement = plan.names, plan.placement
    assert placement is not None
    for inc in placement.includes:
        nl = plan.layout(inc.file).newline
        out.insert(inc.file, inc.at, f'#include "{inc.path}"{nl}', about=("module",))
        out.done(inc.file, inc.anchor, f"{inc.file} now includes {inc.path}, which holds the module state it needs")
    file = placement.file
    shared_header = placement.shared_header
    d = plan.module.definition
    storage = "extern " if shared_header else ("static " if d is None or d.is_static or d.macro is not None else "")
    if shared_header:
        # The header now declares it extern: a `static` forward declaration would clash.
        for loc in plan.module.definition_forwards:
            out.delete_statement(loc.file, loc.span, about=("module",))
    text = render(
        "c/state.c.jinja",
        struct_fields=[{"decl": decl, "guard": guard and cbuild.if_directive(guard)}
                       for f in plan.fields for guard, decl in _declarations(f)] if names.new_struct else None,
        state_tag=names.state_type if plan.state_tagged else None,
        state_type=names.state_type, def_declaration=f"{storage}struct PyModuleDef {names.def_name}",
        def_name=names.def_name, get_state=names.get_state, get_state_by_type=names.get_state_by_type,
        get_state_by_cls=names.get_state_by_cls, by_cls=plan.needs_by_cls,
        reuse_get_state=bool(names.own_get_state), own_get_state=_prototype(plan, names.own_get_state),
        get_state_by_operands=names.get_state_by_operands,
        # The accessors' local for the module must not hide the definition (`&module`).
        module_local="module" if names.def_name != "module" else "owner",
        by_type=plan.needs_by_type, by_operands=plan.needs_by_operands, instance_of=names.instance_of,
        module_by_type=None if plan.has("PyType_GetModuleByDef") else names.module_by_type,
        module_of=lambda type_expr: cbuild.module_of_type(plan, type_expr),
        # Units that include the header under a lower limited API of their own do without them.
        by_type_guard=cbuild.if_directive(capi.limited_api_guard("PyType_GetModuleByDef", plan.module.cpython_version))
        if plan.has("PyType_GetModuleByDef")
        and not capi.in_limited_api("PyType_GetModuleByDef", plan.header_limited_api) else None,
        # In a shared header a `static` thread-local would be one per file: it goes to the
        # one file with the callbacks and the calls that make them instead.
        callback_state=names.callback_state if plan.needs_callback_state and not shared_header else None,
        thread_local=names.thread_local,
        state_of_interpreter=names.state_of_interpreter, module_name=plan.module.name,
        last_module=names.last_module, last_module_interp=names.last_module_interp,
        find_last_module=names.find_last_module,
        # A header declares them; the file with exec defines them (module-def).
        last_module_storage="extern " if shared_header else "static ",
        last_module_init="" if shared_header else " = NULL",
    )
    if plan.callback_block is not None:
        block = plan.callback_block
        callback = render("c/callback_state.c.jinja", thread_local=names.thread_local,
                          state_type=names.state_type, callback_state=names.callback_state)
        out.insert(block.file, block.span.start, callback.strip("\n") + "\n\n", order=-9, about=("module",))
    block_text = text.strip("\n") + "\n\n"
    existing = plan.module.state_struct
    in_place = not names.new_struct and existing is not None and existing.file == file \
        and existing.statement.end <= placement.at
    hoisted_text = ""
    for unit in plan.hoisted_macros:
        # The struct's fields name them: they move up, unchanged, right above the struct.
        layout = plan.layout(unit.file)
        unit_text = layout.text_of(unit.span)
        if unit.guard:
            unit_text = f"#if {unit.guard}\n{unit_text}\n#endif"
        out.delete_statement(unit.file, unit.span, about=("module",))
        if in_place:
            assert existing is not None
            out.insert(file, plan.layout(file).line_start(existing.statement.start), unit_text + "\n\n", order=-12,
                       about=("module",))
        else:
            hoisted_text += unit_text + "\n\n"
        out.done(unit.file, unit.span, f"{', '.join(unit.names)}: defined above {names.state_type} in {file} now: "
                                       "a field of it names them", key=("module",))
    for hoisted in plan.hoisted_types:
        # The struct's fields need it: it moves up, unchanged, right above the struct.
        layout = plan.layout(hoisted.file)
        out.delete_statement(hoisted.file, hoisted.statement, about=("module",))
        if in_place:
            assert existing is not None
            out.insert(file, plan.layout(file).line_start(existing.statement.start),
                       layout.text_of(hoisted.statement) + "\n\n", order=-11, about=("module",))
        else:
            hoisted_text += layout.text_of(hoisted.statement) + "\n\n"
        where = "" if hoisted.file == file else f" in {file}"
        out.done(hoisted.file, hoisted.statement, f"{hoisted.name} is defined above {names.state_type}{where} now: "
                                                  "a field of it has that type", key=("module",))
    if plan.state_tagged and plan.existing_struct_tag_at is not None:
        assert existing is not None
        out.insert(existing.file, plan.existing_struct_tag_at, f" {names.state_type}", about=("module",))
        out.done(existing.file, existing.statement, f"{names.state_type} gets the tag `struct {names.state_type}`: "
                                                    "headers that declare functions taking the state name it so",
                 key=("module",))
    if not names.new_struct and plan.fields:
        moved = _extend_existing(out, plan)
        if moved is None:
            return
        block_text = moved + block_text
    block_text = hoisted_text + block_text  # the types the struct's fields need come first
    if placement.new_file:
        block_text = cbuild.state_header(file, plan.module.name, block_text)
        out.done(file, None, f"{file} is new: it holds the module state, and every file that needs the state "
                             "includes it after its other includes", key=("module",))
    out.insert(file, placement.at, block_text, order=-10, about=("module",))


def _extend_existing(out: Emitter, plan: Plan) -> str | None:
    """New fields go into the module's own state struct; the struct moves to where the
    accessors go when it was defined after them or in a file the others cannot see.
    Returns the text to put before the accessors ('' when it stays)."""
    existing = plan.module.state_struct
    placement = plan.placement
    assert placement is not None
    if existing is None:
        out.fail("state-struct-missing", f"m_size names {plan.names.state_type}, whose definition porter "
                                         "cannot find")
        return None
    layout = plan.layout(existing.file)
    nl = layout.newline
    indent = layout.line_indent(existing.fields[0].span.start) if existing.fields else "    "
    line = layout.line_start(existing.closing_brace)
    brace_alone = layout.text[line:existing.closing_brace].strip() == b""
    added = "".join(cbuild.guarded(f"{indent}{decl};", guard).replace("\n", nl) + nl
                    for f in plan.fields for guard, decl in _declarations(f))
    names = ", ".join(f.name for f in plan.fields)
    if existing.file == placement.file and existing.statement.end <= placement.at:
        if brace_alone:
            out.insert(existing.file, line, added, about=("module",))
        else:
            out.insert(existing.file, existing.closing_brace, nl + added, about=("module",))
        out.done(existing.file, existing.statement, f"{existing.name} gains {names}", key=("module",))
        return ""
    # Moved: the definition goes, and comes back with the new fields before the accessors.
    rel = (line if brace_alone else existing.closing_brace) - existing.statement.start
    old = layout.text_of(existing.statement)
    new = old[:rel] + ("" if brace_alone else nl) + added + old[rel:]
    out.delete_statement(existing.file, existing.statement, about=("module",))
    out.done(existing.file, existing.statement, f"{existing.name} gains {names} and moves to {placement.file}, "
                                                "where every file that reaches module state sees it",
             key=("module",))
    target_nl = plan.layout(placement.file).newline
    return new.replace(nl, target_nl) + target_nl + target_nl
