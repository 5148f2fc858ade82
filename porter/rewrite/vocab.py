"""The rewrite layer's vocabulary: how a function reaches state, how safe an edit is, why a
decision went the way it did, and what became of a module."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class AccessKind(StrEnum):
    """How a function reaches module state."""

    EXEC = "exec"  # the exec function: its module parameter
    MODULE = "module"  # a module method or slot: its module argument
    TYPE = "type"  # an instance's method or slot: PyType_GetModuleByDef(Py_TYPE(self), &def)
    NEW = "new"  # tp_new: its type argument
    DEFINING_CLASS = "defining-class"  # a clinic method: PyType_GetModuleState() of its defining_class parameter
    CLASS = "class"  # a METH_CLASS method: the class it is called on, PyObject * as declared
    BINARY = "binary"  # a binary number slot: whichever operand is the module's
    HELPER = "helper"  # a new `state` parameter passed by its callers
    SPLIT = "split"  # a module method also called directly: `<name>_impl(state, ...)` does the work
    CALLBACK = "callback"  # called back during a call that publishes the state in a thread-local
    USER_DATA = "user-data"  # a callback whose user data (a local of its caller) carries the state
    NONE = "none"  # cannot reach it


class Applicability(StrEnum):
    """How an edit may be applied (ruff's fix safety, with clang-tidy's caution for macros)."""

    SAFE = "safe"  # applied by default
    REVIEW = "review"  # applied by default, but a person must check it (a macro body, an unread branch)
    UNSAFE = "unsafe"  # applied only with --unsafe
    MANUAL = "manual"  # never applied: a checklist item for a person

    @property
    def rank(self) -> int:
        return _RANK[self]

    def at_most(self, other: Applicability) -> Applicability:
        """The weaker of the two."""
        return self if self.rank >= other.rank else other


_RANK = {Applicability.SAFE: 0, Applicability.REVIEW: 1, Applicability.UNSAFE: 2, Applicability.MANUAL: 3}


class PortStatus(StrEnum):
    """What a port run made of one module."""

    PORTED = "ported"
    NOTHING_TO_DO = "nothing-to-do"
    FAILED = "failed"


@dataclass(frozen=True)
class Reason:
    """Why a decision went as it did: a stable code (see porter.codes) and the sentence for people."""

    code: str
    message: str
    unsafe_fix: bool = False  # --unsafe would do it anyway (the port then needs review)

    def __str__(self) -> str:
        return self.message
