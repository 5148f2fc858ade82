"""Pointer parameters a function only reads through, `const` or not.

    static Info table[] = {{"a", 1}, {"b", 2}, {NULL, 0}};
    static PyObject *make(Info *info) { return Py_BuildValue("(si)", info->name, info->size); }
    ... make(&table[i]) ...

Code written before `const` was a habit hands its tables to helpers through plain `T *`
parameters. The table is still never written when every helper it reaches only reads through
the pointer: it is read-only data, not state. A parameter is read through only when, in the
function's body, nothing is assigned through it (`p->f = ...`, `p[i] = ...`, `*p = ...`, `++`),
no address inside it is taken (`&p->f`), and it is not stored or passed on except to another
such parameter. A field's value may go anywhere unless the field is an array (the array
would decay to a pointer into the table); a field porter cannot find the declaration of
counts as one. Anything porter cannot read counts as a write.
"""

from __future__ import annotations

from porter.analyze import ctree
from porter.analyze.index import FileIndex
from porter.parse import Node, walk

# How far a pointer may be passed on from parameter to parameter before porter stops following.
_MAX_DEPTH = 4
# Expressions that only read what they are given (a comparison, a condition, a sizeof).
_READING_PARENTS = frozenset({"binary_expression", "if_statement", "while_statement", "do_statement",
                              "for_statement", "expression_statement",
                              "sizeof_expression", "switch_statement", "condition_clause",
                              "unary_expression"})
# Operators whose result says something about the pointer without pointing anywhere.
_TESTS = frozenset({"==", "!=", "<", ">", "<=", ">=", "&&", "||"})


def param_only_read(indexes: list[FileIndex], function: str, position: int, depth: int = 0,
                    seen: frozenset[tuple[str, int]] = frozenset()) -> bool:
    """`function`'s parameter at `position` is a pointer nothing writes through (`const T *`,
    or one its one definition only reads through)."""
    if (function, position) in seen:
        return True  # a cycle: the other uses decide
    params = parameters(indexes, function)
    if params is None or position >= len(params):
        return False
    if const_pointee(params[position]):
        return True
    definitions = [(idx, node) for idx in indexes for node in idx.functions.get(function, [])]
    if len(definitions) != 1 or depth >= _MAX_DEPTH:
        return False
    _, node = definitions[0]
    name = _pointer_name(params[position])
    body = node.child_by_field_name("body")
    if name is None or body is None:
        return False
    pointee = ctree.type_name(params[position])
    seen = seen | {(function, position)}
    for ident in walk(body):
        if ident.type != "identifier" or ident.text.decode() != name:
            continue
        if _declares(ident):
            return False  # a local of the same name: porter does not follow scopes here
        if not _use_only_reads(indexes, ident, pointee, depth, seen):
            return False
    return True


def parameters(indexes: list[FileIndex], name: str) -> list[Node] | None:
    """The parameter declarations of function `name`, from its definition or a prototype."""
    for idx in indexes:
        for node in idx.functions.get(name, []) + idx.prototypes.get(name, []):
            declarator = node.child_by_field_name("declarator")
            while declarator is not None and declarator.type in ("pointer_declarator", "init_declarator"):
                declarator = declarator.child_by_field_name("declarator")
            params = declarator.child_by_field_name("parameters") if declarator is not None \
                and declarator.type == "function_declarator" else None
            if params is not None:
                return [p for p in params.named_children if p.type == "parameter_declaration"]
    return None


def const_pointee(param: Node) -> bool:
    """`const T *p`: one level of pointer to const."""
    declarator = param.child_by_field_name("declarator")
    return "const" in ctree.qualifiers(param) and declarator is not None \
        and declarator.type == "pointer_declarator" \
        and (inner := declarator.child_by_field_name("declarator")) is not None and inner.type == "identifier"


def _pointer_name(param: Node) -> str | None:
    """`T *p`, `T p[]` or `char **names`, named. Through `T **p`, an element (`p[i]`) is a
    pointer copied out of the table; what is written through that copy is not the table."""
    declarator = param.child_by_field_name("declarator")
    if declarator is None or declarator.type not in ("pointer_declarator", "array_declarator"):
        return None
    inner = declarator.child_by_field_name("declarator")
    while inner is not None and inner.type == "pointer_declarator" and declarator.type == "pointer_declarator":
        inner = inner.child_by_field_name("declarator")
    return inner.text.decode() if inner is not None and inner.type == "identifier" else None


def _declares(ident: Node) -> bool:
    """`ident` is the name a declaration in the body declares."""
    node = ident
    while node.parent is not None and node.parent.type in ("pointer_declarator", "array_declarator"):
        node = node.parent
    parent = node.parent
    if parent is not None and parent.type == "init_declarator":
        declarator = parent.child_by_field_name("declarator")
        return declarator is not None and declarator.id == node.id
    return parent is not None and parent.type == "declaration"


# What a use of the parameter reads, as it climbs: the pointer itself, a copy (an element or
# the pointee), one field whose declaration says whether it is an array, or something deeper.
_POINTER, _COPY, _DEEP = "<pointer>", "<copy>", "<deep>"


def _use_only_reads(indexes: list[FileIndex], ident: Node, pointee: str, depth: int,
                    seen: frozenset[tuple[str, int]]) -> bool:
    node, read = ident, _POINTER
    while (parent := node.parent) is not None:
        if parent.type == "parenthesized_expression":
            pass
        elif parent.type == "field_expression" and _operand_is(parent, node):
            field = parent.child_by_field_name("field")
            read = field.text.decode() if read == _POINTER and field is not None else _DEEP
        elif parent.type == "subscript_expression" and _operand_is(parent, node) \
                or parent.type == "pointer_expression" and parent.children[0].type == "*":
            read = _COPY
        else:
            break
        node = parent
    parent = node.parent
    if parent is None:
        return False
    if parent.type == "conditional_expression":
        # Tested (`p ? ... : ...`) is read; chosen as the value (`c ? p : q`), it goes elsewhere.
        condition = parent.child_by_field_name("condition")
        return condition is not None and condition.id == node.id
    written = parent.type == "update_expression" or parent.type == "assignment_expression" \
        and not _is_right_side(parent, node)
    if read == _POINTER:
        # `p = other`, `p++`: the local pointer moves and the pointee is untouched.
        if written:
            return True
        if parent.type == "argument_list" and parent.parent is not None \
                and parent.parent.type == "call_expression":
            callee = ctree.call_name(parent.parent)
            position = [a.id for a in ctree.call_args(parent.parent)].index(node.id)
            return callee is not None and param_only_read(indexes, callee, position, depth + 1, seen)
        if parent.type == "binary_expression":
            # `p != NULL` tests it; `p + 1` points into the table again, somewhere porter does not follow.
            operator = parent.child_by_field_name("operator")
            return operator is not None and operator.type in _TESTS
        return parent.type in _READING_PARENTS
    if written or parent.type == "pointer_expression" and parent.children[0].type == "&":
        return False
    if parent.type in _READING_PARENTS:
        return True
    if parent.type in ("argument_list", "init_declarator", "return_statement", "initializer_list",
                       "cast_expression", "assignment_expression"):
        # The value goes elsewhere: a copy, unless it is an array decaying to a pointer inside.
        return read == _COPY or read != _DEEP and _array_field(indexes, pointee, read) is False
    return False


def _operand_is(parent: Node, node: Node) -> bool:
    """`node` is what `parent` (a field or subscript expression) reads from, not its index."""
    operand = parent.child_by_field_name("argument")
    return operand is not None and operand.id == node.id


def _is_right_side(assignment: Node, node: Node) -> bool:
    right = assignment.child_by_field_name("right")
    return right is not None and right.id == node.id


def _array_field(indexes: list[FileIndex], struct: str, field: str) -> bool | None:
    """Whether `struct` (a typedef name or a tag) declares `field` as an array (of anything);
    None when porter finds no declaration of it, or two that disagree."""
    found: set[bool] = set()
    for idx in indexes:
        for node in ctree.file_scope(idx.src.root):
            body = _struct_body(node, struct)
            for member in body.named_children if body is not None else ():
                for declarator in member.children_by_field_name("declarator"):
                    chain = list(_declarator_chain(declarator))
                    if chain and chain[-1].type == "field_identifier" and chain[-1].text.decode() == field:
                        found.add(any(d.type == "array_declarator" for d in chain))
    return found.pop() if len(found) == 1 else None


def _struct_body(node: Node, struct: str) -> Node | None:
    """The field list of `typedef struct {...} struct;` or `struct struct {...}`."""
    kind = node.child_by_field_name("type") if node.type in ("type_definition", "declaration") else node
    if kind is None or kind.type != "struct_specifier":
        return None
    tag = kind.child_by_field_name("name")
    named = node.type == "type_definition" and any(
        d.text.decode() == struct for d in node.children_by_field_name("declarator"))
    if named or tag is not None and tag.text.decode() == struct:
        return kind.child_by_field_name("body")
    return None


def _declarator_chain(declarator: Node | None):
    while declarator is not None:
        yield declarator
        declarator = declarator.child_by_field_name("declarator")
