"""Facts to an edit plan: decisions, then each step in order, then one apply and a re-parse check."""

from __future__ import annotations

from dataclasses import dataclass, field

from porter.analyze.initializers import sizeof_operand
from porter.analyze.project import Analysis, load_sources
from porter.model import ExtensionModule, FileProblem, InitStyle
from porter.rewrite.context import Item, PortContext, make_names
from porter.rewrite.decide import decide
from porter.rewrite.edits import (Applicability, Edit, OverlappingEdits, applicable, apply_edits,
                                  drop_moot, join_deleted_lines)
from porter.rewrite.posture import choose_posture
from porter.rewrite.steps.exec_slot import ExecSlot
from porter.rewrite.steps.gc_support import GcSupport
from porter.rewrite.steps.heap_types import HeapTypes, convertible_types
from porter.rewrite.steps.module_def import ModuleDefinition
from porter.rewrite.steps.state_access import StateAccess
from porter.rewrite.steps.state_struct import StateStruct

# The order matters: state-struct decides the fields every later step reads; heap-types
# schedules type creation in exec before exec-slot writes exec's prologue and decides which
# types gc-support completes; module-def
# comes last because it renders the definition from everything before it.
PASSES = (StateStruct(), HeapTypes(), GcSupport(), StateAccess(), ExecSlot(), ModuleDefinition())


@dataclass
class ModulePort:
    module: ExtensionModule
    status: str  # ported, nothing-to-do, failed
    reason: str = ""
    edits: list[Edit] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
    posture: str = ""
    posture_reasons: list[str] = field(default_factory=list)
    kept: dict = field(default_factory=dict)
    posture_condition: str | None = None
    sources: dict = field(default_factory=dict)  # for line numbers in reports


@dataclass
class PortResult:
    modules: list[ModulePort]
    new_text: dict[str, bytes]
    problems: list[FileProblem]

    @property
    def failed(self) -> bool:
        return any(m.status == "failed" for m in self.modules) or bool(self.problems)


def plan_module(module: ExtensionModule, analysis: Analysis, unsafe: bool) -> ModulePort:
    if module.init_style is InitStyle.MULTI_PHASE:
        return ModulePort(module, "nothing-to-do", "already multi-phase")
    if module.init_style is InitStyle.UNKNOWN:
        return ModulePort(module, "failed", "porter cannot tell how this module is created")
    types = convertible_types(module, unsafe)
    decisions = decide(module, types)
    existing = _existing_state(module)
    names = make_names(module, decisions.state_var, existing)
    ctx = PortContext(module, analysis.sources, decisions, names, unsafe)
    ctx.posture, ctx.posture_reasons, ctx.posture_condition = choose_posture(module, decisions)
    if decisions.blocked:
        ctx.fail("; ".join(dict.fromkeys(decisions.blocked)))
    for step in PASSES:
        if ctx.failure:
            break
        step.run(ctx)
    for key, why in decisions.kept.items():
        g = next(g for g in module.globals if g.key == key)
        ctx.item("state-struct", Applicability.MANUAL, g.file, g.span,
                 f"{g.name} stays global: {why}", done=False)
    if ctx.failure:
        return ModulePort(module, "failed", ctx.failure, [], ctx.items, ctx.posture,
                          ctx.posture_reasons, decisions.kept, ctx.posture_condition)
    return ModulePort(module, "ported", "", ctx.edits, ctx.items, ctx.posture,
                      ctx.posture_reasons, decisions.kept, ctx.posture_condition)


def _existing_state(module: ExtensionModule) -> str | None:
    d = module.definition
    size = d.field("m_size") if d else None
    operand = sizeof_operand(size.text if size is not None else None)
    return operand[0] if operand else None


def port(analysis: Analysis, unsafe: bool = False) -> PortResult:
    modules = [plan_module(m, analysis, unsafe) for m in analysis.modules]
    for mp in modules:
        mp.sources = {f: analysis.sources[f] for f in mp.module.files if f in analysis.sources}
    problems = list(analysis.problems)
    by_file: dict[str, list[Edit]] = {}
    owners: dict[str, list[ModulePort]] = {}
    for mp in modules:
        if mp.status != "ported":
            continue
        for e in mp.edits:
            by_file.setdefault(e.file, []).append(e)
            if mp not in owners.setdefault(e.file, []):
                owners[e.file].append(mp)
    new_text: dict[str, bytes] = {}
    for file, edits in by_file.items():
        try:
            # The same edit asked for twice (a sub-struct shared by two types) is one edit.
            unique = list({(e.span, e.text, e.order): e for e in applicable(edits, unsafe)}.values())
            text = analysis.sources[file].text
            new_text[file] = apply_edits(text, join_deleted_lines(text, drop_moot(unique)))
        except OverlappingEdits as e:
            for mp in owners[file]:
                _fail(mp, f"internal error: overlapping edits ({e}); please report it")
    _reparse_check(analysis, new_text, owners)
    # A failed module contributes nothing, in any of its files.
    failed_files = {f for mp in modules if mp.status == "failed" for f in mp.module.files}
    for file in list(new_text):
        if any(mp.status == "failed" for mp in owners.get(file, [])):
            del new_text[file]
    del failed_files
    return PortResult(modules, new_text, problems)


def _fail(mp: ModulePort, reason: str) -> None:
    mp.status = "failed"
    mp.reason = reason


def _reparse_check(analysis: Analysis, new_text: dict[str, bytes], owners) -> None:
    """A rewrite that adds an ERROR span is refused: the module is reported failed."""
    if not new_text:
        return
    items = [(path, new_text.get(path, src.text)) for path, src in analysis.sources.items()]
    reparsed = {s.path: s for s in load_sources(items)}
    for path in new_text:
        before = len(analysis.sources[path].error_spans)
        after = reparsed[path]
        if len(after.error_spans) > before:
            first = after.error_spans[0]
            line = after.line(first.start)
            for mp in owners[path]:
                _fail(mp, f"the rewritten {path} does not parse (line {line}); nothing was emitted")
