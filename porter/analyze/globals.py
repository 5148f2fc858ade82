"""Globals and function-local statics: where each is used, and which kind it is."""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import replace

from porter import capi
from porter.analyze import ctree
from porter.analyze.function_keys import FunctionKeys
from porter.analyze.functions import call_graph, init_phase
from porter.analyze.index import FileIndex
from porter.analyze.macros import MacroTable
from porter.analyze.ownership import Ownership, owned
from porter.analyze.process_constants import (
    is_once_guard,
    is_process_constant,
    is_process_flag,
    once_guard_statements,
)
from porter.analyze.read_only_params import param_only_read
from porter.analyze.unread_uses import unread_uses
from porter.lexer import names_in_code, names_of_lexed
from porter.model import Function, Global, GlobalKind, Location, Span, SpanList, Use, UseAccess, UseShape
from porter.parse import Node, walk
from porter.preproc import unknown_condition


def collect_globals(
    indexes: list[FileIndex], functions: list[Function], macros: MacroTable,
    init_functions: set[str], object_structs: set[str], macro_uses=(),
    file_conditions: dict[str, str] | None = None, shared: dict | None = None,
    keys: FunctionKeys | None = None, owner: Ownership | None = None, port_facts: bool = True,
) -> list[Global]:
    """Every file-scope variable and function-local static, with uses and a kind; of the
    file-scope ones, those the module owns (in a file with several init functions, not what
    only another init reaches).

    `shared` keeps, between the modules of one set of files (a unity file's inits), what does
    not depend on the module: each module then only classifies (what runs at init differs),
    and a global whose facts come out the same is the same object. `port_facts`: also read
    what only a rewrite needs (a table's rows, the shape and statement of each use).
    """
    shared = {} if shared is None else shared
    skeletons = shared.get("global skeletons")
    if skeletons is None:
        # Read by C name, then named by function key (a use in a static function another file
        # also defines is a use in that file's function).
        found = _global_skeletons(indexes, macros, macro_uses, file_conditions, port_facts)
        skeletons = shared["global skeletons"] = [keys.of_global(g) for g in found] if keys else found
    graph = shared.get("call graph")
    if graph is None:
        graph = shared["call graph"] = call_graph(functions)
    phase = init_phase(functions, init_functions, graph)
    memo = shared.setdefault("classify memo", {})
    made = shared.setdefault("globals made", {})
    out = []
    # A function-local static goes with its function: no init reaches the name "".
    mine = owned(skeletons, lambda g: g.name if g.function is None else "", owner, shared, "global skeletons by name")
    names = shared.get("global names")
    if names is None:
        names = shared["global names"] = frozenset(g.name for g in skeletons)
    for g in mine:
        kind, reason = classify(g, indexes, phase, object_structs, memo, names)
        previous = made.get(g.key)
        if previous is not None and previous.kind is kind and previous.reason == reason:
            out.append(previous)
            continue
        made[g.key] = g = replace(g, kind=kind, reason=reason, once_guard_statements=once_guard_statements(
            g, indexes) if kind is GlobalKind.ONCE_GUARD and port_facts else ())
        out.append(g)
    return out


def _global_skeletons(indexes: list[FileIndex], macros: MacroTable, macro_uses,
                      file_conditions: dict[str, str] | None, port_facts: bool = True) -> list[Global]:
    """The globals with their uses and declarations, not yet classified, in file order."""
    raw: list[Global] = []
    externs: dict[str, list[Location]] = {}
    for index in indexes:
        src = index.src
        for decl in index.file_declarations:
            st = ctree.storage(decl)
            for d in ctree.declarators(decl):
                info = ctree.read_declarator(d)
                if info.name is None or info.is_function:
                    continue
                if "extern" in st:
                    externs.setdefault(info.name, []).append(Location(index.path, ctree.span(decl)))
                    continue
                if "typedef" in st:
                    continue
                raw.append(_global(src, decl, d, info, None, _thread_local(src, decl, macros), port_facts))
        for decl, owner in index.local_declarations:
            owner_name = ctree.function_name(owner)[0]
            for d in ctree.declarators(decl):
                info = ctree.read_declarator(d)
                if info.name is None or info.is_function:
                    continue
                raw.append(_global(src, decl, d, info, owner_name, _thread_local(src, decl, macros), port_facts))
    # A tentative definition and the real one name the same variable: keep the one with a value.
    # Declarations in different branches of one #if group are the same variable for different
    # builds: the one in the branch porter reads, with the others as its alternatives.
    by_key: dict[tuple[str | None, str], Global] = {}
    pres = {index.path: index.src.pre for index in indexes}
    for g in raw:
        prev = by_key.get(g.key)
        if prev is not None and _alternative_branches(pres.get(g.file), prev, g):
            active = g if pres[g.file].activity(g.declaration.start) is True else prev
            other = prev if active is g else g
            by_key[g.key] = replace(active, alternatives=(*prev.alternatives, other))
        elif prev is None or (prev.initializer is None and g.initializer is not None):
            by_key[g.key] = g
    out = []
    around = _Surroundings(indexes, macro_uses, capi.MEASURING_MACROS | macros.measuring())
    for g in by_key.values():
        uses = _uses(indexes, g, around, port_facts)
        if g.function is None:
            # `DEFINE_STRING(__dict__)` with `str ## S` in the body names str__dict__.
            uses += [Use(u.file, u.span, u.function, UseAccess.MACRO_PASTE, u.name)
                     for u in macro_uses if g.name in u.pasted]
        g = replace(g, uses=tuple(uses), extern_declarations=tuple(externs.get(g.name, ())))
        inherited = (file_conditions or {}).get(g.file)
        if inherited:
            g = replace(g, condition=f"({inherited}) && ({g.condition})" if g.condition else inherited)
        out.append(g)
    out.sort(key=lambda g: (g.file, g.span.start))
    if not port_facts:
        return out
    unread = unread_uses(indexes, out)  # what a port rewrites in #if branches it did not read
    return [replace(g, unread_uses=unread[g.key]) if g.key in unread else g for g in out]


def _alternative_branches(pre, a: Global, b: Global) -> bool:
    """Whether two declarations sit in different branches of one #if group of their file."""
    if pre is None or a.file != b.file:
        return False
    for cond in pre.enclosing(a.declaration.start):
        if cond.span.start <= b.declaration.start < cond.span.end:
            i, j = cond.branch_at(a.declaration.start), cond.branch_at(b.declaration.start)
            if i is not None and j is not None and i != j:
                return True
    return False


_THREAD_WORDS = re.compile(r"\b(_Thread_local|__thread|thread_local|__declspec\s*\(\s*thread\s*\))")


def _thread_local(src, decl: Node, macros: MacroTable) -> bool:
    """`_Thread_local`, `__thread`, or a project macro that spells one (in the active branch)."""
    if "__thread" in ctree.storage(decl):
        return True
    masks = src.macro_masks  # in the order of the file
    i = bisect_left(src.mask_starts, decl.start_byte)
    while i < len(masks) and masks[i].span.start < decl.end_byte:
        m = macros.get(masks[i].name)
        if m is not None and _THREAD_WORDS.search(m.body_text):
            return True
        i += 1
    return False


def _global(src, decl: Node, d: Node, info, function: str | None, thread_local: bool = False,
            port_facts: bool = True) -> Global:
    quals = ctree.qualifiers(decl)
    return Global(
        name=info.name, function=function, kind=GlobalKind.OBJECT, file=src.path,
        span=ctree.span(info.node), declaration=ctree.declaration_span(src, decl),
        type_text=f"{ctree.base_type_text(src, decl)} {src.text_of(info.node)}".strip(),
        c_type=ctree.type_name(decl), is_static="static" in ctree.storage(decl),
        is_const=_is_const(src, decl, info, quals),
        initializer=ctree.span(info.value) if info.value is not None else None,
        declarator_count=len(ctree.declarators(decl)),
        initializer_text=src.text_of(info.value) if info.value is not None else "",
        condition=unknown_condition(src.pre, decl.start_byte),
        thread_local=thread_local,
        declarators=tuple(ctree.span(x) for x in ctree.declarators(decl)) if len(ctree.declarators(decl)) > 1 else (),
        declarator_index=next(i for i, x in enumerate(ctree.declarators(decl)) if x == d),
        table_rows=_table_rows(src, info.value)
        if port_facts and info.value is not None and info.value.type == "initializer_list" else (),
    )


# The inside of a table of plain values (numbers, names, signs: no comment, literal, call,
# brace or directive), whose elements are exactly the pieces between its commas.
_PLAIN_VALUES = re.compile(rb"[\w\s,.+\-]*")


def _table_rows(src, value: Node) -> SpanList:
    """The elements of an initialiser list. Data tables hold hundreds of thousands of numbers:
    for one that parsed, and that holds nothing but plain values, the elements are read from
    the text (the same spans as its child nodes, without making each node); for a table whose
    numbers the parser was not shown, they must be."""
    start, end = value.start_byte + 1, value.end_byte - 1
    if Span(value.start_byte, value.end_byte) in src.number_tables:
        return SpanList.pieces(src.text[start:end], start)
    if end - start > 4096 and src.masked[end:end + 1] == b"}" and _PLAIN_VALUES.fullmatch(src.masked, start, end) \
            and not src.in_error(Span(value.start_byte, value.end_byte)):
        return SpanList.pieces(src.masked[start:end], start)
    return SpanList(ctree.span(c) for c in value.named_children if c.type != "comment")


def _is_const(src, decl, info, quals: set[str]) -> bool:
    """Whether the variable itself cannot be written: `const int x`, `char *const p`."""
    declarator_text = src.text_of(info.node)
    if info.is_pointer:
        # Only a const after the last '*' binds to the variable.
        after = declarator_text.rsplit("*", 1)[-1]
        return "const" in after.split()
    return "const" in quals


def _uses(indexes, g: Global, around: _Surroundings, port_facts: bool = True) -> list[Use]:
    uses = []
    for index in indexes:
        if g.function is not None and index.path != g.file:
            continue
        for ident in index.identifiers.get(g.name, []):
            if g.span.start <= ident.start_byte < g.span.end and index.path == g.file:
                continue  # its own declarator
            owner, owner_name = around.owner(index.path, ident)
            if g.function is not None and owner_name != g.function:
                continue
            if not _refers_to(ident, g, index.scopes) or _declares_itself(ident) or _names_a_parameter(ident):
                continue
            call = _argument_of(ident)
            uses.append(Use(index.path, ctree.span(ident), owner_name,
                            _access(ident, "[" in g.type_text, around.measuring),
                            call=call.child_by_field_name("function").text.decode() if call else None,
                            call_span=ctree.span(call) if call else None,
                            **(_rewrite_facts(index, ident, owner) if port_facts else {})))
        if g.function is None:
            for mask_name, span in index.blanked_names.get(g.name, ()):
                node = index.src.root.descendant_for_byte_range(span.start, span.start)
                owner = ctree.enclosing_function(node) if node is not None else None
                uses.append(Use(index.path, span,
                                ctree.function_name(owner)[0] if owner is not None else None,
                                UseAccess.MACRO_ARG, mask_name))
            for macro_name, span in index.macro_body_names.get(g.name, ()):
                sites = around.expansions(macro_name)
                shadowed = [s for s in sites if around.shadowed(s, g.name)]
                shadowing = tuple(sorted({s.function for s in shadowed}))
                if sites and len(shadowed) == len(sites):
                    continue  # `head` in the body means the parameter `head` wherever it expands
                uses.append(Use(index.path, span, None, UseAccess.MACRO, macro_name, shadowed_in=shadowing))
    uses.sort(key=lambda u: (u.file, u.span.start))
    return uses


def _rewrite_facts(index: FileIndex, ident: Node, owner: Node | None) -> dict:
    """The Use fields only a rewrite reads: the expression it replaces, the statement around it."""
    shape, shape_span = _shape(ident)
    member = ident.parent.child_by_field_name("field") if shape is UseShape.MEMBER else None
    return dict(shape=shape, shape_span=shape_span,
                member=member.text.decode() if member is not None else None,
                unparsed=index.src.in_error(ctree.span(ident)),
                in_assert=ctree.in_assert(ident),
                statement=_assignment_statement(ident),
                null_guarded=_null_guarded(ident),
                borrowed_value=_borrowed_value(ident, owner),
                assigned_null=_assigned_null(ident),
                static_initializer=_static_local_initialized(ident) if owner is not None else None)


def _static_local_initialized(ident: Node) -> str | None:
    """The `static` local whose initialiser holds `ident`."""
    node = ident.parent
    while node is not None and node.type not in ("compound_statement", "function_definition"):
        if node.type == "init_declarator":
            value = node.child_by_field_name("value")
            decl = node.parent
            if value is not None and value.start_byte <= ident.start_byte < value.end_byte \
                    and decl is not None and decl.type == "declaration" and "static" in ctree.storage(decl):
                return ctree.read_declarator(node).name
        node = node.parent
    return None


class _Surroundings:
    """The function around each identifier, where each project macro expands, and the names
    each function declares: what the uses of globals are read against, each read once however
    many globals ask (`kwlist`, a static local of every function; a name in many macro bodies)."""

    def __init__(self, indexes: list[FileIndex], macro_uses,
                 measuring: frozenset[str] = capi.MEASURING_MACROS) -> None:
        self.indexes = indexes
        self.measuring = measuring  # macros that only measure their arguments (`Py_ARRAY_LENGTH`)
        self.by_macro: dict[str, list] = {}
        for use in macro_uses:
            self.by_macro.setdefault(use.name, []).append(use)
        self.declared: dict[tuple[str, int], frozenset[str]] = {}  # (file, definition start) -> names
        self.owners: dict[tuple[str, int], tuple[Node | None, str | None]] = {}  # (file, offset) -> function

    def owner(self, path: str, ident: Node) -> tuple[Node | None, str | None]:
        """The function definition around an identifier, and its name (None at file scope)."""
        key = (path, ident.start_byte)
        found = self.owners.get(key)
        if found is None:
            owner = ctree.enclosing_function(ident)
            found = self.owners[key] = (owner, ctree.function_name(owner)[0] if owner is not None else None)
        return found

    def expansions(self, macro: str) -> list:
        return self.by_macro.get(macro, [])

    def shadowed(self, site, name: str) -> bool:
        """Whether `name` at a macro's expansion site means a parameter or local of that function."""
        if site.function is None:
            return False
        for idx in self.indexes:
            if idx.path != site.file:
                continue
            for fn in idx.functions.get(site.function, []):
                if fn.start_byte <= site.span.start < fn.end_byte:
                    key = (idx.path, fn.start_byte)
                    if key not in self.declared:
                        self.declared[key] = _declared_names(fn)
                    return name in self.declared[key]
        return False


def _declared_names(fn: Node) -> frozenset[str]:
    """The names a function definition declares: its parameters and its locals."""
    names = set()
    stack = [fn]
    while stack:
        node = stack.pop()
        if node.type in ("parameter_declaration", "declaration"):
            for d in node.children_by_field_name("declarator"):
                name = ctree.read_declarator(d).name
                if name:
                    names.add(name)
        stack.extend(node.children)
    return frozenset(names)


def _names_a_parameter(ident: Node) -> bool:
    """A parameter's name (`PyObject *play(item_t *head);` beside a global `head`)."""
    node = ident.parent
    while node is not None and node.type in ("pointer_declarator", "array_declarator", "parenthesized_declarator"):
        node = node.parent
    if node is None or node.type != "parameter_declaration":
        return False
    declarator = node.child_by_field_name("declarator")
    return declarator is not None and declarator.start_byte <= ident.start_byte < declarator.end_byte


def _declares_itself(ident: Node) -> bool:
    """The name in another declaration of the same variable (`extern PyObject *x;`)."""
    node = ident.parent
    while node is not None and node.type in ("pointer_declarator", "array_declarator",
                                              "init_declarator", "parenthesized_declarator"):
        if node.type == "init_declarator" and node.child_by_field_name("declarator") is not None \
                and not (node.child_by_field_name("declarator").start_byte <= ident.start_byte
                         < node.child_by_field_name("declarator").end_byte):
            return False
        node = node.parent
    return node is not None and node.type == "declaration" and ident in ctree.declarators(node) \
        or (node is not None and node.type == "declaration"
            and any(d.start_byte <= ident.start_byte < d.end_byte and
                    (d.type != "init_declarator" or d.child_by_field_name("declarator").end_byte > ident.start_byte)
                    for d in ctree.declarators(node)))


def _addressed_element(ident: Node) -> Node:
    """`ident[i]` (through parentheses) when `&` takes that element's address, else `ident`."""
    element = ident.parent
    if element is None or element.type != "subscript_expression" \
            or (operand := element.child_by_field_name("argument")) is None or operand.id != ident.id:
        return ident
    while element.parent is not None and element.parent.type == "parenthesized_expression":
        element = element.parent
    parent = element.parent
    return element if parent is not None and parent.type == "pointer_expression" \
        and parent.children[0].type == "&" else ident


def _argument_of(ident: Node) -> Node | None:
    """The call whose argument is `ident`, `&ident`, `&ident[i]` or a cast of any."""
    node = _addressed_element(ident)
    while node.parent is not None and node.parent.type in (
            "pointer_expression", "cast_expression", "parenthesized_expression"):
        if node.parent.type == "pointer_expression" and node.parent.children[0].type != "&":
            return None
        node = node.parent
    parent = node.parent
    if parent is not None and parent.type == "argument_list" and parent.parent is not None \
            and parent.parent.type == "call_expression":
        return parent.parent
    return None


def _shape(ident: Node) -> tuple[UseShape, Span | None]:
    """`&x` and `x.field` need more than the name replaced when `x` becomes a pointer."""
    parent = ident.parent
    if parent is None:
        return UseShape.PLAIN, None
    if parent.type == "pointer_expression" and parent.children and parent.children[0].type == "&":
        return UseShape.ADDRESS_OF, ctree.span(parent)
    if parent.type == "field_expression" and parent.child_by_field_name("argument") == ident:
        op = parent.children[1] if len(parent.children) > 1 else None
        if op is not None and op.type == ".":
            return UseShape.MEMBER, Span(ident.start_byte, op.end_byte)
    return UseShape.PLAIN, None


def _assignment_statement(ident: Node) -> Span | None:
    """The statement `x = value;` when `ident` is its target."""
    parent = ident.parent
    if parent is None or parent.type != "assignment_expression" or parent.child_by_field_name("left") != ident:
        return None
    stmt = parent.parent
    return ctree.span(stmt) if stmt is not None and stmt.type == "expression_statement" else None


def _borrowed_value(ident: Node, function: Node | None) -> Span | None:
    """In `x = value;`, `value` when it is a borrowed reference: a call that returns one, or a
    local whose last assignment before this one gave it such a call, or whose reference a call
    stole since (`PyModule_AddObject(m, "T", o); T = o;`)."""
    parent = ident.parent
    if function is None or parent is None or parent.type != "assignment_expression" \
            or parent.child_by_field_name("left") != ident or parent.child_by_field_name("operator").text != b"=":
        return None
    value = ctree.unwrap_parens(parent.child_by_field_name("right"))
    if value is None:
        return None
    if value.type == "call_expression":
        return ctree.span(value) if _returns_borrowed(value) else None
    if value.type != "identifier":
        return None
    name, last, given = value.text, None, None
    for node in walk(function):
        if node.start_byte >= parent.start_byte:
            break
        if node.type == "init_declarator" and (d := node.child_by_field_name("declarator")) is not None \
                and d.type == "identifier" and d.text == name:
            last, given = node, ctree.unwrap_parens(node.child_by_field_name("value"))
        elif node.type == "assignment_expression" and (left := node.child_by_field_name("left")) is not None \
                and left.type == "identifier" and left.text == name:
            last, given = node, ctree.unwrap_parens(node.child_by_field_name("right"))
    if last is None or given is None:
        return None
    stolen = any(node.type == "call_expression" and last.end_byte <= node.start_byte < parent.start_byte
                 and _steals(node, name) for node in walk(function))
    return ctree.span(value) if stolen or _returns_borrowed(given) else None


def _assigned_null(ident: Node) -> bool:
    """`x = NULL` or `x = 0`, also as a link of `a = x = NULL`."""
    parent = ident.parent
    if parent is None or parent.type != "assignment_expression" or parent.child_by_field_name("left") != ident:
        return False
    value = ctree.unwrap_parens(parent.child_by_field_name("right"))
    while value is not None and value.type == "assignment_expression":
        value = ctree.unwrap_parens(value.child_by_field_name("right"))
    return value is not None and value.text in (b"NULL", b"0")


def _returns_borrowed(node: Node) -> bool:
    return node.type == "call_expression" and ctree.call_name(node) in capi.BORROWED_REFERENCE_CALLS


def _steals(call: Node, name: bytes) -> bool:
    """A call that steals the reference in the local `name`."""
    at = capi.REFERENCE_STEALING_CALLS.get(ctree.call_name(call) or "")
    args = ctree.call_args(call)
    if at is None or len(args) <= at:
        return False
    arg = ctree.unwrap_parens(args[at])
    return arg is not None and arg.type == "identifier" and arg.text == name


def _null_guarded(ident: Node) -> bool:
    """Inside `if (x == NULL) { ... }` (or `if (!x)`) for the same name."""
    name = ident.text.decode()
    node = ident.parent
    while node is not None and node.type not in ("function_definition", "translation_unit"):
        if node.type == "if_statement" and ctree.null_test(node.child_by_field_name("condition"), name) == "null":
            return True
        node = node.parent
    return False


def _refers_to(ident: Node, g: Global, scopes: dict | None = None) -> bool:
    """Whether an identifier names `g` and not a local, a parameter or a struct field."""
    parent = ident.parent
    if parent is not None and parent.type in ("preproc_def", "preproc_function_def", "preproc_params"):
        return False
    if g.function is None:
        return not ctree.is_declared_locally(g.name, ident, scopes)
    # A function-local static: the innermost declaration in scope must be the static one.
    return True




def _access(ident: Node, is_array: bool = False, measuring: frozenset[str] = capi.MEASURING_MACROS) -> UseAccess:
    parent = ident.parent
    child = ident
    # Walk out of parentheses, casts and subscripts: (x)[i] = ... writes x's storage.
    while parent is not None and parent.type in ("parenthesized_expression",):
        child, parent = parent, parent.parent
    if parent is None:
        return UseAccess.READ
    kind = parent.type
    if kind == "assignment_expression" and parent.child_by_field_name("left") == child:
        return UseAccess.WRITE
    if kind == "update_expression":
        return UseAccess.WRITE
    if kind == "pointer_expression" and parent.children and parent.children[0].type == "&":
        return UseAccess.ADDRESS
    if kind in ("subscript_expression", "field_expression"):
        # x[i] = v or x.f = v: writes the global's storage
        outer = parent.parent
        while outer is not None and outer.type in ("subscript_expression", "field_expression",
                                                    "parenthesized_expression"):
            parent, outer = outer, outer.parent
        if outer is not None and outer.type == "assignment_expression" and outer.child_by_field_name("left") == parent:
            return UseAccess.WRITE
        if outer is not None and outer.type == "update_expression":
            return UseAccess.WRITE
        if outer is not None and outer.type == "pointer_expression" and outer.children[0].type == "&":
            return UseAccess.ADDRESS
        # An element passed by value cannot write the array.
        return UseAccess.READ
    if kind == "argument_list":
        call = parent.parent
        name = ctree.call_name(call) if call is not None else None
        args = ctree.call_args(call) if call is not None else []
        if name in capi.WRITING_MACROS and args and args[0] == child:
            return UseAccess.WRITE
        if name in measuring:
            return UseAccess.READ  # `Py_ARRAY_LENGTH(table)`: its size, not its contents
        if is_array and name not in capi.READING_CALLS:
            return UseAccess.ADDRESS  # an array decays to a pointer the callee may write through
        if name and name.startswith(("strcpy", "strcat", "strncpy", "memcpy", "memset", "memmove",
                                     "snprintf", "sprintf", "PyOS_snprintf")) and args and args[0] == child:
            return UseAccess.ADDRESS
    return UseAccess.READ



def classify(g: Global, indexes, phase: set[str], object_structs: set[str],
             memo: dict | None = None, global_names: frozenset[str] = frozenset()) -> tuple[GlobalKind, str]:
    """A global's kind and why. `memo` keeps what does not depend on `phase` (a unity file's
    modules classify the same globals once each); `global_names` are every global's and static's
    names."""
    def once(test, *args) -> bool:
        if memo is None:
            return test(g, indexes, *args)
        key = (test.__name__, g.key)
        if key not in memo:
            memo[key] = test(g, indexes, *args)
        return memo[key]

    decl_type = g.c_type
    declarator = g.type_text
    pointer_decl = "*" in declarator
    writes = [u for u in g.uses if u.access in (UseAccess.WRITE, UseAccess.ADDRESS, UseAccess.MACRO_PASTE)]
    if once(_function_table) or once(_address_only_read):
        # A struct of function pointers, or data whose address only goes to `const T *`
        # parameters: passing its address around does not write it.
        writes = [u for u in writes if u.access is UseAccess.WRITE]
    late_writes = [u for u in writes if u.function not in phase and u.function is not None]
    if decl_type in capi.DEFINITION_TABLE_TYPES and not pointer_decl:
        return GlobalKind(capi.DEFINITION_TABLE_TYPES[decl_type]), f"a {decl_type} table"
    if decl_type in ("PyTypeObject", "_typeobject") and not pointer_decl:
        return GlobalKind.STATIC_TYPE, "a static PyTypeObject"
    if decl_type == "_Py_Identifier":
        return GlobalKind.IDENTIFIER, "_Py_IDENTIFIER"
    if once(_is_capsule_table):
        return GlobalKind.CAPSULE_API, "passed to PyCapsule_New"
    if pointer_decl and (decl_type in capi.OBJECT_TYPES or decl_type in object_structs) and "(" not in declarator:
        if decl_type == "PyTypeObject":
            return GlobalKind.TYPE_POINTER, "a PyTypeObject pointer filled at run time"
        if once(_assigned_from, capi.EXCEPTION_FACTORIES):
            return GlobalKind.EXCEPTION, "assigned PyErr_NewException()"
        if late_writes:
            fn = late_writes[0].function
            return GlobalKind.LAZY_CACHE, f"filled on first use in {fn}()"
        if writes:
            return GlobalKind.CACHED_OBJECT, "filled while the module initialises"
        return GlobalKind.OBJECT, "an object pointer"
    if g.thread_local:
        # Per thread, and not an object: interpreters that take turns on a thread share it, which
        # is safe for data set around a call (porter's own callback state) but is a person's call.
        return GlobalKind.THREAD_LOCAL, "thread-local C data"
    if not pointer_decl and capi.statically_allocated_object(g.initializer_text):
        # A statically allocated Python object (a singleton, a type of another metatype): every
        # interpreter changes its reference count, whatever the C code does with it.
        return GlobalKind.MUTABLE_DATA, "a statically allocated Python object (PyObject_HEAD_INIT)"
    if g.is_const:
        return GlobalKind.CONST_DATA, "const"
    if decl_type in ("char",) and once(_is_kwlist):
        return GlobalKind.KWLIST, "a keyword list"
    if decl_type == "char" and not writes and once(_initialized_with_string):
        return GlobalKind.STRING, "a string constant"
    addresses = [u for u in g.uses if u.access is UseAccess.ADDRESS]
    if addresses and all(u.call is not None and u.call.startswith(_ATOMIC_CALLS) for u in addresses) \
            and all(u.access in (UseAccess.ADDRESS, UseAccess.READ) for u in g.uses):
        # A flag or pointer only ever set by atomic operations (porter's own first-load test and
        # once-lock among them): made to be shared by threads, and so by interpreters.
        return GlobalKind.ATOMIC, f"only set through atomic operations ({addresses[0].call}())"
    if writes and once(is_once_guard, global_names):
        return GlobalKind.ONCE_GUARD, "it makes the calls it guards happen once per process"
    if writes and once(is_process_constant, global_names):
        return GlobalKind.PROCESS_CONSTANT, (f"computed once in {writes[0].function}() from process-wide data "
                                             "only: every interpreter computes the same value")
    if writes and not late_writes and is_process_flag(g, indexes, phase):
        return GlobalKind.PROCESS_CONSTANT, ("set only while the module initialises, to one value, when "
                                             "process-wide data says so: every interpreter sets it alike")
    if late_writes:
        fn = late_writes[0].function
        return GlobalKind.MUTABLE_DATA, f"written in {fn}()"
    if writes:
        if all(u.function is None for u in writes):
            return GlobalKind.READONLY_DATA, "written only by static initialisers"
        return GlobalKind.INIT_DATA, "written while the module initialises"
    if "(" in declarator and "*" in declarator:
        return GlobalKind.READONLY_DATA, "a function pointer that is never reassigned"
    return GlobalKind.READONLY_DATA, "never written after its initialiser"


_ATOMIC_CALLS = ("__sync_", "__atomic_", "_Interlocked", "Interlocked", "atomic_", "_Py_atomic_")


def _function_table(g: Global, indexes) -> bool:
    """`static Table t = {f, g, NULL};`: only names of functions (and nulls) inside."""
    text = g.initializer_text.strip()
    if not text.startswith("{"):
        return False
    if g.initializer is not None and any(idx.path == g.file and g.initializer in idx.src.number_tables
                                         for idx in indexes):
        return False  # numbers only: no name at all
    lexed = next((idx.src.pre.lexed for idx in indexes if idx.path == g.file), None)
    if lexed is not None and g.initializer is not None:
        names = names_of_lexed(lexed, g.initializer.start, g.initializer.end)  # read once, with its file
    else:
        names = names_in_code(text.encode())
    # Nulls alone say nothing: `{{"a", 1}, {NULL, 0}}` is data, not a table of functions.
    return any(n != "NULL" for n in names) and all(n == "NULL" or n in capi.ALLOCATOR_FUNCTIONS
                               or any(n in idx.functions or n in idx.prototypes for idx in indexes)
                               for n in names)


def _address_only_read(g: Global, indexes) -> bool:
    """`static Funcs funcs = {...}; return make(&funcs, ...);`, `make(&table[i])`, `find(table)`:
    every address taken goes, as is, to a parameter nothing writes through (`const T *`, or one
    the function only reads through: analyze.read_only_params)."""
    addresses = [u for u in g.uses if u.access is UseAccess.ADDRESS]
    if not addresses:
        return False
    is_array = "[" in g.type_text
    for u in addresses:
        if u.call is None or u.call_span is None:
            return False
        index = next(i for i in indexes if i.path == u.file)
        node = index.src.root.descendant_for_byte_range(u.span.start, u.span.end)
        arg = _passed_address(node, is_array) if node is not None else None
        if arg is None or arg.parent is None or arg.parent.type != "argument_list":
            return False  # a cast or an expression between: not simply `&x`
        call = arg.parent.parent
        if call is None or ctree.call_name(call) != u.call:
            return False
        position = [c.id for c in ctree.call_args(call)].index(arg.id)
        if not param_only_read(indexes, u.call, position):
            return False
    return True


def _passed_address(node: Node, is_array: bool) -> Node | None:
    """The argument that is `&x`, `&x[i]`, `&(x[i])` or, for an array, `x` itself."""
    if is_array and node.parent is not None and node.parent.type == "argument_list":
        return node
    if is_array:
        node = _addressed_element(node)
    parent = node.parent
    if parent is None or parent.type != "pointer_expression" or parent.children[0].type != "&":
        return None
    return parent


def _source_of(indexes, g: Global):
    return next(i.src for i in indexes if i.path == g.file)


def _assigned_from(g: Global, indexes, factories) -> bool:
    for u in g.uses:
        if u.access is not UseAccess.WRITE:
            continue
        index = next(i for i in indexes if i.path == u.file)
        node = index.src.root.descendant_for_byte_range(u.span.start, u.span.end)
        assign = node.parent if node is not None else None
        while assign is not None and assign.type == "parenthesized_expression":
            assign = assign.parent
        if assign is None or assign.type != "assignment_expression":
            continue
        value = ctree.unwrap_parens(assign.child_by_field_name("right"))
        if value is not None and value.type == "call_expression" and ctree.call_name(value) in factories:
            return True
    return False


def _is_capsule_table(g: Global, indexes) -> bool:
    for u in g.uses:
        index = next(i for i in indexes if i.path == u.file)
        node = index.src.root.descendant_for_byte_range(u.span.start, u.span.end)
        current = node
        for _ in range(4):
            if current is None:
                break
            if current.type == "call_expression" and ctree.call_name(current) == "PyCapsule_New":
                return True
            current = current.parent
    return False


def _is_kwlist(g: Global, indexes) -> bool:
    if "[" not in g.type_text or "*" not in g.type_text or g.initializer is None:
        return False
    src = _source_of(indexes, g)
    value = src.text[g.initializer.start:g.initializer.end]
    return b"NULL" in value or b"0" in value


def _initialized_with_string(g: Global, indexes) -> bool:
    if g.initializer is None:
        return False
    src = _source_of(indexes, g)
    return src.text[g.initializer.start:g.initializer.end].lstrip().startswith((b'"', b"PyDoc_STR"))
