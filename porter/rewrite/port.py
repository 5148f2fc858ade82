"""Facts to patches: plan each module, run the steps, judge each edit, apply, re-parse.

One error policy: anything that goes wrong while planning or in a step costs that module only;
it is reported failed with the reason, and none of its edits are applied.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field, replace

from porter.analyze.project import Analysis
from porter.analyze.schedule import reparse
from porter.cpython import kept_single_phase
from porter.model import ExtensionModule, FileProblem, InitStyle, Location, Span
from porter.preproc import unbalanced_directive
from porter.rewrite.edits import (
    Edit,
    OverlappingEdits,
    applicable,
    apply_edits,
    drop_emptied_groups,
    drop_moot,
    join_deleted_lines,
)
from porter.rewrite.emit import Item, Step
from porter.rewrite.layout import FileLayout
from porter.rewrite.plan import Plan, build_plan
from porter.rewrite.planning.posture import Posture, atomic_counters
from porter.rewrite.steps.clinic_input import ClinicInput
from porter.rewrite.steps.exec_slot import ExecSlot
from porter.rewrite.steps.gc_support import GcSupport
from porter.rewrite.steps.heap_types import HeapTypes
from porter.rewrite.steps.local_tables import LocalTables
from porter.rewrite.steps.module_def import ModuleDefinition
from porter.rewrite.steps.once_per_process import OncePerProcess
from porter.rewrite.steps.state_access import StateAccess
from porter.rewrite.steps.state_struct import StateStruct
from porter.rewrite.vocab import Applicability, PortStatus, Reason
from porter.spans import Containers
from porter.status import Status, isolation_of

# Steps run in this order on one plan; each only reads the plan, so the order only decides
# the order of their checklist items (and which failure is reported first).
PASSES: tuple[Step, ...] = (StateStruct(), HeapTypes(), GcSupport(), StateAccess(), ClinicInput(), LocalTables(),
                            ExecSlot(), OncePerProcess(), ModuleDefinition())


@dataclass
class ModulePort:
    module: ExtensionModule
    status: PortStatus
    reason: str = ""
    edits: list[Edit] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
    posture: Posture | None = None
    kept: dict = field(default_factory=dict)  # global key -> Reason it stays global
    sources: dict = field(default_factory=dict)  # for line numbers in reports
    failure_code: str = ""
    created: list[str] = field(default_factory=list)  # files the port writes that did not exist
    kept_on_purpose: bool = False  # a module porter must not port (CPython's import-machinery tests)

    @property
    def written(self) -> list[str]:
        """Every file the port may change or create."""
        return list(self.module.files) + self.created


@dataclass
class PortResult:
    modules: list[ModulePort]
    new_text: dict[str, bytes]
    problems: list[FileProblem]

    @property
    def failed(self) -> bool:
        return any(m.status is PortStatus.FAILED for m in self.modules) or bool(self.problems)


def internal_error(where: str, error: BaseException) -> str:
    tb = traceback.extract_tb(error.__traceback__) if error.__traceback__ else []
    at = f" at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else ""
    return f"internal error {where} ({type(error).__name__}: {error}{at}); please report it"


def plan_module(module: ExtensionModule, layouts: dict[str, FileLayout], unsafe: bool,
                multi_phase_is_done: bool = True) -> ModulePort:
    """Plan and run every step for one module, with and without the fixes only --unsafe applies.

    Every fix is computed; `unsafe` only chooses which port is the result. Without it, the
    fixes --unsafe would add are listed as items left to a person.
    `multi_phase_is_done=False` ports a module that is already multi-phase as if it were not
    (the idempotence test uses it: the steps must then find nothing left to do).
    """
    safe = _plan_module(module, layouts, False, multi_phase_is_done)
    if not any(why.unsafe_fix for why in safe.kept.values()):
        return safe
    full = _plan_module(module, layouts, True, multi_phase_is_done)
    if unsafe:
        return full
    for it in full.items:
        if it.applicability is Applicability.UNSAFE and full.status is PortStatus.PORTED:
            safe.items.append(replace(it, message=f"available with --unsafe: {it.message}", done=False, edits=()))
    return safe


def _plan_module(module: ExtensionModule, layouts: dict[str, FileLayout], unsafe: bool,
                 multi_phase_is_done: bool) -> ModulePort:
    if module.init_style is InitStyle.MULTI_PHASE and multi_phase_is_done \
            and isolation_of(module) is Status.ALREADY_ISOLATED:
        return ModulePort(module, PortStatus.NOTHING_TO_DO, "already isolated")
    if module.cpython_version is not None and kept_single_phase(module.name, module.init.file):
        return ModulePort(module, PortStatus.NOTHING_TO_DO, "CPython's tests use it to test module "
                                                            "initialisation itself: porter leaves it as it is",
                          kept_on_purpose=True)
    if module.init_style is InitStyle.UNKNOWN:
        return ModulePort(module, PortStatus.FAILED, "porter cannot tell how this module is created")
    try:
        plan = build_plan(module, layouts, unsafe)
    except Exception as e:  # a porter bug: this module only
        return ModulePort(module, PortStatus.FAILED, internal_error("while planning", e), failure_code="internal-error")
    edits: list[Edit] = []
    items: list[Item] = []
    failure = plan.failure
    for step in PASSES if failure is None else ():
        try:
            result = step.run(plan)
        except Exception as e:  # a porter bug: this module only
            failure = Reason("internal-error", internal_error(f"in step {step.id}", e))
            break
        edits += result.edits
        items += result.items
        if result.failure is not None:
            failure = result.failure
            break
    atomic = atomic_counters(module, plan.decisions.kept)
    for key, why in plan.decisions.kept.items():
        if key in atomic:
            continue  # made _Atomic (steps.once_per_process), which says so
        g = module.global_of(key)
        items.append(Item("state-struct", Applicability.MANUAL, g.file, g.span, f"{g.name} stays global: {why}",
                          False, ("global", *key), code=why.code, subject=g.name))
    if failure is not None:
        return ModulePort(module, PortStatus.FAILED, failure.message, [], items, plan.posture, plan.decisions.kept,
                          failure_code=failure.code)
    try:
        edits, items = judge(plan, edits, items)
    except GeneratedCodeEdit as e:
        return ModulePort(module, PortStatus.FAILED, f"internal error: {e}; please report it", [], items,
                          plan.posture, plan.decisions.kept, failure_code="internal-error")
    status = PortStatus.PORTED if edits else PortStatus.NOTHING_TO_DO
    return ModulePort(module, status, "", edits, items, plan.posture, plan.decisions.kept)


class GeneratedCodeEdit(Exception):
    """A step edited generated code: a porter bug the module pays for, never a silent edit."""


def judge(plan: Plan, edits: list[Edit], items: list[Item]) -> tuple[list[Edit], list[Item]]:
    """Applicability as policy: an edit in a macro body whose every expansion porter did not
    see, or in an #if branch porter did not read, is at best REVIEW; each item then carries the
    edits that implement it, and is as weak as the weakest of them."""
    module = plan.module
    unseen_macros = _by_file(Location(m.file, m.span) for m in module.macros if m.name not in module.macros_fully_seen)
    unread = _by_file(module.unread_branches)
    judged = []
    orphans: dict[tuple, tuple[Edit, str]] = {}
    keys = {it.key for it in items if it.key is not None}
    for e in edits:
        if module.in_generated(e.file, e.span.start) or (e.span.end > e.span.start
                                                         and module.in_generated(e.file, e.span.end - 1)):
            raise GeneratedCodeEdit(f"{e.step} would edit Argument Clinic output at {e.file}:"
                                    f"{plan.layout(e.file).line(e.span.start)}")
        why = _needs_review(e, unseen_macros, unread)
        if why and e.applicability is Applicability.SAFE:
            e = replace(e, applicability=Applicability.REVIEW)
            if e.item is None or e.item not in keys:
                orphans.setdefault(("review", e.file, e.span.start), (e, why))
        judged.append(e)
    by_key: dict[tuple, list[Edit]] = {}
    for e in judged:
        if e.item is not None:
            by_key.setdefault(e.item, []).append(e)
    reviewed = {key for key, es in by_key.items() if any(e.applicability is Applicability.REVIEW for e in es)}
    linked = []
    for it in items:
        implementing = tuple(by_key.get(it.key, ())) if it.key is not None else ()
        weakest = it.applicability
        if it.done and it.key in reviewed:
            weakest = weakest.at_most(Applicability.REVIEW)
        linked.append(replace(it, edits=implementing, applicability=weakest))
    for key, (e, why) in sorted(orphans.items(), key=lambda kv: kv[0][1:]):
        linked.append(Item(e.step, Applicability.REVIEW, e.file, e.span, why, True, key, (e,)))
    return judged, linked


def _needs_review(e: Edit, unseen_macros: dict[str, Containers], unread: dict[str, Containers]) -> str:
    macros, branches = unseen_macros.get(e.file), unread.get(e.file)
    if macros is not None and macros.holds(e.span.start, e.span.end):
        return "edited inside a macro body whose every expansion porter did not see: review it"
    if branches is not None and branches.holds(e.span.start, e.span.end):
        return "edited in an #if branch porter did not read: check that configuration builds"
    return ""


def _by_file(locations) -> dict[str, Containers]:
    """Spans by file, for asking whether one holds an edit (each edit used to ask each span)."""
    spans: dict[str, list[Span]] = {}
    for loc in locations:
        spans.setdefault(loc.file, []).append(loc.span)
    return {file: Containers(s) for file, s in spans.items()}


def port(analysis: Analysis, unsafe: bool = False, multi_phase_is_done: bool = True,
         regenerate_clinic: frozenset[str] = frozenset()) -> PortResult:
    """`regenerate_clinic`: the modules whose clinic input the port may change (the caller runs
    clinic on the new text)."""
    if not analysis.port_facts:
        raise ValueError("a port needs an analysis with the facts only a port reads (scan(port_facts=True))")
    layouts = {path: FileLayout(src.text) for path, src in analysis.sources.items()}
    modules = [plan_module(replace(m, regenerate_clinic=True) if m.name in regenerate_clinic else m, layouts,
                           unsafe, multi_phase_is_done) for m in analysis.modules]
    for mp, m in zip(modules, analysis.modules):
        mp.module = m  # the scan's facts (the flag is the plan's business)
    for mp in modules:
        mp.sources = {f: analysis.sources[f] for f in mp.module.files if f in analysis.sources}
    by_file: dict[str, list[Edit]] = {}
    owners: dict[str, list[ModulePort]] = {}
    for mp in modules:
        if mp.status is not PortStatus.PORTED:
            continue
        for file in dict.fromkeys(e.file for e in mp.edits):
            owners.setdefault(file, []).append(mp)
            if file not in analysis.sources and file not in mp.created:
                mp.created.append(file)  # a header of porter's own
        for e in mp.edits:
            by_file.setdefault(e.file, []).append(e)
    new_text: dict[str, bytes] = {}
    for file, edits in by_file.items():
        try:
            # The same edit asked for twice (a sub-struct shared by two types) is one edit.
            unique = list({(e.span, e.text, e.order): e for e in applicable(edits, unsafe)}.values())
            source = analysis.sources.get(file)
            text = source.text if source is not None else b""
            groups = [(c.span, [b.body for b in c.branches]) for c in source.conditionals] if source else []
            kept = drop_emptied_groups(text, drop_moot(unique), groups)
            new_text[file] = apply_edits(text, join_deleted_lines(text, kept))
        except OverlappingEdits as e:
            for mp in owners[file]:
                _fail(mp, f"internal error: overlapping edits ({e}); please report it")
    _reparse_check(analysis, new_text, owners)
    # A failed module contributes nothing, in any of its files.
    for file in list(new_text):
        if any(mp.status is PortStatus.FAILED for mp in owners.get(file, [])):
            del new_text[file]
    return PortResult(modules, new_text, list(analysis.problems))


def _fail(mp: ModulePort, reason: str) -> None:
    mp.status = PortStatus.FAILED
    mp.reason = reason


def _reparse_check(analysis: Analysis, new_text: dict[str, bytes], owners) -> None:
    """A rewrite that adds an ERROR span or an unmatched #if directive is refused: the module fails."""
    if not new_text:
        return
    # Only the files the port changed (or made) are parsed again.
    reparsed = reparse(analysis.sources, new_text, dict(analysis.build_defines))
    for path in new_text:
        after = reparsed[path]
        before = analysis.sources.get(path)
        broken = unbalanced_directive(new_text[path])
        if broken is not None and (before is None or unbalanced_directive(before.text) is None):
            # An edit took part of an #if group (its `#if` but not its `#else`): a porter bug.
            for mp in owners[path]:
                _fail(mp, f"internal error: the rewritten {path} has an unmatched #if directive "
                          f"(line {after.line(broken)}); please report it")
        elif len(after.error_spans) > (len(before.error_spans) if before is not None else 0):
            line = after.line(after.error_spans[0].start)
            for mp in owners[path]:
                _fail(mp, f"the rewritten {path} does not parse (line {line}); nothing was emitted")
