"""What the Py_mod_multiple_interpreters slot may truthfully claim for a ported module."""

from __future__ import annotations

from porter.model import ExtensionModule, GlobalKind, Severity
from porter.rewrite.decide import Decisions

PER_INTERPRETER_GIL = "Py_MOD_PER_INTERPRETER_GIL_SUPPORTED"
SHARED_GIL_ONLY = "Py_MOD_MULTIPLE_INTERPRETERS_SUPPORTED"
NOT_SUPPORTED = "Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED"


def choose_posture(module: ExtensionModule, decisions: Decisions) -> tuple[str, list[str]]:
    """The strongest claim that is true, and the reasons it is not stronger."""
    reasons = []
    objects_left = False
    for key, why in sorted(decisions.kept.items(), key=lambda kv: kv[0][1]):
        g = next(g for g in module.globals if g.key == key)
        reasons.append(f"{g.name} ({g.kind.value}) stays process-global: {why}")
        if g.kind.is_object_kind and g.kind is not GlobalKind.STATIC_TYPE:
            objects_left = True
    for f in module.findings:
        if f.code == "process-global":
            reasons.append(f"{f.message} ({f.file})")
        if f.severity is Severity.BLOCKER and f.code not in ("state-find-module", "state-add-module"):
            reasons.append(f.message)
    if not reasons:
        return PER_INTERPRETER_GIL, []
    if objects_left or any(f.code == "process-global" for f in module.findings):
        return NOT_SUPPORTED, reasons
    return SHARED_GIL_ONLY, reasons
