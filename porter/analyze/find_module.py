"""Uses of PyState_FindModule: in code (read on the tree) and in macro bodies (read lexically)."""

from __future__ import annotations

import re

from porter.analyze import ctree
from porter.analyze.ctree import if_around, null_test
from porter.analyze.index import FileIndex
from porter.analyze.macros import MacroTable, expand
from porter.model import FindModuleUse, FindModuleWant, Span
from porter.parse import Node, walk

_IN_MACRO = re.compile(
    rb"(?P<state>PyModule_GetState\s*\(\s*)?(?P<find>PyState_FindModule\s*\(\s*&\s*(?P<def>\w+)\s*\))"
    rb"(?(state)\s*\))")
# A macro that is only a (cast) PyModule_GetState of its argument: `GLOBALS(m)`.
_STATE_GETTER = re.compile(r"\(*\s*(?:\(\s*[\w\s]+\*\s*\)\s*)?PyModule_GetState\s*\(\s*\(*\s*x\s*\)*\s*\)\s*\)*")


def _finds_own_module(call: Node, def_name: str | None, macros: MacroTable, scopes) -> bool:
    """`PyState_FindModule(&def)` of this module's own def (or one porter cannot name, a global
    pointer to it among them): not of a def in a local or parameter (`PyState_FindModule(def)`,
    a test that looks up any module it is given), nor of another module's def."""
    args = ctree.call_args(call)
    if def_name is None or len(args) != 1:
        return True
    arg = ctree.unwrap_parens(args[0])
    if arg is not None and arg.type == "identifier":
        return not ctree.is_declared_locally(arg.text.decode(), arg, scopes)
    if arg is not None and arg.type == "pointer_expression" and arg.children[0].type == "&":
        target = ctree.unwrap_parens(arg.child_by_field_name("argument"))
        if target is not None and target.type == "identifier":
            name = target.text.decode()
            return name == def_name or name in macros
    return True


def collect_find_module_uses(indexes: list[FileIndex], def_name: str | None, macros: MacroTable,
                             init_function: str | None = None) -> list[FindModuleUse]:
    out = []
    getters = _state_getter_macros(macros)
    for idx in indexes:
        src = idx.src
        for call in idx.calls_by_name.get("PyState_FindModule", ()):
            if not _finds_own_module(call, def_name, macros, idx.scopes):
                continue
            owner = ctree.enclosing_function(call)
            function = ctree.function_name(owner)[0] if owner is not None else None
            wrapper = _state_wrapper(call)
            if wrapper is not None:
                out.append(FindModuleUse(idx.path, ctree.span(wrapper), function, FindModuleWant.STATE,
                                         call=ctree.span(call)))
                continue
            found = None
            if owner is not None and function == init_function:
                found = existing_module_return(call, idx.path, function)
            elif owner is not None:
                found = _state_via_local(call, owner, getters, idx.path, function)
            out.append(found or FindModuleUse(idx.path, ctree.span(call), function, FindModuleWant.MODULE))
        for m in idx.macros:
            body = src.text[m.body.start:m.body.end]
            for match in _IN_MACRO.finditer(body):
                if def_name and match.group("def").decode() != def_name:
                    continue
                span = Span(m.body.start + match.start(), m.body.start + match.end())
                out.append(FindModuleUse(idx.path, span, None,
                                         FindModuleWant.STATE if match.group("state") else FindModuleWant.MODULE,
                                         m.name, call=Span(m.body.start + match.start("find"),
                                                           m.body.start + match.end("find"))))
    out.sort(key=lambda u: (u.file, u.span.start))
    return out


def _state_getter_macros(macros: MacroTable) -> set[str]:
    """Macros that are a (cast) PyModule_GetState of their argument: only those whose
    expansion may spell it are expanded, once per table."""
    if "state-getters" not in macros.memo:
        out = set()
        for name in macros.by_name:
            if name not in macros.may_expand_to("PyModule_GetState"):
                continue
            text = expand(macros, name, ["x"])
            if text is not None and _STATE_GETTER.fullmatch(text.strip()):
                out.add(name)
        macros.memo["state-getters"] = frozenset(out)
    return set(macros.memo["state-getters"])  # type: ignore[call-overload]


def _stored_in(call: Node) -> tuple[str, Node, Node] | None:
    """`PyObject *m = <call>;` or `m = <call>` (possibly inside a condition): the local's name,
    the node holding the store, and the statement around it."""
    node = call
    while node.parent is not None and node.parent.type == "parenthesized_expression":
        node = node.parent
    parent = node.parent
    if parent is None:
        return None
    if parent.type == "init_declarator" and parent.child_by_field_name("value") == node:
        d = ctree.read_declarator(parent)
        decl = parent.parent
        if d.name and decl is not None and decl.type == "declaration" and len(ctree.declarators(decl)) == 1:
            return d.name, parent, decl
        return None
    if parent.type == "assignment_expression" and parent.child_by_field_name("right") == node:
        left = parent.child_by_field_name("left")
        if left is None or left.type != "identifier":
            return None
        stmt = parent
        while stmt.parent is not None and stmt.parent.type in (
                "parenthesized_expression", "binary_expression", "condition_clause"):
            stmt = stmt.parent
        return left.text.decode(), parent, stmt.parent if stmt.parent is not None else stmt
    return None


def _mentions(body: Node, name: str, skip: Node) -> list[Node]:
    return [n for n in walk(body) if n.type == "identifier" and n.text.decode() == name
            and not (skip.start_byte <= n.start_byte < skip.end_byte)]


def _returns_only(stmt: Node | None, allowed_before: tuple[str, ...] = ()) -> list[Node] | None:
    """The statements of an if body that ends in a return: [..., return]."""
    if stmt is None:
        return None
    body = [c for c in stmt.named_children if c.type != "comment"] if stmt.type == "compound_statement" else [stmt]
    if not body or body[-1].type != "return_statement":
        return None
    for s in body[:-1]:
        if not (s.type == "expression_statement" and any(s.text.startswith(a.encode()) for a in allowed_before)):
            return None
    return body


def _state_via_local(call: Node, owner: Node, getters: set[str], path: str,
                     function: str | None) -> FindModuleUse | None:
    """`PyObject *m = PyState_FindModule(&def); if (m == NULL) return 0; S *s = GET(m);`."""
    stored = _stored_in(call)
    body = owner.child_by_field_name("body")
    if stored is None or body is None:
        return None
    name, store, statement = stored
    if statement.type not in ("declaration", "expression_statement"):
        return None
    null_checks, reads = [], []
    for ident in _mentions(body, name, store):
        parent = ident.parent
        while parent is not None and parent.type == "parenthesized_expression":
            parent = parent.parent
        if parent is not None and parent.type == "argument_list" and len(parent.named_children) == 1:
            call_node = parent.parent
            if call_node is not None and ctree.call_name(call_node) in getters | {"PyModule_GetState"}:
                reads.append(ctree.span(call_node))
                continue
        check = if_around(ident)
        if check is not None and null_test(check.child_by_field_name("condition"), name) == "null" \
                and _returns_only(check.child_by_field_name("consequence")) is not None:
            null_checks.append(ctree.span(check))
            continue
        return None
    if not reads:
        return None
    return FindModuleUse(path, ctree.span(call), function, FindModuleWant.STATE_VIA, statement=ctree.span(statement),
                         null_checks=tuple(null_checks), state_reads=tuple(reads))


def existing_module_return(call: Node, path: str, function: str | None) -> FindModuleUse | None:
    """Init's `if ((m = PyState_FindModule(&def)) != NULL) { Py_INCREF(m); return m; }`."""
    stored = _stored_in(call)
    if stored is None:
        return None
    name, store, statement = stored
    check = statement if statement.type == "if_statement" else None
    declaration = None
    if check is None:
        # The store is its own statement: the check is the statement after it.
        following = statement.next_named_sibling
        while following is not None and following.type == "comment":
            following = following.next_named_sibling
        check = following if following is not None and following.type == "if_statement" else None
        declaration = statement
    if check is None or check.child_by_field_name("alternative") is not None:
        return None
    if null_test(check.child_by_field_name("condition"), name) != "found":
        return None
    body = _returns_only(check.child_by_field_name("consequence"), ("Py_INCREF", "Py_XINCREF"))
    if body is None:
        return None
    value = ctree.unwrap_parens(body[-1].named_children[0]) if body[-1].named_children else None
    if value is None or name not in value.text.decode():
        return None
    spans = [ctree.span(check)]
    if declaration is not None and declaration.type != "declaration":
        # A plain `m = PyState_FindModule(&def);` goes; the init rewrite removes the module
        # variable's declaration `PyObject *m = PyState_FindModule(&def);` itself.
        spans.insert(0, ctree.span(declaration))
    return FindModuleUse(path, ctree.span(call), function, FindModuleWant.EXISTING, null_checks=tuple(spans))


def _state_wrapper(call):
    """`PyModule_GetState(PyState_FindModule(&def))`: the outer call, when there is one."""
    node = call.parent
    while node is not None and node.type == "parenthesized_expression":
        node = node.parent
    if node is None or node.type != "argument_list":
        return None
    outer = node.parent
    if outer is not None and outer.type == "call_expression" and ctree.call_name(outer) == "PyModule_GetState":
        return outer
    return None


def module_global_uses(indexes: list[FileIndex], name: str, macros: MacroTable,
                       init_function: str | None) -> list[FindModuleUse]:
    """Uses of a global that init fills with the module object (`mod = PyModule_Create(...)`),
    outside init: each is a lookup of the module (or, wrapped in a state getter, of its state),
    like PyState_FindModule."""
    from porter.lexer import tokenize

    getters = _state_getter_macros(macros) | {"PyModule_GetState"}
    source = f"the global {name}"
    out = []
    for idx in indexes:
        for ident in idx.identifiers.get(name, []):
            owner = ctree.enclosing_function(ident)
            function = ctree.function_name(owner)[0] if owner is not None else None
            if function is None or function == init_function or ctree.is_declared_locally(name, ident, idx.scopes):
                continue
            parent = ident.parent
            while parent is not None and parent.type == "parenthesized_expression":
                parent = parent.parent
            call = parent.parent if parent is not None and parent.type == "argument_list" else None
            if call is not None and ctree.call_name(call) in getters and len(ctree.call_args(call)) == 1:
                out.append(FindModuleUse(idx.path, ctree.span(call), function, FindModuleWant.STATE, source=source,
                                         call=ctree.span(ident)))
            else:
                out.append(FindModuleUse(idx.path, ctree.span(ident), function, FindModuleWant.MODULE, source=source))
        for m in idx.macros:
            toks = [t for t in tokenize(idx.src.text, m.body.start, m.body.end, directives=False)
                    if t.kind not in ("comment", "newline")]
            for i, tok in enumerate(toks):
                if tok.kind != "ident" or tok.text.decode() != name:
                    continue
                wrapped = (i >= 2 and toks[i - 1].text == b"(" and toks[i - 2].text.decode() in getters
                           and i + 1 < len(toks) and toks[i + 1].text == b")")
                if wrapped:
                    out.append(FindModuleUse(idx.path, Span(toks[i - 2].start, toks[i + 1].end), None,
                                             FindModuleWant.STATE, m.name, source=source))
                else:
                    out.append(FindModuleUse(idx.path, Span(tok.start, tok.end), None, FindModuleWant.MODULE, m.name,
                                             source=source))
    return out
