"""state-struct: moved globals become fields of `<mod>_state`, with accessors to reach it.

What: every global that holds per-interpreter data (objects, exceptions, caches, mutable C data,
function-local statics) becomes a field of a module state struct; the global's declaration goes.
A `get_<mod>_state(module)` accessor (and, when types need it, `get_<mod>_state_by_type`) is
emitted before the first function that uses state.

Why: a global is shared by every interpreter and every module object; state allocated per
module object (`m_size`) is not (PEP 489, PEP 630).

Fix safety: safe. A global moves only if every use can be rewritten (see state-access);
otherwise it stays and the report says why.

Known problems: a field whose type is declared after the insertion point does not compile;
the build check catches it.
"""

from __future__ import annotations

from porter.analyze import ctree
from porter.analyze.initializers import is_null
from porter.model import GlobalKind, Span
from porter.render import render
from porter.rewrite.context import PortContext, StateField, fresh_name, include_closure
from porter.rewrite.edits import Applicability


class StateStruct:
    id = "state-struct"

    def run(self, ctx: PortContext) -> None:
        self._fields(ctx)
        for name, keys in ctx.decisions.needs.items():
            acc = ctx.decisions.access.get(name)
            if keys and acc is not None:
                ctx.needs_by_type |= acc.kind in ("type", "new")
                ctx.needs_by_operands |= acc.kind == "binary"
                ctx.needs_callback_state |= acc.kind == "callback"
        if not ctx.fields and not ctx.decisions.state_macros and not _needs_block(ctx):
            return
        self._remove_declarations(ctx)
        self._insert_block(ctx)

    def _fields(self, ctx: PortContext) -> None:
        taken = set(ctx.module.names_in_use)
        existing = ctx.module.state_struct
        existing_fields = {f.name for f in existing.fields} if existing and not ctx.names.new_struct else set()
        taken |= existing_fields
        for key, g in sorted(ctx.decisions.movable.items(), key=lambda kv: (kv[1].file, kv[1].span.start)):
            name = g.name if g.function is None else fresh_name(f"{g.function}_{g.name}", taken)
            if name in existing_fields:
                name = fresh_name(name, taken)
            if g.kind is GlobalKind.STATIC_TYPE:
                decl = f"PyTypeObject *{name}"
            else:
                decl = _field_declaration(ctx, g, name)
            initial = None
            if not g.kind.is_object_kind and g.initializer is not None and not is_null(g.initializer_text):
                initial = g.initializer_text
                if initial.lstrip().startswith("{"):
                    # A struct's initialiser: assign it as a compound literal, of the type as
                    # declared (`struct tag` when there is no typedef).
                    declared = decl.rsplit(name, 1)[0].replace("const ", "").strip()
                    initial = f"({declared or g.c_type}){initial.strip()}"
            ctx.fields.append(StateField(key, name, decl, g.kind.is_object_kind, initial,
                                         g.kind is GlobalKind.STATIC_TYPE))
            ctx.item(self.id, Applicability.SAFE, g.file, g.span,
                     f"{_label(g)} moved into {ctx.names.state_type}.{name} ({g.kind.value}: {g.reason})")
        # Types with a __module__ descriptor keep it for their instances in the state.
        from porter.rewrite.steps.heap_types import serves_module_descriptor

        if any(serves_module_descriptor(t, ctx.module) for t in ctx.module.static_types
               if (None, t.name) in ctx.decisions.movable):
            name = fresh_name("module_attribute_descriptors", taken)
            ctx.fields.append(StateField((None, "<module attribute descriptors>"), name,
                                         f"PyObject *{name}", True, None))
            ctx.module_attribute_field = name
            ctx.needs_by_type = True

    def _remove_declarations(self, ctx: PortContext) -> None:
        moved = ctx.decisions.movable
        by_declaration: dict[tuple[str, Span], list] = {}
        for g in moved.values():
            if g.kind is GlobalKind.STATIC_TYPE:
                continue  # the heap-types step replaces the definition with a spec
            by_declaration.setdefault((g.file, g.declaration), []).append(g)
        for (file, decl_span), gs in sorted(by_declaration.items(), key=lambda kv: (kv[0][0], kv[0][1].start)):
            if len(gs) == gs[0].declarator_count:
                ctx.edit(file, ctx.statement_span_with_line(file, decl_span), "", self.id)
                continue
            src = ctx.sources[file]
            decl = src.root.descendant_for_byte_range(decl_span.start, decl_span.end)
            while decl is not None and decl.type != "declaration":
                decl = decl.parent
            names = {g.name for g in gs}
            for span in _declarator_spans(decl, names):
                ctx.edit(file, span, "", self.id)
        for g in moved.values():
            if g.kind is GlobalKind.STATIC_TYPE:
                continue  # heap-types decides what becomes of a type's declarations
            for loc in g.extern_declarations:
                ctx.edit(loc.file, ctx.statement_span_with_line(loc.file, loc.span), "", self.id)

    def _insert_block(self, ctx: PortContext) -> None:
        names = ctx.names
        file, at = _insertion_point(ctx)
        if file is None:
            ctx.fail("module state is needed in several files that share no header porter can put it in "
                     "(one seen after Python.h, once per file or behind an include guard)")
            return
        shared_header = file.endswith(".h")
        ctx.state_block_file = file
        storage = "extern " if shared_header else ("static " if _def_is_static(ctx) else "")
        if shared_header:
            # The header now declares it extern: a `static` forward declaration would clash.
            for loc in ctx.module.definition_forwards:
                ctx.edit(loc.file, ctx.statement_span_with_line(loc.file, loc.span), "", self.id)
        def_decl = f"{storage}struct PyModuleDef {names.def_name}"
        text = render(
            "c/state.c.jinja",
            struct_fields=[f.decl for f in ctx.fields] if names.new_struct else None,
            state_type=names.state_type, def_declaration=def_decl, def_name=names.def_name,
            get_state=names.get_state, get_state_by_type=names.get_state_by_type,
            get_state_by_operands=names.get_state_by_operands,
            # The accessors' local for the module must not hide the definition (`&module`).
            module_local="module" if names.def_name != "module" else "owner",
            by_type=ctx.needs_by_type, by_operands=ctx.needs_by_operands,
            # In a shared header a `static` thread-local would be one per file: it goes to the
            # one file with the callbacks and the calls that make them instead.
            callback_state=names.callback_state if ctx.needs_callback_state and not shared_header else None,
            thread_local=f"{names.base.upper()}_THREAD_LOCAL",
        )
        if ctx.needs_callback_state and shared_header and not self._callback_state_block(ctx):
            return
        nl = ctx.newline(file)
        block = text.strip("\n").replace("\n", nl) + nl + nl
        if not names.new_struct and ctx.fields:
            moved = self._extend_existing(ctx, file, at)
            if moved is None:
                return
            block = moved + block
        ctx.insert(file, at, block, self.id, order=-10)

    def _callback_state_block(self, ctx: PortContext) -> bool:
        d = ctx.decisions
        callbacks = [f for f in ctx.module.functions
                     if d.access.get(f.name) is not None and d.access[f.name].kind == "callback" and d.needs.get(f.name)]
        spots = [(f.file, f.span.start) for f in callbacks]
        spots += [(site[1].file, site[1].span.start) for f in callbacks for site in f.sync_callback_sites]
        files = {file for file, _ in spots}
        if len(files) != 1:
            ctx.fail("callbacks that need module state and the calls that make them are in different "
                     f"files ({', '.join(sorted(files))}): porter cannot give them one thread-local")
            return False
        file = files.pop()
        fns = [f for f in ctx.module.functions if f.file == file]
        first = min(at for _, at in spots)
        # Before the function holding the first spot (a call site sits inside its caller).
        owner = next((f for f in fns if f.span.start <= first < f.span.end), None)
        at = owner.span.start if owner is not None else first
        text = render("c/callback_state.c.jinja", thread_local=f"{ctx.names.base.upper()}_THREAD_LOCAL",
                      state_type=ctx.names.state_type, callback_state=ctx.names.callback_state)
        nl = ctx.newline(file)
        ctx.insert(file, _line_start(ctx, file, _before_leading_comment(ctx, file, at)),
                   text.strip("\n").replace("\n", nl) + nl + nl, self.id, order=-9)
        return True

    def _extend_existing(self, ctx: PortContext, file: str, at: int) -> str | None:
        """New fields go into the module's own state struct; the struct moves to where the
        accessors go when it was defined after them or in a file the others cannot see.
        Returns the text to put before the accessors ('' when it stays)."""
        existing = ctx.module.state_struct
        if existing is None:
            ctx.fail(f"m_size names {ctx.names.state_type}, whose definition porter cannot find")
            return None
        src = ctx.text(existing.file)
        nl = ctx.newline(existing.file)
        indent = ctx.line_indent(existing.file, existing.fields[0].span.start) if existing.fields else "    "
        line = src.rfind(b"\n", 0, existing.closing_brace) + 1
        brace_alone = src[line:existing.closing_brace].strip() == b""
        added = "".join(f"{indent}{f.decl};{nl}" for f in ctx.fields)
        names = ", ".join(f.name for f in ctx.fields)
        if existing.file == file and existing.statement.end <= at:
            if brace_alone:
                ctx.insert(existing.file, line, added, self.id)
            else:
                ctx.insert(existing.file, existing.closing_brace, nl + added, self.id)
            ctx.item(self.id, Applicability.SAFE, existing.file, existing.statement,
                     f"{existing.name} gains {names}")
            return ""
        # Moved: the definition goes, and comes back with the new fields before the accessors.
        rel = (line if brace_alone else existing.closing_brace) - existing.statement.start
        old = src[existing.statement.start:existing.statement.end].decode()
        new = old[:rel] + ("" if brace_alone else nl) + added + old[rel:]
        ctx.edit(existing.file, ctx.statement_span_with_line(existing.file, existing.statement), "", self.id)
        ctx.item(self.id, Applicability.SAFE, existing.file, existing.statement,
                 f"{existing.name} gains {names} and moves to {file}, where every file that "
                 "reaches module state sees it")
        return new.replace(nl, ctx.newline(file)) + ctx.newline(file) + ctx.newline(file)


def _needs_block(ctx: PortContext) -> bool:
    return any(ctx.decisions.needs.values()) or ctx.needs_by_type


def _label(g) -> str:
    return f"{g.function}(): static {g.name}" if g.function else g.name


def _field_declaration(ctx: PortContext, g, name: str) -> str:
    """`static PyObject *a, *b;` -> `PyObject *a`: the declared type with this declarator."""
    text = g.type_text
    if g.function is not None and name != g.name:
        # Rename the declarator's identifier (the last occurrence is the declarator's own).
        head, _, tail = text.rpartition(g.name)
        text = head + name + tail
    return text.replace("static ", "").strip()


def _declarator_spans(decl, names: set[str]) -> list[Span]:
    """Spans that delete some declarators of `int a, b, c;` and keep the others valid."""
    children = [c for c in decl.children]
    declarator_idx = [i for i, c in enumerate(children) if c in ctree.declarators(decl)]
    doomed = [i for i in declarator_idx if ctree.read_declarator(children[i]).name in names]
    spans = []
    kept = [i for i in declarator_idx if i not in doomed]
    for i in doomed:
        # Delete the declarator with the comma after it; the last one takes the comma before.
        if i + 1 < len(children) and children[i + 1].type == ",":
            nxt = children[i + 2]
            spans.append(Span(children[i].start_byte, nxt.start_byte))
        else:
            prev = children[i - 1]
            if prev.type == "," and (i - 2) in kept:
                spans.append(Span(children[i - 2].end_byte, children[i].end_byte))
            else:
                spans.append(Span(prev.start_byte if prev.type == "," else children[i].start_byte,
                                  children[i].end_byte))
    return _merge(spans)


def _merge(spans: list[Span]) -> list[Span]:
    out: list[Span] = []
    for s in sorted(spans):
        if out and s.start <= out[-1].end:
            out[-1] = Span(out[-1].start, max(out[-1].end, s.end))
        else:
            out.append(s)
    return out


def _def_is_static(ctx: PortContext) -> bool:
    d = ctx.module.definition
    return d is None or d.is_static or d.macro is not None


def _insertion_point(ctx: PortContext) -> tuple[str | None, int]:
    """Before the first function that uses state; in a shared header for multi-file modules."""
    fns = {f.name: f for f in ctx.module.functions}
    users = [fns[n] for n, keys in ctx.decisions.needs.items() if keys and n in fns]
    users += [fns[n] for n in ctx.decisions.helpers if n in fns]
    # A helper's prototype names the state type too.
    users += [type("Spot", (), {"file": loc.file, "span": loc.span})()
              for n in ctx.decisions.helpers if n in fns for loc in fns[n].prototypes]
    for name, acc in ctx.decisions.access.items():
        if acc.kind in ("type", "new", "binary") and name in fns and name in ctx.decisions.needs:
            users.append(fns[name])
    exec_name = ctx.module.init_body.function if ctx.module.init_body else ctx.module.init.function
    if exec_name in fns:
        users.append(fns[exec_name])
    for t in ctx.module.static_types:
        if (None, t.name) in ctx.decisions.movable:
            users.append(type("Spot", (), {"file": t.file, "span": t.span})())
    # Macros that read `state` need it only where they expand, inside these functions.
    spots = [(u.file, u.span.start) for u in users]
    files = {f for f, _ in spots}
    if len(files) <= 1:
        file = next(iter(files or {ctx.module.init.file}))
        starts = [at for f, at in spots if f == file]
        at = min(starts) if starts else ctx.module.init.span.start
        return file, _line_start(ctx, file, _before_leading_comment(ctx, file, at))
    closures = _closures(ctx.module)
    # A unity build: one file includes all the others that use state.
    for root in [ctx.module.init.file] + [f for f in ctx.module.files if f != ctx.module.init.file]:
        if files <= closures[root] | {root}:
            # Right before the first use in the order the compiler reads the unit.
            order = _unit_order(ctx.module, root)
            file, at = min(spots, key=lambda s: order[s[0]] + (s[1],))
            return file, _line_start(ctx, file, _before_leading_comment(ctx, file, at))
    # Separate translation units: a header every one of them includes.
    shared = set.intersection(*(closures[f] | {f} for f in files))
    headers = [h for h in ctx.module.files if h in shared and h.endswith(".h") and _usable_header(ctx, h, files)]
    for g in ctx.decisions.movable.values():
        for loc in g.extern_declarations:
            if loc.file in headers:
                return loc.file, _line_start(ctx, loc.file, loc.span.start)
    if headers:
        # The deepest shared header: the one the others include.
        header = min(headers, key=lambda h: len(closures[h]))
        return header, _end_of_header(ctx, header)
    header = _header_to_share(ctx, files, closures)
    if header is None:
        return None, 0
    return header, _end_of_header(ctx, header)


def _header_to_share(ctx: PortContext, files: set[str], closures) -> str | None:
    """The module header most of the files that need state include; the others are made to
    include it too (after their last top-level #include)."""
    import posixpath

    headers = [h for h in ctx.module.files if h.endswith(".h") and _usable_header(ctx, h, files)]
    counts = {h: sum(h in closures[f] for f in files) for h in headers}
    if not counts or max(counts.values()) == 0:
        return None
    header = max(headers, key=lambda h: (counts[h], -len(closures[h])))
    for f in sorted(files):
        if header in closures[f] or f == header:
            continue
        pre = ctx.sources[f].pre
        anchors = [inc for inc in pre.includes if not pre.enclosing(inc.span.start)]
        if not anchors:
            return None
        last = max(anchors, key=lambda inc: inc.span.start)
        text = ctx.text(f)
        at = text.find(b"\n", last.span.end - 1)
        at = len(text) if at < 0 else at + 1
        path = posixpath.relpath(header, posixpath.dirname(f) or ".")
        nl = ctx.newline(f)
        ctx.insert(f, at, f'#include "{path}"{nl}', "state-struct")
        ctx.item("state-struct", Applicability.SAFE, f, last.span,
                 f"{f} now includes {path}, which holds the module state it needs")
    return header


def _unit_order(module, root: str) -> dict[str, tuple[int, ...]]:
    """Each file's place in root's translation unit: the #include offsets that lead to it."""
    order: dict[str, tuple[int, ...]] = {root: ()}
    stack = [root]
    while stack:
        file = stack.pop()
        for inc, target, span in sorted(module.includes, key=lambda i: i[2].start):
            if inc == file and target not in order:
                order[target] = order[file] + (span.start,)
                stack.append(target)
    return order


def _closures(module) -> dict[str, set[str]]:
    """Each module file's includes, transitively (without the file itself)."""
    return {f: include_closure(module, f) - {f} for f in module.files}


def _usable_header(ctx: PortContext, header: str, files: set[str]) -> bool:
    """Whether a header can hold the state block: it sits next to one of `files` (a bundled
    library's header is compiled into code porter does not see), no file sees it twice (or it
    is guarded), and every file sees Python.h before it."""
    import posixpath

    if posixpath.dirname(header) not in {posixpath.dirname(f) for f in files}:
        return False
    if _guard_end(ctx, header) is None and _included_twice(ctx.module, header):
        return False
    return _sees_python_h(ctx, header, len(ctx.text(header)), set())


def _included_twice(module, header: str) -> bool:
    by_file: dict[str, list[str]] = {}
    for inc, target, _ in module.includes:
        by_file.setdefault(inc, []).append(target)

    def count(file: str, depth: int = 0) -> int:
        if depth > 20:
            return 0
        return sum((t == header) + count(t, depth + 1) for t in by_file.get(file, ()))

    return any(count(f) > 1 for f in module.files if not f.endswith(".h"))


def _sees_python_h(ctx: PortContext, file: str, offset: int, seen: set[str]) -> bool:
    """Whether Python.h is included before `offset` in `file`, wherever `file` is included."""
    if file in seen:
        return True
    seen = seen | {file}
    targets = {span.start: target for inc, target, span in ctx.module.includes if inc == file}
    for inc in ctx.sources[file].pre.includes:
        if inc.span.start >= offset:
            break
        if inc.name.rsplit("/", 1)[-1] == "Python.h":
            return True
        target = targets.get(inc.span.start)
        if target is not None and _sees_python_h(ctx, target, len(ctx.text(target)), seen):
            return True
    includers = [(inc, span) for inc, target, span in ctx.module.includes if target == file]
    return bool(includers) and all(_sees_python_h(ctx, inc, span.start, seen) for inc, span in includers)


def _guard_end(ctx: PortContext, header: str) -> int | None:
    """Where the header's guarded part ends: its guard's `#endif`, or the end of a header with
    `#pragma once`; None when it has neither (a second include would define things twice)."""
    import re

    text = ctx.text(header)
    if re.search(rb"^[ \t]*#[ \t]*pragma[ \t]+once\b", text, re.MULTILINE):
        return len(text)
    for cond in ctx.sources[header].conditionals:
        first = cond.branches[0]
        before = text[:cond.span.start]
        after = text[cond.endif.end:]
        if first.kind == "ifndef" and len(cond.branches) == 1 \
                and re.fullmatch(rb"\s*(/\*.*?\*/\s*|//[^\n]*\s*)*", before, re.DOTALL) \
                and re.fullmatch(rb"\s*(/\*.*?\*/\s*|//[^\n]*\s*)*", after, re.DOTALL) \
                and re.match(rb"\s*#[ \t]*define[ \t]+" + re.escape(first.condition.encode()) + rb"\b",
                             text[first.body.start:]):
            return cond.endif.start
    return None


def _end_of_header(ctx: PortContext, header: str) -> int:
    """Before the include guard's closing #endif (or at the end with #pragma once)."""
    end = _guard_end(ctx, header)
    return end if end is not None else len(ctx.text(header))


def _line_start(ctx: PortContext, file: str, offset: int) -> int:
    return ctx.text(file).rfind(b"\n", 0, offset) + 1


def _before_leading_comment(ctx: PortContext, file: str, offset: int) -> int:
    """Step back over a comment block that documents the function at `offset`."""
    text = ctx.text(file)
    start = text.rfind(b"\n", 0, offset) + 1
    prev_end = start - 1
    while prev_end > 0:
        line_start = text.rfind(b"\n", 0, prev_end) + 1
        line = text[line_start:prev_end].strip()
        if line.endswith(b"*/") or line.startswith(b"//"):
            if line.startswith((b"/*", b"//")):
                start = line_start
                prev_end = line_start - 1
                continue
            open_at = text.rfind(b"/*", 0, prev_end)
            if open_at < 0:
                break
            start = text.rfind(b"\n", 0, open_at) + 1
            prev_end = start - 1
            continue
        break
    return start
