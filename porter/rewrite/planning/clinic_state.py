"""Which static types clinic output names through its input (`class x "T *" "&Foo_Type"`,
`subclass_of="&Foo_Type"`) can be reached through `clinic_state()` instead, when porter runs the
tree's clinic: their generated uses then leave planning (clinic rewrites them), and the plan
says how `clinic_state()` finds the state in each file."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, replace

from porter.model import ClinicInputName, ExtensionModule, Function, GlobalKind, RoleKind, Span, UseAccess


@dataclass(frozen=True)
class ClinicStateMacro:
    """`#define clinic_state() (...)` around one file's clinic include."""

    file: str  # the file with the clinic input
    include: Span  # its `#include "clinic/<file>.h"`
    reach: str  # how the generated functions reach the state: "type" (`self`), "new" (`type`), "module"
    param: str  # their first parameter


@dataclass(frozen=True)
class ClinicState:
    macros: tuple[ClinicStateMacro, ...] = ()
    inputs: tuple[ClinicInputName, ...] = ()  # the input expressions that become `clinic_state()->...`
    types: frozenset[str] = frozenset()  # the globals they name


NO_CLINIC_STATE = ClinicState()


def plan_clinic_state(module: ExtensionModule) -> tuple[ExtensionModule, ClinicState]:
    """The module as planning sees it (without the generated uses clinic will rewrite), and the
    `clinic_state()` macros that rewrite needs."""
    if not module.regenerate_clinic or not module.clinic_input_names:
        return module, NO_CLINIC_STATE
    fns = {f.name: f for f in module.functions}
    macros: dict[str, ClinicStateMacro] = {}
    inputs: list[ClinicInputName] = []
    handled: set[str] = set()
    for g in module.globals:
        named = [n for n in module.clinic_input_names if n.name == g.name]
        generated = [u for u in g.uses if u.access is not UseAccess.MACRO and module.in_generated(u.file, u.span.start)]
        if g.kind is not GlobalKind.STATIC_TYPE or g.function is not None or not named or not generated:
            continue
        reaches = {_reach(fns.get(u.function or "")) for u in generated}
        files = {n.file for n in named}
        if len(reaches) != 1 or None in reaches or len(files) != 1:
            continue  # one macro per file must serve every generated function that names it
        reach = reaches.pop()
        assert reach is not None
        file = files.pop()
        include = _clinic_include(module, file)
        if include is None or (file in macros and (macros[file].reach, macros[file].param) != reach):
            continue
        macros[file] = ClinicStateMacro(file, include, *reach)
        inputs += named
        handled.add(g.name)
    if not handled:
        return module, NO_CLINIC_STATE
    changed = tuple(replace(g, uses=tuple(u for u in g.uses if u.access is UseAccess.MACRO
                                          or not module.in_generated(u.file, u.span.start)))
                    if g.name in handled and g.function is None else g for g in module.globals)
    return replace(module, globals=changed), ClinicState(tuple(macros.values()), tuple(inputs), frozenset(handled))


def _reach(f: Function | None) -> tuple[str, str] | None:
    """How a generated function reaches module state: (kind, first parameter)."""
    if f is None or not f.params or not f.params[0].name:
        return None
    first = f.params[0].name
    if "tp_new" in f.slots:
        return "new", first
    if f.has_role(RoleKind.TYPE_METHOD, RoleKind.SLOT, RoleKind.GETTER, RoleKind.SETTER):
        return "type", first
    if f.has_role(RoleKind.MODULE_METHOD):
        return "module", first
    return None


def _clinic_include(module: ExtensionModule, file: str) -> Span | None:
    """The file's `#include "clinic/<file>.h"`."""
    wanted = f"clinic/{posixpath.basename(file)}.h"
    return next((i.span for i in module.include_lines if i.file == file and i.name == wanted), None)
