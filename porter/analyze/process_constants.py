"""C data that belongs to the process: caches of process-wide values, and once-guards.

    static long page_size;                  static PyInterpreterState *main_interp = NULL;
    if (!page_size)                         if (main_interp == NULL) {
        page_size = sysconf(_SC_PAGESIZE);      ... walk PyInterpreterState_Head() ...
                                                main_interp = interp;
                                            }

Such a cache is written only while it still holds its initial value, from calls that only read
process-wide data (PROCESS_QUERIES) and locals: every interpreter that computes it computes the
same value, so it can stay process-global under a per-interpreter GIL (two first calls may both
write it, with the same value). Anything else it might depend on or set off (a Python object,
another global, a project function or macro, a call through a pointer, a C library's own
initialisation) makes it ordinary mutable data.

    if (!ready) { lib_init(); ready = 1; }

A once-guard is the other case: a flag whose guarded code reaches a C library outside the
project. What it guards must happen once per process, so the flag stays process-global too
(planning makes the test thread-safe where it can).
"""

from __future__ import annotations

from porter.analyze import ctree
from porter.analyze.index import FileIndex
from porter.analyze.unread_uses import may_change, unread_uses
from porter.model import Global, Location, UseAccess
from porter.parse import Node, walk

# Calls that only read process-wide data (the system, the clock, the environment, the runtime's
# list of interpreters) and change nothing: a cache filled from them holds the same value in every
# interpreter, and filling it twice at once does no harm. A call to anything else (a C library's
# own initialisation above all) may have effects that must happen once: its guard is not a cache.
PROCESS_QUERIES = frozenset({
    "PyInterpreterState_Head", "PyInterpreterState_Next", "PyInterpreterState_Main",
    "time", "localtime", "localtime_r", "gmtime", "gmtime_r", "mktime", "clock_getres",
    "sysconf", "getpagesize", "get_nprocs", "get_nprocs_conf", "getenv", "secure_getenv",
    "getpid", "getuid", "geteuid", "getgid", "getegid", "isatty", "uname", "gethostname",
    "nl_langinfo", "strlen", "strcmp", "strncmp", "strchr", "strrchr", "strstr", "memcmp",
    "strtol", "strtoul", "strtoll", "strtoull", "strtod", "atoi", "atol", "atoll",
    "__builtin_cpu_supports", "__builtin_cpu_is", "__get_cpuid", "__cpuid", "__cpuid_count",
})
_ZERO = frozenset({"0", "NULL", "0L", "0UL", "0.0", "nullptr", "((void*)0)"})


def is_process_constant(g: Global, indexes: list[FileIndex], global_names: frozenset[str]) -> bool:
    """Whether `g` is a cache of process-wide data (see the module docstring). `global_names`:
    the file-scope globals and function-local statics the cache must not read."""
    if "[" in g.type_text or g.thread_local or g.is_const:
        return False
    if any(u.access not in (UseAccess.READ, UseAccess.WRITE) or u.macro is not None for u in g.uses):
        return False  # an address or a macro body: writes porter cannot see
    writes = [u for u in g.uses if u.access is UseAccess.WRITE]
    if not writes or writes[0].function is None or any(u.function != writes[0].function for u in writes):
        return False
    initial = _initial(g)
    for u in writes:
        found = _plain_assignment(u, indexes)
        if found is None:
            return False
        index, _, assign = found
        guarded = _guarded_region(assign, g.name, initial, index)
        if guarded is None or not _reads_only_process_data(guarded, g.name, index, indexes, global_names):
            return False
    return True


def is_process_flag(g: Global, indexes: list[FileIndex], phase: set[str]) -> bool:
    """`if (getenv("MOD_DEBUG")) debug = 1;` at init: a flag only ever set while the module
    initialises, to one constant, under conditions that read only process-wide data. Every
    interpreter would set it alike, and the original shared it with every later import already:
    it may stay process-global (two imports at once write the same value). Its uses in macro
    bodies and in unread `#if` branches must not write it either."""
    if "[" in g.type_text or "*" in g.type_text or g.thread_local or g.is_const:
        return False
    texts = {index.path: index.src.text for index in indexes}
    for u in g.uses:
        if u.access is UseAccess.MACRO:
            if may_change(texts[u.file], u.span.start, u.span.end):
                return False
        elif u.access not in (UseAccess.READ, UseAccess.WRITE) or u.macro is not None:
            return False
    writes = [u for u in g.uses if u.access is UseAccess.WRITE]
    if not writes or any(u.function not in phase for u in writes):
        return False
    values = set()
    for u in writes:
        found = _plain_assignment(u, indexes)
        value = found[2].child_by_field_name("right") if found is not None else None
        if found is None or value is None or value.type != "number_literal" \
                or not _set_by_process_data(found[2]):
            return False
        values.add(_normal(value.text.decode()))
    if len(values) != 1 or values == {_initial(g)}:
        return False
    unread = unread_uses(indexes, [g]).get(g.key, ())
    return not any(may_change(texts[u.file], u.span.start, u.span.end) for u in unread)


def _set_by_process_data(assign: Node) -> bool:
    """Every condition the assignment runs under reads only process-wide data (`getenv(...)`),
    and no loop or switch repeats or selects it."""
    child, current = assign, assign.parent
    while current is not None and current.type != "function_definition":
        if current.type in ("for_statement", "while_statement", "do_statement", "switch_statement"):
            return False
        if current.type in ("if_statement", "conditional_expression"):
            condition = current.child_by_field_name("condition")
            if condition is not None and condition.id != child.id and not _process_condition(condition):
                return False
        child, current = current, current.parent
    return current is not None


def _process_condition(condition: Node) -> bool:
    for node in walk(condition):
        if node.type == "call_expression":
            if ctree.call_name(node) not in PROCESS_QUERIES:
                return False
        elif node.type == "identifier":
            parent = node.parent
            called = parent is not None and parent.type == "call_expression" \
                and parent.child_by_field_name("function") == node
            if not called and node.text.decode() not in _ZERO:
                return False
    return True


def is_once_guard(g: Global, indexes: list[FileIndex], global_names: frozenset[str]) -> bool:
    """`if (!ready) { lib_init(); ready = 1; }`: a flag, only ever set to constants, that makes
    the calls it guards (a C library's initialisation) happen once per process. What the guarded
    code runs must reach a C library outside the project and set none of the project's globals
    (data the module fills itself is its own, per module)."""
    if "[" in g.type_text or "*" in g.type_text or g.thread_local or g.is_const:
        return False
    if any(u.access not in (UseAccess.READ, UseAccess.WRITE) or u.macro is not None for u in g.uses):
        return False
    writes = [u for u in g.uses if u.access is UseAccess.WRITE]
    initial = _initial(g)
    guarding = False
    for u in writes:
        found = _plain_assignment(u, indexes)
        value = found[2].child_by_field_name("right") if found is not None else None
        if found is None or value is None or value.type != "number_literal":
            return False
        index, _, assign = found
        guarded = _guarded_region(assign, g.name, initial, index)
        if guarded is not None:
            reach = _reaches_library(guarded, indexes, global_names - {g.name}, set())
            if reach is None:
                return False  # it also sets the project's own data
            guarding = guarding or reach
    return guarding


def once_guard_statements(g: Global, indexes: list[FileIndex]) -> tuple[Location, ...]:
    """The `if (!ready) { ... ready = 1; }` statements of a once-guard when each of its writes
    sits in one, and no `return`, `goto` or `break` leaves one early: a lock held around each
    makes the guard thread-safe. Empty when one cannot be wrapped so."""
    initial = _initial(g)
    out: list[Location] = []
    for u in g.uses:
        if u.access is not UseAccess.WRITE:
            continue
        index = next((i for i in indexes if i.path == u.file), None)
        node = index.src.root.descendant_for_byte_range(u.span.start, u.span.end) if index is not None else None
        statement = node
        while statement is not None and statement.type != "if_statement":
            statement = statement.parent
        if statement is None or index is None \
                or not _tests(statement.child_by_field_name("condition"), g.name, initial, index, unset=True) \
                or statement.child_by_field_name("alternative") is not None \
                or any(n.type in ("return_statement", "goto_statement", "break_statement", "continue_statement")
                       for n in walk(statement)):
            continue  # an assignment elsewhere (a reset) needs no lock of its own
        where = Location(u.file, ctree.span(statement))
        if where not in out:
            out.append(where)
    writes_outside = [u for u in g.uses if u.access is UseAccess.WRITE
                      and not any(w.file == u.file and w.span.start <= u.span.start < w.span.end for w in out)]
    if not out or any(_guarded_write(u, g, indexes, initial) for u in writes_outside):
        return ()  # a guarded write porter cannot wrap
    return tuple(out)


def _guarded_write(u, g: Global, indexes: list[FileIndex], initial: str) -> bool:
    found = _plain_assignment(u, indexes)
    return found is not None and _guarded_region(found[2], g.name, initial, found[0]) is not None


def _reaches_library(region: list, indexes: list[FileIndex], global_names: frozenset[str],
                     seen: set[str]) -> bool | None:
    """Whether `region` calls into a C library outside the project (through the project's own
    functions too); None when it, or a project function it calls, assigns a global."""
    found = False
    for stmt in region:
        for n in walk(stmt):
            if n.type == "assignment_expression":
                left = ctree.unwrap_parens(n.child_by_field_name("left"))
                while left is not None and left.type in ("subscript_expression", "field_expression"):
                    left = ctree.unwrap_parens(left.child_by_field_name("argument"))
                if left is not None and left.type == "identifier" and left.text.decode() in global_names:
                    return None
            if n.type != "call_expression":
                continue
            name = ctree.call_name(n)
            if name is None or name in PROCESS_QUERIES or name.startswith(("Py", "_Py")):
                continue
            bodies = [node.child_by_field_name("body") for idx in indexes for node in idx.functions.get(name, [])]
            if not bodies:
                found = True  # outside the project: a library
                continue
            if name in seen:
                continue
            seen.add(name)
            inner = _reaches_library([b for b in bodies if b is not None], indexes, global_names, seen)
            if inner is None:
                return None
            found = found or inner
    return found


def _plain_assignment(u, indexes: list[FileIndex]) -> tuple[FileIndex, Node, Node] | None:
    """(file index, the use's name node, the `x = value` around it) when the use is the target
    of a plain assignment, else None."""
    index = next((i for i in indexes if i.path == u.file), None)
    node = index.src.root.descendant_for_byte_range(u.span.start, u.span.end) if index is not None else None
    assign = node.parent if node is not None else None
    if index is None or assign is None or assign.type != "assignment_expression" \
            or assign.child_by_field_name("left") != node or _operator(assign) != "=":
        return None
    return index, node, assign


def _initial(g: Global) -> str:
    """The value a global starts with, as `_tests` compares it (`0` for any null spelling)."""
    initial = _normal(g.initializer_text) if g.initializer is not None else "0"
    return "0" if initial in _ZERO else initial


def _normal(text: str) -> str:
    return "".join(text.split())


def _operator(assign: Node) -> str:
    op = assign.child_by_field_name("operator")
    return op.type if op is not None else ""


def _guarded_region(assign: Node, name: str, initial: str, index: FileIndex) -> list[Node] | None:
    """The statements that run only while `name` holds its initial value and that contain
    `assign`: an `if (!x) {...}` around it, or what follows an `if (x) return ...;` before it."""
    child, current = assign, assign.parent
    while current is not None and current.type != "function_definition":
        if current.type == "if_statement" and current.child_by_field_name("consequence") == child \
                and _tests(current.child_by_field_name("condition"), name, initial, index, unset=True):
            return [child]
        if current.type == "compound_statement":
            earlier = [c for c in current.named_children if c.end_byte <= child.start_byte]
            for stmt in earlier:
                if stmt.type == "if_statement" and stmt.child_by_field_name("alternative") is None \
                        and ctree.returns(stmt.child_by_field_name("consequence"), only=True) \
                        and _tests(stmt.child_by_field_name("condition"), name, initial, index, unset=False):
                    return [c for c in current.named_children if c.start_byte > stmt.end_byte]
        child, current = current, current.parent
    return None


def _tests(condition: Node | None, name: str, initial: str, index: FileIndex, unset: bool) -> bool:
    """`condition` is exactly "`name` still holds `initial`" (unset) or its negation."""
    text = _normal(ctree.text(index.src, condition))
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1]
    zero = initial == "0"
    negative = initial.startswith("-")
    if unset:
        forms = {f"{name}=={initial}", f"{initial}=={name}"}
        if zero:
            forms |= {f"!{name}", f"{name}==NULL", f"NULL=={name}"}
        if negative:
            forms |= {f"{name}<0"}
    else:
        forms = {f"{name}!={initial}", f"{initial}!={name}"}
        if zero:
            forms |= {name, f"{name}!=NULL", f"NULL!={name}"}
        if negative:
            forms |= {f"{name}>=0"}
    return text in forms


def _reads_only_process_data(region: list[Node], name: str, index: FileIndex, indexes: list[FileIndex],
                             global_names: frozenset[str]) -> bool:
    for stmt in region:
        for node in walk(stmt):
            if node.type == "call_expression":
                callee = ctree.call_name(node)
                if callee is None or callee not in PROCESS_QUERIES or _project_code(callee, indexes):
                    return False
            elif node.type == "identifier":
                ident = node.text.decode()
                if ident != name and ident in global_names \
                        and not ctree.is_declared_locally(ident, node, index.scopes):
                    return False
    return True


def _project_code(callee: str, indexes: list[FileIndex]) -> bool:
    """A function or function-like macro of the project: it may read anything."""
    return any(callee in idx.functions or callee in idx.prototypes
               or any(m.name == callee and m.params is not None for m in idx.macros) for idx in indexes)
