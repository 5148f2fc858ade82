"""How each function can reach module state, from its role (a pure function of facts)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from porter import capi
from porter.analyze.initializers import sizeof_operand
from porter.model import ExtensionModule, Function, ObjectLocal, Role, RoleKind, VoidParamCast, shared_index
from porter.rewrite.planning.callback_slots import slot_refusal
from porter.rewrite.vocab import AccessKind


@dataclass(frozen=True)
class Access:
    """How a function reaches module state."""

    kind: AccessKind
    params: tuple[str, ...] = ()  # the parameters it uses (module, self, type, a/b)
    reason: str = ""  # for NONE: why it cannot; for CALLBACK: who calls it back
    types: tuple[str, ...] = ()  # static types it belongs to (type, new, binary)
    after: int = 0  # where the lookup goes when not at the top: past the guard that returns on NULL


NO_ACCESS = Access(AccessKind.NONE, reason="not a function of this module")
# Roles that make a function a method or slot of a type: it reaches state through the type.
_TYPE_ROLES = (RoleKind.TYPE_METHOD, RoleKind.GETTER, RoleKind.SETTER, RoleKind.SLOT)


def function_access(f: Function, module: ExtensionModule, type_ok: set[str], called: bool,
                    generated_callers: frozenset[str] = frozenset()) -> Access:
    """How `f` reaches state when the types in `type_ok` become heap types.

    `called`: some function of the module calls it directly; `generated_callers`: the functions
    Argument Clinic's output calls (their signatures are fixed by the generated calls).
    """
    acc = _function_access(f, module, type_ok, called, generated_callers)
    if f.alternatives and acc.kind is not AccessKind.NONE and not _edited_alike(f, acc):
        return Access(AccessKind.NONE, reason=f"{f.name} has another definition in another #if branch, which "
                                              "porter cannot give the state the same way")
    return acc


# Access kinds whose every definition gets the same parameter, or the same `state` local from
# the same first parameter (Function.alternatives).
_ALIKE = (AccessKind.HELPER, AccessKind.MODULE, AccessKind.TYPE, AccessKind.CLASS, AccessKind.NEW,
          AccessKind.EXEC)


def _edited_alike(f: Function, acc: Access) -> bool:
    if acc.kind is AccessKind.HELPER:
        return True
    first = f.params[0].name if f.params else None
    return acc.kind in _ALIKE and not acc.after and first is not None \
        and all(a.first_param == first for a in f.alternatives)


def _function_access(f: Function, module: ExtensionModule, type_ok: set[str], called: bool,
                     generated_callers: frozenset[str]) -> Access:
    kinds = f.role_kinds
    if f.name in module.ambiguous_functions:
        # Definitions a file cannot tell apart (one per #if branch of one file; static functions
        # of one name in different files are different functions: analyze.function_keys).
        return Access(AccessKind.NONE, reason=f"{f.name} has several definitions and porter cannot tell which "
                                              "one each call means")
    if f.name in module.called_from_ambiguous and f.only_helper:
        return Access(AccessKind.NONE, reason="it is called from a function with two definitions, whose calls "
                                              "porter cannot tell apart")
    # A first parameter marked Py_UNUSED(self) is renamed when the function needs it.
    first = (f.params[0].name or f.params[0].unused_name) if f.params else None
    if RoleKind.MODULE_INIT in kinds or f.name == module.exec_function:
        return Access(AccessKind.EXEC)
    if RoleKind.CALLBACK in kinds and module.slots_storing(f.name) \
            and kinds <= {RoleKind.CALLBACK, RoleKind.HELPER}:
        # Kept in fields of the project's own structs (planning.callback_slots). One that reaches
        # state through what it is given (its user data) keeps that way; else, when porter sees
        # every call through those fields, it takes the state like a helper.
        acc = _callback_access(f, module, type_ok, called, first)
        if acc.kind is not AccessKind.NONE:
            return acc
        refusal = slot_refusal(f, module)
        if refusal:
            return Access(AccessKind.NONE, reason=refusal)
        return _helper_access(f, module, generated_callers, called)
    if RoleKind.CALLBACK in kinds:
        return _callback_access(f, module, type_ok, called, first)
    if RoleKind.MODULE_METHOD in kinds:
        if first is None:
            return Access(AccessKind.NONE, reason="its module parameter has no usable name")
        if called and kinds == {RoleKind.MODULE_METHOD} and not f.defined_by \
                and not module.in_generated(f.file, f.header.start):
            # Also called directly (often with NULL for the module): split into an _impl that
            # takes the state, and the method that finds it.
            return Access(AccessKind.SPLIT, (first,))
        return Access(AccessKind.MODULE, (first,))
    if f.has_role(*_TYPE_ROLES):
        return _defining_class_access(f, module, type_ok) or _type_access(f, type_ok, first)
    if RoleKind.MODULE_SLOT in kinds and first is not None and RoleKind.METHOD not in kinds:
        # m_traverse, m_clear and m_free are called with the module object.
        return Access(AccessKind.MODULE, (first,))
    if RoleKind.MODULE_SLOT in kinds or RoleKind.METHOD in kinds:
        return Access(AccessKind.NONE, reason="a function porter cannot tie to the module object")
    # Nothing in these files calls or names it, and no macro can paste its name: it takes the
    # state as a parameter like a helper, with no caller to pass it (code outside that calls a
    # function with external linkage must, and the report says so).
    unreferenced = f.roles == (Role(RoleKind.UNREFERENCED),) and not f.loader_hook \
        and not _may_be_pasted(f.name, module)
    if f.only_helper or unreferenced:
        return _helper_access(f, module, generated_callers, called)
    return Access(AccessKind.NONE, reason="role " + ", ".join(str(r) for r in f.roles))


def _helper_access(f: Function, module: ExtensionModule, generated_callers: frozenset[str],
                   called: bool) -> Access:
    """A function only the module's own code calls takes the state as a new parameter, unless
    its signature is fixed for another reason. One exported on purpose is split: its `_impl`
    takes the state, and it keeps its signature for outside callers (it returns a pointer, so
    that it can fail when this interpreter did not import the module)."""
    exported = _exported_on_purpose(f, module, called)
    if exported and f.returns_pointer and not f.defined_by and not f.alternatives and f.name_span is not None:
        return Access(AccessKind.SPLIT, (), reason=exported)
    if not f.is_static and f.name in capi.EXTERNAL_ENTRY_POINTS:
        return Access(AccessKind.NONE, reason=f"{f.name}() is called by name from outside the project (an "
                                              "entry point such as libFuzzer's): its signature is fixed")
    public = _public_signature(f, module, called)
    if public:
        return Access(AccessKind.NONE, reason=public)
    if f.name in generated_callers:
        return Access(AccessKind.NONE, reason="Argument Clinic output calls it: its signature is fixed "
                                              "by generated code (change the clinic input)")
    if f.defined_by:
        return Access(AccessKind.NONE, reason=f"defined by macro {f.defined_by}: porter cannot add a "
                                              "parameter to it")
    if any(call.caller is None for call in f.unread_calls):
        return Access(AccessKind.NONE, reason="it is also declared or called outside functions in an "
                                              "#if branch porter did not read")
    return Access(AccessKind.HELPER)


# A chain of tokens joined by `##` (`upb_p##card##type##_##tagbytes##bt`).
_PASTE_CHAIN = re.compile(r"\w+(?:\s*##\s*\w+)+")


def _may_be_pasted(name: str, module: ExtensionModule) -> bool:
    """Whether some project macro's `##` could make `name`: it matches a paste chain whose
    arguments stand for any word (`name ## _impl` makes every name ending in `_impl`)."""
    return any(pattern.fullmatch(name) for pattern in shared_index(module.macros, "paste chains", _paste_chains))


def _paste_chains(macros) -> list[re.Pattern[str]]:
    """The names each `##` chain of the macros can make, as patterns (read once per set of files)."""
    out = []
    for macro in macros:
        if "##" not in macro.body_text:
            continue
        params = set(macro.params or ())
        for chain in _PASTE_CHAIN.findall(macro.body_text):
            pieces = [p.strip() for p in chain.split("##")]
            out.append(re.compile("".join(r"\w*" if p in params or p == "__VA_ARGS__" else re.escape(p)
                                          for p in pieces)))
    return out


def _public_signature(f: Function, module: ExtensionModule, called: bool) -> str:
    """Why `f`'s signature is public API (it cannot take a new parameter), or ''. `called`:
    the project calls it by name."""
    exported = _exported_on_purpose(f, module, called)
    if exported:
        return exported
    if not module.public_headers:
        return ""
    declared = next((p.file for p in f.prototypes if p.file in module.public_headers), None)
    if declared is None and f.file in module.public_headers:
        declared = f.file
    if declared is not None:
        return f"it is declared in {declared}, a header the package installs: its signature is public API"
    macro = next((m for m in module.macros if m.file in module.public_headers
                  and any(name == f.name for name, *_ in m.called())), None)
    if macro is not None:
        return f"macro {macro.name} in {macro.file}, a header the package installs, calls it"
    return ""


# Project macros that spell a symbol's visibility: `#define HIDDEN __attribute__((visibility("hidden")))`.
_HIDDEN = re.compile(r"visibility\s*\(\s*\"(?:hidden|internal)\"")
_EXPORTED = re.compile(r"visibility\s*\(\s*\"default\"|dllexport")
# CPython's own export macros, on a function the project defines.
_CAPI_EXPORT_MACROS = frozenset({"PyAPI_FUNC", "Py_EXPORTED_SYMBOL"})


def _exported_on_purpose(f: Function, module: ExtensionModule, called: bool) -> str:
    """Why a function with external linkage is exported from the shared object on purpose
    (ctypes or another library may call it by its symbol), or ''. Marked for export (a macro
    for `visibility("default")` or `dllexport`), or, where the project marks its shared
    functions hidden, left unmarked although the project never calls it by name: its linkage
    serves someone else (a database driver's "not static and not hidden as we use ctypes to
    test it"). One the project calls by name only forgot its marker."""
    if f.is_static:
        return ""
    words = set(f.specifier_words)
    exporting = shared_index(module.macros, "exporting", lambda macros: frozenset(
        m.name for m in macros if _EXPORTED.search(m.body_text)) | _CAPI_EXPORT_MACROS)
    if words & exporting or "dllexport" in words or {"visibility", "default"} <= words:
        return f"{f.name}() is marked for export from the shared object: its signature is public"
    hiding = shared_index(module.macros, "hiding", lambda macros: frozenset(
        m.name for m in macros if _HIDDEN.search(m.body_text)))
    if not hiding or words & hiding or {"visibility", "hidden"} <= words or called:
        return ""
    if any(set(g.specifier_words) & hiding for g in module.functions if not g.is_static):
        return (f"{f.name}() has external linkage without the project's {sorted(hiding)[0]}, which its other "
                "shared functions carry, and the project never calls it by name: it is exported for other code "
                "(ctypes, say) to call by its symbol, so its signature is public")
    return ""


def _callback_access(f: Function, module: ExtensionModule, type_ok: set[str], called: bool,
                     first: str | None) -> Access:
    instance_of = instance_param_type(f, module, type_ok)
    if instance_of is not None and first is not None:
        # A callback handed its own object (PyEval_SetTrace(func, self)): the type leads to state.
        return Access(AccessKind.TYPE, (first,), types=(instance_of,))
    handed = user_data_instance(f, module, type_ok)
    if handed is not None:
        # Its `void *` user data is one of the module's objects (`self = (CurlObject *)clientp;`):
        # that object's type leads to state, whenever and on whatever thread it is called.
        cast, types = handed
        if not cast.guard_end or _nothing_needs_state_before(f, module, cast.guard_end):
            return Access(AccessKind.TYPE, (cast.param,), types=types, after=cast.guard_end,
                          reason=f"its user data `{cast.param}` is a {', '.join(types)} instance")
    kept = kept_object(f, module, type_ok)
    if kept is not None and _nothing_needs_state_before(f, module, kept[0].ready):
        # `RuntimeData *rd = JS_GetRuntimeOpaque(rt);`: an object a library kept for it.
        local, types = kept
        return Access(AccessKind.TYPE, (local.name,), types=types, after=local.ready,
                      reason=f"its local `{local.name}` holds a {', '.join(types)} instance a library kept for it")
    carriers = {site.carrier for site in f.sync_callback_sites}
    structs = {(c.struct, c.param) for c in carriers if c}
    defined = {t.name for t in module.type_definitions}
    if f.sync_callback_sites and None not in carriers and len(structs) == 1 \
            and next(iter(structs))[0].split()[-1] in defined \
            and f.role_kinds <= {RoleKind.CALLBACK, RoleKind.HELPER} and not called:
        # Handed back the caller's local as its user data: that local carries the state, on
        # whatever thread and whenever the callback runs.
        carrier = f.sync_callback_sites[0].carrier
        assert carrier is not None
        return Access(AccessKind.USER_DATA, (carrier.param,), types=(carrier.struct,),
                      reason=f"its user data, a {carrier.struct}, carries its caller's state")
    if f.sync_callback_sites and f.role_kinds <= {RoleKind.CALLBACK, RoleKind.HELPER}:
        if called:
            # A direct call would read whatever state the thread last published.
            return Access(AccessKind.NONE, reason="it is also called directly, outside the calls that "
                                                  "publish the state for callbacks")
        callers = ", ".join(sorted({site.library for site in f.sync_callback_sites}))
        return Access(AccessKind.CALLBACK, reason=f"called back by {callers} on the caller's thread")
    return Access(AccessKind.NONE, reason="its address is passed elsewhere, so its signature is fixed")


# The name of the `defining_class` parameter porter adds to a clinic input (CPython's own).
DEFINING_CLASS_PARAMETER = "cls"


def _defining_class_access(f: Function, module: ExtensionModule, type_ok: set[str]) -> Access | None:
    """A clinic method of a converted type reaches state from its defining class: the parameter
    its clinic input has, or one porter adds when it runs clinic (not for the methods whose
    input cannot take one: those keep PyType_GetModuleByDef)."""
    clinic = module.clinic_function(f.name)
    if clinic is None or not f.types or any(t not in type_ok for t in f.types) or "METH_CLASS" in f.flags:
        return None
    if clinic.defining_class is not None:
        if not any(p.name == clinic.defining_class for p in f.params):
            return None  # the generated header is older than the input
        return Access(AccessKind.DEFINING_CLASS, (clinic.defining_class,), types=tuple(f.types))
    if not module.regenerate_clinic or clinic.refusal or any(p.name == DEFINING_CLASS_PARAMETER for p in f.params):
        return None
    return Access(AccessKind.DEFINING_CLASS, (DEFINING_CLASS_PARAMETER,), types=tuple(f.types),
                  reason="porter adds the parameter to its clinic input")


def _type_access(f: Function, type_ok: set[str], first: str | None) -> Access:
    owner_types = list(f.types)
    missing = [t for t in owner_types if t not in type_ok]
    if not owner_types:
        return Access(AccessKind.NONE, reason="porter cannot tell which of the module's types it belongs to")
    if missing:
        return Access(AccessKind.NONE, types=tuple(owner_types),
                      reason=f"type {', '.join(missing)} stays a static type")
    if f.slots & capi.BINARY_SLOTS:
        if len(f.params) < 2 or not f.params[1].name or not first:
            return Access(AccessKind.NONE, reason="binary slot without named operands")
        return Access(AccessKind.BINARY, (first, f.params[1].name), types=tuple(owner_types))
    if "tp_new" in f.slots:
        if first is None:
            return Access(AccessKind.NONE, reason="tp_new without a named type parameter")
        return Access(AccessKind.NEW, (first,), types=tuple(owner_types))
    if first is None:
        return Access(AccessKind.NONE, reason="no named self parameter")
    if "METH_CLASS" in f.flags or f.slots & capi.CALLED_WITH_THE_TYPE:
        # Called with the class (the type or a subclass), not an instance of it.
        return Access(AccessKind.CLASS, (first,), types=tuple(owner_types))
    return Access(AccessKind.TYPE, (first,), types=tuple(owner_types))


def instance_param_type(f: Function, module: ExtensionModule, type_ok: set[str]) -> str | None:
    """The converted type whose instance struct the first parameter points to, if any."""
    if not f.params:
        return None
    m = re.match(r"\s*(?:const\s+)?(?:struct\s+)?(\w+)\s*\*\s*\w*\s*$", f.params[0].type_text)
    if not m:
        return None
    types = _types_of_instances(m.group(1), module, type_ok)
    return types[0] if types else None


def user_data_instance(f: Function, module: ExtensionModule,
                       type_ok: set[str]) -> tuple[VoidParamCast, tuple[str, ...]] | None:
    """The `void *` parameter `f` only ever casts to the instance struct of converted types,
    with those types; None when there is not exactly one such parameter."""
    found = []
    for param in dict.fromkeys(c.param for c in f.void_param_casts):
        casts = [c for c in f.void_param_casts if c.param == param]
        structs = {c.type.split()[-1] for c in casts}
        types = _types_of_instances(next(iter(structs)), module, type_ok) if len(structs) == 1 else ()
        if types:
            found.append((casts[0], types))
    return found[0] if len(found) == 1 else None


def kept_object(f: Function, module: ExtensionModule,
                type_ok: set[str]) -> tuple[ObjectLocal, tuple[str, ...]] | None:
    """The one local `f` starts with that points to the instance struct of converted types."""
    found = [(local, types) for local in f.object_locals
             if (types := _types_of_instances(local.type.split()[-1], module, type_ok))]
    return found[0] if len(found) == 1 else None


def _nothing_needs_state_before(f: Function, module: ExtensionModule, at: int) -> bool:
    """Before `at`, `f` names no global that may move and calls none of the module's functions
    but ones that name none and call none (a library's own accessor): the state lookup can wait
    until there."""
    if any(c.span.start < at and not _plain_leaf(module, c.callee) for c in f.calls):
        return False
    return not _names_movable_globals(module, f.name, at)


def _plain_leaf(module: ExtensionModule, name: str) -> bool:
    callee = module.function(name)
    return callee is None or (not any(module.function(c.callee) is not None for c in callee.calls)
                              and not _names_movable_globals(module, callee.name))


def _names_movable_globals(module: ExtensionModule, function: str, before: int | None = None) -> bool:
    return any(u.function == function and (before is None or u.span.start < before)
               for g in module.globals if g.kind.needs_port for u in g.uses)


def _types_of_instances(struct: str, module: ExtensionModule, type_ok: set[str]) -> tuple[str, ...]:
    """The converted types whose instances are `struct`s (by tp_basicsize), none of them
    static."""
    if struct in capi.OBJECT_HEADER_STRUCTS or struct in capi.OBJECT_TYPES:
        # Any object: a type whose instances are bare PyObjects (tp_basicsize = sizeof(PyObject))
        # does not make every `PyObject *` callback one of its methods (recordclass stores such a
        # tp_iter into the types its metaclass makes; CPython's converters take a plain object).
        return ()
    types = []
    for t in module.static_types:
        size = t.slot("tp_basicsize")
        operand = sizeof_operand(size.text if size is not None else None)
        if operand is not None and operand[1] == struct:
            if t.name not in type_ok:
                return ()  # an instance of a type that stays static cannot lead to state
            types.append(t.name)
    return tuple(types)
