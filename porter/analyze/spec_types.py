"""Heap types a module already builds from a PyType_Spec and keeps in a global.

`Pair_Type = PyType_FromSpec(&Pair_spec);` is half of a port: the type is per call, but the
global is shared, and without the module the type's methods cannot find module state.
"""

from __future__ import annotations

from porter import capi
from porter.analyze import ctree
from porter.analyze.index import FileIndex
from porter.analyze.initializers import referenced_name
from porter.model import SpecHelper, SpecMaker, SpecType
from porter.parse import walk


def collect_spec_types(indexes: list[FileIndex]) -> list[SpecType]:
    out = []
    for idx in indexes:
        for name, call in idx.calls:
            if name not in capi.SPEC_CREATORS:
                continue
            args = ctree.call_args(call)
            if len(args) <= capi.SPEC_CREATORS[name]:
                continue
            spec = referenced_name(idx.src.text_of(args[capi.SPEC_CREATORS[name]]))
            node = call
            while node.parent is not None and node.parent.type in ("cast_expression", "parenthesized_expression"):
                node = node.parent
            parent = node.parent
            owner = ctree.enclosing_function(call)
            function = ctree.function_name(owner)[0] if owner is not None else None
            if function is None or spec is None or parent is None:
                continue
            kept_in: str | None = None
            if parent.type == "init_declarator" and parent.child_by_field_name("value") == node:
                # `PyObject *o = PyType_FromSpec(&spec);`, then `G = o;`.
                local = ctree.read_declarator(parent).name
                kept_in = _global_given(idx, owner, local, call.end_byte) if local else None
            elif parent.type == "assignment_expression" and parent.child_by_field_name("right") == node:
                left = parent.child_by_field_name("left")
                if left is not None and left.type == "identifier":
                    kept_in = left.text.decode()
                    if ctree.is_declared_locally(kept_in, left, idx.scopes):
                        # `o = PyType_FromSpec(&spec); ... Tkapp_Type = o;` (_tkinter): a local passes it on.
                        kept_in = _global_given(idx, owner, kept_in, call.end_byte)
            if kept_in is None:
                continue
            out.append(SpecType(kept_in, spec, idx.path, function,
                                ctree.span(call), name, tuple(ctree.span(a) for a in args),
                                tuple(idx.src.text_of(a) for a in args)))
    return out


def _global_given(idx: FileIndex, owner, local: str, after: int) -> str | None:
    """The file-scope global that `G = local;` stores the local in, after `after` and before
    the local is assigned again."""
    for use in idx.uses_in(local, after, owner.end_byte):
        parent = use.parent
        if parent is None or parent.type != "assignment_expression":
            continue
        if parent.child_by_field_name("left") == use:
            return None  # assigned again first
        target = parent.child_by_field_name("left")
        op = parent.child_by_field_name("operator")
        if parent.child_by_field_name("right") == use and target is not None and target.type == "identifier" \
                and (op is None or op.text == b"=") \
                and not ctree.is_declared_locally(target.text.decode(), target, idx.scopes):
            return target.text.decode()
    return None


def collect_spec_helpers(indexes: list[FileIndex]) -> list[SpecHelper]:
    """Functions that make a heap type from a `PyType_Spec *` parameter, given a `PyObject *`
    parameter too (the module their callers add the type to), with the specs callers pass."""
    found: dict[str, tuple[FileIndex, str, int, object, str]] = {}
    for idx in indexes:
        for name, call in idx.calls:
            if name not in ("PyType_FromSpec", "PyType_FromSpecWithBases"):
                continue
            args = ctree.call_args(call)
            owner = ctree.enclosing_function(call)
            if not args or owner is None or args[0].type != "identifier":
                continue
            function, _, declarator = ctree.function_name(owner)
            params = _params(declarator)
            spec_at = next((i for i, (type_text, ptr, p) in enumerate(params)
                            if p == args[0].text.decode() and ptr and type_text == "PyType_Spec"), None)
            module = next((p for type_text, ptr, p in params if ptr and type_text == "PyObject"), None)
            if function is None or spec_at is None or module is None or function in found:
                continue
            found[function] = (idx, module, spec_at, call, name)
    if not found:
        return []
    specs: dict[str, list[str]] = {name: [] for name in found}
    callers: dict[str, list[str]] = {name: [] for name in found}
    for idx in indexes:
        for name, call in idx.calls:
            if name not in found:
                continue
            owner = ctree.enclosing_function(call)
            caller = ctree.function_name(owner)[0] if owner is not None else None
            callers[name].append(caller or "")
            args = ctree.call_args(call)
            spec_at = found[name][2]
            arg = args[spec_at] if spec_at < len(args) else None
            text = idx.src.text_of(arg).strip() if arg is not None else ""
            if text.startswith("&") and (spec := referenced_name(text)) is not None:
                specs[name].append(spec)
            elif arg is not None and arg.type == "subscript_expression":
                # `add_class(m, specs[i])` in a loop over `static PyType_Spec *specs[] = {&A, &B};`
                table = arg.child_by_field_name("argument")
                if table is not None and table.type == "identifier":
                    specs[name].extend(_table_specs(idx, table.text.decode()))
    out = []
    for name, (idx, module, _, call, creator) in found.items():
        out.append(SpecHelper(name, idx.path, module, ctree.span(call), creator,
                              tuple(ctree.span(a) for a in ctree.call_args(call)),
                              tuple(dict.fromkeys(specs[name])), tuple(dict.fromkeys(callers[name]))))
    return out


def collect_spec_makers(indexes: list[FileIndex]) -> list[SpecMaker]:
    """Functions that make a heap type from a spec of their own and return it, with no module
    to make it with: `static PyObject *make_meta(void) { ... return PyType_FromSpecWithBases(&Meta_spec,
    bases); }` (a protobuf binding's metaclass). Their callers keep the type where they like."""
    out = []
    for idx in indexes:
        for name, call in idx.calls:
            if name not in ("PyType_FromSpec", "PyType_FromSpecWithBases"):
                continue
            args = ctree.call_args(call)
            owner = ctree.enclosing_function(call)
            spec = referenced_name(idx.src.text_of(args[0])) if args else None
            if owner is None or spec is None or not idx.src.text_of(args[0]).strip().startswith("&"):
                continue
            function = ctree.function_name(owner)[0]
            if function is not None and _returned(owner, call):
                out.append(SpecMaker(function, idx.path, spec, ctree.span(call), name,
                                     tuple(ctree.span(a) for a in args)))
    return out


def _returned(function, call) -> bool:
    """The call's result is what `function` returns: `return CALL;`, or `local = CALL; ...
    return local;` with the local assigned nowhere else."""
    node = call
    while node.parent is not None and node.parent.type in ("cast_expression", "parenthesized_expression"):
        node = node.parent
    parent = node.parent
    if parent is not None and parent.type == "return_statement":
        return True
    local = None
    if parent is not None and parent.type == "init_declarator" and parent.child_by_field_name("value") == node:
        local = ctree.read_declarator(parent).name
    elif parent is not None and parent.type == "assignment_expression" \
            and parent.child_by_field_name("right") == node:
        left = parent.child_by_field_name("left")
        local = left.text.decode() if left is not None and left.type == "identifier" \
            and ctree.is_declared_locally(left.text.decode(), left) else None
    if local is None:
        return False
    returns = [n for n in walk(function) if n.type == "return_statement"]
    values = [ctree.unwrap_parens(r.named_children[0]) if r.named_children else None for r in returns]
    assigned = [n for n in walk(function) if n.type == "assignment_expression"
                and (left := n.child_by_field_name("left")) is not None and left.text.decode() == local]
    def is_local(v) -> bool:
        return v is not None and v.type == "identifier" and v.text.decode() == local

    # It returns the local, and nothing but the local or a null (its failure path).
    return any(is_local(v) for v in values) \
        and all(is_local(v) or v is not None and (v.type == "null" or v.text in (b"NULL", b"0")) for v in values) \
        and all(a == parent for a in assigned)


def _table_specs(idx: FileIndex, table: str) -> list[str]:
    """The `&spec` rows of the file-scope array `table`."""
    for decl in idx.file_declarations:
        for node in ctree.declarators(decl):
            d = ctree.read_declarator(node)
            if d.name == table and d.is_array and d.value is not None and d.value.type == "initializer_list":
                return [spec for e in ctree.initializer_elements(d.value)
                        if idx.src.text_of(e).strip().startswith("&")
                        and (spec := referenced_name(idx.src.text_of(e))) is not None]
    return []


def _params(declarator) -> list[tuple[str, bool, str]]:
    """(base type, is a pointer, name) of each parameter of a function declarator."""
    params = declarator.child_by_field_name("parameters") if declarator is not None else None
    out = []
    for p in params.named_children if params is not None else ():
        if p.type != "parameter_declaration":
            continue
        type_node, decl = p.child_by_field_name("type"), p.child_by_field_name("declarator")
        if type_node is None or decl is None or decl.type != "pointer_declarator":
            continue
        inner = decl.child_by_field_name("declarator")
        if inner is not None and inner.type == "identifier":
            out.append((type_node.text.decode(), True, inner.text.decode()))
    return out
