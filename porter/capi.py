"""Facts about CPython's C API, kept as data: struct field orders, slot ids, version gates."""

from __future__ import annotations

import re

# The configuration porter reads `#if` blocks for. Ports must still compile on 3.11 to 3.13.
ANALYSIS_TARGET = {
    "PY_MAJOR_VERSION": 3,
    "PY_MINOR_VERSION": 12,
    "PY_MICRO_VERSION": 0,
    "PY_VERSION_HEX": 0x030C00F0,
    "PY_RELEASE_LEVEL": 0xF,
    "PY_RELEASE_SERIAL": 0,
}

# Macros <Python.h> defines, so `#ifndef Py_TYPE` compatibility blocks read as false.
PYTHON_H_MACROS = frozenset({
    "Py_TYPE", "Py_SIZE", "Py_REFCNT", "Py_SET_TYPE", "Py_SET_SIZE", "Py_SET_REFCNT",
    "Py_IS_TYPE", "PyVarObject_HEAD_INIT", "PyObject_HEAD_INIT", "PyObject_HEAD",
    "PyObject_VAR_HEAD", "Py_RETURN_NONE", "Py_RETURN_TRUE", "Py_RETURN_FALSE",
    "Py_RETURN_NOTIMPLEMENTED", "PyMODINIT_FUNC", "PyDoc_STRVAR", "PyDoc_STR", "Py_UNUSED",
    "Py_VISIT", "Py_CLEAR", "Py_SETREF", "Py_XSETREF", "Py_NewRef", "Py_XNewRef",
    "Py_TPFLAGS_DEFAULT", "Py_TPFLAGS_HAVE_GC", "Py_TPFLAGS_BASETYPE",
    "Py_TPFLAGS_HAVE_VERSION_TAG", "Py_TPFLAGS_IMMUTABLETYPE",
    "Py_TPFLAGS_DISALLOW_INSTANTIATION", "Py_TPFLAGS_METHOD_DESCRIPTOR", "Py_TPFLAGS_HAVE_VECTORCALL",
    "Py_TPFLAGS_MAPPING", "Py_TPFLAGS_SEQUENCE", "Py_TPFLAGS_MANAGED_DICT", "Py_TPFLAGS_MANAGED_WEAKREF",
    "Py_mod_exec", "Py_mod_create", "Py_mod_multiple_interpreters", "METH_FASTCALL",
    "METH_METHOD", "PY_SSIZE_T_MAX", "PY_SSIZE_T_MIN", "Py_hash_t", "PyModuleDef_HEAD_INIT",
    "Py_BEGIN_ALLOW_THREADS", "Py_END_ALLOW_THREADS", "Py_ssize_t", "PY_VERSION_HEX",
    "Py_MIN", "Py_MAX", "Py_ABS", "Py_ARRAY_LENGTH", "Py_STRINGIFY", "Py_UNREACHABLE",
    "PyStructSequence_UnnamedField", "Py_T_OBJECT_EX", "Py_READONLY", "T_OBJECT",
})

# PyTypeObject, in declaration order (3.11 to 3.13 agree up to tp_vectorcall).
# `ob_base` is the PyVarObject_HEAD_INIT position.
TYPE_FIELDS = (
    "ob_base", "tp_name", "tp_basicsize", "tp_itemsize", "tp_dealloc", "tp_vectorcall_offset",
    "tp_getattr", "tp_setattr", "tp_as_async", "tp_repr", "tp_as_number", "tp_as_sequence",
    "tp_as_mapping", "tp_hash", "tp_call", "tp_str", "tp_getattro", "tp_setattro",
    "tp_as_buffer", "tp_flags", "tp_doc", "tp_traverse", "tp_clear", "tp_richcompare",
    "tp_weaklistoffset", "tp_iter", "tp_iternext", "tp_methods", "tp_members", "tp_getset",
    "tp_base", "tp_dict", "tp_descr_get", "tp_descr_set", "tp_dictoffset", "tp_init",
    "tp_alloc", "tp_new", "tp_free", "tp_is_gc", "tp_bases", "tp_mro", "tp_cache",
    "tp_subclasses", "tp_weaklist", "tp_del", "tp_version_tag", "tp_finalize", "tp_vectorcall",
)
# Old names for the same positions, seen in designated and commented initialisers.
TYPE_FIELD_ALIASES = {"tp_print": "tp_vectorcall_offset", "tp_compare": "tp_as_async",
                      "tp_reserved": "tp_as_async"}

# Sub-structs and their fields, in declaration order; each becomes Py_<prefix>_* slots.
SUBSTRUCT_FIELDS = {
    "PyAsyncMethods": ("am_await", "am_aiter", "am_anext", "am_send"),
    "PyNumberMethods": (
        "nb_add", "nb_subtract", "nb_multiply", "nb_remainder", "nb_divmod", "nb_power",
        "nb_negative", "nb_positive", "nb_absolute", "nb_bool", "nb_invert", "nb_lshift",
        "nb_rshift", "nb_and", "nb_xor", "nb_or", "nb_int", "nb_reserved", "nb_float",
        "nb_inplace_add", "nb_inplace_subtract", "nb_inplace_multiply", "nb_inplace_remainder",
        "nb_inplace_power", "nb_inplace_lshift", "nb_inplace_rshift", "nb_inplace_and",
        "nb_inplace_xor", "nb_inplace_or", "nb_floor_divide", "nb_true_divide",
        "nb_inplace_floor_divide", "nb_inplace_true_divide", "nb_index", "nb_matrix_multiply",
        "nb_inplace_matrix_multiply",
    ),
    "PySequenceMethods": (
        "sq_length", "sq_concat", "sq_repeat", "sq_item", "was_sq_slice", "sq_ass_item",
        "was_sq_ass_slice", "sq_contains", "sq_inplace_concat", "sq_inplace_repeat",
    ),
    "PyMappingMethods": ("mp_length", "mp_subscript", "mp_ass_subscript"),
    "PyBufferProcs": ("bf_getbuffer", "bf_releasebuffer"),
}
SUBSTRUCT_OF_FIELD = {
    "tp_as_async": "PyAsyncMethods",
    "tp_as_number": "PyNumberMethods",
    "tp_as_sequence": "PySequenceMethods",
    "tp_as_mapping": "PyMappingMethods",
    "tp_as_buffer": "PyBufferProcs",
}
SUBSTRUCT_ALIASES = {"nb_nonzero": "nb_bool", "nb_long": "nb_reserved", "nb_divide": None,
                     "nb_inplace_divide": None, "nb_coerce": None, "nb_oct": None,
                     "nb_hex": None, "am_send": "am_send"}

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
# Slots the garbage collector and deallocation run: module state may be gone by then.
GC_SLOTS = frozenset({"tp_traverse", "tp_clear", "tp_dealloc", "tp_finalize"})

# PyModuleDef fields after m_base, in declaration order.
MODULEDEF_FIELDS = ("m_base", "m_name", "m_doc", "m_size", "m_methods", "m_slots",
                    "m_traverse", "m_clear", "m_free")

# Types whose static definitions are tables that need no port (data, not state).
DEFINITION_TABLE_TYPES = {
    "PyMethodDef": "method-table",
    "PyMemberDef": "member-table",
    "PyGetSetDef": "getset-table",
    "PyType_Slot": "type-slots",
    "PyType_Spec": "type-spec",
    "PyModuleDef": "module-def",
    "PyModuleDef_Slot": "module-slots",
    "PyStructSequence_Desc": "structseq-desc",
    "PyStructSequence_Field": "structseq-fields",
    "PyNumberMethods": "type-substruct",
    "PySequenceMethods": "type-substruct",
    "PyMappingMethods": "type-substruct",
    "PyAsyncMethods": "type-substruct",
    "PyBufferProcs": "type-substruct",
    # Argument Clinic's keyword parsers: CPython manages their caches itself.
    "_PyArg_Parser": "const-data",
}

# Calls that create a single-phase module from its definition.
MODULE_CREATE_CALLS = ("PyModule_Create", "PyModule_Create2", "PyModule_FromDefAndSpec",
                       "PyModule_FromDefAndSpec2")
# Calls that make a static struct sequence type ready.
STRUCTSEQ_INIT_CALLS = ("PyStructSequence_InitType", "PyStructSequence_InitType2")
# PyTypeObject fields that name a definition table.
TYPE_TABLE_SLOTS = ("tp_methods", "tp_members", "tp_getset")
# Macros that assign to their first argument.
WRITING_MACROS = frozenset({"Py_CLEAR", "Py_SETREF", "Py_XSETREF"})
# Macros that release a reference (what a dealloc does to the fields it owns).
# The structs every object starts with: a pointer to one can point to any object.
OBJECT_HEADER_STRUCTS = ("PyObject", "PyVarObject", "_object")

RELEASE_MACROS = ("Py_DECREF", "Py_XDECREF", "Py_CLEAR")
# Object types a module keeps in globals besides PyObject itself.
OBJECT_TYPES = frozenset({"PyObject", "PyTypeObject", "PyLongObject", "PyUnicodeObject",
                          "PyTupleObject", "PyDictObject", "PyListObject", "PyBytesObject",
                          "PyFloatObject", "PySetObject", "PyCodeObject", "PyFrameObject"})
# Calls that only read the buffers they are given.
READING_CALLS = frozenset({
    "Py_BuildValue", "PyUnicode_FromString", "PyUnicode_FromStringAndSize", "PyBytes_FromString",
    "PyBytes_FromStringAndSize", "PyErr_SetString", "PyErr_Format", "PyUnicode_FromFormat",
    "strlen", "strcmp", "strncmp", "strchr", "strrchr", "strstr", "memcmp", "printf", "fprintf",
    "puts", "PyArg_ParseTuple", "PyArg_ParseTupleAndKeywords", "PyArg_UnpackTuple",
    "PyLong_FromString", "PyObject_GetAttrString", "PyDict_GetItemString", "PyModule_AddStringConstant",
})
# Macros that only measure what they are given (`sizeof` inside): an array named there is
# neither read nor written. A project's own such macros are found from their bodies.
MEASURING_MACROS = frozenset({"Py_ARRAY_LENGTH", "Py_MEMBER_SIZE"})
# Functions that free an object's own memory directly (rather than through tp_free).
INSTANCE_FREE_FUNCTIONS = ("PyObject_Del", "PyObject_DEL", "PyObject_Free", "PyObject_FREE", "PyObject_GC_Del")
# Allocations porter turns into PyType_GenericAlloc(type, 0).
INSTANCE_ALLOCATORS = ("PyObject_New", "PyObject_NEW")
# Calls in a dealloc that release nothing of the instance's fields.
NOT_RELEASING_CALLS = frozenset(INSTANCE_FREE_FUNCTIONS) | frozenset(RELEASE_MACROS) | frozenset({
    "PyObject_GC_UnTrack", "Py_TYPE", "PyObject_ClearWeakRefs", "Py_TRASHCAN_BEGIN", "Py_TRASHCAN_END"})

# Heap types: slots they get right by default (writing them out only gets in the way).
HEAP_TYPE_DEFAULTS = {
    "tp_getattro": frozenset({"PyObject_GenericGetAttr"}),
    "tp_alloc": frozenset({"PyType_GenericAlloc"}),
    "tp_free": frozenset({"PyObject_Del", "PyObject_Free", "PyObject_GC_Del", "PyObject_DEL", "PyObject_FREE"}),
}
# PyTypeObject fields that are PyType_Spec fields (or sub-struct pointers) rather than slots.
SPEC_FIELDS = ("ob_base", "tp_name", "tp_basicsize", "tp_itemsize", "tp_flags", "tp_base",
               "tp_as_async", "tp_as_number", "tp_as_sequence", "tp_as_mapping", "tp_as_buffer")
# Offsets a heap type takes as special members instead of slots.
OFFSET_MEMBERS = {"tp_dictoffset": "__dictoffset__", "tp_weaklistoffset": "__weaklistoffset__",
                  "tp_vectorcall_offset": "__vectorcalloffset__"}
# Fields a static type must leave empty for a heap type to be equivalent.
MUST_BE_EMPTY = ("tp_dict", "tp_bases", "tp_mro", "tp_cache", "tp_subclasses", "tp_weaklist",
                 "tp_version_tag")
# Fields with no Py_tp_* slot on the Pythons porter targets (Py_tp_vectorcall exists from 3.14).
NOT_A_SLOT = ("tp_vectorcall",)
# Type slots whose function is called with the type itself first (calling the class), not an
# instance: `T(...)` through tp_vectorcall.
CALLED_WITH_THE_TYPE = frozenset({"tp_vectorcall"})
# `T.tp_new = PyBaseObject_Type.tp_new` before PyType_Ready: what a heap type inherits anyway.
INHERITED_ASSIGNMENTS = frozenset({("tp_new", "PyBaseObject_Type.tp_new")})
# Fields of a static PyTypeObject that are not functions (no role for what they name).
NON_FUNCTION_TYPE_FIELDS = frozenset({
    "tp_name", "tp_doc", "tp_flags", "tp_basicsize", "tp_itemsize", "tp_methods", "tp_members",
    "tp_getset", "tp_base", "tp_dictoffset", "tp_weaklistoffset", "tp_vectorcall_offset",
    "tp_as_number", "tp_as_sequence", "tp_as_mapping", "tp_as_async", "tp_as_buffer", "tp_dict",
    "tp_bases"})

# Heap type creators -> the position of their spec argument.
SPEC_CREATORS = {"PyType_FromSpec": 0, "PyType_FromSpecWithBases": 0,
                 "PyType_FromModuleAndSpec": 1, "PyType_FromMetaclass": 2}

# Calls that create the exception objects modules keep in globals.
# Calls that return a borrowed reference: a global assigned one does not own it, and module state
# that keeps it (and releases it in m_clear) must take its own.
BORROWED_REFERENCE_CALLS = frozenset({
    "PyModule_GetDict", "PyDict_GetItem", "PyDict_GetItemString", "PyDict_GetItemWithError",
    "PyTuple_GetItem", "PyTuple_GET_ITEM", "PyList_GetItem", "PyList_GET_ITEM", "PySys_GetObject",
    "PyEval_GetBuiltins", "PyEval_GetGlobals", "PyImport_GetModuleDict", "PyWeakref_GetObject",
    "PyWeakref_GET_OBJECT", "PySequence_Fast_GET_ITEM", "PyStructSequence_GetItem",
    "PyStructSequence_GET_ITEM", "PyThreadState_GetDict", "PyExceptionInstance_Class",
})

# Calls that steal a reference, and the argument it is taken from (0-based).
REFERENCE_STEALING_CALLS = {
    "PyModule_AddObject": 2, "PyTuple_SetItem": 2, "PyTuple_SET_ITEM": 2, "PyList_SetItem": 2,
    "PyList_SET_ITEM": 2,
}

# Calls that add a PyMethodDef table's functions to a module, and the table's argument.
MODULE_FUNCTION_ADDERS = {"PyModule_AddFunctions": 1}
# Calls that make a function object from one PyMethodDef, and the argument that is its `self`.
FUNCTION_OBJECT_MAKERS = {"PyCFunction_New": 1, "PyCFunction_NewEx": 1, "PyCMethod_New": 1}

EXCEPTION_FACTORIES = frozenset({"PyErr_NewException", "PyErr_NewExceptionWithDoc"})
# Calls whose results are cached objects: interned names, imported attributes, constants.
CACHE_FACTORIES = frozenset({
    "PyUnicode_InternFromString", "PyUnicode_FromString", "PyUnicode_FromStringAndSize",
    "PyBytes_FromString", "PyLong_FromLong", "PyLong_FromSsize_t", "PyFloat_FromDouble",
    "PyTuple_New", "PyTuple_Pack", "Py_BuildValue", "PyDict_New", "PyList_New",
    "PyObject_GetAttrString", "PyObject_GetAttr", "PyImport_ImportModule",
    "PyImport_ImportModuleLevel", "PyImport_Import", "PyObject_CallObject",
    "PyObject_CallFunction", "PyObject_CallNoArgs", "PyUnicode_InternInPlace",
    "PyUnicode_DecodeASCII", "PyCapsule_Import", "_PyUnicode_FromId", "PyFrozenSet_New",
    "PySet_New", "PyObject_Call", "PyObject_CallMethod", "PyMemoryView_FromMemory",
    "PyStructSequence_NewType",
})

# Process-wide resources: a module that touches them cannot claim per-interpreter isolation
# without a person deciding how the resource is shared.
PROCESS_GLOBAL_CALLS = {
    "signal": "installs a process-wide signal handler",
    "sigaction": "installs a process-wide signal handler",
    "PyOS_setsig": "installs a process-wide signal handler",
    "atexit": "registers a process-wide exit handler",
    "Py_AtExit": "registers a process-wide exit handler",
    "pthread_once": "one-time process-wide initialisation",
    "setlocale": "changes the process-wide locale",
    "PyMem_SetAllocator": "replaces a process-wide allocator",
    "PyOS_InputHook": "sets a process-wide input hook",
}
BLOCKER_CALLS = {
    "PyState_FindModule": "finds the module through the interpreter's single-phase registry",
    "PyState_AddModule": "registers the module in the single-phase registry",
    "PyState_RemoveModule": "unregisters the module from the single-phase registry",
    "PyCapsule_New": "exports a C API through a capsule: other modules may hold its pointers",
    "PyCapsule_Import": "imports another module's C API through a capsule",
    "PyGILState_Ensure": ("PyGILState_* assumes one interpreter per thread: right with a GIL per interpreter "
                          "only on a thread that last ran this interpreter (a callback made while the module's "
                          "own call waits); check that no C library calls it from a thread of its own"),
    "PyGILState_Release": "PyGILState_* assumes one interpreter per thread",
    "PyGILState_GetThisThreadState": "PyGILState_* assumes one interpreter per thread",
    "PyGILState_Check": "PyGILState_* assumes one interpreter per thread",
}

# When C-API names appeared; newer ones need a PY_VERSION_HEX guard in generated code
# (version_guard below), and a limited-API build of an older version cannot name them.
ADDED_IN = {
    "Py_mod_multiple_interpreters": (3, 12),
    "Py_MOD_PER_INTERPRETER_GIL_SUPPORTED": (3, 12),
    "Py_mod_gil": (3, 13),
    "Py_MOD_GIL_USED": (3, 13),
    "PyModule_Add": (3, 13),
    "PyModule_AddObjectRef": (3, 10),
    "PyModule_AddType": (3, 10),
    "PyType_GetModuleByDef": (3, 11),
    "PyType_FromModuleAndSpec": (3, 10),
    "Py_TPFLAGS_IMMUTABLETYPE": (3, 10),
    "Py_TPFLAGS_DISALLOW_INSTANTIATION": (3, 10),
    "Py_NewRef": (3, 10),
    "PyStructSequence_NewType": (3, 3),
}

# Functions with external linkage that a tool or runtime outside the project calls by name,
# with a signature it fixes: libFuzzer's entry points (CPython's _xxtestfuzz defines them), main.
EXTERNAL_ENTRY_POINTS = frozenset({"LLVMFuzzerTestOneInput", "LLVMFuzzerInitialize", "LLVMFuzzerCustomMutator",
                                   "LLVMFuzzerCustomCrossOver", "main"})

# C library functions that call the function pointer they are given before they return, on
# the calling thread: a callback passed to them can find module state in a thread-local set
# around the call.
SYNCHRONOUS_CALLBACK_CALLERS = frozenset({"qsort", "bsearch", "lfind", "lsearch", "tsearch",
                                          "tfind", "tdelete", "twalk", "scandir",
                                          # "O&" converters run while the arguments are parsed
                                          # (or the value built).
                                          "PyArg_ParseTuple", "PyArg_ParseTupleAndKeywords",
                                          "PyArg_Parse", "PyArg_VaParse",
                                          "PyArg_VaParseTupleAndKeywords", "Py_BuildValue"})


# Functions that run the function pointer they are given on a thread of its own (or later, from
# another thread): no thread-local the caller sets reaches it, whatever else the caller does.
THREAD_STARTERS = frozenset({"PyThread_start_new_thread", "PyThread_start_joinable_thread",
                             "pthread_create", "thrd_create", "_beginthread", "_beginthreadex",
                             "CreateThread", "Py_AddPendingCall"})


# Functions that keep the function pointers they are handed (copied out of a struct, or the
# pointer itself) and call them after they return: a local struct passed to one of them does
# not mean its callbacks run during the call.
KEEP_CALLBACKS = frozenset({"PyMem_SetAllocator", "PyObject_SetArenaAllocator", "sigaction", "signal",
                            "PyOS_setsig", "atexit", "Py_AtExit", "PyCapsule_New", "PyDict_AddWatcher",
                            "PyType_AddWatcher", "PyCode_AddWatcher", "PyFunction_AddWatcher",
                            "PyContext_AddWatcher", "PyRefTracer_SetTracer"}) | THREAD_STARTERS


# C-API and C library functions a module's allocator tables point at (`{PyMem_Malloc, PyMem_Free}`).
ALLOCATOR_FUNCTIONS = frozenset({
    "PyMem_Malloc", "PyMem_Calloc", "PyMem_Realloc", "PyMem_Free",
    "PyMem_RawMalloc", "PyMem_RawCalloc", "PyMem_RawRealloc", "PyMem_RawFree",
    "PyObject_Malloc", "PyObject_Calloc", "PyObject_Realloc", "PyObject_Free",
    "malloc", "calloc", "realloc", "free",
})


# How C spells a null object pointer in an initialiser.
NULL_POINTER_SPELLINGS = frozenset({"NULL", "0", "((void*)0)", "(PyObject *)NULL", "(PyObject*)NULL"})

_OBJECT_HEAD_INIT = re.compile(r"\bPy(Var)?Object_HEAD_INIT\b")


def statically_allocated_object(initializer_text: str | None) -> bool:
    """An initialiser that makes a Python object in static storage (`{PyObject_HEAD_INIT(...)}`)."""
    # A substring test first: the search starts with `\b`, which the regular expression engine
    # tries at every offset, and data tables give initialisers of hundreds of kilobytes.
    text = initializer_text or ""
    return "Object_HEAD_INIT" in text and bool(_OBJECT_HEAD_INIT.search(text))


# When the names porter emits entered the limited API (Py_LIMITED_API): a package that declares
# an older one cannot use them, and porter uses what that version has or leaves the piece out.
LIMITED_API_SINCE = {
    "PyModule_GetState": (3, 2),
    "PyModuleDef_Init": (3, 5),
    "Py_mod_exec": (3, 5),
    "PyType_GetSlot": (3, 4),
    "PyType_FromModuleAndSpec": (3, 10),
    "PyType_GetModule": (3, 10),
    "PyModule_AddObjectRef": (3, 10),
    "Py_NewRef": (3, 10),
    "Py_TPFLAGS_IMMUTABLETYPE": (3, 10),
    "Py_TPFLAGS_DISALLOW_INSTANTIATION": (3, 10),
    "Py_mod_multiple_interpreters": (3, 12),
    "PyType_GetModuleByDef": (3, 13),
    "Py_mod_gil": (3, 13),
}


# C-API types a field may name in code a limited-API unit reads (a state block in a header such
# a unit includes): by value or behind a pointer. Others (PyMemAllocatorEx, PyCodeObject) are
# declared only outside the limited API.
LIMITED_API_TYPES = frozenset({
    "PyObject", "PyTypeObject", "PyVarObject", "PyLongObject", "PyFrameObject", "PyThreadState",
    "PyInterpreterState", "PyMethodDef", "PyMemberDef", "PyGetSetDef", "PyModuleDef", "PyModuleDef_Base",
    "PyModuleDef_Slot", "PyType_Spec", "PyType_Slot", "PyStructSequence_Desc", "PyStructSequence_Field",
    "PyThread_type_lock", "PyGILState_STATE", "PyOS_sighandler_t", "PyCFunction", "PyCFunctionWithKeywords",
    "Py_ssize_t", "Py_hash_t", "Py_UCS4", "Py_tss_t", "Py_buffer",
})


# Numbers the stable ABI fixes: an abi3 build whose Py_LIMITED_API predates a slot's name may
# still hand it to the CPython that reads it (see templates/c/runtime_slots.c.jinja).
STABLE_ABI_NUMBERS = {
    "Py_mod_multiple_interpreters": 3,
    "Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED": 0,
    "Py_MOD_MULTIPLE_INTERPRETERS_SUPPORTED": 1,
    "Py_MOD_PER_INTERPRETER_GIL_SUPPORTED": 2,
}


def version_hex(version: tuple[int, int]) -> str:
    return f"0x{version[0]:02X}{version[1]:02X}0000"


def version_guard(name: str, target: tuple[int, int] | None = None) -> str | None:
    """The `#if` condition under which generated code may name `name`: the Python building it
    has it, and a limited-API build asks for at least the version that put it there. None when
    the port targets one version (a CPython tree's own): its code names what that version has
    plainly, and what it lacks not at all (`targets`)."""
    if target is not None:
        return None
    added, limited = version_hex(ADDED_IN[name]), version_hex(LIMITED_API_SINCE.get(name, ADDED_IN[name]))
    return f"PY_VERSION_HEX >= {added} && (!defined(Py_LIMITED_API) || Py_LIMITED_API >= {limited})"


def targets(name: str, target: tuple[int, int] | None) -> bool:
    """Whether a port for `target` (None: any CPython porter supports) may name `name`; with no
    single target, a version guard keeps it from older ones."""
    return target is None or target >= ADDED_IN[name]


def limited_api_value(text: str) -> int | None:
    """The version a `Py_LIMITED_API` value asks for (`3` is the stable ABI of 3.2); a comment
    after it (`0x030c0000 // 3.12`) is no part of it."""
    text = re.sub(r"/\*.*?\*/|//.*", " ", text, flags=re.DOTALL)
    try:
        value = int(text.strip().rstrip("uUlL"), 0)
    except ValueError:
        return None
    return 0x03020000 if 0 < value < 0x03000000 else value


def limited_api_guard(name: str, target: tuple[int, int] | None = None) -> str:
    """The `#if` condition under which code a limited-API unit also reads may name `name`: no
    Py_LIMITED_API, or one that has it. A tree's own version that lacks it in its limited API
    (`target`) has no Py_LIMITED_API value that does."""
    since = LIMITED_API_SINCE.get(name, ADDED_IN[name])
    if target is not None and target < since:
        return "!defined(Py_LIMITED_API)"
    return f"!defined(Py_LIMITED_API) || Py_LIMITED_API >= {version_hex(since)}"


def in_limited_api(name: str, limited: int | None) -> bool:
    """Whether generated code may name `name` in a build with this Py_LIMITED_API (None: none)."""
    if limited is None:
        return True
    since = LIMITED_API_SINCE.get(name)
    return since is None or limited >= int(version_hex(since), 16)
