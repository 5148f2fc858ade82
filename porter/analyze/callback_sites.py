"""Where a function's address goes to code that calls it back before returning: callback sites.

A callback whose signature is fixed can still reach module state when porter knows when it
runs: during a call its caller makes (qsort() and friends, a call handed a local struct that
holds it, a call handed the caller's local as the callback's user data, a call handed a local
handle it was registered on). Each such call is a CallbackSite: the statement that makes it and
where the call is over, so that what the caller publishes around it can be undone.
"""

from __future__ import annotations

import re

from porter import capi
from porter.analyze import ctree
from porter.analyze.index import FileIndex
from porter.model import (
    CallbackSite,
    CallEnd,
    CallEndKind,
    Location,
    ObjectLocal,
    Param,
    UserDataCarrier,
    VoidParamCast,
)
from porter.parse import Node, descendants, walk


def sync_sites(indexes: list[FileIndex], taken: list[Location], casts: dict[str, str] | None = None,
               project_callers: dict[str, frozenset[int]] | None = None) -> list:
    """Address-taken uses that only a call in progress can reach, with their statements.

    Either the address is an argument of qsort() and friends (or of a project function that
    only calls it: `project_callers`, see synchronous_callers), or it is stored in a local
    (automatic) struct whose address only goes to calls: once the function returns the struct
    is gone, so whatever it is handed to calls back during that call. Every use must be one
    of these, else there are none.
    """
    out = []
    by_path = {idx.path: idx for idx in indexes}
    for loc in taken:
        node = by_path[loc.file].src.root.descendant_for_byte_range(loc.span.start, loc.span.end)
        if node is None or _thread_start(node):
            return []  # it runs on a thread of its own: what this thread publishes never reaches it
        sites = (_library_site(loc.file, node, project_callers or {}) or _local_struct_sites(loc.file, node)
                 or _user_data_site(loc.file, node, casts or {}) or _handle_sites(loc.file, node)) \
            if node is not None else None
        if not sites:
            return []
        out.extend(sites)
    return out


def _called_with(node: Node) -> tuple[Node | None, str | None]:
    """The call `node` (through casts, parentheses and `&`) is an argument of, and its name."""
    arglist = _argument(node).parent
    call = arglist.parent if arglist is not None and arglist.type == "argument_list" else None
    return call, ctree.call_name(call) if call is not None else None


def _argument(node: Node) -> Node:
    """`node` with the casts, parentheses and `&` around it: the argument it is."""
    while node.parent is not None and node.parent.type in ("cast_expression", "parenthesized_expression",
                                                           "pointer_expression"):
        node = node.parent
    return node


def _thread_start(node: Node) -> bool:
    """`PyThread_start_new_thread(f, arg)`: `f` runs on a new thread."""
    return _called_with(node)[1] in capi.THREAD_STARTERS


def _library_site(path: str, node: Node, project_callers: dict[str, frozenset[int]]) -> list | None:
    call, name = _called_with(node)
    if name not in capi.SYNCHRONOUS_CALLBACK_CALLERS and not (
            name in project_callers and call is not None and _position(call, _argument(node)) in project_callers[name]):
        return None
    owner = ctree.enclosing_function(call)
    site = _call_site(call)
    caller = ctree.function_name(owner)[0] if owner is not None else None
    if site is None or caller is None or name is None:
        return None
    stmt, ends = site
    return [CallbackSite(caller, Location(path, ctree.span(stmt)), name, ends)]


def _position(call: Node, arg: Node) -> int:
    return next((i for i, a in enumerate(ctree.call_args(call)) if a == arg), -1)


def synchronous_callers(indexes: list[FileIndex]) -> dict[str, frozenset[int]]:
    """The project's functions that only call a function-pointer parameter, or hand it on to
    themselves in the same place (`mpatch_fold(bins, get_item, ...)` recursing): a callback
    passed there runs during the call, as with qsort(). Function -> those parameters' positions."""
    out: dict[str, frozenset[int]] = {}
    for idx in indexes:
        for name, nodes in idx.functions.items():
            if len(nodes) != 1:
                continue
            _, _, declarator = ctree.function_name(nodes[0])
            params = declarator.child_by_field_name("parameters") if declarator is not None else None
            body = nodes[0].child_by_field_name("body")
            if params is None or body is None:
                continue
            found = set()
            decls = [p for p in params.named_children if p.type == "parameter_declaration"]
            for position, p in enumerate(decls):
                d = p.child_by_field_name("declarator")
                info = ctree.read_declarator(d) if d is not None else None
                if info is not None and info.name and info.is_function_pointer \
                        and _only_called(idx, body, info.name, name, position):
                    found.add(position)
            if found:
                out[name] = frozenset(found)
    return out


def _only_called(idx: FileIndex, body: Node, param: str, function: str, position: int) -> bool:
    uses = idx.uses_in(param, body.start_byte, body.end_byte)
    for use in uses:
        parent = use.parent
        if parent is not None and parent.type == "call_expression" and parent.child_by_field_name("function") == use:
            continue  # called
        call = parent.parent if parent is not None and parent.type == "argument_list" else None
        if call is not None and ctree.call_name(call) == function and _position(call, use) == position:
            continue  # handed on to itself, in the same place
        return False
    return bool(uses)


_VOID_POINTER_PARAM = re.compile(r"\s*(?:const\s+)?void\s*\*\s*(?:const\s+)?([A-Za-z_]\w*)\s*")
_POINTER_TO = re.compile(r"(?:const\s+)?((?:struct\s+)?[A-Za-z_]\w*)\s*\*")


def void_param_casts(node: Node, params: tuple[Param, ...]) -> tuple[VoidParamCast, ...]:
    """Each cast of a `void *` parameter to a pointer type, in order, with where the function
    has made sure the parameter is not NULL (see VoidParamCast); a parameter it tests for NULL
    anywhere else is left out: it may be absent wherever state would be read from it."""
    voids = {m.group(1) for p in params if (m := _VOID_POINTER_PARAM.fullmatch(p.type_text))}
    body = node.child_by_field_name("body")
    if not voids or body is None:
        return ()
    found: list[tuple[str, str]] = []
    held: dict[str, set[str]] = {}  # parameter -> the names that hold it (itself, locals cast from it)
    for cast in descendants(body, ("cast_expression",)):
        value = ctree.unwrap_parens(cast.child_by_field_name("value"))
        kind = cast.child_by_field_name("type")
        if value is None or kind is None or value.type != "identifier" or value.text.decode() not in voids:
            continue
        param = value.text.decode()
        held.setdefault(param, {param}).update(_assigned_to(cast))
        m = _POINTER_TO.fullmatch(" ".join(kind.text.decode().split()))
        if m and (param, m.group(1)) not in found:
            found.append((param, m.group(1)))
    tests = _null_tests(body, set().union(*held.values())) if held else []
    out = []
    for param, kind in found:
        mine = [at for name, at in tests if name in held[param]]
        if not mine:
            out.append(VoidParamCast(param, kind))
            continue
        guard = _early_return_guard(body, mine)
        if guard is not None:
            out.append(VoidParamCast(param, kind, guard.start_byte, guard.end_byte))
    return tuple(out)


def object_locals(node: Node) -> tuple[ObjectLocal, ...]:
    """The pointer locals a function declares first thing and never assigns again, from a call
    or a cast (`RuntimeData *rd = (RuntimeData *)JS_GetRuntimeOpaque(rt);`): in a callback, one
    of them may be a module object a library kept for it. Those it tests for NULL anywhere but in
    an early-return guard are left out."""
    body = node.child_by_field_name("body")
    if body is None:
        return ()
    found: list[tuple[str, str, Node]] = []
    for stmt in body.named_children:
        if stmt.type != "declaration":
            if stmt.type != "comment":
                break  # only the declarations the body starts with
            continue
        declarators = ctree.declarators(stmt)
        kind = stmt.child_by_field_name("type")
        if len(declarators) != 1 or kind is None or "static" in ctree.storage(stmt):
            continue
        d = declarators[0]
        info = ctree.read_declarator(d)
        value = ctree.unwrap_parens(info.value) if info.value is not None else None
        if info.name is None or not info.is_pointer or info.is_array or value is None \
                or value.type != "call_expression" or kind.type not in ("type_identifier", "struct_specifier"):
            continue
        found.append((info.name, " ".join(kind.text.decode().split()), stmt))
    out = []
    for name, kind, stmt in found:
        if _assigned_again(body, name):
            continue
        tests = [at for _, at in _null_tests(body, {name})]
        if not tests:
            out.append(ObjectLocal(name, kind, stmt.end_byte))
            continue
        guard = _early_return_guard(body, tests)
        if guard is not None and guard.start_byte >= stmt.end_byte:
            out.append(ObjectLocal(name, kind, guard.end_byte))
    return tuple(out)


def _assigned_again(body: Node, name: str) -> bool:
    for n in descendants(body, ("assignment_expression", "pointer_expression", "update_expression")):
        target = n.child_by_field_name("left") if n.type == "assignment_expression" else \
            n.child_by_field_name("argument")
        if n.type == "pointer_expression" and n.children[0].type != "&":
            continue
        target = ctree.unwrap_parens(target)
        if target is not None and target.type == "identifier" and target.text.decode() == name:
            return True
    return False


def _early_return_guard(body: Node, tests: list[int]) -> Node | None:
    """The statement of the body (not nested) `if (!x ...) return ...;` whose condition holds
    every one of `tests`: past it the parameter is known not to be NULL."""
    for stmt in body.named_children:
        condition = stmt.child_by_field_name("condition") if stmt.type == "if_statement" else None
        if condition is None or not all(condition.start_byte <= at < condition.end_byte for at in tests):
            continue
        if stmt.child_by_field_name("alternative") is None and ctree.returns(stmt.child_by_field_name("consequence")):
            return stmt
        return None
    return None


def _assigned_to(expr: Node) -> set[str]:
    """The local `expr` is stored in: `T *x = expr;` or `x = expr;`."""
    parent = expr.parent
    while parent is not None and parent.type == "parenthesized_expression":
        parent = parent.parent
    if parent is None:
        return set()
    target = parent.child_by_field_name("declarator") if parent.type == "init_declarator" else \
        parent.child_by_field_name("left") if parent.type == "assignment_expression" else None
    while target is not None and target.type == "pointer_declarator":
        target = target.child_by_field_name("declarator")
    return {target.text.decode()} if target is not None and target.type == "identifier" else set()


def _null_tests(body: Node, names: set[str]) -> list[tuple[str, int]]:
    """Where the body tests one of `names` for NULL (`!x`, `x == NULL`, `if (x)`, `x ? a : b`):
    (name, offset) in document order."""
    out: list[tuple[str, int]] = []
    for node in descendants(body, ("unary_expression", "binary_expression", "parenthesized_expression",
                                   "conditional_expression")):
        if node.type == "unary_expression" and node.children and node.children[0].type == "!":
            operand = ctree.unwrap_parens(node.child_by_field_name("argument"))
            candidates = [operand]
        elif node.type == "binary_expression" and node.child_by_field_name("operator") is not None \
                and node.child_by_field_name("operator").type in ("==", "!=", "&&", "||"):
            candidates = [ctree.unwrap_parens(node.child_by_field_name("left")),
                          ctree.unwrap_parens(node.child_by_field_name("right"))]
        elif node.type == "parenthesized_expression" and node.parent is not None \
                and node.parent.type in ("if_statement", "while_statement"):
            candidates = [ctree.unwrap_parens(node)]
        elif node.type == "conditional_expression":
            candidates = [ctree.unwrap_parens(node.child_by_field_name("condition"))]
        else:
            continue
        out.extend((c.text.decode(), c.start_byte) for c in candidates if c is not None and c.type == "identifier"
                   and c.text.decode() in names)
    return out


def _user_data_site(path: str, ident: Node, casts: dict[str, str]) -> list | None:
    """`run(..., cb, &data, ...)` with `data` a local of the type `cb` casts its `void *`
    parameter to: the call hands `cb` its user data, which can carry the caller's state."""
    if not casts:
        return None
    arg = ident
    while arg.parent is not None and arg.parent.type in ("cast_expression", "parenthesized_expression"):
        arg = arg.parent
    if arg.parent is None or arg.parent.type != "argument_list":
        return None
    arglist = arg.parent
    call, owner = arglist.parent, ctree.enclosing_function(arglist)
    if call is None or owner is None:
        return None
    for other in arglist.named_children:
        target = other.child_by_field_name("argument") if other.type == "pointer_expression" else None
        if target is None or other.children[0].type != "&" or target.type != "identifier":
            continue
        struct = _local_type(owner, target.text.decode())
        site = _call_site(call) if struct in casts else None
        if site is not None:
            stmt, ends = site
            carrier = UserDataCarrier(target.text.decode(), struct or "", casts[struct or ""])
            return [CallbackSite(ctree.function_name(owner)[0] or "", Location(path, ctree.span(stmt)),
                                 ctree.call_name(call) or "a call", ends, carrier)]
    return None


def _handle_sites(path: str, ident: Node) -> list | None:
    """`set_callback(h, cb, data)` where `h` is a local handle its function makes and keeps to
    itself (`create(&h)` or `h = create(...)`; then only passed to calls, or `h->field`): the
    library reaches `cb` only through `h`, so it can call it back only from the calls handed `h`
    after that one, which the function makes before it returns."""
    arg = ident
    while arg.parent is not None and arg.parent.type in ("cast_expression", "parenthesized_expression"):
        arg = arg.parent
    if arg.parent is None or arg.parent.type != "argument_list" or arg.parent.parent is None:
        return None
    registration, owner = arg.parent.parent, ctree.enclosing_function(arg)
    body = owner.child_by_field_name("body") if owner is not None else None
    if body is None or _result_kept(registration):
        return None
    caller = ctree.function_name(owner)[0] or ""
    for handle in ctree.call_args(registration):
        if handle.type != "identifier" or handle.id == arg.id or not _plain_local(body, handle.text.decode()):
            continue
        sites = _calls_handed(body, handle.text.decode(), registration)
        if sites:
            return [CallbackSite(caller, Location(path, ctree.span(stmt)), name, ends)
                    for stmt, name, ends in sites]
    return None


def _result_kept(call: Node) -> bool:
    """Whether the call's value goes somewhere (assigned, returned, passed on): what it returns
    may be an object that keeps the callback (`capsule = PyCapsule_New(p, name, destructor)`).
    A status tested where it is made is no such object."""
    node, parent = call, call.parent
    while parent is not None and parent.type == "parenthesized_expression":
        node, parent = parent, parent.parent
    if parent is None or parent.type == "expression_statement":
        return False
    if parent.type in ("if_statement", "while_statement"):
        return parent.child_by_field_name("condition") != node
    if parent.type == "unary_expression":
        return parent.children[0].type != "!"
    if parent.type == "binary_expression":
        op = parent.child_by_field_name("operator")
        return op is None or op.type not in ("==", "!=", "<", "<=", ">", ">=", "&&", "||")
    return True


def _plain_local(body: Node, name: str) -> bool:
    """A local (not static) variable of the function whose body is `body`."""
    return any(ctree.read_declarator(d).name == name for decl in descendants(body, ("declaration",))
               if "static" not in ctree.storage(decl) for d in ctree.declarators(decl))


def _calls_handed(body: Node, name: str, registration: Node) -> list | None:
    """The statements after `registration` that hand the local `name` to a call, if every use
    of it keeps it inside the function (else None)."""
    found: dict[int, tuple] = {}
    for n in walk(body):
        if n.type != "identifier" or n.text.decode() != name:
            continue
        parent, declarator = n.parent, n
        while parent.type == "pointer_declarator":
            parent, declarator = parent.parent, parent
        if parent.type in ("init_declarator", "declaration") and (
                parent.type == "declaration" or parent.child_by_field_name("declarator") == declarator):
            value = parent.child_by_field_name("value") if parent.type == "init_declarator" else None
            if value is None or value.type == "call_expression" or value.text in (b"NULL", b"0"):
                continue  # its declaration (`T *h;`), made by a call or empty
            return None
        if parent.type == "field_expression" and parent.child_by_field_name("argument") == n \
                and parent.children[1].type == "->":
            continue  # `h->field`
        if (parent.type == "binary_expression" and parent.child_by_field_name("operator").type in ("==", "!=")) \
                or (parent.type == "unary_expression" and parent.children[0].type == "!") \
                or (parent.type == "parenthesized_expression" and parent.parent is not None
                    and parent.parent.type in ("if_statement", "while_statement")):
            continue  # tested: `h == NULL`, `!h`, `if (h)`
        value = ctree.unwrap_parens(parent.child_by_field_name("right")) \
            if parent.type == "assignment_expression" and parent.child_by_field_name("left") == n else None
        if value is not None and value.type == "call_expression":
            continue  # `h = create(...)`
        if parent.type == "pointer_expression" and parent.children[0].type == "&" \
                and parent.parent is not None and parent.parent.type == "argument_list":
            continue  # `create(&h)`
        if parent.type != "argument_list":
            return None  # stored, returned or compared: it may outlive the function's calls
        call = parent.parent
        if call.id == registration.id or call.start_byte < registration.end_byte:
            continue
        site = _call_site(call)
        if site is None:
            return None
        stmt, ends = site
        found.setdefault(stmt.start_byte, (stmt, ctree.call_name(call) or "a call", ends))
    return [found[k] for k in sorted(found)]


def _local_type(function: Node, name: str) -> str | None:
    """The type of a plain (not static, pointer or array) local variable of `function`."""
    body = function.child_by_field_name("body")
    for decl in descendants(body, ("declaration",)) if body is not None else ():
        if "static" in ctree.storage(decl):
            continue
        for d in ctree.declarators(decl):
            info = ctree.read_declarator(d)
            kind = decl.child_by_field_name("type")
            if info.name == name and not info.is_pointer and not info.is_array and kind is not None:
                return " ".join(kind.text.decode().split())
    return None


def _local_struct_sites(path: str, ident: Node) -> list | None:
    """`Visitor v = {cb, ...};` or `v.on_item = cb;` in a function that passes `&v` only to calls."""
    owner = ctree.enclosing_function(ident)
    if owner is None:
        return None
    var = _local_struct_holding(ident)
    if var is None:
        return None
    body = owner.child_by_field_name("body")
    sites = []
    for n in walk(body):
        if n.type != "identifier" or n.text.decode() != var:
            continue
        parent = n.parent
        if parent.type == "field_expression" and parent.child_by_field_name("argument") == n \
                and parent.children[1].type == ".":
            continue  # v.field
        if parent.type in ("init_declarator", "declaration") and (
                parent.type == "declaration" or parent.child_by_field_name("declarator") == n):
            continue  # its declaration
        if parent.type == "pointer_expression" and parent.children[0].type == "&" \
                and parent.parent is not None and parent.parent.type == "argument_list":
            call = parent.parent.parent
            site = _call_site(call)
            if site is None or ctree.call_name(call) in capi.KEEP_CALLBACKS:
                return None  # (PyMem_SetAllocator copies the table and calls it ever after)
            stmt, ends = site
            sites.append(CallbackSite(ctree.function_name(owner)[0] or "", Location(path, ctree.span(stmt)),
                                      ctree.call_name(call) or "a call", ends))
            continue
        return None  # any other use may let the struct outlive the call
    return sites or None


def _local_struct_holding(ident: Node) -> str | None:
    """The local struct variable whose initialiser or field assignment stores `ident`."""
    node = ident
    while node.parent is not None and node.parent.type in ("cast_expression", "parenthesized_expression",
                                                           "pointer_expression"):
        node = node.parent
    parent = node.parent
    if parent is not None and parent.type == "initializer_pair":
        node, parent = parent, parent.parent
    if parent is not None and parent.type == "initializer_list":
        decl = parent.parent
        if decl is not None and decl.type == "init_declarator":
            statement = decl.parent
            if statement is not None and statement.type == "declaration" and "static" not in ctree.storage(statement):
                d = ctree.read_declarator(decl)
                return d.name if d.name and not d.is_pointer and not d.is_array else None
        return None
    if parent is not None and parent.type == "assignment_expression" and parent.child_by_field_name("right") == node:
        left = parent.child_by_field_name("left")
        if left is not None and left.type == "field_expression" and left.children[1].type == ".":
            base = left.child_by_field_name("argument")
            if base is not None and base.type == "identifier" and ctree.is_declared_locally(base.text.decode(), base):
                return base.text.decode()
    return None


def _call_site(call: Node):
    """The statement a call is made in and where the call is over, when porter can wrap it.

    The ends are CallEnd facts: past the statement, right after the `{` of a branch of the
    `if` whose condition made the call, or around a branch that is a single statement (it gets
    braces: `{` at `at`, `}` at `close`).
    """
    node = call
    while node.parent is not None and node.parent.type in (
            "parenthesized_expression", "binary_expression", "assignment_expression", "unary_expression",
            "init_declarator", "condition_clause"):
        node = node.parent
    stmt = node.parent if node.type != "expression_statement" else node
    if node.type in ("expression_statement", "declaration"):
        stmt = node
    elif stmt is not None and stmt.type in ("expression_statement", "declaration", "return_statement"):
        if stmt.type == "return_statement":
            return None  # the call is over only when the function is
    elif stmt is not None and stmt.type == "if_statement":
        ends = [CallEnd(CallEndKind.AFTER, stmt.end_byte)]
        condition = stmt.child_by_field_name("condition")
        for field in ("consequence", "alternative"):
            branch = stmt.child_by_field_name(field)
            if branch is None:
                continue
            opener = condition.end_byte if field == "consequence" else branch.start_byte + len("else")
            if branch.type == "else_clause":
                branch = branch.named_children[0] if branch.named_children else None
                if branch is None:
                    return None
            if branch.type == "compound_statement":
                ends.append(CallEnd(CallEndKind.OPEN, branch.start_byte + 1))
            elif branch.type == "if_statement":
                return None  # else if: the chain would need braces all the way down
            else:
                ends.append(CallEnd(CallEndKind.WRAP, opener, branch.end_byte))
        return stmt, tuple(ends) + _braces(stmt)
    else:
        return None
    return stmt, (CallEnd(CallEndKind.AFTER, stmt.end_byte),) + _braces(stmt)


# Statements whose body may be one statement without braces, or a label before one.
_BODY_OWNERS = ("if_statement", "else_clause", "while_statement", "for_statement", "do_statement",
                "labeled_statement", "case_statement")


def _braces(stmt: Node) -> tuple[CallEnd, ...]:
    """A BRACE end when `stmt` is not simply one of a block's statements: statements put before
    it would otherwise leave it (or land in front of a label, where a declaration cannot go)."""
    owner = stmt.parent
    if owner is None or owner.type not in _BODY_OWNERS:
        return ()
    return (CallEnd(CallEndKind.BRACE, stmt.start_byte, stmt.end_byte, owner.start_byte),)
