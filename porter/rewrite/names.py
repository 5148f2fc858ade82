"""Every identifier porter adds, chosen by one allocator over one set of taken names."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Names for the state pointer in functions, first free one wins (CPython uses `state` and `st`).
STATE_VAR_CANDIDATES = ("state", "st", "mstate", "module_state")
# Names for exec's module parameter when init's own variable stays a variable.
EXEC_PARAM_CANDIDATES = ("module", "exec_module", "the_module")
# Names for the module parameter porter gives helpers that pass the module on.
MODULE_PARAM_CANDIDATES = ("module", "mod", "the_module")
# Names for the local that keeps Py_TYPE(self) in a dealloc.
TYPE_VAR_CANDIDATES = ("tp", "self_type", "dealloc_type")


class NameAllocator:
    """Hands out identifiers no source file of the module uses and porter has not handed out."""

    def __init__(self, *taken: frozenset[str] | set[str]):
        # The sets are read, not copied: a unity file's modules each start from all its
        # identifiers, and a copy per module was quadratic in the number of modules.
        self._used = taken
        self._handed_out: set[str] = set()

    def fresh(self, name: str) -> str:
        """`name`, or `name2`, `name3`... whichever is free; it is taken afterwards."""
        candidate, n = name, 2
        while candidate in self:
            candidate = f"{name}{n}"
            n += 1
        self._handed_out.add(candidate)
        return candidate

    def first_free(self, candidates: tuple[str, ...], fallback: str) -> str:
        """The first candidate no one uses, else a fresh `fallback`."""
        for name in candidates:
            if name not in self:
                self._handed_out.add(name)
                return name
        return self.fresh(fallback)

    def __contains__(self, name: str) -> bool:
        return name in self._handed_out or any(name in used for used in self._used)


@dataclass(frozen=True)
class Names:
    """The identifiers a port adds, computed once so that steps and templates only print them."""

    base: str  # the module name as a C identifier prefix
    state_type: str
    get_state: str
    get_state_by_type: str
    get_state_by_cls: str  # from a clinic method's defining class
    get_state_by_operands: str
    exec: str
    traverse: str
    clear: str
    free: str
    slots: str
    def_name: str
    state_var: str
    callback_state: str  # the thread-local a callback reads its state from
    thread_local: str  # the macro that spells _Thread_local / __declspec(thread)
    exec_param: str  # exec's module parameter
    module_param: str  # the module parameter of helpers that get the module (planning.module_object)
    instance_of: str  # answers an instance check through the object's type (planning.instance_checks)
    type_var: str  # the local that keeps Py_TYPE(self) in a dealloc
    new_struct: bool  # False when the module already had a state struct (m_size = sizeof(X))
    module_by_type: str  # the limited API's stand-in for PyType_GetModuleByDef
    module_descriptor: str  # finds a type's saved __module__ descriptor
    keep_module_descriptor: str  # saves it when the type is made
    runtime_slots: str  # fills the multiple-interpreters slot at import when the limited API hides it
    impl: dict[str, str]  # split methods -> the name of the function that does the work
    # The module the last exec made, its interpreter, and the function that finds it there: for
    # functions that cannot reach module state (what PyState_FindModule did for them).
    last_module: str = ""
    last_module_interp: str = ""
    find_last_module: str = ""
    # When exec fills static types that stay process-global (Plan.exec_once): the slot's exec,
    # which runs the module's own exec once, and the namespace that first run made.
    exec_once: str = ""
    first_namespace: str = ""
    first_load: dict = field(default_factory=dict)  # (file, call start) -> its atomic first-load test
    once_lock: str = ""  # the lock held around once-guards (Plan.once_locks, Plan.init_once)
    once_flags: dict = field(default_factory=dict)  # (file, statement start) -> its once-per-process flag
    # The module's own accessor when it has one (`static inline readlinestate *
    # get_readline_state(PyObject *module)` over PyModule_GetState): its function, which the
    # state block declares instead of defining a second one.
    own_get_state: str = ""
    # Finds the state of the module this interpreter imported, for functions that code outside
    # calls by their symbol (planning.access: exported on purpose).
    state_of_interpreter: str = ""

    def saved_callback_state(self, n: int) -> str:
        """The local that keeps the previous thread-local value around the n-th publishing call."""
        return f"previous_{self.callback_state}" + (str(n) if n > 1 else "")


def module_prefix(module_name: str) -> str:
    return re.sub(r"\W", "_", module_name.lstrip("_")) or module_name
