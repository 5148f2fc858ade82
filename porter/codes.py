"""Every code porter reports, with what it means: one registry for the report, the JSON and
`porter explain`.

Steps document themselves (their module docstring); every other code is here: checklist items
that are not steps, findings about the sources, and the reasons a global stays global or a
module cannot be ported.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from enum import StrEnum


class CodeKind(StrEnum):
    STEP = "step"  # a rewrite step: what it does
    ITEM = "item"  # a checklist item a step leaves to a person
    FINDING = "finding"  # something about the sources, found before porting
    KEPT = "kept"  # why a global or type stays process-global
    FAILURE = "failure"  # why a module could not be ported at all


@dataclass(frozen=True)
class Code:
    id: str
    kind: CodeKind
    text: str  # first line `id: summary`, then what, why and what to do
    todo: str = ""  # for things left to a person: one concrete instruction

    @property
    def summary(self) -> str:
        first = self.text.strip().splitlines()[0] if self.text.strip() else ""
        return first.split(": ", 1)[1] if ": " in first else first


def _code(id: str, kind: CodeKind, summary: str, more: str = "", todo: str = "") -> Code:
    text = f"{id}: {summary}" + (f"\n\n{more.strip()}" if more else "")
    if todo:
        text += f"\n\nWhat to do: {todo}"
    return Code(id, kind, text, todo)


_ITEMS = [
    _code("once-guard", CodeKind.ITEM, "a flag that makes a C library's initialisation happen once per process.", """
What: `if (!ready) { lib_init(); ready = 1; }` in the init function, where what it guards reaches
a C library outside the project and sets none of the module's own data.

Why it matters: single-phase init ran once per process; exec runs on every load. The flag stays
process-global, so the library is still initialised once, and a second load does not fail. Where
the guard is a statement of exec with no early exit inside, exec holds a process-wide lock
(<mod>_once_lock) around it. Otherwise (a `return` inside, or the guard in a helper) two
interpreters with their own GIL loading the module at the same time could both pass the test:
the module claims a shared GIL only (Py_MOD_MULTIPLE_INTERPRETERS_SUPPORTED).""",
          todo="make the test thread-safe (PyMutex from 3.13, or a once primitive) and then claim "
               "Py_MOD_PER_INTERPRETER_GIL_SUPPORTED."),
    _code("hot-path-lookup", CodeKind.ITEM, "a slot that runs per element or per call now looks module state up.", """
What: a function such as tp_iternext, sq_item, nb_add, tp_richcompare, tp_hash or tp_call
reaches module state with PyType_GetModuleByDef(Py_TYPE(self), &def) on every call.

Why it matters: the lookup walks the type's MRO; CPython's _decimal became 31-45% slower from
such lookups (gh-114682). benchmarks/hot_path.py measures one fixture's iterator.

What to do: if it is hot, store the state pointer in the instance when it is created (its
lifetime is the instance's: the instance keeps its type, the type its module), or use
METH_METHOD with defining_class for methods."""),
    _code("last-module-lookup", CodeKind.ITEM,
          "PyState_FindModule() in a function that cannot reach module state finds the module the last exec "
          "made.", """
What: the function's signature is fixed (a callback a C library calls, a slot porter cannot
tie to a type) or it reaches the state but not the module object, so no state parameter or
type lookup reaches it. Its PyState_FindModule() (NULL for a multi-phase module) becomes a
lookup of the module the last exec made, which exec keeps in a process-global and the module's
m_free forgets: found only in the interpreter that made it, NULL elsewhere, as
PyState_FindModule returned when no module was loaded.

Why it matters: one module per process is what such a function can see, so the module does
not claim to support several interpreters (Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED); with two
instances in one interpreter it sees the last one made.

What to do: give the function a way to its own module: a data pointer the library passes back
(store the module or its state there), the object it receives, or a state parameter from its
callers; then remove the lookup and port again."""),
    _code("gc-slot-lookup", CodeKind.ITEM, "tp_traverse, tp_clear or tp_dealloc now looks module state up.", """
Why it matters: at interpreter shutdown these can run after the module's state was cleared;
the state must not be needed there for anything but assertions.

What to do: keep what these functions need in the instance itself."""),
]

_FINDINGS = [
    _code("state-find-module", CodeKind.FINDING,
          "PyState_FindModule() finds the module in the single-phase registry.", """
It returns NULL for a multi-phase module. porter replaces each use by the state or module of
the function's access (the module argument, the type, a threaded parameter, a thread-local
for callbacks); where none reaches the function, the module cannot be ported and the report
names the function."""),
    _code("state-add-module", CodeKind.FINDING,
          "PyState_AddModule()/PyState_RemoveModule() register a single-phase module.",
          "They go with the port: a multi-phase module is never registered there."),
    _code("capsule-export", CodeKind.FINDING, "the module exports a C API through a capsule.", """
Other extension modules may hold pointers into it (types, functions, globals). A type named
in the capsule stays static and is reported: its clients must be ported with it."""),
    _code("capsule-import", CodeKind.FINDING, "the module imports another module's C API through a capsule."),
    _code("process-global", CodeKind.FINDING,
          "a call changes process-wide state (signal handlers, locale, atexit...).",
          "A module in several interpreters makes it once per interpreter; check that this is wanted."),
    _code("process-constant", CodeKind.FINDING,
          "C data computed once from process-wide inputs stays process-global.", """
What: a global (or a function's static) written only while it still holds its initial value
(`if (!x) x = ...;`, or after `if (x) return x;`), from calls that only read process-wide data
(the clock, sysconf, the environment, the runtime's interpreter list) and locals alone: no
Python object, no other global, no project function, no C library's own initialisation (that
is a once-guard).

Why it matters: every interpreter computes the same value, so sharing it keeps behaviour and
needs no module state; it does not weaken Py_mod_multiple_interpreters. Two interpreters with
their own GIL may both compute it the first time, writing the same value.

What to do: nothing, unless the value can differ between interpreters (then make it module
state by hand)."""),
    _code("gilstate", CodeKind.FINDING, "PyGILState_* assumes one interpreter per thread.", """
Under a per-interpreter GIL it may attach a thread to the main interpreter; use the
interpreter the module lives in (PyThreadState_New with its PyInterpreterState)."""),
    _code("foreign-thread", CodeKind.FINDING,
          "Python is entered with PyGILState_Ensure() on a thread that never ran this interpreter.", """
On a thread the module starts (pthread_create, PyThread_start_new_thread, CreateThread), on a
C library's own thread (PortAudio's stream callback), or in code written for threads with no
Python thread state, PyGILState_Ensure() attaches the main
interpreter: a callback for a subinterpreter would run its objects under another GIL. The
module claims support for subinterpreters that share the GIL only, as CPython's _ctypes does.""",
          "keep the interpreter the callback belongs to (PyInterpreterState_Get() where it is "
          "registered) and enter it with PyThreadState_New(interp) + PyEval_RestoreThread() instead "
          "of PyGILState_Ensure(), as CPython's C-API docs show; make sure the interpreter cannot be "
          "finalised meanwhile (before 3.15's PEP 788 nothing in the C API guarantees it); then the "
          "module may claim Py_MOD_PER_INTERPRETER_GIL_SUPPORTED"),
    _code("exported-global", CodeKind.FINDING, "a global is declared extern in a header.",
          "Code outside the module's files may name it; porter moves it only when it sees every use."),
    _code("exported-type", CodeKind.FINDING, "a static type is declared extern in a header.", """
Other files (or modules) may use the type directly; porter exports its spec through that
header when the type is created in another file, and reports a type it cannot follow."""),
    _code("metaclass", CodeKind.FINDING, "a type's metatype is a custom metaclass.", """
A heap type with a custom metaclass needs PyType_FromMetaclass (3.12+); ports must build on
3.11, so the type stays static and is reported."""),
    _code("global-in-unread-branch", CodeKind.FINDING, "a global is used in an #if branch porter did not read.", """
porter reads one branch of a masked #if (the one CPython 3.12 on Linux compiles); a global
used in another branch stays global, since porter cannot rewrite what it did not read."""),
    _code("unparsed", CodeKind.FINDING, "tree-sitter could not parse this region; porter edits nothing in it."),
    _code("limited-api", CodeKind.FINDING, "an old Py_LIMITED_API hides the names a port needs.", """
Below 0x030C0000 Py_mod_multiple_interpreters is invisible and such builds keep refusing
subinterpreters; raise it."""),
]

_CHECKS = [
    _code("single-phase-init", CodeKind.FINDING, "a module uses single-phase init (`porter check`).",
          "Isolated subinterpreters refuse single-phase modules.", todo="run `porter port` on it."),
    _code("static-type", CodeKind.FINDING, "a static type (`porter check`): one object for every interpreter.",
          todo="make it a heap type created in exec (`porter port` does), or allow-list it with a reason."),
    _code("process-global", CodeKind.FINDING, "a global holding per-interpreter state (`porter check`).",
          todo="move it into module state (`porter port` does), or allow-list it in [tool.porter] with a reason."),
]

_KEPT = [
    _code("type-unread", CodeKind.KEPT, "a static type porter could not read."),
    _code("type-no-initializer", CodeKind.KEPT, "a static type without an initialiser porter could read."),
    _code("type-invisible-to-exec", CodeKind.KEPT,
          "a type defined in a header that the file where exec creates it does not include (a type another "
          ".c file defines is made from its spec, which porter declares in exec's file).",
          "Declare it in a header the init file includes, or give porter that header."),
    _code("type-metaclass", CodeKind.KEPT, "a type with a custom metaclass.",
          "PyType_FromMetaclass (3.12+) can make it; ports must also build on 3.11."),
    _code("type-offset-outside-instance", CodeKind.KEPT,
          "a type's offset field (tp_vectorcall_offset...) names a struct other than its instances'."),
    _code("type-field-not-a-slot", CodeKind.KEPT,
          "a type sets a field a heap type cannot take on every supported Python (tp_dict, tp_vectorcall...)."),
    _code("type-module-descriptor-read", CodeKind.KEPT,
          "the package's Python reads Type.__dict__['__module__'] of a type with a __module__ descriptor.",
          "--unsafe converts it and keeps the descriptor in the dict; the Python side must then special-case it."),
    _code("type-runtime-slot", CodeKind.KEPT, "init sets a slot of the type to a value no PyType_Slot table can hold."),
    _code("type-partly-read", CodeKind.KEPT, "an #if in the type's initialiser hides slots porter cannot map.",
          "--unsafe converts the branch porter read; check the other configurations by hand."),
    _code("used-at-file-scope", CodeKind.KEPT, "a global named outside any function (a static initialiser).",
          "Only another converted type's initialiser may name a moved global."),
    _code("in-macro-defined-function", CodeKind.KEPT, "a global named in a function that a project macro "
          "defines at file scope, through what the macro's use expands to.", """
`Dec_UnaryNumberMethod(mpd_qminus)` expands to `static PyObject *nm_mpd_qminus(PyObject *self)
{...}`, whose body uses `dec_alloc()`, another macro, which names the global. porter gives the
functions a macro defines one state declaration in the macro's body, but it records a name that
only the expansion spells (a macro the body uses, or a pasted name) at file scope, and does not
follow it into the function yet.""",
          todo="write those functions out and port again, or give the macro's body a way to the state "
               "by hand (`PyType_GetModuleByDef(Py_TYPE(self), &def)`)."),
    _code("macro-name-shadowed", CodeKind.KEPT, "a macro names the global and also expands where that name "
          "is a local or parameter.", todo="rename the local or parameter, or write the global's name out at "
          "the other sites, and port again."),
    _code("used-in-static-initializer", CodeKind.KEPT, "named in the initialiser of a `static` local (a table of "
          "type addresses in init).", todo="drop `static` from that local if nothing keeps its address past the "
          "call (then it is rebuilt each call and may read module state), and port again."),
    _code("used-in-generated-code", CodeKind.KEPT, "a global Argument Clinic output names.",
          "Generated code is regenerated from the clinic input; porter never edits it. In CPython's "
          "tree porter changes the input itself (`cls: defining_class`, `clinic_state()` in a class "
          "directive) and runs the tree's clinic where the type is named only from one file's input, "
          "by functions that reach the state the same way; this global is not such a case, or clinic "
          "could not run.",
          todo="change the clinic input (a `defining_class` parameter, or the class directive's type "
               "expression) and run Tools/clinic/clinic.py, then port again."),
    _code("used-in-unparsed-code", CodeKind.KEPT, "a global used in code tree-sitter could not parse."),
    _code("object-with-initializer", CodeKind.KEPT, "an object pointer with a static initialiser."),
    _code("static-object", CodeKind.KEPT, "a statically allocated Python object.",
          "It cannot be copied into module state; create it in exec instead (a heap type or PyObject_New)."),
    _code("used-in-unread-branch", CodeKind.KEPT,
          "a global used outside functions, or written, in an #if branch porter did not read.", """
What: porter reads one branch of an #if it cannot decide (a feature macro the build may or may
not define, another platform). Inside a function, a use in another branch is rewritten on its
tokens (a review item: porter has not compiled that configuration). Outside functions, or where
the tokens may assign it or declare a local of the same name, porter cannot tell what they
mean, so the global stays."""),
    _code("extern-elsewhere", CodeKind.KEPT, "a global declared extern outside the module's files."),
    _code("named-by-unported-file", CodeKind.KEPT,
          "a global a source porter was not given names through a header.",
          "Give porter every source of the extension."),
    _code("array-with-initializer", CodeKind.KEPT, "a mutable array with an initialiser.",
          "porter does not copy initial array contents into module state."),
    _code("declared-per-build", CodeKind.KEPT, "a global declared differently for different builds.",
          "`#ifdef A` and `#else` declare it with other types and a value, or as objects: porter writes a "
          "field per build only for C data that starts at zero."),
    _code("unreachable-function", CodeKind.KEPT, "a global used in a function that cannot reach module state.",
          "Its signature is fixed (a callback) or porter cannot tie it to the module; the item says which."),
    _code("interpreter-keyed", CodeKind.KEPT,
          "a value kept with the interpreter it belongs to, read only where that interpreter is checked.",
          "porter's own lookup of the module the last exec made is one: a function that cannot reach module "
          "state reads it only in the interpreter that set it."),
    _code("first-load-namespace", CodeKind.KEPT,
          "the names the module's first load made, kept for each later load in the process to take.",
          "porter's own exec-once keeps it, where exec fills static types that stay process-global: exec "
          "runs once per process, as the init function did."),
    _code("macro-outside-functions", CodeKind.KEPT, "a global reached through a macro that is used outside functions."),
    _code("pasted-with-kept-names", CodeKind.KEPT,
          "a global a macro builds with ## together with names that stay global."),
    _code("base-stays-static", CodeKind.KEPT, "a type whose module-local base stays a static type."),
    _code("base-of-static-type", CodeKind.KEPT, "the base of a module type that stays a static type."),
    _code("metatype-of-static-type", CodeKind.KEPT, "the metatype of a type that stays static.",
          "init sets it as that type's metatype (Py_SET_TYPE), which takes no reference: a heap metatype "
          "would be freed while the static type still points to it."),
    _code("public-declaration", CodeKind.KEPT, "declared in a header the package installs: public API.",
          "Other extensions or packages may use the global or static type directly; porter does not change "
          "what an installed header declares.",
          todo="keep it for the public API and add a per-interpreter copy for the module's own use, or "
               "version the API."),
    _code("public-macro", CodeKind.KEPT, "named by a macro in a header the package installs.",
          "The macro expands in other packages' code, which has no module state.",
          todo="keep the macro's meaning for other packages; give the module its own macro or function."),
    _code("type-declared-late", CodeKind.KEPT,
          "a global whose type is defined after code that needs module state, where porter cannot move it up.",
          todo="move the type's definition above the first function that uses module state."),
    _code("limited-api-too-old", CodeKind.KEPT,
          "the package's Py_LIMITED_API has no way to create a type with its module.",
          "PyType_FromModuleAndSpec and PyType_GetModule entered the limited API in 3.10.",
          todo="raise Py_LIMITED_API to 0x030A0000 or later (0x030C0000 for the subinterpreter slot)."),
    _code("limited-api-descriptor", CodeKind.KEPT,
          "a type with a __module__ descriptor in a limited-API build.",
          "Serving the descriptor to instances of a heap type needs the type's dict, which the limited API "
          "does not show.",
          todo="drop the `__module__` member or getset, or build this module without the limited API."),
]

_FAILURES = [
    _code("find-module-unreachable", CodeKind.FAILURE,
          "PyState_FindModule() is used where module state cannot be reached."),
    _code("find-module-needs-module", CodeKind.FAILURE,
          "PyState_FindModule() returns the module object where porter cannot reach it."),
    _code("structseq-not-ready", CodeKind.FAILURE,
          "a struct sequence type with no PyStructSequence_InitType2 call in init."),
    _code("members-missing", CodeKind.FAILURE, "a type's members table porter cannot find."),
    _code("members-unreadable", CodeKind.FAILURE, "a type's members table porter cannot read."),
    _code("no-state-header", CodeKind.FAILURE, "module state is needed in files that share no usable header."),
    _code("callbacks-across-files", CodeKind.FAILURE,
          "callbacks needing state and the calls that make them are in different files."),
    _code("state-struct-missing", CodeKind.FAILURE, "m_size names a state struct porter cannot find."),
    _code("macro-functions-differ", CodeKind.FAILURE,
          "functions one macro defines reach module state in different ways."),
    _code("macro-functions-unreadable", CodeKind.FAILURE, "the body of a function-defining macro cannot be read."),
    _code("dealloc-without-self", CodeKind.FAILURE, "a dealloc with no named self parameter."),
    _code("init-unreadable", CodeKind.FAILURE, "the init function's body cannot be read."),
    _code("no-module-create", CodeKind.FAILURE, "no PyModule_Create call porter can remove."),
    _code("unrecognised-return", CodeKind.FAILURE, "a return in the init function porter cannot classify."),
    _code("module-global-missing", CodeKind.FAILURE,
          "the global that holds the module has no declaration porter sees."),
    _code("module-global-shared", CodeKind.FAILURE,
          "the global that holds the module shares its declaration with others."),
    _code("module-var-reused", CodeKind.FAILURE,
          "init reuses its module variable before creating the module in a way porter cannot rewrite."),
    _code("returning-macro-shared", CodeKind.FAILURE,
          "a macro that returns from init is also used elsewhere."),
    _code("no-module-def", CodeKind.FAILURE, "no PyModuleDef for the init function."),
    _code("internal-error", CodeKind.FAILURE, "a porter bug; the module's other work is discarded.",
          "Please report it with `porter port --debug` output."),
]


_LEFT_TO_A_PERSON = [
    _code("returning-macro-in-header", CodeKind.ITEM, "a macro that returns from init lives in a header.", todo=(
        "port the other extensions (or packages) that include the header, or give them their own copy of "
        "the macro with `return NULL`.")),
    _code("gc-review-methods", CodeKind.ITEM, "a type porter gave GC support: its fields may be NULL after a clear.",
          todo="check that every method handles a NULL field (or raises) after tp_clear ran."),
    _code("module-descriptor-python", CodeKind.ITEM,
          "a converted type keeps a __module__ descriptor in its dict that Python code reads.",
          todo="special-case that type in the Python code that reads any object's `__module__`."),
    _code("type-inherited-annotations", CodeKind.ITEM,
          "a converted type inherits __annotations__ from a base's members or getset, and the limited API "
          "cannot keep that descriptor in its dict.",
          todo="define __annotations__ in the type's own getset (the base's getter and setter), or stop "
               "declaring the limited API."),
    _code("type-set-by-hand", CodeKind.ITEM,
          "a function makes objects by hand (Py_SET_TYPE and _Py_NewReference) with a type porter cannot name.",
          todo="after Py_SET_TYPE, Py_INCREF the type when it is a heap type "
               "(`if (tp->tp_flags & Py_TPFLAGS_HEAPTYPE)`), as PyObject_Init does."),
    _code("type-gc-missing", CodeKind.ITEM, "a converted type without GC support whose instances may own objects.",
          todo="add Py_TPFLAGS_HAVE_GC with a tp_traverse that visits Py_TYPE(self) and the owned fields, "
               "and a tp_clear."),
    _code("dealloc-not-editable", CodeKind.ITEM, "a converted type's dealloc porter cannot edit.",
          todo="make the dealloc call Py_DECREF(Py_TYPE(self)) after freeing the object."),
    _code("dealloc-frees-nothing", CodeKind.ITEM, "a converted type's dealloc frees no object porter can see.",
          todo="make the dealloc free through Py_TYPE(self)->tp_free and then Py_DECREF the type."),
    _code("state-gc-incomplete", CodeKind.ITEM,
          "a module's own m_traverse or m_clear that porter could not extend for the state's new objects.",
          todo="visit (traverse) and clear (clear) the new fields of the module state in that function."),
    _code("kept-global-reassigned", CodeKind.ITEM,
          "a global that stays process-global is assigned on every load inside an expression.",
          todo="assign it only while it is NULL, so that loading the module again does not leak the old object."),
    _code("macro-under-unknown-condition", CodeKind.ITEM,
          "a macro defined under an #if porter cannot evaluate calls helpers that now take the state.",
          todo="add `state` as the first argument of those calls in the macro's other definition."),
]

# What a person does about each code that can leave work: merged into the codes above.
_TODO = {
    "hot-path-lookup": "if it is hot, store the state pointer in the instance when it is created, or use "
                       "METH_METHOD with defining_class.",
    "gc-slot-lookup": "keep what the function needs in the instance itself.",
    "last-module-lookup": "give the function a way to its own module (a data pointer the library passes back, "
                          "the object it receives, or a state parameter), then port again.",
    "type-unread": "give porter the file that defines it, or convert it by hand with PyType_FromModuleAndSpec.",
    "type-no-initializer": "give porter the file that defines it, or convert it by hand.",
    "type-invisible-to-exec": "declare the type (or its spec) in a header the init file includes.",
    "type-metaclass": "create it with PyType_FromMetaclass (3.12+) in exec and keep it in the module state.",
    "type-field-not-a-slot": "set the field after the type is created instead of in its static initialiser.",
    "type-module-descriptor-read": "change the Python code that reads `Type.__dict__['__module__']`, then run "
                                   "porter with --unsafe.",
    "type-runtime-slot": "compute the value without run-time state, or set it after the type is created.",
    "type-partly-read": "check the slots of the other #if branches, then run porter with --unsafe.",
    "used-at-file-scope": "initialise it in exec instead of in a static initialiser.",
    "used-in-unparsed-code": "rewrite the region tree-sitter could not parse (usually a macro use), or move the "
                             "global by hand.",
    "object-with-initializer": "create the object in exec and keep it in the module state.",
    "static-object": "make it an object created in exec (PyObject_New, or an instance of a heap type).",
    "used-in-unread-branch": "move it into the module state by hand in every #if branch that uses it.",
    "extern-elsewhere": "give porter every file that declares it.",
    "named-by-unported-file": "give porter every source of the extension.",
    "array-with-initializer": "keep the initial contents in a const table and copy them into the state in exec.",
    "declared-per-build": "declare a field per build in the state struct, under the same #if, and give each its "
                          "value in exec.",
    "unreachable-function": "give that function a way to the module: pass `state` (or the module) to it from "
                            "its callers, or keep the state in the object it receives.",
    "interpreter-keyed": "give the functions that read it a way to their own module, then remove it.",
    "first-load-namespace": "convert the static types exec fills into heap types, then remove it and the "
                            "exec-once function.",
    "macro-outside-functions": "move the macro's use into a function, or expand it by hand.",
    "pasted-with-kept-names": "move the other names the macro builds too, or stop building them with ##.",
    "base-stays-static": "convert the base type first.",
    "metatype-of-static-type": "convert the types it is the metatype of first (PyType_FromMetaclass, 3.12+).",
}


def registry() -> dict[str, Code]:
    """Every code: the steps' docstrings first, then the rest, in the order above."""
    from porter.rewrite.port import PASSES

    out = {step.id: Code(step.id, CodeKind.STEP, inspect.getdoc(inspect.getmodule(step)) or "")
           for step in PASSES}
    for code in _ITEMS + _FINDINGS + _CHECKS + _KEPT + _FAILURES + _LEFT_TO_A_PERSON:
        if code.id in _TODO and not code.todo:
            code = Code(code.id, code.kind, f"{code.text}\n\nWhat to do: {_TODO[code.id]}", _TODO[code.id])
        out[code.id] = code
    return out
