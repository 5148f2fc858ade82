"""state-access: every use of a moved global becomes an access through module state.

What: each function that uses a moved global gets a `state` pointer, chosen by its role:
module-level functions from their module argument, type methods, getters, setters and slots
from `PyType_GetModuleByDef(Py_TYPE(self), &def)`, `tp_new` from its type argument, binary
number slots from whichever operand is the module's, and helpers from a new `state` parameter
passed by their callers. Uses become `state->name`; macros that name a global use `state` too.

Why: the global is gone (state-struct); its value now lives in the module object.

Fix safety: safe. Where no safe access exists (a callback whose signature a C library fixes,
a function porter cannot tie to the module), the global does not move and the report says why.

Known problems: `PyType_GetModuleByDef` walks the MRO: a lookup added to a hot slot costs on
every call; the report lists those places with cheaper alternatives.
"""

from __future__ import annotations

import re

from porter.lexer import tokenize
from porter.model import GlobalKind, Span
from porter.rewrite.context import PortContext, fresh_name
from porter.rewrite.decide import HOT_SLOTS
from porter.rewrite.edits import Applicability


class StateAccess:
    id = "state-access"
    _untyped: set[str] = set()

    def run(self, ctx: PortContext) -> None:
        self._impl_names: dict[str, str] = {}
        taken = set(ctx.module.names_in_use)
        for name, acc in sorted(ctx.decisions.access.items()):
            if acc.kind == "split" and ctx.decisions.needs.get(name):
                self._impl_names[name] = fresh_name(f"{name}_impl", taken)
        # m_free(void *module): its parameter needs a cast to PyObject *.
        self._untyped = {f.params[0].name for f in ctx.module.functions
                         if f.params and f.params[0].name and "void" in f.params[0].type_text
                         and "module-slot" in f.roles}
        d = ctx.decisions
        fields = {f.key: f for f in ctx.fields}
        if not fields and not ctx.module.find_module_uses:
            return
        var = ctx.names.state_var
        fns = {f.name: f for f in ctx.module.functions}
        exec_name = ctx.module.init_body.function if ctx.module.init_body else None
        # 1. A `state` in every function that needs one.
        by_macro: dict[str, list] = {}
        for name, keys in sorted(d.needs.items()):
            if not keys or name not in fns:
                continue
            f = fns[name]
            acc = d.access[name]
            if f.defined_by:
                by_macro.setdefault(f.defined_by, []).append((f, acc))
                continue
            if acc.kind == "helper":
                self._add_parameter(ctx, f)
                continue
            if acc.kind == "split":
                self._split(ctx, f, acc)
                continue
            if name == exec_name:
                continue  # the exec step declares it at the top of exec
            expr = self._state_expression(ctx, acc)
            if expr is None:
                continue
            first = f.params[0] if f.params else None
            if first is not None and first.name is None and first.unused_span is not None \
                    and acc.params and acc.params[0] == first.unused_name:
                # `PyObject *Py_UNUSED(self)`: the parameter is used now.
                ctx.edit(f.file, first.unused_span, first.unused_name, self.id)
            indent = ctx.body_indent(f.file, f.body)
            nl = ctx.newline(f.file)
            declaration = f"{nl}{indent}{ctx.names.state_type} *{var} = {expr};"
            if name in d.debug_only:
                # Only assert() reads it: no lookup (and no unused variable) in release builds.
                declaration = f"{nl}#ifndef NDEBUG{declaration}{nl}#endif"
            ctx.insert(f.file, f.body.start + 1, declaration, self.id, order=-5)
            gc_slots = sorted({r[5:] for r in f.roles if r.startswith("slot:")}
                              & {"tp_traverse", "tp_clear", "tp_dealloc", "tp_finalize"})
            if gc_slots and name not in d.debug_only:
                ctx.item("gc-slot-lookup", Applicability.MANUAL, f.file, f.header,
                         f"{name}() ({', '.join(gc_slots)}) now looks module state up; at interpreter "
                         "shutdown it can run after the module is gone: prefer data kept in the "
                         "instance", done=False)
            hot = sorted({r[5:] for r in f.roles if r.startswith("slot:")} & HOT_SLOTS)
            if acc.kind in ("type", "binary") and hot:
                ctx.item("hot-path-lookup", Applicability.MANUAL, f.file, f.header,
                         f"{name}() ({', '.join(hot)}) now looks module state up on every call "
                         "with PyType_GetModuleByDef; if it is hot, store the state pointer in the "
                         "instance when it is created, or use METH_METHOD's defining_class",
                         done=False)
        for macro, members in sorted(by_macro.items()):
            self._macro_functions(ctx, macro, members)
        # 2b. Callbacks made by qsort(), PyArg_Parse converters and the like read the state
        # their caller set.
        published: set = set()
        for f in ctx.module.functions:
            if d.access.get(f.name) is None or d.access[f.name].kind != "callback" or not d.needs.get(f.name):
                continue
            for caller, loc, library, ends in f.sync_callback_sites:
                if loc in published:
                    continue  # another callback in the same struct, handed over by the same call
                published.add(loc)
                nl = ctx.newline(loc.file)
                indent = ctx.line_indent(loc.file, loc.span.start)
                saved = f"previous_{ctx.names.callback_state}" + (str(len(published)) if len(published) > 1 else "")
                cb = ctx.names.callback_state
                ctx.insert(loc.file, loc.span.start,
                           f"{ctx.names.state_type} *{saved} = {cb};{nl}{indent}{cb} = {var};{nl}{indent}",
                           self.id)
                for kind, at, close in ends:
                    if kind == "after":
                        ctx.insert(loc.file, at, f"{nl}{indent}{cb} = {saved};", self.id)
                    elif kind == "open":  # the start of a branch of the `if` that made the call
                        inner = ctx.body_indent(loc.file, Span(at - 1, at - 1))
                        ctx.insert(loc.file, at, f"{nl}{inner}{cb} = {saved};", self.id)
                    else:  # a one-statement branch: it gets braces around the restore and itself
                        inner = ctx.line_indent(loc.file, close - 1)
                        ctx.insert(loc.file, at, f" {{{nl}{inner}{cb} = {saved};", self.id, order=5)
                        # Before the restore after the statement, which ends at the same byte.
                        ctx.insert(loc.file, close, f"{nl}{indent}}}", self.id, order=-1)
                ctx.item(self.id, Applicability.SAFE, loc.file, loc.span,
                         f"{caller}() publishes its state in the thread-local {cb} while "
                         f"{library}() calls {f.name}() back")
        # 2. Helpers: callers pass their state.
        for f in ctx.module.functions:
            if not d.needs.get(f.name) or f.defined_by:
                continue
            for call in f.calls:
                if call.callee in d.helpers or call.callee in self._impl_names:
                    at = call.args[0].start if call.args else \
                        ctx.text(f.file).rfind(b")", call.span.start, call.span.end)
                    self._pass_state(ctx, f.file, call.callee, call.span.start, at, not call.args)
        # 2c. The same calls in #if branches porter did not read, edited on the tokens.
        for f in ctx.module.functions:
            if f.name not in d.helpers and f.name not in self._impl_names:
                continue
            for caller, loc in f.unread_calls:
                if caller is None or not d.needs.get(caller):
                    continue
                empty = ctx.text(loc.file)[loc.span.end:].lstrip()[:1] == b")"
                self._pass_state(ctx, loc.file, f.name, loc.span.start, loc.span.end, empty)
                ctx.item(self.id, Applicability.SAFE, loc.file, loc.span,
                         f"{caller}() passes its state to {f.name}() in an #if branch porter did not "
                         "read (edited on the tokens: check that configuration builds)")
        # 2d. Macros defined only under a condition porter cannot evaluate are left as they are.
        conditional_files = dict(ctx.module.file_conditions)
        for m in ctx.module.macros:
            if m.active is not None and m.file not in conditional_files:
                continue
            called = sorted(h for h in d.helpers if re.search(rf"\b{re.escape(h)}\s*\(", m.body_text))
            if called:
                cond = conditional_files.get(m.file) or "its #if"
                ctx.item(self.id, Applicability.MANUAL, m.file, m.span,
                         f"macro {m.name} (only under {cond}) calls {', '.join(called)}(), which now "
                         "take the module state first: that configuration needs it passed by hand",
                         done=False)
        # 3. Uses.
        for key, g in d.movable.items():
            field = fields[key]
            for u in g.uses:
                if u.access in ("macro", "macro-paste"):
                    continue
                self._rewrite_use(ctx, u, field.name, g.kind is GlobalKind.STATIC_TYPE)
        # 3b. Macros that paste moved names together: `str ## S` becomes `state->str ## S`.
        pasting = {u.name for u in ctx.module.macro_uses
                   if any((None, n) in fields for n in u.pasted)}
        for m in ctx.module.macros:
            if m.name in pasting:
                self._prefix_paste_chains(ctx, m)
        # 4a. State finders: `get_global_state()` becomes the caller's state; the finder goes.
        self._finders(ctx)
        # 4. PyState_FindModule: the state, or the module object, of the function's access.
        for use in ctx.module.find_module_uses:
            if use.function in d.finders:
                continue
            if use.wants == "existing":
                # Multi-phase import makes a new module each time: nothing to return early.
                for span in use.null_checks:
                    ctx.edit(use.file, ctx.statement_span_with_line(use.file, span), "", self.id)
                ctx.item(self.id, Applicability.SAFE, use.file, use.span,
                         f"{use.function}() returned the module PyState_FindModule() found: removed, "
                         "each import now makes its own module")
                continue
            if use.wants == "state-via":
                # `m = PyState_FindModule(&def); if (m == NULL) return 0; s = GET(m);`: s is the state.
                for span in (use.statement, *use.null_checks):
                    ctx.edit(use.file, ctx.statement_span_with_line(use.file, span), "", self.id)
                for span in use.state_reads:
                    ctx.edit(use.file, span, var, self.id)
            elif use.wants == "state":
                span = use.span
                m = next((m for m in ctx.module.macros if m.name == use.macro), None) if use.macro else None
                if m is not None:
                    # `#define ST (GET(mod))` becomes `#define ST state`: `(state)` would read as a cast.
                    body = ctx.text(m.file)[m.body.start:m.body.end]
                    inner = body.strip()
                    at = m.body.start + (len(body) - len(body.lstrip()))
                    if inner.startswith(b"(") and inner.endswith(b")") and \
                            inner[1:-1].strip() == ctx.text(use.file)[span.start:span.end].strip():
                        span = Span(at, at + len(inner))
                ctx.edit(use.file, span, var, self.id)
            else:
                ctx.edit(use.file, use.span, self._module_expression(ctx, d.access[use.function]), self.id)
            ctx.item(self.id, Applicability.SAFE, use.file, use.span,
                     f"{use.source} ("
                     + ("NULL for multi-phase modules" if use.source.startswith("PyState")
                        else "one for the whole process")
                     + ") replaced by the "
                     + ("module object" if use.wants == "module" else "module state")
                     + (f" in macro {use.macro}" if use.macro else f" in {use.function}()"))
        # 5. Macro bodies that name moved globals.
        for m in ctx.module.macros:
            keys = d.state_macros.get(m.name)
            if not keys:
                continue
            direct = {k[1]: fields[k] for k in keys if k in fields}
            self._rewrite_macro(ctx, m, {}, direct)
            if direct or any(u.macro == m.name for u in ctx.module.find_module_uses):
                ctx.item(self.id, Applicability.SAFE, m.file, m.span,
                         f"macro {m.name} now reads `{var}`: every function using it declares one")

    def _state_expression(self, ctx: PortContext, acc) -> str | None:
        n = ctx.names
        if acc.kind == "module":
            return f"{n.get_state}((PyObject *){acc.params[0]})" if acc.params[0] in self._untyped \
                else f"{n.get_state}({acc.params[0]})"
        if acc.kind == "type":
            ctx.needs_by_type = True
            return f"{n.get_state_by_type}(Py_TYPE({acc.params[0]}))"
        if acc.kind == "new":
            ctx.needs_by_type = True
            return f"{n.get_state_by_type}({acc.params[0]})"
        if acc.kind == "binary":
            ctx.needs_by_operands = True
            return f"{n.get_state_by_operands}((PyObject *){acc.params[0]}, (PyObject *){acc.params[1]})"
        if acc.kind == "callback":
            return n.callback_state
        return None

    def _macro_functions(self, ctx: PortContext, macro_name: str, members) -> None:
        """Functions a macro defines share its body: one state declaration, in the macro."""
        exprs = {self._state_expression(ctx, acc) for _, acc in members}
        if len(exprs) != 1 or None in exprs:
            ctx.fail(f"functions defined by macro {macro_name} reach module state in different ways")
            return
        m = next(m for m in ctx.module.macros if m.name == macro_name)
        toks = [t for t in tokenize(ctx.text(m.file), m.body.start, m.body.end, directives=False)
                if t.kind not in ("comment", "newline")]
        brace = next((t for t in toks if t.text == b"{"), None)
        if brace is None:
            ctx.fail(f"cannot find the body of the functions macro {macro_name} defines")
            return
        var = ctx.names.state_var
        ctx.insert(m.file, brace.end, f" {ctx.names.state_type} *{var} = {exprs.pop()};", self.id)
        for i, tok in enumerate(toks[:-1]):
            if tok.kind == "ident" and tok.text.decode() in ctx.decisions.helpers and toks[i + 1].text == b"(":
                empty = i + 2 < len(toks) and toks[i + 2].text == b")"
                self._pass_state(ctx, m.file, tok.text.decode(), tok.start, toks[i + 1].end, empty)
        ctx.item(self.id, Applicability.SAFE, m.file, m.span,
                 f"macro {macro_name} defines {', '.join(f.name for f, _ in members)}: "
                 f"its body declares `{var}` for all of them")

    def _prefix_paste_chains(self, ctx: PortContext, m) -> None:
        toks = [t for t in tokenize(ctx.text(m.file), m.body.start, m.body.end, directives=False)
                if t.kind not in ("comment", "newline")]
        for i, tok in enumerate(toks):
            starts_chain = i + 1 < len(toks) and toks[i + 1].text == b"##" and (
                i == 0 or toks[i - 1].text != b"##")
            if starts_chain and tok.kind == "ident":
                ctx.insert(m.file, tok.start, f"{ctx.names.state_var}->", self.id)
        ctx.item(self.id, Applicability.SAFE, m.file, m.span,
                 f"macro {m.name} builds global names with ##: they now name fields of "
                 f"`{ctx.names.state_var}`")

    def _split(self, ctx: PortContext, f, acc) -> None:
        """A method also called directly: `f_impl(state, ...)` does the work, `f` finds the state."""
        impl = self._impl_names[f.name]
        src = ctx.sources[f.file]
        name_at = src.text.find(f.name.encode(), f.header.start, f.header.end)
        ctx.edit(f.file, Span(name_at, name_at + len(f.name)), impl, self.id)
        self._add_parameter(ctx, f, prototypes=False)
        nl = ctx.newline(f.file)
        params = ", ".join(p.type_text for p in f.params)
        args = ", ".join([f"{ctx.names.get_state}({acc.params[0]})"] + [p.name for p in f.params])
        header = src.text_of(Span(f.header.start, name_at)).replace("\n", " ").strip()
        wrapper = (f"{nl}{nl}{header}{nl}{f.name}({params}){nl}{{{nl}"
                   f"    return {impl}({args});{nl}}}")
        ctx.insert(f.file, f.span.end, wrapper, self.id)
        for loc in f.prototypes:
            text = src.text_of(loc.span) if loc.file == f.file else ctx.sources[loc.file].text_of(loc.span)
            proto = text.replace(f.name, impl, 1)
            proto = proto.replace("(", f"({ctx.names.state_type} *{ctx.names.state_var}, ", 1)
            ctx.insert(loc.file, loc.span.end, f"{nl}{proto}", self.id)
        ctx.item(self.id, Applicability.SAFE, f.file, f.header,
                 f"{f.name}() is a module method that other functions also call directly: "
                 f"{impl}(state, ...) does the work and {f.name}() finds the state for it")

    def _finders(self, ctx: PortContext) -> None:
        d = ctx.decisions
        if not d.finders:
            return
        var = ctx.names.state_var
        for f in ctx.module.functions:
            if f.name in d.finders:
                ctx.edit(f.file, ctx.statement_span_with_line(f.file, f.span), "", self.id)
                for loc in f.prototypes:
                    ctx.edit(loc.file, ctx.statement_span_with_line(loc.file, loc.span), "", self.id)
                ctx.item(self.id, Applicability.SAFE, f.file, f.header,
                         f"{f.name}() found the state with PyState_FindModule (NULL for multi-phase "
                         f"modules): its callers use their own `{var}` instead")
                continue
            for call in f.calls:
                if call.callee in d.finders:
                    ctx.edit(f.file, call.span, var, self.id)
        for m in ctx.module.macros:
            text = ctx.text(m.file)[m.body.start:m.body.end]
            for name in d.finders:
                for match in re.finditer(rb"\b" + re.escape(name.encode()) + rb"\s*\(\s*\)", text):
                    ctx.edit(m.file, Span(m.body.start + match.start(), m.body.start + match.end()),
                             var, self.id)

    def _module_expression(self, ctx: PortContext, acc) -> str:
        if acc.kind == "exec":
            return ctx.exec_param
        if acc.kind == "module":
            return acc.params[0]
        if acc.kind == "type":
            return f"PyType_GetModuleByDef(Py_TYPE({acc.params[0]}), &{ctx.names.def_name})"
        return f"PyType_GetModuleByDef({acc.params[0]}, &{ctx.names.def_name})"

    def _add_parameter(self, ctx: PortContext, f, prototypes: bool = True) -> None:
        param = f"{ctx.names.state_type} *{ctx.names.state_var}"
        lists = [(f.file, f.param_list)]
        if prototypes:
            lists += [(loc.file, loc.span) for loc in f.prototype_param_lists]
        for file, plist in lists:
            if plist is None:
                continue
            inner = ctx.text(file)[plist.start + 1:plist.end - 1]
            if inner.strip() in (b"", b"void"):
                ctx.edit(file, Span(plist.start + 1, plist.end - 1), param, self.id)
            else:
                ctx.insert(file, plist.start + 1, param + ", ", self.id)
        if not f.is_static:
            ctx.item(self.id, Applicability.SAFE, f.file, f.header,
                     f"{f.name}() has external linkage and now takes a state parameter: "
                     "code outside these files that calls it must pass one")

    def _rewrite_use(self, ctx: PortContext, u, field: str, is_type: bool) -> None:
        var = ctx.names.state_var
        if is_type:
            if u.shape == "address-of":
                ctx.edit(u.file, u.shape_span, f"{var}->{field}", self.id)
            elif u.shape == "member":
                ctx.edit(u.file, u.shape_span, f"{var}->{field}->", self.id)
            else:
                ctx.edit(u.file, u.span, f"(*{var}->{field})", self.id)
            return
        ctx.edit(u.file, u.span, f"{var}->{field}", self.id)

    def _pass_state(self, ctx: PortContext, file: str, name: str, name_start: int, at: int,
                    empty: bool) -> None:
        """A call of a helper gets the caller's state as its first argument (inserted at `at`),
        and a split function's call its `_impl` name."""
        if name in self._impl_names:
            ctx.edit(file, Span(name_start, name_start + len(name)), self._impl_names[name], self.id)
        var = ctx.names.state_var
        ctx.insert(file, at, var if empty else f"{var}, ", self.id)

    def _rewrite_macro(self, ctx: PortContext, m, fields_by_field, fields_by_global) -> None:
        var = ctx.names.state_var
        text = ctx.text(m.file)
        toks = [t for t in tokenize(text, m.body.start, m.body.end, directives=False)
                if t.kind not in ("comment", "newline")]
        for i, tok in enumerate(toks):
            if tok.kind != "ident":
                continue
            name = tok.text.decode()
            following = toks[i + 1] if i + 1 < len(toks) else None
            if following is not None and following.text == b"(" and (
                    name in ctx.decisions.helpers or name in self._impl_names):
                # A helper call in the body: it passes the state of the function it expands in.
                empty = i + 2 < len(toks) and toks[i + 2].text == b")"
                self._pass_state(ctx, m.file, name, tok.start, following.end, empty)
                continue
            field = fields_by_global.get(name)
            if field is None:
                continue
            prev = toks[i - 1] if i > 0 else None
            if prev is not None and prev.text in (b".", b"->"):
                continue
            if field.is_type and prev is not None and prev.text == b"&":
                ctx.edit(m.file, Span(prev.start, tok.end), f"{var}->{field.name}", self.id)
            elif field.is_type:
                ctx.edit(m.file, Span(tok.start, tok.end), f"(*{var}->{field.name})", self.id)
            else:
                ctx.edit(m.file, Span(tok.start, tok.end), f"({var}->{field.name})", self.id)
