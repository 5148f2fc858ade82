"""Facts about C extension sources, as frozen dataclasses with byte spans."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True, order=True)
class Span:
    start: int
    end: int

    def contains(self, other: "Span") -> bool:
        return self.start <= other.start and other.end <= self.end

    def overlaps(self, other: "Span") -> bool:
        return self.start < other.end and other.start < self.end


@dataclass(frozen=True, order=True)
class Location:
    """A span in one file."""

    file: str
    span: Span


class InitStyle(StrEnum):
    SINGLE_PHASE = "single-phase"
    MULTI_PHASE = "multi-phase"
    UNKNOWN = "unknown"


class GlobalKind(StrEnum):
    """How a global is used, which decides what a port does with it."""

    STATIC_TYPE = "static-type"  # a PyTypeObject definition
    EXCEPTION = "exception"  # an exception object made in init
    CACHED_OBJECT = "cached-object"  # an object (interned string, import) filled in init
    LAZY_CACHE = "lazy-cache"  # an object filled on first use, outside init
    OBJECT = "object"  # any other object pointer
    TYPE_POINTER = "type-pointer"  # a PyTypeObject * filled at run time
    IDENTIFIER = "identifier"  # _Py_IDENTIFIER: interpreter-aware already
    MUTABLE_DATA = "mutable-data"  # C data written after initialisation
    INIT_DATA = "init-data"  # C data written only while the module initialises
    READONLY_DATA = "readonly-data"  # non-const C data that is never written
    CONST_DATA = "const-data"  # const-qualified data
    STRING = "string"  # a string literal or docstring
    KWLIST = "kwlist"  # a keyword-name list for PyArg_ParseTupleAndKeywords
    METHOD_TABLE = "method-table"
    MEMBER_TABLE = "member-table"
    GETSET_TABLE = "getset-table"
    TYPE_SLOTS = "type-slots"
    TYPE_SPEC = "type-spec"
    MODULE_DEF = "module-def"
    MODULE_SLOTS = "module-slots"
    STRUCTSEQ_DESC = "structseq-desc"
    STRUCTSEQ_FIELDS = "structseq-fields"
    TYPE_SUBSTRUCT = "type-substruct"  # PyNumberMethods and friends
    CAPSULE_API = "capsule-api"  # a pointer table exported through a capsule
    FUNCTION_POINTER = "function-pointer"  # a pointer to a C function, set once

    @property
    def needs_port(self) -> bool:
        return self in _PER_MODULE

    @property
    def is_definition(self) -> bool:
        return self in _DEFINITIONS

    @property
    def is_object_kind(self) -> bool:
        """Its value is a reference the module state owns: visited and cleared."""
        return self in _OBJECTS


_PER_MODULE = frozenset({
    GlobalKind.STATIC_TYPE, GlobalKind.EXCEPTION, GlobalKind.CACHED_OBJECT,
    GlobalKind.LAZY_CACHE, GlobalKind.OBJECT, GlobalKind.TYPE_POINTER,
    GlobalKind.MUTABLE_DATA, GlobalKind.INIT_DATA,
})
_OBJECTS = frozenset({
    GlobalKind.STATIC_TYPE, GlobalKind.EXCEPTION, GlobalKind.CACHED_OBJECT,
    GlobalKind.LAZY_CACHE, GlobalKind.OBJECT, GlobalKind.TYPE_POINTER,
})
_DEFINITIONS = frozenset({
    GlobalKind.METHOD_TABLE, GlobalKind.MEMBER_TABLE, GlobalKind.GETSET_TABLE,
    GlobalKind.TYPE_SLOTS, GlobalKind.TYPE_SPEC, GlobalKind.MODULE_DEF, GlobalKind.MODULE_SLOTS,
    GlobalKind.STRUCTSEQ_DESC, GlobalKind.STRUCTSEQ_FIELDS, GlobalKind.TYPE_SUBSTRUCT,
    GlobalKind.KWLIST, GlobalKind.STRING, GlobalKind.CONST_DATA,
})


@dataclass(frozen=True)
class Use:
    """One place a global is named."""

    file: str
    span: Span  # the identifier
    function: str | None  # enclosing function, None at file scope
    access: str  # read, write, address, macro (in a #define body), macro-arg (in a blanked macro use)
    macro: str | None = None  # the macro whose body names it, for access == "macro"
    shape: str = "plain"  # plain, address-of (&x), member (x.field)
    shape_span: Span | None = None  # the expression `&x` or `x.` that a rewrite replaces
    unparsed: bool = False  # inside an ERROR span: never edited
    in_assert: bool = False  # inside assert(...): compiled only without NDEBUG
    # An argument of a call (through &, casts and parens): the callee as written, and the call.
    call: str | None = None
    call_span: Span | None = None


@dataclass(frozen=True)
class Global:
    name: str
    function: str | None  # the function a function-local static lives in
    kind: GlobalKind
    file: str
    span: Span  # the declarator
    declaration: Span  # the whole declaration statement
    type_text: str  # the declared type, with the declarator's pointer/array parts
    c_type: str  # the base type name (PyObject, int, PyTypeObject, ...)
    is_static: bool
    is_const: bool
    initializer: Span | None
    declarator_count: int  # how many variables the declaration declares
    initializer_text: str = ""
    # When it is declared only under a preprocessor condition porter cannot evaluate
    # (`#ifdef MEMORY_DEBUG`), that condition as a C expression.
    condition: str | None = None
    uses: tuple[Use, ...] = ()
    extern_declarations: tuple[Location, ...] = ()
    reason: str = ""  # why it was given this kind

    @property
    def key(self) -> tuple[str | None, str]:
        return (self.function, self.name)


@dataclass(frozen=True)
class Param:
    name: str | None
    type_text: str
    span: Span
    # `PyObject *Py_UNUSED(self)`: the name inside, and the `Py_UNUSED(self)` to replace when
    # the parameter becomes used.
    unused_name: str | None = None
    unused_span: Span | None = None


@dataclass(frozen=True)
class Call:
    callee: str
    span: Span  # the whole call expression
    args: tuple[Span, ...]


@dataclass(frozen=True)
class Function:
    name: str
    file: str
    span: Span  # the whole definition
    header: Span  # from the first specifier to the end of the declarator
    body: Span  # the compound statement
    return_type: str
    params: tuple[Param, ...]
    is_static: bool
    roles: tuple[str, ...]  # see analyze.functions.ROLE_DOCS
    calls: tuple[Call, ...]
    address_taken: tuple[Location, ...]  # uses of its name other than calls and known tables
    prototypes: tuple[Location, ...] = ()  # forward declarations
    types: tuple[str, ...] = ()  # static types whose slots or tables name it
    param_list: Span | None = None  # the parenthesised parameter list
    prototype_param_lists: tuple[Location, ...] = ()
    flags: tuple[str, ...] = ()  # METH_ flags when it is a method
    frees: tuple[Span, ...] = ()  # statements that free the object: tp_free(...), PyObject_Del(...)
    # Where its address goes to a function that calls it before returning (qsort(), a
    # PyArg_Parse converter, or any function handed a local struct holding it): (the calling
    # function, the statement making that call, the function called, where the call is over:
    # see analyze.functions._call_site).
    sync_callback_sites: tuple[tuple[str, Location, str, tuple[tuple[str, int, int], ...]], ...] = ()
    untracks_first: bool = False  # its first statement is PyObject_GC_UnTrack(...)
    # Calls to it in #if branches porter did not read, found lexically: (the function around
    # the call, or None at file scope; the span from its name to the `(` after it).
    unread_calls: tuple[tuple[str | None, "Location"], ...] = ()
    # Py_DECREF/Py_XDECREF/Py_CLEAR of a field of its first parameter (what a dealloc owns).
    releases: tuple["FieldRelease", ...] = ()
    defined_by: str | None = None  # the project macro whose use defines it (BINOP(name, ...))


@dataclass(frozen=True)
class Initializer:
    """A field of a struct initialiser (PyTypeObject, PyModuleDef, sub-structs)."""

    name: str  # the field it initialises
    span: Span  # the value expression
    text: str
    designated: bool
    conditional: bool = False  # inside a masked #if branch


@dataclass(frozen=True)
class ModuleDef:
    name: str  # the C variable
    file: str
    span: Span  # the whole declaration
    initializer: Span | None
    fields: tuple[Initializer, ...]
    function: str | None  # when declared inside a function
    is_static: bool
    macro: str | None = None  # declared through a project macro (MOD_DEF)

    def field(self, name: str) -> Initializer | None:
        return next((f for f in self.fields if f.name == name), None)


@dataclass(frozen=True)
class StaticType:
    name: str  # the C variable
    file: str
    span: Span  # the whole declaration
    initializer: Span | None
    slots: tuple[Initializer, ...]
    positional: bool
    forward_declarations: tuple[Location, ...]
    substructs: tuple[tuple[str, str], ...]  # (tp_as_number, variable name)
    substruct_slots: tuple[Initializer, ...]  # nb_add=..., resolved through the variables
    tables: tuple[tuple[str, str], ...]  # (tp_methods, variable name)
    conditional: bool  # a masked #if inside its initialiser
    structseq: bool = False  # filled by PyStructSequence_InitType
    metatype: str | None = None  # the PyVarObject_HEAD_INIT argument when not NULL
    is_static: bool = True
    conditional_groups: tuple = ()  # (Conditional, kept branch, values per branch) of masked #ifs inside

    def slot(self, name: str) -> Initializer | None:
        return next((s for s in self.slots if s.name == name), None)


class Severity(StrEnum):
    BLOCKER = "blocker"
    RISK = "risk"
    INFO = "info"


@dataclass(frozen=True)
class Finding:
    """Something a person must look at: a blocker, a risk or a note."""

    code: str  # stable id, e.g. state-find-module
    severity: Severity
    file: str
    span: Span
    message: str
    function: str | None = None


@dataclass(frozen=True)
class InitFunction:
    name: str  # PyInit_<module>
    file: str
    span: Span
    header: Span
    body: Span
    create_calls: tuple[Call, ...]  # PyModule_Create / PyModule_Create2 (through macros too)
    def_name: str | None  # the PyModuleDef the create call names
    macro_header: str | None = None  # MOD_INIT(name)-style header macro
    c_name: str | None = None  # the name as written when a macro spells PyInit_<module>
    worker: str | None = None  # `return moduleinit();`: the function that creates the module
    worker_span: Span | None = None

    @property
    def function(self) -> str:
        """The name its Function fact has: as written, or `MOD_INIT(x)` for a macro header."""
        return self.c_name or self.name


@dataclass(frozen=True)
class ExtensionModule:
    name: str
    files: tuple[str, ...]
    init: InitFunction
    init_style: InitStyle
    definition: ModuleDef | None
    static_types: tuple[StaticType, ...]
    globals: tuple[Global, ...]
    functions: tuple[Function, ...]
    findings: tuple[Finding, ...]
    macros: tuple["Macro", ...] = ()
    init_body: "InitBody | None" = None
    macro_uses: tuple["MacroUse", ...] = ()
    names_in_use: frozenset[str] = frozenset()  # every identifier, for choosing new names
    find_module_uses: tuple["FindModuleUse", ...] = ()
    # (including file, included file, the #include line) among the module's files.
    includes: tuple[tuple[str, str, Span], ...] = ()
    # Instance structs (they start with PyObject_HEAD): name -> whether they hold object pointers.
    object_structs: tuple[tuple[str, bool], ...] = ()
    instance_structs: tuple["InstanceStruct", ...] = ()
    spec_types: tuple["SpecType", ...] = ()
    # (global, file): globals declared in the module's headers that a C file porter was not
    # given (but that includes one of those headers) names.
    outside_uses: tuple[tuple[str, str], ...] = ()
    # Files included only under a condition porter cannot evaluate: (file, that condition).
    file_conditions: tuple[tuple[str, str], ...] = ()
    # Declarations of the definition without its initialiser (`static struct PyModuleDef d;`).
    definition_forwards: tuple["Location", ...] = ()
    # The struct `m_size = sizeof(S)` names, when the module already has module state.
    state_struct: "StateStructDefinition | None" = None
    # `Owner.__dict__['key']` reads in the package's Python files (analyze.python_side).
    python_dict_reads: tuple["PythonDictRead", ...] = ()
    # `getattr(x, '__module__', ...)` outside tests: code that may meet a type's __module__.
    python_module_reads: tuple["PythonAttributeRead", ...] = ()

    def function(self, name: str) -> Function | None:
        return next((f for f in self.functions if f.name == name), None)


@dataclass(frozen=True)
class FieldRelease:
    """`Py_DECREF(self->value)` in a function whose first parameter is `self`."""

    field: str
    macro: str  # Py_DECREF, Py_XDECREF or Py_CLEAR
    call: Span
    callee: Span


@dataclass(frozen=True)
class StructField:
    name: str
    type_text: str  # `PyObject *`, `Py_ssize_t`
    is_object: bool  # a single pointer to an object type
    span: Span  # the whole field declaration
    conditional: bool  # inside an #if (kept or not) in the struct


@dataclass(frozen=True)
class InstanceStruct:
    """A struct that starts with PyObject_HEAD: the layout of a type's instances."""

    name: str  # the typedef name or the struct tag
    file: str
    span: Span
    fields: tuple[StructField, ...]  # without the head

    def field(self, name: str) -> StructField | None:
        return next((f for f in self.fields if f.name == name), None)


@dataclass(frozen=True)
class SpecType:
    """`G = PyType_FromSpec(&spec)`: a heap type made from a spec and kept in global G."""

    global_name: str
    spec: str
    file: str
    function: str  # where it is created
    call: Span
    creator: str  # PyType_FromSpec, PyType_FromSpecWithBases, PyType_FromModuleAndSpec, ...
    args: tuple[Span, ...]


@dataclass(frozen=True)
class StateStructDefinition:
    """`typedef struct { ... } S;` (or `struct S { ... };`) of an existing module state."""

    name: str
    file: str
    statement: Span  # the whole definition, `;` included
    closing_brace: int  # where new fields go
    fields: tuple[StructField, ...]


@dataclass(frozen=True)
class PythonDictRead:
    file: str
    line: int
    owner: str  # the name before `.__dict__`
    key: str


@dataclass(frozen=True)
class PythonAttributeRead:
    """`getattr(target, 'attribute', ...)` in the package's Python code."""

    file: str
    line: int
    target: str
    attribute: str


@dataclass(frozen=True)
class Macro:
    name: str
    file: str
    span: Span  # the #define line
    params: tuple[str, ...] | None  # None for an object-like macro
    body: Span
    body_text: str
    active: bool | None  # whether the analysis target compiles this definition


@dataclass(frozen=True)
class FileProblem:
    file: str
    reason: str


@dataclass(frozen=True)
class FileFacts:
    """What one file contributes, before files are grouped into modules."""

    path: str
    error_spans: tuple[Span, ...]
    masked_conditionals: int
    macro_masks: int
    lines: int
    includes: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class ReturnSite:
    span: Span  # the whole statement (or the macro use standing for one)
    value: str  # null, module, zero, other
    text: str


@dataclass(frozen=True)
class AddObjectCall:
    """PyModule_AddObject(module, "name", value): steals `value` only on success."""

    call: Span
    callee: Span  # the function name, to rename
    value: Span
    value_name: str | None  # when the value is a plain identifier (or &Type / cast of one)
    incref: Span | None  # a `Py_INCREF(value);` statement right before it
    failure_decrefs: tuple[Span, ...]  # Py_DECREF(value) statements on its failure branch


@dataclass(frozen=True)
class TypeReady:
    """PyType_Ready(&Type) (or PyStructSequence_InitType2) in the init function."""

    type_name: str
    statement: Span  # the whole statement (an `if` that checks it, or the call statement)
    call: Span
    checked: bool
    alone: bool = True  # the statement does nothing but this call and its failure branch
    structseq_desc: str | None = None  # the PyStructSequence_Desc argument
    file: str = ""  # when not the init function's file (a helper only init calls)


@dataclass(frozen=True)
class FieldAssignment:
    """`Type.tp_field = value;` or `substruct.field = value;` while the module initialises."""

    target: str  # the variable
    field: str
    value: str
    statement: Span
    file: str = ""  # when not the init function's file (a helper only init calls)


@dataclass(frozen=True)
class InitBody:
    """What turning the init function into an exec function must touch."""

    function: str  # the function whose body becomes the exec body
    file: str
    header: Span  # from the start of the definition to the end of its declarator
    body: Span
    module_var: str | None
    module_var_decls: tuple[Span, ...]  # text to delete: a declaration or one declarator
    create_statements: tuple[Span, ...]  # `m = PyModule_Create(&def);` and friends
    create_kind: str  # assign, declare, return, macro
    null_checks: tuple[Span, ...]  # `if (m == NULL) ...` right after the create
    returns: tuple[ReturnSite, ...]
    module_decrefs: tuple[Span, ...]  # Py_DECREF(m) / Py_XDECREF(m) / Py_CLEAR(m)
    add_module: tuple[Span, ...]  # PyState_AddModule statements
    add_objects: tuple[AddObjectCall, ...]
    returning_macros: tuple[str, ...]  # project macros used here whose body returns
    type_readies: tuple[TypeReady, ...]
    field_assignments: tuple[FieldAssignment, ...]
    problems: tuple[str, ...]  # what porter could not read in this function
    # The module variable also serves as a temporary before the module is created
    # (`module = PyImport_ImportModule(...)`): it must stay a variable that owns a reference.
    module_var_reused: bool = False
    # The module object is kept in a file-scope global (`mod = PyModule_Create(...)`): other
    # functions read it as their module (see analyze.find_module.module_global_uses).
    module_var_global: bool = False


@dataclass(frozen=True)
class MacroUse:
    """A use of a project macro in code (not inside another macro's body)."""

    name: str
    file: str
    span: Span
    function: str | None
    blanked: bool  # the parser did not see it: its arguments are read lexically
    pasted: tuple[str, ...] = ()  # names its expansion builds with ## (str ## S -> str__dict__)
    in_assert: bool = False


@dataclass(frozen=True)
class FindModuleUse:
    """`PyState_FindModule(&def)`, which returns NULL for a multi-phase module."""

    file: str
    span: Span  # what a rewrite replaces: the call, or `PyModule_GetState(<the call>)`
    function: str | None
    # "state": wrapped in PyModule_GetState; "module": the module object; "state-via": kept in
    # a local that is only NULL-checked and turned into the state (`m = Find(); GET(m)`);
    # "existing": init's `if ((m = Find()) != NULL) return m;`, the single-phase singleton.
    wants: str
    macro: str | None = None  # inside this macro's body
    # For "state-via" and "existing": the statement that stores the call, and for "existing"
    # its declaration initialiser when the call is one (`= PyState_FindModule(&def)`).
    statement: Span | None = None
    # For "state-via": `if (m == NULL) return ...;` statements (dead once state is at hand)
    # and the expressions that turn the local into the state (`GLOBALS(m)`).
    null_checks: tuple[Span, ...] = ()
    state_reads: tuple[Span, ...] = ()
    source: str = "PyState_FindModule()"  # or "the global mod", where init kept the module
