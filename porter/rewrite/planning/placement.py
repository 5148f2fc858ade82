"""Where the module state block goes: before its first user, or in a header the users share."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from porter import capi
from porter.model import ExtensionModule, Location, Macro, Span, TypeDefinition, all_by_name, shared_index
from porter.rewrite.layout import FileLayout
from porter.rewrite.planning.decide import Decisions
from porter.rewrite.planning.guards import BuildGuards
from porter.rewrite.planning.reach import GlobalKey
from porter.rewrite.vocab import AccessKind, Reason


@dataclass(frozen=True)
class IncludeAddition:
    """A file that must include the header holding the state: after its last top-level #include."""

    file: str
    at: int
    path: str  # as the #include spells it
    anchor: Span  # that last #include


@dataclass(frozen=True)
class Placement:
    file: str
    at: int
    includes: tuple[IncludeAddition, ...] = ()
    new_file: bool = False  # a header porter writes for the state: `<module>_state.h`

    @property
    def shared_header(self) -> bool:
        return self.file.endswith(".h")


def place_state(module: ExtensionModule, d: Decisions, layouts: dict[str, FileLayout],
                moved_types: set[str], clinic_includes: tuple[Location, ...] = ()) -> Placement | Reason:
    """Before the first function that uses state; in a shared header for multi-file modules.
    `clinic_includes`: clinic includes whose generated functions read it through `clinic_state()`."""
    fns = {f.name: f for f in module.functions}
    spots: list[Location] = list(clinic_includes)
    spots += [Location(fns[n].file, fns[n].span) for n, keys in d.needs.items() if keys and n in fns]
    spots += [Location(fns[n].file, fns[n].span) for n in d.helpers if n in fns]
    # Functions that find the module the last exec made call the generated finder.
    spots += [Location(fns[n].file, fns[n].span) for n in (*d.last_module, *d.kept_finders) if n in fns]
    # A check answered through the object's type calls the state block's helper.
    spots += [Location(fns[c.function].file, fns[c.function].span) if c.function in fns else Location(c.file, c.span)
              for c in d.instance_checks]
    # A helper's prototype names the state type too.
    spots += [Location(p.file, p.span) for n in d.helpers if n in fns for p in fns[n].prototypes]
    for name, acc in d.access.items():
        if acc.kind in (AccessKind.TYPE, AccessKind.NEW, AccessKind.CLASS, AccessKind.BINARY,
                        AccessKind.DEFINING_CLASS) and name in fns \
                and name in d.needs:
            spots.append(Location(fns[name].file, fns[name].span))
    exec_name = module.init_body.function if module.init_body else module.init.function
    if exec_name in fns:
        spots.append(Location(fns[exec_name].file, fns[exec_name].span))
    spots += [Location(t.file, t.span) for t in module.static_types if t.name in moved_types]
    # Macros that read `state` need it only where they expand, inside these functions.
    spots = [_outside_generated(module, layouts, s) for s in spots]
    files = {s.file for s in spots}
    # A .c file another one includes is compiled inside that one's unit.
    units = {root for f in files for root in module.unit_roots(f)}
    existing = module.state_struct
    if existing is not None and (len(files) > 1 or existing.file not in files) \
            and all(existing.file in module.translation_unit(u) for u in units) \
            and all(s.span.start >= existing.statement.end for s in spots if s.file == existing.file):
        # Several files, or the module's own state struct in a header: it is where they all
        # see it (and where other declarations may name it), so the accessors go right after
        # it (a header it includes would come before it).
        return Placement(existing.file, layouts[existing.file].line_after(existing.statement.end - 1))
    if len(files) <= 1:
        file = next(iter(files or {module.init.file}))
        starts = [s.span.start for s in spots if s.file == file]
        at = min(starts) if starts else module.init.span.start
        return Placement(file, _line_before(layouts[file], _outside_groups(module, file, at)))
    closures = {f: module.translation_unit(f) - {f} for f in module.files}
    # A unity build: one file includes all the others that use state.
    for root in [module.init.file] + [f for f in module.files if f != module.init.file]:
        if files <= closures[root] | {root}:
            # Right before the first use in the order the compiler reads the unit.
            order = _unit_order(module, root)
            first = min(spots, key=lambda s: order[s.file] + (s.span.start,))
            return Placement(first.file, _line_before(layouts[first.file],
                                                      _outside_groups(module, first.file, first.span.start)))
    # Separate translation units: a header every one of them includes.
    shared = set.intersection(*(set(closures[f]) | {f} for f in units))
    headers = [h for h in module.files if h in shared and h.endswith(".h")
               and _usable_header(module, layouts, h, files)]
    for g in d.movable.values():
        for loc in g.extern_declarations:
            if loc.file in headers:
                return Placement(loc.file, layouts[loc.file].line_start(loc.span.start))
    if headers:
        # The deepest shared header: the one the others include.
        header = min(headers, key=lambda h: len(closures[h]))
        return Placement(header, _end_of_header(module, layouts, header))
    return _header_to_share(module, layouts, units, closures) or _new_header(module, layouts, units) or Reason(
        "no-state-header", "module state is needed in several files that share no header porter can put it "
                           "in (one seen after Python.h, once per file or behind an include guard), and porter "
                           "cannot include a header of its own in each of them after Python.h")


@dataclass(frozen=True)
class MacroUnit:
    """#define lines (or a group of directives that defines them) the state block's fields
    name and its place does not see: they move above the block."""

    file: str
    span: Span
    names: tuple[str, ...]
    guard: str | None = None  # the conditions of the groups around it, which it moves out of


@dataclass(frozen=True)
class LateTypes:
    """Type definitions below the state block that its fields need."""

    hoisted: tuple[TypeDefinition, ...]  # moved up above the block
    vetoes: dict[GlobalKey, Reason]  # globals whose type cannot move up: they stay global
    hoisted_macros: tuple[MacroUnit, ...] = ()  # moved up above the block (before the types)


def late_types(module: ExtensionModule, fields, placement: Placement, layouts,
               header_limited: int | None = None) -> LateTypes:
    """A field's type must be declared before the state struct. A definition that comes after
    the block's place moves up above it when it can (same #if nesting, and nothing it names is
    defined in between); otherwise the global stays global. `header_limited`: the lowest
    Py_LIMITED_API of the units that read the state's header (plan.header_limited_api), whose
    headers declare no C-API type outside it."""
    # The modules of a unity file share their files' definitions and macros: these indexes
    # are built once for all of them (shared_index).
    types = module.type_definitions
    defs = shared_index(types, ("in", placement.file),
                        lambda ds: {d.name: d for d in ds if d.file == placement.file})
    visible = module.translation_unit(placement.file)
    if placement.new_file:
        # Included after each file's own includes: only what a .c file defines is out of sight.
        elsewhere = shared_index(types, "in .c files", lambda ds: {d.name: d for d in ds if not d.file.endswith(".h")})
    else:
        elsewhere = shared_index(types, ("outside", visible),
                                 lambda ds: {d.name: d for d in ds if d.file not in visible})
    at = placement.at
    existing = module.state_struct
    if existing is not None and existing.file == placement.file and existing.statement.end <= at:
        at = existing.statement.start  # the new fields go into the module's own struct, up there
    hoisted: dict[str, TypeDefinition] = {}
    vetoes: dict[GlobalKey, Reason] = {}
    macro_units: dict[tuple[str, int], MacroUnit] = {}
    macro_defs: dict[str, list[Macro]] = shared_index(module.macros, "all by name", all_by_name)
    for f in fields:
        g = f.source
        if g is None:
            continue
        # `#ifdef USE_X` around the global, or `X *p[N_X]`, with USE_X or N_X defined below the
        # state block or in a file its place does not see: the definitions move up, or it stays.
        conditions = " ".join(c for c, _ in f.variants if c) + " " + (f.guard or "")
        unseen = _unseen_macros(macro_defs, conditions + " " + f.decl, placement, visible, at)
        units = _macro_units(module, macro_defs, unseen, placement, visible, at, layouts) if unseen else []
        if units is None:
            vetoes[f.key] = _unseen_macro_reason(module, unseen[0], conditions, placement, layouts)
            continue
        for unit in units:
            macro_units.setdefault((unit.file, unit.span.start), unit)
        outside = [w for w in re.findall(r"\b_?Py[A-Za-z_]\w*", f.decl) if w not in capi.LIMITED_API_TYPES]
        if header_limited is not None and outside:
            vetoes[f.key] = Reason("type-declared-late", f"its declaration names {outside[0]}, which the limited "
                                   f"API ({header_limited:#x}) of a file that reads {placement.file}, where the "
                                   "module state goes, does not declare")
            continue
        if g.kind.is_object_kind:
            continue
        hidden = elsewhere.get(g.c_type)
        if hidden is not None and g.c_type not in defs and not _pointer_to_tag(g.type_text):
            if _movable_to_state(module, hidden, placement, visible):
                hoisted[hidden.name] = hidden
                continue
            vetoes[f.key] = Reason("type-declared-late", f"its type {hidden.name} is defined in {hidden.file}, which "
                                   f"{placement.file} (where the module state goes) does not see")
            continue
        d = defs.get(g.c_type)
        if d is None or d.statement.start < at or _pointer_to_tag(g.type_text):
            continue
        if _hoistable(module, d, at):
            hoisted[d.name] = d
        else:
            vetoes[f.key] = Reason("type-declared-late", f"its type {d.name} is defined at {d.file}:"
                                   f"{layouts[d.file].line(d.statement.start)}, after code that needs module "
                                   "state, and porter cannot move that definition up")
    return LateTypes(tuple(sorted(hoisted.values(), key=lambda d: d.statement.start)), vetoes,
                     tuple(macro_units[k] for k in sorted(macro_units)))


def _unseen_macros(macro_defs: dict[str, list[Macro]], text: str, placement: Placement, visible: frozenset[str],
                   at: int) -> list[str]:
    """The project macros `text` names that the state block's place does not see: defined only
    in files it does not include, or in its own file below it."""
    out = []
    for word in dict.fromkeys(re.findall(r"[A-Za-z_]\w*", text)):
        defs = macro_defs.get(word)
        if defs and not any(_sees(m, placement, visible, at) for m in defs):
            out.append(word)
    return out


def _unseen_macro_reason(module: ExtensionModule, name: str, conditions: str, placement: Placement,
                         layouts) -> Reason:
    m = next(m for m in module.macros if m.name == name)
    if m.file == placement.file:
        where = f"is defined at {m.file}:{layouts[m.file].line(m.span.start)}, after code that needs module state"
    else:
        files = ", ".join(sorted({o.file for o in module.macros if o.name == name}))
        where = f"is defined in {files}, which {placement.file} (where the module state goes) does not see"
    if re.search(rf"\b{re.escape(name)}\b", conditions):
        return Reason("type-declared-late", f"it is declared only when {name} says so, and {name} {where}")
    return Reason("type-declared-late", f"its declaration names {name}, which {where}, and porter cannot move "
                                        "that definition up")


def _sees(m: Macro, placement: Placement, visible: frozenset[str], at: int) -> bool:
    if placement.new_file:
        return m.file.endswith(".h")  # included after each file's own includes
    return m.file in visible and (m.file != placement.file or m.span.start < at)


def _macro_units(module: ExtensionModule, macro_defs: dict[str, list[Macro]], names: list[str],
                 placement: Placement, visible: frozenset[str], at: int, layouts) -> list[MacroUnit] | None:
    """The definition units of `names` (and of the unseen macros their text names, conditions
    included) that can move above the state block, or None when one cannot: each name is
    defined in one unit of one file that brings the state's header in before it, and nowhere else."""
    units: dict[tuple[str, int], MacroUnit] = {}
    guards = BuildGuards(module.build_branches)
    todo = list(names)
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        spots = {(m.file, m.unit) for m in macro_defs[name]}
        if len(spots) != 1:
            return None
        file, span = next(iter(spots))
        if span is None:
            return None
        # From where the block's place sees it, up to where it is defined now.
        since = at if file == placement.file else _brought_in_before(module, placement, file, span.start)
        if since is None or since > span.start:
            return None
        inside = [m for m in module.macros if m.file == file and span.start <= m.span.start < span.end]
        if any(len(macro_defs[m.name]) != sum(o.name == m.name for o in inside) for m in inside):
            return None  # a name it defines is also defined elsewhere
        defined = {m.name for m in inside}
        between = set(re.findall(r"[A-Za-z_]\w*", layouts[file].text[since:span.start].decode("utf-8", "replace")))
        if defined & between:
            return None  # named before it is defined: moving it up would change what that means
        guard = " && ".join(guards.at(file, span.start)) or None
        units[(file, span.start)] = MacroUnit(file, span, tuple(dict.fromkeys(m.name for m in inside)), guard)
        text = layouts[file].text[span.start:span.end].decode("utf-8", "replace")
        todo += [n for n in _unseen_macros(macro_defs, text, placement, visible, at)
                 if not any(m.name == n for m in inside)]
    return [units[k] for k in sorted(units)]


def _brought_in_before(module: ExtensionModule, placement: Placement, file: str, offset: int) -> int | None:
    """Where `file` includes the state's header (or a file that brings it), if before `offset`."""
    early = [span for includer, target, span in module.includes if includer == file
             and placement.file in module.translation_unit(target)]
    early += [a.anchor for a in placement.includes if a.file == file]
    return min((span.end for span in early if span.end <= offset), default=None)


def _movable_to_state(module: ExtensionModule, d: TypeDefinition, placement: Placement,
                      visible: frozenset[str]) -> bool:
    """A type only a .c file defines (kerberos's `typedef union {...} align16;`) moves into the
    header that holds the state, above it: that .c file includes the header before the
    definition, the definition is under no #if, nothing else of the module defines the name,
    and whatever of the module's it names the header sees too."""
    if d.file.endswith(".h") or d.conditions:
        return False
    if sum(o.name == d.name for o in module.type_definitions) > 1:
        return False
    own = {o.name: o.file for o in module.type_definitions} | {m.name: m.file for m in module.macros}
    if any(name != d.name and name in own and own[name] not in visible for name in d.mentions):
        return False
    # The header (or a file that brings it) arrives before the definition in its file.
    state_file = placement.file
    early = [span for includer, target, span in module.includes if includer == d.file
             and state_file in module.translation_unit(target)]
    early += [a.anchor for a in placement.includes if a.file == d.file]
    return any(span.end <= d.statement.start for span in early)


def _pointer_to_tag(type_text: str) -> bool:
    """`struct tag *p`: a pointer to an incomplete struct needs no definition first."""
    return "*" in type_text and any(w in type_text.split() for w in ("struct", "union"))


def _hoistable(module: ExtensionModule, d: TypeDefinition, at: int) -> bool:
    here = {c for c in (loc for loc in _conditions_at(module, d.file, at))}
    if not set(d.conditions) <= here:
        return False
    between_types = {o.name for o in module.type_definitions
                     if o.file == d.file and at <= o.statement.start < d.statement.start}
    between_macros = {m.name for m in module.macros if m.file == d.file and at <= m.span.start < d.statement.start}
    return not ((between_types - {d.name}) & d.mentions) and not (between_macros & d.mentions)


def _conditions_at(module: ExtensionModule, file: str, at: int) -> set[Span]:
    """The #if groups around an offset, read off the type definitions' and includes' facts."""
    spans = {c for d in module.type_definitions if d.file == file for c in d.conditions}
    return {c for c in spans if c.start <= at < c.end}


def _outside_generated(module: ExtensionModule, layouts, spot: Location) -> Location:
    """A place outside Argument Clinic's output for code that must come before `spot`: before the
    `#include` of a generated file, or before the clinic input of a generated block."""
    for g in module.generated:
        if g.file != spot.file or not (g.span.start <= spot.span.start < g.span.end):
            continue
        if g.span.start == 0:  # a whole generated file: where it is included
            inc = next((i for i in module.include_lines if i.name.endswith(posixpath.basename(g.file))
                        and i.file != g.file), None)
            return Location(inc.file, inc.span) if inc is not None else spot
        text = layouts[g.file].text
        opening = text.rfind(b"/*[clinic input]", 0, g.span.start)
        return Location(g.file, Span(opening, opening)) if opening >= 0 else spot
    return spot


def _header_to_share(module: ExtensionModule, layouts, files: set[str], closures) -> Placement | None:
    """The module header most of the files that need state include; the others are made to
    include it too (after their last top-level #include)."""
    headers = [h for h in module.files if h.endswith(".h") and _usable_header(module, layouts, h, files)]
    counts = {h: sum(h in closures[f] for f in files) for h in headers}
    if not counts or max(counts.values()) == 0:
        return None
    header = max(headers, key=lambda h: (counts[h], -len(closures[h])))
    additions = []
    for f in sorted(files):
        if header in closures[f] or f == header:
            continue
        anchors = [inc for inc in module.include_lines if inc.file == f and inc.top_level]
        if not anchors:
            return None
        last = max(anchors, key=lambda inc: inc.span.start)
        path = posixpath.relpath(header, posixpath.dirname(f) or ".")
        additions.append(IncludeAddition(f, layouts[f].line_after(last.span.end - 1), path, last.span))
    return Placement(header, _end_of_header(module, layouts, header), tuple(additions))


def _new_header(module: ExtensionModule, layouts, files: set[str]) -> Placement | None:
    """A header of porter's own next to the init function's file, included by every file that
    needs the state right after its last top-level #include (which must come after Python.h)."""
    folder = posixpath.dirname(module.init.file)
    stem = re.sub(r"\W", "_", module.name.lstrip("_")) or "module"
    header = posixpath.join(folder, f"{stem}_state.h")
    taken = set(module.files) | set(layouts) | {target for _, target, _ in module.includes}
    n = 2
    while header in taken or any(posixpath.basename(header) == inc.name for inc in module.include_lines):
        header, n = posixpath.join(folder, f"{stem}_state{n}.h"), n + 1
    additions = []
    for f in sorted(files):
        # A file whose includes all sit in one `#ifdef __APPLE__` gets it there, after them.
        anchors = [inc for inc in module.include_lines if inc.file == f and inc.top_level] or \
            [inc for inc in module.include_lines if inc.file == f]
        if not anchors:
            return None
        last = max(anchors, key=lambda inc: inc.span.start)
        if not _sees_python_h(module, f, last.span.end, set()):
            return None
        path = posixpath.relpath(header, posixpath.dirname(f) or ".")
        additions.append(IncludeAddition(f, layouts[f].line_after(last.span.end - 1), path, last.span))
    return Placement(header, 0, tuple(additions), new_file=True)


def _unit_order(module: ExtensionModule, root: str) -> dict[str, tuple[int, ...]]:
    """Each file's place in root's translation unit: the #include offsets that lead to it."""
    order: dict[str, tuple[int, ...]] = {root: ()}
    stack = [root]
    while stack:
        file = stack.pop()
        for inc, target, span in sorted(module.includes, key=lambda i: i[2].start):
            if inc == file and target not in order:
                order[target] = order[file] + (span.start,)
                stack.append(target)
    return order


def _usable_header(module: ExtensionModule, layouts, header: str, files: set[str]) -> bool:
    """Whether a header can hold the state block: it sits next to one of `files` (a bundled
    library's header is compiled into code porter does not see), no file sees it twice (or it
    is guarded), and every file sees Python.h before it."""
    if posixpath.dirname(header) not in {posixpath.dirname(f) for f in files} or header in module.public_headers:
        return False
    if header not in dict(module.guard_ends) and _included_twice(module, header):
        return False
    return _sees_python_h(module, header, len(layouts[header].text), set())


def _included_twice(module: ExtensionModule, header: str) -> bool:
    by_file: dict[str, list[str]] = {}
    for inc, target, _ in module.includes:
        by_file.setdefault(inc, []).append(target)

    def count(file: str, depth: int = 0) -> int:
        if depth > 20:
            return 0
        return sum((t == header) + count(t, depth + 1) for t in by_file.get(file, ()))

    return any(count(f) > 1 for f in module.files if not f.endswith(".h"))


def _sees_python_h(module: ExtensionModule, file: str, offset: int, seen: set[str]) -> bool:
    """Whether Python.h is included before `offset` in `file`, wherever `file` is included."""
    if file in seen:
        return True
    seen = seen | {file}
    targets = {span.start: target for inc, target, span in module.includes if inc == file}
    for inc in sorted((i for i in module.include_lines if i.file == file), key=lambda i: i.span.start):
        if inc.span.start >= offset:
            break
        if inc.name.rsplit("/", 1)[-1] == "Python.h":
            return True
        target = targets.get(inc.span.start)
        if target is not None and _sees_python_h(module, target, 1 << 62, seen):
            return True
    includers = [(inc, span) for inc, target, span in module.includes if target == file]
    return bool(includers) and all(_sees_python_h(module, inc, span.start, seen) for inc, span in includers)


def _end_of_header(module: ExtensionModule, layouts, header: str) -> int:
    """Before the include guard's closing #endif (or at the end with #pragma once)."""
    end = dict(module.guard_ends).get(header)
    return end if end is not None else len(layouts[header].text)


def _outside_groups(module: ExtensionModule, file: str, offset: int) -> int:
    """Before the #if group around `offset`: the state block belongs to every configuration
    (`#ifdef PY3K` `static PyTypeObject T = ...` `#else` ... must not hide it)."""
    for g in module.top_level_groups:
        if g.file == file and g.span.start < offset < g.span.end:
            return g.span.start
    return offset


def _line_before(layout: FileLayout, offset: int) -> int:
    """The start of the line of `offset`, above a comment that documents what is there."""
    return layout.line_start(layout.before_leading_comment(offset))


def place_callback_state(module: ExtensionModule, d: Decisions, layouts) -> Location | Reason:
    """The one file with the callbacks and the calls that make them, before the first of them:
    a `static` thread-local in a shared header would be one per file."""
    callbacks = [f for f in module.functions if d.needs.get(f.name)
                 and (acc := d.access.get(f.name)) is not None and acc.kind is AccessKind.CALLBACK]
    spots = [(f.file, f.span.start) for f in callbacks]
    spots += [(site.statement.file, site.statement.span.start) for f in callbacks for site in f.sync_callback_sites]
    files = {file for file, _ in spots}
    if len(files) != 1:
        return Reason("callbacks-across-files", "callbacks that need module state and the calls that make them "
                                                f"are in different files ({', '.join(sorted(files))}): porter "
                                                "cannot give them one thread-local")
    file = files.pop()
    first = min(at for _, at in spots)
    # Before the function holding the first spot (a call site sits inside its caller).
    owner = next((f for f in module.functions if f.file == file and f.span.start <= first < f.span.end), None)
    at = owner.span.start if owner is not None else first
    return Location(file, Span(_line_before(layouts[file], at), _line_before(layouts[file], at)))
