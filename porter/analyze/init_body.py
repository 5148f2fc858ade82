"""The init function's body: what becomes of each statement when it turns into an exec slot."""

from __future__ import annotations

import re

from porter import capi
from porter.analyze import ctree
from porter.analyze.find_module import existing_module_return
from porter.analyze.index import FileIndex
from porter.analyze.initializers import referenced_name
from porter.analyze.macros import MacroTable, expand
from porter.model import (
    AddObjectCall,
    FieldAssignment,
    InitBody,
    InitFunction,
    Location,
    ReturnSite,
    Span,
    TypeReady,
)
from porter.parse import Node, descendants, walk

_WORD = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")

_NULLISH = re.compile(r"^\(?\s*(NULL|0|\(\s*PyObject\s*\*\s*\)\s*NULL)\s*\)?$")


def _init_definition(index: FileIndex, init: InitFunction) -> tuple[Node, Node] | None:
    """The definition that fills the module (init, or the worker it delegates to) and its body."""
    fn = index.functions.get(init.worker, [None])[0] if init.worker else _node_at(index, init.span)
    body = fn.child_by_field_name("body") if fn is not None else None
    return (fn, body) if body is not None else None


def init_field_assignments(index: FileIndex, init: InitFunction,
                           helpers: list[tuple[FileIndex, Node]] | tuple = ()) -> tuple[FieldAssignment, ...]:
    """`Type.tp_dealloc = f;` statements of the init function and of `helpers` (functions only
    it calls): the slots init fills at run time, which give functions their roles."""
    found = _init_definition(index, init)
    return _field_assignments(index, found[1], helpers) if found is not None else ()


def _field_assignments(index: FileIndex, body: Node,
                       helpers: list[tuple[FileIndex, Node]] | tuple) -> tuple[FieldAssignment, ...]:
    assigns = []
    for where, scope in [(index, body)] + [(i, h.child_by_field_name("body")) for i, h in helpers]:
        if scope is None:
            continue
        for node in descendants(scope, ("assignment_expression",)):
            left = node.child_by_field_name("left")
            if left is not None and left.type == "field_expression" and left.children[1].type == ".":
                target = left.child_by_field_name("argument")
                field = left.child_by_field_name("field")
                stmt = node.parent
                if (target is not None and target.type == "identifier" and field is not None
                        and stmt is not None and stmt.type == "expression_statement"):
                    right = node.child_by_field_name("right")
                    assigns.append(FieldAssignment(
                        target.text.decode(), field.text.decode(),
                        where.src.text_of(right), ctree.statement_span(where.src, stmt),
                        where.path, reads_locals=any(_declared_in(scope, n.text.decode())
                                                     for n in walk(right) if n.type == "identifier")))
    return tuple(assigns)


def read_init_body(index: FileIndex, init: InitFunction, macros: MacroTable,
                   helpers: list[tuple[FileIndex, Node]] | tuple = ()) -> InitBody | None:
    """`helpers` are functions only the init function calls: their type set-up belongs to it."""
    name = init.worker or init.function
    found = _init_definition(index, init)
    if found is None:
        return None
    fn, body = found
    src = index.src
    problems: list[str] = []
    create_statements, module_var, kind, create_nodes = _create_sites(index, init, body, problems, macros)
    decls = _module_var_decls(body, module_var) if module_var else []
    module_var_global = bool(module_var and create_statements and not _declared_in(body, module_var))
    null_checks = _null_checks(src, body, module_var, create_nodes)
    returns = _returns(src, body, module_var, macros, problems)
    decrefs, add_module, add_objects, readies = [], [], [], []
    metatypes: list[tuple[str, str]] = []
    for node in descendants(body, ("call_expression",)):
        callee = ctree.call_name(node)
        args = ctree.call_args(node)
        if callee in capi.RELEASE_MACROS and module_var and len(args) == 1 and _is_name(args[0], module_var):
            stmt = _statement_of(node)
            if stmt is not None:
                decrefs.append(ctree.statement_span(src, stmt))
        elif callee == "PyState_AddModule":
            stmt = _enclosing_if_or_statement(node)
            if stmt is not None:
                add_module.append(ctree.statement_span(src, stmt))
        elif callee == "PyModule_AddObject" and len(args) == 3:
            add_objects.append(_add_object(src, node, args))
        elif (callee == "PyType_Ready" and len(args) == 1) or (
                callee in capi.STRUCTSEQ_INIT_CALLS and len(args) == 2):
            type_name = referenced_name(src.text_of(args[0]))
            stmt = _enclosing_if_or_statement(node)
            if type_name and stmt is not None:
                readies.append(TypeReady(
                    type_name, ctree.statement_span(src, stmt), ctree.span(node), stmt.type == "if_statement",
                    alone=_alone(stmt, node, macros),
                    structseq_desc=src.text_of(args[1]) if len(args) == 2 else None))
    for where, scope in [(index, body)] + [(i, h.child_by_field_name("body")) for i, h in helpers]:
        if scope is None:
            continue
        for node in descendants(scope, ("call_expression",)):
            metatypes.extend(_metatypes_set(where, node, macros))
            if where is not index or scope is not body:
                if ctree.call_name(node) == "PyType_Ready":
                    a = ctree.call_args(node)
                    type_name = referenced_name(where.src.text_of(a[0])) if a else None
                    stmt = _enclosing_if_or_statement(node)
                    if type_name and stmt is not None:
                        readies.append(TypeReady(type_name, ctree.statement_span(where.src, stmt), ctree.span(node),
                                                 stmt.type == "if_statement", _alone(stmt, node, macros),
                                                 file=where.path))
    def returns_in_body(name: str, object_like: bool = False) -> bool:
        m = macros.get(name)
        return m is not None and (not object_like or m.params is None) \
            and re.search(r"\breturn\b", m.body_text) is not None

    in_body = index.src.text[body.start_byte:body.end_byte]
    returning = sorted({name for name, _ in index.calls_in(body.start_byte, body.end_byte) if returns_in_body(name)}
                       | {n for n in {w.decode("utf-8", "replace") for w in _WORD.findall(in_body)}
                          if returns_in_body(n, object_like=True) and index.uses_in(n, body.start_byte, body.end_byte)})
    returning = [n for n in returning if n not in {r.text.split("(")[0].strip().rstrip(";") for r in returns}]
    reused = _module_var_reused(index, body, module_var, create_nodes, macros)
    releases = _macro_module_releases(index, body, module_var, returning, macros,
                                      list(create_statements) + list(null_checks))
    droppable = set(decrefs) | set(add_module) | {d for a in add_objects for d in a.failure_decrefs}
    header_end = _header_end(fn, src)
    header_split = _header_split(fn, src, header_end)
    return InitBody(
        function=name, file=index.path, header=Span(fn.start_byte, header_end),
        body=ctree.span(body), module_var=module_var, module_var_decls=tuple(decls),
        create_statements=tuple(create_statements), create_kind=kind,
        null_checks=tuple(null_checks), returns=tuple(returns), module_decrefs=tuple(decrefs),
        add_module=tuple(add_module), add_objects=tuple(add_objects),
        returning_macros=tuple(returning), module_var_reused=reused,
        module_var_global=module_var_global,
        type_readies=tuple(readies), field_assignments=_field_assignments(index, body, helpers),
        problems=tuple(problems),
        lone_bodies=_lone_bodies(body, droppable), header_split=header_split,
        macro_module_releases=releases, runtime_metatypes=tuple(dict.fromkeys(metatypes)),
        statement_count=sum(1 for c in body.named_children if c.type != "comment"),
        only_worker=_only_worker(src, body, module_var, set(decls) | set(create_statements) | set(null_checks)),
    )


# How C tests a status for failure: `< 0`, `!= 0`, `== -1`, or nothing (`if (f(m))`).
_FAILURE_TEST = r"(?:<\s*0|!=\s*0|==\s*-1)?"
_FAILED = re.compile(rf"\s*{_FAILURE_TEST}\s*")


def _only_worker(src, body: Node, module_var: str | None, known: set[Span]) -> str | None:
    """W when the body only creates the module, checks it, calls `W(m)` and gives up on
    failure (releasing the module, returning NULL), and returns the module."""
    if not module_var:
        return None
    worker = None
    for stmt in body.named_children:
        if stmt.type == "comment" or ctree.statement_span(src, stmt) in known:
            continue
        if stmt.type == "declaration" and any(ctree.read_declarator(d).name == module_var
                                              for d in ctree.declarators(stmt)):
            continue  # `PyObject *m = PyModule_Create(...)` or its declaration
        if stmt.type == "return_statement":
            value = ctree.unwrap_parens(stmt.named_children[0]) if stmt.named_children else None
            if value is not None and _is_name(value, module_var):
                continue
            return None
        called = _worker_check(src, stmt, module_var) if worker is None else None
        if called is None:
            return None
        worker = called
    return worker


def _worker_check(src, stmt: Node, module_var: str) -> str | None:
    """`if (W(m) < 0) { Py_DECREF(m); return NULL; }`: W."""
    if stmt.type != "if_statement" or stmt.child_by_field_name("alternative") is not None:
        return None
    cond = ctree.unwrap_parens(stmt.child_by_field_name("condition"))
    call = cond
    if cond is not None and cond.type == "binary_expression":
        left, right = cond.child_by_field_name("left"), cond.child_by_field_name("right")
        if left is None or right is None or not _FAILED.fullmatch(src.text[left.end_byte:right.end_byte].decode()):
            return None
        call = ctree.unwrap_parens(left)
    if call is None or call.type != "call_expression":
        return None
    args = ctree.call_args(call)
    if len(args) != 1 or not _is_name(ctree.unwrap_parens(args[0]) or args[0], module_var):
        return None
    consequence = stmt.child_by_field_name("consequence")
    parts = consequence.named_children if consequence is not None and consequence.type == "compound_statement" \
        else [consequence] if consequence is not None else []
    for part in parts:
        text = " ".join(src.text_of(part).split())
        if text in (f"Py_DECREF({module_var});", f"Py_XDECREF({module_var});", f"Py_CLEAR({module_var});",
                    "return NULL;", "return 0;") or part.type == "comment":
            continue
        return None
    return ctree.call_name(call)


def _macro_module_releases(index, body: Node, module_var: str | None, returning: list[str],
                           macros: MacroTable, dropped: list[Span]) -> tuple[tuple[str, Location], ...]:
    """`Py_XDECREF(param);` in the body of a returning macro, when every use of the macro in
    init passes the module (or NULL) as `param`, directly or through a macro that forwards
    its own parameter (`EXT_ADD(m, ...)` whose body says `EXT_INIT_ERROR(m)`)."""
    if not module_var:
        return ()
    out = []
    for name in returning:
        macro = macros.get(name)
        if macro is None or not macro.params:
            continue
        toks = [t for t in macro.tokens if t.kind not in ("comment", "newline")]
        for i in range(len(toks) - 3):
            if toks[i].text.decode() not in capi.RELEASE_MACROS or toks[i + 1].text != b"(" \
                    or toks[i + 3].text != b")" or toks[i + 2].text.decode() not in macro.params:
                continue
            param = macro.params.index(toks[i + 2].text.decode())
            if not _passes_module(index, body, name, param, module_var, macros, dropped, depth=0):
                continue
            end = toks[i + 4].end if i + 4 < len(toks) and toks[i + 4].text == b";" else toks[i + 3].end
            out.append((name, Location(macro.file, Span(toks[i].start, end))))
    return tuple(out)


def _passes_module(index, body: Node, name: str, param: int, module_var: str, macros: MacroTable,
                   dropped: list[Span], depth: int) -> bool:
    """Whether every use of macro `name` in init (and in the bodies of the macros used there)
    gives argument `param` as the module or NULL; False when a use cannot be read. Uses in
    `dropped` (the create statement and its NULL check, which the port deletes) do not count."""
    allowed = {module_var, "NULL", "0", "(NULL)"}
    for ident in index.identifiers.get(name, []):
        if not (body.start_byte <= ident.start_byte < body.end_byte) \
                or any(d.start <= ident.start_byte < d.end for d in dropped):
            continue
        call = ident.parent
        if call is None or call.type != "call_expression" or ctree.call_name(call) != name:
            return False  # a use the tree does not show as a call: its arguments are unknown
        args = ctree.call_args(call)
        if param >= len(args) or index.src.text_of(args[param]).strip() not in allowed:
            return False
    if depth > 2:
        return False
    for outer in macros.all():
        if outer.active is False or outer.name == name or name not in outer.identifiers:
            continue
        toks = [t for t in outer.tokens if t.kind not in ("comment", "newline")]
        for i, tok in enumerate(toks):
            if tok.text.decode() != name:
                continue
            passed = _body_call_args(toks, i)
            if passed is None or param >= len(passed):
                return False
            forwarded = passed[param]
            if forwarded in ("NULL", "0"):
                continue
            if not outer.params or forwarded not in outer.params:
                return False
            if not _passes_module(index, body, outer.name, outer.params.index(forwarded), module_var, macros,
                                  dropped, depth + 1):
                return False
    return True


def _body_call_args(toks, i: int) -> list[str] | None:
    """The arguments, as single identifiers, of the macro use at toks[i] in another macro's body."""
    if i + 1 >= len(toks) or toks[i + 1].text != b"(":
        return None
    args: list[str] = []
    current: list[str] = []
    depth = 0
    for tok in toks[i + 1:]:
        if tok.text in (b"(", b"[", b"{"):
            depth += 1
            if depth == 1:
                continue
        elif tok.text in (b")", b"]", b"}"):
            depth -= 1
            if depth == 0:
                args.append(" ".join(current))
                return args
        elif tok.text == b"," and depth == 1:
            args.append(" ".join(current))
            current = []
            continue
        current.append(tok.text.decode("utf-8", "replace"))
    return None


def _lone_bodies(body: Node, spans: set[Span]) -> tuple[Span, ...]:
    """Those of `spans` that are statements standing alone as the body of an if/else/loop:
    deleting one needs `{}` in its place."""
    found = []
    if not spans:
        return ()
    for node in walk(body):
        if Span(node.start_byte, node.end_byte) in spans and node.parent is not None \
                and node.parent.type not in ("compound_statement", "labeled_statement") \
                and node.type.endswith("statement"):
            found.append(Span(node.start_byte, node.end_byte))
    return tuple(sorted(set(found)))


def _alone(stmt: Node, call: Node, macros: MacroTable | None = None) -> bool:
    """`if (PyType_Ready(&T) < 0) ...`, `PyType_Ready(&T);` or `CHECK(PyType_Ready(&T));` with a
    project macro that only tests its argument: the call is the whole test."""
    if stmt.type == "expression_statement":
        inner = stmt.named_children[0] if stmt.named_children else None
        if inner is not None and inner != call and inner.type == "call_expression" and macros is not None:
            args = ctree.call_args(inner)
            return len(args) == 1 and ctree.unwrap_parens(args[0]) == call \
                and _only_tests_its_argument(macros, ctree.call_name(inner))
        return inner == call
    cond = stmt.child_by_field_name("condition")
    inner = ctree.unwrap_parens(cond)
    while inner is not None and inner.type in ("binary_expression", "unary_expression"):
        operands = [c for c in inner.named_children]
        if inner.type == "unary_expression":
            inner = operands[0] if operands else None
            continue
        left, right = operands[0], operands[-1]
        if right.type in ("number_literal", "unary_expression") and left.start_byte <= call.start_byte < left.end_byte:
            inner = ctree.unwrap_parens(left)
        else:
            break
    return inner == call and stmt.child_by_field_name("alternative") is None


# `do { if ((x) < 0) goto error; } while (0)`: a macro that evaluates its one argument, and on
# failure leaves (goto or return), nothing else.
_TEST_MACRO = r"""\s*(?:do\s*\{{)?\s*if\s*\(\s*\(?\s*{p}\s*\)?\s*""" + _FAILURE_TEST + r"""\s*\)\s*
                  (?:\{{\s*)?(?:goto\s+\w+|return\b[^;]*)\s*;?\s*(?:\}}\s*)?(?:\}}\s*while\s*\(\s*0\s*\))?\s*"""


def _only_tests_its_argument(macros: MacroTable, name: str | None) -> bool:
    macro = macros.get(name or "")
    if macro is None or macro.params is None or len(macro.params) != 1:
        return False
    param = re.escape(macro.params[0])
    body = re.sub(r"\\\r?\n", " ", macro.body_text)  # line continuations
    return re.fullmatch(_TEST_MACRO.format(p=param), body, re.VERBOSE) is not None


def _module_var_reused(index, body: Node, module_var: str | None, create_nodes, macros) -> bool:
    """Whether the module's variable is used before the module exists (as a temporary)."""
    if not module_var or not create_nodes:
        return False
    created_at = min(n.start_byte for n in create_nodes)
    # `if ((m = PyState_FindModule(&def)) != NULL) return m;` goes with the port: not a use.
    idiom = [s for name, call in index.calls_in(body.start_byte, created_at) if name == "PyState_FindModule"
             for use in [existing_module_return(call, index.path, None)] if use is not None
             for s in use.null_checks]
    for node in index.uses_in(module_var, body.start_byte, created_at):
        if not _is_declarator(node) and not any(s.start <= node.start_byte < s.end for s in idiom):
            return True
    for name, call in index.calls_in(body.start_byte, created_at):
        if name in macros:
            text = expand(macros, name, [index.src.text_of(a) for a in ctree.call_args(call)]) or ""
            if re.search(rf"\b{re.escape(module_var)}\b", text):
                return True
    return False


def _is_declarator(node: Node) -> bool:
    parent = node.parent
    while parent is not None and parent.type in ("pointer_declarator", "init_declarator"):
        if parent.type == "init_declarator":
            return parent.child_by_field_name("declarator") is not None and \
                parent.child_by_field_name("declarator").start_byte <= node.start_byte < \
                parent.child_by_field_name("declarator").end_byte
        parent = parent.parent
    return parent is not None and parent.type == "declaration"


def _node_at(index: FileIndex, span: Span) -> Node | None:
    node = index.src.root.descendant_for_byte_range(span.start, span.end)
    while node is not None and node.type != "function_definition":
        node = node.parent
    return node


def _header_end(fn: Node, src=None) -> int:
    """The end of the function's declarator; past the `#endif` of a group that spells the name
    in one live branch and only dead ones otherwise (`#if PY_MAJOR_VERSION >= 3`
    `PyInit_x(void)` `#else` `initx(void)` `#endif`): the new header replaces all of it."""
    decl = fn.child_by_field_name("declarator")
    body = fn.child_by_field_name("body")
    end = decl.end_byte if decl is not None else (body.start_byte if body is not None else fn.end_byte)
    if src is None or body is None:
        return end
    for cond in src.pre.conditionals:
        if not (fn.start_byte <= cond.span.start < end <= cond.endif.start and cond.endif.end <= body.start_byte):
            continue
        live = cond.branch_at(end - 1)
        if live is not None and all(b.dead for i, b in enumerate(cond.branches) if i != live):
            line_end = src.text.find(b"\n", cond.endif.end - 1)
            end = cond.endif.end if line_end < 0 or line_end >= body.start_byte else line_end
    return end


def _header_split(fn: Node, src, header_end: int) -> tuple[Span, Span] | None:
    """(specifiers, declarator) when an #if directive sits between them in the header."""
    kind, decl = fn.child_by_field_name("type"), fn.child_by_field_name("declarator")
    if kind is None or decl is None or decl.end_byte != header_end:
        return None
    if not any(fn.start_byte <= d.start < header_end for c in src.pre.conditionals for d in c.directive_spans()):
        return None
    if any(kind.end_byte <= d.start and d.end <= decl.start_byte for c in src.pre.conditionals
           for d in c.directive_spans()):
        return Span(fn.start_byte, kind.end_byte), ctree.span(decl)
    return None


def _is_name(node: Node, name: str) -> bool:
    node = ctree.unwrap_parens(node)
    return node is not None and node.type == "identifier" and node.text.decode() == name


def _statement_of(node: Node) -> Node | None:
    current = node
    while current is not None and current.type not in ("expression_statement", "declaration",
                                                        "return_statement"):
        if current.type in ("compound_statement", "function_definition"):
            return None
        current = current.parent
    return current


def _enclosing_if_or_statement(node: Node) -> Node | None:
    """The statement a call stands in, or the `if` whose condition it is."""
    current = node
    while current is not None:
        parent = current.parent
        if parent is None:
            return None
        if parent.type == "if_statement" and parent.child_by_field_name("condition") is not None and \
                parent.child_by_field_name("condition").start_byte <= node.start_byte < \
                parent.child_by_field_name("condition").end_byte:
            return parent
        if current.type == "expression_statement":
            return current
        if parent.type in ("compound_statement", "function_definition"):
            return None
        current = parent
    return None


def _create_sites(index, init: InitFunction, body: Node, problems: list[str], macros: MacroTable):
    src = index.src
    statements, nodes = [], []
    module_var = None
    kind = "none"
    for call in init.create_calls:
        node = src.root.descendant_for_byte_range(call.span.start, call.span.end)
        while node is not None and ctree.span(node) != call.span:
            node = node.parent
        if node is None or not (body.start_byte <= node.start_byte < body.end_byte):
            continue
        parent = node.parent
        while parent is not None and parent.type in ("parenthesized_expression", "cast_expression"):
            parent = parent.parent
        if parent is not None and parent.type == "assignment_expression":
            left = parent.child_by_field_name("left")
            module_var = left.text.decode() if left is not None and left.type == "identifier" else None
            stmt = parent.parent
            kind = "assign"
            if stmt is not None and stmt.type != "expression_statement":
                # `if ((m = PyModule_Create(&def)) == NULL) return NULL;`: the whole check goes.
                check = ctree.if_around(parent)
                if check is None or module_var is None or \
                        ctree.null_test(check.child_by_field_name("condition"), module_var) != "null":
                    problems.append(f"unrecognised module creation at line {src.line(node.start_byte)}")
                    continue
                stmt = check
        elif parent is not None and parent.type == "init_declarator":
            module_var = ctree.read_declarator(parent).name
            stmt = parent.parent
            kind = "declare"
        elif parent is not None and parent.type == "return_statement":
            stmt = parent
            kind = "return"
        elif node.type == "identifier" or (parent is not None and parent.type == "expression_statement") \
                or _macro_argument(node, macros) is not None:
            # A project macro standing for the whole create statement, or one that assigns its
            # argument and checks it (`ASSIGN_PTR(m, PyModule_Create(&def));`).
            outer = _macro_argument(node, macros)
            if outer is not None:
                node, parent = outer, outer.parent
            stmt = parent if parent is not None and parent.type == "expression_statement" else node
            kind = "macro"
            args = ctree.call_args(node) if node.type == "call_expression" else []
            expansion = expand_use(index, node, macros)
            m = re.search(r"([A-Za-z_]\w*)\s*=\s*\(*\s*PyModule_Create", expansion or "")
            if m:
                module_var = m.group(1)
                for a in args:
                    if src.text_of(a).strip() == module_var:
                        break
            if module_var is None and args:
                module_var = src.text_of(args[0]).strip()
        else:
            problems.append(f"unrecognised module creation at line {src.line(node.start_byte)}")
            continue
        if stmt is None:
            continue
        if stmt.type == "declaration" and len(ctree.declarators(stmt)) > 1:
            # `PyObject *m = PyModule_Create(&def), *meta;`: only its declarator goes.
            if kind != "declare":
                problems.append(f"module created inside a multi-variable declaration at line "
                                f"{src.line(stmt.start_byte)}")
                continue
            kind = "declare-one"
            statements.append(_declarator_with_comma(stmt, parent))
            nodes.append(stmt)
            continue
        statements.append(ctree.statement_span(src, stmt))
        nodes.append(stmt)
    return statements, module_var, kind, nodes


# `Py_SET_TYPE(obj, type)` in C, or in the text of a macro's expansion.
_SET_TYPE = re.compile(r"\bPy_SET_TYPE\s*\(\s*([^,()]+(?:\([^()]*\))?[^,()]*?)\s*,\s*([^,()]+?)\s*\)")


def _metatypes_set(where: FileIndex, call: Node, macros: MacroTable) -> list[tuple[str, str]]:
    """(type, metatype) for `Py_SET_TYPE(&T, &Meta)`, or for a project macro whose expansion
    does it, through a local the expansion declares (`PyTypeObject *type = (&T); Py_SET_TYPE(type,
    &Meta);`)."""
    name = ctree.call_name(call) or ""
    if name == "Py_SET_TYPE":
        args = ctree.call_args(call)
        pairs = [(where.src.text_of(args[0]), where.src.text_of(args[1]))] if len(args) == 2 else []
        text = ""
    elif name in macros:
        text = expand_use(where, call, macros) or ""
        pairs = _SET_TYPE.findall(text)
    else:
        return []
    found = []
    for obj, meta in pairs:
        obj = obj.strip()
        local = re.search(rf"\*\s*{re.escape(obj)}\s*=\s*(.+?);", text) if re.fullmatch(r"\w+", obj) else None
        if local is not None:
            obj = local.group(1)
        t, m = referenced_name(obj.strip()), referenced_name(meta.strip())
        if t and m:
            found.append((t, m))
    return found


def _macro_argument(call: Node, macros: MacroTable) -> Node | None:
    """The project macro call whose argument `call` is, when that call is a statement."""
    args = call.parent
    outer = args.parent if args is not None and args.type == "argument_list" else None
    if outer is None or outer.type != "call_expression" or (ctree.call_name(outer) or "") not in macros \
            or outer.parent is None or outer.parent.type != "expression_statement":
        return None
    return outer


def expand_use(index, node: Node, table: MacroTable) -> str | None:
    name = ctree.call_name(node) if node.type == "call_expression" else node.text.decode()
    args = [index.src.text_of(a) for a in ctree.call_args(node)] if node.type == "call_expression" else None
    return expand(table, name or "", args)


def _declared_in(body: Node, name: str) -> bool:
    """Whether `name` is a local of the function whose body this is."""
    for node in descendants(body, ("declaration",)):
        if any(ctree.read_declarator(d).name == name for d in ctree.declarators(node)):
            return True
    return False


def _module_var_decls(body: Node, module_var: str) -> list[Span]:
    out = []
    for stmt in body.named_children:
        if stmt.type != "declaration":
            continue
        decls = ctree.declarators(stmt)
        for d in decls:
            info = ctree.read_declarator(d)
            if info.name != module_var:
                continue
            if info.value is not None and info.value.type == "call_expression" \
                    and ctree.call_name(info.value) != "PyState_FindModule":
                continue  # `PyObject *m = PyModule_Create(...)`: a create statement
            if len(decls) == 1:
                out.append(ctree.span(stmt))
            else:
                out.append(_declarator_with_comma(stmt, d))
    return out


def _declarator_with_comma(stmt: Node, d: Node) -> Span:
    """The span of one declarator and one adjacent comma, so that deleting it leaves valid C."""
    children = stmt.children
    i = next(k for k, c in enumerate(children) if c == d)
    if i + 1 < len(children) and children[i + 1].type == ",":
        nxt = children[i + 2] if i + 2 < len(children) else children[i + 1]
        return Span(d.start_byte, nxt.start_byte)
    prev = children[i - 1]
    if prev.type == ",":
        return Span(prev.start_byte, d.end_byte)
    return ctree.span(d)


def _null_checks(src, body: Node, module_var: str | None, create_nodes: list[Node]) -> list[Span]:
    """`if (m == NULL) ...` right after a create statement: dead once the module is given."""
    out: list[Span] = []
    if module_var is None:
        return out
    for stmt in create_nodes:
        nxt = stmt.next_named_sibling
        while nxt is not None and nxt.type == "comment":
            nxt = nxt.next_named_sibling
        if nxt is None or nxt.type != "if_statement":
            continue
        cond = nxt.child_by_field_name("condition")
        text = re.sub(r"\s+", "", src.text_of(cond)) if cond is not None else ""
        v = re.escape(module_var)
        if re.fullmatch(rf"\((!{v}|{v}==NULL|NULL=={v}|{v}==0|!\({v}\)|\({v}\)==NULL)\)", text) \
                and nxt.child_by_field_name("alternative") is None:
            out.append(ctree.statement_span(src, nxt))
    return out


def _returns(src, body: Node, module_var: str | None, macros: MacroTable, problems: list[str]) -> list[ReturnSite]:
    out = []
    for node in descendants(body, ("return_statement", "expression_statement")):
        if src.pre.dead(node.start_byte):
            continue  # `#if PY_MAJOR_VERSION < 3` ... `return;`: no Python porter targets compiles it
        if node.type == "return_statement":
            value = node.named_children[0] if node.named_children else None
            out.append(ReturnSite(ctree.span(node), _classify_value(src, value, module_var, macros),
                                  src.text_of(node)))
        elif node.type == "expression_statement":
            # MODULE_RETURN(m); / INITERROR; : a project macro that returns.
            inner = node.named_children[0] if node.named_children else None
            if inner is None:
                continue
            name = None
            args = None
            if inner.type == "call_expression":
                name = ctree.call_name(inner)
                args = [src.text_of(a) for a in ctree.call_args(inner)]
            elif inner.type == "identifier":
                name = inner.text.decode()
            if not name or name not in macros:
                continue
            expansion = expand(macros, name, args) or ""
            m = re.match(r"\s*return\b\s*(.*?);?\s*$", expansion, re.DOTALL)
            if m:
                out.append(ReturnSite(ctree.span(node), _classify_text(m.group(1), module_var),
                                      src.text_of(node)))
    return out


def _classify_value(src, value: Node | None, module_var: str | None, macros: MacroTable) -> str:
    if value is None:
        return "other"
    text = src.text_of(value)
    kind = _classify_text(text, module_var)
    if kind == "other":
        inner = ctree.unwrap_parens(value)
        if inner is not None and inner.type == "identifier" and inner.text.decode() in macros:
            kind = _classify_text(expand(macros, inner.text.decode(), None) or "", module_var)
        elif inner is not None and inner.type == "call_expression" and (ctree.call_name(inner) or "") in macros:
            args = [src.text_of(a) for a in ctree.call_args(inner)]
            kind = _classify_text(expand(macros, ctree.call_name(inner) or "", args) or "", module_var)
        elif inner is not None and inner.type == "call_expression" and ctree.call_name(inner) in (
                "PyModule_Create", "PyModule_Create2"):
            kind = "create"
    return kind


def _classify_text(text: str, module_var: str | None) -> str:
    t = re.sub(r"\s+", " ", text).strip()
    while t.startswith("(") and t.endswith(")"):
        t = t[1:-1].strip()
    if _NULLISH.match(t) or t == "NULL":
        return "null"
    if module_var and t == module_var:
        return "module"
    if re.match(r"PyModule_Create2?\s*\(", t):
        return "create"
    return "other"


def _add_object(src, call: Node, args: list[Node]) -> AddObjectCall:
    value = args[2]
    inner = ctree.unwrap_parens(value)
    name = None
    if inner is not None and inner.type == "identifier":
        name = inner.text.decode()
    elif inner is not None and inner.type == "pointer_expression":
        arg = inner.child_by_field_name("argument")
        if arg is not None and arg.type == "identifier":
            name = arg.text.decode()
    incref = None
    stmt = _enclosing_if_or_statement(call)
    if stmt is not None and name:
        # The Py_INCREF for this value: right before the call, or earlier in a run of
        # increfs and adds (`Py_INCREF(&A); Py_INCREF(&B); AddObject(A); AddObject(B);`).
        prev = stmt.prev_named_sibling
        while prev is not None:
            if prev.type == "comment":
                prev = prev.prev_named_sibling
                continue
            pcall = prev.named_children[0] if prev.type == "expression_statement" and prev.named_children else None
            callee = ctree.call_name(pcall) if pcall is not None and pcall.type == "call_expression" else None
            if callee in ("Py_INCREF", "Py_XINCREF"):
                pargs = ctree.call_args(pcall)
                if pargs and referenced_name(src.text_of(pargs[0])) == name:
                    incref = ctree.span(prev)
                    break
            elif callee != "PyModule_AddObject":
                break
            prev = prev.prev_named_sibling
    failure = []
    if stmt is not None and stmt.type == "if_statement" and incref is not None:
        consequence = stmt.child_by_field_name("consequence")
        for node in walk(consequence) if consequence is not None else []:
            if node.type == "call_expression" and ctree.call_name(node) in ("Py_DECREF", "Py_XDECREF"):
                a = ctree.call_args(node)
                if a and referenced_name(src.text_of(a[0])) == name:
                    s = _statement_of(node)
                    if s is not None:
                        failure.append(ctree.span(s))
    fn = call.child_by_field_name("function")
    return AddObjectCall(ctree.span(call), ctree.span(fn), ctree.span(value), name, incref, tuple(failure))
