"""Decisions before edits: which globals move into module state, and how each function reaches it.

Everything here reads facts only. The result says, for every global and static type, whether it
moves (and why not, when it cannot), and for every function how it gets `state`: from its module
argument, from its type, from a new parameter threaded from its callers, or not at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from porter import capi
from porter.analyze.initializers import sizeof_operand
from porter.lexer import tokenize
from porter.model import ExtensionModule, Function, Global, GlobalKind, Use

# Slots whose first argument may be an instance of another type (binary_op1 calls the
# right operand's slot with the left operand first).
BINARY_SLOTS = frozenset({
    "nb_add", "nb_subtract", "nb_multiply", "nb_remainder", "nb_divmod", "nb_power", "nb_lshift",
    "nb_rshift", "nb_and", "nb_xor", "nb_or", "nb_floor_divide", "nb_true_divide",
    "nb_matrix_multiply", "nb_inplace_add", "nb_inplace_subtract", "nb_inplace_multiply",
    "nb_inplace_remainder", "nb_inplace_power", "nb_inplace_lshift", "nb_inplace_rshift",
    "nb_inplace_and", "nb_inplace_xor", "nb_inplace_or", "nb_inplace_floor_divide",
    "nb_inplace_true_divide", "nb_inplace_matrix_multiply",
})
# Slots that run per element or per operation: a state lookup there costs on every call.
HOT_SLOTS = frozenset({"tp_iternext", "tp_richcompare", "tp_hash", "tp_call", "sq_item",
                       "sq_length", "sq_contains", "mp_subscript", "mp_length", "tp_getattro",
                       "tp_descr_get", "tp_iter"}) | BINARY_SLOTS | frozenset({
                       "nb_negative", "nb_positive", "nb_absolute", "nb_bool", "nb_invert",
                       "nb_int", "nb_float", "nb_index"})
STATE_VAR_CANDIDATES = ("state", "st", "mstate", "module_state")

GlobalKey = tuple[str | None, str]
# What `PyModule_GetState(PyState_FindModule(&def))` gave: needs state like a moved global does.
MODULE_STATE: GlobalKey = (None, "<module state>")


@dataclass
class Access:
    """How a function reaches module state."""

    kind: str  # exec, module, type, new, binary, helper, none
    params: tuple[str, ...] = ()  # the parameters it uses (module, self, type, a/b)
    reason: str = ""
    types: tuple[str, ...] = ()  # static types it belongs to (type, new, binary)


@dataclass
class Decisions:
    module: ExtensionModule
    movable: dict[GlobalKey, Global]
    kept: dict[GlobalKey, str]  # needs a port but stays global: why
    access: dict[str, Access]
    needs: dict[str, set[GlobalKey]]  # function -> moved globals it reaches (also through helpers)
    helpers: set[str]  # functions that get a state parameter
    state_macros: dict[str, set[GlobalKey]]  # macros whose body reaches moved globals
    state_var: str
    debug_only: set[str] = field(default_factory=set)  # functions needing state only in assert()
    finders: set[str] = field(default_factory=set)  # `S *get_global_state(void)` around FindModule
    findmodule_uses: list[tuple[str | None, str, object]] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)  # reasons the whole module cannot be ported


def decide(module: ExtensionModule, convertible_types: dict[str, str | None]) -> Decisions:
    """Iterate to a fixed point: a global moves only if every function using it can reach state.

    `convertible_types` maps each static type to None when it can become a heap type, or to the
    reason it cannot.
    """
    fns = {f.name: f for f in module.functions}
    globals_by_key = {g.key: g for g in module.globals}
    kept: dict[GlobalKey, str] = {}
    movable: dict[GlobalKey, Global] = {}
    body = module.init_body
    module_global = body.module_var if body is not None and body.module_var_global else None
    for g in module.globals:
        if not g.kind.needs_port or (g.name == module_global and g.function is None):
            continue  # the module's own global goes: exec's parameter replaces it
        reason = _unmovable(g, module, convertible_types)
        if reason:
            kept[g.key] = reason
        else:
            movable[g.key] = g
    macro_bodies = _macro_globals(module, globals_by_key)
    finders = state_finders(module)
    for use in module.find_module_uses:
        if use.macro is not None and use.wants == "state":
            macro_bodies.setdefault(use.macro, set()).add(MODULE_STATE)
    # A macro that calls a state finder (`st = get_global_state();`) needs state where it expands.
    for m in module.macros:
        if any(re.search(rf"\b{re.escape(f)}\s*\(", m.body_text) for f in finders):
            macro_bodies.setdefault(m.name, set()).add(MODULE_STATE)
    _close_over_macros(module, macro_bodies)
    state_var = _state_var(module)
    called = {c.callee for f in module.functions for c in f.calls}
    init_function = module.init.worker or module.init.function
    base_bodies = {name: set(keys) for name, keys in macro_bodies.items()}
    calling: set[str] = set()  # macros that call a helper getting a state parameter
    rounds = 0
    while True:
        macro_bodies = {name: set(keys) for name, keys in base_bodies.items()}
        for name in calling:
            macro_bodies.setdefault(name, set()).add(MODULE_STATE)
        _close_over_macros(module, macro_bodies)
        type_ok = {k[1] for k, g in movable.items() if g.kind is GlobalKind.STATIC_TYPE}
        # Heap types made from a spec in init and kept in a moved global: created with the
        # module from now on, their methods find it through the type.
        type_ok |= {s.global_name for s in module.spec_types
                    if (None, s.global_name) in movable and s.function == init_function}
        access = {name: _access(f, module, type_ok, name in called) for name, f in fns.items()}
        direct = _direct_needs(module, movable, macro_bodies)
        for use in module.find_module_uses:
            if use.macro is None and use.wants in ("state", "state-via") and use.function:
                direct.setdefault(use.function, set()).add(MODULE_STATE)
        for f in module.functions:
            if f.name not in finders and any(c.callee in finders for c in f.calls):
                direct.setdefault(f.name, set()).add(MODULE_STATE)
        needs, helpers = _thread_helpers(fns, access, direct)
        # A macro that calls a helper getting a state parameter passes `state` where it expands
        # (one defined only under a condition porter cannot evaluate is reported instead).
        conditional_files = dict(module.file_conditions)
        now_calling = {m.name for m in module.macros
                       if m.active is not None and m.file not in conditional_files
                       and any(re.search(rf"\b{re.escape(h)}\s*\(", m.body_text) for h in helpers)}
        rounds += 1
        if now_calling != calling and rounds < 50:
            # Recomputed from this round's helpers: a helper that stops needing state frees
            # its macros again (after 50 rounds the union is kept, which only costs reach).
            calling = now_calling if rounds < 40 else calling | now_calling
            continue
        bad: dict[GlobalKey, str] = {}
        for name, keys in needs.items():
            if not keys:
                continue
            acc = access.get(name)
            if acc is None or acc.kind == "none":
                why = acc.reason if acc else "not a function of this module"
                for k in keys:
                    bad.setdefault(k, f"used in {name}(), which cannot reach module state ({why})")
        blocked_state = bad.pop(MODULE_STATE, None)
        defining = {f.defined_by for f in module.functions if f.defined_by}
        for macro, keys in macro_bodies.items():
            if macro in defining:
                continue  # its uses outside functions are the functions it defines
            outside = next((u for u in module.macro_uses if u.name == macro and u.function is None), None)
            if outside is not None:
                for k in keys & set(movable):
                    bad.setdefault(k, f"reached through macro {macro}, which is used outside "
                                      f"functions (in {outside.file})")
        # A macro that pastes names together (over all its uses): all of them move, or none.
        pasted_by_macro: dict[str, set[GlobalKey]] = {}
        for use in module.macro_uses:
            pasted_by_macro.setdefault(use.name, set()).update(
                (None, n) for n in use.pasted if (None, n) in globals_by_key)
        for macro, pasted in pasted_by_macro.items():
            if pasted and not pasted <= set(movable):
                for k in pasted & set(movable):
                    bad.setdefault(k, f"built by macro {macro} (##) together with names that stay global")
        # A heap type's module-local base must be a heap type created before it.
        for t in module.static_types:
            base = _base_of(t, module)
            if (None, t.name) in movable and base and any(b.name == base for b in module.static_types) \
                    and (None, base) not in movable:
                bad.setdefault((None, t.name), f"its base {base} stays a static type")
        for k, g in movable.items():
            for u in g.uses:
                if u.function is None and u.access != "macro":
                    # Only another converted type's initialiser may name it: that goes too.
                    owner = _initializer_owner(module, u)
                    if owner is None or (None, owner) not in movable:
                        bad.setdefault(k, f"used outside any function in {u.file} "
                                          + (f"(the initialiser of {owner}, which stays static)"
                                             if owner else "(a static initialiser)"))
        # A type's methods reach state through the type: if the type stays static they cannot.
        if not bad:
            break
        for k, why in bad.items():
            if k in movable:
                del movable[k]
                kept[k] = why
    wanted = set(movable) | {MODULE_STATE}
    state_macros = {m: keys & wanted for m, keys in macro_bodies.items() if keys & wanted}
    decisions = Decisions(module, movable, kept, access, needs, helpers, state_macros, state_var)
    decisions.debug_only = _debug_only(module, movable, macro_bodies, needs, fns)
    if blocked_state:
        decisions.blocked.append("PyState_FindModule: " + blocked_state.replace("<module state>", "module state"))
    decisions.finders = finders
    for use in module.find_module_uses:
        if use.function in finders:
            continue  # the finder goes: its callers get the state instead
        if use.wants == "module":
            acc = access.get(use.function or "")
            if use.macro is not None or acc is None or acc.kind not in ("module", "exec", "type", "new"):
                where = f"macro {use.macro}" if use.macro else f"{use.function or 'file scope'}()"
                decisions.blocked.append(
                    f"{use.source} in {where} needs the module object, which porter cannot reach there")
    return decisions


def _unmovable(g: Global, module: ExtensionModule, convertible_types: dict[str, str | None]) -> str | None:
    if g.kind is GlobalKind.STATIC_TYPE:
        return convertible_types.get(g.name, "not a type porter read")
    for u in g.uses:
        if u.function is None and u.access not in ("macro",) and _initializer_owner(module, u) is None:
            return f"used outside any function at {u.file} (a static initialiser)"
        if u.unparsed:
            return f"used inside code porter could not parse in {u.file}"
    if g.kind.is_object_kind and g.initializer is not None and not _null_text(module, g):
        return "an object pointer with a static initialiser"
    if capi.statically_allocated_object(g.initializer_text) and g.kind is not GlobalKind.STATIC_TYPE:
        return ("a statically allocated Python object: it cannot be copied into module state; "
                "create it in exec instead (a heap type or PyObject_New)")
    if any(f.code == "global-in-unread-branch" and g.name in f.message for f in module.findings):
        return "used in an #if branch porter did not read"
    if not g.is_static and g.function is None:
        # External linkage: another translation unit may name it.
        outside = [loc for loc in g.extern_declarations if loc.file not in module.files]
        if outside:
            return "declared extern outside the module's files"
        users = [file for name, file in module.outside_uses if name == g.name]
        if users:
            return (f"{users[0]} names it through a header and was not given to porter "
                    "(give every source of the extension)")
    if "[" in g.type_text and g.initializer is not None and g.kind is not GlobalKind.STATIC_TYPE:
        return "an array with an initialiser: porter does not copy initial array contents"
    return None


def state_finders(module: ExtensionModule) -> set[str]:
    """Functions like `static S *get_global_state(void)` that find the state with
    PyState_FindModule: their calls become the caller's state and they go."""
    d = module.definition
    size = d.field("m_size") if d else None
    operand = sizeof_operand(size.text if size else None)
    if operand is None:
        return set()
    state_type = operand[1]
    users = {u.function for u in module.find_module_uses if u.function}
    found = set()
    for f in module.functions:
        if f.name in users and not [p for p in f.params if p.type_text.strip() != "void"] \
                and re.search(rf"\b{re.escape(state_type)}\s*\*", f.return_type + " *") \
                and f.roles == ("helper",):
            found.add(f.name)
    return found


def _base_of(t, module: ExtensionModule) -> str | None:
    from porter.analyze.initializers import is_null, referenced_name

    value = None
    slot = t.slot("tp_base")
    if slot is not None and not is_null(slot.text):
        value = slot.text
    for a in module.init_body.field_assignments if module.init_body else ():
        if a.target == t.name and a.field == "tp_base":
            value = a.value
    return referenced_name(value) if value else None


def _initializer_owner(module: ExtensionModule, u: Use) -> str | None:
    """The static type whose initialiser (or sub-struct) holds this use, if any."""
    for t in module.static_types:
        if t.file == u.file and t.initializer is not None and \
                t.initializer.start <= u.span.start < t.initializer.end:
            return t.name
    return None


def _null_text(module: ExtensionModule, g: Global) -> bool:
    return g.initializer_text.strip() in ("NULL", "0", "((void*)0)", "(PyObject *)NULL", "(PyObject*)NULL")


def _state_var(module: ExtensionModule) -> str:
    """A name for the state pointer that no function of the module already uses."""
    for candidate in STATE_VAR_CANDIDATES:
        if candidate not in module.names_in_use:
            return candidate
    return f"{module.name.strip('_')}_st"


def _access(f: Function, module: ExtensionModule, type_ok: set[str], called: bool = False) -> Access:
    roles = f.roles
    # A first parameter marked Py_UNUSED(self) is renamed when the function needs it.
    first = (f.params[0].name or f.params[0].unused_name) if f.params else None
    if "module-init" in roles or f.name == (module.init.worker or module.init.function):
        return Access("exec")
    if "callback" in roles:
        instance_of = _instance_param_type(f, module, type_ok)
        if instance_of is not None and first is not None:
            # A callback handed its own object (PyEval_SetTrace(func, self)): the type leads to state.
            return Access("type", (first,), types=(instance_of,))
        if f.sync_callback_sites and set(roles) <= {"callback", "helper"}:
            if called:
                # A direct call would read whatever state the thread last published.
                return Access("none", reason="it is also called directly, outside the calls that "
                                             "publish the state for callbacks")
            return Access("callback", reason="called back by " + ", ".join(
                sorted({site[2] for site in f.sync_callback_sites})) + " on the caller's thread")
        return Access("none", reason="its address is passed elsewhere, so its signature is fixed")
    if "module-method" in roles:
        if first is None:
            return Access("none", reason="its module parameter has no usable name")
        if called and roles == ("module-method",) and not f.defined_by:
            # Also called directly (often with NULL for the module): split into an _impl that
            # takes the state, and the method that finds it.
            return Access("split", (first,))
        return Access("module", (first,))
    owner_types = list(f.types)
    if any(r in ("type-method", "getter", "setter") or r.startswith("slot:") for r in roles):
        missing = [t for t in owner_types if t not in type_ok]
        if not owner_types:
            return Access("none", reason="porter cannot tell which of the module's types it belongs to")
        if missing:
            return Access("none", types=tuple(owner_types),
                          reason=f"type {', '.join(missing)} stays a static type")
        slots = {r[5:] for r in roles if r.startswith("slot:")}
        if slots & BINARY_SLOTS:
            if len(f.params) < 2 or not f.params[1].name or not first:
                return Access("none", reason="binary slot without named operands")
            return Access("binary", (first, f.params[1].name), types=tuple(owner_types))
        if "tp_new" in slots:
            if first is None:
                return Access("none", reason="tp_new without a named type parameter")
            return Access("new", (first,), types=tuple(owner_types))
        if first is None:
            return Access("none", reason="no named self parameter")
        return Access("type", (first,), types=tuple(owner_types))
    if "module-slot" in roles and first is not None and "method" not in roles:
        # m_traverse, m_clear and m_free are called with the module object.
        return Access("module", (first,))
    if "module-slot" in roles or "method" in roles:
        return Access("none", reason="a function porter cannot tie to the module object")
    if roles == ("helper",):
        if f.defined_by:
            return Access("none", reason=f"defined by macro {f.defined_by}: porter cannot add a parameter to it")
        if any(caller is None for caller, _ in f.unread_calls):
            return Access("none", reason="it is also declared or called outside functions in an #if "
                                         "branch porter did not read")
        return Access("helper")
    return Access("none", reason="role " + ", ".join(roles))


def _direct_needs(module, movable, macro_bodies) -> dict[str, set[GlobalKey]]:
    needs: dict[str, set[GlobalKey]] = {}
    for k, g in movable.items():
        for u in g.uses:
            if u.function is not None and u.access != "macro":
                needs.setdefault(u.function, set()).add(k)
    # Uses of macros whose bodies name moved globals.
    for use in module.macro_uses:
        keys = macro_bodies.get(use.name, set()) & (set(movable) | {MODULE_STATE})
        if keys and use.function is not None:
            needs.setdefault(use.function, set()).update(keys)
    for f in module.functions:
        if f.defined_by:
            keys = macro_bodies.get(f.defined_by, set()) & (set(movable) | {MODULE_STATE})
            if keys:
                needs.setdefault(f.name, set()).update(keys)
    return needs


def _thread_helpers(fns, access, direct):
    """Propagate needs through calls to helpers; a helper that needs state gets a parameter."""
    needs = {name: set(keys) for name, keys in direct.items()}
    # A function that hands a synchronous callback to qsort() must provide its state.
    edges = [(name, c.callee) for name, f in fns.items() for c in f.calls
             if access.get(c.callee, Access("none")).kind in ("helper", "split")]
    edges += [(site[0], name) for name, f in fns.items()
              if access.get(name, Access("none")).kind == "callback" for site in f.sync_callback_sites]
    # Calls in #if branches porter did not read get the state too (lexically): their callers need it.
    edges += [(caller, name) for name, f in fns.items()
              if access.get(name, Access("none")).kind in ("helper", "split") for caller, _ in f.unread_calls
              if caller is not None]
    changed = True
    while changed:
        changed = False
        for caller, callee in edges:
            got = needs.get(callee)
            if got and not got <= needs.get(caller, set()):
                needs.setdefault(caller, set()).update(got)
                changed = True
    helpers = {name for name, keys in needs.items()
               if keys and access.get(name, Access("none")).kind in ("helper", "split")}
    return needs, helpers


def _macro_globals(module: ExtensionModule, globals_by_key) -> dict[str, set[GlobalKey]]:
    """Macro name -> file-scope globals its body names, directly or through other macros."""
    direct: dict[str, set[GlobalKey]] = {}
    mentions: dict[str, set[str]] = {}
    names = {m.name for m in module.macros}
    for m in module.macros:
        idents = {t.text.decode() for t in tokenize(m.body_text.encode(), directives=False) if t.kind == "ident"}
        direct.setdefault(m.name, set()).update(
            (None, i) for i in idents if (None, i) in globals_by_key)
        mentions.setdefault(m.name, set()).update(i for i in idents if i in names and i != m.name)
    result = {k: set(v) for k, v in direct.items()}
    changed = True
    while changed:
        changed = False
        for name, others in mentions.items():
            for o in others:
                extra = result.get(o, set()) - result[name]
                if extra:
                    result[name] |= extra
                    changed = True
    return {k: v for k, v in result.items() if v}


def _instance_param_type(f: Function, module: ExtensionModule, type_ok: set[str]) -> str | None:
    """The converted type whose instance struct the first parameter points to, if any."""
    if not f.params:
        return None
    m = re.match(r"\s*(?:const\s+)?(?:struct\s+)?(\w+)\s*\*\s*\w*\s*$", f.params[0].type_text)
    if not m:
        return None
    struct = m.group(1)
    for t in module.static_types:
        size = t.slot("tp_basicsize")
        operand = sizeof_operand(size.text if size is not None else None)
        if t.name in type_ok and operand is not None and operand[1] == struct:
            return t.name
    return None


def _debug_only(module, movable, macro_bodies, needs, fns) -> set[str]:
    """Functions whose every use of state sits inside assert(): release builds need none."""
    plain: set[str] = set()
    asserted: set[str] = set()
    for k, g in movable.items():
        for u in g.uses:
            if u.function and u.access not in ("macro",):
                (asserted if u.in_assert else plain).add(u.function)
    wanted = set(movable) | {MODULE_STATE}
    for use in module.macro_uses:
        if use.function and macro_bodies.get(use.name, set()) & wanted:
            (asserted if use.in_assert else plain).add(use.function)
    for use in module.find_module_uses:
        if use.function and use.wants != "existing":
            plain.add(use.function)
    # Calls that thread state to helpers count as plain uses.
    for name, f in fns.items():
        if any(needs.get(c.callee) for c in f.calls):
            plain.add(name)
    return {f for f in asserted - plain if needs.get(f)}


def _close_over_macros(module: ExtensionModule, bodies: dict[str, set[GlobalKey]]) -> None:
    """A macro naming another macro reaches what that one reaches."""
    mentions = {m.name: {t.text.decode() for t in tokenize(m.body_text.encode(), directives=False)
                         if t.kind == "ident"} for m in module.macros}
    changed = True
    while changed:
        changed = False
        for name, others in mentions.items():
            for o in others:
                extra = bodies.get(o, set()) - bodies.get(name, set())
                if o != name and extra:
                    bodies.setdefault(name, set()).update(extra)
                    changed = True


def _macro_used_only_in_functions(module: ExtensionModule, macro: str | None, macro_bodies) -> bool:
    if macro is None:
        return False
    return not any(u.name == macro and u.function is None for u in module.macro_uses)
