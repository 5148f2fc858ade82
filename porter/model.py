"""Facts about C extension sources, as frozen dataclasses with byte spans."""

from __future__ import annotations

import re
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum
from functools import cached_property
from operator import attrgetter
from typing import TYPE_CHECKING, NamedTuple, TypeVar, overload

if TYPE_CHECKING:
    from porter.analyze.build_config import BuildConfig
    from porter.lexer import Token
    from porter.spans import SpanSet


_T = TypeVar("_T")


def pickled_by_fields(cls: type[_T]) -> type[_T]:
    """Pickle a slotted frozen dataclass as its class and its field values: `dataclasses` gives
    it a `__getstate__`/`__setstate__` that run Python code per field, and a scan's facts
    (hundreds of thousands of calls, roles, locations) cross from worker processes in pickles."""
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    values = attrgetter(*names) if len(names) > 1 else lambda obj: (getattr(obj, names[0]),)

    def __reduce__(self):
        return cls, values(self)

    cls.__reduce__ = __reduce__  # type: ignore[method-assign]
    return cls


class SharedFacts(tuple):
    """Facts every module of one set of files holds as the same object (a unity file's macros,
    type definitions, instance structs): an index on them (`shared_index`) is built once for
    all the modules, not once per module, which made planning quadratic in the inits. It
    pickles as its items, one object for every module a pickle holds."""

    def __reduce__(self):
        return SharedFacts, (tuple(self),)


def shared_index(facts: tuple, key: object, build: Callable[[tuple], _T]) -> _T:
    """`build(facts)`, kept on `facts` under `key` when they are SharedFacts."""
    if not isinstance(facts, SharedFacts):
        return build(facts)
    indexes = facts.__dict__.setdefault("indexes", {})
    if key not in indexes:
        indexes[key] = build(facts)
    return indexes[key]


class Span(NamedTuple):
    """A byte range of a file, `start` included, `end` not. A named tuple, not a dataclass:
    a scan makes a million of them, and a tuple is made in half the time (it compares, sorts,
    hashes and prints as the frozen dataclass did)."""

    start: int
    end: int

    def contains(self, other: Span) -> bool:
        return self.start <= other.start and other.end <= self.end

    def overlaps(self, other: Span) -> bool:
        return self.start < other.end and other.start < self.end


class SpanList(Sequence[Span]):
    """Spans kept as one array of offsets: a data table's rows are hundreds of thousands, and an
    object per row costs more to make, keep and pickle than the rows are worth. Reads like a
    tuple of `Span`s (indexing, iteration, length, equality with one).

    `SpanList.pieces(text, at)` keeps only the text of a list of plain values (`1, 2, -3`) and
    finds the pieces between its commas when first asked: a table of numbers is never asked."""

    __slots__ = ("_offsets", "_text", "_at")

    def __init__(self, spans: Iterable[Span] = ()) -> None:
        self._offsets: array | None = array("q", [x for span in spans for x in span])
        self._text = b""
        self._at = 0

    @classmethod
    def from_offsets(cls, offsets: Iterable[int]) -> SpanList:
        """From `start, end, start, end, ...`."""
        made = cls()
        made._offsets = array("q", offsets)
        return made

    @classmethod
    def pieces(cls, text: bytes, at: int) -> SpanList:
        """The pieces of `text` (found at offset `at`) between its commas, blanks trimmed."""
        made = cls()
        made._offsets, made._text, made._at = None, text, at
        return made

    @property
    def _spans(self) -> array:
        if self._offsets is None:
            at = self._at
            self._offsets = array("q", (x + at for m in _PIECE.finditer(self._text) for x in m.span()))
            self._text = b""
        return self._offsets

    def __len__(self) -> int:
        return len(self._spans) // 2

    @overload
    def __getitem__(self, i: int) -> Span: ...

    @overload
    def __getitem__(self, i: slice) -> tuple[Span, ...]: ...

    def __getitem__(self, i):
        if isinstance(i, slice):
            return tuple(self)[i]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("span index out of range")
        offsets = self._spans
        return Span(offsets[2 * i], offsets[2 * i + 1])

    def __iter__(self) -> Iterator[Span]:
        offsets = self._spans
        return (Span(offsets[i], offsets[i + 1]) for i in range(0, len(offsets), 2))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SpanList):
            return self._spans == other._spans
        if isinstance(other, tuple):
            return tuple(self) == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(tuple(self))

    def __reduce__(self):
        if self._offsets is None:
            return SpanList.pieces, (self._text, self._at)
        return SpanList.from_offsets, (self._offsets,)


# A piece of a list of plain values: from its first byte that is no blank or comma to its last.
_PIECE = re.compile(rb"[^\s,](?:[^,]*[^\s,])?")


@pickled_by_fields
@dataclass(frozen=True, order=True, slots=True)
class Location:
    """A span in one file."""

    file: str
    span: Span


class InitStyle(StrEnum):
    SINGLE_PHASE = "single-phase"
    MULTI_PHASE = "multi-phase"
    UNKNOWN = "unknown"


class RoleKind(StrEnum):
    """What a function is to the module, which decides how it can reach module state."""

    MODULE_INIT = "module-init"  # the PyInit_ function
    MODULE_METHOD = "module-method"  # in the module's method table: its first parameter is the module
    TYPE_METHOD = "type-method"  # in a type's tp_methods: its first parameter is an instance
    GETTER = "getter"  # a PyGetSetDef getter: its first parameter is an instance
    SETTER = "setter"  # a PyGetSetDef setter: its first parameter is an instance
    SLOT = "slot"  # a type slot (Role.slot says which): reaches state through the type
    MODULE_SLOT = "module-slot"  # a multi-phase module slot or m_traverse/m_clear/m_free
    METHOD = "method"  # in a method table porter could not tie to the module or a type
    CALLBACK = "callback"  # its address is passed somewhere: its signature is fixed by the caller
    HELPER = "helper"  # called directly by other functions of the module
    REFERENCED = "referenced"  # named in a table porter could not tie to the module or a type
    UNREFERENCED = "unreferenced"  # neither called nor named where porter can see it


@pickled_by_fields
@dataclass(frozen=True, order=True, slots=True)
class Role:
    """A function's role; for a type slot, which slot (`Role(RoleKind.SLOT, "tp_new")`)."""

    kind: RoleKind
    slot: str | None = None

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.slot}" if self.slot else self.kind.value

    @classmethod
    def of_slot(cls, slot: str) -> Role:
        return cls(RoleKind.SLOT, slot)


class UseAccess(StrEnum):
    """How one use of a global touches it."""

    READ = "read"
    WRITE = "write"
    ADDRESS = "address"  # &x: may be written through
    MACRO = "macro"  # named in a #define body
    MACRO_ARG = "macro-arg"  # an argument of a macro use the parser did not see
    MACRO_PASTE = "macro-paste"  # built by a macro's ## at a use


class UseShape(StrEnum):
    """The expression around a use that a rewrite replaces."""

    PLAIN = "plain"
    ADDRESS_OF = "address-of"  # &x
    MEMBER = "member"  # x.field


class FindModuleWant(StrEnum):
    """What a `PyState_FindModule(&def)` use wants from the module."""

    STATE = "state"  # wrapped in PyModule_GetState
    MODULE = "module"  # the module object itself
    STATE_VIA = "state-via"  # kept in a local that is only NULL-checked and turned into state
    EXISTING = "existing"  # init's `if ((m = Find()) != NULL) return m;`


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
    THREAD_LOCAL = "thread-local"  # C data in thread-local storage: each thread has its own
    PROCESS_CONSTANT = "process-constant"  # C data computed once from process-wide inputs
    ATOMIC = "atomic"  # C data only touched through atomic operations: shared on purpose
    ONCE_GUARD = "once-guard"  # a flag making calls (a C library's initialisation) happen once per process

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


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class Use:
    """One place a global is named."""

    file: str
    span: Span  # the identifier
    function: str | None  # enclosing function, None at file scope
    access: UseAccess
    macro: str | None = None  # the macro whose body names it, for UseAccess.MACRO
    shape: UseShape = UseShape.PLAIN
    shape_span: Span | None = None  # the expression `&x` or `x.` that a rewrite replaces
    member: str | None = None  # for UseShape.MEMBER: the field, `tp_dict` in `x.tp_dict`
    unparsed: bool = False  # inside an ERROR span: never edited
    in_assert: bool = False  # inside assert(...): compiled only without NDEBUG
    # An argument of a call (through &, casts and parens): the callee as written, and the call.
    call: str | None = None
    call_span: Span | None = None
    # For `x = value;`: the whole statement, when the use is the target of an assignment that
    # is a statement of its own; and whether an `if (x == NULL)` around it makes it happen once.
    statement: Span | None = None
    null_guarded: bool = False
    # For `x = value;`: the value when it is a borrowed reference (`PyModule_GetDict(m)`, or a
    # local only ever assigned one): the global never owned it.
    borrowed_value: Span | None = None
    # `x = NULL;` (also inside `a = x = NULL;`): the value it held is dropped, not released here.
    assigned_null: bool = False
    # For a use in a macro body: functions where the macro expands and the name means one of
    # their own parameters or locals (the body cannot be rewritten for the other sites).
    shadowed_in: tuple[str, ...] = ()
    # Inside a function, in the initialiser of a `static` local (`static PyTypeObject *all[] =
    # {&A, &B};`): that local's name. A constant initialiser cannot read module state.
    static_initializer: str | None = None


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class UnreadUse:
    """A global named in an `#if` branch porter did not read: the tree never saw it, so what
    is known comes from the tokens around the name."""

    file: str
    span: Span  # the name
    function: str | None  # the function around it (None at file scope)
    shape: UseShape  # &x, x.field or plain, read from the neighbouring characters
    shape_span: Span | None
    writes: bool  # assigned or changed (`x = ...`, `x++`, `T.tp_flags |= ...`)
    declares: bool  # possibly a local of the same name being declared (`PyObject *x`)


@pickled_by_fields
@dataclass(frozen=True, slots=True)
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
    # Every declarator of its declaration, in order, when it declares several (`int a, b = 1;`):
    # what a rewrite needs to delete some and keep the others valid.
    declarators: tuple[Span, ...] = ()
    declarator_index: int = 0  # which of them is this one
    thread_local: bool = False  # _Thread_local / __thread: one per thread, not per process
    # The elements of an `{...}` initialiser list (a table's rows, the sentinel last).
    table_rows: SpanList | tuple[Span, ...] = ()
    # The same variable declared again in other branches of the #if group around it, for other
    # builds (`#ifdef __linux__ static struct timespec t; #else static time_t t; #endif`).
    alternatives: tuple[Global, ...] = ()
    # Where `#if` branches porter did not read (for other builds or platforms) name it.
    unread_uses: tuple[UnreadUse, ...] = ()
    # For a once-guard: the `if (!ready) {...}` statements a lock can be held around (empty when
    # one cannot: an early return inside, a guarded write elsewhere).
    once_guard_statements: tuple[Location, ...] = ()

    @property
    def key(self) -> tuple[str | None, str]:
        return (self.function, self.name)


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class Param:
    name: str | None
    type_text: str
    span: Span
    # `PyObject *Py_UNUSED(self)`: the name inside, and the `Py_UNUSED(self)` to replace when
    # the parameter becomes used.
    unused_name: str | None = None
    unused_span: Span | None = None


def function_key(file: str, name: str) -> str:
    """The key of a function that another file of its module also defines (as `static`):
    `file:name`. A function's key is its plain name otherwise (analyze.function_keys)."""
    return f"{file}:{name}"


def first_by_name(facts: Iterable) -> dict:
    """Each name's first fact (what a search in order finds)."""
    found: dict = {}
    for fact in facts:
        found.setdefault(fact.name, fact)
    return found


def all_by_name(facts: Iterable) -> dict[str, list]:
    """Each name's facts, in their order (a macro defined in several #if branches or files)."""
    found: dict[str, list] = {}
    for fact in facts:
        found.setdefault(fact.name, []).append(fact)
    return found


def c_name(key: str) -> str:
    """The C name of the function with this key (a C name holds no ':')."""
    return key.rpartition(":")[2]


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class Call:
    callee: str  # the key of the function called (`function_key`), as the calling file sees it
    span: Span  # the whole call expression
    args: SpanList | tuple[Span, ...]
    arg_list: Span | None = None  # `(...)`, parentheses included


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class Alternative:
    """Another definition of a function, in another branch of an #if group of its file
    (`#ifdef _WIN32` ... `#else` ...): a port edits it as it edits the function."""

    header: Span
    body: Span
    param_list: Span | None
    first_param: str | None = None  # its first parameter's name (None: unnamed, or Py_UNUSED)


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class Function:
    # Its key: the C name, or `file:name` when another file defines a static function of that
    # name (`function_key`); `c_name` is what the source spells.
    name: str
    file: str
    span: Span  # the whole definition
    header: Span  # from the first specifier to the end of the declarator
    body: Span  # the compound statement
    return_type: str
    params: tuple[Param, ...]
    is_static: bool
    roles: tuple[Role, ...]
    calls: tuple[Call, ...]
    address_taken: tuple[Location, ...]  # uses of its name other than calls and known tables
    prototypes: tuple[Prototype, ...] = ()  # forward declarations
    types: tuple[str, ...] = ()  # static types whose slots or tables name it
    param_list: Span | None = None  # the parenthesised parameter list
    flags: tuple[str, ...] = ()  # METH_ flags when it is a method
    frees: tuple[Span, ...] = ()  # statements that free the object: tp_free(...), PyObject_Del(...)
    # `Base.tp_dealloc(self);` statements, with Base: the base's dealloc frees the object.
    base_deallocs: tuple[tuple[Span, str], ...] = ()
    # Where its address goes to a function that calls it before returning (qsort(), a
    # PyArg_Parse converter, or any function handed a local struct holding it).
    sync_callback_sites: tuple[CallbackSite, ...] = ()
    # Each `void *` parameter its body casts to a pointer type: `self = (CurlObject *)clientp;`
    # says what the user data handed to it is.
    void_param_casts: tuple[VoidParamCast, ...] = ()
    object_locals: tuple[ObjectLocal, ...] = ()  # pointer locals it starts with (see ObjectLocal)
    untracks_first: bool = False  # its first statement is PyObject_GC_UnTrack(...)
    # Py_DECREF(Py_TYPE(self)) already, or of a local set from Py_TYPE(self): a dealloc written
    # for heap types (or for both kinds, `if (tp->tp_flags & Py_TPFLAGS_HEAPTYPE)`).
    releases_type: bool = False
    # `Py_SET_TYPE(op, tp);` in code that makes an object by hand (`_Py_NewReference(op)`, no
    # PyObject_Init): the statement and the type argument; such code takes no reference to a
    # heap type, which PyObject_Init does since 3.8.
    sets_type_by_hand: tuple[tuple[Span, str], ...] = ()
    # Calls to it in #if branches porter did not read, found lexically.
    unread_calls: tuple[UnreadCall, ...] = ()
    # Py_DECREF/Py_XDECREF/Py_CLEAR of a field of its first parameter (what a dealloc owns).
    releases: tuple[FieldRelease, ...] = ()
    defined_by: str | None = None  # the project macro whose use defines it (BINOP(name, ...))
    name_span: Span | None = None  # its name in the definition's declarator
    # Its other definitions in exclusive #if branches of its file; `calls` holds theirs too.
    alternatives: tuple[Alternative, ...] = ()
    loader_hook: bool = False  # __attribute__((constructor)) or destructor: the loader calls it
    # The words before its name in its definition and prototypes (`HIDDEN`, `static`, `PyObject`).
    specifier_words: tuple[str, ...] = ()
    returns_pointer: bool = False  # `T *f(...)`: NULL can say it failed

    @property
    def c_name(self) -> str:
        return c_name(self.name)

    @property
    def role_kinds(self) -> frozenset[RoleKind]:
        return frozenset(r.kind for r in self.roles)

    def has_role(self, *kinds: RoleKind) -> bool:
        return any(r.kind in kinds for r in self.roles)

    @property
    def slots(self) -> frozenset[str]:
        """The type slots it fills (`tp_iternext`, `nb_add`, ...)."""
        return frozenset(r.slot for r in self.roles if r.kind is RoleKind.SLOT and r.slot)

    @property
    def only_helper(self) -> bool:
        """Called directly by the module's own functions and nothing else."""
        return self.roles == (Role(RoleKind.HELPER),)


@dataclass(frozen=True)
class TypeDefinition:
    """A file-scope `typedef`, or a struct/union/enum with a body: what a declaration of that
    type needs to see first."""

    name: str  # the typedef name or the tag
    file: str
    statement: Span  # the whole definition, `;` included
    conditions: tuple[Span, ...]  # the #if groups around it (an include guard included)
    mentions: frozenset[str]  # identifiers it uses (the types it needs in turn)


@dataclass(frozen=True)
class IncludeLine:
    """An `#include` in one of a module's files."""

    file: str
    name: str  # as written between the quotes or brackets
    span: Span  # the directive
    top_level: bool  # not inside any #if (an include guard counts as #if)


@dataclass(frozen=True)
class Prototype:
    """A forward declaration of a function."""

    file: str
    span: Span  # the whole declaration
    name_span: Span | None  # the function's name in it
    param_list: Span | None  # the parenthesised parameter list


class CallEndKind(StrEnum):
    AFTER = "after"  # past the statement that makes the call
    OPEN = "open"  # right after the `{` of a branch of the `if` whose condition made the call
    WRAP = "wrap"  # a branch that is a single statement: it needs braces to take more
    # The statement making the call is itself a branch or loop body without braces (or the
    # first statement after a label): what goes around it needs braces around it all.
    BRACE = "brace"


@dataclass(frozen=True)
class CallEnd:
    """Where a call that calls back is over, so that what was set around it can be undone."""

    kind: CallEndKind
    at: int
    close: int = 0  # for WRAP and BRACE: where the statement ends (the `}` goes there)
    owner: int = 0  # for BRACE: where the statement owning the body starts (the braces take its indent)


@dataclass(frozen=True)
class UserDataCarrier:
    """`run(..., callback, &data, ...)` where the callback casts its `void *` parameter to the
    type of `data`, a local of the caller: what the callback is handed back is `data`."""

    variable: str  # the caller's local (`data`)
    struct: str  # its type, as the callback's cast spells it (`CALLBACK_DATA`, `struct walk`)
    param: str  # the callback's `void *` parameter


@dataclass(frozen=True)
class VoidParamCast:
    """A function casts its `void *` parameter `param` to `type` (as spelled). When it tests
    the parameter for NULL, it does so only in the `if (!x ...) return ...;` statement at
    `guard` (start, end) of its body, and past that statement the parameter is not NULL."""

    param: str
    type: str
    guard_start: int = 0
    guard_end: int = 0  # 0: never tested for NULL


@dataclass(frozen=True)
class ObjectLocal:
    """A pointer local a function declares first thing, from a call or a cast, and never
    assigns again; from `ready` on (past its declaration, or past the early-return guard that
    tests it for NULL) it holds what that call gave."""

    name: str
    type: str  # the declared type, as spelled (`RuntimeData`, `struct ctx`)
    ready: int


@dataclass(frozen=True)
class CallbackSite:
    """A call that calls a function of the module back before it returns."""

    caller: str  # the function making the call
    statement: Location  # the statement the call is made in
    library: str  # the function called (qsort, PyArg_ParseTuple, a module function)
    ends: tuple[CallEnd, ...]
    carrier: UserDataCarrier | None = None  # the local it hands the callback as its user data


@dataclass(frozen=True)
class UnreadCall:
    """A call in an #if branch porter did not read, found on the tokens."""

    caller: str | None  # the function around it, None at file scope
    location: Location  # from the callee's name to the `(` after it
    empty: bool  # no argument follows the `(`


@dataclass(frozen=True)
class Initializer:
    """A field of a struct initialiser (PyTypeObject, PyModuleDef, sub-structs)."""

    name: str  # the field it initialises
    span: Span  # the value expression
    text: str
    designated: bool
    conditional: bool = False  # inside a masked #if branch
    # The `#if` line that keeps it when that branch is not taken by every Python porter targets.
    guard: str | None = None


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
class SubstructTable:
    """`static PyMappingMethods t_as_mapping = {...};`: a sub-struct variable and its slots."""

    name: str
    struct: str  # PyMappingMethods
    slots: tuple[Initializer, ...]


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

    @property
    def custom_metatype(self) -> str | None:
        """The metatype when it is not `type` itself (`PyVarObject_HEAD_INIT(&PyType_Type, 0)`
        names the default one)."""
        if self.metatype is None or self.metatype.replace(" ", "") == "&PyType_Type":
            return None
        return self.metatype

    def slot(self, name: str) -> Initializer | None:
        return self._slots.get(name)

    @cached_property
    def _slots(self) -> dict[str, Initializer]:
        found: dict[str, Initializer] = {}
        for s in self.slots:
            found.setdefault(s.name, s)
        return found

    def slot_text(self, name: str) -> str | None:
        """The initialiser text of a slot, when the type sets it."""
        s = self.slot(name)
        return s.text if s is not None else None


class Severity(StrEnum):
    BLOCKER = "blocker"
    RISK = "risk"
    INFO = "info"


def is_interpreter_pointer(type_text: str) -> bool:
    """`PyInterpreterState *owner`: a pointer that names an interpreter."""
    return type_text.replace(" ", "").startswith("PyInterpreterState*")


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class BuildBranch:
    """A branch of an `#if` group that only some builds compile."""

    file: str
    body: Span
    condition: str  # the C expression it is compiled under (earlier branches of its group negated)


@dataclass(frozen=True)
class Finding:
    """Something a person must look at: a blocker, a risk or a note."""

    code: str  # stable id, e.g. state-find-module
    severity: Severity
    file: str
    span: Span
    message: str
    function: str | None = None
    subject: str | None = None  # the global, type or function it is about, when one


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
    # What the build must define for the name to be PyInit_<module>: (`EXT_MODULE`, `_rjsmin`)
    # when a header macro pastes `PyInit_` with a macro only the build defines.
    implied_defines: tuple[tuple[str, str], ...] = ()

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
    macros: tuple[Macro, ...] = ()
    init_body: InitBody | None = None
    macro_uses: tuple[MacroUse, ...] = ()
    names_in_use: frozenset[str] = frozenset()  # every identifier, for choosing new names
    find_module_uses: tuple[FindModuleUse, ...] = ()
    # (including file, included file, the #include line) among the module's files.
    includes: tuple[tuple[str, str, Span], ...] = ()
    # Instance structs (they start with PyObject_HEAD): name -> whether they hold object pointers.
    object_structs: tuple[tuple[str, bool], ...] = ()
    instance_structs: tuple[InstanceStruct, ...] = ()
    spec_types: tuple[SpecType, ...] = ()
    spec_helpers: tuple[SpecHelper, ...] = ()  # helpers that make heap types from the specs given
    spec_makers: tuple[SpecMaker, ...] = ()  # functions that make a type from their own spec and return it
    # Module functions made from the module's own tables with a NULL `self` (the port passes the module).
    null_self_sites: tuple[NullSelfSite, ...] = ()
    instance_checks: tuple[InstanceCheck, ...] = ()  # analyze.instance_checks
    callback_slots: tuple[CallbackSlot, ...] = ()  # analyze.callback_slots
    getset_closures: tuple[GetsetClosure, ...] = ()  # analyze.getset_closures
    closure_reads: tuple[ClosureReads, ...] = ()
    pacing_counters: tuple[tuple[str | None, str], ...] = ()  # analyze.pacing_counters: global keys
    # (global, file): globals declared in the module's headers that a C file porter was not
    # given (but that includes one of those headers) names.
    outside_uses: tuple[tuple[str, str], ...] = ()
    # Files included only under a condition porter cannot evaluate: (file, that condition).
    file_conditions: tuple[tuple[str, str], ...] = ()
    # Declarations of the definition without its initialiser (`static struct PyModuleDef d;`).
    definition_forwards: tuple[Location, ...] = ()
    # Files outside the definition's translation unit that define its name for themselves (a
    # `static struct PyModuleDef *name` of a part file): an `extern` declaration of the
    # definition in a header they include would clash with it.
    definition_shadowed_in: tuple[str, ...] = ()
    # The struct `m_size = sizeof(S)` names, when the module already has module state.
    state_struct: StateStructDefinition | None = None
    # `Owner.__dict__['key']` reads in the package's Python files (analyze.python_side).
    python_dict_reads: tuple[PythonDictRead, ...] = ()
    # `getattr(x, '__module__', ...)` outside tests: code that may meet a type's __module__.
    python_module_reads: tuple[PythonAttributeRead, ...] = ()
    build: BuildConfig | None = None  # what the package's build files say
    # A module of CPython itself: that tree's (major, minor), the one version its port targets,
    # and the tree's root (its headers, Makefile and clinic).
    cpython_version: tuple[int, int] | None = None
    cpython_root: str | None = None
    # The rows of the definition's m_slots table: (slot, value), for a multi-phase module.
    module_slots: tuple[tuple[str, str], ...] = ()
    type_definitions: tuple[TypeDefinition, ...] = ()
    substruct_tables: tuple[SubstructTable, ...] = ()
    # Headers among the module's files that the package installs for other code (setup.py
    # headers=...): their declarations and macros are public API and porter never edits them.
    public_headers: frozenset[str] = frozenset()
    # Argument Clinic output (`clinic/*.c.h`, and the blocks between `[clinic start generated
    # code]` and `[clinic end generated code]`): regenerated from the clinic input, never edited.
    generated: tuple[Location, ...] = ()
    # Names the clinic input spells as a C expression (`class x "T *" "&Foo_Type"`,
    # `subclass_of="&Foo_Type"`): where a change of the input would reach generated code.
    clinic_input_names: tuple[ClinicInputName, ...] = ()
    clinic_functions: tuple[ClinicFunction, ...] = ()  # the input blocks that declare functions
    # The port may change the clinic input: porter runs the tree's clinic on the new text (set
    # by the port, not the scan; a port whose clinic run fails is planned again without it).
    regenerate_clinic: bool = False

    def clinic_function(self, impl: str) -> ClinicFunction | None:
        """The clinic input of the `_impl` function `impl`, if it has one."""
        return next((c for c in self.clinic_functions if c.impl == impl), None)

    def in_generated(self, file: str, offset: int) -> bool:
        spans = self._generated.get(file)
        return spans is not None and spans.covers(offset)

    @cached_property
    def _generated(self) -> dict[str, SpanSet]:
        from porter.spans import SpanSet

        by_file: dict[str, list[Span]] = {}
        for g in self.generated:
            by_file.setdefault(g.file, []).append(g.span)
        return {file: SpanSet(spans) for file, spans in by_file.items()}
    include_lines: tuple[IncludeLine, ...] = ()  # every #include of the module's files
    # Headers with an include guard (or #pragma once): where the guarded part ends.
    guard_ends: tuple[tuple[str, int], ...] = ()
    # Branches of #if groups porter masked away (unread code some targeted Python compiles;
    # `#if PY_MAJOR_VERSION < 3` branches are dead, not unread), and project macros whose
    # every expansion site porter saw (an edit in any other macro body needs review).
    unread_branches: tuple[Location, ...] = ()
    # Branches of #if groups that some builds a port targets compile and others do not (another
    # platform, compiler, Python version or -D): what code porter adds for what is inside needs
    # the same condition.
    build_branches: tuple[BuildBranch, ...] = ()
    top_level_groups: tuple[Location, ...] = ()  # #if groups in no other one (include guards aside)
    # Names with several definitions (static helpers in two files): the facts hold the first.
    ambiguous_functions: frozenset[str] = frozenset()
    called_from_ambiguous: frozenset[str] = frozenset()  # callees of any of their definitions
    macros_fully_seen: frozenset[str] = frozenset()

    def function(self, name: str) -> Function | None:
        return self._by_name[0].get(name)

    def slots_storing(self, name: str) -> tuple[CallbackSlot, ...]:
        """The callback slots `name` is stored in."""
        return tuple(s for s in self.callback_slots if name in s.functions)

    def function_in(self, file: str, name: str) -> Function | None:
        """The function `name` means in `file` (a type's slot, a module def's m_traverse): the
        one of that key, else the one definition of that C name in the file's translation units
        (a static function other files also define is keyed `file:name`)."""
        found = self.function(name)
        if found is not None:
            return found
        unit = frozenset().union(*(self.translation_unit(root) for root in self.unit_roots(file)))
        seen = [f for f in self._by_c_name.get(name, ()) if f.file in unit]
        return seen[0] if len(seen) == 1 else None

    def file_global(self, name: str) -> Global | None:
        """The file-scope global named `name` (the first one, as a search of `globals` finds)."""
        return self._by_name[1].get(name)

    def instance_struct(self, name: str) -> InstanceStruct | None:
        """The instance struct of this name (the first one, as a search of `instance_structs` finds)."""
        return shared_index(self.instance_structs, "by name", first_by_name).get(name)

    def global_of(self, key: tuple[str | None, str]) -> Global:
        """The global with this `Global.key` (the first one, as a search of `globals` finds)."""
        return self._by_name[2][key]

    @cached_property
    def interpreter_pointer_globals(self) -> frozenset[str]:
        """File-scope globals declared `PyInterpreterState *` (asked once per global by planning)."""
        return frozenset(g.name for g in self.globals if g.function is None and is_interpreter_pointer(g.type_text))

    @cached_property
    def _by_c_name(self) -> dict[str, list[Function]]:
        found: dict[str, list[Function]] = {}
        for f in self.functions:
            found.setdefault(f.c_name, []).append(f)
        return found

    @cached_property
    def _by_name(self) -> tuple[dict[str, Function], dict[str, Global], dict[tuple[str | None, str], Global]]:
        # Planning asks by name or key for every type, use and global kept: a dict, not a
        # search, each time.
        functions: dict[str, Function] = {}
        for f in self.functions:
            functions.setdefault(f.name, f)
        globals_: dict[str, Global] = {}
        by_key: dict[tuple[str | None, str], Global] = {}
        for g in self.globals:
            if g.function is None:
                globals_.setdefault(g.name, g)
            by_key.setdefault(g.key, g)
        return functions, globals_, by_key

    @property
    def exec_function(self) -> str:
        """The function that fills the module: the exec slot's, or init (or its worker) before a port."""
        if self.init_body is not None:
            return self.init_body.function
        return self.init.worker or self.init.function

    def unit_roots(self, file: str) -> frozenset[str]:
        """The files compiled on their own whose translation unit holds `file`: `file` itself
        unless another module file includes it (`typecast.c` does `#include "typecast_basic.c"`)."""
        includers = {inc for inc, target, _ in self.includes if target == file}
        if not includers:
            return frozenset({file})
        seen, stack, roots = {file}, list(includers), set()
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            above = {inc for inc, target, _ in self.includes if target == current}
            if above:
                stack.extend(above)
            else:
                roots.add(current)
        return frozenset(roots) or frozenset({file})

    def translation_unit(self, file: str) -> frozenset[str]:
        """`file` and every module file it includes, directly or not."""
        seen, stack = {file}, [file]
        while stack:
            current = stack.pop()
            for inc, target, _ in self.includes:
                if inc == current and target not in seen:
                    seen.add(target)
                    stack.append(target)
        return frozenset(seen)


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
    arg_texts: tuple[str, ...] = ()


@dataclass(frozen=True)
class InstanceCheck:
    """`PyObject_TypeCheck(op, &T)` (or `Py_IS_TYPE`, or a one-parameter project macro that is
    exactly that, `T_Check(op)`): whether an object is an instance of a static type `T`."""

    file: str
    function: str | None  # the key of the function it is in
    span: Span  # the call or the macro's invocation
    object: Span  # its object argument
    type_name: str
    exact: bool  # Py_IS_TYPE: the type itself, not a subclass
    macro: str | None = None


@dataclass(frozen=True)
class SlotStore:
    """A function stored in a callback slot (analyze.callback_slots)."""

    function: str  # its key
    location: Location  # the name as written (`f` in `(void *)&f`, or the macro naming it)
    aliases: tuple[str, ...] = ()  # object-like macros that name it (`#define X_cast f`)


@dataclass(frozen=True)
class SlotCall:
    """A call through a callback slot: `self->ccast(str, len, curs)`."""

    caller: str  # the key of the function it is in
    file: str
    span: Span  # the call
    at: int  # where a new first argument goes
    empty: bool  # it passes no argument


@dataclass(frozen=True)
class CallbackSlot:
    """Function-pointer fields of the project's structs with one signature: a typedef of the
    project's (every field declared with it), or one field's own declarator."""

    name: str  # the typedef, or `struct.field`
    fields: tuple[str, ...]
    param_lists: tuple[Location, ...]  # the signature's parameter list: where a `state` goes
    statements: tuple[Location, ...]  # the file-scope typedef or struct around each of them
    stores: tuple[SlotStore, ...]
    calls: tuple[SlotCall, ...]
    refusal: str = ""  # why porter cannot change its signature ("" when it can)

    @property
    def functions(self) -> tuple[str, ...]:
        """The functions stored in it, once each, in order of first store."""
        return tuple(dict.fromkeys(s.function for s in self.stores))


@dataclass(frozen=True)
class GetsetClosure:
    """A PyGetSetDef row whose closure is a global's address (`{"Error", get_exc, NULL, doc,
    &Error}`), or a project macro's row whose closure is `&param` (`EXC_GETTER(Error)`)."""

    global_name: str
    file: str
    use: Span  # the global's name where the row names it: in `&G`, or the macro's argument
    closure: Span  # what becomes the offset: the row's closure, or `&param` in the macro's body
    getter: str | None  # function keys
    setter: str | None
    macro: str | None = None
    macro_file: str | None = None  # where `closure` is, for a macro's row


@dataclass(frozen=True)
class ClosureReads:
    """How a getter or setter uses its closure parameter (analyze.getset_closures)."""

    function: str  # its key
    file: str
    reads: tuple[Span, ...]  # the parameter in `*(T *)closure`
    other_uses: bool  # it uses the parameter another way too (or porter cannot name it)
    other_rows: bool = False  # a getset row whose closure is no global's address names it too


@dataclass(frozen=True)
class NullSelfSite:
    """`PyCFunction_New(&table[i], NULL)`: a module function made with no `self` (the module's
    own tables' rows, added to its dict; analyze.added_functions)."""

    file: str
    function: str  # the key of the function making it
    self_arg: Span  # the NULL
    call: Span
    api: str
    tables: tuple[str, ...]  # the method tables its method definition comes from
    functions: tuple[str, ...]  # the keys of those tables' functions


@dataclass(frozen=True)
class SpecMaker:
    """`static PyObject *make_meta(void) { return PyType_FromSpec(&Meta_spec); }`: a function
    that makes a heap type from a spec of its own and returns it, with no module to give it."""

    function: str
    file: str
    spec: str
    call: Span  # the creator call
    creator: str  # PyType_FromSpec or PyType_FromSpecWithBases
    args: tuple[Span, ...]


@dataclass(frozen=True)
class SpecHelper:
    """`PyTypeObject *add_class(PyObject *m, PyType_Spec *spec) { ... PyType_FromSpec(spec) ... }`:
    a helper that makes a heap type from the spec it is given, for the module it is given."""

    function: str
    file: str
    module_param: str  # the `PyObject *` parameter callers pass the module in
    call: Span  # the creator call inside it
    creator: str  # PyType_FromSpec or PyType_FromSpecWithBases
    args: tuple[Span, ...]
    specs: tuple[str, ...]  # the specs callers pass as `&spec`
    callers: tuple[str, ...]  # the functions that call it


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


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class Macro:
    name: str
    file: str
    span: Span  # the #define line
    params: tuple[str, ...] | None  # None for an object-like macro
    body: Span
    body_text: str
    active: bool | None  # whether the analysis target compiles this definition
    # The body as written when it is not ASCII (else `body_text` encoded); its tokens are read
    # from it when asked (most bodies never are).
    body_bytes: bytes = field(default=b"", repr=False, compare=False)
    # What moves with it when it must move: its #define line, or the #if groups around it that
    # hold nothing but directives (`#ifdef A / #define M A / #else ...`); the conditions of the
    # groups around that, which hold code too, go with it (BuildGuards).
    unit: Span | None = None

    @property
    def tokens(self) -> tuple[Token, ...]:
        """The body's tokens (offsets in the file), without comments and line breaks."""
        from porter.lexer import Token, tokenize

        at = self.body.start
        return tuple(Token(t.kind, t.start + at, t.end + at, t.text)
                     for t in tokenize(self.raw_body, directives=False) if t.kind not in ("comment", "newline"))

    @property
    def raw_body(self) -> bytes:
        """The body's bytes, as in the file."""
        return self.body_bytes or self.body_text.encode()

    @property
    def identifiers(self) -> frozenset[str]:
        return frozenset(t.text.decode("utf-8", "replace") for t in self.tokens if t.kind == "ident")

    def called(self) -> list[tuple[str, Token, Token, bool]]:
        """Calls its body makes: (name, the name's token, the `(` token, whether no argument follows)."""
        out = []
        toks = self.tokens
        for i, tok in enumerate(toks[:-1]):
            if tok.kind == "ident" and toks[i + 1].text == b"(":
                empty = i + 2 < len(toks) and toks[i + 2].text == b")"
                out.append((tok.text.decode("utf-8", "replace"), tok, toks[i + 1], empty))
        return out


@dataclass(frozen=True)
class Companions:
    """What surrounds the sources in their project, as bytes: the package's Python files
    (what they read from a type's `__dict__` decides whether a port may change it), sources
    that include the given headers without being ported (what they name must stay), and the
    build files (setup.py, setup.cfg, pyproject.toml: macros, include folders, limited API,
    installed headers)."""

    python_files: tuple[tuple[str, bytes], ...] = ()
    outside_files: tuple[tuple[str, bytes], ...] = ()
    build_files: tuple[tuple[str, bytes], ...] = ()
    given_defines: tuple[tuple[str, str], ...] = ()  # -D on porter's command line
    given_include_dirs: tuple[str, ...] = ()  # -I on porter's command line
    # The sources sit in CPython's own tree (Modules/): its (major, minor) version and root.
    cpython_version: tuple[int, int] | None = None
    cpython_root: str | None = None


NO_COMPANIONS = Companions()


@dataclass(frozen=True)
class FileProblem:
    file: str
    reason: str
    needed_by: str | None = None  # the source whose #include led porter to it


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
class ClinicInputName:
    """`"&Foo_Type"` in an Argument Clinic input block: the quoted C expression and its line."""

    name: str
    file: str
    span: Span  # the quoted expression, quotes included
    line: int
    text: str


@dataclass(frozen=True)
class ClinicFunction:
    """A function's Argument Clinic input block (`mod.Class.meth` and its parameters)."""

    file: str
    name: str  # the dotted name the input declares
    line: int  # of that name
    impl: str | None  # the C function whose header the generated block after the input holds
    defining_class: str | None  # its `name: defining_class` parameter, when it has one
    refusal: str  # why clinic cannot give it a defining_class parameter ('' when it can)
    parameter_at: int  # where a `defining_class` line goes (after `self:`, else first)
    parameter_line: str  # that line, with `{name}` for the parameter's name
    decorators: tuple[str, ...] = ()  # `@classmethod`, `@staticmethod`, ...


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
    reads_locals: bool = False  # the value names a local of the function: known only at run time


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
    # (type, metatype) for each `Py_SET_TYPE(&T, &Meta)` while the module initialises, also
    # inside a project macro (_ctypes' MOD_ADD_TYPE): T's metatype, set at run time.
    runtime_metatypes: tuple[tuple[str, str], ...] = ()
    # The module object is kept in a file-scope global (`mod = PyModule_Create(...)`): other
    # functions read it as their module (see analyze.find_module.module_global_uses).
    module_var_global: bool = False
    # Statements among those a port deletes that are the whole body of an if/else: they
    # become `{}` instead of disappearing.
    lone_bodies: tuple[Span, ...] = ()
    # `PyMODINIT_FUNC` `#ifdef PY3` `PyInit_x(void)` `#else` `initx(void)` `#endif` with a branch
    # porter cannot rule out: (specifiers, declarator), rewritten apart so the directives stay.
    header_split: tuple[Span, Span] | None = None
    # `#define EXT_INIT_ERROR(module) do { Py_XDECREF(module); return NULL; } while (0)`, every
    # use in init handing it the module (or NULL): (macro, the release in its body). In exec
    # the module is borrowed, so the release goes with the `return NULL`.
    macro_module_releases: tuple[tuple[str, Location], ...] = ()
    # How many statements (and directives) the body holds at its top level.
    statement_count: int = 0
    # `if (W(m) < 0) { Py_DECREF(m); return NULL; }` is all the body does besides creating,
    # checking and returning the module: W, the function that fills it.
    only_worker: str | None = None


@pickled_by_fields
@dataclass(frozen=True, slots=True)
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
    wants: FindModuleWant
    macro: str | None = None  # inside this macro's body
    # For "state-via" and "existing": the statement that stores the call, and for "existing"
    # its declaration initialiser when the call is one (`= PyState_FindModule(&def)`).
    statement: Span | None = None
    # For "state-via": `if (m == NULL) return ...;` statements (dead once state is at hand)
    # and the expressions that turn the local into the state (`GLOBALS(m)`).
    null_checks: tuple[Span, ...] = ()
    state_reads: tuple[Span, ...] = ()
    source: str = "PyState_FindModule()"  # or "the global mod", where init kept the module
    # The lookup itself (`PyState_FindModule(&def)`, or the global's name) when `span` is wider.
    call: Span | None = None
