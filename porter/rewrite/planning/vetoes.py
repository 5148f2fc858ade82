"""Why a global that needs a port stays global: one small rule per reason.

Each rule returns a `Reason` (global rules, judged once per global) or yields `(key, Reason)`
pairs (round rules, judged again each time the set of moving globals shrinks). A veto is final:
the decision loop in planning.decide removes vetoed globals until no rule objects any more.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from porter import capi
from porter.analyze.initializers import is_null
from porter.model import ExtensionModule, Global, GlobalKind, RoleKind, Use, UseAccess, is_interpreter_pointer
from porter.rewrite.planning.access import Access
from porter.rewrite.planning.getset_closures import is_closure_use, rows_apart
from porter.rewrite.planning.reach import MODULE_STATE, GlobalKey, key_order
from porter.rewrite.vocab import AccessKind, Reason

# --------------------------------------------------------------------------- per global


def type_not_convertible(g: Global, module: ExtensionModule, convertible: dict[str, Reason | None]) -> Reason | None:
    if g.kind is GlobalKind.STATIC_TYPE:
        return convertible.get(g.name, Reason("type-unread", "not a type porter read"))
    return None


def used_at_file_scope(g: Global, module: ExtensionModule, convertible) -> Reason | None:
    for u in g.uses:
        if u.function is None and u.access is not UseAccess.MACRO and initializer_owner(module, u) is None \
                and not is_closure_use(module, u):
            return file_scope_reason(module, u)
        if u.unparsed:
            return Reason("used-in-unparsed-code", f"used inside code porter could not parse in {u.file}")
    return None


def object_with_static_initializer(g: Global, module: ExtensionModule, convertible) -> Reason | None:
    if g.kind.is_object_kind and g.initializer is not None and \
            g.initializer_text.strip() not in capi.NULL_POINTER_SPELLINGS:
        return Reason("object-with-initializer", "an object pointer with a static initialiser")
    return None


def statically_allocated_object(g: Global, module: ExtensionModule, convertible) -> Reason | None:
    if capi.statically_allocated_object(g.initializer_text) and g.kind is not GlobalKind.STATIC_TYPE:
        return Reason("static-object", "a statically allocated Python object: it cannot be copied into "
                                       "module state; create it in exec instead (a heap type or PyObject_New)")
    return None


def used_in_unread_branch(g: Global, module: ExtensionModule, convertible) -> Reason | None:
    """A use in an #if branch porter did not read is rewritten on its tokens inside a function
    (the function's reach decides the rest); outside functions, where the tokens may declare a
    local of the same name, or where a type's member is assigned (a heap type takes its slots
    from its spec), porter cannot rewrite them."""
    for u in g.unread_uses:
        if u.function is None:
            return Reason("used-in-unread-branch", f"used outside functions in an #if branch porter did not read "
                                                   f"({u.file})")
        if u.declares:
            return Reason("used-in-unread-branch", f"{u.function}() may declare a local of the same name in an #if "
                                                   "branch porter did not read")
        if u.writes and g.kind is GlobalKind.STATIC_TYPE:
            return Reason("used-in-unread-branch", f"{u.function}() sets a field of it in an #if branch porter did "
                                                   "not read")
    return None


def external_linkage(g: Global, module: ExtensionModule, convertible) -> Reason | None:
    if g.is_static or g.function is not None:
        return None
    # External linkage: another translation unit may name it.
    if any(loc.file not in module.files for loc in g.extern_declarations):
        return Reason("extern-elsewhere", "declared extern outside the module's files")
    users = [file for name, file in module.outside_uses if name == g.name]
    if users:
        return Reason("named-by-unported-file", f"{users[0]} names it through a header and was not given to "
                                                "porter (give every source of the extension)")
    return None


def public_declaration(g: Global, module: ExtensionModule, convertible) -> Reason | None:
    """A global declared in a header the package installs is public API: other code uses it."""
    public = [loc.file for loc in g.extern_declarations if loc.file in module.public_headers]
    if g.file in module.public_headers:
        public.append(g.file)
    if public:
        return Reason("public-declaration", f"it is declared in {public[0]}, a header the package installs: "
                                            "other extensions may use it directly")
    return None


def array_with_initializer(g: Global, module: ExtensionModule, convertible) -> Reason | None:
    if "[" in g.type_text and g.initializer is not None and g.kind is not GlobalKind.STATIC_TYPE:
        return Reason("array-with-initializer", "an array with an initialiser: porter does not copy initial "
                                                "array contents")
    return None


def declared_differently_per_build(g: Global, module: ExtensionModule, convertible) -> Reason | None:
    """`#ifdef A static PyObject *x; #else static long x = 1; #endif`: a field per build is only
    written for C data that starts at zero (no value to give each build, nothing for the GC)."""
    if not g.alternatives or all(_same_declaration(g, x) for x in g.alternatives):
        return None
    if g.kind.is_object_kind or any(x.initializer is not None and not is_null(x.initializer_text)
                                    for x in (g, *g.alternatives)):
        return Reason("declared-per-build", "declared differently for other builds (#if branches), with a value "
                                            "or holding objects: porter writes per-build fields only for C data "
                                            "that starts at zero")
    return None


def _same_declaration(a: Global, b: Global) -> bool:
    return a.type_text == b.type_text and a.initializer_text == b.initializer_text


def used_in_static_initializer(g: Global, module: ExtensionModule, convertible) -> Reason | None:
    """`static PyTypeObject *all[] = {&A, &B};` in a function: a constant cannot read state."""
    for u in g.uses:
        if u.static_initializer is not None:
            return Reason("used-in-static-initializer", f"named in the initialiser of the static "
                                                        f"{u.static_initializer} in {u.function}(), which must "
                                                        "be a constant")
    return None


def shadowed_in_a_macro(g: Global, module: ExtensionModule, convertible) -> Reason | None:
    """A macro naming the global expands where that name is a parameter or local too."""
    for u in g.uses:
        if u.shadowed_in:
            return Reason("macro-name-shadowed", f"macro {u.macro} names it, and also expands in "
                                                 f"{', '.join(u.shadowed_in)}(), where that name is a local or "
                                                 "parameter: its body cannot read the state there")
    return None


def used_in_generated_code(g: Global, module: ExtensionModule, convertible) -> Reason | None:
    """Argument Clinic's output is regenerated from its input: porter never edits it."""
    for u in g.uses:
        if u.access is not UseAccess.MACRO and module.in_generated(u.file, u.span.start):
            inputs = [n for n in module.clinic_input_names if n.name == g.name]
            if not inputs:
                return Reason("used-in-generated-code", f"Argument Clinic output names it in {u.file}: porter never "
                                                        "edits generated code (change the clinic input)")
            where = ", ".join(f"{n.file}:{n.line} `{n.text}`" for n in inputs)
            return Reason("used-in-generated-code", f"Argument Clinic output names it in {u.file}, from its clinic "
                                                    f"input at {where}: porter never edits generated code; make "
                                                    f"that `\"clinic_state()->{g.name}\"`, define `clinic_state()` "
                                                    "as a state lookup from the generated functions' first "
                                                    "parameter before the clinic include, and run "
                                                    "Tools/clinic/clinic.py")
    return None


def interpreter_keyed(g: Global, module: ExtensionModule, convertible) -> Reason | None:
    """`if (owner == PyInterpreterState_Get()) use(x)`: a value kept with the interpreter it
    belongs to (porter's own "last module"), read only where that interpreter is checked."""
    if is_interpreter_pointer(g.type_text):
        return Reason("interpreter-keyed", "it records which interpreter a process-global value belongs to")
    keys = module.interpreter_pointer_globals
    if not keys:
        return None
    readers = {u.function for u in g.uses if u.access is UseAccess.READ and u.function is not None}
    checked = {name for name in readers if (f := module.function(name)) is not None
               and any(c.callee == "PyInterpreterState_Get" for c in f.calls)
               and any(u.function == name and u.access is UseAccess.READ for k in module.globals
                       if k.name in keys for u in k.uses)}
    # The module's m_free only compares it with the module being freed.
    slots = {name for name in readers if (f := module.function(name)) is not None and f.has_role(RoleKind.MODULE_SLOT)}
    if checked and readers <= checked | slots:
        return Reason("interpreter-keyed", f"read only where {', '.join(sorted(checked))}() checks that the "
                                           "interpreter that set it is the current one")
    return None


def first_load_namespace(g: Global, module: ExtensionModule, convertible) -> Reason | None:
    """`if (first != NULL) return PyDict_Update(dict, first);` in a module slot: the names the
    first load made, which each later load takes (porter's own exec-once): process-global by
    what it is for."""
    if not g.uses or any(u.function is None for u in g.uses):
        return None
    users = [module.function(u.function) for u in g.uses if u.function is not None]
    slots = all(f is not None and f.has_role(RoleKind.MODULE_SLOT) for f in users)
    if slots and any(u.access is UseAccess.READ and u.call in ("PyDict_Update", "PyDict_Merge") for u in g.uses):
        return Reason("first-load-namespace", "the module's exec keeps the names the first load made in it, for "
                                              "each later load in the process to take")
    return None


# Static types are judged by type_not_convertible alone; their uses by the round rules.
GLOBAL_VETOES = (interpreter_keyed, first_load_namespace, used_in_generated_code, used_at_file_scope,
                 used_in_static_initializer, shadowed_in_a_macro, object_with_static_initializer,
                 statically_allocated_object,
                 used_in_unread_branch, public_declaration, external_linkage, array_with_initializer,
                 declared_differently_per_build)


def global_veto(g: Global, module: ExtensionModule, convertible: dict[str, Reason | None]) -> Reason | None:
    """The first rule that keeps `g` global, judged on `g` alone."""
    if g.kind is GlobalKind.STATIC_TYPE:
        return type_not_convertible(g, module, convertible) or used_in_generated_code(g, module, convertible) \
            or used_in_static_initializer(g, module, convertible) or used_in_unread_branch(g, module, convertible)
    for rule in GLOBAL_VETOES:
        reason = rule(g, module, convertible)
        if reason is not None:
            return reason
    return None


# --------------------------------------------------------------------------- per round


@dataclass(frozen=True)
class Round:
    """What one round of the decision loop knows, for the round rules."""

    module: ExtensionModule
    movable: dict[GlobalKey, Global]
    access: dict[str, Access]
    needs: dict[str, set[GlobalKey]]
    macro_bodies: dict[str, set[GlobalKey]]


def unreachable_function(r: Round) -> Iterator[tuple[GlobalKey, Reason]]:
    """A global some function cannot reach state from (module state itself blocks the module)."""
    for name, keys in r.needs.items():
        acc = r.access.get(name)
        if not keys or (acc is not None and acc.kind is not AccessKind.NONE):
            continue
        why = acc.reason if acc else "not a function of this module"
        for k in sorted(keys, key=key_order):
            yield k, Reason("unreachable-function", f"used in {name}(), which cannot reach module state ({why})")


def named_by_public_macro(r: Round) -> Iterator[tuple[GlobalKey, Reason]]:
    """A macro in an installed header expands in other packages' code: porter never rewrites it."""
    for m in r.module.macros:
        if m.file not in r.module.public_headers:
            continue
        for k in sorted(r.macro_bodies.get(m.name, set()) & set(r.movable), key=key_order):
            yield k, Reason("public-macro", f"named by macro {m.name} in {m.file}, a header the package installs: "
                                            "its meaning for other packages must not change")


def macro_used_outside_functions(r: Round) -> Iterator[tuple[GlobalKey, Reason]]:
    defining = {f.defined_by for f in r.module.functions if f.defined_by}
    for macro, keys in r.macro_bodies.items():
        if macro in defining:
            continue  # its uses outside functions are the functions it defines
        outside = next((u for u in r.module.macro_uses if u.name == macro and u.function is None), None)
        if outside is not None:
            for k in sorted(keys & set(r.movable), key=key_order):
                yield k, Reason("macro-outside-functions", f"reached through macro {macro}, which is used "
                                                           f"outside functions (in {outside.file})")


def pasted_with_kept_names(r: Round) -> Iterator[tuple[GlobalKey, Reason]]:
    """A macro that pastes names together (over all its uses): all of them move, or none."""
    keys_of = {g.key for g in r.module.globals}
    pasted_by_macro: dict[str, set[GlobalKey]] = {}
    for use in r.module.macro_uses:
        pasted_by_macro.setdefault(use.name, set()).update(
            (None, n) for n in use.pasted if (None, n) in keys_of)
    for macro, pasted in pasted_by_macro.items():
        if pasted and not pasted <= set(r.movable):
            for k in sorted(pasted & set(r.movable), key=key_order):
                yield k, Reason("pasted-with-kept-names", f"built by macro {macro} (##) together with names "
                                                          "that stay global")


def base_stays_static(r: Round) -> Iterator[tuple[GlobalKey, Reason]]:
    """A heap type's module-local base must be a heap type created before it."""
    names = {t.name for t in r.module.static_types}
    for t in r.module.static_types:
        base = type_base(t, r.module)
        if (None, t.name) in r.movable and base in names and (None, base) not in r.movable:
            yield (None, t.name), Reason("base-stays-static", f"its base {base} stays a static type")


def base_of_static_type(r: Round) -> Iterator[tuple[GlobalKey, Reason]]:
    """A static type cannot derive from a heap type (PyType_Ready refuses it): the base of a
    type that stays static stays static too."""
    names = {t.name for t in r.module.static_types}
    for t in r.module.static_types:
        base = type_base(t, r.module)
        if (None, t.name) not in r.movable and base in names and (None, base) in r.movable:
            yield (None, base), Reason("base-of-static-type", f"{t.name}, which stays a static type, derives from "
                                                              "it, and a static type cannot have a heap type base")


def metatype_of_static_type(r: Round) -> Iterator[tuple[GlobalKey, Reason]]:
    """`Py_SET_TYPE(&T, &Meta)` on a type that stays static: T holds no reference to its
    metatype, so a heap Meta would be freed under it (and its instances' GC would count T)."""
    body = r.module.init_body
    for target, meta in body.runtime_metatypes if body is not None else ():
        if (None, meta) in r.movable and (None, target) not in r.movable:
            yield (None, meta), Reason("metatype-of-static-type", f"it is the metatype of {target}, which stays "
                                                                  "static and holds no reference to it")


def named_by_static_initializer(r: Round) -> Iterator[tuple[GlobalKey, Reason]]:
    """Only another converted type's initialiser may name a moved global: that goes too."""
    for k, g in r.movable.items():
        for u in g.uses:
            if u.function is None and u.access is not UseAccess.MACRO and not is_closure_use(r.module, u):
                owner = initializer_owner(r.module, u)
                if owner is not None and (None, owner) not in r.movable:
                    yield k, Reason("used-at-file-scope", f"used outside any function in {u.file} "
                                    f"(the initialiser of {owner}, which stays static)")
                elif owner is None:
                    yield k, file_scope_reason(r.module, u)


def closure_rows_apart(r: Round) -> Iterator[tuple[GlobalKey, Reason]]:
    """Getset rows whose closures become offsets move together (planning.getset_closures)."""
    yield from rows_apart(r.module, r.movable)


ROUND_VETOES = (unreachable_function, named_by_public_macro, macro_used_outside_functions, pasted_with_kept_names,
                base_stays_static, base_of_static_type, metatype_of_static_type, named_by_static_initializer,
                closure_rows_apart)


# --------------------------------------------------------------------------- shared readings


def file_scope_reason(module: ExtensionModule, u: Use) -> Reason:
    """Why a use outside any function keeps its global: a function a project macro defines there
    (`Dec_UnaryNumberMethod(mpd_qminus)`), or else a static initialiser."""
    defined = next((f for f in module.functions if f.defined_by and f.file == u.file
                    and f.span.start <= u.span.start < f.span.end), None)
    if defined is not None:
        return Reason("in-macro-defined-function", f"used in `{defined.name}()`, which macro `{defined.defined_by}` "
                                                   f"defines at file scope in {u.file}, through what the use "
                                                   "expands to (pasted names or the macros it uses): porter "
                                                   "does not follow such a use into that function yet")
    if u.access is UseAccess.MACRO_PASTE and u.macro:
        # `f(PyObject *m) BODY(x)`: a function whose body a macro gives, which tree-sitter reads as no function.
        return Reason("used-at-file-scope", f"named where macro `{u.macro}` expands outside any function porter "
                                            f"could read in {u.file} (a function body the macro gives, or a "
                                            "static initialiser)")
    return Reason("used-at-file-scope", f"used outside any function in {u.file} (a static initialiser)")


def initializer_owner(module: ExtensionModule, u: Use) -> str | None:
    """The static type whose initialiser holds this use, if any."""
    for t in module.static_types:
        if t.file == u.file and t.initializer is not None and \
                t.initializer.start <= u.span.start < t.initializer.end:
            return t.name
    return None


def type_base(t, module: ExtensionModule) -> str | None:
    """The variable a type's tp_base names, in its initialiser or assigned in init."""
    from porter.analyze.initializers import is_null, referenced_name

    value = None
    slot = t.slot("tp_base")
    if slot is not None and not is_null(slot.text):
        value = slot.text
    for a in module.init_body.field_assignments if module.init_body else ():
        if a.target == t.name and a.field == "tp_base":
            value = a.value
    return referenced_name(value) if value else None


__all__ = ["GLOBAL_VETOES", "ROUND_VETOES", "Round", "global_veto", "MODULE_STATE"]
