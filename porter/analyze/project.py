"""From parsed files to extension modules: grouping files and running every collector."""

from __future__ import annotations

import dataclasses
import posixpath
import re
import traceback
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from porter.analyze import ctree
from porter.analyze.added_functions import collect_added_tables
from porter.analyze.build_config import BuildConfig, read_build_config
from porter.analyze.callback_slots import collect_callback_slots
from porter.analyze.clinic_input import clinic_functions
from porter.analyze.find_module import collect_find_module_uses, module_global_uses
from porter.analyze.findings import collect_findings
from porter.analyze.function_keys import FunctionKeys
from porter.analyze.functions import (
    assign_roles,
    collect_functions,
    collect_tables,
    exclusive_definitions,
    file_roles_of,
    init_phase,
    spans_by_file,
)
from porter.analyze.getset_closures import collect_getset_closures
from porter.analyze.globals import collect_globals
from porter.analyze.index import FileIndex, build_index
from porter.analyze.init_body import init_field_assignments, read_init_body
from porter.analyze.initializers import sizeof_operand
from porter.analyze.instance_checks import collect_instance_checks
from porter.analyze.macro_functions import collect_macro_functions
from porter.analyze.macros import MacroTable, expand, names_in, split_args
from porter.analyze.modules import find_init_functions, find_module_defs, init_style, pasted_module
from porter.analyze.ownership import Ownership, owned, ownership
from porter.analyze.pacing_counters import collect_pacing_counters
from porter.analyze.python_side import collect_dict_reads, collect_getattr_reads
from porter.analyze.spec_types import collect_spec_helpers, collect_spec_makers, collect_spec_types
from porter.analyze.types import collect_static_types, collect_substruct_tables
from porter.lexer import names_in_code
from porter.model import (
    NO_COMPANIONS,
    BuildBranch,
    Call,
    ClinicInputName,
    Companions,
    ExtensionModule,
    FileFacts,
    FileProblem,
    Finding,
    FindModuleUse,
    Function,
    IncludeLine,
    InitFunction,
    InitStyle,
    InstanceStruct,
    Location,
    MacroUse,
    Param,
    Role,
    RoleKind,
    Severity,
    SharedFacts,
    Span,
    StateStructDefinition,
    StructField,
    TypeDefinition,
    function_key,
    shared_index,
)
from porter.parse import Node, Source, SourceText
from porter.preproc import Preprocessed, branch_expression
from porter.spans import SpanSet


def internal_error(what: str, error: Exception) -> str:
    """A one-line description of a porter bug, for a problem row instead of a traceback."""
    tb = traceback.extract_tb(error.__traceback__) if error.__traceback__ else []
    at = f" at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else ""
    return f"internal error {what} ({type(error).__name__}: {error}{at}); please report it"


@dataclass(frozen=True)
class Analysis:
    modules: tuple[ExtensionModule, ...]
    files: tuple[FileFacts, ...]
    problems: tuple[FileProblem, ...]
    sources: dict[str, Source] | dict[str, SourceText]  # a SourceText once the trees are gone
    build_defines: tuple[tuple[str, str], ...] = ()  # the -D macros the sources were read with
    # Whether the modules hold the facts only a port reads (a scan leaves them out): a port of
    # an analysis without them would silently do less.
    port_facts: bool = True


def analyze(sources: list[Source], problems: Sequence[FileProblem] = (),
            companions: Companions = NO_COMPANIONS, build: BuildConfig | None = None) -> Analysis:
    """Facts for every module in `sources`, with what their project says around them."""
    context = ModuleContext.of(companions, build)
    indexes = {s.path: build_index(s) for s in sources}
    by_name = paths_by_basename(indexes)
    includes = {path: _resolve_includes(path, idx, indexes, by_name) for path, idx in indexes.items()}
    closures = {path: _closure(path, includes) for path in indexes}
    build = context.build
    tus = {path: tu_macros(path, closures, indexes) for path in indexes}
    inits = {path: find_init_functions(idx, tus[path], _build_names(build, path)) for path, idx in indexes.items()}
    roots = [path for path in indexes if inits[path]]
    found_problems = list(problems)
    found_problems += _unread_inits({p: idx.src.pre for p, idx in indexes.items()},
                                    {i.name for found in inits.values() for i in found})
    found_problems += _unread_init_headers(indexes, tus, [p for p in indexes if not inits[p]], build)
    linked = _link_files(indexes, closures, roots, build)
    modules = []
    for root in roots:
        files = module_files(root, closures, linked)
        found, failed = analyze_root(root, inits[root], [indexes[p] for p in files])
        modules += [context.finish(m) for m in found]
        found_problems += failed
    modules.sort(key=lambda m: (m.init.file, m.init.span.start))
    found_problems += _silent_inits({p: idx.src for p, idx in indexes.items()}, closures, modules, found_problems)
    facts = tuple(file_facts(idx.src, includes[path]) for path, idx in sorted(indexes.items()))
    return Analysis(tuple(modules), facts, tuple(found_problems), {s.path: s for s in sources}, context.build.defines)


def tu_macros(path: str, closures: Mapping[str, list[str]], indexes: Mapping[str, FileIndex]) -> MacroTable:
    """The macros a file's translation unit sees: those of the file and the headers it includes
    (those porter could parse)."""
    return MacroTable([m for p in closures[path] if p in indexes for m in indexes[p].macros])


def analyze_root(root: str, inits: list[InitFunction], indexes: list[FileIndex], port_facts: bool = True) -> tuple[
        list[ExtensionModule], list[FileProblem]]:
    """The modules whose init functions are in `root`, from its files' indexes (the root's
    first), not yet finished by `ModuleContext.finish`; a module porter fails on is a problem.
    `port_facts`: also read the facts only a port needs (see `_module`)."""
    macros = MacroTable([m for idx in indexes for m in idx.macros])
    modules, problems = [], []
    shared: dict = {}  # what the modules of these files have in common, worked out once
    owners = ownership(indexes, inits)
    for init in inits:
        try:
            modules.append(_module(init, indexes, macros, shared, owners.get(init.function), port_facts))
        except Exception as e:  # one module porter cannot read must not stop the run
            problems.append(FileProblem(root, internal_error(f"analysing {init.name}", e)))
    return modules, problems


def file_facts(src: Source, includes: list[str]) -> FileFacts:
    return FileFacts(
        path=src.path, error_spans=src.error_spans, masked_conditionals=len(src.masked_conditionals),
        macro_masks=len(src.macro_masks), lines=src.text.count(b"\n") + 1, includes=tuple(includes),
    )


@dataclass
class ModuleContext:
    """What the project around the sources says about every module: its Python files, its
    build, the sources outside the module that include its headers."""

    dict_reads: tuple
    module_reads: tuple
    build: BuildConfig
    limited: list[Finding]
    shared: set[str]
    outside_names: _OutsideNames
    cpython_version: tuple[int, int] | None = None
    cpython_root: str | None = None

    @classmethod
    def of(cls, companions: Companions, build: BuildConfig | None) -> ModuleContext:
        python_files, outside_files = list(companions.python_files), list(companions.outside_files)
        build = build or read_build_config(list(companions.build_files))
        limited = []
        level = build.limited_api_version
        if build.limited_api is not None and level is not None and level < 0x030C0000:
            where = build.limited_api
            said = f"{where.file}:{where.line}" if where.line else "-D on porter's command line"
            limited.append(Finding(
                "limited-api", Severity.RISK, where.file, Span(0, 0),
                f"{said} builds with Py_LIMITED_API={where.value}: below 0x030C0000 the "
                "headers do not name Py_mod_multiple_interpreters, so the port fills that slot in at import "
                "when CPython 3.12+ runs it (by its stable-ABI number); raising the limited API to "
                "0x030C0000 would let the slot be written plainly"))
        return cls(tuple(collect_dict_reads(python_files)), tuple(collect_getattr_reads(python_files, "__module__")),
                   build, limited, _included_by(outside_files), _OutsideNames(outside_files),
                   companions.cpython_version, companions.cpython_root)

    def finish(self, module: ExtensionModule) -> ExtensionModule:
        return dataclasses.replace(
            module, python_dict_reads=self.dict_reads, build=self.build.with_given(module.init.implied_defines, ()),
            cpython_version=self.cpython_version, cpython_root=self.cpython_root,
            public_headers=_public_headers(module, self.build),
            python_module_reads=self.module_reads,
            outside_uses=_outside_uses(module, self.outside_names),
            macros_fully_seen=module.macros_fully_seen - self._defined_in_shared_headers(module),
            findings=module.findings + tuple(self.limited))


    def _defined_in_shared_headers(self, module: ExtensionModule) -> frozenset[str]:
        """The macros some definition of which is in a header other packages' code includes too
        (`shared`): their uses there are not seen. A set per set of files, not a search of every
        macro per macro (cubic in a unity file of many macros)."""
        if not self.shared:
            return frozenset()
        shared = frozenset(self.shared)
        return shared_index(module.macros, ("defined in", shared), lambda macros: frozenset(
            m.name for m in macros if posixpath.basename(m.file) in shared))


def _module(init: InitFunction, indexes: list[FileIndex], macros: MacroTable,
            shared: dict | None = None, owner: Ownership | None = None, port_facts: bool = True) -> ExtensionModule:
    """One module's facts. `shared` keeps what depends only on the files between the modules
    of one set of files: a unity file with many inits is read once, not once per init.
    `owner` says what the module owns when the files define several init functions.

    Without `port_facts`, what only a port reads (the init body it rewrites, the file layout it
    places code in, a dealloc's frees, where state can be reached from, ...) is left at its
    empty default: what a scan reports does not depend on it."""
    shared = {} if shared is None else shared

    def once(key: str, compute):
        if key not in shared:
            shared[key] = compute()
        return shared[key]

    defs = once("defs", lambda: [d for idx in indexes for d in find_module_defs(idx, macros)])
    # A forward declaration names the definition too: prefer the one with an initialiser.
    named = sorted((d for d in defs if d.name == init.def_name), key=lambda d: not d.fields)
    definition = named[0] if named else None
    if definition is None and len(defs) == 1 and init.def_name is None:
        definition = defs[0]
    all_types = once("types", lambda: collect_static_types(indexes, lambda name: expand(macros, name, None)))
    types = owned(all_types, lambda t: t.name, owner, shared, "types by name")
    tables = once("tables", lambda: collect_tables(indexes, macros))
    init_index = next(idx for idx in indexes if idx.path == init.file)
    module_init, style = init, init_style(init)
    if style is InitStyle.MULTI_PHASE:
        # A module multi-phase already: its exec slot's function is where it fills itself.
        exec_name = _exec_slot_function(definition, tables)
        exec_index = next((idx for idx in indexes if exec_name in idx.functions), None) if exec_name else None
        if exec_index is not None:
            init_index, init = exec_index, dataclasses.replace(init, worker=exec_name, create_calls=())
    spec_types = [s for s in once("spec types", lambda: collect_spec_types(indexes)) if s.spec in tables.specs]
    spec_helpers = [dataclasses.replace(h, specs=tuple(x for x in h.specs if x in tables.specs))
                    for h in once("spec helpers", lambda: collect_spec_helpers(indexes))]
    spec_makers = [m for m in once("spec makers", lambda: collect_spec_makers(indexes)) if m.spec in tables.specs]
    # A type a helper makes from a spec has no global: the spec's name stands for it.
    made_from_specs = {s.global_name: s.spec for s in spec_types} | {x: x for h in spec_helpers for x in h.specs} \
        | {m.spec: m.spec for m in spec_makers}
    type_names = {t.name for t in types}
    def_spans = once("def spans", lambda: [Location(d.file, d.initializer) for d in defs if d.initializer])
    spelling = once("spelling", lambda: frozenset(m.name for m in macros.all()
                                                  if m.params and re.search(r"#", m.body_text)))
    module_includes = once("includes", lambda: _module_includes(indexes))
    keys = once("function keys", lambda: FunctionKeys.of(indexes, module_includes))
    added = once("added tables", lambda: collect_added_tables(indexes, tables, keys.in_file))
    generated = once("generated", lambda: tuple(g for idx in indexes for g in clinic_output(idx.path, idx.src.text)))

    file_roles = once("file roles", lambda: file_roles_of(tables, made_from_specs, keys.key))
    # What the module reads roles of: the functions it owns, and those project macros define
    # (every module of the files has those: _macro_defined).
    wanted = None if owner is None else list(dict.fromkeys(
        [n for n in owner.mine if n in file_roles.names] + file_roles.unreached(owner.reached)
        + [mf.name for mf in once("macro functions", lambda: collect_macro_functions(indexes, macros))]))

    def settle(assignments) -> list[Function]:
        """Function facts, with `Type.tp_dealloc = f;` statements of init (`assignments`) giving
        f a slot role, not a callback's."""
        assigned: dict[str, list[tuple[str, str]]] = {}
        for a in assignments:
            assigned.setdefault(a.target, []).append((a.field, a.value))
        roles, flags, owners = assign_roles(init.function, definition, types, tables, assigned, file_roles,
                                            added.module_tables, keys.key, wanted)
        # The files' initialisers, read once for every module (every type's: a function named in
        # the type of another module of a unity file is still a slot, not an address taken), and
        # the statements of init that fill types.
        initializers = once("initializers", lambda: spans_by_file(
            tables.spans + [Location(t.file, t.initializer) for t in all_types if t.initializer]
            + _substruct_initializers(indexes) + def_spans))
        filled = spans_by_file(Location(a.file or init.file, a.statement)
                               for a in assignments if a.target in type_names)
        found = collect_functions(indexes, roles, (initializers, filled), owners, flags, spelling, shared,
                                  keys, owner, port_facts)
        found += _macro_defined(indexes, macros, roles, owners, flags, {f.name for f in found}, shared)
        return _clinic_impls(found, generated)

    early_assignments = init_field_assignments(init_index, init)  # slots that init fills at run time
    functions = settle(early_assignments)
    instance_structs = once("instance structs", lambda: SharedFacts(collect_instance_structs(indexes)))
    # Structs that start with PyObject_HEAD: their pointers are objects too.
    object_structs = once("object structs", lambda: {s.name for s in instance_structs})
    init_names = {init.function} | ({init.worker} if init.worker else set())
    macro_uses = once("macro uses", lambda: tuple(_macro_uses(indexes, macros, _included_in_functions(
        indexes, module_includes))))
    file_conditions = once("file conditions", lambda: _file_conditions(indexes, module_includes))
    globals_ = collect_globals(indexes, functions, macros, init_names, object_structs, macro_uses,
                               file_conditions, shared, keys, owner, port_facts)
    findings = [dataclasses.replace(f, function=keys.in_file(f.file, f.function))
                for f in collect_findings(indexes, functions, globals_, types, shared)]
    phase = _init_phase_nodes(indexes, functions, init_names, shared.get("call graph"))
    init_body = read_init_body(init_index, init, macros, phase) if port_facts else None
    assignments = init_body.field_assignments if init_body is not None else init_field_assignments(
        init_index, init, phase)
    if any(a.target in type_names and a not in early_assignments for a in assignments):
        # A helper only init calls fills a type too (mercurial's dirs_module_init() sets
        # `dirsType.tp_init = (initproc)dirs_init;`): its functions are that type's slots.
        functions = settle(assignments)
    if init_body is not None and style is InitStyle.MULTI_PHASE:
        exec_fn = next((f for f in functions if f.name == init_body.function), None)
        param = exec_fn.params[0].name if exec_fn is not None and exec_fn.params else None
        init_body = dataclasses.replace(init_body, module_var=param, returns=(), problems=())
    module = ExtensionModule(
        name=init.name[len("PyInit_"):], files=once("files", lambda: tuple(idx.path for idx in indexes)),
        init=module_init, init_style=style, definition=definition, static_types=tuple(types),
        globals=tuple(globals_), functions=tuple(functions), findings=tuple(findings),
        module_slots=_module_slots(definition, globals_),
    )
    if not port_facts:
        return module

    macro_uses = once("macro uses by key", lambda: tuple(
        dataclasses.replace(u, function=keys.in_file(u.file, u.function)) for u in macro_uses))
    # Definitions porter cannot tell apart (one per #if branch of one file): one ambiguous name.
    twice = once("defined twice", lambda: _defined_twice(indexes) - keys.names)
    module = dataclasses.replace(
        module,
        ambiguous_functions=twice,
        called_from_ambiguous=once("called from ambiguous", lambda: _called_from(indexes, twice)),
        macros=once("macros", lambda: SharedFacts(m for idx in indexes for m in idx.macros)), init_body=init_body,
        macro_uses=macro_uses,
        find_module_uses=_find_module_uses(indexes, macros, macro_uses, keys, init, definition, init_body),
        object_structs=once("object struct facts", lambda: tuple(sorted(
            {s.name: any(f.is_object for f in s.fields) for s in instance_structs}.items()))),
        instance_structs=instance_structs,
        state_struct=_state_struct(indexes, definition),
        spec_types=tuple(spec_types),
        null_self_sites=added.null_self_sites,
        instance_checks=once("instance checks", lambda: collect_instance_checks(indexes, macros, keys.in_file)),
        callback_slots=once("callback slots", lambda: collect_callback_slots(indexes, macros, keys.in_file)),
        pacing_counters=collect_pacing_counters(indexes, list(module.globals)),
        **dict(zip(("getset_closures", "closure_reads"), once(
            "getset closures", lambda: collect_getset_closures(indexes, macros, keys.in_file)), strict=True)),
        spec_helpers=tuple(dataclasses.replace(h, function=keys.in_file(h.file, h.function),
                                               callers=tuple(keys.in_file(h.file, c) for c in h.callers))
                           for h in spec_helpers),
        spec_makers=tuple(dataclasses.replace(m, function=keys.in_file(m.file, m.function)) for m in spec_makers),
        file_conditions=once("file condition facts", lambda: tuple(sorted(file_conditions.items()))),
        definition_forwards=tuple(Location(d.file, d.span) for d in defs
                                  if definition is not None and d.name == definition.name
                                  and d.initializer is None and d.function is None),
        includes=once("include facts", lambda: tuple(module_includes)),
        **_files_facts(indexes, macros, macro_uses, generated, once),
    )
    if definition is not None:
        unit = {f for root in module.unit_roots(definition.file) for f in module.translation_unit(root)}
        module = dataclasses.replace(module, definition_shadowed_in=tuple(
            idx.path for idx in indexes if idx.path not in unit and _defines_at_file_scope(idx, definition.name)))
    return module


def _defines_at_file_scope(idx: FileIndex, name: str) -> bool:
    """Whether a file defines a variable or function `name` of its own (not `extern`)."""
    if name in idx.functions:
        return True
    return any(ctree.read_declarator(d).name == name for decl in idx.file_declarations
               if not {"extern", "typedef"} & ctree.storage(decl) for d in ctree.declarators(decl))


def _find_module_uses(indexes: list[FileIndex], macros: MacroTable, macro_uses: tuple, keys: FunctionKeys,
                      init: InitFunction, definition, init_body) -> tuple[FindModuleUse, ...]:
    """PyState_FindModule and the module's own global module variable, read where they are used."""
    worker = init.worker or init.function
    found = collect_find_module_uses(indexes, definition.name if definition else None, macros, worker)
    if init_body is not None and init_body.module_var_global:
        found += module_global_uses(indexes, init_body.module_var or "", macros, worker)
    return tuple(dataclasses.replace(u, function=keys.in_file(u.file, u.function)) for u in found
                 if u.macro is None or _macro_is_used(u.macro, macro_uses, indexes))


def _files_facts(indexes: list[FileIndex], macros: MacroTable, macro_uses: tuple, generated: tuple[Location, ...],
                 once) -> dict[str, Any]:
    """The facts of a module that depend only on its files (what a unity file's modules share,
    read once through `once`): layout, #if branches, macros, names in use."""
    return dict(
        substruct_tables=once("substruct tables", lambda: tuple(collect_substruct_tables(indexes))),
        generated=generated,
        clinic_input_names=once("clinic input names", lambda: tuple(
            n for idx in indexes for n in clinic_input_names(idx.path, idx.src.text))) if generated else (),
        clinic_functions=once("clinic functions", lambda: tuple(
            c for idx in indexes for c in clinic_functions(idx.path, idx.src.text))) if generated else (),
        type_definitions=once("type definitions", lambda: SharedFacts(
            d for idx in indexes for d in _type_definitions(idx))),
        include_lines=once("include lines", lambda: tuple(
            IncludeLine(idx.path, inc.name, inc.span, not idx.src.pre.enclosing(inc.span.start))
            for idx in indexes for inc in idx.src.pre.includes)),
        guard_ends=once("guard ends", lambda: tuple((idx.path, end) for idx in indexes if idx.path.endswith(".h")
                                                    for end in [guard_end(idx.src)] if end is not None)),
        unread_branches=once("unread branches", lambda: tuple(
            Location(idx.path, span) for idx in indexes for span in idx.src.dropped_live())),
        build_branches=once("build branches", lambda: tuple(
            BuildBranch(idx.path, b.body, branch_expression(c, i)) for idx in indexes
            for c in idx.src.pre.conditionals for i, b in enumerate(c.branches) if not (b.fixed or b.dead))),
        top_level_groups=once("top-level groups", lambda: tuple(
            Location(idx.path, span) for idx in indexes for span in _top_level_groups(idx.src))),
        macros_fully_seen=once("macros fully seen", lambda: _macros_fully_seen(indexes, macros, macro_uses)),
        # Type names too (`typedef struct {...} ctypes_state;` is a type_identifier, not an
        # identifier): a new state struct must not take one.
        names_in_use=once("names in use", lambda: frozenset(n for idx in indexes for n in idx.identifiers)
                          | frozenset(m.name for idx in indexes for m in idx.macros)
                          | frozenset(n for idx in indexes for n in (
                              idx.src.code_names if idx.src.code_names is not None else names_in_code(idx.src.text)))),
    )

def _type_definitions(idx: FileIndex) -> list[TypeDefinition]:
    """File-scope typedefs and tagged struct/union/enum bodies, with the #if groups around them."""
    from porter.lexer import identifiers

    out: list[TypeDefinition] = []
    text = idx.src.text
    for node in ctree.file_scope(idx.src.root):
        names: list[str] = []
        if node.type == "type_definition":
            names = [d.text.decode() for d in node.children_by_field_name("declarator") if d.type == "type_identifier"]
            t = node.child_by_field_name("type")
        elif node.type in ("declaration", "struct_specifier", "union_specifier", "enum_specifier"):
            t = node.child_by_field_name("type") if node.type == "declaration" else node
        else:
            continue
        if t is not None and t.type in ("struct_specifier", "union_specifier", "enum_specifier") \
                and t.child_by_field_name("body") is not None and t.child_by_field_name("name") is not None:
            names.append(t.child_by_field_name("name").text.decode())
        if not names:
            continue
        statement = ctree.span(node)
        if node.type != "type_definition" and not text[statement.end - 1:statement.end] == b";":
            after = text[statement.end:statement.end + 64]
            stripped = after.lstrip()
            if stripped.startswith(b";"):
                statement = Span(statement.start, statement.end + len(after) - len(stripped) + 1)
        conditions = tuple(c.span for c in idx.src.pre.enclosing(statement.start))
        mentions = frozenset(t.text.decode("utf-8", "replace")
                             for t in identifiers(text, statement.start, statement.end))
        out.extend(TypeDefinition(name, idx.path, statement, conditions, mentions) for name in names)
    return out


_CLINIC_INPUT = b"/*[clinic input]"
_QUOTED_ADDRESS = re.compile(rb'"\s*&\s*([A-Za-z_][A-Za-z0-9_]*)\s*"')


def clinic_input_names(path: str, text: bytes) -> list[ClinicInputName]:
    """Every `"&name"` in the file's clinic input blocks (class directives, `subclass_of=`)."""
    out = []
    at = 0
    while (start := text.find(_CLINIC_INPUT, at)) >= 0:
        end = text.find(_CLINIC_START, start)
        if end < 0:
            break
        for m in _QUOTED_ADDRESS.finditer(text, start, end):
            out.append(ClinicInputName(m.group(1).decode(), path, Span(m.start(), m.end()),
                                       text.count(b"\n", 0, m.start()) + 1, m.group().decode()))
        at = end
    return out


_CLINIC_START = b"[clinic start generated code]*/"
_CLINIC_END = re.compile(rb"/\*\[clinic end generated code[^\]]*\]\*/")


def clinic_output(path: str, text: bytes) -> list[Location]:
    """Argument Clinic's output in a file: all of a `clinic/*.c.h`, else each generated block."""
    if "/clinic/" in f"/{path}" and path.endswith(".c.h"):
        return [Location(path, Span(0, len(text)))]
    out = []
    at = 0
    while (start := text.find(_CLINIC_START, at)) >= 0:
        end = _CLINIC_END.search(text, start)
        if end is None:
            break
        out.append(Location(path, Span(start + len(_CLINIC_START), end.end())))
        at = end.end()
    return out


def _clinic_impls(functions: list[Function], generated: tuple[Location, ...]) -> list[Function]:
    """A clinic `_impl` (its header is generated) plays the part of the generated wrapper that
    calls it: the method of the module or type, reaching state from its own first parameter."""
    if not generated:
        return functions
    by_file: dict[str, list[Span]] = {}
    for g in generated:
        by_file.setdefault(g.file, []).append(g.span)
    spans = {file: SpanSet(found) for file, found in by_file.items()}

    def generated_at(file: str, offset: int) -> bool:
        return file in spans and spans[file].covers(offset)

    callers: dict[str, list[Function]] = {}
    for f in functions:
        for c in f.calls:
            callers.setdefault(c.callee, []).append(f)
    out = []
    for f in functions:
        if not (f.only_helper and generated_at(f.file, f.header.start)):
            out.append(f)
            continue
        wrappers = [c for c in callers.get(f.name, []) if generated_at(c.file, c.span.start)]
        if wrappers:
            roles = tuple(dict.fromkeys(r for w in wrappers for r in w.roles if r.kind is not RoleKind.HELPER))
            if roles:
                types = tuple(dict.fromkeys(t for w in wrappers for t in w.types))
                f = dataclasses.replace(f, roles=roles, types=types, flags=wrappers[0].flags)
        out.append(f)
    return out


def _exec_slot_function(definition, tables) -> str | None:
    """The function the definition's m_slots table gives Py_mod_exec."""
    from porter.analyze.initializers import is_null, referenced_name

    slots = definition.field("m_slots") if definition is not None else None
    if slots is None or is_null(slots.text):
        return None
    rows = tables.slot_tables.get(referenced_name(slots.text) or "", [])
    return next((fn for slot, fn in rows if slot == "Py_mod_exec"), None)


def _module_slots(definition, globals_) -> tuple[tuple[str, str], ...]:
    """(slot, value) rows of the table the definition's m_slots names."""
    from porter.analyze.functions import split_braced
    from porter.analyze.initializers import is_null, referenced_name

    slots = definition.field("m_slots") if definition is not None else None
    if slots is None or is_null(slots.text):
        return ()
    name = referenced_name(slots.text)
    table = next((g for g in globals_ if g.name == name and g.function in (None, definition.function)), None)
    if table is None or table.initializer is None:
        return ()
    # Rows in every #if branch count: `{Py_mod_gil, ...}` is usually guarded by the version.
    rows = []
    for m in re.finditer(r"\{[^{}]*\}", table.initializer_text):
        values = split_braced(m.group(0))
        if len(values) >= 2 and not is_null(values[0]):
            rows.append((values[0].strip(), values[1].strip()))
    return tuple(rows)


def _defined_twice(indexes: list[FileIndex]) -> frozenset[str]:
    """Function names with more than one definition among the module's files (two `static`
    helpers of one name in two files, or one per #if branch)."""
    from collections import Counter

    # A file's definitions in exclusive #if branches are one function (Function.alternatives).
    counts = Counter(name for idx in indexes for name, nodes in idx.functions.items()
                     for _ in (nodes[:1] if len(nodes) > 1 and exclusive_definitions(idx, nodes) else nodes))
    return frozenset(name for name, n in counts.items() if n > 1)


def _called_from(indexes: list[FileIndex], names: frozenset[str]) -> frozenset[str]:
    """What the definitions of `names` call (every definition, not only the first)."""
    out = set()
    for idx in indexes:
        starts = idx.call_starts
        for name in names:
            for fn in idx.functions.get(name, ()):
                # The calls inside a definition are a slice of the file's calls, in order.
                out |= {c for c, _ in idx.calls[bisect_left(starts, fn.start_byte):bisect_left(starts, fn.end_byte)]}
    return frozenset(out)


def _top_level_groups(src: Source) -> list[Span]:
    """#if groups inside no other (an include guard does not count), the guard excluded."""
    end = guard_end(src) if src.path.endswith(".h") else None
    groups = [c.span for c in src.conditionals if end is None or c.endif.start != end]
    # In the order of their starts (no two start together): a group is inside another exactly
    # when one before it ends at or after its end.
    out, reach = [], -1
    for g in groups:
        if reach < g.end:
            out.append(g)
        reach = max(reach, g.end)
    return out


def guard_end(src: Source) -> int | None:
    """Where a header's guarded part ends: its guard's `#endif`, or the end of a header with
    `#pragma once`; None when it has neither (a second include would define things twice)."""
    text = src.text
    if _PRAGMA_ONCE.search(text):
        return len(text)
    # Only a group that starts where the file's first code does can be the guard.
    lead = _BLANK.match(text).end()  # type: ignore[union-attr]  # matches ""
    for cond in src.conditionals:
        if cond.span.start != lead:
            continue
        first = cond.branches[0]
        if first.kind == "ifndef" and len(cond.branches) == 1 \
                and _BLANK.fullmatch(text, cond.endif.end) \
                and re.match(rb"\s*#[ \t]*define[ \t]+" + re.escape(first.condition.encode()) + rb"\b",
                             text[first.body.start:]):
            return cond.endif.start
    return None


_PRAGMA_ONCE = re.compile(rb"^[ \t]*#[ \t]*pragma[ \t]+once\b", re.MULTILINE)
_BLANK = re.compile(rb"\s*(/\*.*?\*/\s*|//[^\n]*\s*)*", re.DOTALL)


def _macros_fully_seen(indexes: list[FileIndex], macros: MacroTable, uses) -> frozenset[str]:
    """Project macros whose every expansion site porter read: defined (unconditionally) in a
    source file, or in a header only the module's files include, and named in no #if branch
    porter left unread. An edit in another macro's body changes code porter has not seen."""
    in_unread: set[str] = set()
    for idx in indexes:
        in_unread.update(n.text for n in idx.src.dropped_names())
    seen = set()
    for m in macros.all():
        if m.active is True and m.name not in in_unread:
            seen.add(m.name)
    return frozenset(seen)


def _public_headers(module: ExtensionModule, build) -> frozenset[str]:
    """The module's headers the package installs: matched by path, or by the path below the
    project root when the build file names it relative to that root."""
    installed = {posixpath.normpath(h) for h in build.installed_headers}
    return frozenset(f for f in module.files if f.endswith(".h") and (
        posixpath.normpath(f) in installed or any(posixpath.normpath(f).endswith("/" + h) for h in installed)))


def _included_by(outside_files) -> set[str]:
    """Base names of the quoted headers files outside the module include."""
    names = set()
    for _, data in outside_files:
        for m in re.finditer(rb'^[ \t]*#[ \t]*include[ \t]*"([^"\n]+)"', data, re.MULTILINE):
            names.add(posixpath.basename(m.group(1).decode("utf-8", "replace")))
    return names


def _unread_inits(pres: Mapping[str, Preprocessed], found: set[str]) -> list[FileProblem]:
    """`PyInit_x(` that porter could not read as an init function (a definition split by #if,
    say): a module it would silently skip."""
    out = []
    for path, pre in pres.items():
        seen = set()
        for start, _, name, called, _ in pre.init_names:
            if name in found or name in seen or pre.dead(start):
                continue
            if called and pre.enclosing(start):
                seen.add(name)
                out.append(FileProblem(path, f"{name} is defined under #if in a way porter cannot read "
                                             "(the function's header or braces are split); nothing was "
                                             "ported for it"))
    return out


def _silent_inits(sources: Mapping[str, Source | SourceText], closures, modules, problems) -> list[FileProblem]:
    """A file whose code names `PyInit_` (outside comments and strings) that yields no module
    and no problem: never an empty patch that says nothing. A header of a file that yields
    either is that file's."""
    from porter.lexer import tokenize

    said = {p.file for p in problems} | {f for m in modules for f in m.files}
    out = []
    for path, src in sorted(sources.items()):
        text = src.text
        if b"PyInit_" not in text or path in said \
                or any(path in closures[other] for other in said if other in closures):
            continue
        at = next((t.start for t in tokenize(text) if t.kind in ("ident", "directive") and b"PyInit_" in t.text
                   and not src.pre.dead(t.start)), None)
        if at is not None:
            line = src.line(at)
            out.append(FileProblem(path, f"line {line} names PyInit_, but porter found no init function it can "
                                         "read here (a `PyMODINIT_FUNC PyInit_<module>(void)` definition, "
                                         "or a macro that spells one): nothing was ported"))
    return out


def _build_names(build: BuildConfig, path: str) -> dict[str, str]:
    """What the build says names stand for when compiling `path`: its -D macros, and
    `__module__`, the last part of the module it builds the file as."""
    names = dict(build.defines)
    ext = build.extension_of(path)
    if ext is not None:
        names["__module__"] = ext.name.rsplit(".", 1)[-1]
    return names


_PASTED_INIT = re.compile(r"\bPyInit_(\w*)")


def _unread_init_headers(indexes, tu_macros, paths: list[str], build: BuildConfig) -> list[FileProblem]:
    """`EXT_INIT_FUNC {`: a function whose header is a project macro spelling `PyInit_...` that
    porter could not read as an init function, said with the line, the macro and what to do:
    the module name a pasted macro leaves open (`CONCATENATE(PyInit_, EXT_MODULE)` when no
    setup.py names the module), or a header shape porter does not read."""
    from porter.lexer import tokenize

    out = []
    for path in paths:
        idx = indexes[path]
        text = idx.src.text
        macros = tu_macros[path]
        toks = [t for t in tokenize(text) if t.kind not in ("comment", "newline", "directive")]
        depth = 0
        for i, tok in enumerate(toks):
            depth += {b"{": 1, b"}": -1}.get(tok.text, 0) if tok.kind == "punct" else 0
            macro = macros.get(tok.text.decode("utf-8", "replace")) if tok.kind == "ident" and not depth else None
            if macro is None or "PyInit_" not in macro.body_text and "PyInit_" not in (
                    expand(macros, macro.name, None if macro.params is None else list(macro.params)) or ""):
                continue
            if idx.src.pre.dead(tok.start):
                continue
            args, j = None, i + 1
            if macro.params is not None:
                if j >= len(toks) or toks[j].text != b"(":
                    continue
                args, end = split_args(text, toks[j].start)
                while j < len(toks) and toks[j].start < end:
                    j += 1
            while j < len(toks) and toks[j].text == b"(":  # `INIT(name)(void)`
                close = split_args(text, toks[j].start)[1]
                while j < len(toks) and toks[j].start < close:
                    j += 1
            if j >= len(toks) or toks[j].text != b"{":
                continue
            expansion = " ".join((expand(macros, macro.name, args) or "").split())
            use = text[tok.start:toks[j - 1].end].decode("utf-8", "replace")
            where = f"{macro.file}:{indexes[macro.file].src.line(macro.span.start)}" if macro.file in indexes \
                else macro.file
            line = idx.src.line(tok.start)
            pasted = _PASTED_INIT.search(expansion)
            suffix = pasted.group(1) if pasted else ""
            if pasted and pasted_module(suffix, macro.name, macros, _build_names(build, path)) is None:
                reason = (f"line {line}: the init function's header `{use}` ({where}) expands to `{expansion}`, "
                          f"and `{suffix}` is a name the build defines, not these files; porter found no setup.py "
                          f"`Extension(...)` that lists this file: give it as `-D {suffix}=<module>`")
            else:
                reason = (f"line {line}: the init function's header is the macro use `{use}` ({where}), which "
                          f"expands to `{expansion}`; porter could not read it as a function header: write it "
                          "out as `PyMODINIT_FUNC PyInit_<module>(void)`")
            out.append(FileProblem(path, reason))
            break
    return out


class _OutsideNames:
    """The identifiers of each file outside the module, read once, when first asked for."""

    def __init__(self, outside_files: Sequence[tuple[str, bytes]]) -> None:
        self.files = list(outside_files)
        self._names: dict[str, set[str]] = {}

    def of(self, path: str, data: bytes) -> set[str]:
        if path not in self._names:
            self._names[path] = names_in_code(data)
        return self._names[path]


def _outside_uses(module: ExtensionModule, outside: _OutsideNames) -> tuple[tuple[str, str], ...]:
    """(global, file) for the module's globals declared in its headers that a source porter
    does not port names: moving them would break that file."""
    declared = {g.name for g in module.globals if g.function is None and not g.is_static
                and any(loc.file.endswith(".h") for loc in g.extern_declarations)}
    out: list[tuple[str, str]] = []
    for path, data in outside.files:
        if path in module.files or not declared:
            continue
        named = outside.of(path, data)
        out.extend((name, path) for name in sorted(declared & named))
    return tuple(out)


def _macro_is_used(name: str, macro_uses, indexes: list[FileIndex]) -> bool:
    """Whether code or another macro's body names the macro (a leftover #define does nothing)."""
    if any(u.name == name for u in macro_uses):
        return True
    word = re.compile(rf"\b{re.escape(name)}\b")
    return any(m.name != name and word.search(m.body_text) for idx in indexes for m in idx.macros)


def _macro_uses(indexes: list[FileIndex], macros: MacroTable, hosts: dict[str, str]) -> list[MacroUse]:
    """Every use of a project macro; `hosts`: the function a file is included in, whose body
    the uses at that file's own top level are part of."""
    out = []
    for idx in indexes:
        host = hosts.get(idx.path)
        # The names both define and use; the uses are sorted by position below.
        for name in [n for n in macros.by_name if n in idx.identifiers]:
            for node in idx.identifiers[name]:
                if node.parent is not None and node.parent.type in ("preproc_def", "preproc_function_def"):
                    continue
                owner = ctree.enclosing_function(node)
                out.append(MacroUse(name, idx.path, ctree.span(node),
                                    ctree.function_name(owner)[0] if owner is not None else host, False,
                                    _pasted(idx, node, macros.get(name), macros), ctree.in_assert(node)))
        for mask in idx.src.macro_masks:
            if mask.name in macros.by_name:
                node = idx.src.root.descendant_for_byte_range(mask.span.start, mask.span.start)
                owner = ctree.enclosing_function(node) if node is not None else None
                out.append(MacroUse(mask.name, idx.path, mask.span,
                                    ctree.function_name(owner)[0] if owner is not None else host,
                                    mask.blanked))
    out.sort(key=lambda u: (u.file, u.span.start))
    return out


def _init_phase_nodes(indexes: list[FileIndex], functions: list[Function], init_names: set[str], graph=None):
    """Helpers only the init function calls (transitively), as (index, definition node)."""
    phase = init_phase(functions, init_names, graph) - init_names
    found: dict[tuple[int, int], tuple[FileIndex, Node]] = {}
    for i, idx in enumerate(indexes):
        for key in phase:
            name = key.rpartition(":")[2]
            nodes = idx.functions.get(name)
            if nodes and (key == name or key == function_key(idx.path, name)):
                found[(i, nodes[0].start_byte)] = (idx, nodes[0])
    return [found[k] for k in sorted(found)]


def _file_conditions(indexes: list[FileIndex], includes) -> dict[str, str]:
    """Files included only under a condition porter cannot evaluate, with that condition."""
    from porter.preproc import unknown_condition

    by_path = {idx.path: idx for idx in indexes}
    out: dict[str, str] = {}
    for inc, target, span in includes:
        cond = unknown_condition(by_path[inc].src.pre, span.start)
        if cond and target not in out:
            out[target] = cond
    return out


def _included_in_functions(indexes: list[FileIndex], includes: list[tuple[str, str, Span]]) -> dict[str, str]:
    """Files of statements included inside one function's body (`#include "generated.h"` in
    the middle of an init helper), with that function: their code runs there."""
    by_path = {idx.path: idx for idx in indexes}
    hosts: dict[str, set[str | None]] = {}
    for including, target, span in includes:
        idx = by_path.get(including)
        node = idx.src.root.descendant_for_byte_range(span.start, span.start) if idx is not None else None
        owner = ctree.enclosing_function(node) if node is not None else None
        hosts.setdefault(target, set()).add(ctree.function_name(owner)[0] if owner is not None else None)
    out: dict[str, str] = {}
    for target, names in sorted(hosts.items()):
        host = next(iter(names)) if len(names) == 1 else None
        if host is not None and target in by_path and not by_path[target].functions:
            out[target] = host
    return out


def _module_includes(indexes: list[FileIndex]) -> list[tuple[str, str, Span]]:
    paths = {idx.path: idx for idx in indexes}
    out = []
    for idx in indexes:
        resolved = _resolve_includes(idx.path, idx, paths)
        by_name: dict[str, tuple[str, Span]] = {}
        for name, span in idx.includes:
            target = posixpath.normpath(posixpath.join(posixpath.dirname(idx.path), name))
            by_name.setdefault(name, (target, span))
        for target in resolved:
            for name, (t, span) in by_name.items():
                if t == target or target.endswith("/" + name) or target == name:
                    out.append((idx.path, target, span))
                    break
    return out


def _pasted(idx: FileIndex, node, macro, macros: MacroTable) -> tuple[str, ...]:
    """Identifiers a use's expansion builds with ## that neither the body nor the arguments spell."""
    if macro is None or "##" not in macro.body_text:
        return ()
    args = None
    if macro.params is not None:
        text = idx.src.text
        open_at = text.find(b"(", node.end_byte)
        if open_at < 0 or text[node.end_byte:open_at].strip():
            return ()
        args, _ = split_args(text, open_at)
        if args is None:
            return ()
    expansion = expand(macros, macro.name, args) or ""
    spelled = names_in(macro.body_text) | set().union(*(names_in(a) for a in (args or [])))
    return tuple(sorted(names_in(expansion) - spelled))


def _macro_defined(indexes, macros, roles, owners, flags, known: set[str],
                   shared: dict | None = None) -> list[Function]:
    """Function facts for functions a project macro's use defines at file scope."""
    out = []
    found = (shared or {}).get("macro functions")
    if found is None:
        found = collect_macro_functions(indexes, macros)
        if shared is not None:
            shared["macro functions"] = found
    for mf in found:
        if mf.name in known:
            continue
        known.add(mf.name)
        fn_roles = list(roles.get(mf.name, [])) or [Role(RoleKind.HELPER)]
        out.append(Function(
            name=mf.name, file=mf.file, span=mf.use, header=mf.use, body=mf.use, return_type="",
            params=tuple(Param(p, "", mf.use) for p in mf.params), is_static=mf.is_static,
            roles=tuple(fn_roles), calls=tuple(Call(c, mf.use, ()) for c in mf.calls),
            address_taken=(), types=tuple(owners.get(mf.name, ())), flags=tuple(flags.get(mf.name, ())),
            defined_by=mf.macro,
        ))
    return out


def _substruct_initializers(indexes: list[FileIndex]) -> list[Location]:
    """PyNumberMethods and friends: naming a function there is giving it a slot role."""
    from porter import capi

    out = []
    for idx in indexes:
        for decl in idx.file_declarations:
            if ctree.type_name(decl) not in capi.SUBSTRUCT_FIELDS:
                continue
            for d in ctree.declarators(decl):
                info = ctree.read_declarator(d)
                if info.value is not None:
                    out.append(Location(idx.path, ctree.span(info.value)))
    return out


def _state_struct(indexes: list[FileIndex], definition) -> StateStructDefinition | None:
    """The definition of the struct `m_size = sizeof(S)` names."""
    size = definition.field("m_size") if definition else None
    operand = sizeof_operand(size.text if size else None)
    if operand is None:
        return None
    name = operand[1]
    for idx in indexes:
        for node in ctree.file_scope(idx.src.root):
            if node.type == "type_definition":
                t = node.child_by_field_name("type")
                names = [d.text.decode() for d in node.children_by_field_name("declarator")]
            elif node.type == "struct_specifier" or (
                    node.type == "declaration" and node.child_by_field_name("type") is not None
                    and node.child_by_field_name("type").type == "struct_specifier"):
                t = node if node.type == "struct_specifier" else node.child_by_field_name("type")
                names = []
            else:
                continue
            tag = t.child_by_field_name("name") if t is not None else None
            body = t.child_by_field_name("body") if t is not None else None
            if body is None or name not in names + ([tag.text.decode()] if tag is not None else []):
                continue
            statement = ctree.span(node)
            if node.type == "struct_specifier":
                # `struct S { ... };`: the `;` is a token of its own after the specifier.
                after = idx.src.text[statement.end:statement.end + 64]
                stripped = after.lstrip()
                if stripped.startswith(b";"):
                    statement = Span(statement.start, statement.end + len(after) - len(stripped) + 1)
            return StateStructDefinition(name, idx.path, statement, body.end_byte - 1,
                                         tuple(_struct_fields(idx, body, [], set())))
    return None


def collect_instance_structs(indexes: list[FileIndex]) -> list[InstanceStruct]:
    """Structs that start with PyObject_HEAD, with their fields (the head left out)."""
    structs = []
    for idx in indexes:
        heads = [m.span for m in idx.src.macro_masks if m.name in ("PyObject_HEAD", "PyObject_VAR_HEAD")]
        for node in ctree.file_scope(idx.src.root):
            if node.type != "type_definition" or not _any_start_in(heads, node.start_byte, node.end_byte):
                continue
            t = node.child_by_field_name("type")
            names = [d.text.decode() for d in node.children_by_field_name("declarator")]
            tag = t.child_by_field_name("name") if t is not None else None
            if tag is not None:
                names.append(tag.text.decode())
            structs.append((idx, node, t.child_by_field_name("body") if t is not None else None, heads, names))
    object_names = {name for *_, names in structs for name in names}
    found: list[InstanceStruct] = []
    for idx, node, body, heads, names in structs:
        fields = tuple(_struct_fields(idx, body, heads, object_names)) if body is not None else ()
        for name in names:
            found.append(InstanceStruct(name, idx.path, ctree.span(node), fields))
    return found


_PY_OBJECT_TYPE = re.compile(r"Py\w*Object")


def _any_start_in(spans: list[Span], start: int, end: int) -> bool:
    """Whether one of `spans` (in the order of their starts) starts in `start..end`."""
    i = bisect_left(spans, (start,))
    return i < len(spans) and spans[i].start < end


def _struct_fields(idx: FileIndex, body, heads, object_names: set[str]) -> list[StructField]:
    out = []
    masked = SpanSet(mc.conditional.span for mc in idx.src.masked_conditionals)
    for decl in body.named_children:
        if decl.type != "field_declaration" or _any_start_in(heads, decl.start_byte, decl.end_byte):
            continue
        conditional = masked.covers(decl.start_byte)
        type_node = decl.child_by_field_name("type")
        type_text = idx.src.text_of(type_node).strip() if type_node is not None else ""
        for d in decl.children_by_field_name("declarator"):
            info = ctree.read_declarator(d)
            if info.name is None:
                continue
            single = d.type == "pointer_declarator" and d.child_by_field_name("declarator") is not None \
                and d.child_by_field_name("declarator").type == "field_identifier"
            bare = re.sub(r"\b(struct|const|volatile)\b", "", type_text).strip()
            is_object = single and (bool(_PY_OBJECT_TYPE.fullmatch(bare)) or bare in object_names)
            out.append(StructField(info.name, type_text + (" *" if info.is_pointer else ""),
                                   is_object, ctree.span(decl), conditional))
    # Fields inside an #if that tree-sitter kept as a preproc node are conditional too.
    for pre in body.named_children:
        if pre.type.startswith("preproc_"):
            for decl in pre.named_children:
                if decl.type == "field_declaration":
                    for d in decl.children_by_field_name("declarator"):
                        info = ctree.read_declarator(d)
                        if info.name:
                            out.append(StructField(info.name, "", False, ctree.span(decl), True))
    return out


def _resolve_includes(path: str, idx: FileIndex | _IncludesOnly,
                      indexes: Mapping[str, FileIndex | _IncludesOnly],
                      by_name: dict[str, list[str]] | None = None) -> list[str]:
    """The files of `indexes` that the quoted includes of `path` name. `by_name` (the paths of
    `indexes` by base name, in their order) is worked out once by callers that ask for many."""
    out = []
    base = posixpath.dirname(path)
    if by_name is None:
        by_name = paths_by_basename(indexes)
    for name, _ in idx.includes:
        candidate = posixpath.normpath(posixpath.join(base, name))
        if candidate in indexes:
            out.append(candidate)
            continue
        # Every path ending in `/name` has name's base name: look among those only.
        matches = [p for p in by_name.get(posixpath.basename(name), []) if p.endswith("/" + name) or p == name]
        if len(matches) == 1:
            out.append(matches[0])
        elif not matches and len(by_name.get(posixpath.basename(name), [])) == 1:
            out.append(by_name[posixpath.basename(name)][0])
    return out


def paths_by_basename(paths) -> dict[str, list[str]]:
    by_name: dict[str, list[str]] = {}
    for p in paths:
        by_name.setdefault(posixpath.basename(p), []).append(p)
    return by_name


def _closure(path: str, includes: dict[str, list[str]]) -> list[str]:
    seen = [path]
    stack = [path]
    while stack:
        for inc in includes.get(stack.pop(), []):
            if inc not in seen:
                seen.append(inc)
                stack.append(inc)
    return seen


@dataclass(frozen=True)
class LinkFacts:
    """What a file gives and takes at link time: the external names it defines (functions
    and variables not static), and every identifier it names."""

    exported: frozenset[str]
    referenced: frozenset[str]


def link_facts(idx: FileIndex) -> LinkFacts:
    names = set()
    for name, nodes in idx.functions.items():
        if not any("static" in ctree.storage(n) for n in nodes):
            names.add(name)
    for decl in idx.file_declarations:
        st = ctree.storage(decl)
        if "static" in st or "extern" in st or "typedef" in st:
            continue
        for d in ctree.declarators(decl):
            info = ctree.read_declarator(d)
            if info.name and not info.is_function:
                names.add(info.name)
    return LinkFacts(frozenset(names), frozenset(idx.identifiers))


def _link_files(indexes, closures, roots, build: BuildConfig | None) -> dict[str, list[str]]:
    """Files without an init function that a module's files link with, by external symbol."""
    facts = {path: link_facts(idx) for path, idx in indexes.items()}
    return link_files(facts, list(indexes), closures, roots, build)


def link_candidates(paths: list[str], closures: Mapping[str, list[str]], roots) -> list[str]:
    """Source files no module includes and that are no module's init file: each may be
    compiled with a module it sits next to."""
    root_set = set(roots)
    included_anywhere = {p for c in closures.values() for p in c[1:]}
    return [p for p in paths if p not in root_set and p.endswith(".c") and p not in included_anywhere]


def link_files(facts: Mapping[str, LinkFacts], paths: list[str], closures: Mapping[str, list[str]],
               roots, build: BuildConfig | None = None) -> dict[str, list[str]]:
    """Files without an init function that each root's module links with, by external symbol:
    `facts` are needed for the roots' files, the candidates next to them and the candidates'
    headers; `paths` are all files, in the order of the input."""
    candidates = link_candidates(paths, closures, roots)
    return {root: link_root(root, facts, candidates, closures, built_with(build, root)) for root in roots}


def built_with(build: BuildConfig | None, root: str) -> tuple[str, ...]:
    """The other sources the build compiles into the extension of `root` (setup.py's Extension)."""
    extension = build.extension_of(root) if build is not None else None
    wanted = posixpath.normpath(root)
    return tuple(s for s in extension.sources if s != wanted) if extension is not None else ()


def link_root(root: str, facts: Mapping[str, LinkFacts], candidates: list[str],
              closures: Mapping[str, list[str]], built: Sequence[str] = ()) -> list[str]:
    """The candidates (with their headers) one root's module links with: those its build
    compiles with it (`built`), and those next to it that share external symbols with it."""
    members = list(closures[root])
    for cand in candidates:
        if posixpath.normpath(cand) in built:
            members += [p for p in closures[cand] if p not in members]
    folder = posixpath.dirname(root)
    # A part in another folder is extension code (it names the C API): a library vendored
    # next to the module (libmpdec, expat, HACL) shares the module's headers but is no part.
    nearby = [c for c in part_roots(candidates, [root], closures)
              if posixpath.dirname(c) == folder or _names_the_c_api(facts[c])]
    changed = bool(nearby)
    while changed:
        changed = False
        # The files the build names were not read for their link facts when they sit elsewhere.
        known = [facts[p] for p in members if p in facts]
        mem_exports = set().union(*(f.exported for f in known))
        mem_refs = set().union(*(f.referenced for f in known))
        for cand in nearby:
            if cand in members:
                continue
            if (facts[cand].exported & mem_refs) or (mem_exports & facts[cand].referenced
                                                     and facts[cand].exported):
                for p in closures[cand]:
                    if p not in members:
                        members.append(p)
                changed = True
    return [p for p in members if p not in closures[root]]


def part_roots(candidates: list[str], roots, closures: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """The roots (init files) whose module each candidate may be compiled into: a candidate
    sits next to the init file, or it includes a header the init file includes too (a module's
    part files in a folder of their own, with the header of prototypes they share:
    `parts/x.c`, `parts/parts.h`). In a tree of many modules (CPython's Modules/), names alone
    would link unrelated files; link_root still asks for shared symbols."""
    by_folder: dict[str, list[str]] = {}
    by_header: dict[str, list[str]] = {}
    for root in roots:
        by_folder.setdefault(posixpath.dirname(root), []).append(root)
        for header in closures[root][1:]:
            by_header.setdefault(header, []).append(root)
    out = {}
    for cand in candidates:
        found = list(by_folder.get(posixpath.dirname(cand), []))
        for header in closures[cand][1:]:
            found += [r for r in by_header.get(header, []) if r not in found]
        if found:
            out[cand] = found
    return out


def _names_the_c_api(facts: LinkFacts) -> bool:
    return any(name.startswith(("Py", "_Py")) for name in facts.referenced)


def module_files(root: str, closures, linked) -> list[str]:
    files = list(closures[root])
    for p in linked.get(root, []):
        if p not in files:
            files.append(p)
    return files


def load_sources(items: list[tuple[str, bytes]], problems: list[FileProblem] | None = None,
                 build_defines: Mapping[str, str] | None = None) -> list[Source]:
    """Parse files together: each sees the macros of the headers it includes, and the build's
    -D macros (`build_defines`) decide #if branches as they do for the compiler.

    A file porter fails on is left out and, when `problems` is given, reported there.
    """
    from porter.parse import parse_source
    from porter.preproc import preprocess

    pres = {}
    for path, data in items:
        try:
            pres[path] = preprocess(path, data, build_defines)
        except Exception as e:
            if problems is None:
                raise
            problems.append(FileProblem(path, internal_error("reading directives of", e)))
    items = [(path, data) for path, data in items if path in pres]
    fake = {path: _IncludesOnly(pre) for path, pre in pres.items()}
    by_name = paths_by_basename(fake)
    includes = {path: _resolve_includes(path, fake[path], fake, by_name) for path in pres}
    closures = {path: _closure(path, includes) for path in pres}
    out = []
    for path, data in items:
        # A file sees its own headers and, in a unity build, what its includers saw.
        closure = list(closures[path])
        for other, other_closure in closures.items():
            if other != path and path in other_closure:
                closure.extend(p for p in other_closure if p not in closure)
        macros: dict = {}
        for p in closure:
            for m in pres[p].macros:
                if m.active is not False:
                    macros.setdefault(m.name, m)
        iso646 = any(inc.name == "iso646.h" for p in closure for inc in pres[p].includes)
        try:
            out.append(parse_source(path, data, pres[path], macros, iso646))
            # The lexer's spans served the masks; the analysis does not need them.
            out[-1].pre = dataclasses.replace(pres[path], lexed=None)
            pres[path] = out[-1].pre
        except Exception as e:
            if problems is None:
                raise
            problems.append(FileProblem(path, internal_error("parsing", e)))
    return out


class _IncludesOnly:
    """The include list of a file before it is parsed, shaped like a FileIndex for resolving."""

    def __init__(self, pre):
        self.includes = [(inc.name, inc.span) for inc in pre.includes
                         if not inc.system and not pre.dead(inc.span.start)]
